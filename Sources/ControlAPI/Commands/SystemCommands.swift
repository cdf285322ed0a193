import Appliance
import Shell

// The appliance's lifecycle: restarting vtepd, rebooting, installing a newer package. vtepd
// asks systemd for each (it is the service manager's job, and the process doing it must not
// be the one that is restarted).

/// The FILE slot: a file in the admin's home directory, which is where scp puts it.
let fileSlot = Syntax.argument(
    "FILE", .fileName, help: "A file in your home directory (copy it there with scp)")

public struct RestartService: ControlCommand {
    public static let command = "restart-service"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "restart service" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                .keyword("restart", help: "Restart a part of the appliance"),
                .keyword("service", help: "vtepd, the gateway service"),
            ],
            summary: "Restart vtepd through systemd; settings and state are kept"
        ) { _ in Self() }
    ]
}

/// The shell asks for confirmation before it sends this (`reboot`), so it has no grammar of
/// its own here.
public struct Reboot: ControlCommand {
    public static let command = "reboot"
    public static let reply = ControlResult.Kind.accepted
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "reboot" }
}

/// The installed package's version, and the packages in the caller's home directory that
/// `update system FILE` could install.
public struct ShowSystemUpdate: ControlCommand {
    public static let command = "system-update"
    public static let reply = ControlResult.Kind.lines
    public enum CodingKeys: CodingKey, CaseIterable {}
    public init() {}
    public var shellLine: String { "show system update" }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                Word.show, .keyword("system", help: "Versions, uptime, clock, load and memory"),
                .keyword("update", help: "The installed version and the packages to update to"),
            ], summary: "Show the installed version and the packages in your home directory"
        ) { _ in Self() }
    ]
}

/// Installs a vtep-gateway package the admin copied into their home directory; settings and
/// state are kept and vtepd restarts on the new version.
public struct UpdateSystem: ControlCommand {
    public static let command = "update-system"
    public static let reply = ControlResult.Kind.accepted
    public var file: String
    public enum CodingKeys: String, CodingKey, CaseIterable { case file }
    public init(file: String) { self.file = file }
    public var shellLine: String { "update system \(file)" }
    public func validate() throws(ControlFailure) {
        if case .failure(let refusal) = ArgumentKind.fileName.parse(file) {
            throw ControlFailure("\(refusal)")
        }
        guard file.hasSuffix(".deb") else {
            throw ControlFailure("\(file) is not a Debian package (.deb)")
        }
    }
    public static let shell = [
        CommandDeclaration<Self>(
            [
                .keyword("update", help: "Install a newer version"),
                .keyword("system", help: "The appliance's software"), fileSlot,
            ],
            summary: "Install package FILE from your home directory; vtepd restarts"
        ) { arguments in Self(file: arguments.text("FILE")) }
    ]
}
