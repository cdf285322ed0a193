import Appliance
import Glibc
import ProcessSpawning
import Shell

/// `ping` and `traceroute`: run from a fixed path with an argument vector (posix_spawn, never
/// a shell), so nothing the operator typed is ever interpreted by one. The host has passed
/// the parser, which refuses a leading `-`, so it cannot be taken for an option either; for
/// ping a `--` ends the options as well (getopt(3)).
public enum Diagnostics {
    /// Echo requests when `count` is not given.
    public static let defaultPingCount = 5

    public static func pingArguments(_ host: RemoteHost, count: Int?) -> [String] {
        ["ping", "-c", String(count ?? defaultPingCount), "--", host.description]
    }

    /// traceroute(8) of Debian's traceroute package; its option parser is not getopt's, so
    /// no `--` (the host cannot start with `-`).
    public static func tracerouteArguments(_ host: RemoteHost) -> [String] {
        ["traceroute", host.description]
    }

    /// Where the programs may be; the first that exists is run. No PATH lookup: the login
    /// shell's environment is not trusted to choose the program.
    static let directories = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]

    /// Runs `arguments` with the caller's standard input, output and error and waits for it.
    /// Returns its exit status, or a sentence when it could not start.
    public static func run(_ arguments: [String]) -> Result<Int32, ShellFailure> {
        guard let program = arguments.first else { return .failure(ShellFailure("no program")) }
        guard
            let path = directories.map({ $0 + "/" + program }).first(where: {
                access($0, X_OK) == 0
            })
        else {
            return .failure(
                ShellFailure(
                    "\(program) is not installed on this appliance (looked in "
                        + directories.joined(separator: ", ") + ")"))
        }
        // The child starts with default signal handling and nothing blocked, so Ctrl-C stops
        // it while the shell (which ignores SIGINT meanwhile) carries on.
        let previous = signal(SIGINT, SIG_IGN)
        defer { signal(SIGINT, previous) }
        var pid: pid_t = 0
        let started = HostCommand.spawn(&pid, path, argv: arguments, actions: nil)
        guard started == 0 else {
            return .failure(
                ShellFailure("cannot start \(path): \(String(cString: strerror(started)))"))
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7F
        return .success(signal == 0 ? (status >> 8) & 0xFF : 128 + signal)
    }
}
