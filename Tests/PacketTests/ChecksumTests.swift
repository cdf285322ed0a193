import Packet
import PropertyBased
import PropertyChecks
import Testing

@Suite("Internet checksum (RFC 1071, RFC 1624)")
struct ChecksumTests {
    /// RFC 1071 §3 numerical example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
    @Test func rfc1071Section3Example() {
        let bytes = hex("0001 f203 f4f5 f6f7")
        bytes.withUnsafeBytes { raw in
            #expect(InternetChecksum.foldedSum(raw) == 0xDDF2)
            #expect(InternetChecksum.checksum(raw) == 0x220D)
        }
    }

    /// A real IPv4 header (192.168.0.1 → 192.168.0.199, UDP) whose checksum is 0xb861.
    @Test func ipv4HeaderExample() {
        var bytes = hex("4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7")
        bytes.withUnsafeBytes { #expect(InternetChecksum.checksum($0) == 0xB861) }
        bytes[10] = 0xB8
        bytes[11] = 0x61
        bytes.withUnsafeBytes { #expect(InternetChecksum.isValid($0)) }
    }

    /// RFC 1624 §4: m = 0x5555 → m' = 0x3285 with the rest summing to 0xCD7A; HC = 0xDD2F.
    /// Recomputing gives 0x0000, and so must eqn. 3 (eqn. 2 would wrongly give 0xFFFF).
    @Test func rfc1624Section4Example() {
        #expect(InternetChecksum.update(0xDD2F, replacing: 0x5555, with: 0x3285) == 0x0000)
    }

    @Test func oddLengthAndEmpty() {
        hex("01").withUnsafeBytes { #expect(InternetChecksum.foldedSum($0) == 0x0100) }
        hex("0102 03").withUnsafeBytes { #expect(InternetChecksum.foldedSum($0) == 0x0402) }
        [UInt8]().withUnsafeBytes { #expect(InternetChecksum.foldedSum($0) == 0) }
    }

    /// A reference: big-endian 16-bit words summed one at a time with end-around carry.
    static func reference(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i < bytes.count {
            let high = UInt32(bytes[i]) << 8
            let low = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            sum += high | low
            sum = (sum & 0xFFFF) + (sum >> 16)
            i += 2
        }
        return UInt16(sum)
    }

    /// The fast sum equals the word-at-a-time reference at every length and alignment, and
    /// summing two pieces through the accumulator equals summing them joined (RFC 1071 §2(B)
    /// byte-swapping after an odd piece).
    @Test func fastSumMatchesReferenceProperty() {
        let input = zip(Gen.uint8().array(of: 0...300), Gen.int(in: 0...7), Gen.int(in: 0...300))
        seededCheck(count: 400, seed: 0x1071, input) { bytes, misalign, cut in
            let buffer = TestBuffer(bytes, at: misalign)
            let view = UnsafeRawBufferPointer(rebasing: buffer.raw[misalign...])
            #expect(InternetChecksum.foldedSum(view) == Self.reference(bytes))
            let split = min(cut, bytes.count)
            var pieces = InternetChecksum()
            pieces.add(UnsafeRawBufferPointer(rebasing: view[..<split]))
            pieces.add(UnsafeRawBufferPointer(rebasing: view[split...]))
            #expect(pieces.folded == Self.reference(bytes), "split at \(split)")
        }
    }

    /// RFC 1624 eqn. 3 after changing one 16-bit word gives the same checksum as recomputing
    /// (as a field value: recomputing never yields -0 except for all-zero data).
    @Test func incrementalUpdateEqualsRecomputeProperty() {
        let input = zip(
            Gen.uint16().array(of: 1...40), Gen.int(in: 0...39), Gen.uint16(), Gen.uint32())
        seededCheck(count: 1000, seed: 0x1624, input) { words, index, newWord, new32 in
            var data = words
            let at = index % data.count
            let before = Self.checksum(of: data)
            let old = data[at]
            data[at] = newWord
            let updated = InternetChecksum.update(before, replacing: old, with: newWord)
            #expect(updated == Self.checksum(of: data) || Self.allZero(data))
            // The 32-bit form, over two adjacent words.
            guard data.count >= 2 else { return }
            let pair = at == data.count - 1 ? at - 1 : at
            let old32 = UInt32(data[pair]) << 16 | UInt32(data[pair + 1])
            let beforePair = Self.checksum(of: data)
            data[pair] = UInt16(new32 >> 16)
            data[pair + 1] = UInt16(new32 & 0xFFFF)
            let updated32 = InternetChecksum.update(
                beforePair, replacing: IPv4Address(rawValue: old32),
                with: IPv4Address(rawValue: new32))
            #expect(updated32 == Self.checksum(of: data) || Self.allZero(data))
        }
    }

    static func checksum(of words: [UInt16]) -> UInt16 {
        let bytes = words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
        return bytes.withUnsafeBytes { InternetChecksum.checksum($0) }
    }

    static func allZero(_ words: [UInt16]) -> Bool { words.allSatisfy { $0 == 0 } }

    /// RFC 768 / RFC 8200 §8.1 pseudo-headers, checked against the reference sum of the
    /// pseudo-header laid out in bytes.
    @Test func pseudoHeaders() {
        var v4 = InternetChecksum()
        v4.addIPv4PseudoHeader(
            source: IPv4Address(192, 0, 2, 1), destination: IPv4Address(198, 51, 100, 7),
            protocol: 17, length: 0x1234)
        #expect(v4.folded == Self.reference(hex("c0000201 c6336407 0011 1234")))

        var v6 = InternetChecksum()
        let source = IPv6Address("2001:db8::1")!
        let destination = IPv6Address("2001:db8:ffff::2")!
        v6.addIPv6PseudoHeader(
            source: source, destination: destination, nextHeader: 58, length: 0x0001_0002)
        let bytes = hex(
            "20010db8000000000000000000000001 20010db8ffff00000000000000000002 00010002 0000003a")
        #expect(v6.folded == Self.reference(bytes))
    }

    @Test func udpChecksumFieldNeverZero() {
        // Data whose sum is 0xFFFF has checksum 0, which UDP must send as 0xFFFF.
        var sum = InternetChecksum()
        sum.add(UInt16(0xFFFF))
        #expect(sum.checksum == 0)
        #expect(UDPHeader.checksumField(sum) == 0xFFFF)
    }
}
