import InterposeCapture
import InterposeConfig

/// The FlowPolicy resources compiled once per config: rules in evaluation order, CIDRs in prefix
/// tries, hosts turned into their addresses. Read-only on the verdict path except the rate limiters.
public final class FlowRuleSet: Sendable {
    struct CompiledRule: Sendable {
        let policy: String
        let name: String
        let direction: FlowDirection?
        let sources: AddressMatcher
        let destinations: AddressMatcher
        let ports: [PortRange]
        let uids: Set<UInt32>
        let action: FlowActionKind
        let denyMode: FlowDenyMode
        let limit: FlowRateLimit?
        let limiter: SourceRateLimiter?
        /// Identifies a limiter across reloads: same rule and same numbers keep their buckets.
        let limiterKey: String?
    }

    let rules: [CompiledRule]
    public let generation: Int

    public var ruleCount: Int { rules.count }
    public var isEmpty: Bool { rules.isEmpty }

    init(rules: [CompiledRule], generation: Int) {
        self.rules = rules
        self.generation = generation
    }

    public static let empty = FlowRuleSet(rules: [], generation: 0)

    /// Policies ordered by `order`, then namespace/name; rules as written. `hostAddresses` gives the
    /// known addresses of a ServiceEntry host. Rate limiters whose rule and numbers did not change
    /// are carried over from `previous`, so a reload does not hand every source a fresh burst.
    public static func compile(_ policies: [FlowPolicy], generation: Int = 1,
                               hostAddresses: (String) -> [CIDR] = { _ in [] }, previous: FlowRuleSet? = nil) -> FlowRuleSet {
        var carried: [String: SourceRateLimiter] = [:]
        for r in previous?.rules ?? [] { if let k = r.limiterKey, let l = r.limiter { carried[k] = l } }
        let ordered = policies.sorted {
            ($0.order, $0.meta.namespace, $0.meta.name) < ($1.order, $1.meta.namespace, $1.meta.name)
        }
        var out: [CompiledRule] = []
        for p in ordered {
            let policy = "\(p.meta.namespace)/\(p.meta.name)"
            for r in p.rules {
                let hostPrefixes = r.match.hosts.flatMap(hostAddresses)
                // A rule naming only hosts whose addresses are not known yet matches nothing, not everything.
                let destinations = r.match.destinationCIDRs + hostPrefixes
                let unresolvedHostsOnly = !r.match.hosts.isEmpty && destinations.isEmpty
                let key = r.rateLimit.map { "\(policy)/\(r.name)/\($0.newFlowsPerSecond)/\($0.burst)/\($0.fillInterval)" }
                let limiter = r.rateLimit.map { l in
                    key.flatMap { carried[$0] } ?? SourceRateLimiter(rate: l.newFlowsPerSecond, burst: l.burst, interval: l.fillInterval)
                }
                if unresolvedHostsOnly { continue }
                out.append(CompiledRule(policy: policy, name: r.name, direction: r.match.direction,
                                        sources: AddressMatcher(r.match.sourceCIDRs), destinations: AddressMatcher(destinations),
                                        ports: r.match.destinationPorts, uids: Set(r.match.uids),
                                        action: r.action, denyMode: r.denyMode, limit: r.rateLimit, limiter: limiter, limiterKey: key))
            }
        }
        return FlowRuleSet(rules: out, generation: generation)
    }

    /// The first rule that matches decides; none matching means the flow goes to the proxy, as it
    /// would with no engine at all. `uid` is the sending socket's owner when the kernel gave it.
    public func decide(_ flow: FlowTuple, direction: FlowDirection, uid: UInt32?, now: UInt64) -> FlowDecision {
        for r in rules {
            if let d = r.direction, d != direction { continue }
            if !r.uids.isEmpty { guard let uid, r.uids.contains(uid) else { continue } }
            if !r.ports.isEmpty && !r.ports.contains(where: { $0.contains(flow.destinationPort) }) { continue }
            guard r.destinations.matches(flow.destination), r.sources.matches(flow.source) else { continue }
            if let limit = r.limit, let limiter = r.limiter, !limiter.take(flow.source, now: now) {
                return FlowDecision(limit.exceededAction, limit.exceededDenyMode, policy: r.policy, rule: r.name, rateLimited: true)
            }
            return FlowDecision(r.action, r.denyMode, policy: r.policy, rule: r.name, rateLimited: false)
        }
        return .noRuleMatched
    }

    /// Every (policy, rule) pair, for pre-registering metrics and for `/config_dump`.
    public var ruleNames: [(policy: String, rule: String)] { rules.map { ($0.policy, $0.name) } }
}

extension FlowRuleSet {
    /// The known addresses of a ServiceEntry host: its VIPs, its endpoints' IP addresses, and the
    /// DNS answers (keyed by name) the proxy resolved for its endpoints or for the host itself.
    public static func hostAddresses(_ bundle: ConfigBundle, resolved: [String: [String]]) -> (String) -> [CIDR] {
        { host in
            var out: [CIDR] = []
            func add(_ text: String) { if case .success(let c) = CIDR.parse(text) { out.append(c) } }
            for se in bundle.serviceEntries where se.hosts.contains(host) {
                se.addresses.forEach(add)
                for e in se.endpoints {
                    if case .success = CIDR.parse(e.address) { add(e.address) } else { resolved[e.address]?.forEach(add) }
                }
                if se.endpoints.isEmpty { resolved[host]?.forEach(add) }
            }
            return out
        }
    }
}
