/// BFD session states (RFC 5880 §4.1 "Sta"), in the values the two high bits of the second
/// byte carry.
public enum BFDState: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case adminDown = 0
    case down = 1
    case initializing = 2
    case up = 3

    /// The names Open vSwitch writes to `bfd_status` (lib/bfd.c `bfd_state_str`).
    public var description: String {
        switch self {
        case .adminDown: "admin_down"
        case .down: "down"
        case .initializing: "init"
        case .up: "up"
        }
    }
}

/// BFD diagnostic codes (RFC 5880 §4.1 "Diag"); 9–31 are reserved.
public enum BFDDiagnostic: UInt8, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case controlDetectionTimeExpired = 1
    case echoFunctionFailed = 2
    case neighborSignaledSessionDown = 3
    case forwardingPlaneReset = 4
    case pathDown = 5
    case concatenatedPathDown = 6
    case administrativelyDown = 7
    case reverseConcatenatedPathDown = 8

    /// The texts Open vSwitch writes to `bfd_status` (lib/bfd.c `bfd_diag_str`).
    public var description: String {
        switch self {
        case .none: "No Diagnostic"
        case .controlDetectionTimeExpired: "Control Detection Time Expired"
        case .echoFunctionFailed: "Echo Function Failed"
        case .neighborSignaledSessionDown: "Neighbor Signaled Session Down"
        case .forwardingPlaneReset: "Forwarding Plane Reset"
        case .pathDown: "Path Down"
        case .concatenatedPathDown: "Concatenated Path Down"
        case .administrativelyDown: "Administratively Down"
        case .reverseConcatenatedPathDown: "Reverse Concatenated Path Down"
        }
    }
}

/// A BFD control packet without authentication (RFC 5880 §4.1): the 24 bytes Open vSwitch
/// sends and accepts (lib/bfd.c `struct msg`). Intervals are in microseconds, as on the wire.
public struct BFDControl: Hashable, Sendable {
    public static let length = 24
    public static let version: UInt8 = 1

    /// Flag bits of the second byte below the state (RFC 5880 §4.1).
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue & 0x3F }
        public static let multipoint = Flags(rawValue: 0x01)
        public static let demand = Flags(rawValue: 0x02)
        public static let authentication = Flags(rawValue: 0x04)
        public static let controlPlaneIndependent = Flags(rawValue: 0x08)
        public static let final = Flags(rawValue: 0x10)
        public static let poll = Flags(rawValue: 0x20)
    }

    public var diagnostic: BFDDiagnostic
    public var state: BFDState
    public var flags: Flags
    public var detectMultiplier: UInt8
    public var myDiscriminator: UInt32
    public var yourDiscriminator: UInt32
    public var desiredMinTxInterval: UInt32
    public var requiredMinRxInterval: UInt32
    public var requiredMinEchoRxInterval: UInt32

    public init(
        diagnostic: BFDDiagnostic = .none, state: BFDState, flags: Flags = [],
        detectMultiplier: UInt8 = 3, myDiscriminator: UInt32, yourDiscriminator: UInt32 = 0,
        desiredMinTxInterval: UInt32, requiredMinRxInterval: UInt32,
        requiredMinEchoRxInterval: UInt32 = 0
    ) {
        self.diagnostic = diagnostic
        self.state = state
        self.flags = flags
        self.detectMultiplier = detectMultiplier
        self.myDiscriminator = myDiscriminator
        self.yourDiscriminator = yourDiscriminator
        self.desiredMinTxInterval = desiredMinTxInterval
        self.requiredMinRxInterval = requiredMinRxInterval
        self.requiredMinEchoRxInterval = requiredMinEchoRxInterval
    }

    /// Why a control packet was discarded: the reception checks of RFC 5880 §6.8.6 that do
    /// not depend on a session, in the order Open vSwitch applies them.
    public enum Invalid: UInt8, Error, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        case truncated
        case badVersion
        case authenticationPresent
        case badLength
        case zeroMultiplier
        case multipoint
        case zeroMyDiscriminator
        case reservedDiagnostic

        public var description: String {
            switch self {
            case .truncated: "shorter than 24 bytes"
            case .badVersion: "version is not 1"
            case .authenticationPresent: "authentication present (not configured)"
            case .badLength: "Length field under 24 or beyond the UDP payload"
            case .zeroMultiplier: "Detect Mult is zero"
            case .multipoint: "Multipoint bit set"
            case .zeroMyDiscriminator: "My Discriminator is zero"
            case .reservedDiagnostic: "reserved diagnostic code"
            }
        }
    }

    /// Reads the control packet that is a UDP payload (RFC 5880 §6.8.6): version 1, no
    /// authentication, a Length of at least 24 that fits the payload (longer packets are
    /// read, as Open vSwitch does), a non-zero multiplier and My Discriminator, no Multipoint.
    public static func parse(_ payload: UnsafeRawBufferPointer) throws(Invalid) -> BFDControl {
        guard payload.count >= length else { throw .truncated }
        let first = payload.loadByte(at: 0)
        let second = payload.loadByte(at: 1)
        guard first >> 5 == version else { throw .badVersion }
        let flags = Flags(rawValue: second)
        guard !flags.contains(.authentication) else { throw .authenticationPresent }
        let declared = Int(payload.loadByte(at: 3))
        guard declared >= length, declared <= payload.count else { throw .badLength }
        let multiplier = payload.loadByte(at: 2)
        guard multiplier != 0 else { throw .zeroMultiplier }
        guard !flags.contains(.multipoint) else { throw .multipoint }
        let mine = payload.loadBigEndianUInt32(at: 4)
        guard mine != 0 else { throw .zeroMyDiscriminator }
        guard let diagnostic = BFDDiagnostic(rawValue: first & 0x1F) else {
            throw .reservedDiagnostic
        }
        return BFDControl(
            diagnostic: diagnostic, state: BFDState(rawValue: second >> 6)!, flags: flags,
            detectMultiplier: multiplier, myDiscriminator: mine,
            yourDiscriminator: payload.loadBigEndianUInt32(at: 8),
            desiredMinTxInterval: payload.loadBigEndianUInt32(at: 12),
            requiredMinRxInterval: payload.loadBigEndianUInt32(at: 16),
            requiredMinEchoRxInterval: payload.loadBigEndianUInt32(at: 20))
    }

    /// Writes the 24 bytes at `offset`; returns the offset just past them.
    public func store(into buffer: UnsafeMutableRawBufferPointer, at offset: Int)
        throws(Malformed) -> Int
    {
        guard buffer.contains(Self.length, at: offset) else { throw .noHeadroom }
        buffer.storeBytes(
            of: Self.version << 5 | diagnostic.rawValue, toByteOffset: offset, as: UInt8.self)
        buffer.storeBytes(
            of: state.rawValue << 6 | flags.rawValue, toByteOffset: offset + 1, as: UInt8.self)
        buffer.storeBytes(of: detectMultiplier, toByteOffset: offset + 2, as: UInt8.self)
        buffer.storeBytes(of: UInt8(Self.length), toByteOffset: offset + 3, as: UInt8.self)
        buffer.storeBigEndian(myDiscriminator, at: offset + 4)
        buffer.storeBigEndian(yourDiscriminator, at: offset + 8)
        buffer.storeBigEndian(desiredMinTxInterval, at: offset + 12)
        buffer.storeBigEndian(requiredMinRxInterval, at: offset + 16)
        buffer.storeBigEndian(requiredMinEchoRxInterval, at: offset + 20)
        return offset + Self.length
    }
}

/// BFD over a tunnel as Open vSwitch and NSX carry it (lib/bfd.c `bfd_put_packet`,
/// vtep(5) Tunnel `bfd_config_local`/`bfd_config_remote`): an Ethernet frame inside the
/// tunnel (VXLAN VNI 0) holding IPv4 (TOS 0xC0, TTL 255, no DF) and UDP to port 3784
/// (RFC 5881 §4) without a checksum, then the 24-byte control packet.
public enum BFDTunnelFrame {
    /// RFC 5881 §4: single-hop BFD control packets.
    public static let udpPort: UInt16 = 3784
    /// Ethernet 14 + IPv4 20 + UDP 8 + BFD 24.
    public static let length = 66
    /// vtep(5): the default `bfd_dst_mac` both ways.
    public static let defaultDestinationMAC = MACAddress(0x00, 0x23, 0x20, 0x00, 0x00, 0x01)
    /// vtep(5) `bfd_config_local:bfd_dst_ip`: where a peer sends our BFD packets.
    public static let defaultLocalIP = IPv4Address(169, 254, 1, 0)
    /// vtep(5) `bfd_config_remote:bfd_dst_ip`: where we send the peer's.
    public static let defaultRemoteIP = IPv4Address(169, 254, 1, 1)
    /// RFC 5881 §5 (GTSM): a single-hop BFD packet arrives with TTL 255 or is discarded.
    public static let ttl: UInt8 = 255

    /// Why a frame from the BFD channel is not a BFD control packet for us.
    public enum Invalid: UInt8, Error, Hashable, Sendable, CaseIterable, CustomStringConvertible {
        /// Not an untagged IPv4 Ethernet frame to the BFD MAC, or not UDP to port 3784.
        case notBFD
        case badIPv4
        /// RFC 5881 §5.
        case ttlNot255
        case fragment

        public var description: String {
            switch self {
            case .notBFD: "not UDP to port 3784 in IPv4 to the BFD MAC"
            case .badIPv4: "IPv4 or UDP header invalid"
            case .ttlNot255: "TTL is not 255 (RFC 5881 §5)"
            case .fragment: "IPv4 fragment"
            }
        }
    }

    /// The UDP payload of a BFD frame to `destinationMAC`, checked as Open vSwitch checks it
    /// (lib/bfd.c `bfd_should_process_flow`, `bfd_process_packet`). Cheap enough to be called
    /// on every VNI 0 frame.
    public static func payload(
        of frame: UnsafeRawBufferPointer, destinationMAC: MACAddress = defaultDestinationMAC
    ) throws(Invalid) -> UnsafeRawBufferPointer {
        guard frame.count >= 14 + 20 + 8,
            MACAddress(rawValue: frame.loadBigEndianUInt64(at: 0) >> 16) == destinationMAC,
            frame.loadBigEndianUInt16(at: 12) == EtherType.ipv4,
            frame.loadByte(at: 14 + 9) == IPProtocol.udp
        else { throw .notBFD }
        let ip: IPv4Header
        do { ip = try IPv4Header.parse(frame, at: 14) } catch { throw .badIPv4 }
        guard !ip.isFragment else { throw .fragment }
        let udp: UDPHeader
        do { udp = try UDPHeader.parse(frame, at: ip.payloadOffset, end: ip.payloadEnd) } catch {
            throw .badIPv4
        }
        guard udp.destinationPort == udpPort else { throw .notBFD }
        guard ip.ttl == ttl else { throw .ttlNot255 }
        return UnsafeRawBufferPointer(
            rebasing: frame[udp.payloadOffset..<udp.payloadOffset + udp.payloadLength])
    }

    /// Writes a whole frame carrying `control` at the start of `buffer`; returns its length
    /// (`length`).
    public static func store(
        _ control: BFDControl, into buffer: UnsafeMutableRawBufferPointer,
        source: MACAddress, destination: MACAddress = defaultDestinationMAC,
        sourceIP: IPv4Address = defaultLocalIP, destinationIP: IPv4Address = defaultRemoteIP,
        sourcePort: UInt16
    ) throws(Malformed) -> Int {
        guard buffer.count >= length else { throw .noHeadroom }
        var at = try EthernetHeader(
            destination: destination, source: source, etherType: EtherType.ipv4
        )
        .store(into: buffer, at: 0)
        at = try IPv4Header(
            source: sourceIP, destination: destinationIP, protocol: IPProtocol.udp,
            payloadLength: UDPHeader.length + BFDControl.length, ttl: ttl, tos: 0xC0,
            dontFragment: false
        ).store(into: buffer, at: at)
        at = try UDPHeader(
            sourcePort: sourcePort, destinationPort: udpPort,
            length: UInt16(UDPHeader.length + BFDControl.length), checksum: 0
        ).store(into: buffer, at: at)
        return try control.store(into: buffer, at: at)
    }
}
