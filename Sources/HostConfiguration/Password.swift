import Appliance
import CCrypt
import Glibc

/// Why a password could not be hashed.
public enum PasswordError: Error, Sendable, Hashable, CustomStringConvertible {
    case tooShort(minimum: Int)
    case tooLong(maximum: Int)
    /// A NUL byte would cut the password short in crypt(3); newlines cannot be typed twice alike.
    case forbiddenCharacter
    /// libxcrypt could offer neither yescrypt nor sha512-crypt.
    case hashingUnavailable(errno: Int32)

    public var description: String {
        switch self {
        case .tooShort(let minimum): "the password must have at least \(minimum) characters"
        case .tooLong(let maximum): "the password must have at most \(maximum) bytes"
        case .forbiddenCharacter: "the password must not contain NUL or line breaks"
        case .hashingUnavailable(let errno):
            "libxcrypt offers neither yescrypt nor sha512-crypt: \(String(cString: strerror(errno)))"
        }
    }
}

extension PasswordHash {
    /// Hashes `password` with a fresh random salt: yescrypt if libxcrypt offers it, else
    /// sha512-crypt (crypt_gensalt_rn with no random bytes given reads them from the kernel).
    public init(hashing password: String) throws(PasswordError) {
        let bytes = Array(password.utf8)
        guard password.count >= Self.minimumPasswordLength else {
            throw .tooShort(minimum: Self.minimumPasswordLength)
        }
        guard bytes.count <= Self.maximumPasswordBytes else {
            throw .tooLong(maximum: Self.maximumPasswordBytes)
        }
        guard !bytes.contains(0), !bytes.contains(10), !bytes.contains(13) else {
            throw .forbiddenCharacter
        }
        var lastError: Int32 = EINVAL
        for prefix in ["$y$", "$6$"] {
            var setting = [CChar](repeating: 0, count: Int(ccrypt_gensalt_output_size))
            guard crypt_gensalt_rn(prefix, 0, nil, 0, &setting, Int32(setting.count)) != nil else {
                lastError = errno
                continue
            }
            if let hashed = Self.crypt(password, setting: String(cString: setting)),
                let hash = try? PasswordHash(hashed)
            {
                self = hash
                return
            }
            lastError = errno
        }
        throw .hashingUnavailable(errno: lastError)
    }

    /// Whether `password` is the one hashed, compared in constant time.
    public func verify(_ password: String) -> Bool {
        guard !password.utf8.contains(0), let computed = Self.crypt(password, setting: text) else {
            return false
        }
        let a = Array(computed.utf8)
        let b = Array(text.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// crypt_rn(3) with its work area on the heap (struct crypt_data is 32 KiB); nil when
    /// libxcrypt refuses the setting.
    private static func crypt(_ password: String, setting: String) -> String? {
        let size = MemoryLayout<crypt_data>.size
        let data = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        data.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        defer {
            // The work area holds intermediate state of the password.
            data.initializeMemory(as: UInt8.self, repeating: 0, count: size)
            data.deallocate()
        }
        guard let result = crypt_rn(password, setting, data, Int32(size)) else { return nil }
        let text = String(cString: result)
        return text.hasPrefix("*") ? nil : text
    }
}
