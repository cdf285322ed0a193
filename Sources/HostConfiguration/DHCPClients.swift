import Appliance
import Foundation
import Logging
import Netlink
import ProcessSpawning
import Synchronization

/// The DHCP clients of the interfaces configured for DHCP: one busybox udhcpc each (Debian's
/// udhcpc package), kept running while the interface stays in DHCP mode and started again if
/// it dies.
///
/// udhcpc speaks DHCP (discover, request, renew, rebind, release: RFC 2131) and configures
/// nothing itself: at each event it runs its script, here `vtep-dhcp-event`, which hands the
/// lease to vtepd over `DHCPHookServer`'s socket and waits for vtepd to apply it. So addresses,
/// routes and resolv.conf are changed by vtepd alone, through the same all-or-nothing path as
/// the operator's commands. Options: `-f` foreground (vtepd supervises it), `-R` release the
/// lease at SIGTERM, `-O search` ask for option 119 beside udhcpc's default set (subnet,
/// router, DNS, domain, hostname, broadcast, lease time), `-r ADDRESS` ask for the address
/// the interface still holds.
///
/// The lease is released (SIGTERM) when the interface leaves DHCP mode, not when vtepd stops
/// (SIGKILL: no release, no deconfig): a restarted vtepd keeps the management address, and
/// its new client asks the server for that address again (RFC 2131 §3.2's reuse of a
/// previous address), so SSH sessions survive a restart. Until the server answers, the
/// address stays; when no server answers or it refuses, vtepd removes it (see
/// `ApplianceController.dhcpEvent`).
public final class DHCPClients: Sendable {
    public static let udhcpc = "/sbin/udhcpc"
    /// After an unexpected exit, the pause before the next start.
    static let restartPause = Duration.seconds(2)

    let hook: String
    let hookSocket: String
    /// Where each client's PID file goes (`udhcpc-IF.pid`): vtepd's state directory.
    let stateDirectory: String
    let logger: Logger
    private let clients = Mutex<[InterfaceName: ChildProcess]>([:])
    private let wanted = Mutex<Set<InterfaceName>>([])
    /// Per interface: how many times its client died unexpectedly, and how, the last time.
    private let deaths = Mutex<[InterfaceName: (count: Int, last: String)]>([:])

    /// `hook`: the vtep-dhcp-event executable; `hookSocket`: where `DHCPHookServer` listens.
    public init(
        hook: String, hookSocket: String, stateDirectory: String,
        logger: Logger = Logger(label: "vtepd.dhcp")
    ) {
        self.hook = hook
        self.hookSocket = hookSocket
        self.stateDirectory = stateDirectory
        self.logger = logger
    }

    /// For `show configuration`: the clients that died and were restarted, and why.
    public var problems: [String] {
        deaths.withLock { $0 }.sorted { $0.key.text < $1.key.text }.map { name, death in
            "the DHCP client on \(name) died \(death.count) time(s) and was restarted; the last"
                + " time it \(death.last)"
        }
    }

    /// Why DHCP cannot be used on this appliance, or nil.
    public func problem() -> String? {
        if access(Self.udhcpc, X_OK) != 0 {
            return "no DHCP client: \(Self.udhcpc) is missing (Debian package udhcpc)"
        }
        if access(hook, X_OK) != 0 { return "the DHCP client's hook \(hook) is missing" }
        return nil
    }

    /// Runs a client for each interface of `names` and stops the others'.
    public func reconcile(_ names: Set<InterfaceName>) {
        wanted.withLock { $0 = names }
        let running = clients.withLock { Set($0.keys) }
        for name in running.subtracting(names) { stop(name) }
        for name in names.subtracting(running) { start(name) }
    }

    /// Whether `name` should have a running client: false once the interface leaves DHCP
    /// mode, before its client is stopped.
    public func isWanted(_ name: InterfaceName) -> Bool { wanted.withLock { $0.contains(name) } }

    /// The interfaces with a running client.
    public var running: Set<InterfaceName> { clients.withLock { Set($0.keys) } }

    /// The client's PID on `name`, for `show network interface`.
    public func pid(of name: InterfaceName) -> Int32? { clients.withLock { $0[name]?.pid } }

    /// Stops every client (SIGKILL) and waits for them to exit. Their leases are not
    /// released: the addresses stay, for the next vtepd's clients to ask for again.
    public func stopAll() async {
        wanted.withLock { $0 = [] }
        let all = clients.withLock { table in
            defer { table = [:] }
            return Array(table.values)
        }
        for process in all { process.signal(SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(5)
        for process in all {
            while process.exit == nil && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    func pidFile(_ name: InterfaceName) -> String { stateDirectory + "/udhcpc-\(name).pid" }

    /// A client a previous vtepd left running (it was killed: its children live on in their
    /// own process group) would answer for the same interface beside the new one. Its PID
    /// file names it; it is killed if that PID is still a udhcpc for this interface (SIGKILL,
    /// as at a stop: its lease is not released, and the new client asks for it again).
    private func stopLeftover(_ name: InterfaceName) {
        guard let text = try? String(contentsOfFile: pidFile(name), encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1,
            let commandLine = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
        else { return }
        let arguments = commandLine.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        guard arguments.first.map({ $0.hasSuffix("udhcpc") }) == true,
            let at = arguments.firstIndex(of: "-i"), arguments.dropFirst(at + 1).first == name.text
        else { return }
        logger.notice(
            "stopping the DHCP client a previous vtepd left",
            metadata: ["interface": "\(name)", "pid": "\(pid)"])
        kill(pid, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(3)
        while kill(pid, 0) == 0 && ContinuousClock.now < deadline { usleep(20_000) }
    }

    private func start(_ name: InterfaceName) {
        stopLeftover(name)
        var arguments = [
            "-f", "-R", "-i", name.text, "-s", hook, "-O", "search", "-p", pidFile(name),
        ]
        if let held = Self.heldIPv4Address(of: name) { arguments += ["-r", held] }
        // Its output (and its script's) comes through a pipe into vtepd's log, one message per
        // line, so it reaches the journal with a priority like everything vtepd says.
        var output: [Int32] = [-1, -1]
        // No O_CLOEXEC needed: every child is spawned with only its three descriptors.
        guard pipe(&output) == 0 else {
            logger.error(
                "cannot start the DHCP client: pipe: \(String(cString: strerror(errno)))",
                metadata: ["interface": "\(name)"])
            return
        }
        let process: ChildProcess
        do {
            defer { close(output[1]) }
            process = try ChildProcess.spawn(
                Self.udhcpc, arguments,
                stdout: output[1], stderr: output[1],
                environment: [
                    "VTEPD_DHCP_HOOK_SOCKET=\(hookSocket)", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                ])
        } catch {
            close(output[0])
            logger.error(
                "cannot start the DHCP client: \(error)", metadata: ["interface": "\(name)"])
            return
        }
        var clientLogger = logger
        clientLogger[metadataKey: "interface"] = "\(name)"
        clientLogger[metadataKey: "pid"] = "\(process.pid)"
        Self.relay(output[0], to: clientLogger)
        clients.withLock { $0[name] = process }
        logger.info(
            "DHCP client started (udhcpc)",
            metadata: ["interface": "\(name)", "pid": "\(process.pid)"])
        Task.detached { [self] in
            let status = await process.waitForExit()
            let stillOurs = clients.withLock { table in
                guard table[name] === process else { return false }
                table[name] = nil
                return true
            }
            guard stillOurs else { return }  // stopped on purpose
            let how = ChildProcess.describe(status)
            deaths.withLock { $0[name] = (($0[name]?.count ?? 0) + 1, how) }
            logger.error(
                "the DHCP client \(how); restarting it",
                metadata: ["interface": "\(name)", "pid": "\(process.pid)"])
            try? await Task.sleep(for: Self.restartPause)
            if wanted.withLock({ $0.contains(name) }) && clients.withLock({ $0[name] == nil }) {
                start(name)
            }
        }
    }

    /// Logs each line read from `descriptor` at info until end of file, then closes it; on a
    /// thread of its own (the read blocks).
    static func relay(_ descriptor: Int32, to logger: Logger) {
        let thread = Thread {
            defer { close(descriptor) }
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(descriptor, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                pending += buffer[0..<n]
                while let newline = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[..<newline], as: UTF8.self)
                    pending.removeSubrange(...newline)
                    if !line.isEmpty { logger.info("\(line)") }
                }
            }
            if !pending.isEmpty { logger.info("\(String(decoding: pending, as: UTF8.self))") }
        }
        thread.name = "udhcpc output"
        thread.start()
    }

    /// The first IPv4 address `name` holds (a lease a previous vtepd applied), if any.
    static func heldIPv4Address(of name: InterfaceName) -> String? {
        guard let link = try? HostNetwork().links().first(where: { $0.name == name.text })
        else { return nil }
        for address in link.addresses {
            if case .v4(let v4) = address.address { return v4.description }
        }
        return nil
    }

    /// SIGTERM: udhcpc releases the lease (`-R`: RFC 2131 DHCPRELEASE, then its `deconfig`
    /// event) and exits; its watcher reaps it.
    @discardableResult
    private func stop(_ name: InterfaceName) -> ChildProcess? {
        guard let process = clients.withLock({ $0.removeValue(forKey: name) }) else { return nil }
        process.signal(SIGTERM)
        logger.info(
            "DHCP client stopped", metadata: ["interface": "\(name)", "pid": "\(process.pid)"])
        return process
    }

    /// Stops the client on `name` and waits (at most `timeout`) until it has exited: it
    /// releases the lease from the leased address, so that address must still be there; the
    /// caller changes the interface afterwards. Blocks the calling thread.
    public func stopAndWait(_ name: InterfaceName, timeout: Duration = .seconds(5)) {
        wanted.withLock { _ = $0.remove(name) }
        guard let process = stop(name) else { return }
        let deadline = ContinuousClock.now + timeout
        while process.exit == nil && ContinuousClock.now < deadline { usleep(10_000) }
    }
}

/// The Unix socket vtep-dhcp-event reports udhcpc's events on: SOCK_SEQPACKET, so one
/// message is one event; mode 0600 in vtepd's state directory, and only root's reports
/// (SO_PEERCRED) are taken. One thread accepts and handles the reports in turn; each is
/// answered `ok` or `refused: WHY` once applied, so udhcpc goes on only after the host has
/// its lease.
public final class DHCPHookServer: @unchecked Sendable {
    public let path: String
    private let listener: Int32
    private let thread: Thread

    /// `handle(event name, pairs, peer)` returns nil when applied, or why not.
    public init(
        path: String,
        handle: @escaping @Sendable ([String: String], PeerCredentials) -> String?
    ) throws(HostCommandError) {
        self.path = path
        func failure(_ call: String) -> HostCommandError {
            HostCommandError(
                command: "DHCP hook socket \(path)",
                reason: "\(call): \(String(cString: strerror(errno)))")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw failure("socket") }
        // Only vtepd uses its state directory; a socket left by a vtepd that died is stale.
        var status = stat()
        if lstat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFSOCK { unlink(path) }
        guard let bound = UnixSocket.withAddress(path, { bind(fd, $0, $1) }) else {
            close(fd)
            throw HostCommandError(command: "DHCP hook socket \(path)", reason: "path too long")
        }
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 8) == 0 else {
            let error = failure("bind/listen")
            close(fd)
            throw error
        }
        listener = fd
        thread = Thread {
            var buffer = [UInt8](repeating: 0, count: DHCPHookMessage.maximumSize + 1)
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return  // shut down
                }
                defer { close(connection) }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(
                    connection, SOL_SOCKET, SO_RCVTIMEO, &timeout,
                    socklen_t(MemoryLayout<timeval>.size))
                // struct ucred (socket(7)), which Swift's Glibc module does not export.
                var credentials = (pid: Int32(0), uid: UInt32(0), gid: UInt32(0))
                var length = socklen_t(MemoryLayout.size(ofValue: credentials))
                guard getsockopt(connection, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0
                else { continue }
                _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
                let peer = PeerCredentials(
                    pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
                let count = recv(connection, &buffer, buffer.count, 0)
                let answer: String
                if peer.uid != 0 {
                    answer = "refused: only root's DHCP client may report leases"
                } else if count <= 0 {
                    continue
                } else if let pairs = DHCPHookMessage.decode(buffer[0..<count]) {
                    answer = handle(pairs, peer).map { "refused: \($0)" } ?? "ok"
                } else {
                    answer = "refused: not a DHCP hook message"
                }
                _ = Array(answer.utf8).withUnsafeBytes {
                    send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
            }
        }
        thread.name = "dhcp hook"
        thread.start()
    }

    /// Stops accepting and removes the socket file.
    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        unlink(path)
    }
}
