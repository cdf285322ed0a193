// Waiting for something that happens asynchronously, shared by the test targets (test support,
// not shipped).
//
// A test never asserts how fast something happens (a loaded CI machine would fail it for the
// wrong reason): the timeout only bounds a test that would otherwise hang, so it is generous.
// Checks start every few milliseconds and slow down to every 100 ms, so a quick condition is
// seen quickly and one that runs a program (vtep-ctl, tshark) does not load shared CPUs.

import Foundation

/// A condition that did not come true in time: what a test waited for, how long, where, and
/// what it last saw.
public struct WaitTimedOut: Error, CustomStringConvertible {
    public let what: String
    public let waited: Duration
    public let lastSeen: String
    /// Where the test waited: file and line.
    public let place: String

    public var description: String {
        let seconds =
            Double(waited.components.seconds)
            + Double(waited.components.attoseconds) / 1e18
        return "timed out after \(String(format: "%.1f", seconds)) s waiting for \(what) (\(place))"
            + (lastSeen.isEmpty ? "" : ":\n\(lastSeen)")
    }
}

/// How often `waitUntil` checks: quickly at first, then every 100 ms.
private struct Pacing {
    private var pause: Duration = .milliseconds(5)

    mutating func next() -> Duration {
        defer { pause = min(pause * 2, .milliseconds(100)) }
        return pause
    }
}

/// Waits until `probe` returns a value and returns it; throws `WaitTimedOut` naming `what`
/// after `timeout`, with `lastSeen` (evaluated only then) to show the state that was not good
/// enough. An error `probe` throws ends the wait at once (a process that died, say).
///
/// It blocks its thread (lab bodies run on threads of their own). Disfavoured and unavailable
/// in async code, so that there the async form below is chosen even for a closure that does
/// not await: blocking one of the cooperative pool's threads (two here) would starve what the
/// test waits for.
@_disfavoredOverload
@available(*, noasync, message: "in async code, use the async waitUntil")
@discardableResult
public func waitUntil<Value>(
    _ what: String, timeout: Duration = .seconds(30),
    lastSeen: @autoclosure () throws -> String = "",
    fileID: String = #fileID, line: Int = #line, _ probe: () throws -> Value?
) throws -> Value {
    let start = ContinuousClock.now
    var pacing = Pacing()
    while true {
        if let value = try probe() { return value }
        let waited = ContinuousClock.now - start
        guard waited < timeout else {
            throw WaitTimedOut(
                what: what, waited: waited, lastSeen: (try? lastSeen()) ?? "",
                place: "\(fileID):\(line)")
        }
        let pause = pacing.next()
        Thread.sleep(
            forTimeInterval: Double(pause.components.attoseconds) / 1e18
                + Double(pause.components.seconds))
    }
}

/// Waits until `condition` holds; see `waitUntil(_:timeout:lastSeen:_:)` above.
@_disfavoredOverload
@available(*, noasync, message: "in async code, use the async waitUntil")
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(30),
    lastSeen: @autoclosure () throws -> String = "",
    fileID: String = #fileID, line: Int = #line, _ condition: () throws -> Bool
) throws {
    try waitUntil(
        what, timeout: timeout, lastSeen: try lastSeen(), fileID: fileID, line: line
    ) { try condition() ? () : nil }
}

/// The same wait for async tests: `probe` may await, and the pause does not block a thread
/// of the cooperative pool.
@discardableResult
public func waitUntil<Value>(
    _ what: String, timeout: Duration = .seconds(30),
    lastSeen: @autoclosure () throws -> String = "",
    fileID: String = #fileID, line: Int = #line, _ probe: () async throws -> Value?
) async throws -> Value {
    let start = ContinuousClock.now
    var pacing = Pacing()
    while true {
        if let value = try await probe() { return value }
        let waited = ContinuousClock.now - start
        guard waited < timeout else {
            throw WaitTimedOut(
                what: what, waited: waited, lastSeen: (try? lastSeen()) ?? "",
                place: "\(fileID):\(line)")
        }
        try await Task.sleep(for: pacing.next())
    }
}

/// Waits until `condition` holds, for async tests.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(30),
    lastSeen: @autoclosure () throws -> String = "",
    fileID: String = #fileID, line: Int = #line, _ condition: () async throws -> Bool
) async throws {
    try await waitUntil(
        what, timeout: timeout, lastSeen: try lastSeen(), fileID: fileID, line: line
    ) { try await condition() ? () : nil }
}
