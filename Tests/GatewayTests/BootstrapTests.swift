import ControlAPI
import Foundation
import HostConfiguration
import OVSDB
import Packet
import TestSupport
import Testing

@testable import DataPlane
@testable import Gateway
@testable import ProcessSpawning
@testable import SwitchControl

/// Bootstrap against a real ovsdb-server; vtep-ctl reads what it wrote.
@Suite(.serialized, .timeLimit(.minutes(1))) struct BootstrapTests {
    func bootstrap(
        _ ports: [String], ips: [String] = ["10.0.0.1"], description: String? = nil
    ) throws -> Bootstrap {
        try Bootstrap(
            physicalSwitch: "ps0", tunnelIPs: ips.map { IPAddress($0)! }, ports: ports,
            description: description)
    }

    @Test func createsTheSwitchAndPortsOnAFreshDatabase() async throws {
        try await withServer { fixture in
            let client = try await fixture.connectedClient()
            let outcome = try await bootstrap(["p0", "p1"], description: "gw").run(on: client)
            #expect(outcome.createdSwitch)
            #expect(outcome.addedPorts == ["p0", "p1"])
            #expect(outcome.portsNotConfigured == [])
            #expect(try await fixture.vtepCtl("list-ps") == "ps0\n")
            #expect(try await fixture.vtepCtl("list-ports", "ps0") == "p0\np1\n")
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "ps0", "tunnel_ips")
                    == "[\"10.0.0.1\"]\n")
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "ps0", "description")
                    == "gw\n")
            await client.stop()
        }
    }

    @Test func isIdempotent() async throws {
        try await withServer { fixture in
            let client = try await fixture.connectedClient()
            let settings = try bootstrap(["p0", "p1"])
            _ = try await settings.run(on: client)
            let second = try await settings.run(on: client)
            #expect(!second.changed)
            #expect(second.addedPorts == [] && !second.createdSwitch)
            #expect(try await fixture.vtepCtl("list-ports", "ps0") == "p0\np1\n")
            let rows = try await fixture.vtepCtl("--columns=name", "list", "Physical_Port")
            #expect(rows.split(separator: "\n").filter { !$0.isEmpty }.count == 2)
            await client.stop()
        }
    }

    @Test func keepsBindingsOtherSwitchesAndReportsPortsLeftBehind() async throws {
        try await withServer { fixture in
            // vtep-ctl made the switch (and the Global row) first, and bound a port.
            try await fixture.vtepCtl("add-ps", "ps0")
            try await fixture.vtepCtl("add-port", "ps0", "p0")
            try await fixture.vtepCtl("add-ls", "ls0")
            try await fixture.vtepCtl("bind-ls", "ps0", "p0", "100", "ls0")
            try await fixture.vtepCtl("add-ps", "other")
            try await fixture.vtepCtl("add-port", "other", "p9")
            try await fixture.vtepCtl("set", "Physical_Switch", "other", "tunnel_ips=192.0.2.1")

            let client = try await fixture.connectedClient()
            let outcome = try await bootstrap(["p1", "p2"], ips: ["10.0.0.1", "2001:db8::1"])
                .run(on: client)
            #expect(!outcome.createdSwitch)
            #expect(outcome.updatedTunnelIPs)
            #expect(outcome.addedPorts == ["p1", "p2"])
            #expect(outcome.portsNotConfigured == ["p0"])
            #expect(
                outcome.problems(physicalSwitch: "ps0") == [
                    "Physical_Port p0 of Physical_Switch ps0 is in the database but not on vtepd's"
                        + " command line; it is left as is (vtep-ctl del-port ps0 p0 removes it)"
                ])
            #expect(try await fixture.vtepCtl("list-ports", "ps0") == "p0\np1\np2\n")
            #expect(try await fixture.vtepCtl("list-bindings", "ps0", "p0") == "0100 ls0\n")
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "ps0", "tunnel_ips")
                    == "[\"10.0.0.1\", \"2001:db8::1\"]\n")
            #expect(try await fixture.vtepCtl("list-ps") == "other\nps0\n")
            #expect(try await fixture.vtepCtl("list-ports", "other") == "p9\n")
            #expect(
                try await fixture.vtepCtl("get", "Physical_Switch", "other", "tunnel_ips")
                    == "[\"192.0.2.1\"]\n")
            await client.stop()
        }
    }

    @Test func concurrentRunsNeverDuplicate() async throws {
        try await withServer { fixture in
            let a = try await fixture.connectedClient()
            let b = try await fixture.connectedClient()
            let settings = try bootstrap(["p0", "p1", "p2"])
            for _ in 0..<3 {
                async let first = settings.run(on: a)
                async let second = settings.run(on: b)
                let outcomes = try await [first, second]
                #expect(outcomes.filter(\.createdSwitch).count <= 1)
            }
            #expect(try await fixture.vtepCtl("list-ps") == "ps0\n")
            #expect(try await fixture.vtepCtl("list-ports", "ps0") == "p0\np1\np2\n")
            let rows = try await fixture.vtepCtl("--columns=name", "list", "Physical_Port")
            #expect(rows.split(separator: "\n").filter { !$0.isEmpty }.count == 3)
            let globals = try await fixture.vtepCtl("--columns=_uuid", "list", "Global")
            #expect(globals.split(separator: "\n").filter { !$0.isEmpty }.count == 1)
            await a.stop()
            await b.stop()
        }
    }

    @Test func guardsMakeALostRaceFailWhole() throws {
        // Planned against a state read before another writer added p1: the wait on `ports`
        // must be there so the server refuses the stale plan instead of duplicating p1.
        let settings = try bootstrap(["p0", "p1"])
        let ps = UUID("00000001-0000-4000-8000-000000000000")!
        let p0 = UUID("00000002-0000-4000-8000-000000000000")!
        let state = Bootstrap.State(
            global: UUID("00000003-0000-4000-8000-000000000000")!,
            ourSwitch: .init(uuid: ps, tunnelIPs: ["10.0.0.1"], description: "", ports: [p0]),
            portNames: [p0: "p0"])
        let (operations, outcome) = settings.plan(state)
        #expect(outcome.addedPorts == ["p1"])
        #expect(
            operations.first
                == .wait(
                    table: "Physical_Switch", where: [Condition("_uuid", "==", .atom(.uuid(ps)))],
                    columns: ["ports"], until: "==", rows: [Row(["ports": .set([.uuid(p0)])])],
                    timeout: 0))
        #expect(operations.count == 4)  // wait, insert port, mutate ports, comment

        // Nothing to do: nothing written, not even a guard.
        let done = Bootstrap.State(
            global: state.global,
            ourSwitch: .init(
                uuid: ps, tunnelIPs: ["10.0.0.1"], description: "", ports: [p0, ps]),
            portNames: [p0: "p0", ps: "p1"])
        #expect(settings.plan(done).0 == [])
    }

    @Test func operatorInputIsChecked() {
        #expect(throws: BootstrapError.self) {
            try Bootstrap(physicalSwitch: "ps 0", tunnelIPs: [IPAddress("10.0.0.1")!], ports: [])
        }
        #expect(
            throws: BootstrapError.invalidSettings(
                "no tunnel IP given: vtepd needs at least one VTEP address")
        ) {
            try Bootstrap(physicalSwitch: "ps0", tunnelIPs: [], ports: [])
        }
        #expect(throws: BootstrapError.invalidSettings("port p0 is listed twice")) {
            try Bootstrap(
                physicalSwitch: "ps0", tunnelIPs: [IPAddress("10.0.0.1")!], ports: ["p0", "p0"])
        }
        #expect(
            throws: BootstrapError.invalidSettings(
                "239.1.1.1 (locator) is not a unicast address and cannot be a VTEP")
        ) {
            try Bootstrap(physicalSwitch: "ps0", tunnelIPs: [IPAddress("239.1.1.1")!], ports: [])
        }
    }
}
