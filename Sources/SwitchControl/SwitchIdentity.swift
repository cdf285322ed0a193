import Appliance
import Foundation
import ProcessSpawning

/// Why the switch's key, certificate or CA certificate could not be made, read or installed.
public enum SwitchIdentityError: Error, Hashable, Sendable, CustomStringConvertible {
    case openSSLNotFound(searched: [String])
    case toolFailed(command: String, reason: String)
    case file(String)
    /// Operator input: the pasted text is not one certificate. Nothing was changed.
    case notACertificate(String)

    public var description: String {
        switch self {
        case .openSSLNotFound(let searched):
            return "openssl not found (looked in \(searched.joined(separator: ", "))): install"
                + " Debian openssl"
        case .toolFailed(let command, let reason):
            return "\(command) failed: \(reason)"
        case .file(let reason):
            return reason
        case .notACertificate(let reason):
            return reason
        }
    }
}

/// The switch's identity towards its controllers, kept under the state directory and handed
/// to ovsdb-server, whose manager connections (`ssl:IP:PORT` in Global.managers) are the
/// only ones that use it:
///
/// - `switch-privkey.pem`: an RSA 2048 private key, mode 0600, made once at first start by
///   `openssl req -x509` (which creates it 0600 itself); never printed or logged;
/// - `switch-cert.pem`: the self-signed certificate of that key (CN = the physical switch's
///   name), what `show switch certificate` prints for the admin to paste into the controller;
/// - `ca-cert.pem`: the controllers' CA, installed by the admin (`set switch ca-certificate`);
///   when present ovsdb-server gets `--ca-cert` and refuses controllers it did not sign;
/// - `bootstrap-ca-cert.pem`: without an installed CA, ovsdb-server runs with
///   `--bootstrap-ca-cert` (trust on first use): the CA the first controller presents in its
///   certificate chain is written here by ovsdb-server and required from then on.
///
/// The key and certificate survive restarts; a pair that is half there (a crash during the
/// first start) is made again.
public struct SwitchIdentity: Sendable {
    public let stateDirectory: String
    public let commonName: String
    public let openssl: String

    public var privateKeyPath: String { stateDirectory + "/switch-privkey.pem" }
    public var certificatePath: String { stateDirectory + "/switch-cert.pem" }
    public var caCertificatePath: String { stateDirectory + "/ca-cert.pem" }
    public var bootstrapCACertificatePath: String { stateDirectory + "/bootstrap-ca-cert.pem" }

    /// Finds openssl; makes nothing yet (`prepare()` does).
    public init(stateDirectory: String, commonName: String) throws(SwitchIdentityError) {
        self.stateDirectory = stateDirectory
        self.commonName = commonName
        do {
            openssl = try DatabaseServer.locate("openssl")
        } catch {
            guard case .binaryNotFound(_, let searched) = error else {
                throw .openSSLNotFound(searched: [])
            }
            throw .openSSLNotFound(searched: searched)
        }
    }

    /// Whether the admin installed a CA (else ovsdb-server trusts the first one it sees).
    public var hasInstalledCA: Bool { FileManager.default.fileExists(atPath: caCertificatePath) }

    /// ovsdb-server's SSL options for the current state of the files.
    public var serverArguments: [String] {
        [
            "--private-key=\(privateKeyPath)", "--certificate=\(certificatePath)",
            hasInstalledCA
                ? "--ca-cert=\(caCertificatePath)"
                : "--bootstrap-ca-cert=\(bootstrapCACertificatePath)",
        ]
    }

    /// Makes the key and the self-signed certificate unless both are there; makes sure the
    /// key is readable by its owner only. Returns true when it made a new pair.
    @discardableResult
    public func prepare() async throws(SwitchIdentityError) -> Bool {
        let files = FileManager.default
        if files.fileExists(atPath: privateKeyPath) && files.fileExists(atPath: certificatePath) {
            guard chmod(privateKeyPath, 0o600) == 0 else {
                throw .file(
                    "cannot make \(privateKeyPath) private (0600): \(String(cString: strerror(errno)))"
                )
            }
            return false
        }
        // Made beside the real files, then renamed: the key first, so a certificate never
        // stands without its key.
        let suffix = ".new-\(getpid())"
        let (key, certificate) = (privateKeyPath + suffix, certificatePath + suffix)
        unlink(key)
        unlink(certificate)
        defer {
            unlink(key)
            unlink(certificate)
        }
        let subject = "/CN=" + commonName.replacingOccurrences(of: "/", with: "\\/")
        try await run([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
            "-subj", subject, "-keyout", key, "-out", certificate,
        ])
        guard chmod(key, 0o600) == 0, fsyncFile(key), fsyncFile(certificate),
            rename(key, privateKeyPath) == 0, rename(certificate, certificatePath) == 0
        else {
            throw .file(
                "cannot store the switch's key and certificate in \(stateDirectory):"
                    + " \(String(cString: strerror(errno)))")
        }
        _ = fsyncFile(stateDirectory)
        return true
    }

    /// The certificate as PEM (no key).
    public func certificatePEM() throws(SwitchIdentityError) -> String {
        guard let text = try? String(contentsOfFile: certificatePath, encoding: .utf8) else {
            throw .file("the switch's certificate \(certificatePath) cannot be read")
        }
        return text
    }

    /// The SHA-256 fingerprint of the certificate (of its DER), `AB:CD:…`, as a controller's
    /// admin compares it.
    public func fingerprint() async throws(SwitchIdentityError) -> String {
        try await Self.fingerprint(of: certificatePath, openssl: openssl)
    }

    static func fingerprint(of path: String, openssl: String) async throws(SwitchIdentityError)
        -> String
    {
        let output = try await Self.runTool(
            openssl, ["x509", "-in", path, "-noout", "-fingerprint", "-sha256"])
        // "sha256 Fingerprint=AB:CD:…" (OpenSSL 3) or "SHA256 Fingerprint=…".
        guard let value = output.split(separator: "=", maxSplits: 1).last,
            output.lowercased().contains("fingerprint=")
        else {
            throw .toolFailed(command: "openssl x509 -fingerprint", reason: output)
        }
        return value.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The subject and validity of a certificate file, one line each.
    func summary(of path: String) async throws(SwitchIdentityError) -> [String] {
        let output = try await Self.runTool(
            openssl, ["x509", "-in", path, "-noout", "-subject", "-issuer", "-enddate"])
        return output.split(separator: "\n").map {
            String($0).trimmingCharacters(in: .whitespaces)
        }
    }

    // MARK: The controllers' CA

    /// Checks that `pem` is exactly one X.509 certificate (no key, nothing else), then
    /// installs it atomically as the CA controllers must be signed by. Nothing changes when
    /// it is refused.
    public func installCA(_ pem: String) async throws(SwitchIdentityError) {
        let text = try Self.singleCertificate(pem)
        // openssl reads it: a block with the right markers but no certificate inside is refused.
        let check = stateDirectory + "/.ca-cert-check-\(getpid()).pem"
        defer { unlink(check) }
        do {
            try AtomicFile.write(Array(text.utf8), to: check, mode: 0o644)
        } catch {
            throw .file("cannot write \(check): \(error)")
        }
        do {
            _ = try await Self.runTool(openssl, ["x509", "-in", check, "-noout", "-subject"])
        } catch {
            throw .notACertificate("that is not a valid X.509 certificate (openssl cannot read it)")
        }
        do {
            try AtomicFile.write(Array(text.utf8), to: caCertificatePath, mode: 0o644)
        } catch {
            throw .file("cannot install the CA certificate: \(error)")
        }
    }

    /// Removes the installed CA and the one trusted on first use: the next controller's CA is
    /// trusted again.
    public func clearCA() throws(SwitchIdentityError) {
        for path in [caCertificatePath, bootstrapCACertificatePath] {
            guard unlink(path) == 0 || errno == ENOENT else {
                throw .file("cannot remove \(path): \(String(cString: strerror(errno)))")
            }
        }
        _ = fsyncFile(stateDirectory)
    }

    /// The installed CA's PEM, nil when none is installed.
    public func installedCA() -> String? {
        try? String(contentsOfFile: caCertificatePath, encoding: .utf8)
    }

    /// `pem`'s one certificate block, or why there is not exactly one. Text around the block
    /// (what `openssl x509 -text` and `ovs-pki` print before it) is left out; any other PEM
    /// block (a key, a request) is refused.
    static func singleCertificate(_ pem: String) throws(SwitchIdentityError) -> String {
        let begin = "-----BEGIN CERTIFICATE-----"
        let end = "-----END CERTIFICATE-----"
        let lines = pem.split(whereSeparator: \.isNewline).map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw .notACertificate("no certificate was given") }
        let markers = lines.filter { $0.hasPrefix("-----BEGIN ") || $0.hasPrefix("-----END ") }
        if let other = markers.first(where: { $0 != begin && $0 != end }) {
            throw .notACertificate(
                "only a certificate is accepted, not \(other.trimmingCharacters(in: ["-"]))")
        }
        let count = markers.filter { $0 == begin }.count
        guard count <= 1 else {
            throw .notACertificate(
                "\(count) certificates were given; give exactly one (the controllers' CA)")
        }
        guard markers == [begin, end], let first = lines.firstIndex(of: begin),
            let last = lines.firstIndex(of: end)
        else {
            throw .notACertificate("that is not a PEM certificate (from \(begin) to \(end))")
        }
        let body = lines[(first + 1)..<last]
        let base64 = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
        guard !body.isEmpty, body.allSatisfy({ $0.allSatisfy(base64.contains) }) else {
            throw .notACertificate("the certificate's body is not base64")
        }
        return lines[first...last].joined(separator: "\n") + "\n"
    }

    // MARK: Pieces

    @discardableResult
    private func run(_ arguments: [String]) async throws(SwitchIdentityError) -> String {
        try await Self.runTool(openssl, arguments)
    }

    private static func runTool(_ openssl: String, _ arguments: [String])
        async throws(SwitchIdentityError) -> String
    {
        do {
            return try await ChildProcess.run(openssl, arguments)
        } catch {
            throw .toolFailed(
                command: "openssl \(arguments.prefix(2).joined(separator: " "))",
                reason: "\(error)")
        }
    }

    private func fsyncFile(_ path: String) -> Bool {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return fsync(descriptor) == 0
    }
}
