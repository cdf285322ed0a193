import DataPlane
import Datapath
import Forwarding
import Packet
import Testing

/// Internal ports (logical routers' veths) added to and removed from a running worker: they
/// forward from the batch after, keep the other ports' slots and counters, and refuse a
/// duplicate or a port beyond the limit.
@Suite struct InternalPortTests {
    static let router = MACAddress(0x02, 0, 0, 0, 0, 0x0C)

    /// Ports eth0 and eth1 given at start; the configuration also binds router port `lr1` to
    /// switch "web" (vtepd applies it before the port is open, as it does).
    static func rig(internalPortLimit: Int = 4) throws -> (
        DataPlaneWorker<MemoryIO>, DataPlanePorts<MemoryIO>
    ) {
        var settings = DataPlaneSettings(
            underlay: "mem0", localIPv4: IPv4Address("10.0.0.1")!, localIPv6: nil)
        settings.internalPortLimit = internalPortLimit
        let io = DataPlanePorts<MemoryIO>.inMemory(
            settings: settings, access: ["eth0", "eth1"], underlayMAC: Rig.underlayMAC)
        let worker = try DataPlaneWorker(settings: settings, io: io)
        worker.apply(
            try ForwardingConfiguration(
                switches: [
                    LogicalSwitch(
                        name: "web", vni: try VNI(validating: 5000),
                        replication: .headEnd([Rig.vtep]))
                ],
                ports: ["eth0", "eth1", "lr1"],
                bindings: [
                    Binding(port: "eth0", vlan: nil, logicalSwitch: "web"),
                    Binding(port: "lr1", vlan: nil, logicalSwitch: "web"),
                ]), [])
        return (worker, io)
    }

    @Test func anAddedPortForwardsBothWaysAndIsCounted() throws {
        let (worker, io) = try Self.rig()
        let lr1 = MemoryPort(name: "lr1")
        // A flood before the port is open reaches eth0's peers only.
        io.access[0].inject(Frames.udp(from: Rig.hostA, to: Self.router, sourcePort: 1))
        worker.serviceAll(now: 1)
        #expect(worker.portNames == ["eth0", "eth1"])

        try worker.addPort(lr1)
        #expect(worker.portNames == ["eth0", "eth1", "lr1"])
        io.access[0].inject(Frames.udp(from: Rig.hostA, to: Self.router, sourcePort: 2))
        worker.serviceAll(now: 2)
        #expect(lr1.takeSent().count == 1, "the flood reaches the router port")
        // The router answers host A, which was learned behind eth0: one copy, to eth0.
        _ = io.access[0].takeSent()
        let reply = Frames.udp(from: Self.router, to: Rig.hostA, sourcePort: 3)
        lr1.inject(reply)
        worker.serviceAll(now: 2)
        #expect(io.access[0].takeSent().map(\.bytes) == [reply])
        let counters = worker.counters().ports.first { $0.name == "lr1" }
        #expect(counters?.rxFrames == 1)
        #expect(counters?.txFrames == 1)
    }

    @Test func removingAPortKeepsTheOthersSlotsAndCounters() throws {
        let (worker, io) = try Self.rig()
        let lr1 = MemoryPort(name: "lr1")
        try worker.addPort(lr1)
        io.access[1].inject(Frames.udp(from: Rig.remoteHost, to: Rig.hostA, sourcePort: 1))
        worker.serviceAll(now: 1)
        let eth1Before = worker.counters().ports.first { $0.name == "eth1" }?.rxFrames
        #expect(eth1Before == 1)

        // eth0's slot goes; the last port (lr1) takes it and keeps working.
        #expect(worker.removePort(named: "eth0") === io.access[0])
        #expect(worker.removePort(named: "eth0") == nil)
        #expect(worker.portNames == ["lr1", "eth1"])
        #expect(worker.counters().ports.first { $0.name == "eth1" }?.rxFrames == eth1Before)
        _ = lr1.takeSent()
        lr1.inject(Frames.udp(from: Self.router, to: Rig.remoteHost, sourcePort: 2))
        worker.serviceAll(now: 2)
        #expect(worker.counters().ports.first { $0.name == "lr1" }?.rxFrames == 1)
        // Removed: a frame queued on it is never read.
        #expect(worker.removePort(named: "lr1") === lr1)
        lr1.inject(Frames.udp(from: Self.router, to: Rig.remoteHost, sourcePort: 3))
        worker.serviceAll(now: 3)
        #expect(worker.portNames == ["eth1"])
        #expect(worker.counters().ports.map(\.name) == ["eth1"])
    }

    @Test func aDuplicateOrAPortBeyondTheLimitIsRefused() throws {
        let (worker, _) = try Self.rig(internalPortLimit: 1)
        try worker.addPort(MemoryPort(name: "lr1"))
        #expect(throws: DataPlaneWorker<MemoryIO>.PortChangeError.duplicate("lr1")) {
            try worker.addPort(MemoryPort(name: "lr1"))
        }
        #expect(throws: DataPlaneWorker<MemoryIO>.PortChangeError.full(limit: 3)) {
            try worker.addPort(MemoryPort(name: "lr2"))
        }
        #expect(worker.portNames == ["eth0", "eth1", "lr1"])
    }
}
