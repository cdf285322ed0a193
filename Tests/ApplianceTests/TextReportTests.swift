import Testing

@testable import Appliance
@testable import ControlAPI
@testable import HostConfiguration
@testable import ProcessSpawning

/// What an operator reads: golden text for every result.
@Suite struct TextReportTests {
    @Test func macTableLooksLikeBridgeFDBWithAlignedColumns() {
        #expect(
            TextReport.macTable(Samples.macTable) == """
                SWITCH         VNI  MAC                TYPE           LOCATION       AGE
                web           5001  00:00:5e:00:53:01  local          eth1 vlan 100   12
                web           5001  00:00:5e:00:53:02  remote static  192.0.2.2        -
                database  16777215  00:00:5e:00:53:aa  local          eth2           300
                database  16777215  00:00:5e:00:53:bb  remote         2001:db8::2      0
                4 entries

                """)
        #expect(
            TextReport.macTable([]) == """
                SWITCH  VNI  MAC  TYPE  LOCATION  AGE
                0 entries

                """)
        #expect(TextReport.macTable([Samples.macTable[1]]).hasSuffix("\n1 entry\n"))
    }

    @Test func countersAreOneTablePerKind() {
        #expect(
            TextReport.render(.counters(Samples.counters)) == """
                Logical switches
                SWITCH         VNI  FROM ACCESS  FROM TUNNEL  TO ACCESS  ENCAPSULATED  FLOODED  DROPS  LEARNED  MOVES      LEARNING REFUSED
                web           5001         1200          980        975          1190       10      5        4      1                     0
                database  16777215            0            0          0             0        0      0        0      0  18446744073709551615

                Access ports
                PORT  RX FRAMES  TX FRAMES  DROPS
                eth1       1200        975      3
                eth2          0          0      0

                Remote VTEPs
                VTEP         ENCAPSULATION  TX FRAMES  RX FRAMES
                192.0.2.2    vxlan               1190        980
                2001:db8::2  gre                    0          0

                Drops
                REASON       COUNT
                unknown_vni      2
                no_binding       3

                Malformed frames
                REASON              COUNT
                vxlan_i_flag_clear      1

                Offloads
                REASON           COUNT
                super_frames_in      7
                segments_out       301

                """)
    }

    @Test func configurationNamesEverythingAndListsProblemsLast() {
        #expect(
            TextReport.render(.configuration(Samples.configuration)) == """
                Physical switch: gw1
                Tunnel IPs: 192.0.2.1, 2001:db8::1
                Underlay: eth0
                Access ports: eth1, eth2

                Logical switches
                SWITCH         VNI  REPLICATION                         MAC AGEING  MAC LIMIT  ALLOWED SOURCES
                web           5001  head-end 192.0.2.2 192.0.2.3 (gre)        300s          -  any
                database  16777215  multicast 239.1.1.1                      never       1000  192.0.2.0/24, 2001:db8::/32

                Bindings
                PORT      VLAN  SWITCH
                eth1       100  web
                eth2  untagged  database

                Problems
                - Physical_Port eth3: VLAN 100 is bound to two logical switches (web, app)

                """)
        #expect(
            TextReport.configuration(ConfigurationReport(physicalSwitch: "gw1")) == """
                Physical switch: gw1
                Tunnel IPs: none
                Underlay: not set
                Access ports: none

                Logical switches
                SWITCH  VNI  REPLICATION  MAC AGEING  MAC LIMIT  ALLOWED SOURCES

                Bindings
                PORT  VLAN  SWITCH

                """)
    }

    @Test func textTablesRightAlignNumbersAndTrimTrailingSpace() {
        var table = TextTable(columns: [.init("NAME"), .init("N", .right), .init("NOTE")])
        table.append(["a", "1", ""])
        table.append(["long name", "12345", "x"])
        #expect(
            table.rendered() == """
                NAME           N  NOTE
                a              1
                long name  12345  x

                """)
    }
}
