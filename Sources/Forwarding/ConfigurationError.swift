import Packet

/// Why operator or controller input was refused. Nothing changes when one is thrown; the
/// `description` names the offending value and what is allowed, for the shell to print as is.
public enum ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    case vniOutOfRange(Int)
    case invalidSwitchName(String)
    case duplicateSwitchName(String)
    case duplicateVNI(VNI, first: String, second: String)
    case tooManySwitches(Int)
    case negativeMACLimit(switch: String, limit: Int)
    case invalidPortName(String)
    case duplicatePort(String)
    case tooManyPorts(Int)
    case tooManyLocators(Int)
    case unknownPort(Binding)
    case unknownSwitch(Binding)
    case vlanOutOfRange(Binding)
    case bindingConflict(Binding, existing: String)
    /// A VTEP address that cannot be a tunnel endpoint; `role` says where it was given.
    case locatorNotUnicast(Locator, role: String)
    case groupNotMulticast(Locator, switch: String)
    case duplicateHeadEnd(Locator, switch: String)
    case unknownSwitchIndex(SwitchIndex)
    case staticMACNotUnicast(MACAddress)
    case staticLocatorUnknown(MACAddress, LocatorIndex)
    case staticAttachmentNotBound(MACAddress, AttachmentCircuit, switch: String)
    case macTableExhausted(MACAddress)

    public var description: String {
        switch self {
        case .vniOutOfRange(let v):
            return "VNI \(v) is out of range (0–16777215)"
        case .invalidSwitchName(let n):
            return "logical switch name \"\(n)\" is invalid: it must be 1–64 printable"
                + " characters without spaces"
        case .duplicateSwitchName(let n):
            return "logical switch \(n) is defined twice"
        case .duplicateVNI(let vni, let first, let second):
            return "VNI \(vni) is used by both logical switch \(first) and logical switch \(second)"
        case .tooManySwitches(let n):
            return
                "\(n) logical switches configured; a gateway carries at most \(SwitchIndex.count)"
        case .negativeMACLimit(let s, let limit):
            return "MAC limit \(limit) of logical switch \(s) is negative"
        case .invalidPortName(let n):
            return "port name \"\(n)\" is invalid: it must be 1–64 printable characters without"
                + " spaces"
        case .duplicatePort(let n):
            return "port \(n) is listed twice"
        case .tooManyPorts(let n):
            return "\(n) ports configured; a gateway carries at most \(PortIndex.count)"
        case .tooManyLocators(let n):
            return "\(n) locators configured; a gateway carries at most \(LocatorIndex.count)"
        case .unknownPort(let b):
            return "cannot bind port \(b.port) \(vlanText(b.vlan)) to logical switch"
                + " \(b.logicalSwitch): there is no port \(b.port)"
        case .unknownSwitch(let b):
            return "cannot bind port \(b.port) \(vlanText(b.vlan)) to logical switch"
                + " \(b.logicalSwitch): there is no logical switch \(b.logicalSwitch)"
        case .vlanOutOfRange(let b):
            return "VLAN \(b.vlan ?? 0) on port \(b.port) is out of range (1–4094, or 0 for"
                + " untagged)"
        case .bindingConflict(let b, let existing):
            return "port \(b.port) \(vlanText(b.vlan)) is already bound to logical switch"
                + " \(existing)"
        case .locatorNotUnicast(let l, let role):
            return "\(l.ip) (\(role)) is not a unicast address and cannot be a VTEP"
        case .groupNotMulticast(let l, let s):
            return "multicast replication group \(l.ip) of logical switch \(s) is not a"
                + " multicast address (224.0.0.0/4 or ff00::/8)"
        case .duplicateHeadEnd(let l, let s):
            return "VTEP \(l) is listed twice in the replication list of logical"
                + " switch \(s)"
        case .unknownSwitchIndex(let i):
            return "there is no logical switch with index \(i.rawValue)"
        case .staticMACNotUnicast(let mac):
            return "static MAC \(mac) is not a unicast address"
        case .staticLocatorUnknown(let mac, let l):
            return "static MAC \(mac) points at locator \(l.rawValue), which is not configured"
        case .staticAttachmentNotBound(let mac, let a, let s):
            return "static MAC \(mac) points at \(a), which is not bound to logical switch \(s)"
        case .macTableExhausted(let mac):
            return "static MAC \(mac) not installed: the MAC table is at 3/4 of its slots"
        }
    }
}
