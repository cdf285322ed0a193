import Foundation
import Glibc
import Logging
import Packet
import ProcessSpawning
import Synchronization

/// The logical routers on this host: a network namespace each (`namespacePrefix` + router
/// name, under /run/netns, so `ip netns exec` reaches it), a veth pair per interface whose
/// outer end becomes an internal port of the data plane, the routes, and the NAT ruleset.
///
/// `apply(_:)` makes the host match the routers given: new ones are built, gone ones removed
/// with everything they made, changed ones updated in place where that keeps their sessions
/// (routes, NAT rules, NAT addresses) and rebuilt when their interfaces changed. The work
/// runs on a serial queue of its own (it spawns `ip` and blocks on libnftables), never on
/// the caller's thread; `settled()` waits for it.
public final class RouterNamespaces: @unchecked Sendable {
    /// The data plane's side: open a router port, and close it.
    public struct Ports: Sendable {
        public var add: @Sendable (String) async throws -> Void
        public var remove: @Sendable (String) async -> Void

        public init(
            add: @escaping @Sendable (String) async throws -> Void,
            remove: @escaping @Sendable (String) async -> Void
        ) {
            self.add = add
            self.remove = remove
        }
    }

    public let namespacePrefix: String
    private let ports: Ports
    private let logger: Logger
    private let queue = DispatchQueue(label: "vtepd-routers")
    /// The routers built, by name; only touched on `queue`, read under the lock.
    private let built = Mutex<[String: LogicalRouter]>([:])
    private let failures = Mutex<[String: String]>([:])
    private let ip: String
    /// The underlay interface (for `LinkMTU.underlay`); nil: router interfaces on tunnelled
    /// switches keep the veth default.
    private let underlay: String?
    /// The MTU rule of each router port, as last given; only touched on `queue`.
    private var mtuRules: [String: LinkMTU] = [:]
    /// The MTU set on each router port's veth; only touched on `queue`.
    private var appliedMTU: [String: Int] = [:]
    /// An MTU the kernel refused for a port, logged once rather than every round; only
    /// touched on `queue`.
    private var refusedMTU: [String: Int] = [:]

    public init(namespacePrefix: String, ports: Ports, underlay: String? = nil, logger: Logger) {
        self.namespacePrefix = namespacePrefix
        self.ports = ports
        self.underlay = underlay
        self.logger = logger
        ip =
            ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { access($0, X_OK) == 0 }
            ?? "/usr/sbin/ip"
    }

    /// The namespace of router `name`.
    public func namespace(of name: String) -> String { namespacePrefix + name }

    /// Where `ip netns` mounts it.
    public func namespacePath(of name: String) -> String { "/run/netns/" + namespace(of: name) }

    /// Removes what an earlier vtepd left (it crashed, or was killed): every namespace with
    /// our prefix and every router port (`lr` + 11 hex digits) in ours. Call before the first
    /// `apply`; returns one note per thing removed, for the log.
    public func removeLeftovers() -> [String] {
        var notes: [String] = []
        queue.sync {
            for port in Self.interfaceNames() where LogicalRouter.isRouterPort(port) {
                if (try? run(["link", "del", port])) != nil {
                    notes.append("removed router port \(port) left by an earlier vtepd")
                }
            }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
            for entry in entries.sorted() where entry.hasPrefix(namespacePrefix) {
                if (try? run(["netns", "del", entry])) != nil {
                    notes.append("removed router namespace \(entry) left by an earlier vtepd")
                }
            }
        }
        return notes
    }

    /// Makes the host carry exactly `routers` (asynchronously, in order of calls), each
    /// interface with the MTU its rule in `mtu` (by port) gives.
    public func apply(_ routers: [LogicalRouter], mtu: [String: LinkMTU] = [:]) {
        let wanted = Dictionary(routers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        queue.async { [self] in
            mtuRules = mtu
            reconcile(wanted)
            applyMTU()
        }
    }

    /// Reads again the MTUs the router ports' rules depend on (the underlay's, the physical
    /// ports') and sets each port whose MTU they now give another value (asynchronously, in
    /// order with `apply`): an MTU changed on a link reaches the routers without a database
    /// change. Cheap: a sysfs read per rule, and nothing while there is no router.
    public func followLinkMTUs() {
        queue.async { [self] in applyMTU() }
    }

    /// `followLinkMTUs()` every `interval` until the task is cancelled (vtepd's rounds).
    public func followLinks(every interval: Duration = .seconds(1)) async {
        while !Task.isCancelled {
            followLinkMTUs()
            try? await Task.sleep(for: interval)
        }
    }

    /// The MTU each router port has now (set from its rule), by port.
    public var portMTU: [String: Int] {
        get async {
            await withCheckedContinuation { (done: CheckedContinuation<[String: Int], Never>) in
                queue.async { [self] in done.resume(returning: appliedMTU) }
            }
        }
    }

    /// Returns once every `apply` made so far has been carried out.
    public func settled() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            queue.async { done.resume() }
        }
    }

    /// The routers built, sorted by name.
    public var routers: [LogicalRouter] {
        built.withLock { $0.values.sorted { $0.name < $1.name } }
    }

    /// One sentence per router that could not be built as configured.
    public var problems: [String] {
        failures.withLock {
            $0.sorted { $0.key < $1.key }.map { "logical router \($0.key): \($0.value)" }
        }
    }

    /// Each NAT rule's counters (by its `other_config` key) in router `name`'s ruleset.
    /// Blocking (libnftables): call it off the cooperative threads.
    public func natCounters(of name: String) throws(RouterError) -> [String: (
        packets: UInt64, bytes: UInt64
    )] {
        guard built.withLock({ $0[name] }) != nil else {
            throw RouterError("logical router \(name) is not built")
        }
        let json = try Nftables.run(
            NATRuleset.listCommand, inNamespace: namespacePath(of: name), json: true)
        return NATRuleset.counters(fromJSON: json)
    }

    /// The connections conntrack tracks in router `name`'s namespace now (its
    /// `nf_conntrack_count`, which the kernel keeps per namespace). Blocking: call it off the
    /// cooperative threads.
    public func sessionCount(of name: String) throws(RouterError) -> Int {
        let text = try NamespaceThread.sysctl(
            "/proc/sys/net/netfilter/nf_conntrack_count", inNamespace: namespacePath(of: name))
        guard let count = Int(text) else {
            throw RouterError("nf_conntrack_count of \(namespace(of: name)) reads \"\(text)\"")
        }
        return count
    }

    /// The first `limit` sessions conntrack tracks in router `name` (ctnetlink). Blocking.
    public func sessions(of name: String, limit: Int) throws(RouterError) -> [Session] {
        guard built.withLock({ $0[name] }) != nil else {
            throw RouterError("logical router \(name) is not built")
        }
        return try Conntrack.sessions(inNamespace: namespacePath(of: name), limit: limit)
    }

    /// Removes the sessions conntrack tracks in router `name` now (ctnetlink); returns how
    /// many were removed. Blocking.
    public func clearSessions(of name: String) throws(RouterError) -> Int {
        guard built.withLock({ $0[name] }) != nil else {
            throw RouterError("logical router \(name) is not built")
        }
        return try Conntrack.clear(inNamespace: namespacePath(of: name))
    }

    /// Removes every router (vtepd stops).
    public func removeAll() async {
        apply([])
        await settled()
    }

    // MARK: On the queue

    /// Sets each built router port's MTU (both veth ends) where its rule now gives another
    /// value than the one set; a veth's MTU changes live, its sessions go on.
    private func applyMTU() {
        let routers = built.withLock { Array($0.values) }
        let live = Set(routers.flatMap { $0.links.map(\.port) })
        appliedMTU = appliedMTU.filter { live.contains($0.key) }
        refusedMTU = refusedMTU.filter { live.contains($0.key) }
        for router in routers {
            for link in router.links {
                guard
                    let mtu = mtuRules[link.port]?.resolve(
                        underlay: underlay, interfaceMTU: Self.interfaceMTU),
                    appliedMTU[link.port] != mtu, refusedMTU[link.port] != mtu
                else { continue }
                do throws(RouterError) {
                    try run(["link", "set", link.port, "mtu", "\(mtu)"])
                    try run([
                        "-n", namespace(of: router.name), "link", "set", link.inside, "mtu",
                        "\(mtu)",
                    ])
                    appliedMTU[link.port] = mtu
                    let rule = mtuRules[link.port]!
                    logger.info(
                        "logical router \(router.name): interface on \(link.logicalSwitch) has MTU \(mtu) (\(rule))"
                    )
                } catch {
                    refusedMTU[link.port] = mtu
                    logger.error(
                        "logical router \(router.name): MTU \(mtu) on \(link.port): \(error)")
                }
            }
        }
    }

    /// An interface's MTU in vtepd's namespace, from sysfs; nil if it cannot be read.
    static func interfaceMTU(_ name: String) -> Int? {
        guard !name.contains("/"), !name.isEmpty,
            let text = try? String(
                contentsOfFile: "/sys/class/net/\(name)/mtu", encoding: .utf8)
        else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private func reconcile(_ wanted: [String: LogicalRouter]) {
        let current = built.withLock { $0 }
        for (name, router) in current where wanted[name] == nil {
            remove(router)
            built.withLock { $0[name] = nil }
        }
        failures.withLock { $0 = $0.filter { wanted[$0.key] != nil } }
        for name in wanted.keys.sorted() {
            let router = wanted[name]!
            let old = current[name]
            if old == router && failures.withLock({ $0[name] }) == nil { continue }
            do throws(RouterError) {
                if let old, old.interfaces == router.interfaces {
                    try update(old, to: router)
                } else {
                    if let old { remove(old) }
                    built.withLock { $0[name] = nil }
                    try build(router)
                }
                built.withLock { $0[name] = router }
                failures.withLock { $0[name] = nil }
                logger.notice(
                    "logical router \(name) in force",
                    metadata: [
                        "interfaces": "\(router.interfaces.count)",
                        "routes": "\(router.routes.count)",
                        "nat_rules": "\(router.nat.count)",
                    ])
            } catch {
                logger.error("logical router \(name) could not be built: \(error)")
                // What it made goes before the problem is reported, so whoever sees the
                // problem finds nothing of it left.
                if current[name] == nil || old?.interfaces != router.interfaces {
                    remove(router)
                    built.withLock { $0[name] = nil }
                }
                failures.withLock { $0[name] = error.description }
            }
        }
    }

    private func build(_ router: LogicalRouter) throws(RouterError) {
        let ns = namespace(of: router.name)
        try run(["netns", "add", ns])
        try run(["-n", ns, "link", "set", "lo", "up"])
        let path = namespacePath(of: router.name)
        try NamespaceThread.sysctl("/proc/sys/net/ipv4/ip_forward", "1", inNamespace: path)
        // IPv6 is routed (not translated): forwarding on for every interface.
        try NamespaceThread.sysctl(
            "/proc/sys/net/ipv6/conf/all/forwarding", "1", inNamespace: path)
        for i in router.links {
            // One an earlier vtepd left may still be going with its namespace.
            _ = try? run(["link", "del", i.port])
            try run([
                "link", "add", i.port, "type", "veth", "peer", "name", i.inside, "address", i.mac,
                "netns", ns,
            ])
            // The outer end is a port of the data plane only: no address, no IPv6 chatter.
            try run(["link", "set", i.port, "addrgenmode", "none"])
            try run(["link", "set", i.port, "up"])
        }
        for i in router.links {
            // Before the data plane opens the port (it reads the MTU then).
            if let mtu = mtuRules[i.port]?.resolve(
                underlay: underlay, interfaceMTU: Self.interfaceMTU)
            {
                try run(["link", "set", i.port, "mtu", "\(mtu)"])
                try run(["-n", ns, "link", "set", i.inside, "mtu", "\(mtu)"])
                appliedMTU[i.port] = mtu
            }
        }
        for i in router.interfaces {
            // IPv6: no duplicate address detection, so the address serves at once (the
            // router's addresses are the operator's to keep unique, as for IPv4).
            try run(
                ["-n", ns, "addr", "add", i.addressText, "dev", i.inside]
                    + (i.isIPv6 ? ["nodad"] : []))
        }
        for i in router.links {
            try run(["-n", ns, "link", "set", i.inside, "up"])
        }
        try update(nil, to: router)
        for i in router.links {
            let port = i.port
            let failure: String? = wait { [ports] in
                do {
                    try await ports.add(port)
                    return nil
                } catch { return "\(error)" }
            }
            if let failure {
                throw RouterError("data plane port \(port): \(failure)")
            }
        }
    }

    /// Routes, NAT addresses and the ruleset of `router`, from `old`'s (nil: none yet).
    private func update(_ old: LogicalRouter?, to router: LogicalRouter) throws(RouterError) {
        let ns = namespace(of: router.name)
        for route in old?.routes ?? [] where !router.routes.contains(route) {
            _ = try? run(["-n", ns, "route", "del", route.prefix.description])
        }
        for route in router.routes where old?.routes.contains(route) != true {
            try run([
                "-n", ns, "route", "replace", route.prefix.description, "via", "\(route.nextHop)",
            ])
        }
        let oldAddresses = Set(
            (old?.natAddresses ?? []).map { "\($0.address) \($0.interface.inside)" })
        let newAddresses = Set(router.natAddresses.map { "\($0.address) \($0.interface.inside)" })
        for gone in oldAddresses.subtracting(newAddresses).sorted() {
            let parts = gone.split(separator: " ").map(String.init)
            _ = try? run(["-n", ns, "addr", "del", parts[0] + "/32", "dev", parts[1]])
        }
        for added in newAddresses.subtracting(oldAddresses).sorted() {
            let parts = added.split(separator: " ").map(String.init)
            try run(["-n", ns, "addr", "add", parts[0] + "/32", "dev", parts[1]])
        }
        if old == nil || old?.nat != router.nat || old?.sessionLimit != router.sessionLimit {
            let path = namespacePath(of: router.name)
            // The rules that stay keep their counts across the swap.
            let counters =
                old == nil
                ? [:]
                : NATRuleset.ruleCounters(
                    fromJSON: (try? Nftables.run(
                        NATRuleset.listCommand, inNamespace: path, json: true)) ?? "")
            // The session limit unchanged: only the NAT chains are swapped, so its rule (and
            // the sessions it counts) stays. Should that fail (the table gone), the whole.
            if let old, old.sessionLimit == router.sessionLimit,
                (try? Nftables.run(
                    NATRuleset.natText(for: router, counters: counters), inNamespace: path)) != nil
            {
                return
            }
            _ = try Nftables.run(
                NATRuleset.text(for: router, counters: counters), inNamespace: path)
        }
    }

    /// Removes everything `router` made; what is already gone is no error.
    private func remove(_ router: LogicalRouter) {
        for i in router.links {
            let port = i.port
            appliedMTU[port] = nil
            wait { [ports] in await ports.remove(port) }
            _ = try? run(["link", "del", i.port])
        }
        _ = try? run(["netns", "del", namespace(of: router.name)])
    }

    @discardableResult
    private func run(_ arguments: [String]) throws(RouterError) -> String {
        do {
            return try HostCommand.run(ip, arguments)
        } catch {
            throw RouterError(error.description.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Waits on the queue for `body`, which runs on the cooperative threads.
    private func wait<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
        let result = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await body()
            result.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }

    /// The interfaces of the namespace vtepd runs in.
    static func interfaceNames() -> [String] {
        guard let list = if_nameindex() else { return [] }
        defer { if_freenameindex(list) }
        var names: [String] = []
        var entry = list
        while entry.pointee.if_index != 0, let name = entry.pointee.if_name {
            names.append(String(cString: name))
            entry += 1
        }
        return names
    }
}
