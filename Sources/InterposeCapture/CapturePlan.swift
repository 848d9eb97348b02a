/// Everything `apply` installs, `cleanup` removes and `verify` compares, from one generator.
public struct CapturePlan: Equatable, Sendable {
    public var table: NftTable
    /// xtables rules (through iptables-nft) for the flow queue on kernels without the nft `queue` expression.
    public var xtablesRules: [XtablesRule]
    /// TPROXY policy routing: `ip rule fwmark M lookup T` and `local default dev lo table T`, per family.
    public var policyRoutes: [PolicyRoute]
    /// Addresses added to `lo` (`::6/128`) so the proxy can use them as a source.
    public var loopbackAddresses: [LoopbackAddress]
    /// Things the user should know about how the plan was shaped (printed by `render` and `apply`).
    public var notes: [String]
}

public enum IPFamily: String, Sendable, Equatable, CaseIterable {
    case v4, v6
    /// The `ip` command's family switch.
    public var ipFlag: String { self == .v4 ? "-4" : "-6" }
    public var xtablesCommand: String { self == .v4 ? "iptables-nft" : "ip6tables-nft" }
    public var nftFamily: String { self == .v4 ? "ip" : "ip6" }
}

public struct XtablesRule: Equatable, Sendable {
    public var family: IPFamily
    public var table: String
    public var chain: String
    /// The rule after `-A CHAIN`, as `iptables -S` prints it back.
    public var spec: [String]

    public static let comment = "interpose flow queue"

    /// `-A OUTPUT ...` exactly as `iptables-nft -S` lists it, which makes listing and comparing simple.
    public var listed: String {
        (["-A", chain] + spec).map(ShellWords.quoteForListing).joined(separator: " ")
    }

    public var appendCommand: [String] { [family.xtablesCommand, "-w", "-t", table, "-A", chain] + spec }
    public var deleteCommand: [String] { [family.xtablesCommand, "-w", "-t", table, "-D", chain] + spec }
}

public struct PolicyRoute: Equatable, Sendable {
    public var family: IPFamily
    public var mark: UInt32
    public var table: UInt32

    public init(family: IPFamily, mark: UInt32, table: UInt32) {
        self.family = family
        self.mark = mark
        self.table = table
    }

    public var ruleAdd: [String] { ["ip", family.ipFlag, "rule", "add", "fwmark", "\(mark)", "lookup", "\(table)"] }
    public var ruleDelete: [String] { ["ip", family.ipFlag, "rule", "del", "fwmark", "\(mark)", "lookup", "\(table)"] }
    public var ruleList: [String] { ["ip", family.ipFlag, "rule", "list", "fwmark", "\(mark)", "lookup", "\(table)"] }
    public var routeReplace: [String] { ["ip", family.ipFlag, "route", "replace", "local", "default", "dev", "lo", "table", "\(table)"] }
    public var routeFlush: [String] { ["ip", family.ipFlag, "route", "flush", "table", "\(table)"] }
}

public struct LoopbackAddress: Equatable, Sendable {
    public var family: IPFamily
    public var cidr: String
    public var add: [String] { ["ip", family.ipFlag, "addr", "add", cidr, "dev", "lo"] }
    public var delete: [String] { ["ip", family.ipFlag, "addr", "del", cidr, "dev", "lo"] }

    /// Istio's inbound passthrough source for IPv6; 127.0.0.6 needs nothing (all of 127/8 is local).
    public static let inboundPassthroughV6 = LoopbackAddress(family: .v6, cidr: "::6/128")
}
