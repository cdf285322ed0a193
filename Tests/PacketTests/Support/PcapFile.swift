import Foundation

/// A classic libpcap capture file (the format `tcpdump -w` writes; not pcapng), read whole
/// into memory. Test-only: the golden fixtures are a few kilobytes.
///
/// Format: a 24-byte file header — magic, version 2.4, reserved, snapshot length, link type —
/// then per packet a 16-byte record header — seconds, fraction, captured length, original
/// length — and the captured bytes. The magic says both the byte order of every header field
/// and the timestamp unit: 0xA1B2C3D4 microseconds, 0xA1B23C4D nanoseconds.
struct PcapFile {
    /// The link-layer header types (tcpdump.org LINKTYPE_*) this reader knows how to strip.
    enum LinkType: UInt32, Sendable {
        /// LINKTYPE_ETHERNET: every record starts with an Ethernet II header.
        case ethernet = 1
        /// LINKTYPE_LINUX_SLL: the 16-byte "cooked" header of `tcpdump -i any` (libpcap < 1.10).
        case linuxSLL = 113
        /// LINKTYPE_LINUX_SLL2: the 20-byte cooked header of `tcpdump -i any` (libpcap ≥ 1.10).
        case linuxSLL2 = 276
    }

    /// One captured packet.
    struct Record: Sendable {
        /// Seconds since the Unix epoch.
        var seconds: UInt32
        /// The sub-second part in nanoseconds (a microsecond file's value × 1000).
        var nanoseconds: UInt32
        /// The length of the packet on the wire; more than `data.count` when the snapshot
        /// length cut it.
        var originalLength: Int
        /// The captured bytes, starting with the link-layer header.
        var data: [UInt8]

        var isTruncated: Bool { data.count < originalLength }
    }

    /// Why a file was not read.
    enum ReadError: Error, CustomStringConvertible, Equatable {
        case tooShort
        case pcapng
        case badMagic(UInt32)
        case unsupportedVersion(major: UInt16, minor: UInt16)
        case unsupportedLinkType(UInt32)
        case truncatedRecord(index: Int)
        case cookedHeaderTooShort(index: Int)

        var description: String {
            switch self {
            case .tooShort: "file is shorter than the 24-byte pcap file header"
            case .pcapng:
                "file is pcapng, not classic pcap: re-save it with `editcap -F pcap` or capture "
                    + "with `tcpdump -w`"
            case .badMagic(let magic):
                "magic 0x\(String(magic, radix: 16)) is not a classic pcap file"
            case .unsupportedVersion(let major, let minor):
                "pcap version \(major).\(minor) is not 2.4"
            case .unsupportedLinkType(let type):
                "link type \(type) is not Ethernet (1), LINUX_SLL (113) or LINUX_SLL2 (276)"
            case .truncatedRecord(let index): "record \(index) runs past the end of the file"
            case .cookedHeaderTooShort(let index):
                "record \(index) is shorter than its cooked (SLL) header"
            }
        }
    }

    let linkType: LinkType
    let snapshotLength: UInt32
    /// Whether the timestamps were written in nanoseconds (magic 0xA1B23C4D).
    let nanosecondResolution: Bool
    /// Whether the file's byte order is the opposite of this machine's.
    let byteSwapped: Bool
    let records: [Record]

    /// The captured bytes of every record, link-layer header included.
    var packets: [[UInt8]] { records.map(\.data) }

    init(contentsOf url: URL) throws {
        try self.init(bytes: [UInt8](Data(contentsOf: url)))
    }

    init(bytes: [UInt8]) throws(ReadError) {
        guard bytes.count >= 24 else { throw .tooShort }
        let magicLE = Self.uint32(bytes, 0, bigEndian: false)
        let bigEndian: Bool
        switch magicLE {
        case 0xA1B2_C3D4: (bigEndian, nanosecondResolution) = (false, false)
        case 0xA1B2_3C4D: (bigEndian, nanosecondResolution) = (false, true)
        case 0xD4C3_B2A1: (bigEndian, nanosecondResolution) = (true, false)
        case 0x4D3C_B2A1: (bigEndian, nanosecondResolution) = (true, true)
        case 0x0A0D_0D0A: throw .pcapng
        default: throw .badMagic(magicLE)
        }
        byteSwapped = bigEndian != (UInt32(1).bigEndian == 1)
        let major = Self.uint16(bytes, 4, bigEndian: bigEndian)
        let minor = Self.uint16(bytes, 6, bigEndian: bigEndian)
        guard major == 2, minor == 4 else { throw .unsupportedVersion(major: major, minor: minor) }
        snapshotLength = Self.uint32(bytes, 16, bigEndian: bigEndian)
        // The upper bits of the link-type field may carry FCS information (pcap spec §4).
        let rawLinkType = Self.uint32(bytes, 20, bigEndian: bigEndian) & 0x03FF_FFFF
        guard let linkType = LinkType(rawValue: rawLinkType) else {
            throw .unsupportedLinkType(rawLinkType)
        }
        self.linkType = linkType

        var records: [Record] = []
        var at = 24
        while at < bytes.count {
            let index = records.count
            guard bytes.count - at >= 16 else { throw .truncatedRecord(index: index) }
            let seconds = Self.uint32(bytes, at, bigEndian: bigEndian)
            let fraction = Self.uint32(bytes, at + 4, bigEndian: bigEndian)
            let captured = Int(Self.uint32(bytes, at + 8, bigEndian: bigEndian))
            let original = Int(Self.uint32(bytes, at + 12, bigEndian: bigEndian))
            at += 16
            guard captured <= bytes.count - at else { throw .truncatedRecord(index: index) }
            records.append(
                Record(
                    seconds: seconds,
                    nanoseconds: nanosecondResolution ? fraction : fraction &* 1000,
                    originalLength: original, data: Array(bytes[at..<at + captured])))
            at += captured
        }
        self.records = records
    }

    /// The network-layer packets with their protocol type (an EtherType), whatever the link
    /// type: the Ethernet header (without VLAN tags) or the cooked SLL/SLL2 header removed.
    func networkPackets() throws(ReadError) -> [(protocolType: UInt16, bytes: ArraySlice<UInt8>)] {
        var result: [(protocolType: UInt16, bytes: ArraySlice<UInt8>)] = []
        for (index, record) in records.enumerated() {
            let data = record.data
            let (headerLength, typeOffset) =
                switch linkType {
                case .ethernet: (14, 12)
                case .linuxSLL: (16, 14)  // packet type, ARPHRD, addr len, 8-byte addr, protocol
                case .linuxSLL2: (20, 0)  // protocol first, then reserved, ifindex, ARPHRD, …
                }
            guard data.count >= headerLength else { throw .cookedHeaderTooShort(index: index) }
            let protocolType = UInt16(data[typeOffset]) << 8 | UInt16(data[typeOffset + 1])
            result.append((protocolType, data[headerLength...]))
        }
        return result
    }

    private static func uint16(_ bytes: [UInt8], _ at: Int, bigEndian: Bool) -> UInt16 {
        let (a, b) = (UInt16(bytes[at]), UInt16(bytes[at + 1]))
        return bigEndian ? a << 8 | b : b << 8 | a
    }

    private static func uint32(_ bytes: [UInt8], _ at: Int, bigEndian: Bool) -> UInt32 {
        let value = (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(bytes[at + $1]) }
        return bigEndian ? value : value.byteSwapped
    }
}
