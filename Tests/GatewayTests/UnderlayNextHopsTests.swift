import DataPlane
import Forwarding
import Glibc
import Packet
import SwitchControl
import Synchronization
import Testing

@testable import Gateway

/// The next-hop rounds with the netlink lookups and the data plane replaced by fakes: what
/// reaches the data plane, the log and `show configuration`, and when.
@Suite struct UnderlayNextHopsTests {
    static let a = Locator(IPAddress("192.0.2.1")!)
    static let b = Locator(IPAddress("192.0.2.2")!)
    static let group = Locator(IPAddress("239.1.1.1")!)
    static let hop = NextHop(destination: MACAddress("02:00:00:00:00:01")!)

    /// What the fakes answer and were asked.
    final class Fakes: Sendable {
        let outcome = Mutex(NextHopResolver.Outcome())
        let asked = Mutex<[[Locator]]>([])
        let applied = Mutex<[[Locator: NextHop]]>([])
        let discovered = Mutex<[Locator]>([])
    }

    func make(_ fakes: Fakes, _ log: LogCapture) -> UnderlayNextHops {
        UnderlayNextHops(
            patience: .seconds(3), logger: log.logger("vtepd.dataplane"),
            resolve: { wanted in
                fakes.asked.withLock { $0.append(wanted) }
                return fakes.outcome.withLock { $0 }
            },
            discovered: { fakes.discovered.withLock { $0 } },
            apply: { hops in fakes.applied.withLock { $0.append(hops) } })
    }

    @Test func asksForTheSnapshotsLocatorsAndTheDiscoveredOnes() async {
        let fakes = Fakes()
        let nextHops = make(fakes, LogCapture())
        var snapshot = GatewaySnapshot(physicalSwitch: "ps", locators: [Self.a])
        snapshot.switches = [
            LogicalSwitch(
                name: "ls", vni: VNI(rawValue: 5001)!, replication: .multicast(Self.group))
        ]
        nextHops.set(snapshot)
        fakes.discovered.withLock { $0 = [Self.b] }
        await nextHops.round()
        #expect(fakes.asked.withLock { $0 } == [[Self.a, Self.group, Self.b]])
    }

    @Test func handsOverNextHopsOnlyWhenTheyChange() async {
        let fakes = Fakes()
        let nextHops = make(fakes, LogCapture())
        fakes.outcome.withLock { $0 = .init(hops: [Self.a: Self.hop]) }
        await nextHops.round()
        await nextHops.round()
        fakes.outcome.withLock { $0 = .init() }
        await nextHops.round()
        #expect(fakes.applied.withLock { $0 } == [[Self.a: Self.hop], [:]])
    }

    @Test func aRouteElsewhereIsAProblemAndAWarningAtOnce() async {
        let fakes = Fakes()
        let log = LogCapture()
        let nextHops = make(fakes, log)
        fakes.outcome.withLock { $0 = .init(unresolved: [Self.a: .routedVia(interface: "eth9")]) }
        let t0 = ContinuousClock.now
        #expect(await nextHops.round(now: t0))
        #expect(
            nextHops.problems(now: t0) == [
                "next hop of VTEP 192.0.2.1 (vxlan) unresolved: routed via eth9, not the underlay"
                    + " interface; its frames take the kernel's path"
            ])
        #expect(
            log.lines == [
                "<4>vtepd.dataplane: next hop of VTEP 192.0.2.1 unresolved: routed via eth9, not"
                    + " the underlay interface"
            ])
        // Resolved: the problem clears, a notice says so.
        log.clear()
        fakes.outcome.withLock { $0 = .init(hops: [Self.a: Self.hop]) }
        #expect(!(await nextHops.round(now: t0 + .seconds(1))))
        #expect(nextHops.problems(now: t0 + .seconds(1)) == [])
        #expect(log.lines == ["<5>vtepd.dataplane: next hop of VTEP 192.0.2.1 resolved"])
    }

    @Test func aNeighbourAskedForIsAProblemOnlyAfterThePatience() async {
        let fakes = Fakes()
        let log = LogCapture()
        let nextHops = make(fakes, log)
        let gateway = IPAddress("192.0.2.254")!
        fakes.outcome.withLock { $0 = .init(unresolved: [Self.a: .awaitingNeighbour(gateway)]) }
        let t0 = ContinuousClock.now
        await nextHops.round(now: t0)
        #expect(nextHops.problems(now: t0 + .seconds(2)) == [])
        #expect(
            log.lines == [
                "<7>vtepd.dataplane: next hop of VTEP 192.0.2.1: no neighbour entry for next hop"
                    + " 192.0.2.254 yet (ARP/ND asked)"
            ])
        await nextHops.round(now: t0 + .seconds(3))
        #expect(nextHops.problems(now: t0 + .seconds(3)).count == 1)
        #expect(log.lines.count == 2)
        #expect(
            log.lines.last?.hasPrefix("<4>vtepd.dataplane: next hop of VTEP 192.0.2.1 unresolved")
                == true)
        // Reported once, not at every round.
        await nextHops.round(now: t0 + .seconds(4))
        #expect(log.lines.count == 2)
    }
}

/// The control side of data-plane I/O errors, with the worker's counter faked.
@Suite struct DataPlaneIOErrorsTests {
    final class Worker: Sendable {
        let state = Mutex<(count: UInt64, last: DataPlaneIOError?)>((0, nil))
    }

    @Test func loggedRateLimitedWithTheErrnoAndAProblemWhileRecent() async {
        let worker = Worker()
        let log = LogCapture()
        let errors = DataPlaneIOErrors(
            limiter: .init(interval: .seconds(10)), recent: .seconds(60),
            logger: log.logger("vtepd.dataplane"), read: { worker.state.withLock { $0 } })
        let t0 = ContinuousClock.now
        await errors.round(now: t0)
        #expect(log.lines == [] && errors.problems(now: t0) == [])

        let enobufs = DataPlaneIOError(operation: .underlaySend, errno: ENOBUFS)
        worker.state.withLock { $0 = (500, enobufs) }
        await errors.round(now: t0 + .seconds(1))
        #expect(
            log.lines == [
                "<3>vtepd.dataplane: data-plane I/O error: send on the underlay: No buffer space"
                    + " available (errno 105) failures=500 io_error=500"
            ])
        #expect(
            errors.problems(now: t0 + .seconds(1)) == [
                "data-plane I/O errors: 500 so far (counter io_error); the last: send on the"
                    + " underlay: No buffer space available (errno 105)"
            ])
        // More within the interval: held back; counted in the next line.
        worker.state.withLock { $0 = (700, enobufs) }
        await errors.round(now: t0 + .seconds(2))
        #expect(log.lines.count == 1)
        await errors.round(now: t0 + .seconds(11))
        #expect(log.lines.count == 2)
        #expect(log.lines.last?.hasSuffix("failures=200 io_error=700") == true)
        // Quiet for a minute: no longer a problem.
        #expect(errors.problems(now: t0 + .seconds(62)) == [])
    }
}
