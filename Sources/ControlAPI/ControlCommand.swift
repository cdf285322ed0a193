import Appliance
import Packet
import Shell

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One command of vtepd's control socket, declared once: a value type whose stored properties
/// are its arguments, of validated types. From the declaration come
/// - its wire form: `command` (the name) and `CodingKeys` (the argument names; decoding runs
///   each value's own validation, then `validate()`), refusals in words an operator can use;
/// - whether it changes state (it is then audited): a change answers `{}` (`reply` `.accepted`);
/// - the result's shape (`reply`), which the client decodes and the shell renders;
/// - its shell grammar and help (`shell`: none for a command only the API has), whose builder
///   makes the same value the wire carries;
/// - its line in `show running-config` and the audit log (`shellLine`), which the shell
///   parses back to the same command.
/// `ControlCommands.all` lists the commands; vtepd registers one handler for each, and a test
/// checks that none is missing. Adding a command touches its declaration, its handler and its
/// tests.
public protocol ControlCommand: Codable, Hashable, Sendable {
    associatedtype CodingKeys: CodingKey & CaseIterable
    /// The wire name, the request's `"command"`.
    static var command: String { get }
    /// What a successful response carries.
    static var reply: ControlResult.Kind { get }
    /// The shell's ways of typing the command (usually one).
    static var shell: [CommandDeclaration<Self>] { get }
    /// The command as the shell types it. Never contains a password.
    var shellLine: String { get }
    /// Rules beyond the arguments' types (ranges, names); the refusal without the command's
    /// name, which the caller adds.
    func validate() throws(ControlFailure)
    /// A change: audited (and, when it answers `{}`, applied and saved before it answers).
    static var changesState: Bool { get }
}

extension ControlCommand {
    public static var shell: [CommandDeclaration<Self>] { [] }
    public func validate() throws(ControlFailure) {}
    /// Every command that answers `{}` is a change; a change that reports what it did
    /// (`clear logical-router NAME sessions`) says so itself.
    public static var changesState: Bool { reply == .accepted }
    /// The argument names the wire accepts.
    public static var argumentNames: [String] { CodingKeys.allCases.map(\.stringValue) }

    // For `any ControlCommand`.
    public var name: String { Self.command }
    public var changesState: Bool { Self.changesState }
    public var reply: ControlResult.Kind { Self.reply }

    /// Whether `other` is the same command with the same arguments.
    public func isSame(as other: any ControlCommand) -> Bool {
        (other as? Self) == self
    }

    /// The shell's declarations, each checking the command it builds with `validate()`, so
    /// the prompt refuses what vtepd would refuse, in the same words.
    static var erasedShell: [CommandDeclaration<any ControlCommand>] {
        shell.map { declaration in
            let build = declaration.build
            return CommandDeclaration<any ControlCommand>(
                declaration.syntax, summary: declaration.summary
            ) { arguments throws(CommandRefusal) in
                let command = try build(arguments)
                do throws(ControlFailure) {
                    try command.validate()
                } catch {
                    throw CommandRefusal(error.message)
                }
                return command
            }
        }
    }

    /// Decodes the arguments (nil: the request had none): their names, and a decoder at the
    /// arguments object. Then validates them.
    static func decode(arguments: (names: [String], decoder: any Decoder)?) throws(ControlFailure)
        -> Self
    {
        let accepted = Set(argumentNames)
        if let arguments {
            let unknown = arguments.names.filter { !accepted.contains($0) }.sorted()
            guard unknown.isEmpty else {
                let takes =
                    accepted.isEmpty
                    ? "takes no arguments" : "takes \(accepted.sorted().joined(separator: ", "))"
                throw ControlFailure(
                    "unknown argument\(unknown.count > 1 ? "s" : "") "
                        + unknown.map { "\"\($0)\"" }.joined(separator: ", ")
                        + " for \(command), which \(takes)")
            }
        }
        let value: Self
        do {
            if let arguments {
                value = try Self(from: arguments.decoder)
            } else {
                value = try JSONDecoder().decode(Self.self, from: Data("{}".utf8))
            }
        } catch {
            throw ControlFailure(Self.describe(error))
        }
        do {
            try value.validate()
        } catch {
            throw ControlFailure("\(command): \(error.message)")
        }
        return value
    }

    /// A decoding error in the words of the protocol: which argument, what was wrong.
    static func describe(_ error: any Error) -> String {
        func argument(_ path: [any CodingKey]) -> String {
            let names = path.map(\.stringValue)
            let inside = names.first == "arguments" ? names.dropFirst() : names[...]
            return inside.first ?? "?"
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, _)?:
            return "\(command) needs the argument \"\(key.stringValue)\""
        case .valueNotFound(_, let context)?:
            return "\(command) needs the argument \"\(argument(context.codingPath))\""
        case .typeMismatch(let type, let context)?:
            let kind =
                type == String.self
                ? "a string" : type == Int.self ? "an integer" : "an array of strings"
            return "argument \"\(argument(context.codingPath))\" of \(command) must be \(kind)"
        case .dataCorrupted(let context)?:
            return "\(command): \(context.debugDescription)"
        default:
            return "\(command): \(error)"
        }
    }

    /// The arguments object as the request carries it; nil when there are none.
    var wireArguments: String? {
        let text = jsonText(self)
        return text == "{}" ? nil : text
    }
}

/// Every command vtepd's control socket takes, in the order error messages list them.
public enum ControlCommands {
    public static let all: [any ControlCommand.Type] = [
        // The appliance: host name, users, interfaces, routes, DNS, NTP, the configuration.
        SetHostname.self, ShowHostname.self, SetPassword.self, ShowSystem.self,
        RestartService.self, Reboot.self, ShowSystemUpdate.self, UpdateSystem.self,
        ShowRunningConfig.self, ShowLog.self, ShowInterfaces.self, SetInterfaceAddress.self,
        SetInterfaceDHCP.self, ClearInterfaceAddressing.self, SetInterfaceMTU.self,
        SetInterfaceState.self, AddRoute.self, RemoveRoute.self, ShowRoutes.self,
        ClearRoutes.self, AddDNSServer.self, RemoveDNSServer.self, ShowDNSServers.self,
        ClearDNSServers.self, AddNTPServer.self, RemoveNTPServer.self, ShowNTPServers.self,
        ClearNTPServers.self, AddSearchDomain.self, RemoveSearchDomain.self,
        ShowSearchDomains.self, ClearSearchDomains.self, SetMetricsListen.self,
        ClearMetrics.self, ShowMetrics.self,
        // The gateway: logical switches, bindings, remote MACs, and what the switch does.
        AddLogicalSwitch.self, RemoveLogicalSwitch.self, SetReplication.self,
        SetEncapsulation.self, SetBUMRateLimit.self, ClearBUMRateLimit.self,
        SetARPSuppression.self, ClearARPSuppression.self, BindPort.self,
        UnbindPort.self, AddRemoteMAC.self,
        RemoveRemoteMAC.self, ShowSwitch.self, ShowLogicalSwitches.self, ShowMACTable.self,
        ShowTunnels.self, Counters.self, ShowProblems.self,
        // Logical routers: interfaces on logical switches, routes, NAT.
        AddLogicalRouter.self, RemoveLogicalRouter.self, SetRouterInterface.self,
        RemoveRouterInterface.self, AddRouterRoute.self, RemoveRouterRoute.self,
        AddRouterNAT.self, RemoveRouterNAT.self, ShowLogicalRouters.self,
        ShowLogicalRouter.self, ShowLogicalRouterSessions.self, ClearLogicalRouterSessions.self,
        SetRouterSessionLimit.self,
        // What the data plane does with frames: recorded, or asked of a described one.
        DebugPacketTrace.self, ShowPacketTrace.self, ClearPacketTrace.self, TraceFrame.self,
        DebugCapture.self, ShowCaptures.self, ShowTechSupport.self,
        // Joining a controller cluster: the switch's certificate, the controllers, their CA.
        ShowSwitchCertificate.self, SetManagerCluster.self, ShowManagerCluster.self,
        ClearManagerCluster.self, SetCACertificate.self, ClearCACertificate.self,
        // The API's own: vtepd's reports and the shell's helpers.
        Configuration.self, ShowNames.self, AuditRefusedInput.self,
    ]

    /// The wire names, as `all` orders them.
    public static let names = all.map { $0.command }

    static let byName: [String: any ControlCommand.Type] = Dictionary(
        uniqueKeysWithValues: all.map { ($0.command, $0) })

    /// The shell's declarations of every command it can type.
    public static var shellDeclarations: [CommandDeclaration<any ControlCommand>] {
        all.flatMap { $0.erasedShell }
    }
}

/// A builder's check of a value with an appliance type, its refusal in the type's words.
public func refusing<T>(_ body: () throws(ApplianceSettingsError) -> T) throws(CommandRefusal)
    -> T
{
    do {
        return try body()
    } catch {
        throw CommandRefusal(error.description)
    }
}
