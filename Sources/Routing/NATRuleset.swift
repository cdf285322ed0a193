import Foundation
import Packet

/// A router namespace's whole nftables ruleset, as text for libnftables: `flush ruleset` and
/// the one table, so applying it is one transaction (nft(8) commits a file's commands as a
/// batch): the namespace holds either the old ruleset or the new one, never a half.
///
/// Every rule has a counter and, as comment, the `other_config` key of the NAT rule it
/// carries out, so `counters(fromJSON:)` can give each rule its hits. NAT chains see only the
/// first packet of each connection (conntrack applies the binding to the rest), so a rule's
/// packets are the sessions it made.
public enum NATRuleset {
    /// The table's name in each router namespace.
    public static let table = "vtepd"

    /// The ruleset of `router`. `counters` (by chain and rule key, `ruleCounters(fromJSON:)`)
    /// are the values the rules that carry on from the ruleset in force start from, so a
    /// rule's sessions are not reset when another rule is added or removed.
    public static func text(
        for router: LogicalRouter, counters: [String: (packets: UInt64, bytes: UInt64)] = [:]
    ) -> String {
        var text = "flush ruleset\ntable ip \(table) {\n" + natChains(router, counters) + "}\n"
        if let limit = router.sessionLimit {
            // Sessions routed through the router, IPv4 and IPv6 alike (an inet table: one
            // count for both, and conntrack tracks IPv6 in the namespace only because a
            // table of that family asks for it), counted as each is made (connlimit); the
            // ones past the limit are dropped before conntrack confirms them.
            let key = LogicalRouter.sessionLimitKey
            let c = counters["forward " + key].map {
                "counter packets \($0.packets) bytes \($0.bytes)"
            }
            text +=
                "table inet \(table) {\n"
                + "    chain forward {\n        type filter hook forward priority filter; policy accept;\n"
                + "        ct state new ct count over \(limit) \(c ?? "counter") drop"
                + " comment \"\(key)\"\n    }\n}\n"
        }
        return text
    }

    /// What `nft -j` lists to read every rule's counters: the NAT table (ip) and the session
    /// limit's (inet).
    public static let listCommand = "list ruleset"

    /// The NAT chains of `router` alone, swapped in one transaction (`flush chain` of each,
    /// then their rules) into the table in force, whose forward chain is left as it is: for
    /// a change that keeps the session limit, so the limit's connection count (which
    /// belongs to its rule, and would start from nothing in a new one) goes on counting the
    /// sessions made before. Counters as in `text(for:counters:)`.
    public static func natText(
        for router: LogicalRouter, counters: [String: (packets: UInt64, bytes: UInt64)] = [:]
    ) -> String {
        "flush chain ip \(table) prerouting\nflush chain ip \(table) postrouting\n"
            + "table ip \(table) {\n" + natChains(router, counters) + "}\n"
    }

    private static func natChains(
        _ router: LogicalRouter, _ counters: [String: (packets: UInt64, bytes: UInt64)]
    ) -> String {
        var prerouting: [String] = []
        var postrouting: [String] = []
        func counter(_ chain: String, _ key: String) -> String {
            guard let c = counters[chain + " " + key] else { return "counter" }
            return "counter packets \(c.packets) bytes \(c.bytes)"
        }
        for rule in router.nat {
            let comment = "comment \"\(rule.key)\""
            let pre = counter("prerouting", rule.key)
            let post = counter("postrouting", rule.key)
            let uplink = router.interface(reaching: .v4(rule.external))?.inside ?? ""
            switch rule.kind {
            case .snat(let prefix):
                postrouting.append(
                    "oifname \"\(uplink)\" ip saddr \(prefix) \(post) snat to \(rule.external)"
                        + " \(comment)")
            case .floatingIP(let inside):
                prerouting.append(
                    "ip daddr \(rule.external) \(pre) dnat to \(inside) \(comment)")
                postrouting.append(
                    "oifname \"\(uplink)\" ip saddr \(inside) \(post) snat to \(rule.external)"
                        + " \(comment)")
            case .dnat(let port, let transport, let inside, let insidePort):
                var match = "ip daddr \(rule.external)"
                if let port, let transport { match += " \(transport.rawValue) dport \(port)" }
                let target = "\(inside)" + (insidePort.map { ":\($0)" } ?? "")
                prerouting.append("\(match) \(pre) dnat to \(target) \(comment)")
            }
        }
        func chain(_ name: String, _ hook: String, _ priority: String, _ rules: [String])
            -> String
        {
            "    chain \(name) {\n        type nat hook \(hook) priority \(priority); policy accept;\n"
                + rules.map { "        \($0)\n" }.joined() + "    }\n"
        }
        return chain("prerouting", "prerouting", "dstnat", prerouting)
            + chain("postrouting", "postrouting", "srcnat", postrouting)
    }

    /// Packets and bytes per rule key, summed over the rules that carry it (a floating IP
    /// has one each way), from `nft -j list ruleset`'s output (`listCommand`).
    public static func counters(fromJSON text: String) -> [String: (packets: UInt64, bytes: UInt64)]
    {
        var result: [String: (packets: UInt64, bytes: UInt64)] = [:]
        for (chainAndKey, c) in ruleCounters(fromJSON: text) {
            let key = String(chainAndKey.split(separator: " ", maxSplits: 1).last ?? "")
            let sum = result[key] ?? (0, 0)
            result[key] = (sum.packets + c.packets, sum.bytes + c.bytes)
        }
        return result
    }

    /// Packets and bytes of each rule, by "CHAIN KEY" (`prerouting floating-ip:192.0.2.11`).
    public static func ruleCounters(fromJSON text: String) -> [String: (
        packets: UInt64, bytes: UInt64
    )] {
        guard let data = text.data(using: .utf8),
            let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let items = root["nftables"] as? [[String: Any]]
        else { return [:] }
        var result: [String: (packets: UInt64, bytes: UInt64)] = [:]
        for item in items {
            guard let rule = item["rule"] as? [String: Any],
                let chain = rule["chain"] as? String,
                let comment = rule["comment"] as? String,
                let expressions = rule["expr"] as? [[String: Any]]
            else { continue }
            for expression in expressions {
                guard let counter = expression["counter"] as? [String: Any] else { continue }
                let packets = (counter["packets"] as? NSNumber)?.uint64Value ?? 0
                let bytes = (counter["bytes"] as? NSNumber)?.uint64Value ?? 0
                result[chain + " " + comment] = (packets, bytes)
            }
        }
        return result
    }
}
