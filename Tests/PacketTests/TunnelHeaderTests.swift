import Packet
import PropertyBased
import PropertyChecks
import Testing

@Suite("VXLAN (RFC 7348), GRE (RFC 2784/2890), NVGRE (RFC 7637)")
struct TunnelHeaderTests {
    /// RFC 7348 §5: flags 0x08 (I), 24 reserved bits, VNI 0x00007B = 123, 8 reserved bits.
    @Test func vxlanExample() throws {
        let bytes = hex("08 000000 00007b 00")
        let header = try bytes.withUnsafeBytes { raw throws(Malformed) in
            try VXLANHeader.parse(raw, at: 0)
        }
        #expect(header.vni == 123)
        let buffer = TestBuffer(count: 8)
        #expect(try VXLANHeader(vni: 123).store(into: buffer.storage, at: 0) == 8)
        #expect(buffer.bytes(0..<8) == bytes)
    }

    @Test(arguments: [
        ("00 000000 00007b 00", Malformed.vxlanIFlagClear),
        ("88 000000 00007b 00", Malformed.vxlanReservedFlagsSet),  // VXLAN-GBP G bit
        ("0c 000000 00007b 00", Malformed.vxlanReservedFlagsSet),  // VXLAN-GPE P bit
        ("08 000001 00007b 00", Malformed.vxlanReservedBitsSet),
        ("08 800000 00007b 00", Malformed.vxlanReservedBitsSet),
        ("08 000000 00007b 01", Malformed.vxlanReservedBitsSet),
    ])
    func vxlanStrictFlags(_ text: String, _ reason: Malformed) {
        _ = hex(text).withUnsafeBytes { raw in
            #expect(throws: reason) { try VXLANHeader.parse(raw, at: 0) }
        }
    }

    @Test func vxlanRoundTripProperty() throws {
        try seededCheck(count: 500, seed: 0x7348, Gen.uint32(in: 0...0xFF_FFFF)) { vni in
            let buffer = TestBuffer(count: 13)
            _ = try VXLANHeader(vni: vni).store(into: buffer.storage, at: 5)
            #expect(try VXLANHeader.parse(buffer.raw, at: 5).vni == vni)
        }
    }

    /// RFC 2890 §2: K set, protocol 0x6558, key 100.
    @Test func greKeyExample() throws {
        let bytes = hex("2000 6558 00000064") + hex("ffffffffffff")
        let gre = try bytes.withUnsafeBytes { raw throws(Malformed) in
            try GREHeader.parse(raw, at: 0)
        }
        #expect(gre.key == 100 && gre.sequence == nil && !gre.checksumPresent)
        #expect(gre.headerLength == 8 && gre.payloadOffset == 8)
        #expect(try gre.requiredKey() == 100)
    }

    /// C, K and S: checksum over header and a two-byte payload, worked by hand:
    /// B000 + 6558 + 0000 + 0000 + 0000 + 0001 + 0000 + 0002 + ABCD = 0xC129 (end-around
    /// carry), so the field is ~0xC129 = 0x3ED6 (RFC 2784 §2.5).
    @Test func greChecksumKeySequenceExample() throws {
        let header = GREHeader(checksumPresent: true, key: 1, sequence: 2)
        let buffer = TestBuffer(count: 18)
        buffer.storage[16] = 0xAB
        buffer.storage[17] = 0xCD
        #expect(try header.store(into: buffer.storage, at: 0, payloadLength: 2) == 16)
        #expect(buffer.bytes(0..<18) == hex("b000 6558 3ed6 0000 00000001 00000002 abcd"))
        let parsed = try GREHeader.parse(buffer.raw, at: 0)
        #expect(parsed.checksum == 0x3ED6 && parsed.key == 1 && parsed.sequence == 2)
        buffer.storage[17] = 0xCE
        #expect(throws: Malformed.greBadChecksum) { try GREHeader.parse(buffer.raw, at: 0) }
    }

    /// Every combination of C, K and S survives build → parse, at an odd offset, with the
    /// checksum verified over a random payload.
    @Test func greAllFlagCombinationsRoundTripProperty() throws {
        let input = zip(
            Gen.bool(), Gen.uint32().optional, Gen.uint32().optional, Gen.uint8().array(of: 0...80))
        try seededCheck(count: 400, seed: 0x2890, input) { c, key, sequence, payload in
            let header = GREHeader(checksumPresent: c, key: key, sequence: sequence)
            let buffer = TestBuffer(count: 1 + 16 + payload.count)
            let end = 1 + header.headerLength
            for (i, b) in payload.enumerated() { buffer.storage[end + i] = b }
            #expect(
                try header.store(into: buffer.storage, at: 1, payloadLength: payload.count) == end)
            let parsed = try GREHeader.parse(buffer.raw, at: 1)
            #expect(parsed.key == key && parsed.sequence == sequence)
            #expect(parsed.checksumPresent == c && parsed.payloadOffset == end)
            #expect(parsed.protocolType == EtherType.transparentEthernetBridging)
            if key == nil {
                #expect(throws: Malformed.greKeyMissing) { try parsed.requiredKey() }
            }
        }
    }

    @Test(arguments: [
        ("2001 6558 00000064", Malformed.greBadVersion),  // version 1 (PPTP)
        ("6000 6558 00000064", Malformed.greRoutingPresent),
        ("2800 6558 00000064", Malformed.greReservedBitsSet),  // bit 4, strict source route
        ("2400 6558 00000064", Malformed.greReservedBitsSet),  // bit 5, recursion
        ("2000 0800 00000064", Malformed.greWrongProtocol),
        ("2000 6558 000000", Malformed.greTruncated),
    ])
    func greRefusals(_ text: String, _ reason: Malformed) {
        _ = hex(text).withUnsafeBytes { raw in
            #expect(throws: reason) { try GREHeader.parse(raw, at: 0) }
        }
    }

    @Test func greIgnoresReservedBits6To12() throws {
        // RFC 2784 §2.3: bits 6–12 "MUST be ignored on receipt".
        let bytes = hex("23f8 6558 00000064")
        let gre = try bytes.withUnsafeBytes { raw throws(Malformed) in
            try GREHeader.parse(raw, at: 0)
        }
        #expect(gre.key == 100)
    }

    /// RFC 7637 §3.2: VSID 0x123456, FlowID 0x78.
    @Test func nvgreExample() throws {
        let bytes = hex("2000 6558 12345678")
        let header = try bytes.withUnsafeBytes { raw throws(Malformed) in
            try NVGREHeader.parse(raw, at: 0)
        }
        #expect(header.vsid == 0x12_3456 && header.flowID == 0x78 && header.key == 0x1234_5678)
        let buffer = TestBuffer(count: 8)
        _ = try NVGREHeader(vsid: 0x12_3456, flowID: 0x78).store(into: buffer.storage, at: 0)
        #expect(buffer.bytes(0..<8) == bytes)
    }

    @Test(arguments: [
        ("a000 6558 12345678", Malformed.nvgreChecksumPresent),
        ("3000 6558 12345678", Malformed.nvgreSequencePresent),
        ("0000 6558 12345678", Malformed.greKeyMissing),
        ("2000 86dd 12345678", Malformed.greWrongProtocol),
        ("2000 6558 123456", Malformed.greTruncated),
        ("2007 6558 12345678", Malformed.greBadVersion),
    ])
    func nvgreRefusals(_ text: String, _ reason: Malformed) {
        _ = hex(text).withUnsafeBytes { raw in
            #expect(throws: reason) { try NVGREHeader.parse(raw, at: 0) }
        }
    }

    @Test func nvgreRoundTripProperty() throws {
        let input = zip(Gen.uint32(in: 0...0xFF_FFFF), Gen.uint8())
        try seededCheck(count: 400, seed: 0x7637, input) { vsid, flowID in
            let buffer = TestBuffer(count: 11)
            _ = try NVGREHeader(vsid: vsid, flowID: flowID).store(into: buffer.storage, at: 3)
            let parsed = try NVGREHeader.parse(buffer.raw, at: 3)
            #expect(parsed.vsid == vsid && parsed.flowID == flowID)
            // NVGRE is GRE with a key: the GRE parser reads the same key.
            #expect(try GREHeader.parse(buffer.raw, at: 3).key == vsid << 8 | UInt32(flowID))
        }
    }
}
