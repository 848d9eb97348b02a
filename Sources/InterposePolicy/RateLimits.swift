import InterposeConfig

/// One limit of a RateLimitPolicy (its `limit` or an override), ready for GCRA.
struct CompiledLimit: Sendable {
    /// `default` or `override-N`: the rule label in verdicts, metrics and Redis keys.
    let label: String
    let unlimited: Bool
    let gcra: GCRALimit
    /// The Local fallback of a Global limit: the same capacity (burst + 1) and rate divided by expectedProxies.
    let fallback: GCRALimit

    init(label: String, amount: RateLimitAmount, expectedProxies: Int) {
        self.label = label
        unlimited = amount.unlimited
        gcra = GCRALimit(limit: amount.requestsPerUnit, period: amount.period, burst: amount.burst)
        let n = max(1, expectedProxies)
        let limit = amount.requestsPerUnit == 0 ? 0 : max(1, amount.requestsPerUnit / n)
        let capacity = max(1, (amount.burst + 1) / n)
        fallback = GCRALimit(limit: limit, period: amount.period, burst: capacity - 1)
    }
}

/// A RateLimitPolicy compiled: which requests, how their descriptor is built, which limit applies.
final class CompiledRateLimit: Sendable {
    let id: String
    let policy: RateLimitPolicy
    /// Rule indices in the engine's program.
    let rules: [Int]
    let descriptors: [AttrRef]
    /// `limit` first, then the overrides' limits.
    let limits: [CompiledLimit]
    /// Descriptor index and value pairs that must all be equal, with the index of their limit; the first match wins.
    let overrides: [(values: [(Int, String)], limit: Int)]
    /// The ordinal of its first rule in the engine's index of rate-limit rules.
    let firstOrdinal: Int
    /// Local buckets (scope Local), or the Local fallback buckets of a Global limit.
    let limiter: LocalLimiter

    init(_ p: RateLimitPolicy, limiter: LocalLimiter, program: ProgramBuilder, firstOrdinal: Int) {
        self.firstOrdinal = firstOrdinal
        id = p.id
        policy = p
        rules = p.rules.map { program.add($0) }
        descriptors = p.descriptors.map { program.ref($0.attribute) }
        limits = [CompiledLimit(label: "default", amount: p.limit, expectedProxies: p.expectedProxies)]
            + p.overrides.enumerated().map { i, o in CompiledLimit(label: "override-\(i)", amount: o.limit, expectedProxies: p.expectedProxies) }
        overrides = p.overrides.enumerated().map { i, o in
            let pairs = o.values.sorted { $0.key < $1.key }.compactMap { k, v in p.descriptors.firstIndex { $0.key == k }.map { ($0, v) } }
            return (pairs, i + 1)
        }
        self.limiter = limiter
    }

    var scope: RateLimitScope { policy.scope }
    var shadow: Bool { policy.shadow }

    /// The policy's rules select the request (no rules: every request). HTTP-only fields never match a
    /// TCP connection (as in an ALLOW rule).
    func applies(_ program: MatchProgram, _ a: some AttributeSource, _ cache: inout AttributeCache) -> Bool {
        if rules.isEmpty { return true }
        for r in rules where program.matches(rule: r, a, &cache, tcp: .ruleNeverMatches) { return true }
        return false
    }

    /// The descriptor's values (nil when an attribute is absent: Envoy then sends no descriptor, so the
    /// request is not limited by this policy), the local bucket key and the limit that applies.
    func resolve(_ a: some AttributeSource, _ cache: inout AttributeCache) -> (key: String, values: [String]?, limit: Int)? {
        switch descriptors.count {
        case 0:
            return ("", nil, 0)
        case 1:
            guard let v = cache.string(descriptors[0], a) else { return nil }
            for o in overrides where o.values.allSatisfy({ $0.1 == v }) { return (v, nil, o.limit) }
            return (v, nil, 0)
        default:
            var values: [String] = []
            values.reserveCapacity(descriptors.count)
            for d in descriptors {
                guard let v = cache.string(d, a) else { return nil }
                values.append(v)
            }
            let key = values.joined(separator: "\u{1F}")
            for o in overrides where o.values.allSatisfy({ values[$0.0] == $0.1 }) { return (key, values, o.limit) }
            return (key, values, 0)
        }
    }

    /// `interpose:rl:{namespace/name/rule/value1/value2}`: one Redis Cluster slot per descriptor value.
    func globalKey(_ limit: CompiledLimit, key: String, values: [String]?) -> String {
        let parts = values ?? (descriptors.isEmpty ? [] : [key])
        return "interpose:rl:{\(id)/\(limit.label)/\(parts.map(escapeKeyPart).joined(separator: "/"))}"
    }

    /// `user=alice, path=/x` for notes and explain.
    func describe(key: String, values: [String]?) -> String {
        if descriptors.isEmpty { return "(no descriptor: one quota for every request)" }
        let vs = values ?? [key]
        return zip(policy.descriptors, vs).map { "\($0.key)=\($1)" }.joined(separator: ", ")
    }
}

/// Values go inside a Redis key: `/` separates them and braces delimit the hash tag, so both are escaped.
func escapeKeyPart(_ s: String) -> String {
    guard s.contains(where: { $0 == "/" || $0 == "%" || $0 == "{" || $0 == "}" }) else { return s }
    var out = ""
    for c in s {
        switch c {
        case "%": out += "%25"
        case "/": out += "%2F"
        case "{": out += "%7B"
        case "}": out += "%7D"
        default: out.append(c)
        }
    }
    return out
}
