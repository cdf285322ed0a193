// Micro-benchmarks of the per-frame work, with package-benchmark (ordo-one/benchmark).
// Run: `make bench` (or `cd bench && swift package benchmark`). Figures: ../README.md.
//
// Every benchmark runs one frame (or one table operation) per iteration over preallocated
// buffers, so `mallocCountTotal` is the allocations per frame times the iteration count:
// it must be 0.

import Benchmark
import Forwarding
import Packet

let benchmarks: @Sendable () -> Void = {
    let perFrame: [BenchmarkMetric] = [
        .throughput, .wallClock, .mallocCountTotal,
    ]
    // One iteration runs the operation a million times (scalingFactor .mega), so a few warm-up
    // iterations already touch every cache line and page the benchmark uses.
    Benchmark.defaultConfiguration = .init(
        metrics: perFrame, timeUnits: .nanoseconds, warmupIterations: 3,
        scalingFactor: .mega, maxDuration: .seconds(2), maxIterations: 30)

    // MARK: Access → tunnel: parse, classify, learn, look up, hash, build the outer header.

    Benchmark("Encapsulate 64-byte frame (decide + hash + VXLAN/IPv4 stamp)") { benchmark in
        let lab = Lab()
        let frame = lab.accessFrame
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 64)
        defer { out.deallocate() }
        benchmark.startMeasurement()
        var encapsulated = 0
        let encapsulate = lab.encapsulator
        for _ in benchmark.scaledIterations {
            if encapsulate(frame, into: out) { encapsulated &+= 1 }
        }
        benchmark.stopMeasurement()
        precondition(encapsulated > 0, "the benchmark frame was not encapsulated")
        blackHole(encapsulated)
    }

    // MARK: Tunnel → access: parse the outer headers, validate, learn, deliver.

    Benchmark("Decapsulate 64-byte frame (parse VXLAN/IPv4 + decide)") { benchmark in
        let lab = Lab()
        let packet = lab.tunnelPacket
        benchmark.startMeasurement()
        var delivered = 0
        for _ in benchmark.scaledIterations {
            guard let ethernet = try? EthernetHeader.parse(packet),
                ethernet.etherType == EtherType.ipv4,
                let ip = try? IPv4Header.parse(packet, at: ethernet.payloadOffset),
                ip.protocol == IPProtocol.udp,
                let udp = try? UDPHeader.parse(packet, at: ip.payloadOffset),
                udp.destinationPort == UDPHeader.vxlanPort,
                let vxlan = try? VXLANHeader.parse(packet, at: udp.payloadOffset)
            else { continue }
            let inner = UnsafeRawBufferPointer(
                rebasing: packet[(udp.payloadOffset + VXLANHeader.length)...])
            let decision = lab.engine.decide(
                .tunnel(
                    source: .v4(ip.source), encapsulation: .vxlan,
                    vni: VNI(masking: vxlan.vni)),
                frame: inner, now: Lab.now)
            if case .output = decision { delivered &+= 1 }
        }
        benchmark.stopMeasurement()
        precondition(delivered > 0, "the benchmark packet was not delivered")
        blackHole(delivered)
    }

    // MARK: At scale: batches of 32 frames to random hosts among a million.

    for prefetching in [false, true] {
        Benchmark(
            "Encapsulate batch of 32, 1M MACs, \(prefetching ? "prefetch" : "no prefetch")",
            configuration: .init(
                metrics: perFrame, timeUnits: .nanoseconds, warmupIterations: 3,
                scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 30)
        ) { benchmark in
            // One iteration = one receive batch of 32 frames: throughput × 32 = frames/s.
            let lab = ScaleLab()
            let encapsulate = lab.encapsulator
            let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 64)
            defer { out.deallocate() }
            let batch = 32
            var base = 0
            var encapsulated = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                if prefetching {
                    for i in base..<base + batch {
                        lab.engine.prefetch(.access(Lab.accessPort), frame: lab.frame(i))
                    }
                }
                for i in base..<base + batch {
                    if encapsulate(lab.frame(i), into: out) { encapsulated &+= 1 }
                }
                base = (base + batch) & (ScaleLab.frameCount - 1)
            }
            benchmark.stopMeasurement()
            precondition(encapsulated > 0, "no frame was encapsulated")
            blackHole(encapsulated)
        }
    }

    // MARK: The MAC table at 1,048,576 entries.

    let million = 1 << 20
    Benchmark(
        "MACTable lookup, 1M entries (random hits)",
        configuration: .init(
            metrics: perFrame + [.custom("table bytes per entry", useScalingFactor: false)],
            timeUnits: .nanoseconds, warmupIterations: 3, scalingFactor: .mega,
            maxDuration: .seconds(2), maxIterations: 30)
    ) { benchmark in
        let table = FullTable(entries: million)
        benchmark.measurement(
            .custom("table bytes per entry", useScalingFactor: false),
            table.table.memoryFootprint / million)
        let keys = table.probeOrder
        benchmark.startMeasurement()
        var hits = 0
        var i = 0
        for _ in benchmark.scaledIterations {
            let k = keys[i & (million - 1)]
            if table.table.lookup(k.mac, on: k.sw, now: 10) != nil { hits &+= 1 }
            i &+= 1
        }
        benchmark.stopMeasurement()
        precondition(hits == i, "a lookup missed: \(i - hits) of \(i)")
    }

    Benchmark(
        "MACTable lookup batch of 32, 1M entries (random hits)",
        configuration: .init(
            metrics: perFrame, timeUnits: .nanoseconds, warmupIterations: 3,
            scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 30)
    ) { benchmark in
        // One iteration = one receive batch of 32 frames: throughput × 32 = lookups/s.
        let table = FullTable(entries: million)
        let batch = 32
        let macs = UnsafeMutableBufferPointer<MACAddress>.allocate(capacity: million)
        let switches = UnsafeMutableBufferPointer<SwitchIndex>.allocate(capacity: million)
        let results = UnsafeMutableBufferPointer<MACLocation?>.allocate(capacity: batch)
        defer {
            macs.deallocate()
            switches.deallocate()
            results.deallocate()
        }
        for i in 0..<million {
            macs[i] = table.probeOrder[i].mac
            switches[i] = table.probeOrder[i].sw
        }
        benchmark.startMeasurement()
        var base = 0
        var hits = 0
        for _ in benchmark.scaledIterations {
            table.table.lookup(
                UnsafeBufferPointer(rebasing: macs[base..<base + batch]),
                on: UnsafeBufferPointer(rebasing: switches[base..<base + batch]), now: 10,
                into: results)
            for r in results where r != nil { hits &+= 1 }
            base = (base + batch) & (million - 1)
        }
        benchmark.stopMeasurement()
        precondition(hits > 0)
        blackHole(hits)
    }

    Benchmark("MACTable learn (refresh), 1M entries") { benchmark in
        let table = FullTable(entries: million)
        let keys = table.probeOrder
        benchmark.startMeasurement()
        var i = 0
        for _ in benchmark.scaledIterations {
            let k = keys[i & (million - 1)]
            blackHole(table.table.learn(k.mac, on: k.sw, at: k.location, now: 11))
            i &+= 1
        }
        benchmark.stopMeasurement()
    }

    // What vtepd's Ucast_Macs_Local publisher costs the worker once a second: a pass over
    // the whole table, or (as the worker does it) one 65,536-slot slice per turn. Control
    // plane work: one pass per iteration, and its result array is allocated.
    let perPass = Benchmark.Configuration(
        metrics: [.wallClock], timeUnits: .microseconds, warmupIterations: 2,
        scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 200)
    Benchmark(
        "MACTable localMACs whole pass, 1M entries (half local)", configuration: perPass
    ) { benchmark in
        let table = FullTable(entries: million, localEveryOther: true)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(table.table.localMACs(now: 11).count)
        }
        benchmark.stopMeasurement()
    }

    Benchmark(
        "MACTable localMACs 65,536-slot slice, 1M entries (half local)", configuration: perPass
    ) { benchmark in
        let table = FullTable(entries: million, localEveryOther: true)
        let slices = table.table.capacity / 65_536
        var i = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let from = (i % slices) * 65_536
            blackHole(table.table.localMACs(now: 11, from: from, count: 65_536).count)
            i &+= 1
        }
        benchmark.stopMeasurement()
    }

    // MARK: Offloads: a 64 KB TCP super-frame cut into segments, and merged back.

    let perSuperFrame = Benchmark.Configuration(
        metrics: [.throughput, .wallClock, .mallocCountTotal], timeUnits: .microseconds,
        warmupIterations: 10, scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 30)

    Benchmark(
        "Segment 64 KB TCP super-frame (45 x 1448 B, checksums)", configuration: perSuperFrame
    ) { benchmark in
        let offload = OffloadLab()
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 64)
        defer { out.deallocate() }
        var bytes = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            guard
                let whole = try? SuperFrame(
                    offload.superFrame, header: offload.header, maximumSegmentSize: 1448)
            else { continue }
            for i in 0..<whole.count {
                bytes &+= whole.write(i, of: offload.superFrame, vlan: nil, into: out, at: 0)
            }
        }
        benchmark.stopMeasurement()
        precondition(bytes > 0, "nothing was segmented")
        blackHole(bytes)
    }

    Benchmark(
        "Coalesce 45 TCP segments into a 64 KB super-frame (checksums verified)",
        configuration: perSuperFrame
    ) { benchmark in
        let offload = OffloadLab()
        let segments = offload.segments
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 70_000, alignment: 64)
        defer { out.deallocate() }
        var merged = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var coalescer = TCPCoalescer()
            var length = segments[0].count
            out.baseAddress!.copyMemory(from: segments[0].baseAddress!, byteCount: length)
            _ = coalescer.start(
                UnsafeRawBufferPointer(rebasing: out[0..<length]), maximumIPLength: 1500)
            for s in segments.dropFirst() {
                if coalescer.append(s, to: out, frameStart: 0, frameLength: &length) {
                    merged &+= 1
                }
            }
            blackHole(coalescer.finish(out, frameStart: 0, frameLength: length))
        }
        benchmark.stopMeasurement()
        precondition(merged > 0, "nothing was merged")
        blackHole(merged)
    }

    Benchmark("MACTable learn new + remove (churn), 1M entries") { benchmark in
        let table = FullTable(entries: million - 1)
        let keys = table.probeOrder
        var spare = MACAddress(rawValue: 0x02_FF_00_00_00_00)
        benchmark.startMeasurement()
        var i = 0
        for _ in benchmark.scaledIterations {
            // Keep the table one below its limit: learn one new MAC, forget an old one.
            let k = keys[i % (million - 1)]
            table.table.learn(spare, on: k.sw, at: k.location, now: 12)
            table.table.remove(spare, on: k.sw)
            spare = MACAddress(rawValue: spare.rawValue &+ 1)
            i &+= 1
        }
        benchmark.stopMeasurement()
    }
}

/// The access-to-tunnel work for one frame, as the datapath does it: decide, hash the inner
/// flow into the source port, and write the outer headers in front of the frame.
struct Encapsulator {
    let engine: ForwardingEngine
    /// By locator index.
    let templates: [OuterHeaderTemplate]
    let hasher = FlowHasher(key: 0x5EED_5EED_5EED_5EED)
    let ports = SourcePortRange.rfc7348Default

    /// Returns whether `frame` was encapsulated into `out`.
    @inline(__always)
    func callAsFunction(_ frame: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer)
        -> Bool
    {
        guard
            case .encapsulate(let locator, _) = engine.decide(
                .access(Lab.accessPort), frame: frame, now: Lab.now)
        else { return false }
        let template = templates[Int(locator.rawValue)]
        let port = ports.port(for: hasher.hash(frame))
        // The datapath receives the frame at headroom offset `headerLength`; here it is copied
        // there, then the outer headers are written in front of it.
        UnsafeMutableRawBufferPointer(rebasing: out[template.headerLength...])
            .copyMemory(from: frame)
        return
            (try? template.stamp(
                into: out, at: 0, innerLength: frame.count, sourcePort: port)) != nil
    }
}

/// One logical switch (VNI 5001) bound untagged on access port 0, one remote VTEP with one
/// static MAC behind it, and the frames that cross between them.
final class Lab {
    static let accessPort = PortIndex(rawValue: 0)
    /// The injected clock stands still: every frame is within the 300 s ageing time.
    static let now: UInt32 = 1000
    let engine: ForwardingEngine
    let encapsulator: Encapsulator
    /// Preallocated for the lab's lifetime, as the datapath's ring buffers are.
    let accessFrame: UnsafeRawBufferPointer
    let tunnelPacket: UnsafeRawBufferPointer

    init() {
        let local = MACAddress(0x02, 0, 0, 0, 0, 0x01)
        let remote = MACAddress(0x02, 0, 0, 0, 0, 0x02)
        let vtep = IPv4Address(192, 168, 100, 2)
        let me = IPv4Address(192, 168, 100, 1)
        let locator = Locator(.v4(vtep))
        let configuration = try! ForwardingConfiguration(
            switches: [
                LogicalSwitch(
                    name: "ls0", vni: VNI(rawValue: 5001)!, replication: .headEnd([locator]))
            ],
            ports: ["p0"],
            bindings: [Binding(port: "p0", vlan: nil, logicalSwitch: "ls0")],
            locators: [locator])
        engine = ForwardingEngine(configuration: configuration)
        let sw = configuration.switchIndex(named: "ls0")!
        let locatorIndex = configuration.locatorIndex(of: locator)!
        try! engine.installStatic(remote, on: sw, at: .remote(locatorIndex), now: 0)

        var templates: [OuterHeaderTemplate] = []
        for i in 0...Int(locatorIndex.rawValue) {
            let destination =
                configuration.locator(LocatorIndex(rawValue: UInt32(i)))?.ip ?? .v4(vtep)
            guard case .v4(let v4) = destination else { fatalError("IPv4 lab") }
            templates.append(
                try! OuterHeaderTemplate(
                    encapsulation: .vxlan, vni: 5001,
                    network: .ipv4(source: me, destination: v4),
                    ethernet: .init(
                        destination: MACAddress(0x02, 0, 0, 0, 0xFF, 0x02),
                        source: MACAddress(0x02, 0, 0, 0, 0xFF, 0x01))))
        }
        encapsulator = Encapsulator(engine: engine, templates: templates)

        // A 64-byte frame (60 + FCS on the wire): IPv4/UDP from local to remote.
        accessFrame = Lab.preallocated(Lab.udpFrame(from: local, to: remote))
        // The reply, as the remote VTEP sends it.
        let reply = Lab.udpFrame(from: remote, to: local)
        let replyTemplate = try! OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 5001, network: .ipv4(source: vtep, destination: me),
            ethernet: .init(
                destination: MACAddress(0x02, 0, 0, 0, 0xFF, 0x01),
                source: MACAddress(0x02, 0, 0, 0, 0xFF, 0x02)))
        let packet = UnsafeMutableRawBufferPointer.allocate(
            byteCount: replyTemplate.headerLength + reply.count, alignment: 64)
        reply.withUnsafeBytes {
            UnsafeMutableRawBufferPointer(rebasing: packet[replyTemplate.headerLength...])
                .copyMemory(from: $0)
        }
        _ = try! replyTemplate.stamp(
            into: packet, at: 0, innerLength: reply.count, sourcePort: 54321)
        tunnelPacket = UnsafeRawBufferPointer(packet)

        // The local host has spoken once, so replies to it go out of its port, not flooded.
        guard
            case .encapsulate = engine.decide(
                .access(Lab.accessPort), frame: accessFrame, now: Lab.now)
        else { fatalError("the lab's first frame was not encapsulated") }
    }

    deinit {
        accessFrame.deallocate()
        tunnelPacket.deallocate()
    }

    static func preallocated(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 64)
        bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        return UnsafeRawBufferPointer(buffer)
    }

    static func udpFrame(from source: MACAddress, to destination: MACAddress) -> [UInt8] {
        var f = [UInt8](repeating: 0, count: 60)
        f.withUnsafeMutableBytes { b in
            destination.store(into: b, at: 0)
            source.store(into: b, at: 6)
        }
        f[12] = 0x08
        f[13] = 0x00  // IPv4
        let ip: [UInt8] = [
            0x45, 0, 0, 46, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]
        f.replaceSubrange(14..<34, with: ip)
        f[34] = 0x30
        f[35] = 0x39
        f[36] = 0x00
        f[37] = 0x35  // 12345 → 53
        f[38] = 0
        f[39] = 26  // UDP length
        return f
    }
}

/// One logical switch bound untagged on access port 0 with 1,048,575 remote MACs learned
/// behind 64 VTEPs, and 64Ki 64-byte frames from one local host to random ones of them.
final class ScaleLab {
    static let frameCount = 1 << 16
    let engine: ForwardingEngine
    let encapsulator: Encapsulator
    let frames: UnsafeMutableRawBufferPointer

    init() {
        let me = IPv4Address(192, 168, 100, 1)
        let vteps = (0..<64).map { Locator(.v4(IPv4Address(192, 168, 101, UInt8($0 + 1)))) }
        let configuration = try! ForwardingConfiguration(
            switches: [
                LogicalSwitch(name: "ls0", vni: VNI(rawValue: 5001)!, replication: .headEnd(vteps))
            ],
            ports: ["p0"],
            bindings: [Binding(port: "p0", vlan: nil, logicalSwitch: "ls0")],
            locators: vteps)
        engine = ForwardingEngine(configuration: configuration)
        let sw = configuration.switchIndex(named: "ls0")!
        let indices = vteps.map { configuration.locatorIndex(of: $0)! }
        let templates = (0...Int(indices.max()!.rawValue)).map { i in
            let ip = configuration.locator(LocatorIndex(rawValue: UInt32(i)))?.ip
            guard case .v4(let destination) = ip ?? .v4(me) else { fatalError("IPv4 lab") }
            return try! OuterHeaderTemplate(
                encapsulation: .vxlan, vni: 5001,
                network: .ipv4(source: me, destination: destination),
                ethernet: .init(
                    destination: MACAddress(0x02, 0, 0, 0, 0xFF, 0x02),
                    source: MACAddress(0x02, 0, 0, 0, 0xFF, 0x01)))
        }
        encapsulator = Encapsulator(engine: engine, templates: templates)
        var rng = SplitMix64(seed: 7)
        var remotes: [MACAddress] = []
        remotes.reserveCapacity((1 << 20) - 1)
        while remotes.count < (1 << 20) - 1 {
            let mac = MACAddress(rawValue: rng.next() & 0xFEFF_FFFF_FFFF)
            let outcome = engine.macTable.learn(
                mac, on: sw, at: .remote(indices[Int(rng.next() % 64)]), now: Lab.now)
            if outcome == .learned { remotes.append(mac) }
        }
        let local = MACAddress(0x02, 0, 0, 0, 0, 0x01)
        frames = .allocate(byteCount: ScaleLab.frameCount * 64, alignment: 64)
        for i in 0..<ScaleLab.frameCount {
            let bytes = Lab.udpFrame(
                from: local, to: remotes[Int(rng.next() % UInt64(remotes.count))])
            bytes.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: frames[i * 64..<i * 64 + 60])
                    .copyMemory(from: $0)
            }
        }
    }

    @inline(__always)
    func frame(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: frames[i * 64..<i * 64 + 60])
    }

    deinit { frames.deallocate() }
}

/// A MAC table filled with `entries` random learned entries spread over 16 switches, and the
/// same keys in a shuffled order to probe with (so lookups miss the cache as in production).
final class FullTable {
    struct Key {
        var sw: SwitchIndex
        var mac: MACAddress
        var location: MACLocation
    }
    let table: MACTable
    let probeOrder: UnsafeMutableBufferPointer<Key>

    /// `localEveryOther`: every second entry is behind a local port instead of a VTEP (the
    /// random draws, hence the MACs and switches, stay the same).
    init(entries: Int, localEveryOther: Bool = false) {
        table = MACTable(totalLimit: 1 << 20, hashSeed: 0x1234_5678)
        var rng = SplitMix64(seed: 42)
        probeOrder = .allocate(capacity: 1 << 20)
        var n = 0
        while n < entries {
            var key = Key(
                sw: SwitchIndex(rawValue: UInt16(rng.next() % 16)),
                mac: MACAddress(rawValue: rng.next() & 0xFEFF_FFFF_FFFF),  // unicast
                location: .remote(LocatorIndex(rawValue: UInt32(rng.next() % 64))))
            if localEveryOther && n % 2 == 0 { key.location = .local(port: 1, vlan: nil) }
            if table.learn(key.mac, on: key.sw, at: key.location, now: 10) == .learned {
                probeOrder[n] = key
                n += 1
            }
        }
        for i in n..<(1 << 20) { probeOrder[i] = probeOrder[i % max(n, 1)] }
        for i in stride(from: (1 << 20) - 1, to: 0, by: -1) {
            probeOrder.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
    }

    deinit { probeOrder.deallocate() }
}

/// SplitMix64, the same generator as the tests' (Tests/TestSupport/SplitMix64.swift), kept
/// here on purpose: this package reaches the root package only through its products, and
/// test support is not one (declaring it a library product would offer test code to every
/// package that depends on ours). Seeds 7 and 42 above give the tables every run measures.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A 64 KB TCPv4 super-frame as TSO hands it over (partial checksum, gso size 1448), and its
/// 45 segments with full checksums, for the offload benchmarks.
final class OffloadLab: @unchecked Sendable {
    let superFrame: UnsafeRawBufferPointer
    let header: VirtioNetHeader
    let segments: [UnsafeRawBufferPointer]

    init() {
        let payload = 45 * 1448
        let frame = UnsafeMutableRawBufferPointer.allocate(
            byteCount: 14 + 20 + 32 + payload, alignment: 64)
        frame.initializeMemory(as: UInt8.self, repeating: 0)
        let ethernet = EthernetHeader(
            destination: MACAddress(0x02, 0, 0, 0, 0, 2), source: MACAddress(0x02, 0, 0, 0, 0, 1),
            etherType: EtherType.ipv4)
        var at = try! ethernet.store(into: frame, at: 0)
        at = try! IPv4Header(
            source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2),
            protocol: IPProtocol.tcp, payloadLength: 32 + payload
        ).store(into: frame, at: at)
        let tcp: [UInt8] = [
            0x9C, 0x40, 0x14, 0x51, 0, 0, 0x10, 0, 0, 0, 0x30, 0x39, 0x80, 0x10, 0x01, 0xF5,
            0, 0, 0, 0, 1, 1, 8, 10, 0, 0, 0x10, 0x20, 0, 0, 0x30, 0x40,
        ]
        for (i, b) in tcp.enumerated() { frame[at + i] = b }
        for i in 0..<payload { frame[at + 32 + i] = UInt8(truncatingIfNeeded: i &* 31) }
        var sum = InternetChecksum()
        sum.addIPv4PseudoHeader(
            source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2),
            protocol: IPProtocol.tcp, length: UInt16(32 + payload))
        frame.storeBytes(of: sum.folded.bigEndian, toByteOffset: at + 16, as: UInt16.self)
        superFrame = UnsafeRawBufferPointer(frame)
        header = VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.GSO.tcpv4,
            headerLength: 66, gsoSize: 1448, checksumStart: 34, checksumOffset: 16)
        let whole = try! SuperFrame(superFrame, header: header, maximumSegmentSize: 1448)
        segments = (0..<whole.count).map { i in
            let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 64)
            let length = whole.write(
                i, of: UnsafeRawBufferPointer(frame), vlan: nil, into: out, at: 0)
            return UnsafeRawBufferPointer(rebasing: out[0..<length])
        }
    }
}
