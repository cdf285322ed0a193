import Packet
import PropertyBased
import PropertyChecks
import Testing

@Suite("Ethernet II, IEEE 802.1Q and 802.1ad tags")
struct EthernetTests {
    @Test func untagged() throws {
        let frame = hex("ffffffffffff 020000000001 0806") + [UInt8](repeating: 0, count: 28)
        let header = try frame.withUnsafeBytes { raw throws(Malformed) in
            try EthernetHeader.parse(raw)
        }
        #expect(header.destination == .broadcast)
        #expect(header.source == MACAddress("02:00:00:00:00:01"))
        #expect(header.etherType == EtherType.arp)
        #expect(header.outerTag == nil && header.innerTag == nil)
        #expect(header.payloadOffset == 14)
        #expect(header.vlanID == nil)
    }

    /// 802.1Q: TPID 0x8100, TCI = PCP 5, DEI 1, VID 100 → 0xB064.
    @Test func singleTag() throws {
        let frame =
            hex("020000000002 020000000001 8100 b064 0800") + [UInt8](repeating: 0, count: 20)
        let header = try frame.withUnsafeBytes { raw throws(Malformed) in
            try EthernetHeader.parse(raw)
        }
        #expect(header.outerTag == VLANTag(tpid: 0x8100, pcp: 5, dei: true, vid: 100))
        #expect(header.outerTag?.tci == 0xB064)
        #expect(header.innerTag == nil)
        #expect(header.etherType == EtherType.ipv4)
        #expect(header.payloadOffset == 18)
        #expect(header.vlanID == 100)
    }

    /// 802.1ad QinQ: S-tag 0x88A8 VID 10 outside, C-tag 0x8100 VID 20 inside.
    @Test func qinq() throws {
        let frame =
            hex("020000000002 020000000001 88a8 000a 8100 0014 86dd")
            + [UInt8](repeating: 0, count: 40)
        let header = try frame.withUnsafeBytes { raw throws(Malformed) in
            try EthernetHeader.parse(raw)
        }
        #expect(header.outerTag == VLANTag(tpid: EtherType.serviceVLAN, vid: 10))
        #expect(header.innerTag == VLANTag(tpid: EtherType.vlan, vid: 20))
        #expect(header.etherType == EtherType.ipv6)
        #expect(header.payloadOffset == 22)
        #expect(header.vlanID == 20)
    }

    @Test func legacyQinQTPIDAndPriorityTag() throws {
        let frame = hex("020000000002 020000000001 9100 0000 0800")
        let header = try frame.withUnsafeBytes { raw throws(Malformed) in
            try EthernetHeader.parse(raw)
        }
        #expect(header.outerTag?.tpid == 0x9100)
        #expect(header.vlanID == nil, "VID 0 is a priority tag, no VLAN")
    }

    @Test func storeMatchesParse() throws {
        let header = EthernetHeader(
            destination: MACAddress("00:11:22:33:44:55")!, source: MACAddress("66:77:88:99:aa:bb")!,
            outerTag: VLANTag(tpid: EtherType.serviceVLAN, pcp: 3, vid: 4094),
            innerTag: VLANTag(vid: 1), etherType: EtherType.ipv4)
        let buffer = TestBuffer(count: 22)
        #expect(try header.store(into: buffer.storage, at: 0) == 22)
        #expect(buffer.bytes(0..<22) == hex("001122334455 66778899aabb 88a8 6ffe 8100 0001 0800"))
        #expect(try EthernetHeader.parse(buffer.raw) == header)
    }

    /// Insert pushes a new outermost tag and strip pops it, moving only the MAC addresses;
    /// the payload bytes never move.
    @Test func insertThenStripRoundTripProperty() throws {
        let input = zip(
            Gen.uint16(in: 0...4095), Gen.uint8(in: 0...7), Gen.bool(), Gen.int(in: 0...2),
            Gen.uint8().array(of: 0...60))
        try seededCheck(count: 300, seed: 0x8021, input) {
            vid, pcp, dei, existing, payload in
            let tags = (0..<existing).map { VLANTag(vid: UInt16($0 + 1)) }
            let original = EthernetHeader(
                destination: MACAddress(rawValue: 0x0200_0000_0001),
                source: MACAddress(rawValue: 0x0200_0000_0002),
                outerTag: tags.first, innerTag: tags.count > 1 ? tags[1] : nil,
                etherType: EtherType.ipv4)
            let headroom = 8
            let buffer = TestBuffer(count: headroom + 22 + payload.count)
            let headerEnd = try original.store(into: buffer.storage, at: headroom)
            for (i, b) in payload.enumerated() { buffer.storage[headerEnd + i] = b }
            let length = headerEnd - headroom + payload.count
            let before = buffer.bytes(headroom..<headroom + length)

            let tag = VLANTag(tpid: EtherType.serviceVLAN, pcp: pcp, dei: dei, vid: vid)
            let start = try VLANTag.insert(
                tag, into: buffer.storage, frameStart: headroom, frameLength: length)
            #expect(start == headroom - 4)
            let tagged = UnsafeRawBufferPointer(rebasing: buffer.raw[start..<start + length + 4])
            if existing < 2 {
                let parsed = try EthernetHeader.parse(tagged)
                #expect(parsed.outerTag == tag)
                #expect(parsed.innerTag == tags.first)
                #expect(
                    parsed.destination == original.destination && parsed.source == original.source)
            } else {
                #expect(throws: Malformed.tooManyVLANTags) { try EthernetHeader.parse(tagged) }
            }
            let stripped = try VLANTag.strip(
                from: buffer.storage, frameStart: start, frameLength: length + 4)
            #expect(stripped == headroom)
            #expect(buffer.bytes(headroom..<headroom + length) == before)
        }
    }

    @Test func stripOfUntaggedFrameIsANoOp() throws {
        let bytes = hex("020000000002 020000000001 0800 45")
        let buffer = TestBuffer(bytes)
        #expect(
            try VLANTag.strip(from: buffer.storage, frameStart: 0, frameLength: bytes.count) == 0)
        #expect(buffer.bytes(0..<bytes.count) == bytes)
    }

    @Test func insertWithoutHeadroomThrows() {
        let buffer = TestBuffer(count: 64)
        #expect(throws: Malformed.noHeadroom) {
            try VLANTag.insert(
                VLANTag(vid: 5), into: buffer.storage, frameStart: 3, frameLength: 60)
        }
        #expect(throws: Malformed.ethernetTruncated) {
            try VLANTag.insert(
                VLANTag(vid: 5), into: buffer.storage, frameStart: 8, frameLength: 60)
        }
        #expect(throws: Malformed.ethernetTruncated) {
            try VLANTag.strip(from: buffer.storage, frameStart: -1, frameLength: 20)
        }
    }

    @Test func tagFieldsAreMasked() {
        let tag = VLANTag(pcp: 9, vid: 5000)
        #expect(tag.pcp == 1 && tag.vid == 5000 & 0xFFF)
        #expect(VLANTag(tpid: 0x8100, tci: 0xFFFF) == VLANTag(pcp: 7, dei: true, vid: 4095))
    }
}
