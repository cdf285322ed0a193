/// Addresses and encapsulations encode as the text an operator types (`192.0.2.10`,
/// `aa:bb:cc:dd:ee:ff`, `vxlan`), so that JSON carrying them (vtepd's control protocol) reads
/// as the shell does. Decoding refuses text that does not parse, saying what was expected.
protocol TextCodable: Codable, CustomStringConvertible {
    init?(_ text: String)
    static var expected: String { get }
}

extension TextCodable {
    public init(from decoder: any Decoder) throws { self = try Self.decodeText(decoder) }

    public func encode(to encoder: any Encoder) throws { try encodeText(encoder) }

    static func decodeText(_ decoder: any Decoder) throws -> Self {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let value = Self(text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "\"\(text)\" is not \(Self.expected)")
        }
        return value
    }

    func encodeText(_ encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension IPAddress: TextCodable {
    static var expected: String { "an IP address (e.g. 192.0.2.10 or 2001:db8::10)" }
}

extension MACAddress: TextCodable {
    static var expected: String { "a MAC address (use aa:bb:cc:dd:ee:ff)" }
}

extension Encapsulation: TextCodable {
    init?(_ text: String) {
        guard let found = Self.allCases.first(where: { $0.description == text }) else {
            return nil
        }
        self = found
    }
    static var expected: String { "an encapsulation (vxlan, gre or nvgre)" }

    // Spelled out: a raw-value enum would otherwise get the synthesised (numeric) forms.
    public init(from decoder: any Decoder) throws { self = try Self.decodeText(decoder) }

    public func encode(to encoder: any Encoder) throws { try encodeText(encoder) }
}

extension IPEndpoint: TextCodable {
    static var expected: String {
        "an IP address and port (e.g. 192.0.2.10:9100 or [2001:db8::10]:9100)"
    }
}
