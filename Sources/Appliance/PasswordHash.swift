/// A crypt(5) password hash, as /etc/shadow holds it: `$y$…` (yescrypt, Debian's default
/// since 11) or `$6$…` (sha512-crypt). Never the password itself.
public struct PasswordHash: Hashable, Sendable, CustomStringConvertible {
    public static let minimumPasswordLength = 8
    /// CRYPT_MAX_PASSPHRASE_SIZE of libxcrypt.
    public static let maximumPasswordBytes = 512

    /// CRYPT_OUTPUT_SIZE of libxcrypt (<crypt.h>): no hash it writes is this long. Kept here
    /// as a number so that the settings link no libcrypt; HostConfiguration's tests check it.
    public static let cryptOutputSize = 384

    public let text: String

    /// Accepts a stored hash after checking it is one of the two schemes and has only the
    /// characters crypt(5) uses (so it can go into /etc/shadow as one field).
    public init(_ text: String) throws(ApplianceSettingsError) {
        guard text.hasPrefix("$y$") || text.hasPrefix("$6$") else {
            throw .invalidPasswordHash(
                reason: "it is neither yescrypt ($y$) nor sha512-crypt ($6$)")
        }
        let allowed = text.utf8.allSatisfy {
            (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0)
                || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "$")
                || $0 == UInt8(ascii: "=")
        }
        guard allowed, text.utf8.count < Self.cryptOutputSize else {
            throw .invalidPasswordHash(
                reason: "it has characters or a length crypt(5) never produces")
        }
        self.text = text
    }

    /// "yescrypt" or "sha512-crypt".
    public var scheme: String { text.hasPrefix("$y$") ? "yescrypt" : "sha512-crypt" }

    /// Shows the scheme only: a hash is not for logs.
    public var description: String { "<\(scheme) hash>" }
}
