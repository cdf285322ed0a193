import Appliance
import Packet
import Shell

// Packet trace: what the data plane did with real frames (`debug packet-trace`), and what it
// would do with a frame described on the command line (`trace port …`), as VPP's `trace add`
// and Open vSwitch's `ofproto/trace` answer "why did this frame go there, or nowhere?".

private let debugWord = Syntax.keyword("debug", help: "Record what the data plane does")
private let packetTraceWord = Syntax.keyword(
    "packet-trace", help: "Each step of the next frames through the data plane")
private let countSlot = Syntax.argument(
    "N", .integer(IntegerRange("frame count", 1...1000)), help: "How many frames to record")

/// Records each step (received where, headers, logical switch, lookup, decision, how it was
/// sent) of the next `count` frames from `port`, from the tunnels, or from anywhere; what was
/// recorded before goes. Not a setting: never saved, not in the running configuration.
public struct DebugPacketTrace: ControlCommand {
    public static let command = "packet-trace"
    public static let reply = ControlResult.Kind.lines
    public var port: InterfaceName?
    public var tunnel: Bool
    public var count: Int
    public enum CodingKeys: String, CodingKey, CaseIterable { case port, tunnel, count }
    public init(port: InterfaceName? = nil, tunnel: Bool = false, count: Int) {
        self.port = port
        self.tunnel = tunnel
        self.count = count
    }
    public var shellLine: String {
        "debug packet-trace" + (port.map { " port \($0)" } ?? "") + (tunnel ? " tunnel" : "")
            + " count \(count)"
    }
    public func validate() throws(ControlFailure) {
        guard (1...1000).contains(count) else {
            throw ControlFailure("frame count \(count) is out of range (1–1000)")
        }
        if port != nil && tunnel {
            throw ControlFailure("trace one port or the tunnels, not both")
        }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                debugWord, packetTraceWord,
                .optional([Word.port, Slot.port]),
                .keyword("count", help: "How many frames"), countSlot,
            ], summary: "Record each step of the next N frames (from PORT only, if given)"
        ) { arguments throws(CommandRefusal) in
            Self(
                port: arguments.has("PORT")
                    ? try refusing { () throws(ApplianceSettingsError) in
                        try InterfaceName(arguments.text("PORT"))
                    } : nil,
                count: arguments.integer("N") ?? 1)
        },
        CommandDeclaration<Self>(
            [
                debugWord, packetTraceWord,
                .keyword("tunnel", help: "Only frames decapsulated from a tunnel"),
                .keyword("count", help: "How many frames"), countSlot,
            ], summary: "Record each step of the next N frames from the tunnels"
        ) { arguments in Self(tunnel: true, count: arguments.integer("N") ?? 1) },
    ]
}

/// The frames recorded by `debug packet-trace`, each step on its own line.
public struct ShowPacketTrace: ControlCommand {
    public static let command = "show-packet-trace"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show packet-trace" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, packetTraceWord],
            summary: "Show the frames recorded by debug packet-trace, step by step"
        ) { _ in Self() }
    ]
}

/// Stops a trace and forgets what it recorded.
public struct ClearPacketTrace: ControlCommand {
    public static let command = "clear-packet-trace"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "clear packet-trace" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.clear, packetTraceWord],
            summary: "Stop the packet trace and forget the frames it recorded"
        ) { _ in Self() }
    ]
}

/// What the data plane would do now with a frame arriving on `port`, described by its
/// headers: nothing is learned, counted or sent.
public struct TraceFrame: ControlCommand {
    public enum TransportProtocol: String, Codable, Hashable, Sendable, CaseIterable {
        case tcp, udp, icmp
    }
    public static let command = "trace"
    public static let reply = ControlResult.Kind.lines
    public var port: InterfaceName
    /// 0 or absent: untagged.
    public var vlan: Int?
    public var source: MACAddress
    public var destination: MACAddress
    public var sourceIP: IPAddress?
    public var destinationIP: IPAddress?
    public var transport: TransportProtocol?
    public var sourcePort: Int?
    public var destinationPort: Int?
    public enum CodingKeys: String, CodingKey, CaseIterable {
        case port, vlan, source, destination, sourceIP, destinationIP, transport, sourcePort,
            destinationPort
    }

    public init(
        port: InterfaceName, vlan: Int? = nil, source: MACAddress, destination: MACAddress,
        sourceIP: IPAddress? = nil, destinationIP: IPAddress? = nil,
        transport: TransportProtocol? = nil, sourcePort: Int? = nil, destinationPort: Int? = nil
    ) {
        self.port = port
        self.vlan = vlan
        self.source = source
        self.destination = destination
        self.sourceIP = sourceIP
        self.destinationIP = destinationIP
        self.transport = transport
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    public var shellLine: String {
        var line = "trace port \(port)" + (vlan.map { " vlan \($0)" } ?? "")
        line += " src \(source) dst \(destination)"
        if let sourceIP, let destinationIP { line += " ip \(sourceIP) \(destinationIP)" }
        if let transport { line += " proto \(transport.rawValue)" }
        if let sourcePort { line += " sport \(sourcePort)" }
        if let destinationPort { line += " dport \(destinationPort)" }
        return line
    }

    public func validate() throws(ControlFailure) {
        if let vlan, !(0...4094).contains(vlan) {
            throw ControlFailure("VLAN \(vlan) is out of range (0–4094)")
        }
        switch (sourceIP, destinationIP) {
        case (nil, nil):
            if transport != nil || sourcePort != nil || destinationPort != nil {
                throw ControlFailure(
                    "a protocol or ports need the IP addresses (ip SOURCE DESTINATION)")
            }
        case (.v4?, .v4?), (.v6?, .v6?): break
        case (_?, _?): throw ControlFailure("the IP addresses are not of one family")
        default: throw ControlFailure("give both IP addresses, source and destination")
        }
        for port in [sourcePort, destinationPort].compactMap({ $0 })
        where !(0...65535).contains(port) {
            throw ControlFailure("port \(port) is out of range (0–65535)")
        }
        if transport == .icmp && (sourcePort != nil || destinationPort != nil) {
            throw ControlFailure("ICMP has no ports")
        }
    }

    private static let portRange = IntegerRange("port", 0...65535)
    private static let frame: [Syntax] = [
        .keyword("trace", help: "What the data plane would do with a frame"),
        Word.port, Slot.port,
        .optional([Word.vlan, Slot.vlan]),
        .keyword("src", help: "The frame's source MAC"),
        .argument("SMAC", .mac, help: "Source MAC address"),
        .keyword("dst", help: "The frame's destination MAC"),
        .argument("DMAC", .mac, help: "Destination MAC address"),
    ]
    private static let ip: [Syntax] = [
        .keyword("ip", help: "An IP packet inside"),
        .argument("SIP", .ipAddress, help: "Source IP address"),
        .argument("DIP", .ipAddress, help: "Destination IP address"),
    ]
    private static let proto = Syntax.keyword("proto", help: "The transport protocol")
    public static let shell = [
        CommandDeclaration<Self>(
            frame + [
                .optional(
                    ip + [
                        .optional([
                            proto,
                            .choice("PROTO", [Choice("icmp", "An ICMP or ICMPv6 echo request")]),
                        ])
                    ])
            ],
            summary: "Explain what the data plane would do with such a frame on PORT"
        ) { arguments throws(CommandRefusal) in try build(arguments) },
        CommandDeclaration<Self>(
            frame + ip + [
                proto,
                .choice(
                    "PROTO",
                    [Choice("tcp", "A TCP segment (SYN)"), Choice("udp", "A UDP datagram")]),
                .optional([
                    .keyword("sport", help: "The transport source port"),
                    .argument("SPORT", .integer(portRange), help: "Source port"),
                ]),
                .optional([
                    .keyword("dport", help: "The transport destination port"),
                    .argument("DPORT", .integer(portRange), help: "Destination port"),
                ]),
            ],
            summary: "Explain what the data plane would do with a TCP or UDP packet on PORT"
        ) { arguments throws(CommandRefusal) in try build(arguments) },
    ]

    private static func build(_ arguments: Arguments) throws(CommandRefusal) -> Self {
        Self(
            port: try refusing { () throws(ApplianceSettingsError) in
                try InterfaceName(arguments.text("PORT"))
            },
            vlan: arguments.integer("N"), source: arguments.mac("SMAC")!,
            destination: arguments.mac("DMAC")!,
            sourceIP: arguments.has("SIP") ? arguments.ip("SIP") : nil,
            destinationIP: arguments.has("DIP") ? arguments.ip("DIP") : nil,
            transport: arguments.has("PROTO")
                ? TransportProtocol(rawValue: arguments.keyword("PROTO")) : nil,
            sourcePort: arguments.integer("SPORT"),
            destinationPort: arguments.integer("DPORT"))
    }
}

/// Captures frames on an access port or the underlay into a pcap file under vtepd's state
/// directory (`captures/`), for an admin without a POSIX shell to copy off with scp: at most
/// `count` frames (each cut to 2,048 bytes) or `seconds`, whichever comes first; one capture
/// at a time; the 10 newest files kept. Not a setting: never saved.
public struct DebugCapture: ControlCommand {
    public static let command = "capture"
    public static let reply = ControlResult.Kind.lines
    public static let maximumCount = 100_000
    public static let maximumSeconds = 3600
    /// The access port; nil for the underlay.
    public var port: InterfaceName?
    public var count: Int
    public var seconds: Int
    public enum CodingKeys: String, CodingKey, CaseIterable { case port, count, seconds }
    public init(port: InterfaceName?, count: Int = 1000, seconds: Int = 60) {
        self.port = port
        self.count = count
        self.seconds = seconds
    }
    public var shellLine: String {
        "debug capture " + (port.map { "port \($0)" } ?? "underlay")
            + " count \(count) seconds \(seconds)"
    }
    public func validate() throws(ControlFailure) {
        guard (1...Self.maximumCount).contains(count) else {
            throw ControlFailure("frame count \(count) is out of range (1–\(Self.maximumCount))")
        }
        guard (1...Self.maximumSeconds).contains(seconds) else {
            throw ControlFailure("\(seconds) seconds is out of range (1–\(Self.maximumSeconds))")
        }
    }
    private static let limits: [Syntax] = [
        .optional([
            .keyword("count", help: "At most this many frames (default 1000)"),
            .argument(
                "N", .integer(IntegerRange("frame count", 1...maximumCount)),
                help: "How many frames"),
        ]),
        .optional([
            .keyword("seconds", help: "For at most this long (default 60)"),
            .argument(
                "S", .integer(IntegerRange("seconds", 1...maximumSeconds)),
                help: "How many seconds"),
        ]),
    ]
    private static let capture = Syntax.keyword(
        "capture", help: "Write the frames on an interface to a pcap file")
    public static let shell = [
        CommandDeclaration<Self>(
            [debugWord, capture, Word.port, Slot.port] + limits,
            summary: "Capture PORT's frames into a pcap file in the state directory"
        ) { arguments throws(CommandRefusal) in
            Self(
                port: try refusing { () throws(ApplianceSettingsError) in
                    try InterfaceName(arguments.text("PORT"))
                }, count: arguments.integer("N") ?? 1000, seconds: arguments.integer("S") ?? 60)
        },
        CommandDeclaration<Self>(
            [debugWord, capture, .keyword("underlay", help: "The underlay interface")] + limits,
            summary: "Capture the underlay's frames into a pcap file in the state directory"
        ) { arguments in
            Self(
                port: nil, count: arguments.integer("N") ?? 1000,
                seconds: arguments.integer("S") ?? 60)
        },
    ]
}

/// The capture files, newest first: name, size, when written, and whether still running.
public struct ShowCaptures: ControlCommand {
    public static let command = "captures"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show captures" }
    public static let shell = [
        CommandDeclaration<Self>(
            [Word.show, .keyword("captures", help: "The packet capture files")],
            summary: "Show the packet capture files and where to copy them from"
        ) { _ in Self() }
    ]
}
