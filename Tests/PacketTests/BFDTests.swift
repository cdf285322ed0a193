import Packet
import Testing

@Suite("BFD control packets (RFC 5880) in the VXLAN VNI 0 frame Open vSwitch sends")
struct BFDTests {
    /// The frame lib/bfd.c `bfd_put_packet` builds, byte for byte: Ethernet to
    /// 00:23:20:00:00:01, IPv4 with TOS 0xC0 (IPTOS_PREC_INTERNETCONTROL), TTL 255, id 0, no
    /// DF (eth_compose zeroes them), 169.254.1.0 → 169.254.1.1; UDP 49152 → 3784 without a
    /// checksum; BFD version 1, state up, mult 3, length 24, discriminators 1 and 0x0a0b0c0d,
    /// min_tx 100 ms and min_rx 1000 ms in microseconds, echo 0.
    static let golden = hex(
        "002320000001 020000000001 0800"
            + "45c00034 0000 0000 ff11 64fb a9fe0100 a9fe0101"
            + "c000 0ec8 0020 0000"
            + "20c00318 00000001 0a0b0c0d 000186a0 000f4240 00000000")

    static let control = BFDControl(
        state: .up, detectMultiplier: 3, myDiscriminator: 1, yourDiscriminator: 0x0a0b_0c0d,
        desiredMinTxInterval: 100_000, requiredMinRxInterval: 1_000_000)

    @Test func storesOVSFrame() throws {
        let buffer = TestBuffer(count: 128)
        let length = try BFDTunnelFrame.store(
            Self.control, into: buffer.storage,
            source: MACAddress(0x02, 0, 0, 0, 0, 0x01), sourcePort: 49152)
        #expect(length == BFDTunnelFrame.length)
        #expect(buffer.bytes(0..<length) == Self.golden)
    }

    @Test func parsesOVSFrame() throws {
        let control = try Self.golden.withUnsafeBytes { frame throws in
            try BFDControl.parse(try BFDTunnelFrame.payload(of: frame))
        }
        #expect(control == Self.control)
    }

    @Test func pollAndFinalFlagsAndDiagnostic() throws {
        var bytes = Array(Self.golden[42...])
        bytes[0] = 0x20 | 3  // Neighbor Signaled Session Down
        bytes[1] = 0x40 | 0x20  // down, poll
        let control = try bytes.withUnsafeBytes { try BFDControl.parse($0) }
        #expect(control.state == .down)
        #expect(control.flags == .poll)
        #expect(control.diagnostic == .neighborSignaledSessionDown)
    }

    /// RFC 5880 §6.8.6: each of these is discarded.
    @Test(arguments: [
        (0, UInt8(0x40), BFDControl.Invalid.badVersion),
        (1, UInt8(0xC4), .authenticationPresent),
        (3, UInt8(23), .badLength),
        (3, UInt8(25), .badLength),
        (2, UInt8(0), .zeroMultiplier),
        (1, UInt8(0xC1), .multipoint),
        (7, UInt8(0), .zeroMyDiscriminator),
        (0, UInt8(0x29), .reservedDiagnostic),
    ])
    func refuses(offset: Int, value: UInt8, reason: BFDControl.Invalid) {
        var bytes = Array(Self.golden[42...])
        bytes[offset] = value
        #expect(throws: reason) { try bytes.withUnsafeBytes { try BFDControl.parse($0) } }
    }

    @Test func truncated() {
        let bytes = Array(Self.golden[42..<65])
        #expect(throws: BFDControl.Invalid.truncated) {
            try bytes.withUnsafeBytes { try BFDControl.parse($0) }
        }
    }

    /// RFC 5881 §5: TTL 255 only; other frames on VNI 0 are not BFD.
    @Test func frameChecks() {
        var ttl = Self.golden
        ttl[22] = 254
        // The header checksum follows the TTL (one's complement: +1 in the high byte).
        ttl[24] = 0x65
        #expect(throws: BFDTunnelFrame.Invalid.ttlNot255) {
            try ttl.withUnsafeBytes { _ = try BFDTunnelFrame.payload(of: $0) }
        }
        var port = Self.golden
        port[37] = 0xc9  // 3785: BFD echo, not control
        #expect(throws: BFDTunnelFrame.Invalid.notBFD) {
            try port.withUnsafeBytes { _ = try BFDTunnelFrame.payload(of: $0) }
        }
        var mac = Self.golden
        mac[5] = 0x02
        #expect(throws: BFDTunnelFrame.Invalid.notBFD) {
            try mac.withUnsafeBytes { _ = try BFDTunnelFrame.payload(of: $0) }
        }
        let short = Array(Self.golden[0..<40])
        #expect(throws: BFDTunnelFrame.Invalid.notBFD) {
            try short.withUnsafeBytes { _ = try BFDTunnelFrame.payload(of: $0) }
        }
    }
}
