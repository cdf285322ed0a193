import DataPlane
import Testing

/// When the worker leaves the real-time scheduler and takes it back (`RealtimeBudget`), on a
/// made-up clock: after 2 ms busy without an idle poll, and at the next idle poll.
@Suite struct RealtimeBudgetTests {
    static let ms: UInt64 = 1_000_000

    @Test func busyBeyondTheBudgetLeavesAndTheNextIdlePollResumes() {
        var budget = RealtimeBudget(priority: 1)
        #expect(budget.realtime)
        // A stretch starts at the first busy poll after an idle one (the sleep before it
        // does not count).
        #expect(budget.polled(ready: false, clock: 0) == .none)
        #expect(budget.polled(ready: true, clock: 500 * Self.ms) == .none)
        #expect(budget.polled(ready: true, clock: 501 * Self.ms) == .none)
        #expect(budget.polled(ready: true, clock: 502 * Self.ms) == .none, "exactly 2 ms: within")
        #expect(budget.polled(ready: true, clock: 502 * Self.ms + 1) == .leave)
        #expect(!budget.realtime)
        // Still busy: nothing more to do, however long it lasts.
        #expect(budget.polled(ready: true, clock: 900 * Self.ms) == .none)
        // The first idle poll takes the real-time scheduler back, once.
        #expect(budget.polled(ready: false, clock: 901 * Self.ms) == .resume)
        #expect(budget.realtime)
        #expect(budget.polled(ready: false, clock: 902 * Self.ms) == .none)
    }

    @Test func idleMomentsWithinTheBudgetKeepItRealtime() {
        var budget = RealtimeBudget(priority: 5)
        var clock: UInt64 = 0
        // Busy 1.5 ms, then one idle poll, a thousand times: never overloaded.
        for _ in 0..<1000 {
            #expect(budget.polled(ready: true, clock: clock) == .none)
            #expect(budget.polled(ready: true, clock: clock + 3 * Self.ms / 2) == .none)
            #expect(budget.polled(ready: false, clock: clock + 3 * Self.ms / 2 + 1) == .none)
            clock += 2 * Self.ms
        }
        #expect(budget.realtime)
    }

    @Test func priorityZeroNeverActsAndARefusalKeepsThePolicyAsItWas() {
        var normal = RealtimeBudget(priority: 0)
        #expect(!normal.realtime)
        #expect(normal.polled(ready: false, clock: 0) == .none)
        #expect(normal.polled(ready: true, clock: 1) == .none)
        #expect(normal.polled(ready: true, clock: 10 * Self.ms) == .none)

        var budget = RealtimeBudget(priority: 1)
        _ = budget.polled(ready: true, clock: 0)
        _ = budget.polled(ready: true, clock: 1)
        #expect(budget.polled(ready: true, clock: 3 * Self.ms) == .leave)
        budget.refused(.leave)
        #expect(budget.realtime, "the kernel refused: still under SCHED_FIFO")
        // Asked again while the stretch lasts.
        #expect(budget.polled(ready: true, clock: 4 * Self.ms) == .leave)
        #expect(budget.polled(ready: false, clock: 5 * Self.ms) == .resume)
        budget.refused(.resume)
        #expect(!budget.realtime)
        #expect(budget.polled(ready: false, clock: 6 * Self.ms) == .resume, "tried again")
    }
}
