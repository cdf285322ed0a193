/// One of chronyd's time sources as `chronyc -c sources` reports it (chronyc(1), `sources`:
/// mode, state, name, stratum, poll, reach, last sample, offsets, error).
public struct TimeSourceState: Sendable, Hashable {
    public var address: String
    /// chronyc's state column in words: "synchronised", "unreachable", …
    public var state: String
    public var stratum: Int
    /// The reachability register, octal as chronyc prints it ("377": the last eight polls
    /// answered).
    public var reach: String
    /// Seconds since the last good sample, or nil if none.
    public var lastSampleAge: String?

    init?(chronycCSV line: Substring) {
        let fields = line.split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count >= 7, fields[0] == "^" || fields[0] == "=" else { return nil }
        address = String(fields[2])
        state =
            switch fields[1] {
            case "*": "synchronised"
            case "+": "combined"
            case "-": "not combined"
            case "?": "unreachable"
            case "x": "falseticker"
            case "~": "too variable"
            default: String(fields[1])
            }
        stratum = Int(fields[3]) ?? 0
        reach = String(fields[5])
        lastSampleAge = fields[6] == "-" ? nil : String(fields[6])
    }
}
