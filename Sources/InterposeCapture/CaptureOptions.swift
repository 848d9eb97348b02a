/// How inbound connections reach the proxy.
public enum CaptureMode: String, Sendable, Equatable {
    /// NAT to the inbound port; the proxy reads the original destination with SO_ORIGINAL_DST.
    case redirect
    /// TPROXY: no NAT, the proxy's transparent socket sees the real client and destination.
    case tproxy
}

/// NFQUEUE numbers that receive the first SYN of each new captured flow.
public struct QueueRange: Equatable, Sendable, CustomStringConvertible {
    public let first: UInt16
    public let last: UInt16
    public var isSingle: Bool { first == last }
    public var description: String { isSingle ? "\(first)" : "\(first)-\(last)" }
    public init?(first: UInt16, last: UInt16) {
        guard first <= last else { return nil }
        self.first = first
        self.last = last
    }
}

/// Every capture option, validated. Defaults follow istio-iptables as Istio's injector calls it.
public struct CaptureOptions: Equatable, Sendable {
    public var outboundPort: UInt16 = 15001
    public var inboundPort: UInt16 = 15006
    public var proxyUIDs: [UInt32] = [1337]
    public var proxyGIDs: [UInt32] = [1337]
    public var mode: CaptureMode = .redirect
    public var inboundPorts: PortSelection = .all
    public var excludeInboundPorts: [PortRange] = []
    /// `.all` captures every destination, `.only` just these networks, `.none` no outbound capture.
    public var outboundCIDRs: CIDRSelection = .all
    public var excludeOutboundCIDRs: [CIDR] = []
    /// Istio's `-q`: ports always captured, whatever the CIDR options say; `.all` adds no such rule.
    public var outboundPorts: PortSelection = .all
    public var excludeOutboundPorts: [PortRange] = []
    public var excludeInterfaces: [String] = []
    /// The proxy's own ports (admin, agent, readiness, metrics): never captured inbound.
    public var proxyOwnPorts: [PortRange] = [15000, 15020, 15021, 15090].map { PortRange($0) }
    public var captureDNS = false
    public var dnsPort: UInt16 = 15053
    public var dropInvalid = false
    public var queue: QueueRange?
    /// Fail-open: without a consumer the kernel accepts the packet instead of dropping it.
    public var queueBypass = true
    public var hostMode = false
    /// Host mode: ssh ports given by hand; nil means "find where sshd listens".
    public var sshPorts: [PortRange]?
    public var rollbackAfterSeconds: Int?
    public var tproxyMark: UInt32 = 1337
    public var tproxyRouteTable: UInt32 = 133

    public init() {}

    public var capturesInbound: Bool {
        if case .none = inboundPorts { return false }
        return true
    }

    public var capturesOutbound: Bool {
        if case .none = outboundCIDRs { return false }
        return true
    }
}

public enum CIDRSelection: Equatable, Sendable {
    case all
    case only([CIDR])
    case none
}
