import Packet
import PropertyBased
import PropertyChecks
import TestSupport
import Testing

/// GSO super-frames, their segmentation (`SuperFrame`), merging segments back
/// (`TCPCoalescer`) and finishing partial checksums, checked against full recomputation.
@Suite struct OffloadTests {
    // MARK: Building super-frames as the kernel hands them over

    struct Shape {
        var ipv6: Bool
        var vlan: UInt16?
        var payload: Int
        var gsoSize: Int
        var push: Bool
        var timestamps: Bool
        var seed: UInt64
    }

    static let shapes = zip(
        Gen.bool(), Gen.uint16(in: 0...4095).optional, Gen.int(in: 1...20_000),
        Gen.int(in: 64...1448), Gen.bool(), Gen.bool(), Gen.uint64()
    ).map {
        Shape(ipv6: $0, vlan: $1, payload: $2, gsoSize: $3, push: $4, timestamps: $5, seed: $6)
    }

    /// A TCP frame of `payload` bytes with the TCP checksum field holding the pseudo-header
    /// sum (as TSO and GRO leave it) or, with `fullChecksum`, the full checksum.
    static func tcpFrame(
        ipv6: Bool, vlan: UInt16? = nil, payload: [UInt8], sequence: UInt32 = 1000,
        flags: UInt8 = TCPFlags.ack, timestamps: Bool = true, identification: UInt16 = 77,
        fullChecksum: Bool = false
    ) -> [UInt8] {
        let l2 = vlan == nil ? 14 : 18
        let tcpLength = timestamps ? 32 : 20
        let ipLength = ipv6 ? 40 : 20
        var frame = [UInt8](repeating: 0, count: l2 + ipLength + tcpLength + payload.count)
        frame.withUnsafeMutableBytes { b in
            let ethernet = EthernetHeader(
                destination: MACAddress(0x02, 0, 0, 0, 0, 2),
                source: MACAddress(0x02, 0, 0, 0, 0, 1),
                outerTag: vlan.map { VLANTag(vid: $0) },
                etherType: ipv6 ? EtherType.ipv6 : EtherType.ipv4)
            var at = try! ethernet.store(into: b, at: 0)
            let transportLength = tcpLength + payload.count
            if ipv6 {
                at = try! IPv6Header(
                    source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!,
                    nextHeader: IPProtocol.tcp, payloadLength: transportLength
                ).store(into: b, at: at)
            } else {
                at = try! IPv4Header(
                    source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2),
                    protocol: IPProtocol.tcp, payloadLength: transportLength,
                    identification: identification
                ).store(into: b, at: at)
            }
            let l4 = at
            let header = [
                0x9C, 0x40, 0x14, 0x51, UInt8(sequence >> 24), UInt8(sequence >> 16 & 0xFF),
                UInt8(sequence >> 8 & 0xFF), UInt8(sequence & 0xFF), 0, 0, 0x30, 0x39,
                UInt8(tcpLength / 4) << 4, flags, 0x01, 0xF5, 0, 0, 0, 0,
            ]
            for (i, byte) in header.enumerated() { b[l4 + i] = byte }
            if timestamps {
                let options: [UInt8] = [1, 1, 8, 10, 0, 0, 0x10, 0x20, 0, 0, 0x30, 0x40]
                for (i, byte) in options.enumerated() { b[l4 + 20 + i] = byte }
            }
            for (i, byte) in payload.enumerated() { b[l4 + tcpLength + i] = byte }
            var sum = Self.pseudoHeader(b, l3: l2, ipv6: ipv6, length: transportLength)
            if fullChecksum {
                sum.add(UnsafeRawBufferPointer(rebasing: b[l4..<b.count]))
                b.storeBytes(of: sum.checksum.bigEndian, toByteOffset: l4 + 16, as: UInt16.self)
            } else {
                b.storeBytes(of: sum.folded.bigEndian, toByteOffset: l4 + 16, as: UInt16.self)
            }
        }
        return frame
    }

    static func pseudoHeader(
        _ b: UnsafeMutableRawBufferPointer, l3: Int, ipv6: Bool, length: Int,
        protocol p: UInt8 = IPProtocol.tcp
    ) -> InternetChecksum {
        var sum = InternetChecksum()
        let v = UnsafeRawBufferPointer(b)
        if ipv6 {
            sum.addIPv6PseudoHeader(
                source: IPv6Address(loadingFrom: v, at: l3 + 8),
                destination: IPv6Address(loadingFrom: v, at: l3 + 24), nextHeader: p,
                length: UInt32(length))
        } else {
            sum.addIPv4PseudoHeader(
                source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2),
                protocol: p, length: UInt16(length))
        }
        return sum
    }

    static func payload(_ count: Int, seed: UInt64) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    static func gsoHeader(ipv6: Bool, size: Int, l2: Int, headers: Int) -> VirtioNetHeader {
        VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum,
            gsoType: ipv6 ? VirtioNetHeader.GSO.tcpv6 : VirtioNetHeader.GSO.tcpv4,
            headerLength: UInt16(headers), gsoSize: UInt16(size),
            checksumStart: UInt16(l2 + (ipv6 ? 40 : 20)), checksumOffset: 16)
    }

    /// Cuts `frame` into its segments, each written untagged into a 2 KB buffer.
    static func segments(of frame: [UInt8], header: VirtioNetHeader, limit: Int) throws -> [[UInt8]]
    {
        try frame.withUnsafeBytes { raw in
            let whole = try SuperFrame(raw, header: header, maximumSegmentSize: limit)
            var out: [[UInt8]] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            for i in 0..<whole.count {
                let length = buffer.withUnsafeMutableBytes {
                    whole.write(i, of: raw, vlan: nil, into: $0, at: 0)
                }
                #expect(length > 0)
                out.append(Array(buffer[0..<length]))
            }
            return out
        }
    }

    /// The TCP segment of an untagged frame: (sequence, flags, payload, checksum valid).
    static func tcpFields(_ segment: [UInt8]) -> (UInt32, UInt8, [UInt8], Bool, Int) {
        segment.withUnsafeBytes { raw in
            let ipv6 = raw.load(fromByteOffset: 12, as: UInt8.self) == 0x86
            let l4: Int
            let end: Int
            var sum = InternetChecksum()
            if ipv6 {
                let ip = try! IPv6Header.parse(raw, at: 14)
                l4 = ip.upperLayerOffset
                end = ip.payloadEnd
                sum.addIPv6PseudoHeader(
                    source: ip.source, destination: ip.destination, nextHeader: IPProtocol.tcp,
                    length: UInt32(end - l4))
            } else {
                let ip = try! IPv4Header.parse(raw, at: 14)  // verifies the header checksum
                l4 = ip.payloadOffset
                end = ip.payloadEnd
                sum.addIPv4PseudoHeader(
                    source: ip.source, destination: ip.destination, protocol: IPProtocol.tcp,
                    length: UInt16(end - l4))
            }
            let tcp = try! TCPHeader.parse(raw, at: l4, end: end)
            sum.add(UnsafeRawBufferPointer(rebasing: raw[l4..<end]))
            return (
                tcp.sequenceNumber, tcp.flags, Array(raw[tcp.payloadOffset..<end]),
                sum.folded == 0xFFFF, end
            )
        }
    }

    // MARK: Segmentation

    @Test func segmentsCarryThePayloadInOrderWithCorrectHeadersAndChecksums() throws {
        try seededCheck(count: 150, seed: 0x750, Self.shapes) { shape in
            let data = Self.payload(shape.payload, seed: shape.seed)
            let flags = TCPFlags.ack | (shape.push ? TCPFlags.psh : 0) | TCPFlags.fin
            let frame = Self.tcpFrame(
                ipv6: shape.ipv6, vlan: shape.vlan, payload: data, flags: flags,
                timestamps: shape.timestamps)
            let l2 = shape.vlan == nil ? 14 : 18
            let tcpLength = shape.timestamps ? 32 : 20
            let header = Self.gsoHeader(
                ipv6: shape.ipv6, size: shape.gsoSize, l2: l2,
                headers: l2 + (shape.ipv6 ? 40 : 20) + tcpLength)
            let parts = try Self.segments(of: frame, header: header, limit: 65_535)
            #expect(parts.count == (shape.payload + shape.gsoSize - 1) / shape.gsoSize)
            var joined: [UInt8] = []
            var expected: UInt32 = 1000
            for (i, part) in parts.enumerated() {
                let (sequence, segmentFlags, payload, valid, end) = Self.tcpFields(part)
                #expect(valid, "segment \(i) checksum")
                #expect(end == part.count)
                #expect(sequence == expected)
                #expect(payload.count <= shape.gsoSize)
                let last = i == parts.count - 1
                #expect(segmentFlags & TCPFlags.fin == (last ? TCPFlags.fin : 0))
                #expect(segmentFlags & TCPFlags.psh == (last && shape.push ? TCPFlags.psh : 0))
                if !shape.ipv6 {
                    #expect(UInt16(part[18]) << 8 | UInt16(part[19]) == 77 &+ UInt16(i))
                }
                expected &+= UInt32(payload.count)
                joined += payload
            }
            #expect(joined == data)
        }
    }

    @Test func aNarrowerLimitThanTheSendersSegmentSizeIsHonoured() throws {
        let data = Self.payload(10_000, seed: 1)
        let frame = Self.tcpFrame(ipv6: false, payload: data)
        let header = Self.gsoHeader(ipv6: false, size: 1448, l2: 14, headers: 66)
        let parts = try Self.segments(of: frame, header: header, limit: 1000)
        #expect(parts.count == 10)
        #expect(parts.allSatisfy { $0.count <= 14 + 20 + 32 + 1000 })
        #expect(parts.map { Self.tcpFields($0).2 }.joined().elementsEqual(data))
    }

    @Test func aTaggedSegmentKeepsItsTag() throws {
        let frame = Self.tcpFrame(ipv6: false, payload: Self.payload(3000, seed: 2))
        let header = Self.gsoHeader(ipv6: false, size: 1448, l2: 14, headers: 66)
        try frame.withUnsafeBytes { raw in
            let whole = try SuperFrame(raw, header: header, maximumSegmentSize: 65_535)
            var buffer = [UInt8](repeating: 0, count: 2048)
            let length = buffer.withUnsafeMutableBytes {
                whole.write(0, of: raw, vlan: 42, into: $0, at: 0)
            }
            #expect(length == 18 + 20 + 32 + 1448)
            let parsed = try buffer.withUnsafeBytes { try EthernetHeader.parse($0) }
            #expect(parsed.outerTag?.vid == 42)
            #expect(parsed.etherType == EtherType.ipv4)
            // Too small a buffer: nothing written.
            let none = buffer.withUnsafeMutableBytes {
                whole.write(
                    0, of: raw, vlan: nil,
                    into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<100]), at: 0)
            }
            #expect(none == 0)
        }
    }

    @Test func udpSegmentationGivesDatagramsWithTheirOwnLengthAndChecksum() throws {
        let data = Self.payload(5000, seed: 3)
        var frame = Frames.ipv4UDP(payloadLength: data.count)
        frame.replaceSubrange((14 + 28)..<frame.count, with: data)
        let header = VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum, gsoType: VirtioNetHeader.GSO.udpL4,
            headerLength: 42, gsoSize: 1200, checksumStart: 34, checksumOffset: 6)
        let parts = try Self.segments(of: frame, header: header, limit: 65_535)
        #expect(parts.count == 5)
        var joined: [UInt8] = []
        for part in parts {
            try part.withUnsafeBytes { raw in
                let ip = try IPv4Header.parse(raw, at: 14)
                let udp = try UDPHeader.parse(raw, at: ip.payloadOffset, end: ip.payloadEnd)
                #expect(Int(udp.length) == ip.payloadEnd - ip.payloadOffset)
                var sum = InternetChecksum()
                sum.addIPv4PseudoHeader(
                    source: ip.source, destination: ip.destination, protocol: IPProtocol.udp,
                    length: udp.length)
                sum.add(UnsafeRawBufferPointer(rebasing: raw[ip.payloadOffset..<ip.payloadEnd]))
                #expect(sum.folded == 0xFFFF)
                joined += raw[udp.payloadOffset..<ip.payloadEnd]
            }
        }
        #expect(joined == data)
    }

    @Test func kindsThatCannotBeSegmentedAreRefused() {
        let tcp = Self.tcpFrame(ipv6: false, payload: Self.payload(3000, seed: 4))
        tcp.withUnsafeBytes { raw in
            // TCPv6 named for an IPv4 frame.
            #expect(throws: Malformed.offloadUnsupported) {
                try SuperFrame(
                    raw, header: Self.gsoHeader(ipv6: true, size: 1000, l2: 14, headers: 66),
                    maximumSegmentSize: 65_535)
            }
            // A gso size of zero.
            #expect(throws: Malformed.offloadHeaderInvalid) {
                try SuperFrame(
                    raw, header: Self.gsoHeader(ipv6: false, size: 0, l2: 14, headers: 66),
                    maximumSegmentSize: 65_535)
            }
            // Cut short: the IP length runs past the bytes.
            let short = UnsafeRawBufferPointer(rebasing: raw[0..<1000])
            #expect(throws: Malformed.offloadHeaderInvalid) {
                try SuperFrame(
                    short, header: Self.gsoHeader(ipv6: false, size: 500, l2: 14, headers: 66),
                    maximumSegmentSize: 65_535)
            }
        }
    }

    // MARK: Coalescing

    /// Merges `segments` (full checksums) into one frame in a 64 KB buffer, as the worker
    /// does in a port's transmit slot. Returns the frames built and their headers.
    static func coalesce(_ segments: [[UInt8]], mtu: Int = 1500) -> [([UInt8], VirtioNetHeader)] {
        var out: [([UInt8], VirtioNetHeader)] = []
        var buffer = [UInt8](repeating: 0, count: 70_000)
        var coalescer = TCPCoalescer()
        var length = 0
        buffer.withUnsafeMutableBytes { b in
            func close() {
                guard length > 0 else { return }
                let header = coalescer.finish(b, frameStart: 16, frameLength: length)
                out.append((Array(b[16..<16 + length]), header))
                length = 0
            }
            for segment in segments {
                let joined = segment.withUnsafeBytes { raw in
                    length > 0 && coalescer.isOpen
                        && coalescer.append(raw, to: b, frameStart: 16, frameLength: &length)
                }
                if joined { continue }
                close()
                segment.withUnsafeBytes { raw in
                    (b.baseAddress! + 16).copyMemory(from: raw.baseAddress!, byteCount: raw.count)
                }
                length = segment.count
                _ = coalescer.start(
                    UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(b)[16..<16 + length]),
                    maximumIPLength: mtu)
            }
            close()
        }
        return out
    }

    @Test func segmentingThenCoalescingGivesBackTheSuperFrame() throws {
        try seededCheck(count: 100, seed: 0xC0A1, Self.shapes) { shape in
            let data = Self.payload(shape.payload, seed: shape.seed)
            let flags = TCPFlags.ack | (shape.push ? TCPFlags.psh : 0)
            let frame = Self.tcpFrame(
                ipv6: shape.ipv6, payload: data, flags: flags, timestamps: shape.timestamps)
            let headers = 14 + (shape.ipv6 ? 40 : 20) + (shape.timestamps ? 32 : 20)
            let header = Self.gsoHeader(
                ipv6: shape.ipv6, size: shape.gsoSize, l2: 14, headers: headers)
            let parts = try Self.segments(of: frame, header: header, limit: 65_535)
            let merged = Self.coalesce(parts)
            try #require(merged.count == 1)
            let (bytes, back) = merged[0]
            // A lone segment leaves as cut, with its checksum in full.
            let expected =
                parts.count > 1
                ? frame
                : Self.tcpFrame(
                    ipv6: shape.ipv6, payload: data, flags: flags, timestamps: shape.timestamps,
                    fullChecksum: true)
            #expect(bytes == expected, "the merged frame differs from the super-frame")
            if parts.count > 1 {
                #expect(back == header)
            } else {
                #expect(back == .plain)
                #expect(Self.tcpFields(bytes).3, "a lone segment keeps a valid checksum")
            }
        }
    }

    @Test func aCorruptSegmentIsNeverMerged() throws {
        let frame = Self.tcpFrame(ipv6: false, payload: Self.payload(4000, seed: 5))
        let header = Self.gsoHeader(ipv6: false, size: 1000, l2: 14, headers: 66)
        var parts = try Self.segments(of: frame, header: header, limit: 65_535)
        parts[2][100] ^= 0x40
        let merged = Self.coalesce(parts)
        #expect(merged.count == 3)
        #expect(merged[0].1.gsoSize == 1000)
        #expect(merged[0].0.count == 66 + 2000)
        // The corrupt one goes on alone as received (its receiver drops it); the next starts
        // a frame of its own.
        #expect(merged[1].0 == parts[2] && merged[1].1 == .plain)
        #expect(!Self.tcpFields(merged[1].0).3)
        #expect(merged[2].0 == parts[3] && merged[2].1 == .plain)
    }

    @Test func segmentsThatDoNotContinueTheFlowStartAnotherFrame() throws {
        let data = Self.payload(1000, seed: 6)
        let a = Self.tcpFrame(ipv6: false, payload: data, sequence: 1, fullChecksum: true)
        let gap = Self.tcpFrame(ipv6: false, payload: data, sequence: 5000, fullChecksum: true)
        let syn = Self.tcpFrame(
            ipv6: false, payload: data, sequence: 6000, flags: TCPFlags.syn | TCPFlags.ack,
            fullChecksum: true)
        let v6 = Self.tcpFrame(ipv6: true, payload: data, sequence: 7000, fullChecksum: true)
        let merged = Self.coalesce([a, gap, syn, v6])
        #expect(merged.count == 4)
        #expect(merged.allSatisfy { $0.1 == .plain })
        #expect(merged.map(\.0) == [a, gap, syn, v6])
    }

    @Test func aShortSegmentOrPushEndsTheFrame() throws {
        let full = Self.payload(1000, seed: 7)
        let short = Self.payload(300, seed: 8)
        let segments = [
            Self.tcpFrame(ipv6: false, payload: full, sequence: 0, fullChecksum: true),
            Self.tcpFrame(ipv6: false, payload: short, sequence: 1000, fullChecksum: true),
            Self.tcpFrame(ipv6: false, payload: full, sequence: 1300, fullChecksum: true),
            Self.tcpFrame(
                ipv6: false, payload: full, sequence: 2300, flags: TCPFlags.ack | TCPFlags.psh,
                fullChecksum: true),
            Self.tcpFrame(ipv6: false, payload: full, sequence: 3300, fullChecksum: true),
        ]
        let merged = Self.coalesce(segments)
        #expect(merged.map { $0.0.count - 66 } == [1300, 2000, 1000])
        #expect(merged[1].0[14 + 20 + 13] & TCPFlags.psh != 0)
    }

    @Test func aSuperFrameFromATunnelIsCutForThePortsMTU() throws {
        // A neighbour's GRO train, decapsulated whole: 6,990 payload bytes, partial checksum.
        let data = Self.payload(6990, seed: 9)
        let frame = Self.tcpFrame(ipv6: false, payload: data)
        let merged = Self.coalesce([frame], mtu: 1450)
        try #require(merged.count == 1)
        #expect(merged[0].1.gsoSize == 1450 - 52)
        #expect(merged[0].1.gsoType == VirtioNetHeader.GSO.tcpv4)
        #expect(merged[0].0 == frame)
        // And cut with that header, the segments are valid and carry the data.
        let parts = try Self.segments(of: merged[0].0, header: merged[0].1, limit: 65_535)
        #expect(parts.count == 5)
        #expect(parts.allSatisfy { Self.tcpFields($0).3 && $0.count <= 14 + 1450 })
        #expect(Array(parts.map { Self.tcpFields($0).2 }.joined()) == data)
    }

    /// The last super-frame of a transfer carries FIN (and PSH), and one a neighbour finished
    /// in software carries a full checksum: neither could be joined, but each must still
    /// leave with a GSO header (without one the port refuses it, EMSGSIZE), and the cut puts
    /// FIN and PSH on the last segment only.
    @Test(arguments: [false, true])
    func aClosingSuperFrameFromATunnelIsCutToo(fullChecksum: Bool) throws {
        let data = Self.payload(17_000, seed: 11)
        let frame = Self.tcpFrame(
            ipv6: fullChecksum, payload: data,
            flags: TCPFlags.ack | TCPFlags.psh | TCPFlags.fin, fullChecksum: fullChecksum)
        let merged = Self.coalesce([frame], mtu: 1500)
        try #require(merged.count == 1)
        let header = merged[0].1
        #expect(
            header.gsoType == (fullChecksum ? VirtioNetHeader.GSO.tcpv6 : VirtioNetHeader.GSO.tcpv4)
        )
        let parts = try Self.segments(of: merged[0].0, header: header, limit: 65_535)
        #expect(parts.count == (17_000 + Int(header.gsoSize) - 1) / Int(header.gsoSize))
        #expect(parts.allSatisfy { Self.tcpFields($0).3 && $0.count <= 14 + 1500 })
        #expect(Array(parts.map { Self.tcpFields($0).2 }.joined()) == data)
        let flags = parts.map { $0[14 + (fullChecksum ? 40 : 20) + 13] }
        #expect(flags.dropLast().allSatisfy { $0 == TCPFlags.ack })
        #expect(flags.last == TCPFlags.ack | TCPFlags.psh | TCPFlags.fin)
    }

    /// Bytes after the IP packet (Ethernet padding, or whatever a tunnel's sender left there)
    /// are not payload: a frame that carries them starts no merge, so nothing is appended
    /// behind them and no length is taken from them; it leaves exactly as it came. Found by
    /// the `offload` fuzz target (a super-frame with 2,625 bytes after it read back as 4
    /// segments, not 2; `fuzz/crashes/offload/crash-175fec06…`).
    @Test(arguments: [4, 2625])
    func bytesAfterTheIPPacketStartNoMerge(trailing: Int) {
        let first = Self.tcpFrame(
            ipv6: false, payload: Self.payload(trailing == 4 ? 1448 : 2896, seed: 13))
        let padded = first + [UInt8](repeating: 0xEE, count: trailing)
        let next = Self.tcpFrame(
            ipv6: false, payload: Self.payload(1448, seed: 14),
            sequence: 1000 + UInt32(first.count - 66))
        let merged = Self.coalesce([padded, next], mtu: 1500)
        #expect(merged.count == 2)
        #expect(merged.first?.0 == padded)
        #expect(merged.first?.1 == .plain)
        // Padding after the IPv6 payload too.
        let v6 = Self.tcpFrame(ipv6: true, payload: Self.payload(1000, seed: 15)) + [0, 0]
        #expect(Self.coalesce([v6]).first?.0 == v6)
    }

    /// A lone SYN or RST is never taken, however long.
    @Test func aSynOrResetIsNeverTaken() {
        for flags in [TCPFlags.syn, TCPFlags.rst | TCPFlags.ack] {
            let frame = Self.tcpFrame(
                ipv6: false, payload: Self.payload(3000, seed: 12), flags: flags)
            #expect(Self.coalesce([frame]).first?.1 == .plain)
        }
    }

    @Test func aLoneSegmentWithAPartialChecksumLeavesFinished() {
        let frame = Self.tcpFrame(ipv6: true, payload: Self.payload(500, seed: 10))
        #expect(!Self.tcpFields(frame).3)
        let merged = Self.coalesce([frame])
        #expect(merged.count == 1 && merged[0].1 == .plain)
        #expect(Self.tcpFields(merged[0].0).3)
    }

    // MARK: UDP GSO trains of VXLAN datagrams

    /// Cuts a train as the kernel's UDP segmentation does (net/ipv4/udp_offload.c
    /// `__udp_gso_segment`): the first `headerLength` bytes repeated in front of each
    /// `gsoSize`-byte piece of the rest, lengths and checksums per datagram (the UDP one from
    /// the partial sum in the field, adjusted for the new length).
    static func cutAsTheKernel(_ train: [UInt8], _ header: VirtioNetHeader, ipv6: Bool) -> [[UInt8]]
    {
        let h = Int(header.headerLength)
        let size = Int(header.gsoSize)
        var out: [[UInt8]] = []
        var at = h
        while at < train.count {
            var d = Array(train[0..<h]) + train[at..<min(train.count, at + size)]
            at += size
            d.withUnsafeMutableBytes { b in
                let l3 = 14
                let udp = Int(header.checksumStart)
                let udpLength = b.count - udp
                if ipv6 {
                    b.storeBytes(
                        of: UInt16(udpLength).bigEndian, toByteOffset: l3 + 4, as: UInt16.self)
                } else {
                    b.storeBytes(
                        of: UInt16(b.count - l3).bigEndian, toByteOffset: l3 + 2, as: UInt16.self)
                    b.storeBytes(of: UInt16(0), toByteOffset: l3 + 10, as: UInt16.self)
                    let c = InternetChecksum.checksum(
                        UnsafeRawBufferPointer(rebasing: b[l3..<l3 + 20]))
                    b.storeBytes(of: c.bigEndian, toByteOffset: l3 + 10, as: UInt16.self)
                }
                b.storeBytes(
                    of: UInt16(udpLength).bigEndian, toByteOffset: udp + 4, as: UInt16.self)
                var sum = Self.pseudoHeader(
                    b, l3: l3, ipv6: ipv6, length: udpLength, protocol: IPProtocol.udp)
                b.storeBytes(of: UInt16(0), toByteOffset: udp + 6, as: UInt16.self)
                sum.add(UnsafeRawBufferPointer(rebasing: b[udp..<b.count]))
                b.storeBytes(of: sum.checksum.bigEndian, toByteOffset: udp + 6, as: UInt16.self)
            }
            out.append(d)
        }
        return out
    }

    @Test(arguments: [false, true])
    func aTrainCutAsTheKernelCutsItGivesOneVXLANDatagramPerSegment(ipv6: Bool) throws {
        let network: OuterHeaderTemplate.Network =
            ipv6
            ? .ipv6(source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!)
            : .ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2))
        let template = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 5001, network: network,
            ethernet: .init(
                destination: MACAddress(0x02, 0, 0, 0, 0, 0xAA),
                source: MACAddress(0x02, 0, 0, 0, 0, 0xBB)))
        let data = Self.payload(10_000, seed: 11)
        let frame = Self.tcpFrame(ipv6: false, payload: data)
        let header = Self.gsoHeader(ipv6: false, size: 1398, l2: 14, headers: 66)
        let parts = try Self.segments(of: frame, header: header, limit: 1398)
        let segmentLength = parts[0].count
        var train = [UInt8](repeating: 0, count: 70_000)
        let offload = try train.withUnsafeMutableBytes { b in
            for (i, part) in parts.enumerated() {
                let at = template.headerLength + i * (segmentLength + 8)
                for (j, byte) in part.enumerated() { b[at + j] = byte }
            }
            return try template.stampTrain(
                into: b, at: 0, segmentLength: segmentLength, count: parts.count,
                lastLength: parts.last!.count, sourcePort: 0xC123)
        }
        let length =
            template.headerLength + (parts.count - 1) * (segmentLength + 8) + parts.last!.count
        train.removeSubrange(length...)
        #expect(offload.gsoType == VirtioNetHeader.GSO.udpL4)
        #expect(offload.flags == VirtioNetHeader.needsChecksum)
        #expect(Int(offload.gsoSize) == segmentLength + 8)
        #expect(Int(offload.headerLength) == template.headerLength - 8)
        let datagrams = Self.cutAsTheKernel(train, offload, ipv6: ipv6)
        try #require(datagrams.count == parts.count)
        for (i, d) in datagrams.enumerated() {
            try d.withUnsafeBytes { raw in
                #expect(try parseStack(raw) >= 6, "datagram \(i) parses to the inner TCP")
                let outer = try EthernetHeader.parse(raw)
                let udpAt: Int
                if ipv6 {
                    udpAt = try IPv6Header.parse(raw, at: outer.payloadOffset).upperLayerOffset
                } else {
                    udpAt = try IPv4Header.parse(raw, at: outer.payloadOffset).payloadOffset
                }
                let udp = try UDPHeader.parse(raw, at: udpAt)
                #expect(udp.sourcePort == 0xC123 && udp.destinationPort == 4789)
                #expect(try VXLANHeader.parse(raw, at: udp.payloadOffset).vni == 5001)
                #expect(Array(raw[(udp.payloadOffset + 8)...]) == parts[i])
            }
        }
    }

    // MARK: Partial checksums and the header itself

    @Test func finishingAPartialChecksumEqualsAFullRecomputation() {
        seededCheck(count: 100, seed: 0x9A27, zip(Gen.bool(), Gen.int(in: 0...3000), Gen.uint64()))
        {
            ipv6, size, seed in
            var partial = Self.tcpFrame(ipv6: ipv6, payload: Self.payload(size, seed: seed))
            let full = Self.tcpFrame(
                ipv6: ipv6, payload: Self.payload(size, seed: seed), fullChecksum: true)
            let done = partial.withUnsafeMutableBytes { PartialChecksum.complete(in: $0) }
            #expect(done)
            #expect(partial == full)
            // A complete checksum is left alone.
            var again = full
            #expect(!again.withUnsafeMutableBytes { PartialChecksum.complete(in: $0) })
            #expect(again == full)
            // The vnet header's way gives the same bytes.
            var viaHeader = Self.tcpFrame(ipv6: ipv6, payload: Self.payload(size, seed: seed))
            let l4 = 14 + (ipv6 ? 40 : 20)
            let header = VirtioNetHeader(
                flags: VirtioNetHeader.needsChecksum, checksumStart: UInt16(l4),
                checksumOffset: 16)
            #expect(viaHeader.withUnsafeMutableBytes { header.completeChecksum(in: $0) })
            #expect(viaHeader == full)
        }
    }

    @Test func offsetsOutsideTheFrameFinishNothing() {
        var frame = Self.tcpFrame(ipv6: false, payload: [1, 2, 3])
        let before = frame
        let header = VirtioNetHeader(
            flags: VirtioNetHeader.needsChecksum, checksumStart: 60, checksumOffset: 16)
        #expect(!frame.withUnsafeMutableBytes { header.completeChecksum(in: $0) })
        #expect(frame == before)
    }

    @Test func theHeaderRoundTripsInHostOrderAndShiftsWithATag() {
        let header = VirtioNetHeader(
            flags: 1, gsoType: 4, headerLength: 86, gsoSize: 1428, checksumStart: 54,
            checksumOffset: 16)
        var bytes = [UInt8](repeating: 0, count: 10)
        bytes.withUnsafeMutableBytes { header.store(to: $0.baseAddress!) }
        #expect(bytes == [1, 4, 86, 0, 0x94, 0x05, 54, 0, 16, 0])
        #expect(bytes.withUnsafeBytes { VirtioNetHeader.load(from: $0.baseAddress!) } == header)
        let tagged = header.shifted(by: 4)
        #expect(tagged.checksumStart == 58 && tagged.headerLength == 90)
        #expect(tagged.gsoSize == 1428 && tagged.checksumOffset == 16)
        #expect(header.isSuperFrame && !VirtioNetHeader.plain.isSuperFrame)
    }
}
