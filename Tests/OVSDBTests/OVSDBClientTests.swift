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

/// How the client judges a member of a clustered database from its `_Server` Database row:
/// a standalone server is fit; a member is fit only connected, leader, and not behind the
/// highest log index any member reported (so a stale member is never followed).
@Suite struct ClusterMemberFitnessTests {
    func row(
        model: String = "clustered", connected: Bool = true, leader: Bool = true, index: Int? = nil
    ) -> Row {
        var columns: [String: Datum] = [
            "model": .atom(.string(model)), "connected": .atom(.boolean(connected)),
            "leader": .atom(.boolean(leader)),
        ]
        if let index { columns["index"] = .atom(.integer(index)) }
        return Row(columns)
    }

    @Test func aStandaloneServerIsFitWhateverItsRowSays() {
        var seen: Int? = 10
        #expect(
            OVSDBClient.judge(
                row(model: "standalone", connected: false, leader: false, index: 1),
                highestIndex: &seen) == nil)
        #expect(seen == 10)
    }

    @Test func aMemberNotConnectedOrNotLeaderIsNotFit() {
        var seen: Int? = nil
        #expect(
            OVSDBClient.judge(row(connected: false), highestIndex: &seen)
                == "it is not connected to its cluster")
        #expect(
            OVSDBClient.judge(row(leader: false), highestIndex: &seen)
                == "it is not the cluster's leader")
        #expect(seen == nil)
    }

    @Test func aMemberBehindTheHighestIndexSeenIsStaleAndTheHighestIsKept() {
        var seen: Int? = nil
        #expect(OVSDBClient.judge(row(index: 40), highestIndex: &seen) == nil)
        #expect(seen == 40)
        #expect(
            OVSDBClient.judge(row(index: 39), highestIndex: &seen)
                == "its log index 39 is behind 40, which another member had")
        #expect(seen == 40)
        // Equal is not behind; a higher one raises the mark.
        #expect(OVSDBClient.judge(row(index: 40), highestIndex: &seen) == nil)
        #expect(OVSDBClient.judge(row(index: 57), highestIndex: &seen) == nil)
        #expect(seen == 57)
        #expect(OVSDBClient.judge(row(index: 41), highestIndex: &seen) != nil)
        // A row without an index says nothing about staleness.
        #expect(OVSDBClient.judge(row(), highestIndex: &seen) == nil)
        #expect(seen == 57)
    }
}
