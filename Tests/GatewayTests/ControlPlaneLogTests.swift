import OVSDB
import Packet
import Testing

@testable import Gateway
@testable import SwitchControl

/// What the control plane tells the log and `show configuration` about the database, event
/// by event, without a server (the lab tests do it against a real one).
@Suite struct ControlPlaneLogTests {
    func plane(_ log: LogCapture) throws -> ControlPlane {
        ControlPlane(
            remote: .unix(path: "/run/gw-test-none/db.sock"),
            bootstrap: try Bootstrap(
                physicalSwitch: "ps0", tunnelIPs: [IPAddress("192.0.2.1")!], ports: []),
            logger: log.logger("vtepd.database")
        ) { _ in }
    }

    @Test func aDatabaseNeverReachedIsOneErrorAndAProblem() async throws {
        let log = LogCapture()
        let plane = try plane(log)
        await plane.handle(.disconnected(reason: "connection refused"))
        await plane.handle(.disconnected(reason: "connection refused"))
        #expect(log.lines.count == 2)
        #expect(
            log.lines.first
                == "<3>vtepd.database: cannot reach the hardware_vtep database, retrying"
                + " database=unix:/run/gw-test-none/db.sock reason=\"connection refused\"")
        #expect(log.lines.last?.hasPrefix("<7>vtepd.database: reconnecting failed") == true)
        #expect(await plane.connectionProblems.count == 1)
    }

    @Test func aLostDatabaseIsOneErrorAndAProblemUntilFound() async throws {
        let log = LogCapture()
        let plane = try plane(log)
        await plane.handle(.synchronized(Replica()))
        log.clear()
        await plane.handle(.disconnected(reason: "connection refused"))
        await plane.handle(.disconnected(reason: "connection refused"))
        #expect(
            log.lines == [
                "<3>vtepd.database: lost the hardware_vtep database, reconnecting; forwarding"
                    + " continues on the last configuration database=unix:/run/gw-test-none/db.sock"
                    + " reason=\"connection refused\"",
                "<7>vtepd.database: reconnecting failed database=unix:/run/gw-test-none/db.sock"
                    + " reason=\"connection refused\"",
            ])
        // (Its bootstrap failed too, without a server: a problem of its own.)
        let problems = await plane.connectionProblems.filter { $0.contains("is unreachable") }
        #expect(problems.count == 1)
        #expect(
            problems.first?.hasPrefix(
                "the hardware_vtep database unix:/run/gw-test-none/db.sock is unreachable since")
                == true)
        #expect(problems.first?.contains("(connection refused)") == true)

        log.clear()
        await plane.handle(.synchronized(Replica()))
        #expect(
            log.lines.first?.hasPrefix("<5>vtepd.database: found the hardware_vtep database again")
                == true)
        #expect(await plane.connectionProblems.filter { $0.contains("unreachable") } == [])
    }

    @Test func malformedRowsAreCountedAndLoggedRateLimited() async throws {
        let log = LogCapture()
        let plane = try plane(log)
        for i in 1...3 { await plane.handle(.dropped(reason: "row \(i) malformed")) }
        #expect(log.lines.count == 1)
        #expect(log.lines.first?.hasPrefix("<4>vtepd.database: left out malformed") == true)
        #expect(
            await plane.connectionProblems == [
                "3 malformed message(s) or row(s) from the hardware_vtep database were left out;"
                    + " the last: row 3 malformed"
            ])
    }
}

/// The snapshot's problems reach the log once each, when they appear.
@Suite struct SnapshotProblemsTests {
    @Test func eachProblemIsAWarningOnceWhenItAppears() {
        let log = LogCapture()
        let problems = SnapshotProblems(logger: log.logger("vtepd.switch", level: .info))
        problems.note(GatewaySnapshot(physicalSwitch: "ps0", problems: ["a", "b"]))
        problems.note(GatewaySnapshot(physicalSwitch: "ps0", problems: ["a", "b"]))
        problems.note(GatewaySnapshot(physicalSwitch: "ps0", problems: ["b", "c"]))
        // Gone and back: it began again.
        problems.note(GatewaySnapshot(physicalSwitch: "ps0", problems: ["a", "b", "c"]))
        #expect(
            log.lines == [
                "<4>vtepd.switch: a", "<4>vtepd.switch: b", "<4>vtepd.switch: c",
                "<4>vtepd.switch: a",
            ])
    }
}
