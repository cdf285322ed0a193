import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import OVSDB

/// ovsdb-server 3.1.0's reply to `HardwareVTEP.monitorRequests` (request id 0), captured
/// byte for byte from its socket by Fixtures/capture-monitor-reply.sh: one physical switch
/// ps0 (tunnel IP 10.0.0.1) with port p0, VLAN 100 bound to ls0 (VNI 5001), a remote unicast
/// MAC behind 10.0.0.2, unknown-dst flooded to 10.0.0.3, and a local MAC. The Fixtures
/// directory is excluded from the test target and found from the source path.
private func cannedMonitorReply() throws -> [UInt8] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/monitor-reply.json")
    return Array(try Data(contentsOf: url))
}

@Suite struct HardwareVTEPTests {
    /// The canned reply, fed through the real pipeline in small reads.
    func replica() async throws -> Replica {
        let channel = EmbeddedChannel()
        let (_, continuation) = AsyncStream<JSONRPCInbound>.makeStream()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(JSONTextDecoder()))
        try channel.pipeline.syncOperations.addHandler(JSONRPCHandler(inbound: continuation))
        let promise = channel.eventLoop.makePromise(of: JSON.self)
        try channel.writeOutbound(
            OVSDBRequest(
                method: "monitor",
                params: [
                    "hardware_vtep", "vtep", MonitorRequest.json(HardwareVTEP.monitorRequests),
                ],
                promise: promise))
        let bytes = try cannedMonitorReply()
        for start in stride(from: 0, to: bytes.count, by: 97) {
            try channel.writeInbound(ByteBuffer(bytes: bytes[start..<min(start + 97, bytes.count)]))
        }
        let decoded = TableUpdates.decode(try await promise.futureResult.get())
        #expect(decoded.problems == [])
        var replica = Replica()
        replica.apply(decoded.updates)
        _ = try channel.finish()
        return replica
    }

    @Test func theCannedMonitorReplyDecodesIntoTheModel() async throws {
        let database = HardwareVTEP.Database(try await replica())
        #expect(database.problems == [])
        let uuid = { (text: String) in OVSDB.UUID(text)! }
        let ls0 = uuid("9a2a6248-e3e9-485c-b5d3-a13edf534cd2")
        #expect(
            database.logicalSwitches == [
                ls0: .init(
                    uuid: ls0, name: "ls0", description: "", tunnelKey: 5001, replicationMode: nil,
                    otherConfig: [:])
            ])
        let p0 = uuid("b6c9424f-5a9c-40f6-89ba-44f4bab1b7ad")
        #expect(
            database.physicalPorts == [
                p0: .init(uuid: p0, name: "p0", description: "", vlanBindings: [100: ls0])
            ])
        let ps0 = try #require(database.physicalSwitches.values.first)
        #expect(ps0.name == "ps0")
        #expect(ps0.tunnelIPs == ["10.0.0.1"])
        #expect(ps0.ports == [p0])

        let remote = uuid("76d85245-e913-41bf-847a-ccb9701fcd76")
        let locator2 = uuid("f906341b-c3f4-4c9e-ae64-cc559e43c422")
        #expect(
            database.ucastMacsRemote == [
                remote: .init(
                    uuid: remote, mac: "00:11:22:33:44:55", logicalSwitch: ls0, locator: locator2,
                    ipaddr: "")
            ])
        #expect(
            database.physicalLocators[locator2]
                == .init(uuid: locator2, dstIP: "10.0.0.2", encapsulationType: "vxlan_over_ipv4"))
        let mcast = try #require(database.mcastMacsRemote.values.first)
        #expect(mcast.mac == "unknown-dst")
        #expect(mcast.logicalSwitch == ls0)
        let set = try #require(database.physicalLocatorSets[mcast.locatorSet])
        #expect(set.locators == [uuid("3069c2b9-388e-41f6-8c1b-b5f0638990fd")])
        #expect(database.physicalLocators[set.locators[0]]?.dstIP == "10.0.0.3")
        let local = try #require(database.ucastMacsLocal.values.first)
        #expect(local.mac == "00:aa:bb:cc:dd:ee")
        #expect(database.physicalLocators[local.locator]?.dstIP == "10.0.0.1")
        #expect(database.logicalSwitch(named: "ls0")?.uuid == ls0)
        #expect(database.logicalSwitch(named: "ls1") == nil)
    }

    @Test func malformedRowsAreLeftOutWithAReason() async throws {
        var replica = try await replica()
        let ls0 = OVSDB.UUID("9a2a6248-e3e9-485c-b5d3-a13edf534cd2")!
        let p0 = OVSDB.UUID("b6c9424f-5a9c-40f6-89ba-44f4bab1b7ad")!
        let bad = OVSDB.UUID("00000000-0000-0000-0000-00000000000b")!
        replica.tables["Logical_Switch"]?[bad] = Row(["name": "x", "tunnel_key": "5001"])
        replica.tables["Physical_Port"]?[p0]?["vlan_bindings"] = .map([.integer(4096): .uuid(ls0)])
        replica.tables["Physical_Locator"]?[bad] = Row(["encapsulation_type": "vxlan_over_ipv4"])
        replica.tables["Logical_Switch"]?[ls0]?["other_config"] = .map([.string("k"): .integer(1)])
        replica.tables["Ucast_Macs_Remote"]?[bad] = Row([
            "MAC": "00:00:00:00:00:01", "logical_switch": .empty, "locator": .empty,
        ])
        let database = HardwareVTEP.Database(replica)
        #expect(
            database.problems.map(\.description).sorted() == [
                "hardware_vtep Logical_Switch row \(bad): "
                    + "column tunnel_key should be an integer, is \"5001\"",
                "hardware_vtep Logical_Switch row \(ls0): "
                    + "column other_config should map strings to strings, has \"k\"→1",
                "hardware_vtep Physical_Locator row \(bad): column dst_ip is missing",
                "hardware_vtep Physical_Port row \(p0): "
                    + "column vlan_bindings: 4096 is not a VLAN id (0–4095)",
                "hardware_vtep Ucast_Macs_Remote row \(bad): "
                    + "column logical_switch should be a UUID, is [\"set\",[]]",
            ])
        #expect(database.logicalSwitches.isEmpty)
        #expect(database.physicalPorts.isEmpty)
        #expect(database.physicalLocators.count == 3)
        #expect(database.ucastMacsRemote.count == 1)
    }
}
