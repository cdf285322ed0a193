import Foundation
import Testing

@testable import OVSDB

@Suite(.timeLimit(.minutes(1))) struct OVSDBClientTests {
    @Test func failedConnectsAreReportedAndRetriedUntilStopped() async throws {
        let path = "/tmp/ovsdb-test-absent-\(getpid())/db.sock"
        let client = OVSDBClient(
            remote: .unix(path: path), monitoring: HardwareVTEP.monitorRequests,
            backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(40)))
        await client.start()
        await #expect(throws: OVSDBError.notConnected) { try await client.schema() }
        var reasons: [String] = []
        for await event in client.events {
            guard case .disconnected(let reason) = event else {
                Issue.record("unexpected \(event)")
                continue
            }
            reasons.append(reason)
            if reasons.count == 4 { await client.stop() }
        }
        // stop() finished the stream; at most one more attempt was under way.
        #expect((4...5).contains(reasons.count))
        #expect(reasons.allSatisfy { $0.hasPrefix("cannot connect to unix:\(path): ") })
        #expect(await client.synchronizations == 0)
        #expect(await !client.isConnected)
    }
}
