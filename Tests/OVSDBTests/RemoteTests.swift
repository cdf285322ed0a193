import Testing

@testable import OVSDB

@Suite struct RemoteTests {
    @Test func remotesAreSpelledAsOpenVSwitchSpellsThem() throws {
        #expect(
            try Remote("unix:/var/run/openvswitch/db.sock")
                == .unix(path: "/var/run/openvswitch/db.sock"))
        #expect(try Remote("/run/vtep.sock") == .unix(path: "/run/vtep.sock"))
        #expect(try Remote("tcp:10.0.0.5:6640") == .tcp(host: "10.0.0.5", port: 6640))
        #expect(try Remote("tcp:[::1]:6640") == .tcp(host: "::1", port: 6640))
        #expect(Remote.tcp(host: "::1", port: 6640).description == "tcp:[::1]:6640")
        for bad in [
            "ssl:1.2.3.4:6640", "tcp:1.2.3.4", "tcp:1.2.3.4:0", "tcp::6640", "unix:", "db.sock",
        ] {
            #expect(throws: OVSDBError.invalidRemote(bad)) { try Remote(bad) }
        }
    }

    @Test func aClustersMembersAreCommaSeparated() throws {
        let text = "tcp:10.0.0.5:6640,tcp:[2001:db8::6]:6640,unix:/run/c.sock"
        let cluster = try Remote(text)
        #expect(
            cluster
                == .cluster([
                    .tcp(host: "10.0.0.5", port: 6640), .tcp(host: "2001:db8::6", port: 6640),
                    .unix(path: "/run/c.sock"),
                ]))
        #expect(cluster.description == text)
        #expect(cluster.members.count == 3)
        #expect(try Remote("unix:/a").members == [.unix(path: "/a")])
        for bad in [
            "tcp:10.0.0.5:6640,", ",unix:/a", "unix:/a,,unix:/b", "unix:/a,unix:/a",
            "unix:/a,ssl:1.2.3.4:6640",
        ] {
            #expect(throws: OVSDBError.self) { try Remote(bad) }
        }
    }

    @Test func backoffDoublesFromOneToEightSeconds() {
        let delays = (0..<6).map { Backoff.standard.delay(afterFailures: $0) }
        #expect(
            delays == [
                .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(8), .seconds(8),
            ])
        #expect(Backoff.standard.delay(afterFailures: 1000) == .seconds(8))
    }
}
