/// What the plan needs to know about the host it will run on, gathered by a probe and passed in,
/// so that rendering stays a pure function of (options, facts).
public struct HostFacts: Equatable, Sendable {
    /// IPv6 is enabled: `ip6` rule twins, v6 sets and `::6` are generated only then.
    public var ipv6: Bool
    /// The kernel has the native nft `queue` expression; otherwise the xtables NFQUEUE target is used.
    public var nativeNftQueue: Bool
    /// Ports where sshd listens (host mode keeps them uncaptured).
    public var sshPorts: [PortRange]

    public init(ipv6: Bool = true, nativeNftQueue: Bool = false, sshPorts: [PortRange] = []) {
        self.ipv6 = ipv6
        self.nativeNftQueue = nativeNftQueue
        self.sshPorts = sshPorts
    }
}
