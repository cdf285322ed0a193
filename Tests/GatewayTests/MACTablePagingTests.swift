import ControlAPI
import DataPlane
import Forwarding
import Foundation
import Gateway
import Packet
import TestSupport
import Testing

/// `show switch mac-table` through vtepd's own handler and control socket, over a data plane
/// whose worker runs: 30,000 entries (about 4 MB as one response, four times the line a client
/// reads) come a page at a time, every one once and in (switch name, MAC) order; an old
/// client's unpaged request is refused in words; the switch and MAC filters still work.
///
/// The test asserts what is listed, not how fast: a loaded machine (the whole suite in
/// parallel) once kept a page from answering within the client's default 10 s, so it waits
/// up to a minute a page.
@Suite(.serialized, .timeLimit(.minutes(3))) struct MACTablePagingTests {
    @Test func thirtyThousandEntriesComeInPagesThroughTheControlSocket() async throws {
        let plane = try ControlHandlerTests.idleDataPlane(tag: "mp")
        plane.start()
        let controller = GatewayController(dataPlane: plane)
        let path = NSTemporaryDirectory() + "vtep-mp-\(getpid()).ctl"
        let server = try await ControlServer.start(at: path, group: nil, handler: controller)
        do {
            // "web" has index 0 and "db" 1: listed by name, db comes first.
            _ = try plane.apply(
                { _ in
                    try ForwardingConfiguration(
                        switches: [
                            LogicalSwitch(name: "web", vni: try VNI(validating: 100)),
                            LogicalSwitch(name: "db", vni: try VNI(validating: 200)),
                        ], ports: ["eth1"], bindings: [])
                }, statics: [])
            var random = SplitMix64(seed: 30)
            let macs = (0..<15_000).map { _ in
                MACAddress(
                    rawValue: UInt64.random(in: 0..<(1 << 48), using: &random) & ~0x0100_0000_0000)
            }
            let learned = await plane.inspect { worker in
                let now = worker.secondsNow
                var n = 0
                for (i, mac) in macs.enumerated() {
                    for sw in [SwitchIndex(rawValue: 0), SwitchIndex(rawValue: 1)] {
                        let location: MACLocation =
                            i % 2 == 0
                            ? .local(port: PortIndex(rawValue: 0), vlan: nil)
                            : .remote(LocatorIndex(rawValue: 1))
                        if worker.macTable.learn(mac, on: sw, at: location, now: now) == .learned {
                            n += 1
                        }
                    }
                }
                return n
            }
            #expect(learned == 30_000)

            let client = try await ControlClient.connect(to: path)
            let rows = try await client.macTable(timeout: .seconds(60))
            #expect(rows.count == 30_000)
            let sortedMACs = macs.map(\.description).sorted()
            #expect(
                rows.map(\.logicalSwitch) == Array(repeating: "db", count: 15_000)
                    + Array(repeating: "web", count: 15_000))
            #expect(rows.map(\.mac) == sortedMACs + sortedMACs)
            #expect(rows.first { $0.type == .local }?.port == "eth1")

            // An old client, unpaged: refused, in words, not a line too long to read.
            await #expect(
                throws: ControlClientError.refused(
                    command: "mac-table",
                    message: "the MAC table holds more than 4096 entries, more than one response"
                        + " carries: ask for it a page at a time (limit, afterSwitch, afterMAC),"
                        + " as vtepsh does")
            ) {
                _ = try await client.send(ShowMACTable())
            }
            let web = try await client.macTable(ShowMACTable(logicalSwitch: "web"))
            #expect(web.count == 15_000 && web.allSatisfy { $0.logicalSwitch == "web" })
            let one = try await client.macTable(ShowMACTable(mac: macs[7]))
            #expect(one.map(\.logicalSwitch) == ["db", "web"])
            // A page after "db" and the last MAC: web's first.
            let page = try await client.macTable(
                ShowMACTable(limit: 2, after: ("db", MACAddress(sortedMACs.last!)!)))
            #expect(page.map(\.mac) == Array(sortedMACs.prefix(2)))
            #expect(page.map(\.logicalSwitch) == ["web", "web"])
            await client.close()
        } catch {
            await server.stop()
            await plane.stop()
            throw error
        }
        await server.stop()
        await plane.stop()
    }
}

/// What the local-MAC publisher asks each second (`GatewayController.localMACs`): a pass over
/// the MAC table only when a local entry changed, a configuration was applied or a listed MAC
/// may have expired; otherwise the last pass's answer, at the cost of one short look.
@Suite(.serialized, .timeLimit(.minutes(2))) struct LocalMACPassTests {
    @Test func aPassOnlyWhenTheLocalMACsMayDiffer() async throws {
        let plane = try ControlHandlerTests.idleDataPlane(tag: "lm")
        plane.start()
        let controller = GatewayController(dataPlane: plane)
        _ = try plane.apply(
            { _ in
                try ForwardingConfiguration(
                    switches: [LogicalSwitch(name: "web", vni: try VNI(validating: 100))],
                    ports: ["eth1"], bindings: [])
            }, statics: [])
        let local = MACLocation.local(port: PortIndex(rawValue: 0), vlan: nil)
        func learn(_ mac: UInt64, at location: MACLocation, ago: UInt32 = 0) async {
            _ = await plane.inspect { worker in
                worker.macTable.learn(
                    MACAddress(rawValue: mac), on: SwitchIndex(rawValue: 0), at: location,
                    now: worker.secondsNow &- ago)
            }
        }
        func listed() async -> [String] {
            await controller.localMACs()["web"].map { $0.map(\.description) } ?? ["no switch"]
        }
        let a = MACAddress(rawValue: 0x02_00_00_00_00_0a).description
        let b = MACAddress(rawValue: 0x02_00_00_00_00_0b).description

        #expect(await listed() == [])
        #expect(await listed() == [])
        #expect(controller.localMACPasses == 1, "nothing changed: no second pass")
        await learn(0x02_00_00_00_00_0a, at: local)
        #expect(await listed() == [a])
        #expect(controller.localMACPasses == 2)
        // Seen again, and a remote MAC learned: the local MACs are the same, no pass.
        await learn(0x02_00_00_00_00_0a, at: local)
        await learn(0x02_00_00_00_00_0c, at: .remote(LocatorIndex(rawValue: 1)))
        #expect(await listed() == [a])
        #expect(controller.localMACPasses == 2)
        // A local MAC moving to a tunnel is a change.
        await learn(0x02_00_00_00_00_0a, at: .remote(LocatorIndex(rawValue: 1)))
        #expect(await listed() == [])
        #expect(controller.localMACPasses == 3)
        // One seen 296 of its 300 seconds ago expires within five seconds without any change
        // to the table: the pass that listed it knew when; the answers given again until then
        // list it, and the first call after that makes a pass, which does not.
        await learn(0x02_00_00_00_00_0b, at: local, ago: MACTable.defaultAgeing - 4)
        #expect(await listed() == [b])
        #expect(controller.localMACPasses == 4)
        let deadline = ContinuousClock.now + .seconds(15)
        var last = [b]
        while last == [b], ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            last = await listed()
        }
        #expect(last == [], "the MAC seen 296 s ago still listed after 15 s")
        #expect(controller.localMACPasses == 5, "one pass, at the expiry")
        // A configuration applied is a change too.
        _ = try plane.apply({ last in last! }, statics: [])
        #expect(await listed() == [])
        #expect(controller.localMACPasses == 6)
        await plane.stop()
    }
}
