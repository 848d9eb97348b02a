import InterposeConfig
import InterposeFlow

/// A CUSTOM provider, in process.
enum CustomProvider: Sendable {
    case denier(id: String, status: Int, message: String, grpcStatus: Int)
    case list(ListProvider)
    /// The provider named does not exist (a config error): matched requests are denied, as Istio does.
    case missing(String)
}

/// An AuthorizationPolicy compiled: its rules are rows of the engine's program.
final class AuthzPolicy: Sendable {
    let id: String
    let action: AuthorizationAction
    let dryRun: Bool
    /// Indices of its rules in the program, in order.
    let rules: [Int]
    /// `0`, `1`, ...: the rule labels of verdicts.
    let labels: [String]
    /// The rules in words, for explain.
    let explanations: [String]
    let provider: CustomProvider?
    let tcp: TCPFieldHandling

    init(_ p: AuthorizationPolicy, provider: CustomProvider?, program: ProgramBuilder) {
        id = p.id
        action = p.action
        dryRun = p.dryRun && (p.action == .allow || p.action == .deny)
        rules = p.rules.map { program.add($0) }
        labels = p.rules.indices.map { String($0) }
        explanations = p.rules.map(explanation(of:))
        self.provider = provider
        tcp = p.action == .allow ? .ruleNeverMatches : .fieldIgnored
    }

    /// The position of the first rule that matches; nil when none does (a policy without rules matches nothing).
    @inline(__always)
    func firstMatch(_ program: MatchProgram, _ a: some AttributeSource, _ cache: inout AttributeCache) -> Int? {
        var i = 0
        while i < rules.count {
            if program.matches(rule: rules[i], a, &cache, tcp: tcp) { return i }
            i += 1
        }
        return nil
    }
}

/// Collects which policies took part while a check runs: the most telling one becomes the verdict's
/// policy/rule/result, the others its `hits`. Nothing is allocated unless two policies are recorded.
struct Recorder {
    var primary: PolicyHit?
    var rank = -1
    var hits: [PolicyHit] = []
    var notes: [String] = []

    // Ranks of records on an allowed request: the higher names the verdict.
    static let shadowRateLimited = 6, dryRunDeny = 5, failOpen = 4, audit = 3, allowedByPolicy = 2, dryRunAllow = 0

    mutating func record(_ hit: PolicyHit, rank: Int) {
        guard let current = primary else { primary = hit; self.rank = rank; return }
        if rank > self.rank {
            // A rate limit that merely allowed is never a hit of its own (rank 1, see recordIfNothing).
            if self.rank != 1 { hits.append(current) }
            primary = hit
            self.rank = rank
        } else {
            hits.append(hit)
        }
    }

    /// Names the verdict only when nothing else did (a rate limit that allowed); never a hit of its own.
    mutating func recordIfNothing(_ hit: PolicyHit) {
        if primary == nil { primary = hit; rank = 1 }
    }

    func verdict() -> PolicyVerdict {
        var v = PolicyVerdict()
        if let p = primary {
            v.policy = p.policy
            v.rule = p.rule
            v.kind = p.kind
            v.result = p.result
        }
        v.hits = hits
        v.notes = notes
        return v
    }

    /// A refusal: it names the verdict; whatever was recorded before becomes a hit.
    func verdict(refusedBy hit: PolicyHit, outcome: PolicyVerdict.Outcome, grpcStatus: Int?) -> PolicyVerdict {
        var v = PolicyVerdict(outcome: outcome, policy: hit.policy, rule: hit.rule, kind: hit.kind, result: hit.result)
        v.hits = hits
        if let p = primary { v.hits.insert(p, at: 0) }
        v.notes = notes
        v.grpcStatus = grpcStatus
        return v
    }
}

/// Lines for `interpose explain`.
final class Trace {
    var lines: [String] = []
    func add(_ s: String) { lines.append(s) }
}

/// Policy and quota per request and connection, Mixer's checks in process: AuthorizationPolicy (CUSTOM,
/// DENY, ALLOW, AUDIT, dry-run), ValueList and Denier as CUSTOM providers, RateLimitPolicy (Local GCRA here,
/// Global GCRA in Redis). Compiled once per config; `check` only reads it (and takes from local buckets).
public final class PolicyEngine: Sendable {
    let audit: [AuthzPolicy]
    let custom: [AuthzPolicy]
    let deny: RuleGroup
    let allow: RuleGroup
    let dryRunDeny: [AuthzPolicy]
    let dryRunAllow: RuleGroup
    let rateLimits: [CompiledRateLimit]
    /// Every rate-limit rule, numbered policy by policy (`CompiledRateLimit.firstOrdinal`).
    let limitIndex: CandidateIndex?
    /// The rate-limit rules by ordinal: (policy position, program rule).
    let limitRules: Table<RuleGroup.Entry>
    /// Bit n: rate limit n has no rules (it selects everything).
    let limitsWithoutRules: UInt64
    let program: MatchProgram

    /// Nothing to check: the proxy skips building attributes.
    public let isEmpty: Bool

    public static let empty: PolicyEngine = {
        let b = ProgramBuilder()
        return PolicyEngine(audit: [], custom: [], deny: RuleGroup([], tcp: .fieldIgnored, builder: b), allow: RuleGroup([], tcp: .ruleNeverMatches, builder: b),
                            dryRunDeny: [], dryRunAllow: RuleGroup([], tcp: .ruleNeverMatches, builder: b), rateLimits: [], limitIndex: nil,
                            program: b.build())
    }()

    init(audit: [AuthzPolicy], custom: [AuthzPolicy], deny: RuleGroup, allow: RuleGroup, dryRunDeny: [AuthzPolicy],
         dryRunAllow: RuleGroup, rateLimits: [CompiledRateLimit], limitIndex: CandidateIndex?, program: MatchProgram) {
        self.program = program
        self.limitIndex = limitIndex
        var entries: [RuleGroup.Entry] = []
        var without: UInt64 = 0
        for (n, rl) in rateLimits.enumerated() {
            if rl.rules.isEmpty && n < 64 { without |= 1 << UInt64(n) }
            for (k, rule) in rl.rules.enumerated() { entries.append(RuleGroup.Entry(policy: Int32(n), position: Int32(k), rule: Int32(rule))) }
        }
        limitRules = Table(entries)
        limitsWithoutRules = without
        self.audit = audit
        self.custom = custom
        self.deny = deny
        self.allow = allow
        self.dryRunDeny = dryRunDeny
        self.dryRunAllow = dryRunAllow
        self.rateLimits = rateLimits
        isEmpty = audit.isEmpty && custom.isEmpty && deny.isEmpty && allow.isEmpty && dryRunDeny.isEmpty && dryRunAllow.isEmpty && rateLimits.isEmpty
    }

    /// Compiles a config's AuthorizationPolicies, ValueLists, Deniers and RateLimitPolicies. The lists are
    /// installed in `lists` (which keeps what was fetched across reloads). Local rate-limit state is carried
    /// over from `previous` for every RateLimitPolicy whose limits did not change.
    public static func compile(_ bundle: ConfigBundle, lists: ValueListStore, previous: PolicyEngine?) -> PolicyEngine {
        let slots = lists.define(bundle.valueLists)
        let builder = ProgramBuilder()
        func provider(for p: AuthorizationPolicy) -> CustomProvider? {
            guard p.action == .custom else { return nil }
            let name = p.provider ?? ""
            if let d = bundle.deniers.first(where: { $0.meta.namespace == p.meta.namespace && $0.meta.name == name }) {
                return .denier(id: d.id, status: d.status, message: d.message, grpcStatus: d.grpcStatus ?? grpcStatus(forHTTPStatus: d.status))
            }
            if let l = bundle.valueLists.first(where: { $0.meta.namespace == p.meta.namespace && $0.meta.name == name }),
               let check = l.check, let slot = slots[l.id] {
                return .list(ListProvider(list: l, check: check, slot: slot, attribute: builder.ref(check.attribute)))
            }
            return .missing("\(p.meta.namespace)/\(name)")
        }
        let policies = bundle.authorizationPolicies.sorted { $0.id < $1.id }.map { AuthzPolicy($0, provider: provider(for: $0), program: builder) }
        var ordinal = 0
        let limits = bundle.rateLimitPolicies.sorted { $0.id < $1.id }.map { p in
            let kept = previous?.rateLimits.first { $0.id == p.id && $0.policy.sameLimits(as: p) }?.limiter
            defer { ordinal += p.rules.count }
            return CompiledRateLimit(p, limiter: kept ?? LocalLimiter(), program: builder, firstOrdinal: ordinal)
        }
        return PolicyEngine(
            audit: policies.filter { $0.action == .audit },
            custom: policies.filter { $0.action == .custom },
            deny: RuleGroup(policies.filter { $0.action == .deny && !$0.dryRun }, tcp: .fieldIgnored, builder: builder),
            allow: RuleGroup(policies.filter { $0.action == .allow && !$0.dryRun }, tcp: .ruleNeverMatches, builder: builder),
            dryRunDeny: policies.filter { $0.action == .deny && $0.dryRun },
            dryRunAllow: RuleGroup(policies.filter { $0.action == .allow && $0.dryRun }, tcp: .ruleNeverMatches, builder: builder),
            rateLimits: limits,
            limitIndex: CandidateIndex(rules: limits.flatMap(\.rules), builder),
            program: builder.build())
    }

    /// Some RateLimitPolicy has scope Global: checks may return `.needsGlobal`.
    public var hasGlobalLimits: Bool { rateLimits.contains { $0.scope == .global } }

    /// One line for logs: what is enforced.
    public var summary: String {
        let n = audit.count + custom.count + deny.count + allow.count + dryRunDeny.count + dryRunAllow.count
        if isEmpty { return "no policy" }
        return "\(n) AuthorizationPolicies (\(custom.count) CUSTOM, \(deny.count) DENY, \(allow.count) ALLOW, \(audit.count) AUDIT, "
            + "\(dryRunDeny.count + dryRunAllow.count) dry-run), \(rateLimits.count) RateLimitPolicies "
            + "(\(rateLimits.filter { $0.scope == .global }.count) Global)"
    }

    /// Decides a request or connection at `now` (monotonic nanoseconds): authorization, then rate limits.
    /// Local limits take from their buckets; Global ones make the answer `.needsGlobal`.
    public func check(_ a: some AttributeSource, now: UInt64) -> PolicyCheck {
        if isEmpty { return .done(.allow) }
        return evaluate(a, now: now, trace: nil)
    }

    /// What `check` would decide, in words, for `interpose explain`: every policy consulted and why. Takes
    /// nothing from rate-limit buckets and asks no backend.
    public func explain(_ a: some AttributeSource, now: UInt64) -> [String] {
        let trace = Trace()
        if isEmpty {
            return ["policy: none configured (no AuthorizationPolicy or RateLimitPolicy): allowed"]
        }
        trace.add("policy: \(summary)")
        trace.add("policy: \(a.isHTTP ? "HTTP request" : "TCP connection (HTTP-only fields: ALLOW rules using them never match, DENY/AUDIT/CUSTOM rules ignore them)")")
        let result = evaluate(a, now: now, trace: trace)
        switch result {
        case .done(let v):
            trace.add("policy: decision: \(Self.describe(v))")
        case .needsGlobal(let p):
            trace.add("policy: decision: \(Self.describe(p.partial)) unless a shared (Global) quota refuses: would ask Redis for "
                + p.requests.map { "\($0.key) (\($0.limit) per \($0.period.formattedSeconds), burst \($0.burst))" }.joined(separator: ", "))
        }
        return trace.lines
    }

    static func describe(_ v: PolicyVerdict) -> String {
        var s: String
        switch v.outcome {
        case .allow: s = "allow"
        case .deny(let status, let message): s = "deny \(status) '\(message)'"
        case .rateLimited: s = "429 rate limited"
        case .unavailable: s = "503 rate limit unavailable"
        }
        s += " (\(v.logFields))"
        if !v.responseHeaders.isEmpty { s += " headers: " + v.responseHeaders.map { "\($0.0): \($0.1)" }.joined(separator: ", ") }
        return s
    }

    // MARK: the evaluation (shared by check and explain)

    static let rbacDenied = "RBAC: access denied"

    func evaluate(_ a: some AttributeSource, now: UInt64, trace: Trace?) -> PolicyCheck {
        let program = self.program
        var cache = program.cache(for: a)
        var rec = Recorder()

        // AUDIT: recorded, never decides (Istio evaluates it first, for every request).
        for p in audit {
            if let i = p.firstMatch(program, a, &cache) {
                rec.record(PolicyHit(policy: p.id, rule: p.labels[i], kind: "authorization", result: "audit"), rank: Recorder.audit)
                rec.notes.append("AUDIT \(p.id) rule \(i) matched")
                trace?.add("policy: AUDIT \(p.id) rule \(i) matches (\(p.explanations[i])): recorded, decides nothing")
            } else {
                trace?.add("policy: AUDIT \(p.id): \(p.rules.isEmpty ? "no rules" : "no rule matches")")
            }
        }

        // CUSTOM: the provider of a matching policy decides; a denial ends the check.
        for p in custom {
            guard let i = p.firstMatch(program, a, &cache) else {
                trace?.add("policy: CUSTOM \(p.id): no rule matches, provider not asked")
                continue
            }
            let rule = p.labels[i]
            switch p.provider {
            case .denier(let id, let status, let message, let grpc):
                trace?.add("policy: CUSTOM \(p.id) rule \(i) matches: Denier \(id) denies \(status) '\(message)'")
                return .done(rec.verdict(refusedBy: PolicyHit(policy: p.id, rule: rule, kind: "denier", result: "deny"),
                                         outcome: .deny(status: status, message: message), grpcStatus: a.isGRPC ? grpc : nil))
            case .list(let list):
                let allowed = list.allows(a, &cache)
                if let trace {
                    let looked = list.lookup(a, &cache)
                    let what = looked == nil ? "\(list.attributeName) is absent" : "\(list.attributeName)\(looked?.value.map { " '\($0)'" } ?? "") is \(looked!.found ? "" : "not ")on the list"
                    trace.add("policy: CUSTOM \(p.id) rule \(i) matches: ValueList \(list.id) (\(list.blacklist ? "blacklist" : "whitelist")): \(what): \(allowed ? "allows" : "denies \(list.status) '\(list.message)'")")
                }
                if !allowed {
                    return .done(rec.verdict(refusedBy: PolicyHit(policy: p.id, rule: rule, kind: "list", result: "deny"),
                                             outcome: .deny(status: list.status, message: list.message), grpcStatus: a.isGRPC ? list.grpcStatus : nil))
                }
            case .missing(let name):
                trace?.add("policy: CUSTOM \(p.id) rule \(i) matches: provider \(name) is not defined (no Denier or ValueList of that name): denied")
                return .done(rec.verdict(refusedBy: PolicyHit(policy: p.id, rule: rule, kind: "authorization", result: "deny"),
                                         outcome: .deny(status: 403, message: Self.rbacDenied), grpcStatus: a.isGRPC ? 7 : nil))
            case .none:
                return .done(rec.verdict(refusedBy: PolicyHit(policy: p.id, rule: rule, kind: "authorization", result: "deny"),
                                         outcome: .deny(status: 403, message: Self.rbacDenied), grpcStatus: a.isGRPC ? 7 : nil))
            }
        }

        // DENY: dry-run policies are evaluated first and only reported (Envoy's shadow engine), then any
        // enforced match denies.
        for p in dryRunDeny {
            if let i = p.firstMatch(program, a, &cache) {
                rec.record(PolicyHit(policy: p.id, rule: p.labels[i], kind: "authorization", result: "dry_run_deny"), rank: Recorder.dryRunDeny)
                rec.notes.append("dry-run DENY \(p.id) rule \(i) would deny")
                trace?.add("policy: dry-run DENY \(p.id) rule \(i) matches (\(p.explanations[i])): would deny, not enforced")
            } else {
                trace?.add("policy: dry-run DENY \(p.id): no rule matches")
            }
        }
        if let (p, i) = firstMatch(deny, "DENY", program, a, &cache, trace) {
            trace?.add("policy: DENY \(p.id) rule \(i) matches (\(p.explanations[i])): denied")
            return .done(rec.verdict(refusedBy: PolicyHit(policy: p.id, rule: p.labels[i], kind: "authorization", result: "deny"),
                                     outcome: .deny(status: 403, message: Self.rbacDenied), grpcStatus: a.isGRPC ? 7 : nil))
        }

        // ALLOW: dry-run ALLOW policies are judged as a set of their own (Istio's shadow rules); then, if any
        // enforced ALLOW policy exists, one must match.
        if !dryRunAllow.isEmpty {
            if let (p, i) = firstMatch(dryRunAllow, "dry-run ALLOW", program, a, &cache, trace) {
                rec.record(PolicyHit(policy: p.id, rule: p.labels[i], kind: "authorization", result: "dry_run_allow"), rank: Recorder.dryRunAllow)
                rec.notes.append("dry-run ALLOW \(p.id) rule \(i) would allow")
                trace?.add("policy: dry-run ALLOW \(p.id) rule \(i) matches (\(p.explanations[i])): would allow, not enforced")
            } else {
                let name = dryRunAllow.count == 1 ? dryRunAllow.policies[0].id : "-"
                rec.record(PolicyHit(policy: name, rule: "-", kind: "authorization", result: "dry_run_deny"), rank: Recorder.dryRunDeny)
                rec.notes.append("dry-run ALLOW \(dryRunAllow.policies.map(\.id).joined(separator: ", ")): no rule matches, would deny")
                trace?.add("policy: dry-run ALLOW policies: none matches: would deny, not enforced")
            }
        }
        if !allow.isEmpty {
            if let (p, i) = firstMatch(allow, "ALLOW", program, a, &cache, trace) {
                rec.record(PolicyHit(policy: p.id, rule: p.labels[i], kind: "authorization", result: "allow"), rank: Recorder.allowedByPolicy)
                trace?.add("policy: ALLOW \(p.id) rule \(i) matches (\(p.explanations[i])): allowed")
            } else {
                trace?.add("policy: ALLOW policies exist and none matches: denied")
                return .done(rec.verdict(refusedBy: PolicyHit(policy: "-", rule: "-", kind: "authorization", result: "deny"),
                                         outcome: .deny(status: 403, message: Self.rbacDenied), grpcStatus: a.isGRPC ? 7 : nil))
            }
        } else if trace != nil && (!deny.isEmpty || !custom.isEmpty || !audit.isEmpty || !dryRunDeny.isEmpty || !dryRunAllow.isEmpty) {
            trace?.add("policy: no ALLOW policy: allowed by default")
        }

        // Rate limits.
        var best: RateLimitStatus?
        var entries: [GlobalEntry] = []
        var requests: [GlobalQuotaRequest] = []
        // Through the index, only the limits whose rules select the request are visited.
        let mask = trace == nil ? applicableLimits(program, a, &cache) : nil
        var pendingMask = mask ?? 0
        var next = 0
        while true {
            let n: Int
            if mask != nil {
                if pendingMask == 0 { break }
                n = pendingMask.trailingZeroBitCount
                pendingMask &= pendingMask - 1
            } else {
                if next >= rateLimits.count { break }
                n = next
                next += 1
                guard rateLimits[n].applies(program, a, &cache) else {
                    trace?.add("policy: RateLimitPolicy \(rateLimits[n].id): rules do not select this \(cache.isHTTP ? "request" : "connection")")
                    continue
                }
            }
            let rl = rateLimits[n]
            guard let (key, values, li) = rl.resolve(a, &cache) else {
                trace?.add("policy: RateLimitPolicy \(rl.id): a descriptor attribute (\(rl.policy.descriptors.map { "\($0.attribute)" }.joined(separator: ", "))) is absent: not limited")
                continue
            }
            let limit = rl.limits[li]
            if limit.unlimited {
                trace?.add("policy: RateLimitPolicy \(rl.id) \(limit.label) for \(rl.describe(key: key, values: values)): unlimited")
                continue
            }
            if rl.scope == .global {
                let quotaKey = rl.globalKey(limit, key: key, values: values)
                entries.append(GlobalEntry(policy: rl.id, rule: limit.label, shadow: rl.shadow, failureMode: rl.policy.failureMode, limit: limit.gcra,
                                           fallback: rl.limiter, fallbackLimit: limit.fallback, key: key))
                requests.append(GlobalQuotaRequest(key: quotaKey, limit: limit.gcra.limit, period: limit.gcra.period, burst: limit.gcra.burst))
                trace?.add("policy: RateLimitPolicy \(rl.id) (Global\(rl.shadow ? ", shadow" : "")) \(limit.label) for \(rl.describe(key: key, values: values)): \(limit.gcra), shared quota \(quotaKey)")
                continue
            }
            let d = trace == nil ? rl.limiter.take(key, limit: limit.gcra, now: now) : rl.limiter.peek(key, limit: limit.gcra, now: now)
            let status = d.status(limit.gcra)
            trace?.add("policy: RateLimitPolicy \(rl.id) (Local\(rl.shadow ? ", shadow" : "")) \(limit.label) for \(rl.describe(key: key, values: values)): \(limit.gcra): "
                + (d.allowed ? "allows, \(d.remaining) remaining" : "refuses, retry after \(Self.seconds(d.retryAfter))"))
            if d.allowed {
                if !rl.shadow && (best == nil || status.remaining < best!.remaining) { best = status }
                if rec.primary == nil { rec.recordIfNothing(PolicyHit(policy: rl.id, rule: limit.label, kind: "ratelimit", result: "allow")) }
            } else if rl.shadow {
                rec.record(PolicyHit(policy: rl.id, rule: limit.label, kind: "ratelimit", result: "shadow_rate_limited"), rank: Recorder.shadowRateLimited)
                rec.notes.append("shadow RateLimitPolicy \(rl.id) \(limit.label) would refuse \(rl.describe(key: key, values: values))")
            } else {
                var v = rec.verdict(refusedBy: PolicyHit(policy: rl.id, rule: limit.label, kind: "ratelimit", result: "rate_limited"),
                                    outcome: .rateLimited, grpcStatus: a.isGRPC ? 8 : nil)
                v.rateLimit = status
                v.decidedLocally = true
                return .done(v)
            }
        }
        var v = rec.verdict()
        v.rateLimit = best
        if entries.isEmpty { return .done(v) }
        return .needsGlobal(PendingGlobalCheck(requests: requests, entries: entries, partial: v, isGRPC: a.isGRPC))
    }

    /// Which rate limits (at most 64) select an HTTP request, through the index of their rules; nil: ask each.
    func applicableLimits(_ program: MatchProgram, _ a: some AttributeSource, _ cache: inout AttributeCache) -> UInt64? {
        guard let index = limitIndex, cache.isHTTP, rateLimits.count <= 64 else { return nil }
        let rules = limitRules
        return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: index.words) { bits -> UInt64 in
            index.candidates(bits, a, &cache)
            var mask = limitsWithoutRules
            for w in 0..<index.words {
                var word = bits[w]
                while word != 0 {
                    let bit = word.trailingZeroBitCount
                    word &= word - 1
                    let e = rules[w * 64 + bit]
                    let policyBit: UInt64 = 1 << UInt64(e.policy)
                    if mask & policyBit == 0 && program.matches(rule: Int(e.rule), a, &cache, tcp: .ruleNeverMatches) { mask |= policyBit }
                }
            }
            return mask
        }
    }

    /// The first matching rule of a group: through its index when checking, policy by policy with a line
    /// each when explaining.
    @inline(__always)
    func firstMatch(_ group: RuleGroup, _ action: String, _ program: MatchProgram, _ a: some AttributeSource, _ cache: inout AttributeCache,
                    _ trace: Trace?) -> (AuthzPolicy, Int)? {
        guard let trace else { return group.firstMatch(program, a, &cache).map { ($0.policy, $0.position) } }
        for p in group.policies {
            if let i = p.firstMatch(program, a, &cache) { return (p, i) }
            trace.add("policy: \(action) \(p.id): \(p.rules.isEmpty ? (action == "ALLOW" ? "no rules (allow-nothing)" : "no rules") : "no rule matches")")
        }
        return nil
    }

    static func seconds(_ ns: UInt64) -> String {
        let s = Double(ns) / 1e9
        return s >= 1 ? "\((s * 1000).rounded() / 1000)s" : "\((s * 1e6).rounded() / 1000)ms"
    }

    /// Finishes a check with the backend's answers (in the order of `pending.requests`; a missing answer
    /// counts as a backend failure). A backend failure is decided by the policy's failureMode and marks the
    /// verdict degraded: Local takes from the local fallback bucket, FailOpen allows, FailClosed answers
    /// 503. It never answers 429 by itself: only a bucket (shared, or the local fallback) refuses.
    public func complete(_ pending: PendingGlobalCheck, answers: [GlobalQuotaAnswer], now: UInt64) -> PolicyVerdict {
        var v = pending.partial
        var best = v.rateLimit
        var refused: (PolicyHit, RateLimitStatus, Bool)?
        var unavailable: PolicyHit?
        var degraded = false
        var rec = Recorder()
        if v.policy != "-" {
            rec.primary = PolicyHit(policy: v.policy, rule: v.rule, kind: v.kind, result: v.result)
            rec.rank = v.kind == "ratelimit" && v.result == "allow" ? 1 : Self.rank(of: v.result)
        }
        rec.hits = v.hits
        rec.notes = v.notes
        for (i, e) in pending.entries.enumerated() {
            let answer = i < answers.count ? answers[i] : .backendFailed(reason: "no answer")
            var decision: (allowed: Bool, status: RateLimitStatus, local: Bool)?
            switch answer {
            case .decided(let allowed, let remaining, let retryAfter, let reset):
                decision = (allowed, RateLimitStatus(limit: e.limit.limit, remaining: remaining, reset: reset, retryAfter: retryAfter, period: e.limit.period), false)
            case .backendFailed(let reason):
                degraded = true
                switch e.failureMode {
                case .failOpen:
                    rec.record(PolicyHit(policy: e.policy, rule: e.rule, kind: "ratelimit", result: "fail_open"), rank: Recorder.failOpen)
                    rec.notes.append("RateLimitPolicy \(e.policy) \(e.rule): backend failed (\(reason)): failing open")
                case .failClosed:
                    rec.notes.append("RateLimitPolicy \(e.policy) \(e.rule): backend failed (\(reason)): failing closed\(e.shadow ? " (shadow: not enforced)" : "")")
                    if e.shadow {
                        rec.record(PolicyHit(policy: e.policy, rule: e.rule, kind: "ratelimit", result: "shadow_unavailable"), rank: Recorder.shadowRateLimited)
                    } else if unavailable == nil {
                        unavailable = PolicyHit(policy: e.policy, rule: e.rule, kind: "ratelimit", result: "unavailable")
                    }
                case .local:
                    let d = e.fallback.take(e.key, limit: e.fallbackLimit, now: now)
                    rec.notes.append("RateLimitPolicy \(e.policy) \(e.rule): backend failed (\(reason)): local fallback \(e.fallbackLimit) \(d.allowed ? "allows" : "refuses")")
                    decision = (d.allowed, d.status(e.fallbackLimit), true)
                }
            }
            guard let decision else { continue }
            if decision.allowed {
                if !e.shadow && (best == nil || decision.status.remaining < best!.remaining) { best = decision.status }
                rec.recordIfNothing(PolicyHit(policy: e.policy, rule: e.rule, kind: "ratelimit", result: "allow"))
            } else if e.shadow {
                rec.record(PolicyHit(policy: e.policy, rule: e.rule, kind: "ratelimit", result: "shadow_rate_limited"), rank: Recorder.shadowRateLimited)
                rec.notes.append("shadow RateLimitPolicy \(e.policy) \(e.rule) would refuse")
            } else if refused == nil {
                refused = (PolicyHit(policy: e.policy, rule: e.rule, kind: "ratelimit", result: "rate_limited"), decision.status, decision.local)
            }
        }
        if let (hit, status, local) = refused {
            v = rec.verdict(refusedBy: hit, outcome: .rateLimited, grpcStatus: pending.isGRPC ? 8 : nil)
            v.rateLimit = status
            v.decidedLocally = local
        } else if let hit = unavailable {
            v = rec.verdict(refusedBy: hit, outcome: .unavailable, grpcStatus: pending.isGRPC ? 14 : nil)
        } else {
            v = rec.verdict()
            v.rateLimit = best
        }
        v.degraded = degraded
        return v
    }

    static func rank(of result: String) -> Int {
        switch result {
        case "shadow_rate_limited": return Recorder.shadowRateLimited
        case "dry_run_deny": return Recorder.dryRunDeny
        case "fail_open": return Recorder.failOpen
        case "audit": return Recorder.audit
        case "allow": return Recorder.allowedByPolicy
        default: return Recorder.dryRunAllow
        }
    }
}
