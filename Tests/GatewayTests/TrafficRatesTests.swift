import ControlAPI
import Testing

@testable import Gateway

/// The shell's rates from once-a-second samples: over 5 s and 1 min, from what history there
/// is, restarting when a counter goes backwards.
@Suite struct TrafficRatesTests {
    @Test func ratesAreTheDifferencesOverTheWindows() throws {
        let rates = TrafficRates()
        #expect(rates.rate("port eth0 rx") == nil)
        rates.record("port eth0 rx", frames: 0, bytes: 0, at: 100)
        #expect(rates.rate("port eth0 rx") == nil, "one sample is no rate")
        // 10 frames of 125 bytes a second for 59 s, then 100 a second for 5 s.
        for second in 1...59 {
            rates.record(
                "port eth0 rx", frames: UInt64(10 * second), bytes: UInt64(1250 * second),
                at: 100 + Double(second))
        }
        var frames: UInt64 = 590
        for second in 60...64 {
            frames += 100
            rates.record(
                "port eth0 rx", frames: frames, bytes: frames * 125, at: 100 + Double(second))
        }
        let rate = try #require(rates.rate("port eth0 rx"))
        #expect(rate.framesPerSecond5s == 100)
        #expect(rate.bitsPerSecond5s == 100_000)
        // The minute from second 4 to 64: 55 s at 10, 5 s at 100.
        #expect(rate.framesPerSecond1m == (550.0 + 500) / 60)
        #expect(rate.text == "100 frames/s 100.0 kbit/s (5 s), 18 frames/s 17.5 kbit/s (1 min)")

        // A counter that went backwards (a switch index reused): the history restarts.
        rates.record("port eth0 rx", frames: 3, bytes: 300, at: 165)
        #expect(rates.rate("port eth0 rx") == nil)
        rates.record("port eth0 rx", frames: 5, bytes: 400, at: 166)
        #expect(rates.rate("port eth0 rx")?.framesPerSecond5s == 2)
        // A key not sampled for a minute is forgotten.
        rates.prune(before: 300)
        #expect(rates.rate("port eth0 rx") == nil)
    }

    @Test func reportsCarryTheRatesOfWhatTheyList() throws {
        let rates = TrafficRates()
        var report = CountersReport(
            switches: [.init(name: "web", vni: 5001, fromAccess: 0, fromTunnel: 0)],
            ports: [.init(name: "eth0")], vteps: [.init(ip: "192.0.2.2", encapsulation: "vxlan")])
        report.switches[0].bytesIn = 0
        rates.record(report, at: 0)
        report.switches[0].fromAccess = 40
        report.switches[0].fromTunnel = 10
        report.switches[0].bytesIn = 5000
        report.vteps[0].txFrames = 20
        report.vteps[0].txBytes = 2000
        rates.record(report, at: 10)
        guard case .counters(let decorated) = rates.decorate(.counters(report)) else {
            Issue.record("not counters")
            return
        }
        #expect(decorated.switches[0].rateIn?.framesPerSecond5s == 5)
        #expect(decorated.switches[0].rateIn?.bitsPerSecond1m == 4000)
        #expect(decorated.vteps[0].txRate?.framesPerSecond5s == 2)
        #expect(decorated.ports[0].rxRate?.framesPerSecond5s == 0)
        let text = TextReport.render(.counters(decorated))
        #expect(text.contains("Rates\nswitch web in: 5 frames/s 4.0 kbit/s (5 s)"), "\(text)")
        guard
            case .tunnels(let rows) = rates.decorate(
                .tunnels([TunnelReport(ip: "192.0.2.2", encapsulation: "vxlan", switches: ["web"])])
            )
        else {
            Issue.record("not tunnels")
            return
        }
        #expect(rows[0].txRate?.bitsPerSecond5s == 1600)
        #expect(rates.decorate(.lines(["x"])) == .lines(["x"]))
    }
}
