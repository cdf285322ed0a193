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

/// A program on a pseudo-terminal, as a person at a terminal runs it: here `ssh -tt`, so the
/// remote vtepsh gets a terminal of sshd's and runs its line editor.
final class LabTerminal {
    let master: Int32
    let process: LabProcess
    private(set) var screen = ""
    private var consumed: String.Index

    init(lab: Lab, _ arguments: [String], in namespace: String) throws {
        // posix_openpt, unlockpt and ptsname by hand (Glibc's Swift module lacks them):
        // pts(4), TIOCSPTLCK and TIOCGPTN from <asm-generic/ioctls.h>.
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0
        var number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0,
            ioctl(master, 0x8004_5430, &number) == 0
        else { throw LabError(description: "cannot open a pty: \(errno)") }
        let slave = "/dev/pts/\(number)"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, slave, O_RDWR, 0)
        posix_spawn_file_actions_adddup2(&actions, 0, 1)
        posix_spawn_file_actions_adddup2(&actions, 0, 2)
        posix_spawn_file_actions_addclose(&actions, master)
        // The test runner's threads block most signals and a child inherits the mask (see
        // Lab.spawn); ssh must see SIGTERM when the test stops it.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let words = ["ip", "netns", "exec", namespace] + arguments
        guard let path = Lab.executable("ip") else {
            throw LabError(description: "ip is not installed (not found on PATH)")
        }
        let argv: [UnsafeMutablePointer<CChar>?] =
            ([path] + words.dropFirst()).map { strdup($0) }
            + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard status == 0 else {
            throw LabError(description: "cannot start \(arguments.first ?? ""): \(status)")
        }
        process = LabProcess(name: arguments.first ?? "", pid: pid, log: lab.file("pty"))
        consumed = screen.startIndex
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
    }

    func type(_ text: String) throws {
        let bytes = Array(text.utf8)
        guard write(master, bytes, bytes.count) == bytes.count else {
            throw LabError(description: "writing to the pty failed: \(errno)")
        }
    }

    /// Reads the screen until `text` appears after what earlier calls consumed; returns the
    /// screen from there up to and including it.
    @discardableResult
    func expect(_ text: String, timeout: Duration = .seconds(30)) throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let range = screen.range(of: text, range: consumed..<screen.endIndex) {
                let seen = String(screen[consumed..<range.upperBound])
                consumed = range.upperBound
                return seen
            }
            guard ContinuousClock.now < deadline else {
                throw LabError(
                    description:
                        "the terminal did not show '\(text)' within \(timeout); screen since the last match:\n"
                        + String(screen[consumed...]))
            }
            drain()
        }
    }

    /// Waits for the program to exit by itself, reading what it still prints; its status.
    func waitForExit(timeout: Duration = .seconds(30)) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline { drain() }
        return process.status
    }

    func close() {
        process.stop(signal: SIGKILL)
        Glibc.close(master)
    }

    private func drain() {
        var descriptor = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, 100)
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(master, &buffer, buffer.count)
        if count > 0 {
            let offset = screen.distance(from: screen.startIndex, to: consumed)
            screen += String(decoding: buffer[0..<count], as: UTF8.self)
            consumed = screen.index(screen.startIndex, offsetBy: offset)
        }
    }
}
