import Appliance
import Glibc
import Netlink
import Packet
import ProcessSpawning

/// A change the host refused. Whatever had been changed before it was undone, unless
/// `rollbackFailures` says otherwise.
public struct HostConfigurationError: Error, Sendable, CustomStringConvertible {
    public enum Cause: Sendable, Hashable, CustomStringConvertible {
        case netlink(NetlinkError)
        case file(AtomicFileError)
        case hostname(errno: Int32)
        case noSuchInterface(InterfaceName)
        case save(ApplianceSettingsStoreError)
        case timeService(HostCommandError)
        case shadow(ShadowFileError)

        public var description: String {
            switch self {
            case .netlink(let error): "\(error)"
            case .file(let error): "\(error)"
            case .hostname(let errno): "sethostname failed: \(String(cString: strerror(errno)))"
            case .noSuchInterface(let name):
                "this host has no interface \(name) (see show network interfaces)"
            case .save(let error): "\(error)"
            case .timeService(let error): "chronyd refused its new sources: \(error)"
            case .shadow(let error): "\(error)"
            }
        }
    }

    /// What was being done: "add route 10.9.0.0/16 via 192.0.2.77".
    public var step: String
    public var cause: Cause
    /// Undo steps that failed in turn; empty when the host is back as it was.
    public var rollbackFailures: [String]

    public var description: String {
        let undone =
            rollbackFailures.isEmpty
            ? "nothing was changed"
            : "undoing the earlier changes failed too, the host may be partly changed: "
                + rollbackFailures.joined(separator: "; ")
        return "could not \(step): \(cause); \(undone)"
    }
}

/// The kernel's hostname of the calling thread's UTS namespace, behind two closures so tests
/// can run the real sethostname(2) inside a private UTS namespace (or not at all).
public struct KernelHostname: Sendable {
    public var get: @Sendable () -> String
    /// Returns 0, or the errno of the failure.
    public var set: @Sendable (String) -> Int32

    public init(get: @escaping @Sendable () -> String, set: @escaping @Sendable (String) -> Int32) {
        self.get = get
        self.set = set
    }

    /// gethostname(2) and sethostname(2).
    public static let system = KernelHostname(
        get: {
            var buffer = [CChar](repeating: 0, count: 256)
            guard gethostname(&buffer, buffer.count) == 0 else { return "" }
            return String(cString: buffer)
        },
        set: { name in
            name.withCString { sethostname($0, strlen($0)) == 0 ? 0 : errno }
        })
}

/// Makes the host match `ApplianceSettings`: addresses, link state, MTU and routes through
/// rtnetlink (libnl-route-3, in the calling thread's network namespace), and the hostname,
/// DNS and NTP files under `root` (`/` on the appliance, a temporary directory in tests).
///
/// NTP goes to chrony, the appliance's time daemon: one whole file the appliance owns in
/// chronyd's `sourcedir` (`etc/chrony/sources.d/vtep-gateway.sources`, which Debian's
/// chrony.conf reads), so no file the distribution ships is edited; then chronyd is told to
/// `reload sources` over its command socket (`run/chrony/chronyd.sock` under the root), which
/// adds and removes servers without a restart and without losing the clock's state. When
/// chronyd is not running (no socket), the file alone is written and chronyd reads it when it
/// starts. A reload chronyd refuses undoes the change like any other refused step.
///
/// DHCP addressing: the address, default route, DNS servers and search domains of a lease
/// (`ApplianceSettings.dhcpLeases`, filled by vtepd's DHCP clients) are applied like static
/// settings; running the DHCP client is vtepd's business.
public struct ApplianceHost: Sendable {
    public let root: String
    public let kernelHostname: KernelHostname

    /// chronyc(1); a test may name another program to play a chronyd that refuses.
    public let chronyc: String

    public init(
        root: String = "/", kernelHostname: KernelHostname = .system,
        chronyc: String = "/usr/bin/chronyc"
    ) {
        self.root = root.hasSuffix("/") ? root : root + "/"
        self.kernelHostname = kernelHostname
        self.chronyc = chronyc
    }

    public var hostnamePath: String { root + "etc/hostname" }
    public var hostsPath: String { root + "etc/hosts" }
    public var resolvConfPath: String { root + "etc/resolv.conf" }
    public var chronySourcesPath: String { root + "etc/chrony/sources.d/vtep-gateway.sources" }
    /// chronyd's command socket (Debian's `bindcmdaddress` default, /run/chrony/chronyd.sock).
    public var chronySocketPath: String { root + "run/chrony/chronyd.sock" }

    // MARK: Reading

    /// Every interface, with state, MTU, MAC, addresses and counters.
    public func interfaces() throws(NetlinkError) -> [HostLink] { try HostNetwork().links() }

    /// The main routing table.
    public func routes() throws(NetlinkError) -> [HostRoute] { try HostNetwork().routes() }

    // MARK: Applying

    /// Changes the host from `old` (what was applied before; nil at first start) to `new`,
    /// all or nothing: when a step is refused, the steps before it are undone in reverse
    /// order and the refusal is thrown. Steps whose target already holds (an address the
    /// interface has, a file with the right content) are skipped, so applying the saved
    /// settings again at start is harmless.
    public func apply(_ new: ApplianceSettings, replacing old: ApplianceSettings?)
        throws(HostConfigurationError)
    {
        _ = try applyKeepingUndo(new, replacing: old)
    }

    /// `apply`, then `store.save(new)`; if saving fails, every change `apply` made is undone,
    /// so the saved and the applied settings never disagree.
    public func applyAndSave(
        _ new: ApplianceSettings, replacing old: ApplianceSettings?,
        to store: ApplianceSettingsStore
    ) throws(HostConfigurationError) {
        let change = try applyKeepingUndo(new, replacing: old)
        do {
            try store.save(new)
        } catch {
            throw HostConfigurationError(
                step: "save the settings to \(store.path)", cause: .save(error),
                rollbackFailures: rollBack(change, to: old))
        }
    }

    /// `apply`, returning how to undo what it did.
    private func applyKeepingUndo(_ new: ApplianceSettings, replacing old: ApplianceSettings?)
        throws(HostConfigurationError) -> Change
    {
        var change = Change()
        do throws(HostConfigurationError) {
            let network: HostNetwork
            do {
                network = try HostNetwork()
            } catch {
                throw HostConfigurationError(
                    step: "open rtnetlink", cause: .netlink(error), rollbackFailures: [])
            }
            let files = try plannedFiles(new, old)
            try applyInterfaces(new, old, network, &change)
            try applyRoutes(new, old, network, &change)
            try writeFiles(files, &change)
            try applyPasswords(new, old, &change)
            try applyHostname(new, &change)
            return change
        } catch {
            var failed = error
            failed.rollbackFailures = rollBack(change, to: old)
            throw failed
        }
    }

    /// Undoes `change`, then puts back the routes of `old` the kernel dropped on its own;
    /// returns what could not be undone.
    private func rollBack(_ change: Change, to old: ApplianceSettings?) -> [String] {
        var failures = change.rollBack()
        do {
            failures += restoreRoutes(old, try HostNetwork())
        } catch {
            failures.append("restore the routes: \(error)")
        }
        return failures
    }

    // MARK: Steps

    private func applyInterfaces(
        _ new: ApplianceSettings, _ old: ApplianceSettings?, _ network: HostNetwork,
        _ change: inout Change
    ) throws(HostConfigurationError) {
        let names = Set(new.interfaces.map(\.name) + (old?.interfaces.map(\.name) ?? [])).sorted()
        guard !names.isEmpty else { return }
        let links = try netlink("read the interfaces") { () throws(NetlinkError) in
            try network.links()
        }
        for name in names {
            let wanted = new.interface(name)
            let before = old?.interface(name)
            guard let link = links.first(where: { $0.name == name.text }) else {
                // An interface that is gone and that the new settings no longer mention needs
                // nothing; one they configure must exist.
                if wanted == nil { continue }
                throw HostConfigurationError(
                    step: "configure interface \(name)", cause: .noSuchInterface(name),
                    rollbackFailures: [])
            }
            let index = link.index
            if let mtu = wanted?.mtu, mtu != link.mtu {
                let previous = link.mtu
                try change.perform(
                    "set interface \(name) mtu \(mtu)",
                    { () throws(NetlinkError) in try network.setLink(index: index, mtu: mtu) },
                    undo: { () throws(NetlinkError) in
                        try network.setLink(index: index, mtu: previous)
                    })
            }
            // An interface configured for DHCP must be up for its client to ask, unless the
            // operator set it down.
            let wantedUp = wanted?.isUp ?? (wanted?.addressing == .dhcp ? true : nil)
            if let up = wantedUp, up != link.isAdministrativelyUp {
                try change.perform(
                    "set interface \(name) \(up ? "up" : "down")",
                    { () throws(NetlinkError) in try network.setLink(index: index, up: up) },
                    undo: { () throws(NetlinkError) in try network.setLink(index: index, up: !up) })
            }
            let oldAddress = before == nil ? nil : old?.address(of: name)
            let newAddress = wanted == nil ? nil : new.address(of: name)
            if let oldAddress, oldAddress != newAddress,
                let present = link.addresses.first(where: { $0 == hostAddress(oldAddress, index) })
            {
                try change.perform(
                    "remove address \(oldAddress) from \(name)",
                    { () throws(NetlinkError) in try network.deleteAddress(present) },
                    undo: { () throws(NetlinkError) in try network.addAddress(present) })
            }
            if let newAddress, !link.addresses.contains(hostAddress(newAddress, index)) {
                let address = hostAddress(newAddress, index)
                try change.perform(
                    "add address \(newAddress) to \(name)",
                    { () throws(NetlinkError) in try network.addAddress(address) },
                    undo: { () throws(NetlinkError) in try network.deleteAddress(address) })
            }
        }
    }

    private func applyRoutes(
        _ new: ApplianceSettings, _ old: ApplianceSettings?, _ network: HostNetwork,
        _ change: inout Change
    ) throws(HostConfigurationError) {
        let before = old?.effectiveRoutes ?? []
        let wanted = new.effectiveRoutes
        guard !wanted.isEmpty || !before.isEmpty else { return }
        let present = try netlink("read the routes") { () throws(NetlinkError) in
            try network.routes()
        }
        func installed(_ route: StaticRoute) -> HostRoute? {
            present.first { $0.destination == route.destination && $0.gateway == route.gateway }
        }
        for route in before where !wanted.contains(route) {
            guard installed(route) != nil else { continue }
            let entry = HostRoute(destination: route.destination, gateway: route.gateway)
            try change.perform(
                "remove route \(route)",
                { () throws(NetlinkError) in try network.deleteRoute(entry) },
                undo: { () throws(NetlinkError) in try network.addRoute(entry) })
        }
        for route in wanted where installed(route) == nil {
            let entry = HostRoute(destination: route.destination, gateway: route.gateway)
            try change.perform(
                "add route \(route)",
                { () throws(NetlinkError) in try network.addRoute(entry) },
                undo: { () throws(NetlinkError) in try network.deleteRoute(entry) })
        }
    }

    /// Removing an address makes the kernel drop the routes through it; undoing the removal
    /// does not bring them back. After a rollback, the routes `old` had are put back.
    private func restoreRoutes(_ old: ApplianceSettings?, _ network: HostNetwork) -> [String] {
        guard let old, !old.effectiveRoutes.isEmpty, let present = try? network.routes() else {
            return []
        }
        var failures: [String] = []
        for route in old.effectiveRoutes
        where !present.contains(where: {
            $0.destination == route.destination && $0.gateway == route.gateway
        }) {
            do {
                try network.addRoute(
                    HostRoute(destination: route.destination, gateway: route.gateway))
            } catch {
                failures.append("restore route \(route): \(error)")
            }
        }
        return failures
    }

    /// The files `new` needs, with what they hold now. Read before anything changes, so a
    /// file that cannot be read stops the change before it starts.
    private func plannedFiles(_ new: ApplianceSettings, _ old: ApplianceSettings?)
        throws(HostConfigurationError) -> [PlannedFile]
    {
        var files: [(path: String, content: [UInt8])] = []
        if let hostname = new.hostname {
            files.append((hostnamePath, Array("\(hostname)\n".utf8)))
            let hosts = try file("read \(hostsPath)") { () throws(AtomicFileError) in
                try AtomicFile.read(hostsPath)
            }
            files.append((hostsPath, Self.hosts(hosts, hostname: hostname)))
        }
        let hadDNS =
            !(old?.effectiveDNSServers.isEmpty ?? true)
            || !(old?.effectiveSearchDomains.isEmpty ?? true)
        if hadDNS || !new.effectiveDNSServers.isEmpty || !new.effectiveSearchDomains.isEmpty {
            files.append((resolvConfPath, Self.resolvConf(new)))
        }
        if !(old?.ntpServers.isEmpty ?? true) || !new.ntpServers.isEmpty {
            files.append((chronySourcesPath, Self.chronySources(new)))
        }
        var planned: [PlannedFile] = []
        for (path, content) in files {
            let previous = try file("read \(path)") { () throws(AtomicFileError) in
                try AtomicFile.read(path)
            }
            if previous != content {
                planned.append(PlannedFile(path: path, content: content, previous: previous))
            }
        }
        return planned
    }

    private func writeFiles(_ files: [PlannedFile], _ change: inout Change)
        throws(HostConfigurationError)
    {
        for planned in files {
            let (path, content, previous) = (planned.path, planned.content, planned.previous)
            let isChronySources = path == chronySourcesPath
            if isChronySources {
                // Undone after the file is put back (undo runs newest first): chronyd then
                // reloads the old sources.
                try change.perform(
                    "prepare chronyd's reload", { () throws(HostCommandError) in },
                    undo: { () throws(HostCommandError) in try reloadChronySources() })
            }
            try change.perform(
                "write \(path)",
                { () throws(AtomicFileError) in
                    try AtomicFile.makeDirectories(AtomicFile.split(path).directory)
                    try AtomicFile.write(content, to: path)
                },
                undo: { () throws(AtomicFileError) in
                    if let previous {
                        try AtomicFile.write(previous, to: path)
                    } else {
                        try AtomicFile.remove(path)
                    }
                })
            if isChronySources {
                try change.perform(
                    "reload chronyd's sources (chronyc reload sources)",
                    { () throws(HostCommandError) in try reloadChronySources() },
                    undo: { () throws(HostCommandError) in })
            }
        }
    }

    /// Removes every IPv4 address of `name` except `keeping`: what a DHCP client's
    /// `deconfig` asks for, so an address a lease left before vtepd restarted goes too.
    public func removeIPv4Addresses(of name: InterfaceName, keeping: IPv4InterfaceAddress?)
        throws(NetlinkError)
    {
        let network = try HostNetwork()
        guard let link = try network.links().first(where: { $0.name == name.text }) else { return }
        let kept = keeping.map { hostAddress($0, link.index) }
        for address in link.addresses where address != kept {
            if case .v4 = address.address { try network.deleteAddress(address) }
        }
    }

    /// Whether a chronyd receives on the command socket: connect(2) to a datagram socket that
    /// nobody reads (chronyd died and left the file) or to no socket at all is refused. A
    /// chronyd that is not running is not an error: it reads the sources file when it starts.
    public func chronydListens() -> Bool {
        UnixSocket.connects(chronySocketPath, type: Int32(SOCK_DGRAM.rawValue))
    }

    /// `chronyc reload sources` over chronyd's command socket; nothing when chronyd is not
    /// running (it reads the sources file when it starts).
    public func reloadChronySources() throws(HostCommandError) {
        guard chronydListens() else { return }
        try HostCommand.run(chronyc, ["-h", chronySocketPath, "reload", "sources"])
    }

    /// What chronyd says of its sources (`chronyc -c sources`), or nil when chronyd is not
    /// running here.
    public func chronySources() throws(HostCommandError) -> [TimeSourceState]? {
        guard chronydListens() else { return nil }
        let text = try HostCommand.run(
            chronyc, ["-h", chronySocketPath, "-c", "-n", "sources"])
        return text.split(separator: "\n").compactMap { TimeSourceState(chronycCSV: $0) }
    }

    /// Each user's password hash into shadow(5) under the root, where login, sshd and PAM
    /// read it; a user whose line already holds the hash is left alone (so a restart rewrites
    /// nothing, and the date of the last change stays true).
    private func applyPasswords(
        _ new: ApplianceSettings, _ old: ApplianceSettings?, _ change: inout Change
    ) throws(HostConfigurationError) {
        let shadow = ShadowFile(root: root)
        for user in new.users where old?.users.contains(user) != true || old == nil {
            let current: String?
            do {
                current = try shadow.passwordField(of: user.name.text)
            } catch {
                throw HostConfigurationError(
                    step: "read \(shadow.path)", cause: .shadow(error), rollbackFailures: [])
            }
            guard current != user.passwordHash.text else { continue }
            var done: ShadowChange?
            try change.perform(
                "set the password of \(user.name) in \(shadow.path)",
                { () throws(ShadowFileError) in
                    done = try shadow.setPassword(of: user.name.text, to: user.passwordHash)
                },
                undo: { () throws(ShadowFileError) in
                    if let done { try shadow.undo(done) }
                })
        }
    }

    private func applyHostname(_ new: ApplianceSettings, _ change: inout Change)
        throws(HostConfigurationError)
    {
        guard let hostname = new.hostname else { return }
        let previous = kernelHostname.get()
        guard previous != hostname.text else { return }
        let kernel = kernelHostname
        try change.perform(
            "set hostname \(hostname)",
            { () throws(HostnameFailure) in
                let status = kernel.set(hostname.text)
                if status != 0 { throw HostnameFailure(errno: status) }
            },
            undo: { () throws(HostnameFailure) in
                let status = kernel.set(previous)
                if status != 0 { throw HostnameFailure(errno: status) }
            })
    }

    // MARK: File contents

    /// /etc/hosts with its `127.0.1.1` line naming `hostname` (Debian's convention for a host
    /// without a permanent address, so the hostname resolves): replaced if there is one,
    /// appended otherwise; every other line kept.
    static func hosts(_ current: [UInt8]?, hostname: Hostname) -> [UInt8] {
        let names =
            hostname.shortName == hostname.text
            ? hostname.text : "\(hostname.text) \(hostname.shortName)"
        let entry = "127.0.1.1\t\(names)"
        var lines =
            current.map {
                String(decoding: $0, as: UTF8.self).split(
                    separator: "\n", omittingEmptySubsequences: false
                ).map(String.init)
            }
            ?? ["127.0.0.1\tlocalhost", "::1\t\tlocalhost ip6-localhost ip6-loopback", ""]
        if lines.last == "" { lines.removeLast() }
        if let at = lines.firstIndex(where: {
            $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).first == "127.0.1.1"
        }) {
            lines[at] = entry
        } else {
            lines.append(entry)
        }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    /// resolv.conf(5): one `nameserver` line per server, one `search` line; the static
    /// settings first, then what DHCP leases gave.
    static func resolvConf(_ settings: ApplianceSettings) -> [UInt8] {
        var text = "# Written by vtepd from the appliance settings; change it with vtepsh.\n"
        for server in settings.effectiveDNSServers { text += "nameserver \(server)\n" }
        let search = settings.effectiveSearchDomains
        if !search.isEmpty {
            text += "search \(search.map(\.text).joined(separator: " "))\n"
        }
        return Array(text.utf8)
    }

    /// chrony.conf(5) `server` lines, as a `sourcedir` file holds them; `iburst` so a new
    /// server is used within seconds rather than after several poll intervals.
    static func chronySources(_ settings: ApplianceSettings) -> [UInt8] {
        var text = "# Written by vtepd from the appliance settings; change it with vtepsh.\n"
        for server in settings.ntpServers { text += "server \(server) iburst\n" }
        return Array(text.utf8)
    }

    private func hostAddress(_ address: IPv4InterfaceAddress, _ index: Int32) -> HostAddress {
        HostAddress(
            interfaceIndex: index, address: .v4(address.address), prefixLength: address.prefixLength
        )
    }

    private func netlink<T>(_ step: String, _ body: () throws(NetlinkError) -> T)
        throws(HostConfigurationError) -> T
    {
        do {
            return try body()
        } catch {
            throw HostConfigurationError(step: step, cause: .netlink(error), rollbackFailures: [])
        }
    }

    private func file<T>(_ step: String, _ body: () throws(AtomicFileError) -> T)
        throws(HostConfigurationError) -> T
    {
        do {
            return try body()
        } catch {
            throw HostConfigurationError(step: step, cause: .file(error), rollbackFailures: [])
        }
    }
}

private struct PlannedFile {
    var path: String
    var content: [UInt8]
    /// nil: there is no such file now.
    var previous: [UInt8]?
}

private struct HostnameFailure: Error {
    var errno: Int32
}

/// A failure of one step, as the cause an operator reads.
private protocol StepFailure: Error {
    var cause: HostConfigurationError.Cause { get }
}

extension NetlinkError: StepFailure {
    fileprivate var cause: HostConfigurationError.Cause { .netlink(self) }
}

extension AtomicFileError: StepFailure {
    fileprivate var cause: HostConfigurationError.Cause { .file(self) }
}

extension HostCommandError: StepFailure {
    fileprivate var cause: HostConfigurationError.Cause { .timeService(self) }
}

extension ShadowFileError: StepFailure {
    fileprivate var cause: HostConfigurationError.Cause { .shadow(self) }
}

extension HostnameFailure: StepFailure {
    var cause: HostConfigurationError.Cause { .hostname(errno: errno) }
}

/// The steps done so far and how to undo each, for all-or-nothing application.
private struct Change {
    /// Each undo returns why it failed, or nil.
    private var undoSteps: [(description: String, undo: () -> HostConfigurationError.Cause?)] = []

    mutating func perform<E: StepFailure>(
        _ description: String, _ body: () throws(E) -> Void, undo: @escaping () throws(E) -> Void
    ) throws(HostConfigurationError) {
        do {
            try body()
        } catch {
            throw HostConfigurationError(
                step: description, cause: error.cause, rollbackFailures: [])
        }
        undoSteps.append(
            (
                description,
                { () -> HostConfigurationError.Cause? in
                    do throws(E) {
                        try undo()
                        return nil
                    } catch {
                        return error.cause
                    }
                }
            ))
    }

    /// Undoes every step, newest first; returns what could not be undone.
    func rollBack() -> [String] {
        undoSteps.reversed().compactMap { step in
            step.undo().map { "undo \(step.description): \($0)" }
        }
    }
}
