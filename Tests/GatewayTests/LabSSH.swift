import Foundation
import NamespaceLab

/// OpenSSH's own sshd in a lab namespace, with the appliance's drop-in
/// (`appliance/sshd/vtep-gateway.conf`) included, and an admin network to reach it from.
///
/// How vtepsh becomes the admin's shell without touching this machine's accounts: sshd runs in
/// a private mount namespace (`unshare --mount`) whose /etc is the lab's: a directory of
/// symbolic links to this machine's /etc (bind-mounted at /run/lab-host-etc) except for
/// passwd and group, which are copies where root's shell is the lab's login shell and root is
/// a member of `vtep-admin`, and shadow (see `passwordLogin`). So sshd takes the same path as
/// on the appliance: it runs the account's shell as `-shell` for an interactive session and
/// as `shell -c "COMMAND"` for a command, and the drop-in's `Match Group vtep-admin` applies. A ForceCommand wrapper that re-quotes `$SSH_ORIGINAL_COMMAND`
/// would test a path the appliance never takes; this tests the one it does. The login shell
/// is a two-line script only because a login shell gets no options of its own: it adds
/// `--control SOCKET` and passes sshd's `-c COMMAND` on as one argument (`"$@"`), never
/// through a shell's parser. The same namespace puts a tmpfs over /run for sshd's privilege
/// separation directory (/run/sshd), which this machine need not have.
///
/// Password logins (`passwordLogin`): /etc/shadow is a symbolic link to the appliance root's
/// etc/shadow, so sshd reads whatever file is there now, by name, as on the appliance. A bind
/// mount of the file would pin the inode it was made on, and sshd would never see the new
/// file `ShadowFile` renames into its place. The account is `admin`, the name vtepd's `set
/// user admin password` changes, added to the passwd copy with uid 0 (root's line under another name):
/// the admin of the appliance is an unprivileged member of vtep-admin reaching vtepd's
/// socket through that group, which this machine lacks; as uid 0 the lab's admin reaches the
/// socket as root does. sshd applies PermitRootLogin to every uid 0 (auth-passwd.c), so this
/// lab sets it to yes. With UsePAM no, sshd checks the password itself: getspnam(3), then
/// crypt(3) of libxcrypt, and refuses an account whose field starts with `!` (auth.c,
/// "account is locked").
struct LabSSH {
    let lab: Lab
    /// The namespace ssh (the client) runs in: the admin's side of the veth.
    let client: String
    let address: String
    let clientAddress: String
    let port: Int
    let sshd: LabProcess
    private let key: String
    private let knownHosts: String
    private let pidFile: String
    /// sshd's argument vector in its mount namespace, for `options` and this lab's config.
    private let sshdArguments: @Sendable ([String]) -> [String]
    private let namespace: String
    /// The appliance root's etc/shadow, when sshd takes `admin`'s password from it.
    let passwordLogin: String?

    /// sshd on `address` in `namespace`, reached from a new admin namespace over a veth;
    /// `loginShell` is the argument vector root's login shell execs (sshd's arguments are
    /// appended). With `passwordLogin`, the path of the appliance root's etc/shadow, the
    /// account `admin` logs in by password (see above). Returns once sshd listens.
    init(
        _ lab: Lab, in namespace: String, loginShell: [String], address: String = "198.51.100.1",
        clientAddress: String = "198.51.100.2", passwordLogin: String? = nil
    ) throws {
        for program in [
            "/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/bin/unshare",
        ]
        where !FileManager.default.isExecutableFile(atPath: program) {
            throw LabError(
                description:
                    "\(program) is missing: install openssh-server, openssh-client and util-linux "
                    + "(appliance/install-deps.sh)")
        }
        self.lab = lab
        self.namespace = namespace
        self.address = address
        self.clientAddress = clientAddress
        self.passwordLogin = passwordLogin
        client = try lab.namespace("adm")
        let (gatewaySide, adminSide) = try lab.veth("sg", in: namespace, "sa", in: client)
        try lab.execute(["ip", "addr", "add", "\(address)/24", "dev", gatewaySide], in: namespace)
        try lab.execute(["ip", "addr", "add", "\(clientAddress)/24", "dev", adminSide], in: client)

        let dropIn = try Self.applianceDropIn()
        let hostKey = lab.file("ssh_host_ed25519_key").path
        key = lab.file("id_ed25519").path
        for (path, comment) in [(hostKey, "lab host key"), (key, "lab admin key")] {
            try lab.execute([
                "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path,
            ])
        }
        let authorizedKeys = lab.file("authorized_keys").path
        try FileManager.default.copyItem(atPath: key + ".pub", toPath: authorizedKeys)

        port = try Self.freePort(lab, in: namespace)
        // Pin the host key: the client checks it as an admin's known_hosts would.
        knownHosts = lab.file("known_hosts").path
        let hostPublic = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8)
        let pinned = hostPublic.split(separator: " ").prefix(2).joined(separator: " ")
        try "[\(address)]:\(port) \(pinned)\n".write(
            toFile: knownHosts, atomically: true, encoding: .utf8)

        let shell = lab.file("vtepsh-login").path
        let command = loginShell.map(Self.quoted).joined(separator: " ")
        let script = """
            #!/bin/sh
            # root's login shell for this lab's sshd only (see LabSSH).
            exec \(command) "$@"

            """
        try writeExecutable(script, to: shell)
        let etc = lab.file("etc").path
        try Self.makeEtc(etc, shadow: passwordLogin ?? "\(Self.hostEtc)/shadow")
        var admin: String?
        try Self.rewrite("/etc/passwd", to: etc + "/passwd") { line in
            guard line.hasPrefix("root:") else { return line }
            var fields = line.split(separator: ":", omittingEmptySubsequences: false).map(
                String.init)
            fields[fields.count - 1] = shell
            fields[0] = "admin"
            admin = fields.joined(separator: ":")
            fields[0] = "root"
            return fields.joined(separator: ":")
        }
        if passwordLogin != nil, let admin { try (admin + "\n").append(toFile: etc + "/passwd") }
        try Self.rewrite("/etc/group", to: etc + "/group") { line in
            line.hasPrefix("vtep-admin:") ? nil : line
        }
        try "vtep-admin:x:61999:root\(passwordLogin == nil ? "" : ",admin")\n".append(
            toFile: etc + "/group")

        pidFile = lab.file("sshd.pid").path
        let config = lab.file("sshd_config").path
        // The test's own settings first: sshd keeps the first value of each keyword, so they
        // win over the drop-in's (PermitRootLogin no) where they must, and the drop-in's rest
        // (PermitUserEnvironment, the vtep-admin Match) is what this sshd runs with.
        try """
        Port \(port)
        ListenAddress \(address)
        HostKey \(hostKey)
        PidFile \(pidFile)
        AuthorizedKeysFile \(authorizedKeys)
        PermitRootLogin \(passwordLogin == nil ? "prohibit-password" : "yes")
        PubkeyAuthentication yes
        PasswordAuthentication \(passwordLogin == nil ? "no" : "yes")
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        LogLevel VERBOSE
        SetEnv VTEPSH_HISTORY=\(lab.file("ssh-vtepsh-history").path)
        Include \(dropIn)

        """.write(toFile: config, atomically: true, encoding: .utf8)

        sshdArguments = { options in
            [
                "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                """
                mount -t tmpfs -o mode=0755 lab-run /run && mkdir -m 0755 /run/sshd "$2" \
                && mount --bind /etc "$2" && mount --bind "$1" /etc \
                && shift 2 && exec /usr/sbin/sshd "$@"
                """, "sh", etc, Self.hostEtc,
            ] + options + ["-f", config]
        }
        // unshare execs sh, sh execs sshd: the PID is sshd's, and SIGTERM stops it (sshd(8)).
        sshd = try lab.start("sshd", sshdArguments(["-D", "-e"]), in: namespace)
        try sshd.waitForLog("Server listening on \(address) port \(port)", timeout: .seconds(30))
    }

    /// `ssh root@ADDRESS COMMAND` from the admin namespace, with `options` before the
    /// destination; the result whatever the exit status.
    func run(_ command: String?, options: [String] = []) throws -> LabCommandResult {
        try lab.attempt(
            // `--`: the command is the remote side's, even when it looks like an option
            // (glibc's getopt would otherwise hand `--control=…` to ssh itself).
            clientArguments(options) + (command.map { ["--", $0] } ?? []), in: client,
            timeout: .seconds(60))
    }

    /// What sshd would apply to root's connection from the admin side (`sshd -T -C`, with
    /// this lab's passwd and group): keyword → value, keywords in lower case.
    func effectiveConfiguration() throws -> [String: String] {
        let text = try lab.execute(
            sshdArguments(["-T", "-C", "user=root,host=\(clientAddress),addr=\(clientAddress)"]),
            in: namespace
        ).output
        var settings: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", maxSplits: 1)
            if words.count == 2 { settings[String(words[0])] = String(words[1]) }
        }
        return settings
    }

    /// `ssh admin@ADDRESS COMMAND` from the admin namespace, logging in with `password` and
    /// nothing else: ssh asks it of an SSH_ASKPASS program (SSH_ASKPASS_REQUIRE=force,
    /// OpenSSH 8.4) that prints it from a 0600 file, once. The result whatever the status.
    func runWithPassword(_ password: String, _ command: String) throws -> LabCommandResult {
        let secret = lab.file("password")
        guard
            FileManager.default.createFile(
                atPath: secret.path, contents: Data((password + "\n").utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw LabError(description: "cannot write \(secret.path)") }
        defer { try? FileManager.default.removeItem(at: secret) }
        let askpass = lab.file("askpass").path
        try writeExecutable("#!/bin/sh\nexec cat \(Self.quoted(secret.path))\n", to: askpass)
        return try lab.attempt(
            [
                "env", "SSH_ASKPASS=\(askpass)", "SSH_ASKPASS_REQUIRE=force", "ssh", "-F",
                "/dev/null", "-p", "\(port)", "-o", "BatchMode=no", "-o",
                "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no", "-o",
                "NumberOfPasswordPrompts=1", "-o", "StrictHostKeyChecking=yes", "-o",
                "UserKnownHostsFile=\(knownHosts)", "-o", "ConnectTimeout=20",
                "admin@\(address)", "--", command,
            ], in: client, timeout: .seconds(60))
    }

    /// What sshd logged so far (LogLevel VERBOSE, on its standard error).
    func log() -> String {
        (try? String(contentsOf: sshd.log, encoding: .utf8)) ?? ""
    }

    /// The PID sshd wrote to its PidFile.
    func pidFromFile() throws -> pid_t? {
        pid_t(
            try String(contentsOfFile: pidFile, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The client's argument vector up to and including the destination.
    func clientArguments(_ options: [String] = []) -> [String] {
        [
            "ssh", "-F", "/dev/null", "-p", "\(port)", "-i", key, "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o",
            "UserKnownHostsFile=\(knownHosts)", "-o", "ConnectTimeout=20",
        ] + options + ["root@\(address)"]
    }

    /// The appliance's sshd drop-in, from the repository this test was built from.
    static func applianceDropIn() throws -> String {
        let path = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("appliance/sshd/vtep-gateway.conf").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw LabError(description: "the appliance's sshd drop-in is missing at \(path)")
        }
        return path
    }

    /// A port nothing in `namespace` listens on (vtepd may hold some).
    private static func freePort(_ lab: Lab, in namespace: String) throws -> Int {
        let listening = try lab.execute(["ss", "-Htanu"], in: namespace).output
        for port in 2222...2299 where !listening.contains(":\(port) ") {
            return port
        }
        throw LabError(description: "no free port in 2222-2299 in \(namespace):\n\(listening)")
    }

    /// Where sshd's mount namespace keeps this machine's /etc once the lab's covers it.
    private static let hostEtc = "/run/lab-host-etc"

    /// The lab's /etc in `directory`: a symbolic link for each entry of this machine's /etc
    /// (into `hostEtc`; a link stays the same link, so relative ones such as mtab still
    /// resolve), shadow a link to `shadow`; passwd and group are left for the caller's copies.
    private static func makeEtc(_ directory: String, shadow: String) throws {
        let files = FileManager.default
        try files.createDirectory(atPath: directory, withIntermediateDirectories: false)
        for name in try files.contentsOfDirectory(atPath: "/etc")
        where !["passwd", "group", "shadow"].contains(name) {
            let target =
                (try? files.destinationOfSymbolicLink(atPath: "/etc/" + name))
                ?? "\(hostEtc)/\(name)"
            try files.createSymbolicLink(
                atPath: directory + "/" + name, withDestinationPath: target)
        }
        try files.createSymbolicLink(atPath: directory + "/shadow", withDestinationPath: shadow)
    }

    private static func rewrite(
        _ source: String, to destination: String, _ change: (String) -> String?
    ) throws {
        let lines = try String(contentsOfFile: source, encoding: .utf8)
            .split(separator: "\n").map(String.init).compactMap(change)
        try (lines.joined(separator: "\n") + "\n").write(
            toFile: destination, atomically: true, encoding: .utf8)
    }

    /// One word for /bin/sh: single-quoted, a quote inside closed and escaped.
    private static func quoted(_ word: String) -> String {
        "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

extension String {
    fileprivate func append(toFile path: String) throws {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(utf8))
    }
}
