import Packet
import PropertyBased
import PropertyChecks
import Testing

@Suite("Outer-header templates: build once, stamp per packet")
struct OuterHeaderTemplateTests {
    static let ethernet = OuterHeaderTemplate.Ethernet(
        destination: MACAddress("00:11:22:33:44:55")!, source: MACAddress("66:77:88:99:aa:bb")!)
    static let v4 = OuterHeaderTemplate.Network.ipv4(
        source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2))
    static let v6 = OuterHeaderTemplate.Network.ipv6(
        source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!)

    /// Places `inner` after `headroom` bytes and stamps the template in front of it.
    static func encapsulate(
        _ template: OuterHeaderTemplate, inner: [UInt8], sourcePort: UInt16 = 0xC000,
        flowID: UInt8 = 0, sequence: UInt32 = 0, identification: UInt16 = 0,
        flowLabel: UInt32? = nil
    ) throws -> [UInt8] {
        let buffer = TestBuffer(inner, at: template.headerLength)
        let end = try template.stamp(
            into: buffer.storage, at: 0, innerLength: inner.count, sourcePort: sourcePort,
            flowID: flowID, sequence: sequence, identification: identification,
            flowLabel: flowLabel)
        #expect(end == template.headerLength + inner.count)
        return buffer.bytes(0..<end)
    }

    static let innerFrame =
        hex("ffffffffffff 020000000001 0806")
        + hex(
            "0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002")

    /// Hand-checked: total length 20 + 8 + 8 + 14 = 0x32; the IPv4 checksum is
    /// ~(4500 + 0032 + 4000 + 4011 + 0a00 + 0001 + 0a00 + 0002) = ~0xD946 = 0x26B9; UDP length
    /// 0x1e, checksum 0 (RFC 7348 §5 allows it over IPv4); VXLAN I flag and VNI 0x123456.
    @Test func vxlanOverIPv4HandChecked() throws {
        let template = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 0x12_3456, network: Self.v4, ethernet: Self.ethernet)
        #expect(template.headerLength == 14 + 20 + 8 + 8)
        let inner = hex("020000000002 020000000001 88b5")
        let packet = try Self.encapsulate(template, inner: inner)
        let expected =
            hex(
                """
                001122334455 66778899aabb 0800
                4500 0032 0000 4000 4011 26b9 0a000001 0a000002
                c000 12b5 001e 0000
                08000000 12345600
                """) + inner
        #expect(hexString(packet) == hexString(expected))
    }

    @Test func vxlanOverIPv4ParsesBack() throws {
        let template = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 5000, network: Self.v4, ethernet: Self.ethernet,
            udpDestinationPort: 4789)
        let packet = try Self.encapsulate(template, inner: Self.innerFrame, sourcePort: 50000)
        try packet.withUnsafeBytes { raw in
            #expect(try parseStack(raw) == 6)  // Ethernet, IPv4, UDP, VXLAN, Ethernet, ARP
            let ip = try IPv4Header.parse(raw, at: 14)
            #expect(ip.dontFragment && ip.ttl == 64 && ip.identification == 0)
            let udp = try UDPHeader.parse(raw, at: 34, end: ip.payloadEnd)
            #expect(udp.sourcePort == 50000 && udp.destinationPort == 4789 && udp.checksum == 0)
            #expect(try VXLANHeader.parse(raw, at: 42).vni == 5000)
        }
    }

    /// The RFC 1624 incremental IPv4 checksum equals a full recomputation for every inner
    /// length, identification, TTL and TOS.
    @Test func ipv4IncrementalChecksumEqualsRecomputeProperty() throws {
        let input = zip(
            Wire.ipv4, Wire.ipv4, Gen.uint8(), Gen.uint8(), Gen.uint16(), Gen.int(in: 0...9000),
            Gen.element(of: Encapsulation.allCases))
        try seededCheck(count: 300, seed: 0x1624_0004, input) {
            src, dst, ttl, tos, id, length, encapsulation in
            let template = try OuterHeaderTemplate(
                encapsulation: encapsulation!, vni: 77,
                network: .ipv4(
                    source: src, destination: dst, ttl: ttl, tos: tos, dontFragment: false))
            let buffer = TestBuffer(count: template.headerLength + length)
            _ = try template.stamp(
                into: buffer.storage, at: 0, innerLength: length, sourcePort: 1, identification: id)
            var header = buffer.bytes(0..<20)
            let stamped = UInt16(header[10]) << 8 | UInt16(header[11])
            header[10] = 0
            header[11] = 0
            let recomputed = header.withUnsafeBytes { InternetChecksum.checksum($0) }
            #expect(stamped == recomputed)
            let ip = try IPv4Header.parse(buffer.raw, at: 0)
            #expect(Int(ip.totalLength) == template.headerLength + length)
            #expect(ip.identification == id && ip.ttl == ttl && ip.tos == tos && !ip.dontFragment)
        }
    }

    /// Over IPv6 the UDP checksum is computed by default (RFC 6935/6936 make zero an opt-in)
    /// and verifies over the pseudo-header, UDP header, VXLAN header and inner frame.
    @Test func vxlanOverIPv6ComputesUDPChecksumProperty() throws {
        let input = zip(
            Wire.ipv6, Wire.ipv6, Gen.uint16(in: 1...65535), Gen.uint8().array(of: 14...200))
        try seededCheck(count: 200, seed: 0x6936, input) { src, dst, port, inner in
            let template = try OuterHeaderTemplate(
                encapsulation: .vxlan, vni: 0xFF_FFFF, network: .ipv6(source: src, destination: dst)
            )
            let packet = try Self.encapsulate(template, inner: inner, sourcePort: port)
            try packet.withUnsafeBytes { raw in
                let ip = try IPv6Header.parse(raw, at: 0)
                #expect(ip.upperLayerProtocol == IPProtocol.udp)
                let udp = try UDPHeader.parse(raw, at: ip.upperLayerOffset, end: ip.payloadEnd)
                #expect(udp.sourcePort == port && Int(udp.length) == 16 + inner.count)
                #expect(udp.checksum != 0)
                var sum = InternetChecksum()
                sum.addIPv6PseudoHeader(
                    source: src, destination: dst, nextHeader: IPProtocol.udp,
                    length: UInt32(udp.length))
                sum.add(UnsafeRawBufferPointer(rebasing: raw[40...]))
                #expect(sum.folded == 0xFFFF, "UDP checksum does not verify")
                #expect(try VXLANHeader.parse(raw, at: 48).vni == 0xFF_FFFF)
            }
        }
    }

    @Test func ipv6ZeroChecksumOptionAndFlowLabel() throws {
        let template = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 1,
            network: .ipv6(
                source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!,
                hopLimit: 7, trafficClass: 0xB8, flowLabel: 0x12345, zeroUDPChecksum: true))
        var packet = try Self.encapsulate(template, inner: Self.innerFrame)
        try packet.withUnsafeBytes { raw in
            let ip = try IPv6Header.parse(raw, at: 0)
            #expect(ip.flowLabel == 0x12345 && ip.hopLimit == 7 && ip.trafficClass == 0xB8)
            #expect(try UDPHeader.parse(raw, at: 40).checksum == 0)
        }
        packet = try Self.encapsulate(template, inner: Self.innerFrame, flowLabel: 0xABCDE)
        try packet.withUnsafeBytes { raw in
            let ip = try IPv6Header.parse(raw, at: 0)
            #expect(ip.flowLabel == 0xABCDE && ip.trafficClass == 0xB8)
        }
    }

    /// GRE with the VNI as key and every combination of C and S, over both families: the
    /// checksum verifies over header and payload, the sequence number is the one passed.
    @Test func greAllCombinationsProperty() throws {
        let input = zip(
            Gen.bool(), Gen.bool(), Gen.bool(), Gen.uint32(), Gen.uint32(in: 0...0xFF_FFFF),
            Gen.uint8().array(of: 14...120))
        try seededCheck(count: 300, seed: 0x2784, input) {
            c, s, overV6, sequence, vni, inner in
            let template = try OuterHeaderTemplate(
                encapsulation: .gre, vni: vni, network: overV6 ? Self.v6 : Self.v4,
                ethernet: Self.ethernet, greChecksum: c, greSequence: s)
            let packet = try Self.encapsulate(template, inner: inner, sequence: sequence)
            try packet.withUnsafeBytes { raw in
                let ethernet = try EthernetHeader.parse(raw)
                #expect(ethernet.etherType == (overV6 ? EtherType.ipv6 : EtherType.ipv4))
                let (l4, end): (Int, Int)
                if overV6 {
                    let ip = try IPv6Header.parse(raw, at: 14)
                    #expect(ip.upperLayerProtocol == IPProtocol.gre)
                    (l4, end) = (ip.upperLayerOffset, ip.payloadEnd)
                } else {
                    let ip = try IPv4Header.parse(raw, at: 14)
                    #expect(ip.protocol == IPProtocol.gre)
                    (l4, end) = (ip.payloadOffset, ip.payloadEnd)
                }
                #expect(end == packet.count)
                let gre = try GREHeader.parse(raw, at: l4, end: end)  // verifies C
                #expect(gre.checksumPresent == c)
                #expect(try gre.requiredKey() == vni)
                #expect(gre.sequence == (s ? sequence : nil))
                #expect(Array(raw[gre.payloadOffset...]) == inner)
            }
        }
    }

    @Test func nvgreCarriesVSIDAndFlowID() throws {
        let template = try OuterHeaderTemplate(
            encapsulation: .nvgre, vni: 0x00_5001, network: Self.v4)
        let packet = try Self.encapsulate(template, inner: Self.innerFrame, flowID: 0xA7)
        try packet.withUnsafeBytes { raw in
            let ip = try IPv4Header.parse(raw, at: 0)
            #expect(ip.protocol == IPProtocol.gre)
            let nvgre = try NVGREHeader.parse(raw, at: 20)
            #expect(nvgre.vsid == 0x5001 && nvgre.flowID == 0xA7)
            #expect(try parseStack(UnsafeRawBufferPointer(rebasing: raw[28...])) == 2)
        }
    }

    @Test func stampLeavesBytesOutsideThePacketAlone() throws {
        let template = try OuterHeaderTemplate(
            encapsulation: .vxlan, vni: 9, network: Self.v6, ethernet: Self.ethernet)
        let buffer = TestBuffer(count: 200)
        for i in 0..<200 { buffer.storage[i] = 0xEE }
        let end = try template.stamp(
            into: buffer.storage, at: 10, innerLength: 60, sourcePort: 60000)
        #expect(end == 10 + template.headerLength + 60)
        #expect(buffer.bytes(0..<10).allSatisfy { $0 == 0xEE })
        #expect(buffer.bytes(end..<200).allSatisfy { $0 == 0xEE })
    }

    @Test func refusals() throws {
        #expect(throws: InvalidOuterHeaderTemplate.vniOutOfRange(16_777_216)) {
            try OuterHeaderTemplate(encapsulation: .vxlan, vni: 16_777_216, network: Self.v4)
        }
        #expect(
            InvalidOuterHeaderTemplate.vniOutOfRange(16_777_216).description
                == "VNI 16777216 is out of range (0–16777215)")
        #expect(throws: InvalidOuterHeaderTemplate.udpDestinationPortZero) {
            try OuterHeaderTemplate(
                encapsulation: .vxlan, vni: 1, network: Self.v4, udpDestinationPort: 0)
        }
        let template = try OuterHeaderTemplate(encapsulation: .vxlan, vni: 1, network: Self.v4)
        #expect(template.maximumInnerLength == 65535 - 36)
        let buffer = TestBuffer(count: 100)
        #expect(throws: Malformed.innerFrameTooLarge) {
            try template.stamp(
                into: buffer.storage, at: 0, innerLength: template.maximumInnerLength + 1)
        }
        #expect(throws: Malformed.noHeadroom) {
            try template.stamp(into: buffer.storage, at: 0, innerLength: 65)
        }
        #expect(throws: Malformed.noHeadroom) {
            try template.stamp(into: buffer.storage, at: -1, innerLength: 10)
        }
    }
}
