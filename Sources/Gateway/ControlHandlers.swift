import Appliance
import ControlAPI

/// vtepd's handler for each command of the control socket, by the command's type. The commands
/// themselves are declared in ControlAPI (`ControlCommands.all`); what runs them is registered
/// here by the part of vtepd that owns it (the data plane's reports, the appliance settings,
/// the hardware_vtep writer). `missing` names any declared command without a handler: vtepd
/// refuses to start with one, and a test checks the table vtepd builds.
public struct ControlHandlers: Sendable {
    /// A result rather than typed throws: Swift 6.3's SILGen crashes on a stored async,
    /// @Sendable closure with typed throws that opens the generic command.
    public typealias Handler =
        @Sendable (any ControlCommand, PeerCredentials) async -> Result<
            ControlResult, ControlFailure
        >

    private var table: [String: Handler] = [:]

    public init() {}

    /// Registers the handler of `C`; a second one for the same command is a programming error.
    public mutating func on<C: ControlCommand>(
        _: C.Type,
        _ body:
            @escaping @Sendable (C, PeerCredentials) async throws(ControlFailure) ->
            ControlResult
    ) {
        precondition(table[C.command] == nil, "two handlers for \(C.command)")
        table[C.command] = { command, peer in
            // The name picked the handler and names are unique, so the type is C's.
            do throws(ControlFailure) {
                return .success(try await body(command as! C, peer))
            } catch {
                return .failure(error)
            }
        }
    }

    /// The handler of `command`, nil when none is registered.
    public func handler(for command: any ControlCommand) -> Handler? { table[command.name] }

    /// Declared commands without a handler, in declaration order.
    public var missing: [String] { ControlCommands.names.filter { table[$0] == nil } }
}
