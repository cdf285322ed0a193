/// The settings' value types encode as the text an operator types, and decoding validates it
/// with the type's own rules, so that JSON carrying them (vtepd's control protocol) is held to
/// the shell's rules: the refusal's words are the type's.
protocol ValidatedText: Codable, CustomStringConvertible {
    init(_ text: String) throws(ApplianceSettingsError)
}

extension ValidatedText {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try Self(text)
        } catch {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension Hostname: ValidatedText {}
extension UserName: ValidatedText {}
extension InterfaceName: ValidatedText {}
extension IPv4InterfaceAddress: ValidatedText {}
extension DomainName: ValidatedText {}
extension NTPServer: ValidatedText {}
