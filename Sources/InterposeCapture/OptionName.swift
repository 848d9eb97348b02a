/// The capture options' names, in one place so that every error message names them the same way.
public enum OptionName: String, CaseIterable, Sendable {
    case outboundPort = "outbound-port"
    case inboundPort = "inbound-port"
    case proxyUID = "proxy-uid"
    case proxyGID = "proxy-gid"
    case mode
    case inboundPorts = "inbound-ports"
    case excludeInboundPorts = "exclude-inbound-ports"
    case outboundCIDRs = "outbound-cidrs"
    case excludeOutboundCIDRs = "exclude-outbound-cidrs"
    case outboundPorts = "outbound-ports"
    case excludeOutboundPorts = "exclude-outbound-ports"
    case excludeInterfaces = "exclude-interfaces"
    case proxyPorts = "proxy-ports"
    case dnsPort = "dns-port"
    case queue
    case sshPorts = "ssh-ports"
    case rollbackAfter = "rollback-after"
    case tproxyMark = "tproxy-mark"
    case tproxyRouteTable = "tproxy-route-table"

    /// istio-iptables' short flag, where it has one.
    public var short: Character? {
        switch self {
        case .outboundPort: return "p"
        case .inboundPort: return "z"
        case .proxyUID: return "u"
        case .proxyGID: return "g"
        case .mode: return "m"
        case .inboundPorts: return "b"
        case .excludeInboundPorts: return "d"
        case .outboundCIDRs: return "i"
        case .excludeOutboundCIDRs: return "x"
        case .outboundPorts: return "q"
        case .excludeOutboundPorts: return "o"
        case .excludeInterfaces: return "c"
        case .tproxyMark: return "t"
        case .tproxyRouteTable: return "r"
        default: return nil
        }
    }

    /// `--outbound-port/-p`, the way errors and docs name an option.
    public var display: String {
        if let short { return "--\(rawValue)/-\(short)" }
        return "--\(rawValue)"
    }
}

/// A bad option value: names the option, says what was wrong and what form is expected.
public struct OptionError: Error, Equatable, Sendable, CustomStringConvertible {
    public let option: OptionName
    public let problem: String
    public let expected: String

    public init(_ option: OptionName, _ problem: String, expected: String) {
        self.option = option
        self.problem = problem
        self.expected = expected
    }

    public var description: String { "\(option.display): \(problem); expected \(expected)" }
}

/// Every bad option value found in one parse.
public struct OptionErrors: Error, Equatable, Sendable, CustomStringConvertible {
    public let errors: [OptionError]
    public init(_ errors: [OptionError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
