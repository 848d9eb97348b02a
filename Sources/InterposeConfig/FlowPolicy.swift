import InterposeCapture

// MARK: - FlowPolicy (interpose.dev/v1alpha1): L3/L4 verdicts on new flows, given through NFQUEUE.

public enum FlowDirection: String, Sendable, Equatable { case outbound = "OUTBOUND", inbound = "INBOUND" }

public enum FlowActionKind: String, Sendable, Equatable { case proxy = "PROXY", bypass = "BYPASS", deny = "DENY" }

/// How a denied flow is refused: a TCP reset (the client fails at once) or a silent drop (it times out).
public enum FlowDenyMode: String, Sendable, Equatable { case reset = "RESET", drop = "DROP" }

public struct FlowMatch: Sendable, Equatable {
    public var direction: FlowDirection?
    public var sourceCIDRs: [CIDR] = []
    public var destinationCIDRs: [CIDR] = []
    public var destinationPorts: [PortRange] = []
    public var uids: [UInt32] = []
    /// ServiceEntry hosts: their addresses (VIPs, static endpoints, DNS answers) join destinationCIDRs.
    public var hosts: [String] = []
    public init() {}
}

/// New flows per second from one source address: a token bucket of `burst` tokens, refilled with
/// `newFlowsPerSecond x fillInterval` tokens every `fillInterval` (Envoy's local rate limit shape).
public struct FlowRateLimit: Sendable, Equatable {
    public var newFlowsPerSecond: Double
    public var burst: Double
    /// Tokens are added in steps of this many seconds (newFlowsPerSecond x fillInterval each).
    public var fillInterval: Double = 1
    public var exceededAction: FlowActionKind
    public var exceededDenyMode: FlowDenyMode
}

public struct FlowRule: Sendable, Equatable {
    public var name: String
    public var match: FlowMatch
    public var action: FlowActionKind
    public var denyMode: FlowDenyMode
    public var rateLimit: FlowRateLimit?
    /// Where the rule was written, for messages (`spec.rules[2]`).
    public var path: String
}

public struct FlowPolicy: Sendable, Equatable {
    public var meta: ResourceMeta
    /// Policies are evaluated in ascending order, then by namespace/name; rules in the order written.
    public var order: Int
    public var rules: [FlowRule]
}

extension ResourceDecoder {
    func flowPolicy(_ spec: MapReader, meta: ResourceMeta) -> FlowPolicy {
        defer { spec.finish() }
        let order = spec.int("order") ?? 0
        var rules: [FlowRule] = []
        for (i, r) in spec.maps("rules").enumerated() {
            defer { r.finish() }
            let path = "spec.rules[\(i)]"
            var match = FlowMatch()
            if let m = r.map("match") {
                defer { m.finish() }
                if let d = m.string("direction") {
                    match.direction = FlowDirection(rawValue: d.uppercased())
                    if match.direction == nil { diagnostics.error(m.sub("direction"), "'\(d)' is not OUTBOUND or INBOUND") }
                }
                match.sourceCIDRs = cidrs(m, "sourceCIDRs")
                match.destinationCIDRs = cidrs(m, "destinationCIDRs")
                match.destinationPorts = portRanges(m, "destinationPorts")
                for item in m.list("uids") {
                    if let s = item.node.string, let v = UInt32(s) { match.uids.append(v) } else {
                        diagnostics.error(item.path, "expected a numeric uid (0-4294967295)", line: item.node.line)
                    }
                }
                match.hosts = m.strings("hosts").map { $0.lowercased() } // as ServiceEntry hosts are read
            }
            let action = enumValue(r, "action", FlowActionKind.self, expected: "PROXY, BYPASS or DENY") ?? .proxy
            if !r.has("action") { diagnostics.error(r.sub("action"), "every rule needs an action: PROXY, BYPASS or DENY") }
            let denyMode = enumValue(r, "denyMode", FlowDenyMode.self, expected: "RESET or DROP") ?? .reset
            var limit: FlowRateLimit?
            if let l = r.map("rateLimit") {
                defer { l.finish() }
                let rate = l.double("newFlowsPerSecond")
                if rate == nil || rate! <= 0 { diagnostics.error(l.sub("newFlowsPerSecond"), "must be a number above 0 (new flows per second from one source)") }
                let burst = l.double("burst") ?? max(1, rate ?? 1)
                if burst < 1 { diagnostics.error(l.sub("burst"), "must be at least 1") }
                let interval = l.duration("fillInterval") ?? 1
                if interval < 0.001 || interval > 3600 { diagnostics.error(l.sub("fillInterval"), "must be between 1ms and 1h") }
                limit = FlowRateLimit(newFlowsPerSecond: rate ?? 1, burst: burst, fillInterval: interval,
                                      exceededAction: enumValue(l, "exceededAction", FlowActionKind.self, expected: "PROXY, BYPASS or DENY") ?? .deny,
                                      exceededDenyMode: enumValue(l, "exceededDenyMode", FlowDenyMode.self, expected: "RESET or DROP") ?? .reset)
            }
            let name = r.string("name") ?? "rule-\(i)"
            if rules.contains(where: { $0.name == name }) {
                diagnostics.error(r.sub("name"), "'\(name)' names another rule of this FlowPolicy already: rule names must be unique (metrics and rate limits are keyed by them)")
            }
            rules.append(FlowRule(name: name, match: match, action: action, denyMode: denyMode, rateLimit: limit, path: path))
        }
        if rules.isEmpty { diagnostics.warning("spec.rules", "a FlowPolicy without rules decides nothing") }
        return FlowPolicy(meta: meta, order: order, rules: rules)
    }

    private func enumValue<E: RawRepresentable<String>>(_ r: MapReader, _ key: String, _ type: E.Type, expected: String) -> E? {
        guard let text = r.string(key) else { return nil }
        guard let v = E(rawValue: text.uppercased()) else {
            diagnostics.error(r.sub(key), "'\(text)' is not \(expected)", line: r.raw(key)?.line)
            return nil
        }
        return v
    }

    /// A list of addresses or CIDRs (IPv4 or IPv6), each bad one an error at its path.
    func cidrs(_ r: MapReader, _ key: String) -> [CIDR] {
        r.list(key).compactMap { item in
            guard let s = item.node.string else { diagnostics.error(item.path, "expected an address or CIDR", line: item.node.line); return nil }
            switch CIDR.parse(s) {
            case .success(let c): return c
            case .failure(let e):
                diagnostics.error(item.path, "'\(s)' is not an IPv4 or IPv6 address or CIDR (\(e))", line: item.node.line)
                return nil
            }
        }
    }

    private func portRanges(_ r: MapReader, _ key: String) -> [PortRange] {
        r.list(key).compactMap { item in
            let s = item.node.string ?? ""
            if let range = PortRange.parse(s) { return range }
            diagnostics.error(item.path, "'\(s)' is not a port (1-65535) or a range like 8000-8100", line: item.node.line)
            return nil
        }
    }
}
