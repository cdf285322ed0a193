import Datapath
import Forwarding
import Foundation
import Glibc
import Packet

/// The data plane's worker: everything here runs on its one thread (see `DataPlane`).
///
/// Per batch: receive up to `batchSize` frames from a ready socket, prefetch their MAC-table
/// slots, decide each, and copy it into the transmit batch of its destination — an access
/// port (re-tagged for the binding's VLAN), the underlay (outer headers stamped from a
/// per-(locator, VNI) `OuterHeaderTemplate`, UDP source port from the inner-flow hash), or
/// the kernel's UDP socket while the next hop is unresolved — then flush every transmit batch
/// with one sendmmsg each. Buffers, batches and counters are allocated when the worker starts.
///
/// GRE and NVGRE (a logical switch's `encapsulation`) arrive on raw IP sockets of protocol 47
/// and leave like VXLAN: prebuilt templates on the fast path, the raw socket (the kernel
/// writes the IP header and resolves the next hop) on the slow path. GRE's key is the VNI;
/// NVGRE's key is VSID << 8 | FlowID (RFC 7637 §3.2), the FlowID from the same inner-flow
/// hash as VXLAN's source port. One header format serves both, so a received key is read as
/// a GRE VNI when a GRE switch carries it, else as an NVGRE VSID (see `fromGRE`).
public final class DataPlaneWorker: @unchecked Sendable {
    let settings: DataPlaneSettings
    let engine: ForwardingEngine
    /// The configuration in force, read per packet without reference counting (calls on an
    /// `unowned(unsafe)` reference still retain around each call; a guaranteed reference
    /// does not); kept alive by `engine.configuration`.
    private var configurationRef: Unmanaged<ForwardingConfiguration>

    private let ports: [AccessPort]
    private let underlay: UnderlayPort
    private let underlayMTU: Int
    private let underlayMAC: MACAddress
    private let udp4: UDPTunnelSocket?
    private let udp6: UDPTunnelSocket?
    private let gre4: GRETunnelSocket?
    private let gre6: GRETunnelSocket?
    private let wakeup: Int32

    private let receiveBatch: PacketBatch
    private let portBatches: [PacketBatch]
    private let portPending: UnsafeMutablePointer<Int>
    private let underlayBatch: PacketBatch
    private var underlayPending = 0
    private let slow4: PacketBatch
    private var slow4Pending = 0
    private let slow6: PacketBatch
    private var slow6Pending = 0
    private let greSlow4: PacketBatch
    private var greSlow4Pending = 0
    private let greSlow6: PacketBatch
    private var greSlow6Pending = 0

    /// PortIndex.rawValue → position in `ports`, or -1.
    private let workerPortOf: UnsafeMutablePointer<Int>
    /// Position in `ports` → PortIndex.rawValue, or -1 when the port is not configured.
    private let portIndexOf: UnsafeMutablePointer<Int32>

    private let hasher: FlowHasher
    private var templates: TemplateCache
    private var sequences: SequenceCounters
    private var nextHops: [Locator: NextHop] = [:]
    private var statics: Set<GatewaySnapshot.RemoteMAC> = []
    private(set) var problems: [String] = []
    private var groups: Set<IPAddress> = []

    // Counters.
    private let portRx: UnsafeMutablePointer<UInt64>
    private let portTx: UnsafeMutablePointer<UInt64>
    private let portDrops: UnsafeMutablePointer<UInt64>
    private static let countedLocators = 1 << 16
    private let vtepTx: UnsafeMutablePointer<UInt64>
    private let vtepRx: UnsafeMutablePointer<UInt64>
    private let malformed: UnsafeMutablePointer<UInt64>
    private var underlayTooBig: UInt64 = 0
    private var truncated: UInt64 = 0
    private var transmitQueueFull: UInt64 = 0
    private var slowPath: UInt64 = 0
    private var ownSource: UInt64 = 0
    private var ioErrors: UInt64 = 0

    private var stopping = false
    private let clockOrigin: UInt64

    init(settings: DataPlaneSettings, ports names: [String], wakeup: Int32) throws {
        self.settings = settings
        self.wakeup = wakeup
        let empty = try ForwardingConfiguration()
        var random = SystemRandomNumberGenerator()
        let seed = random.next()
        engine = ForwardingEngine(
            configuration: empty, macTableLimit: settings.macTableLimit, hashSeed: seed,
            discoveredLocatorLimit: ForwardingEngine.defaultDiscoveredLocatorLimit)
        configurationRef = .passUnretained(empty)
        hasher = FlowHasher(key: random.next())

        guard names.count <= PortIndex.count else {
            throw GatewayError.tooManyPorts(names.count)
        }
        ports = try names.map {
            try AccessPort(
                interface: $0, promiscuous: true, qdiscBypass: true,
                receiveBuffer: settings.receiveBuffer)
        }
        underlay = try UnderlayPort(interface: settings.underlay)
        underlayMTU = try underlay.mtu
        underlayMAC = try underlay.hardwareAddress
        udp4 =
            settings.localIPv4 == nil
            ? nil
            : try UDPTunnelSocket(
                address: .v4(IPv4Address(rawValue: 0)), port: settings.vxlanPort,
                receiveBuffer: settings.receiveBuffer)
        udp6 =
            settings.localIPv6 == nil
            ? nil
            : try UDPTunnelSocket(
                address: .v6(IPv6Address(high: 0, low: 0)), port: settings.vxlanPort,
                receiveBuffer: settings.receiveBuffer)
        gre4 =
            settings.localIPv4 == nil
            ? nil
            : try GRETunnelSocket(
                address: .v4(IPv4Address(rawValue: 0)), receiveBuffer: settings.receiveBuffer)
        gre6 =
            settings.localIPv6 == nil
            ? nil
            : try GRETunnelSocket(
                address: .v6(IPv6Address(high: 0, low: 0)), receiveBuffer: settings.receiveBuffer)

        let batch = settings.batchSize
        // 128 bytes of headroom hold the longest outer header (VXLAN over IPv6 with an
        // underlay tag, 74 bytes) in front of a received frame.
        receiveBatch = PacketBatch(capacity: batch, bufferSize: 2048 + 128, headroom: 128)
        portBatches = names.map { _ in PacketBatch(capacity: batch, bufferSize: 2048, headroom: 8) }
        portPending = .allocate(capacity: max(1, names.count))
        portPending.initialize(repeating: 0, count: max(1, names.count))
        underlayBatch = PacketBatch(capacity: batch, bufferSize: 2048 + 128, headroom: 128)
        slow4 = PacketBatch(capacity: batch, bufferSize: 2048, headroom: 8)
        slow6 = PacketBatch(capacity: batch, bufferSize: 2048, headroom: 8)
        greSlow4 = PacketBatch(capacity: batch, bufferSize: 2048 + 32, headroom: 8)
        greSlow6 = PacketBatch(capacity: batch, bufferSize: 2048 + 32, headroom: 8)

        workerPortOf = .allocate(capacity: PortIndex.count)
        workerPortOf.initialize(repeating: -1, count: PortIndex.count)
        portIndexOf = .allocate(capacity: max(1, names.count))
        portIndexOf.initialize(repeating: -1, count: max(1, names.count))
        portRx = .allocate(capacity: max(1, names.count))
        portRx.initialize(repeating: 0, count: max(1, names.count))
        portTx = .allocate(capacity: max(1, names.count))
        portTx.initialize(repeating: 0, count: max(1, names.count))
        portDrops = .allocate(capacity: max(1, names.count))
        portDrops.initialize(repeating: 0, count: max(1, names.count))
        let vteps = Self.countedLocators + ForwardingEngine.defaultDiscoveredLocatorLimit
        vtepTx = .allocate(capacity: vteps)
        vtepTx.initialize(repeating: 0, count: vteps)
        vtepRx = .allocate(capacity: vteps)
        vtepRx.initialize(repeating: 0, count: vteps)
        malformed = .allocate(capacity: Malformed.allCases.count)
        malformed.initialize(repeating: 0, count: Malformed.allCases.count)
        templates = TemplateCache(capacity: 4096)
        sequences = SequenceCounters(capacity: 4096)
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        clockOrigin = UInt64(now.tv_sec)
    }

    deinit {
        portPending.deallocate()
        workerPortOf.deallocate()
        portIndexOf.deallocate()
        portRx.deallocate()
        portTx.deallocate()
        portDrops.deallocate()
        vtepTx.deallocate()
        vtepRx.deallocate()
        malformed.deallocate()
        templates.deallocate()
        sequences.deallocate()
    }

    // MARK: The loop

    func run(takeCommands: () -> [DataPlane.Command]) {
        var descriptors: [pollfd] = ports.map {
            pollfd(fd: $0.descriptor, events: Int16(POLLIN), revents: 0)
        }
        let udp4Slot = descriptors.count
        if let udp4 {
            descriptors.append(pollfd(fd: udp4.descriptor, events: Int16(POLLIN), revents: 0))
        }
        let udp6Slot = descriptors.count
        if let udp6 {
            descriptors.append(pollfd(fd: udp6.descriptor, events: Int16(POLLIN), revents: 0))
        }
        let gre4Slot = descriptors.count
        if let gre4 {
            descriptors.append(pollfd(fd: gre4.descriptor, events: Int16(POLLIN), revents: 0))
        }
        let gre6Slot = descriptors.count
        if let gre6 {
            descriptors.append(pollfd(fd: gre6.descriptor, events: Int16(POLLIN), revents: 0))
        }
        descriptors.append(pollfd(fd: wakeup, events: Int16(POLLIN), revents: 0))
        var lastAgeing: UInt32 = 0
        while !stopping {
            for command in takeCommands() { handle(command) }
            if stopping { break }
            let ready = descriptors.withUnsafeMutableBufferPointer {
                poll($0.baseAddress, nfds_t($0.count), 100)
            }
            let now = self.now()
            if ready > 0 {
                for i in 0..<ports.count where descriptors[i].revents != 0 {
                    fromAccess(i, now: now)
                }
                if udp4 != nil, descriptors[udp4Slot].revents != 0 { fromTunnel(udp4!, now: now) }
                if udp6 != nil, descriptors[udp6Slot].revents != 0 { fromTunnel(udp6!, now: now) }
                if gre4 != nil, descriptors[gre4Slot].revents != 0 { fromGRE(gre4!, now: now) }
                if gre6 != nil, descriptors[gre6Slot].revents != 0 { fromGRE(gre6!, now: now) }
            }
            if now != lastAgeing {
                lastAgeing = now
                engine.age(now: now, budget: 4096)
            }
        }
    }

    private func now() -> UInt32 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt32(truncatingIfNeeded: UInt64(t.tv_sec) &- clockOrigin)
    }

    private func handle(_ command: DataPlane.Command) {
        switch command {
        case .apply(let new, let staticMACs): apply(new, staticMACs)
        case .nextHops(let hops):
            nextHops = hops
            templates.removeAll()
        case .run(let body): body(self)
        case .stop: stopping = true
        }
    }

    // MARK: Access side

    private func fromAccess(_ p: Int, now: UInt32) {
        let batch = receiveBatch
        // A few batches per wakeup, so one busy port cannot starve the others.
        for _ in 0..<4 {
            let n: Int
            do { n = try ports[p].receive(into: batch) } catch {
                ioErrors &+= 1
                return
            }
            if n == 0 { return }
            portRx[p] &+= UInt64(n)
            let index = portIndexOf[p]
            guard index >= 0 else {
                portDrops[p] &+= UInt64(n)
                continue
            }
            let ingress = Ingress.access(PortIndex(rawValue: UInt16(index)))
            for i in 0..<n { engine.prefetch(ingress, frame: batch.frame(i)) }
            for i in 0..<n {
                if batch.isTruncated(i) {
                    truncated &+= 1
                    continue
                }
                let frame = batch.frame(i)
                switch engine.decide(ingress, frame: frame, now: now) {
                case .drop: break
                case .output(let port, let vlan): toPort(port, vlan: vlan, frame)
                case .encapsulate(let locator, let vni): toTunnel(locator, vni, frame)
                case .flood(let sw, _, let excluding, let replicate):
                    flood(sw, excluding: excluding, replicate: replicate, frame)
                }
            }
            flushAll()
            if n < batch.capacity { return }
        }
    }

    // MARK: Underlay side

    private func fromTunnel(_ socket: UDPTunnelSocket, now: UInt32) {
        let batch = receiveBatch
        for _ in 0..<4 {
            let n: Int
            do { n = try socket.receive(into: batch) } catch {
                ioErrors &+= 1
                return
            }
            if n == 0 { return }
            for i in 0..<n {
                guard let source = tunnelSource(batch, i) else { continue }
                let payload = batch.frame(i)
                let header: VXLANHeader
                do {
                    header = try VXLANHeader.parse(payload, at: 0)
                } catch {
                    engine.countMalformed(error)
                    continue
                }
                let inner = UnsafeRawBufferPointer(
                    rebasing: payload[VXLANHeader.length..<payload.count])
                deliver(
                    inner, from: source, encapsulation: .vxlan, vni: VNI(masking: header.vni),
                    now: now)
            }
            flushAll()
            if n < batch.capacity { return }
        }
    }

    /// GRE and NVGRE from the raw sockets. Validation (RFC 2784 §2.3, RFC 2890): version 0,
    /// no routing bit, bits 4–5 clear, protocol 0x6558, the checksum verified when C is set,
    /// a key present; each failure its own `Malformed` counter. Then the key:
    /// - a GRE switch carries VNI = key: GRE. The whole 32-bit key is the VNI, as Open
    ///   vSwitch's `type=gre` ports use it as the tunnel id; keys above 16,777,215 name no
    ///   switch (hardware_vtep's tunnel_key is 24 bits) and are never masked into one.
    /// - else an NVGRE switch carries VSID = key >> 8: NVGRE, the FlowID ignored (RFC 7637
    ///   §3.2: entropy only); C or S set is malformed NVGRE (RFC 7637 §3.2 "MUST be zero").
    /// - else neither: dropped by the forwarding core as an unknown VNI.
    /// The source must then be a locator of that encapsulation (the core checks it), so a
    /// GRE-only peer's wrong key can never land in an NVGRE switch that happens to match.
    private func fromGRE(_ socket: GRETunnelSocket, now: UInt32) {
        let batch = receiveBatch
        for _ in 0..<4 {
            let n: Int
            do { n = try socket.receive(into: batch) } catch {
                ioErrors &+= 1
                return
            }
            if n == 0 { return }
            for i in 0..<n {
                guard let source = tunnelSource(batch, i) else { continue }
                let packet = batch.frame(i)
                let header: GREHeader
                do {
                    header = try GREHeader.parse(packet, at: 0)
                } catch {
                    engine.countMalformed(error)
                    continue
                }
                guard let key = header.key else {
                    engine.countMalformed(.greKeyMissing)
                    continue
                }
                let encapsulation: Encapsulation
                let vni: VNI
                if key <= VXLANHeader.maximumVNI,
                    withConfiguration({ $0.encapsulation(carrying: VNI(masking: key)) }) == .gre
                {
                    encapsulation = .gre
                    vni = VNI(masking: key)
                } else if withConfiguration({ $0.encapsulation(carrying: VNI(masking: key >> 8)) })
                    == .nvgre
                {
                    if header.checksum != nil {
                        engine.countMalformed(.nvgreChecksumPresent)
                        continue
                    }
                    if header.sequence != nil {
                        engine.countMalformed(.nvgreSequencePresent)
                        continue
                    }
                    encapsulation = .nvgre
                    vni = VNI(masking: key >> 8)
                } else if key <= VXLANHeader.maximumVNI {
                    encapsulation = .gre
                    vni = VNI(masking: key)
                } else {
                    // Not a GRE VNI, and VSID key >> 8 is no NVGRE switch: the core counts it.
                    encapsulation = .nvgre
                    vni = VNI(masking: key >> 8)
                }
                let inner = UnsafeRawBufferPointer(
                    rebasing: packet[header.headerLength..<packet.count])
                deliver(inner, from: source, encapsulation: encapsulation, vni: vni, now: now)
            }
            flushAll()
            if n < batch.capacity { return }
        }
    }

    /// The sender of a received tunnel packet, or nil (counted) when the packet is cut short
    /// or comes from one of our own addresses.
    @inline(__always)
    private func tunnelSource(_ batch: PacketBatch, _ i: Int) -> UDPEndpoint? {
        if batch.isTruncated(i) {
            truncated &+= 1
            return nil
        }
        guard let source = batch.source(i) else { return nil }
        if isOwn(source.address) {
            ownSource &+= 1
            return nil
        }
        return source
    }

    /// A decapsulated frame, whatever its tunnel: decided, delivered to local ports only
    /// (split horizon: a frame from a tunnel never goes back into one), and counted against
    /// its VTEP after the decision, which discovers a new VTEP on a multicast switch.
    @inline(__always)
    private func deliver(
        _ inner: UnsafeRawBufferPointer, from source: UDPEndpoint, encapsulation: Encapsulation,
        vni: VNI, now: UInt32
    ) {
        let ingress = Ingress.tunnel(
            source: source.address, encapsulation: encapsulation, vni: vni)
        switch engine.decide(ingress, frame: inner, now: now) {
        case .output(let port, let vlan): toPort(port, vlan: vlan, inner)
        case .flood(let sw, _, let excluding, _):
            flood(sw, excluding: excluding, replicate: false, inner)
        case .drop, .encapsulate: break
        }
        countReceived(from: source.address, encapsulation)
    }

    @inline(__always)
    private func withConfiguration<T>(_ body: (ForwardingConfiguration) -> T) -> T {
        configurationRef._withUnsafeGuaranteedRef(body)
    }

    @inline(__always)
    private func isOwn(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let a): return a == settings.localIPv4
        case .v6(let a): return a == settings.localIPv6
        }
    }

    /// Counts a tunnel packet against its VTEP: one the configuration names, or one a
    /// multicast switch discovered.
    private func countReceived(from address: IPAddress, _ encapsulation: Encapsulation) {
        let remote = Locator(address, encapsulation)
        let locator =
            withConfiguration { $0.locatorIndex(of: remote) } ?? engine.discoveredIndex(of: remote)
        if let locator, let c = Self.counterSlot(locator) { vtepRx[c] &+= 1 }
    }

    /// Where a locator's counters live: configured indices below 2^16 first, then the
    /// discovered ones.
    @inline(__always)
    static func counterSlot(_ l: LocatorIndex) -> Int? {
        if l.isDynamic {
            let i = Int(l.rawValue - LocatorIndex.dynamicBase)
            return i < ForwardingEngine.defaultDiscoveredLocatorLimit ? countedLocators + i : nil
        }
        return Int(l.rawValue) < countedLocators ? Int(l.rawValue) : nil
    }

    // MARK: Transmit

    private func flood(
        _ sw: SwitchIndex, excluding: AttachmentCircuit?, replicate: Bool,
        _ frame: UnsafeRawBufferPointer
    ) {
        guard let list = withConfiguration({ $0.floodList(of: sw) }) else { return }
        for member in list.members where member != excluding {
            toPort(member.port, vlan: member.vlan, frame)
        }
        if replicate {
            for locator in list.replication { toTunnel(locator, list.vni, frame) }
        }
    }

    private func toPort(_ port: PortIndex, vlan: UInt16?, _ frame: UnsafeRawBufferPointer) {
        let w = workerPortOf[Int(port.rawValue)]
        guard w >= 0 else { return }
        let batch = portBatches[w]
        let slot = portPending[w]
        let buffer = batch.buffer(slot)
        let start = batch.headroom
        let length = Self.copyRetagged(frame, vlan: vlan, into: buffer, at: start)
        guard length > 0 else {
            portDrops[w] &+= 1
            return
        }
        batch.setFrame(slot, start: start, length: length)
        portPending[w] = slot + 1
        if slot + 1 == batch.capacity { flushPort(w) }
    }

    private func toTunnel(_ locator: LocatorIndex, _ vni: VNI, _ frame: UnsafeRawBufferPointer) {
        let batch = underlayBatch
        let slot = underlayPending
        let buffer = batch.buffer(slot)
        let innerStart = batch.headroom
        let innerLength = Self.copyRetagged(frame, vlan: nil, into: buffer, at: innerStart)
        guard innerLength > 0 else { return }
        guard let template = templates.find(locator, vni) ?? buildTemplate(locator, vni) else {
            toSlowPath(
                locator, vni,
                UnsafeRawBufferPointer(rebasing: buffer[innerStart..<innerStart + innerLength]))
            return
        }
        // The IP packet: everything after the outer Ethernet header.
        if template.headerLength - 14 + innerLength > underlayMTU {
            underlayTooBig &+= 1
            return
        }
        let inner = UnsafeRawBufferPointer(rebasing: buffer[innerStart..<innerStart + innerLength])
        let hash = hasher.hash(inner)
        let port = settings.sourcePorts.port(for: hash)
        let start = innerStart - template.headerLength
        let sequence = template.carriesGRESequence ? sequences.next(locator, vni) : 0
        do {
            _ = try template.stamp(
                into: buffer, at: start, innerLength: innerLength, sourcePort: port,
                flowID: Self.flowID(hash), sequence: sequence)
        } catch {
            malformed[Int(error.rawValue)] &+= 1
            return
        }
        batch.setFrame(slot, start: start, length: template.headerLength + innerLength)
        if let c = Self.counterSlot(locator) { vtepTx[c] &+= 1 }
        underlayPending = slot + 1
        if slot + 1 == batch.capacity { flushUnderlay() }
    }

    /// NVGRE's FlowID (RFC 7637 §3.2) from the inner-flow hash: its top byte, which the
    /// hasher mixes as well as the bits the source port range keeps.
    @inline(__always)
    static func flowID(_ hash: UInt32) -> UInt8 { UInt8(truncatingIfNeeded: hash >> 24) }

    /// The template for (locator, VNI) once its next hop is known; nil until then.
    private func buildTemplate(_ index: LocatorIndex, _ vni: VNI) -> OuterHeaderTemplate? {
        // A group's Ethernet address follows from its IP address (RFC 1112 §6.4, RFC 2464
        // §7), so it need not wait for the resolver (up to 1 s after a new configuration).
        // Meanwhile the slow path would lose the frame: without IP_MULTICAST_IF the kernel
        // routes a group by the unicast table (no route on the underlay: ENETUNREACH, io_error).
        guard let locator = engine.locator(index),
            let hop = nextHops[locator] ?? NextHop.multicast(locator.ip)
        else { return nil }
        let ethernet = OuterHeaderTemplate.Ethernet(
            destination: hop.destination, source: underlayMAC)
        let network: OuterHeaderTemplate.Network
        switch locator.ip {
        case .v4(let destination):
            guard let source = settings.localIPv4 else { return nil }
            network = .ipv4(
                source: source, destination: destination,
                ttl: destination.isMulticast ? settings.multicastTTL : settings.unicastTTL)
        case .v6(let destination):
            guard let source = settings.localIPv6 else { return nil }
            network = .ipv6(
                source: source, destination: destination,
                hopLimit: destination.isMulticast ? settings.multicastTTL : settings.unicastTTL)
        }
        let options = greOptions(vni)
        guard
            let template = try? OuterHeaderTemplate(
                encapsulation: locator.encapsulation, vni: vni.rawValue, network: network,
                ethernet: ethernet, udpDestinationPort: settings.vxlanPort,
                greChecksum: options.checksum, greSequence: options.sequence)
        else { return nil }
        templates.insert(index, vni, template)
        return template
    }

    /// The GRE options of the switch carrying `vni` (used for GRE locators only; the
    /// snapshot leaves them off on VXLAN and NVGRE switches).
    private func greOptions(_ vni: VNI) -> GREOptions {
        let configuration = engine.configuration
        guard let sw = configuration.switchIndex(for: vni), let s = configuration.logicalSwitch(sw)
        else { return GREOptions() }
        return s.greOptions
    }

    /// Sends through the kernel's UDP stack, which resolves the next hop (ARP or neighbour
    /// discovery) so that the control plane's next resolution finds it.
    private func toSlowPath(_ index: LocatorIndex, _ vni: VNI, _ inner: UnsafeRawBufferPointer) {
        guard let locator = engine.locator(index) else { return }
        if locator.encapsulation != .vxlan {
            toGRESlowPath(index, locator, vni, inner)
            return
        }
        let batch: PacketBatch
        let slot: Int
        switch locator.ip {
        case .v4:
            guard udp4 != nil else { return }
            batch = slow4
            slot = slow4Pending
        case .v6:
            guard udp6 != nil else { return }
            batch = slow6
            slot = slow6Pending
        }
        let buffer = batch.buffer(slot)
        let start = batch.headroom
        guard start + VXLANHeader.length + inner.count <= buffer.count else { return }
        do { _ = try VXLANHeader(vni: vni.rawValue).store(into: buffer, at: start) } catch {
            return
        }
        (buffer.baseAddress! + start + VXLANHeader.length).copyMemory(
            from: inner.baseAddress!, byteCount: inner.count)
        batch.setFrame(slot, start: start, length: VXLANHeader.length + inner.count)
        batch.setDestination(UDPEndpoint(address: locator.ip, port: settings.vxlanPort), for: slot)
        slowPath &+= 1
        if let c = Self.counterSlot(index) { vtepTx[c] &+= 1 }
        switch locator.ip {
        case .v4:
            slow4Pending = slot + 1
            if slow4Pending == batch.capacity { flushSlow() }
        case .v6:
            slow6Pending = slot + 1
            if slow6Pending == batch.capacity { flushSlow() }
        }
    }

    /// GRE or NVGRE through the raw socket: the kernel writes the IP header and resolves the
    /// next hop, as the UDP socket does for VXLAN.
    private func toGRESlowPath(
        _ index: LocatorIndex, _ locator: Locator, _ vni: VNI, _ inner: UnsafeRawBufferPointer
    ) {
        let batch: PacketBatch
        let slot: Int
        switch locator.ip {
        case .v4:
            guard gre4 != nil else { return }
            batch = greSlow4
            slot = greSlow4Pending
        case .v6:
            guard gre6 != nil else { return }
            batch = greSlow6
            slot = greSlow6Pending
        }
        let buffer = batch.buffer(slot)
        let start = batch.headroom
        let headerLength: Int
        if locator.encapsulation == .nvgre {
            headerLength = NVGREHeader.length
            guard start + headerLength + inner.count <= buffer.count else { return }
            (buffer.baseAddress! + start + headerLength).copyMemory(
                from: inner.baseAddress!, byteCount: inner.count)
            let header = NVGREHeader(vsid: vni.rawValue, flowID: Self.flowID(hasher.hash(inner)))
            do { _ = try header.store(into: buffer, at: start) } catch { return }
        } else {
            let options = greOptions(vni)
            let header = GREHeader(
                checksumPresent: options.checksum, key: vni.rawValue,
                sequence: options.sequence ? sequences.next(index, vni) : nil)
            headerLength = header.headerLength
            guard start + headerLength + inner.count <= buffer.count else { return }
            (buffer.baseAddress! + start + headerLength).copyMemory(
                from: inner.baseAddress!, byteCount: inner.count)
            do {
                _ = try header.store(into: buffer, at: start, payloadLength: inner.count)
            } catch { return }
        }
        batch.setFrame(slot, start: start, length: headerLength + inner.count)
        batch.setDestination(UDPEndpoint(address: locator.ip, port: 0), for: slot)
        slowPath &+= 1
        if let c = Self.counterSlot(index) { vtepTx[c] &+= 1 }
        switch locator.ip {
        case .v4:
            greSlow4Pending = slot + 1
            if greSlow4Pending == batch.capacity { flushSlow() }
        case .v6:
            greSlow6Pending = slot + 1
            if greSlow6Pending == batch.capacity { flushSlow() }
        }
    }

    /// Copies `frame` to `buffer[at...]` with its one VLAN tag (if any) replaced by `vlan`
    /// (802.1Q, nil = untagged). Returns the new length, or 0 if it does not fit.
    @inline(__always)
    static func copyRetagged(
        _ frame: UnsafeRawBufferPointer, vlan: UInt16?, into buffer: UnsafeMutableRawBufferPointer,
        at offset: Int
    ) -> Int {
        guard frame.count >= 14 else { return 0 }
        let type = UInt16(frame[12]) << 8 | UInt16(frame[13])
        let tagged =
            type == EtherType.vlan || type == EtherType.serviceVLAN
            || type == EtherType.legacyServiceVLAN
        let payloadStart = tagged ? 16 : 12
        guard frame.count >= payloadStart + 2 else { return 0 }
        let payloadLength = frame.count - payloadStart
        let length = 12 + (vlan == nil ? 0 : 4) + payloadLength
        guard offset + length <= buffer.count else { return 0 }
        let out = buffer.baseAddress! + offset
        out.copyMemory(from: frame.baseAddress!, byteCount: 12)
        var at = 12
        if let vlan {
            out.storeBytes(of: EtherType.vlan.bigEndian, toByteOffset: 12, as: UInt16.self)
            out.storeBytes(of: vlan.bigEndian, toByteOffset: 14, as: UInt16.self)
            at = 16
        }
        (out + at).copyMemory(from: frame.baseAddress! + payloadStart, byteCount: payloadLength)
        return length
    }

    private func flushAll() {
        for w in 0..<ports.count where portPending[w] > 0 { flushPort(w) }
        if underlayPending > 0 { flushUnderlay() }
        if slow4Pending > 0 || slow6Pending > 0 || greSlow4Pending > 0 || greSlow6Pending > 0 {
            flushSlow()
        }
    }

    private func flushPort(_ w: Int) {
        let count = portPending[w]
        portPending[w] = 0
        do {
            let result = try ports[w].send(portBatches[w], count: count)
            portTx[w] &+= UInt64(result.sent)
            portDrops[w] &+= UInt64(count - result.sent)
            transmitQueueFull &+= UInt64(count - result.processed)
        } catch {
            ioErrors &+= 1
            portDrops[w] &+= UInt64(count)
        }
    }

    private func flushUnderlay() {
        let count = underlayPending
        underlayPending = 0
        do {
            let result = try underlay.send(underlayBatch, count: count)
            underlayTooBig &+= UInt64(result.tooBig)
            transmitQueueFull &+= UInt64(count - result.processed)
        } catch {
            ioErrors &+= 1
        }
    }

    private func flushSlow() {
        for (socket, batch, count) in [(udp4, slow4, slow4Pending), (udp6, slow6, slow6Pending)]
        where count > 0 {
            guard let socket else { continue }
            do {
                let result = try socket.send(batch, count: count)
                underlayTooBig &+= UInt64(result.tooBig)
                transmitQueueFull &+= UInt64(count - result.processed)
            } catch {
                ioErrors &+= 1
            }
        }
        slow4Pending = 0
        slow6Pending = 0
        for (socket, batch, count) in [
            (gre4, greSlow4, greSlow4Pending), (gre6, greSlow6, greSlow6Pending),
        ] where count > 0 {
            guard let socket else { continue }
            do {
                let result = try socket.send(batch, count: count)
                underlayTooBig &+= UInt64(result.tooBig)
                transmitQueueFull &+= UInt64(count - result.processed)
            } catch {
                ioErrors &+= 1
            }
        }
        greSlow4Pending = 0
        greSlow6Pending = 0
    }

    // MARK: Control

    private func apply(_ new: ForwardingConfiguration, _ staticMACs: [GatewaySnapshot.RemoteMAC]) {
        configurationsApplied &+= 1
        engine.apply(new)
        configurationRef = .passUnretained(new)
        templates.removeAll()
        problems = []
        for w in 0..<ports.count {
            if portIndexOf[w] >= 0 { workerPortOf[Int(portIndexOf[w])] = -1 }
            if let index = new.portIndex(named: ports[w].interfaceName) {
                portIndexOf[w] = Int32(index.rawValue)
                workerPortOf[Int(index.rawValue)] = w
            } else {
                portIndexOf[w] = -1
            }
        }
        // Static MACs: remove those that went, install the rest (idempotent).
        let wanted = Set(staticMACs)
        for old in statics.subtracting(wanted) {
            guard let sw = new.switchIndex(named: old.logicalSwitch) else { continue }
            if engine.macTable.lookup(old.mac, on: sw, now: now())?.isStatic == true {
                engine.macTable.remove(old.mac, on: sw)
            }
        }
        for s in staticMACs {
            guard let sw = new.switchIndex(named: s.logicalSwitch),
                let locator = new.locatorIndex(of: s.locator)
            else {
                problems.append(
                    "static MAC \(s.mac) on \(s.logicalSwitch) → \(s.locator): switch or locator not configured"
                )
                continue
            }
            do {
                try engine.installStatic(s.mac, on: sw, at: .remote(locator), now: now())
            } catch {
                problems.append("static MAC \(s.mac) on \(s.logicalSwitch): \(error)")
            }
        }
        statics = wanted
        // Multicast groups: join the new, leave the gone.
        var wantedGroups: Set<IPAddress> = []
        for case .some(let s) in new.switches {
            if case .multicast(let group) = s.replication { wantedGroups.insert(group.ip) }
        }
        for group in groups.subtracting(wantedGroups) { membership(group, join: false) }
        for group in wantedGroups.subtracting(groups) { membership(group, join: true) }
        groups = wantedGroups
    }

    private func membership(_ group: IPAddress, join: Bool) {
        let socket: UDPTunnelSocket?
        switch group {
        case .v4: socket = udp4
        case .v6: socket = udp6
        }
        guard let socket else {
            problems.append("multicast group \(group): no local tunnel address of its family")
            return
        }
        do {
            if join {
                try socket.join(group: group, interfaceIndex: underlay.interfaceIndex)
            } else {
                try socket.leave(group: group, interfaceIndex: underlay.interfaceIndex)
            }
        } catch {
            problems.append("multicast group \(group): \(error)")
        }
    }

    func leaveAllGroups() {
        for group in groups { membership(group, join: false) }
        groups = []
    }

    // MARK: Inspection (runs on the worker via DataPlane.inspect)

    public var currentConfiguration: ForwardingConfiguration { engine.configuration }
    /// How many configurations were applied: what switch indices mean changes with it.
    public private(set) var configurationsApplied = 0

    public var discoveredLocators: [Locator] { engine.discoveredLocators }

    public var joinedGroups: [IPAddress] { groups.sorted { $0.description < $1.description } }

    public var configurationProblems: [String] { problems }

    public func statistics() -> ForwardingStatistics { engine.statistics() }

    public func macEntries(of sw: SwitchIndex) -> [(mac: MACAddress, entry: MACTable.Entry)] {
        engine.macTable.entries(of: sw, now: now())
    }

    /// The MACs learned behind a local port, of every switch, in MAC table slots
    /// `from..<from + count`; `next` is where the following slice starts, nil after the last.
    public func localMACs(from: Int, count: Int) -> (
        macs: [(sw: SwitchIndex, mac: MACAddress)], next: Int?
    ) {
        let table = engine.macTable
        let macs = table.localMACs(now: now(), from: from, count: count)
        let end = from + count
        return (macs, end < table.capacity ? end : nil)
    }

    public func locator(_ index: LocatorIndex) -> Locator? { engine.locator(index) }

    public var secondsNow: UInt32 { now() }

    public func counters() -> DataPlaneCounters {
        let c = engine.configuration
        var vteps: [DataPlaneCounters.VTEP] = []
        for (i, l) in c.locators.enumerated() {
            guard let l, i < Self.countedLocators else { continue }
            vteps.append(
                .init(
                    locator: l, txFrames: vtepTx[i], rxFrames: vtepRx[i],
                    resolved: nextHops[l] != nil))
        }
        for (i, l) in engine.discoveredLocators.enumerated()
        where i < ForwardingEngine.defaultDiscoveredLocatorLimit {
            let c = Self.countedLocators + i
            vteps.append(
                .init(
                    locator: l, txFrames: vtepTx[c], rxFrames: vtepRx[c],
                    resolved: nextHops[l] != nil))
        }
        var bad: [Malformed: UInt64] = [:]
        for reason in Malformed.allCases where malformed[Int(reason.rawValue)] > 0 {
            bad[reason] = malformed[Int(reason.rawValue)]
        }
        return DataPlaneCounters(
            ports: ports.indices.map {
                .init(
                    name: ports[$0].interfaceName, rxFrames: portRx[$0], txFrames: portTx[$0],
                    drops: portDrops[$0], receiveOverruns: ports[$0].receiveDrops)
            },
            vteps: vteps, malformedTunnel: bad, underlayTooBig: underlayTooBig,
            underlayReceiveOverruns: (udp4?.receiveDrops ?? 0) + (udp6?.receiveDrops ?? 0)
                + (gre4?.receiveDrops ?? 0) + (gre6?.receiveDrops ?? 0),
            truncated: truncated, transmitQueueFull: transmitQueueFull, slowPath: slowPath,
            ownSource: ownSource, ioErrors: ioErrors)
    }
}

/// Outer-header templates by (locator, VNI): open addressing over preallocated storage, so a
/// lookup allocates nothing. Emptied when next hops or the configuration change, and when
/// full (templates are cheap to rebuild).
struct TemplateCache {
    private let mask: Int
    private let limit: Int
    private var count = 0
    private let keys: UnsafeMutablePointer<UInt64>
    private let values: UnsafeMutablePointer<OuterHeaderTemplate>

    init(capacity: Int) {
        var size = 8
        while size < 2 * capacity { size <<= 1 }
        mask = size - 1
        limit = capacity
        keys = .allocate(capacity: size)
        keys.initialize(repeating: .max, count: size)
        values = .allocate(capacity: size)
    }

    func deallocate() {
        keys.deallocate()
        values.deallocate()
    }

    @inline(__always)
    private static func key(_ l: LocatorIndex, _ vni: VNI) -> UInt64 {
        UInt64(l.rawValue) << 24 | UInt64(vni.rawValue)
    }

    @inline(__always)
    private static func home(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
    }

    @inline(__always)
    func find(_ l: LocatorIndex, _ vni: VNI) -> OuterHeaderTemplate? {
        let key = Self.key(l, vni)
        var slot = Self.home(key, mask)
        while true {
            let k = keys[slot]
            if k == key { return values[slot] }
            if k == .max { return nil }
            slot = (slot &+ 1) & mask
        }
    }

    mutating func insert(_ l: LocatorIndex, _ vni: VNI, _ template: OuterHeaderTemplate) {
        if count >= limit { removeAll() }
        let key = Self.key(l, vni)
        var slot = Self.home(key, mask)
        while keys[slot] != .max && keys[slot] != key { slot = (slot &+ 1) & mask }
        if keys[slot] == .max { count += 1 }
        keys[slot] = key
        (values + slot).initialize(to: template)
    }

    mutating func removeAll() {
        keys.update(repeating: .max, count: mask + 1)
        count = 0
    }
}

/// GRE sequence numbers (RFC 2890 §2.2) by (locator, VNI): one counter per tunnel and key,
/// shared by the fast and slow paths and kept across template rebuilds, so a peer that
/// checks order sees them increase. Open addressing over preallocated storage; when full,
/// every counter restarts (a peer then sees one jump back, as after a restart).
struct SequenceCounters {
    private let mask: Int
    private let limit: Int
    private var count = 0
    private let keys: UnsafeMutablePointer<UInt64>
    private let values: UnsafeMutablePointer<UInt32>

    init(capacity: Int) {
        var size = 8
        while size < 2 * capacity { size <<= 1 }
        mask = size - 1
        limit = capacity
        keys = .allocate(capacity: size)
        keys.initialize(repeating: .max, count: size)
        values = .allocate(capacity: size)
        values.initialize(repeating: 0, count: size)
    }

    func deallocate() {
        keys.deallocate()
        values.deallocate()
    }

    /// The next sequence number for (locator, VNI): 0, 1, 2, … wrapping at 2^32.
    @inline(__always)
    mutating func next(_ l: LocatorIndex, _ vni: VNI) -> UInt32 {
        let key = UInt64(l.rawValue) << 24 | UInt64(vni.rawValue)
        var slot = Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & mask
        while keys[slot] != .max && keys[slot] != key { slot = (slot &+ 1) & mask }
        if keys[slot] == .max {
            if count >= limit {
                keys.update(repeating: .max, count: mask + 1)
                values.update(repeating: 0, count: mask + 1)
                count = 0
                return next(l, vni)
            }
            count += 1
            keys[slot] = key
            values[slot] = 0
        }
        let value = values[slot]
        values[slot] = value &+ 1
        return value
    }
}

public enum GatewayError: Error, CustomStringConvertible {
    case tooManyPorts(Int)

    public var description: String {
        switch self {
        case .tooManyPorts(let n):
            "\(n) access ports given; a gateway takes at most \(PortIndex.count)"
        }
    }
}
