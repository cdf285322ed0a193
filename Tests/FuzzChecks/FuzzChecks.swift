import Appliance
import ControlAPI
import DataPlane
import Datapath
import Forwarding
import OVSDB
import Packet
import Shell
import ShellSession
import Synchronization

/// What each fuzz target checks of one input: the parser it feeds does not trap, and the
/// invariants that must hold of whatever it accepts. libFuzzer drives these through the mains
/// in fuzz/ (`make fuzz`); `FuzzReplayTests` replays every file of fuzz/corpus and
/// fuzz/crashes through them in `make test`. A broken invariant is a `precondition` failure:
/// under libFuzzer a crash it keeps, in the replay a crashed test run.
public enum FuzzChecks {
    /// The targets by name (the directory names under fuzz/corpus).
    public static let targets: [String: @Sendable ([UInt8]) -> Void] = [
        "control": control, "shell": shell, "json": json, "packet": packet, "dhcp": dhcp,
        "decision": decision, "bfd": bfd, "netlink": netlink, "ovsdb-rows": ovsdbRows,
        "offload": offload, "worker": worker,
    ]

    /// A control-socket request line: refused, or accepted and the same after its own
    /// encoding is parsed again.
    public static func control(_ bytes: [UInt8]) {
        guard case .success(let request) = ControlRequest.parse(bytes) else { return }
        let again = ControlRequest.parse(request.encoded())
        guard case .success(let reparsed) = again else {
            preconditionFailure("an accepted request's encoding is refused: \(again)")
        }
        precondition(reparsed == request, "a request changed through its encoding")
    }

    /// A line typed at the shell: parsed (with output filters) without trapping; a command for
    /// vtepd parses back from its own canonical line; the line editor, fed the bytes on a
    /// 40-column terminal, keeps its cursor inside the line.
    public static func shell(_ bytes: [UInt8]) {
        let line = String(decoding: bytes, as: UTF8.self)
        if let (command, _) = try? OutputFilter.split(line),
            case .control(let parsed)? = try? CommandTree<ShellAction>.appliance.parse(command)
        {
            let again = try? CommandTree<ShellAction>.appliance.parse(parsed.shellLine)
            precondition(
                again == .control(parsed), "\(parsed.shellLine) does not parse back to itself")
        }
        var editor = LineEditor(tree: CommandTree<ShellAction>.appliance, historyLimit: 4)
        editor.resize(columns: 40)
        editor.startLine(prompt: "gw> ")
        editor.feed(bytes)
        while editor.nextEvent() != nil { editor.startLine(prompt: "gw> ") }
        precondition(editor.cursor >= 0 && editor.cursor <= editor.line.unicodeScalars.count)
        _ = editor.takeOutput()
    }

    /// JSON text as ovsdb-server sends it: refused, or accepted and the same after being
    /// written and read again.
    public static func json(_ bytes: [UInt8]) {
        guard let value = try? JSON(parsing: bytes) else { return }
        var written: [UInt8] = []
        value.write(to: &written)
        guard let again = try? JSON(parsing: written) else {
            preconditionFailure("written JSON is refused: \(value)")
        }
        // NaN is written as null; every other value comes back as it was.
        precondition(again == value || "\(value)".contains("null"), "JSON changed: \(value)")
    }

    /// A frame from the BFD channel (VXLAN VNI 0, the bytes after the VXLAN header), as the
    /// worker takes it: the payload lies inside the frame, a control packet that parses is
    /// written back to the same packet, and a session takes it without trapping (the bytes
    /// alone are also tried as a control packet, for the parser's own checks).
    public static func bfd(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { frame in
            var candidates: [BFDControl] = []
            if let control = try? BFDControl.parse(frame) { candidates.append(control) }
            if let payload = try? BFDTunnelFrame.payload(of: frame) {
                precondition(
                    payload.count <= frame.count
                        && payload.baseAddress! >= frame.baseAddress!
                        && payload.baseAddress! + payload.count <= frame.baseAddress! + frame.count)
                if let control = try? BFDControl.parse(payload) { candidates.append(control) }
            }
            for control in candidates {
                var written = [UInt8](repeating: 0, count: BFDControl.length)
                let end = written.withUnsafeMutableBytes { try? control.store(into: $0, at: 0) }
                precondition(end == BFDControl.length)
                let again = written.withUnsafeBytes { try? BFDControl.parse($0) }
                precondition(again == control, "BFD control packet changed: \(control)")
                var session = BFDSession(
                    discriminator: control.yourDiscriminator == 0 ? 1 : control.yourDiscriminator,
                    sourcePort: 49152, parameters: BFDParameters(enable: true), now: 1000, seed: 7)
                try? session.receive(control, now: 1000)
                session.run(now: 1000 + 3 * 255_000, receivedPackets: 0)
                _ = session.makePacket(now: 1000 + 3 * 255_000)
            }
        }
    }

    /// A frame from an access port or the underlay, walked header by header as the data plane
    /// does: each parser either refuses it or returns offsets inside the frame.
    public static func packet(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { frame in
            underlayRing(frame)
            guard let ethernet = try? EthernetHeader.parse(frame) else { return }
            precondition(ethernet.payloadOffset <= frame.count)
            walk(frame, etherType: ethernet.etherType, at: ethernet.payloadOffset, depth: 0)
            neighbourAnswer(frame, ethernet)
        }
    }

    /// Offloads, as a host hands them over and a tunnel delivers them: a frame read from an
    /// access port with its virtio_net_hdr (a super-frame to cut into segments, a checksum
    /// left to finish), and decapsulated frames merged into one super-frame for an access
    /// port. The input: the vnet header's six fields (10 bytes, big-endian), the largest
    /// segment payload asked for (2), the port's MTU for merging (2), then frames, each after
    /// its 2-byte length. Whatever the bytes, nothing is read or written outside a buffer;
    /// the segments of an accepted super-frame fit, carry its payload exactly once, and each
    /// is no longer than the size asked for; finishing a checksum twice changes nothing the
    /// second time; a merged frame reads back as a super-frame of as many segments as were
    /// merged.
    public static func offload(_ bytes: [UInt8]) {
        guard bytes.count >= 14 else { return }
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
        let header = VirtioNetHeader(
            flags: bytes[0], gsoType: bytes[1], headerLength: u16(2), gsoSize: u16(4),
            checksumStart: u16(6), checksumOffset: u16(8))
        let maximumSegmentSize = Int(u16(10))
        let mtu = Int(u16(12))
        var frames: [[UInt8]] = []
        var at = 14
        while at + 2 <= bytes.count, frames.count < 64 {
            let length = Int(u16(at))
            at += 2
            frames.append(Array(bytes[at..<min(bytes.count, at + length)]))
            at += length
        }
        guard let first = frames.first else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 70_000, alignment: 16)
        defer { buffer.deallocate() }
        first.withUnsafeBytes { frame in
            segments(of: frame, header, maximumSegmentSize, into: buffer)
        }
        var copy = first
        copy.withUnsafeMutableBytes { frame in
            if PartialChecksum.complete(in: frame) {
                precondition(!PartialChecksum.complete(in: frame), "a checksum finished twice")
            }
        }
        merge(frames, mtu: mtu, into: buffer)
    }

    private static func segments(
        of frame: UnsafeRawBufferPointer, _ header: VirtioNetHeader, _ maximumSegmentSize: Int,
        into buffer: UnsafeMutableRawBufferPointer
    ) {
        guard
            let whole = try? SuperFrame(
                frame, header: header, maximumSegmentSize: maximumSegmentSize)
        else { return }
        let payloadStart = whole.untaggedHeaderLength + whole.tagLength
        precondition(whole.count >= 1 && whole.segmentSize >= 1)
        precondition(whole.packetEnd <= frame.count && payloadStart <= whole.packetEnd)
        let payload = whole.packetEnd - payloadStart
        precondition(whole.count == max(1, (payload + whole.segmentSize - 1) / whole.segmentSize))
        for vlan: UInt16? in [nil, 7] {
            var carried = 0
            for index in 0..<whole.count {
                let length = whole.write(index, of: frame, vlan: vlan, into: buffer, at: 4)
                let l2 = vlan == nil ? 14 : 18
                precondition(
                    length >= l2 + whole.untaggedHeaderLength - 14, "segment \(index) left out")
                precondition(4 + length <= buffer.count)
                precondition(
                    length - l2 - (whole.untaggedHeaderLength - 14) <= whole.segmentSize,
                    "segment \(index) longer than asked")
                carried += length - l2 - (whole.untaggedHeaderLength - 14)
            }
            precondition(carried == payload, "payload carried \(carried) of \(payload)")
        }
        var copy = Array(frame)
        copy.withUnsafeMutableBytes { whole.storePseudoHeaderSum(in: $0) }
    }

    /// Frames from a tunnel merged as `toPort(coalescing:)` does, into a slot at offset 16.
    private static func merge(
        _ frames: [[UInt8]], mtu: Int, into buffer: UnsafeMutableRawBufferPointer
    ) {
        var coalescer = TCPCoalescer()
        let start = 16
        guard frames[0].count + start <= buffer.count else { return }
        var length = frames[0].count
        frames[0].withUnsafeBytes {
            (buffer.baseAddress! + start).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
        }
        guard
            coalescer.start(
                UnsafeRawBufferPointer(rebasing: buffer[start..<start + length]),
                maximumIPLength: mtu)
        else { return }
        for frame in frames.dropFirst() where coalescer.isOpen {
            let before = length
            let joined = frame.withUnsafeBytes {
                coalescer.append($0, to: buffer, frameStart: start, frameLength: &length)
            }
            precondition(joined ? length > before : length == before)
            precondition(start + length <= buffer.count)
        }
        let merged = coalescer.segments
        let header = coalescer.finish(buffer, frameStart: start, frameLength: length)
        let built = UnsafeRawBufferPointer(rebasing: buffer[start..<start + length])
        if merged > 1 {
            let reread = try? SuperFrame(built, header: header, maximumSegmentSize: 65_535)
            precondition(reread != nil, "a merged frame that does not read as a super-frame")
            precondition(reread!.count == merged, "\(merged) merged, \(reread!.count) read")
        }
    }

    /// The frame as the underlay's VXLAN ring hands it over (`UnderlayDatagram`), with and
    /// without a receiver's word on the checksum: a refusal, or a payload inside the frame
    /// that a checked parse and a vouched-for parse agree on.
    private static func underlayRing(_ frame: UnsafeRawBufferPointer) {
        let vouched = try? UnderlayDatagram.parse(
            frame, port: 4789, offload: VirtioNetHeader(flags: VirtioNetHeader.dataValid))
        guard let checked = try? UnderlayDatagram.parse(frame, port: 4789, offload: .plain)
        else { return }
        let start = checked.payload.baseAddress! - frame.baseAddress!
        precondition(start >= 0 && start + checked.payload.count <= frame.count)
        precondition(
            vouched?.payload.baseAddress == checked.payload.baseAddress
                && vouched?.payload.count == checked.payload.count
                && vouched?.source == checked.source,
            "a checksum the receiver vouched for changed what was parsed")
    }

    /// ARP and ND suppression's reading of the frame, and for a request the answer, which
    /// must read back as the advertisement of the address asked for by the MAC answering.
    private static func neighbourAnswer(_ frame: UnsafeRawBufferPointer, _ header: EthernetHeader) {
        guard case .request(let target)? = NeighbourDiscovery.message(in: frame, header: header)
        else { return }
        let mac = MACAddress(rawValue: 0x0200_0000_0001)
        var answer = [UInt8](repeating: 0, count: NeighbourDiscovery.maximumReplyLength)
        let length = answer.withUnsafeMutableBytes {
            NeighbourDiscovery.reply(to: frame, header: header, answering: mac, into: $0)
        }
        precondition(length > 0, "a request without an answer")
        let back = answer.prefix(length).withUnsafeBytes { raw in
            (try? EthernetHeader.parse(raw)).flatMap {
                NeighbourDiscovery.message(in: raw, header: $0)
            }
        }
        precondition(
            back == .advertisement(address: target, mac: mac),
            "the answer says \(String(describing: back))")
    }

    private static func walk(
        _ frame: UnsafeRawBufferPointer, etherType: UInt16, at offset: Int, depth: Int
    ) {
        switch etherType {
        case 0x0800:
            guard let ip = try? IPv4Header.parse(frame, at: offset) else { return }
            precondition(ip.payloadOffset <= frame.count && ip.payloadEnd <= frame.count)
            transport(frame, ip.protocol, at: ip.payloadOffset, end: ip.payloadEnd, depth: depth)
        case 0x86DD:
            guard let ip = try? IPv6Header.parse(frame, at: offset) else { return }
            precondition(ip.payloadOffset <= frame.count)
            transport(frame, ip.nextHeader, at: ip.payloadOffset, end: nil, depth: depth)
        case 0x0806:
            _ = try? ARPPacket.parse(frame, at: offset)
        default: break
        }
    }

    private static func transport(
        _ frame: UnsafeRawBufferPointer, _ protocolNumber: UInt8, at offset: Int, end: Int?,
        depth: Int
    ) {
        switch protocolNumber {
        case 17:
            guard let udp = try? UDPHeader.parse(frame, at: offset, end: end) else { return }
            guard depth == 0, udp.destinationPort == UDPHeader.vxlanPort,
                let vxlan = try? VXLANHeader.parse(frame, at: offset + UDPHeader.length)
            else { return }
            _ = vxlan
            inner(frame, at: offset + UDPHeader.length + VXLANHeader.length)
        case 47:
            guard depth == 0, let gre = try? GREHeader.parse(frame, at: offset, end: end) else {
                return
            }
            _ = try? NVGREHeader.parse(frame, at: offset)
            inner(frame, at: gre.payloadOffset)
        case 6: _ = try? TCPHeader.parse(frame, at: offset, end: end)
        case 1: _ = try? ICMPHeader.parse(frame, at: offset, end: end)
        case 58: _ = try? ICMPHeader.parseV6(frame, at: offset, end: end)
        default: break
        }
    }

    private static func inner(_ frame: UnsafeRawBufferPointer, at offset: Int) {
        guard offset <= frame.count else { return }
        let rest = UnsafeRawBufferPointer(rebasing: frame[offset...])
        guard let ethernet = try? EthernetHeader.parse(rest) else { return }
        walk(rest, etherType: ethernet.etherType, at: ethernet.payloadOffset, depth: 1)
    }

    /// A DHCP hook message: the event on the first line, `name=value` lines after it.
    public static func dhcp(_ bytes: [UInt8]) {
        let lines = String(decoding: bytes, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false)
        guard let event = lines.first else { return }
        var environment: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let equals = line.firstIndex(of: "=") else { continue }
            environment[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        _ = try? DHCPEvent(udhcpcEvent: String(event), environment: environment)
    }

    // MARK: The data-plane worker

    /// Frames from every side into the data-plane worker on in-memory ports (`MemoryIO`), as
    /// the kernel hands them over: access ports with a virtio_net_hdr, the VXLAN socket (its
    /// UDP_GRO size in the header's `gsoSize`), the GRE socket (from the GRE header), the
    /// underlay's VXLAN ring (whole frames). The first byte picks one of three workers (trains
    /// and the kernel's sockets; super-frames written whole; VXLAN read from the ring), then
    /// records `[source, vnet header (10 bytes, big-endian), length (2), bytes]`; the source's
    /// low 3 bits pick the side (0-2 an access port, 3 the VXLAN socket, 4 the GRE socket,
    /// 5-7 the ring where the worker has one, else a clock step of `source >> 3` seconds), bit
    /// 7 the IPv6 peer; the worker serves every port after each record. Whatever the bytes,
    /// the worker never traps and reads or writes nothing outside its buffers, and what it
    /// hands the kernel holds together: a frame sent to an access port with a GSO header reads
    /// as a super-frame whose segments fit the port; a UDP GSO train to the underlay has a
    /// segment size and fits 64 KB; a write to the TAP is more than its 24-byte header.
    public static func worker(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let fixture = workerFixtures[Int(first) % workerFixtures.count]
        fixture.lock.withLock { _ in fixture.run(bytes.dropFirst()) }
    }

    /// One worker per way of sending and receiving VXLAN, made once: a worker allocates its
    /// batches (megabytes) and its engine prepares every switch index; `resetForwardingState`
    /// puts one back as new before each input.
    static let workerFixtures: [WorkerFixture] = [
        WorkerFixture(receive: .socket, transmit: .trains),
        WorkerFixture(receive: .socket, transmit: .tunnelGSO),
        WorkerFixture(receive: .ring, transmit: .trains),
    ]

    final class WorkerFixture: @unchecked Sendable {
        let lock = Mutex(())
        let worker: DataPlaneWorker<MemoryIO>
        let io: DataPlanePorts<MemoryIO>
        let configuration = gatewayConfiguration(greSwitch: true)

        init(receive: VXLANReceive, transmit: VXLANTransmit) {
            var settings = DataPlaneSettings(
                underlay: "mem0", localIPv4: IPv4Address("10.0.0.1")!,
                localIPv6: IPv6Address("fd00::1")!)
            settings.vxlanReceive = receive
            settings.vxlanTransmit = transmit
            // A small MAC table: a reset clears every slot (a million entries' 32 MiB made
            // 65 inputs a second), and a few dozen frames learn no more than this.
            settings.macTableLimit = 64
            settings.batchSize = 16
            io = .inMemory(
                settings: settings, access: configuration.ports.compactMap { $0 },
                underlayMAC: MACAddress(0x02, 0, 0, 0, 0, 0x01))
            worker = try! DataPlaneWorker(settings: settings, io: io)
            worker.apply(configuration, [])
            // Every VTEP's next hop known but one's, so frames take the fast path through the
            // underlay and the slow one through the kernel's sockets.
            var hops: [Locator: NextHop] = [:]
            let slow = IPAddress("10.0.0.3")!
            for case let locator? in configuration.locators where locator.ip != slow {
                hops[locator] =
                    NextHop.multicast(locator.ip)
                    ?? NextHop(destination: MACAddress(0x02, 0, 0, 0, 0, 0x77))
            }
            worker.setNextHops(hops)
        }

        func run(_ bytes: ArraySlice<UInt8>) {
            worker.resetForwardingState()
            let bytes = Array(bytes)
            func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
            var now: UInt32 = 1
            var at = 0
            var records = 0
            while at + 13 <= bytes.count, records < 64 {
                let source = bytes[at]
                let header = VirtioNetHeader(
                    flags: bytes[at + 1], gsoType: bytes[at + 2], headerLength: u16(at + 3),
                    gsoSize: u16(at + 5), checksumStart: u16(at + 7), checksumOffset: u16(at + 9))
                let length = min(Int(u16(at + 11)), bytes.count - at - 13)
                let frame = Array(bytes[(at + 13)..<(at + 13 + length)])
                at += 13 + length
                records += 1
                let peer = UDPEndpoint(
                    address: IPAddress(source & 0x80 == 0 ? "10.0.0.2" : "fd00::9")!,
                    port: 40000)
                switch source & 0x7 {
                case 0, 1, 2:
                    io.access[Int(source & 0x7)].inject(MemoryFrame(frame, offload: header))
                case 3:
                    let socket = source & 0x80 == 0 ? io.vxlan4 : io.vxlan6
                    socket?.inject(
                        MemoryFrame(
                            frame,
                            offload: VirtioNetHeader(
                                gsoType: VirtioNetHeader.GSO.udpL4, gsoSize: header.gsoSize),
                            peer: peer))
                case 4:
                    (source & 0x80 == 0 ? io.gre4 : io.gre6)?.inject(frame, from: peer)
                default:
                    if let ring = io.vxlanRing {
                        ring.inject(MemoryFrame(frame, offload: header))
                    } else {
                        now &+= UInt32(source >> 3)
                    }
                }
                worker.serviceAll(now: now)
                check()
            }
        }

        /// What the worker handed the in-memory kernel since the last look, checked and let go.
        func check() {
            for (i, port) in io.access.enumerated() {
                for sent in port.takeSent() where sent.offload.isSuperFrame {
                    let mtu = (try? port.mtu) ?? 1500
                    let whole = sent.bytes.withUnsafeBytes {
                        try? SuperFrame($0, header: sent.offload, maximumSegmentSize: 65_535)
                    }
                    precondition(whole != nil, "port \(i): a super-frame the kernel would refuse")
                    precondition(
                        whole!.untaggedHeaderLength - 14 + whole!.segmentSize <= mtu,
                        "port \(i): segments of \(whole!.segmentSize) bytes past the MTU")
                }
            }
            for train in io.underlay.takeSent().trains {
                precondition(train.offload.gsoType == VirtioNetHeader.GSO.udpL4)
                precondition(train.offload.gsoSize > 0 && train.bytes.count <= 65_535 + 14)
            }
            for written in io.tunnelGSO?.take() ?? [] {
                precondition(written.count > VirtioNetHeader.tunnelLength)
            }
            for socket in [io.vxlan4, io.vxlan6, io.gre4, io.gre6, io.udp4, io.udp6] {
                _ = socket?.takeSent()
            }
        }
    }

    // MARK: The forwarding decision

    /// A gateway of three switches (head-end, multicast, service node; the first two with ARP
    /// and ND suppression) on three ports, one port a trunk of two: what `decision` feeds
    /// frames to.
    /// With `greSwitch`, "svc" is carried over GRE (key = VNI) instead.
    static func gatewayConfiguration(greSwitch: Bool = false) -> ForwardingConfiguration {
        func locator(_ text: String) -> Locator { Locator(IPAddress(text)!) }
        func vni(_ value: Int) -> VNI { try! VNI(validating: value) }
        return try! ForwardingConfiguration(
            switches: [
                LogicalSwitch(
                    name: "web", vni: vni(5000),
                    replication: .headEnd([locator("10.0.0.2"), locator("10.0.0.3")]),
                    arpSuppression: true),
                LogicalSwitch(
                    name: "db", vni: vni(6000), replication: .multicast(locator("239.1.1.1")),
                    arpSuppression: true),
                greSwitch
                    ? LogicalSwitch(
                        name: "svc", vni: vni(7000),
                        replication: .headEnd([Locator(IPAddress("fd00::9")!, .gre)]),
                        encapsulation: .gre)
                    : LogicalSwitch(
                        name: "svc", vni: vni(7000),
                        replication: .serviceNode([locator("fd00::9")])),
            ],
            ports: ["p0", "p1", "p2"],
            bindings: [
                Binding(port: "p0", vlan: nil, logicalSwitch: "web"),
                Binding(port: "p1", vlan: 100, logicalSwitch: "web"),
                Binding(port: "p1", vlan: 200, logicalSwitch: "db"),
                Binding(port: "p2", vlan: nil, logicalSwitch: "svc"),
            ])
    }

    /// Frames one after another into one engine, each `[selector, length high, length low,
    /// frame…]`: the selector's low bits choose the ingress (an access port, or a tunnel from
    /// one of four sources with one of four VNIs) and its high bits advance the clock. Every
    /// decision keeps the frame in the logical switch it came in on: out of a port and VLAN
    /// bound to that switch, encapsulated with its VNI (never from a tunnel: split horizon),
    /// flooded within it, answered back where it came from (never to a tunnel).
    ///
    /// One engine serves every input, reset before each (`ForwardingEngine.reset`, held to
    /// decide as a new engine by `ResetTests`): a new engine prepares all 65,535 switch
    /// indices, which cost more than the decisions, and the fuzzer ran 150 inputs a second.
    public static func decision(_ bytes: [UInt8]) {
        decisionEngine.withLock { engine in
            engine.reset()
            decide(bytes, on: engine)
        }
    }

    /// The engine of `decision`, sized for its three switches' traffic (a MAC table of 64
    /// entries, a neighbour table of 64 slots, 16 discovered VTEPs). Behind a lock: the
    /// replay tests run targets concurrently.
    static let decisionEngine = Mutex(
        ForwardingEngine(
            configuration: gatewayConfiguration(), macTableLimit: 64, discoveredLocatorLimit: 16,
            neighbourCapacity: 64))

    private static func decide(_ bytes: [UInt8], on engine: ForwardingEngine) {
        let configuration = engine.configuration
        let sources = ["10.0.0.2", "10.0.0.3", "fd00::9", "10.7.7.7"].map { IPAddress($0)! }
        let vnis = [5000, 6000, 7000, 1].map { try! VNI(validating: $0) }
        var now: UInt32 = 0
        var at = 0
        while at + 3 <= bytes.count {
            let selector = bytes[at]
            let length = min(Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]), bytes.count - at - 3)
            let frame = Array(bytes[(at + 3)..<(at + 3 + length)])
            at += 3 + length
            now &+= UInt32(selector >> 5)
            let ingress: Ingress =
                selector & 0x10 == 0
                ? .access(PortIndex(rawValue: UInt16(selector % 3)))
                : .tunnel(
                    source: sources[Int(selector & 0x3)], encapsulation: .vxlan,
                    vni: vnis[Int(selector >> 2 & 0x3)])
            let decision = frame.withUnsafeBytes { engine.decide(ingress, frame: $0, now: now) }
            if case .drop = decision { continue }
            // The switch the frame belongs to.
            let home: SwitchIndex?
            switch ingress {
            case .access(let port):
                let header = frame.withUnsafeBytes { try? EthernetHeader.parse($0) }
                let vid = header?.outerTag.map(\.vid)
                home = configuration.boundSwitch(port: port, vlan: vid == 0 ? nil : vid)
            case .tunnel(_, _, let vni):
                home = configuration.switchIndex(for: vni)
            }
            guard let home, let homeSwitch = configuration.logicalSwitch(home) else {
                preconditionFailure("\(decision) for a frame of no switch from \(ingress)")
            }
            switch decision {
            case .output(let port, let vlan):
                precondition(
                    configuration.boundSwitch(port: port, vlan: vlan) == home,
                    "\(decision) leaves switch \(homeSwitch.name)")
            case .encapsulate(_, let vni):
                precondition(vni == homeSwitch.vni, "\(decision) in another VNI")
                if case .tunnel = ingress { preconditionFailure("tunnel to tunnel: \(decision)") }
            case .flood(let target, let vni, _, let replicate):
                precondition(
                    target == home && vni == homeSwitch.vni, "\(decision) floods elsewhere")
                if case .tunnel = ingress {
                    precondition(!replicate, "replicated back into the overlay: \(decision)")
                }
            case .reply(let port, let vlan, _):
                precondition(
                    configuration.boundSwitch(port: port, vlan: vlan) == home,
                    "\(decision) answers into another switch")
                guard case .access(let from) = ingress, from == port else {
                    preconditionFailure("\(decision) answers elsewhere than \(ingress)")
                }
            case .drop: break
            }
        }
    }
}
