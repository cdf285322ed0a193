import ControlAPI
import Synchronization

/// Rates for the shell, as routers' CLIs show them ("5 second input rate"): once a second
/// vtepd samples the frame and byte counters of every logical switch, access port, remote
/// VTEP and interface; a report's rate over 5 s and 1 min is the difference between the newest
/// sample and the one that window ago (or the oldest there is), over the time between them. A
/// counter that went backwards (a switch index reused, an interface recreated) restarts its
/// history. Costs the worker one `inspect` a second, nothing per frame.
public final class TrafficRates: Sendable {
    struct Sample: Sendable {
        var seconds: Double
        var frames: UInt64
        var bytes: UInt64
    }

    /// Samples by key (`switch web`, `port eth0 rx`, `vtep 192.0.2.2 tx`, `interface eth1 rx`),
    /// oldest first, the last `keep` seconds.
    private let history = Mutex<[String: [Sample]]>([:])
    static let keep = 61.0

    public init() {}

    /// Records one sample of `key` taken at `seconds` (a monotonic clock).
    func record(_ key: String, frames: UInt64, bytes: UInt64, at seconds: Double) {
        history.withLock { all in
            var samples = all[key] ?? []
            if let last = samples.last, frames < last.frames || bytes < last.bytes {
                samples = []
            }
            samples.append(Sample(seconds: seconds, frames: frames, bytes: bytes))
            samples.removeAll { $0.seconds < seconds - Self.keep }
            all[key] = samples
        }
    }

    /// Forgets keys not sampled in the last `keep` seconds (a removed switch or VTEP).
    func prune(before seconds: Double) {
        history.withLock { all in
            all = all.filter { ($0.value.last?.seconds ?? 0) >= seconds - Self.keep }
        }
    }

    /// The rates of `key`; nil before two samples.
    func rate(_ key: String) -> TrafficRate? {
        history.withLock { all in
            guard let samples = all[key], let newest = samples.last, samples.count > 1 else {
                return nil
            }
            func over(_ window: Double) -> (frames: Double, bits: Double) {
                // The newest sample at least a window old (half a second of sampling jitter
                // allowed), else the oldest.
                let start =
                    samples.last { $0.seconds <= newest.seconds - window + 0.5 } ?? samples[0]
                let elapsed = newest.seconds - start.seconds
                guard elapsed > 0 else { return (0, 0) }
                return (
                    Double(newest.frames - start.frames) / elapsed,
                    Double(newest.bytes - start.bytes) * 8 / elapsed
                )
            }
            let short = over(5)
            let long = over(60)
            return TrafficRate(
                framesPerSecond5s: short.frames, bitsPerSecond5s: short.bits,
                framesPerSecond1m: long.frames, bitsPerSecond1m: long.bits)
        }
    }

    /// Samples once a second with `sample` until cancelled.
    public func run(sample: @escaping @Sendable () async -> Void) async {
        while !Task.isCancelled {
            await sample()
            try? await Task.sleep(for: .seconds(1))
        }
    }

    // MARK: What is sampled, and the reports that carry the rates

    func record(_ report: CountersReport, at seconds: Double) {
        for s in report.switches {
            record(
                "switch \(s.name)", frames: s.fromAccess + s.fromTunnel, bytes: s.bytesIn ?? 0,
                at: seconds)
        }
        for p in report.ports {
            record("port \(p.name) rx", frames: p.rxFrames, bytes: p.rxBytes ?? 0, at: seconds)
            record("port \(p.name) tx", frames: p.txFrames, bytes: p.txBytes ?? 0, at: seconds)
        }
        // A VTEP by address, as `show switch tunnels` lists it (one row per address).
        var byAddress: [String: (tx: UInt64, txBytes: UInt64, rx: UInt64, rxBytes: UInt64)] = [:]
        for v in report.vteps {
            var sum = byAddress[v.ip] ?? (0, 0, 0, 0)
            sum.tx += v.txFrames
            sum.txBytes += v.txBytes ?? 0
            sum.rx += v.rxFrames
            sum.rxBytes += v.rxBytes ?? 0
            byAddress[v.ip] = sum
        }
        for (ip, sum) in byAddress {
            record("vtep \(ip) tx", frames: sum.tx, bytes: sum.txBytes, at: seconds)
            record("vtep \(ip) rx", frames: sum.rx, bytes: sum.rxBytes, at: seconds)
        }
    }

    func record(_ interfaces: [InterfaceReport], at seconds: Double) {
        for i in interfaces {
            record("interface \(i.name) rx", frames: i.rxPackets, bytes: i.rxBytes, at: seconds)
            record("interface \(i.name) tx", frames: i.txPackets, bytes: i.txBytes, at: seconds)
        }
    }

    /// `result` with the rates of what it lists.
    func decorate(_ result: ControlResult) -> ControlResult {
        switch result {
        case .counters(var report):
            for i in report.switches.indices {
                report.switches[i].rateIn = rate("switch \(report.switches[i].name)")
            }
            for i in report.ports.indices {
                report.ports[i].rxRate = rate("port \(report.ports[i].name) rx")
                report.ports[i].txRate = rate("port \(report.ports[i].name) tx")
            }
            for i in report.vteps.indices {
                report.vteps[i].txRate = rate("vtep \(report.vteps[i].ip) tx")
                report.vteps[i].rxRate = rate("vtep \(report.vteps[i].ip) rx")
            }
            return .counters(report)
        case .tunnels(var rows):
            for i in rows.indices {
                rows[i].txRate = rate("vtep \(rows[i].ip) tx")
                rows[i].rxRate = rate("vtep \(rows[i].ip) rx")
            }
            return .tunnels(rows)
        case .interfaces(var rows):
            for i in rows.indices {
                rows[i].rxRate = rate("interface \(rows[i].name) rx")
                rows[i].txRate = rate("interface \(rows[i].name) tx")
            }
            return .interfaces(rows)
        default:
            return result
        }
    }
}
