// MARK: - RateLimitPolicy (interpose.dev/v1alpha1): request quotas, local (GCRA in this proxy) or global (GCRA in Redis).
// Shaped after envoyproxy/ratelimit: descriptors built from request attributes, a rate per unit, overrides
// for given descriptor values, shadow mode.

public enum RateLimitScope: String, Sendable, Equatable {
    /// Counted in this proxy only.
    case local = "Local"
    /// Shared by every proxy through Redis.
    case global = "Global"
}

/// What a Global limit does when Redis cannot answer (down, timeout, circuit open).
public enum RateLimitFailureMode: String, Sendable, Equatable {
    /// A local bucket at limit / expectedProxies decides (the default).
    case local = "Local"
    /// Allow.
    case failOpen = "FailOpen"
    /// Answer 503 (never 429: a backend error is not a rate limit).
    case failClosed = "FailClosed"
}

public enum RateLimitUnit: String, Sendable, Equatable, CaseIterable {
    case second = "SECOND", minute = "MINUTE", hour = "HOUR", day = "DAY"
    public var seconds: Double {
        switch self {
        case .second: return 1
        case .minute: return 60
        case .hour: return 3600
        case .day: return 86400
        }
    }
}

/// `requestsPerUnit` per `unit`, of which `burst + 1` may come at once (GCRA: emission interval
/// T = unit / requestsPerUnit, burst tolerance = burst x T).
public struct RateLimitAmount: Sendable, Equatable {
    public var requestsPerUnit: Int
    public var unit: RateLimitUnit
    /// Requests allowed at once above the first; default requestsPerUnit - 1 (the whole unit's quota may
    /// be used at once, as a fixed window would allow).
    public var burst: Int
    /// Envoy's `unlimited: true`: requests with these descriptor values are not limited (for overrides).
    public var unlimited: Bool
    public var period: Double { unit.seconds }
    public init(requestsPerUnit: Int, unit: RateLimitUnit, burst: Int? = nil, unlimited: Bool = false) {
        self.requestsPerUnit = requestsPerUnit
        self.unit = unit
        self.burst = burst ?? max(0, requestsPerUnit - 1)
        self.unlimited = unlimited
    }
}

/// One entry of the descriptor: a name and the attribute its value comes from.
public struct RateLimitDescriptor: Sendable, Equatable {
    public var key: String
    public var attribute: PolicyAttribute
}

/// A different limit for requests whose descriptor values are these (all keys given must be equal).
public struct RateLimitOverride: Sendable, Equatable {
    public var values: [String: String]
    public var limit: RateLimitAmount
}

public struct RateLimitPolicy: Sendable, Equatable {
    public var meta: ResourceMeta
    public var scope: RateLimitScope
    public var failureMode: RateLimitFailureMode
    /// How many proxies share a Global limit: the Local fallback allows limit / expectedProxies.
    public var expectedProxies: Int
    /// Count and report, never refuse.
    public var shadow: Bool
    /// Which requests the policy applies to (from/to/when as in AuthorizationPolicy); empty: every request.
    public var rules: [AuthorizationRule]
    /// Empty: one quota shared by every request the rules select.
    public var descriptors: [RateLimitDescriptor]
    public var limit: RateLimitAmount
    public var overrides: [RateLimitOverride]
    public var id: String { "\(meta.namespace)/\(meta.name)" }

    /// Equal in everything that decides (not where it was written): limiter state survives a reload then.
    public func sameLimits(as other: RateLimitPolicy) -> Bool {
        var a = self, b = other
        a.meta.file = ""; a.meta.document = 0; b.meta.file = ""; b.meta.document = 0
        a.rules = a.rules.map { var r = $0; r.path = ""; return r }
        b.rules = b.rules.map { var r = $0; r.path = ""; return r }
        return a == b
    }
}

extension ResourceDecoder {
    func rateLimitPolicy(_ spec: MapReader, meta: ResourceMeta) -> RateLimitPolicy {
        defer { spec.finish() }
        var scope = RateLimitScope.local
        if let s = spec.string("scope") {
            if let v = [RateLimitScope.local, .global].first(where: { $0.rawValue.lowercased() == s.lowercased() }) { scope = v } else {
                diagnostics.error(spec.sub("scope"), "'\(s)' is not Local or Global", line: spec.raw("scope")?.line)
            }
        }
        var failureMode = RateLimitFailureMode.local
        if let s = spec.string("failureMode") {
            if let v = [RateLimitFailureMode.local, .failOpen, .failClosed].first(where: { $0.rawValue.lowercased() == s.lowercased() }) { failureMode = v } else {
                diagnostics.error(spec.sub("failureMode"), "'\(s)' is not Local, FailOpen or FailClosed", line: spec.raw("failureMode")?.line)
            }
            if scope == .local { diagnostics.warning(spec.sub("failureMode"), "only a Global limit can fail (it asks Redis); ignored for scope Local") }
        }
        let expected = spec.int("expectedProxies", range: 1...100_000) ?? 1
        let shadow = spec.bool("shadow") ?? false
        let rules = policyRules(spec, "rules")
        var descriptors: [RateLimitDescriptor] = []
        for d in spec.maps("descriptors") {
            defer { d.finish() }
            let key = d.string("key")
            let name = d.string("attribute")
            guard let key, !key.isEmpty else { diagnostics.error(d.sub("key"), "a descriptor needs a key (its name)", line: d.node.line); continue }
            guard let name else { diagnostics.error(d.sub("attribute"), "a descriptor needs the attribute its value comes from", line: d.node.line); continue }
            guard let attribute = PolicyAttribute.parse(name) else {
                diagnostics.error(d.sub("attribute"), "'\(name)' is not a supported attribute (\(PolicyAttribute.names))", line: d.raw("attribute")?.line)
                continue
            }
            if descriptors.contains(where: { $0.key == key }) { diagnostics.error(d.sub("key"), "descriptor key '\(key)' is used twice", line: d.node.line) }
            if case .requestAuth = attribute { diagnostics.warning(d.sub("attribute"), "there is no request authentication (JWT) in Interpose: \(name) is never present, so this policy never limits") }
            descriptors.append(RateLimitDescriptor(key: key, attribute: attribute))
        }
        var limit = RateLimitAmount(requestsPerUnit: 0, unit: .second)
        if let l = spec.map("limit") { limit = amount(l) ?? limit } else {
            diagnostics.error("spec.limit", "a RateLimitPolicy needs a limit: {requestsPerUnit, unit}")
        }
        var overrides: [RateLimitOverride] = []
        for o in spec.maps("overrides") {
            defer { o.finish() }
            let values = o.stringMap("value")
            if values.isEmpty { diagnostics.error(o.sub("value"), "an override needs descriptor values: {key: value}", line: o.node.line) }
            for k in values.keys.sorted() where !descriptors.contains(where: { $0.key == k }) {
                diagnostics.error(o.sub("value.\(k)"), "'\(k)' is not a descriptor key of this policy (\(descriptors.map(\.key).joined(separator: ", ")))", line: o.node.line)
            }
            guard let l = o.map("limit") else { diagnostics.error(o.sub("limit"), "an override needs a limit", line: o.node.line); continue }
            guard let a = amount(l) else { continue }
            overrides.append(RateLimitOverride(values: values, limit: a))
        }
        return RateLimitPolicy(meta: meta, scope: scope, failureMode: failureMode, expectedProxies: expected, shadow: shadow, rules: rules,
                               descriptors: descriptors, limit: limit, overrides: overrides)
    }

    private func amount(_ l: MapReader) -> RateLimitAmount? {
        defer { l.finish() }
        let unlimited = l.bool("unlimited") ?? false
        var unit = RateLimitUnit.second
        if let u = l.string("unit") {
            if let v = RateLimitUnit(rawValue: u.uppercased()) { unit = v } else {
                diagnostics.error(l.sub("unit"), "'\(u)' is not SECOND, MINUTE, HOUR or DAY", line: l.raw("unit")?.line)
                return nil
            }
        }
        let rate = l.int("requestsPerUnit", range: 0...1_000_000_000)
        if rate == nil && !unlimited {
            if !l.has("requestsPerUnit") { diagnostics.error(l.sub("requestsPerUnit"), "a limit needs requestsPerUnit (or unlimited: true)", line: l.node.line) }
            return nil
        }
        let burst = l.int("burst", range: 0...1_000_000_000)
        return RateLimitAmount(requestsPerUnit: rate ?? 0, unit: unit, burst: burst, unlimited: unlimited)
    }
}
