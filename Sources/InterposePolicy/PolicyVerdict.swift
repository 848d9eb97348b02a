import InterposeConfig

/// The numbers behind the `x-ratelimit-*` and `retry-after` headers of one rate limit.
public struct RateLimitStatus: Sendable, Equatable {
    /// Requests allowed per period (`requestsPerUnit`).
    public var limit: Int
    /// Requests still allowed right now.
    public var remaining: Int
    /// Seconds until the quota is whole again.
    public var reset: Double
    /// Seconds until one more request is allowed (0 when this one was allowed).
    public var retryAfter: Double
    /// The unit in seconds.
    public var period: Double
    public init(limit: Int, remaining: Int, reset: Double, retryAfter: Double, period: Double) {
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
        self.retryAfter = retryAfter
        self.period = period
    }
}

/// One policy that took part in a decision without being the one named by the verdict (an AUDIT match,
/// a dry-run result, a shadow limit, a limit that allowed...): for metrics by policy, rule and result.
public struct PolicyHit: Sendable, Equatable, CustomStringConvertible {
    public var policy: String
    public var rule: String
    public var kind: String
    public var result: String
    public init(policy: String, rule: String, kind: String, result: String) {
        self.policy = policy
        self.rule = rule
        self.kind = kind
        self.result = result
    }
    public var description: String { "policy=\(policy) rule=\(rule) kind=\(kind) result=\(result)" }
}

/// What the policy engine decided about one request or connection.
public struct PolicyVerdict: Sendable {
    public enum Outcome: Sendable, Equatable {
        case allow
        /// Authorization (403 `RBAC: access denied`), a list or a denier: answer `status` with `message`.
        case deny(status: Int, message: String)
        /// 429 with `retry-after` and `x-ratelimit-*`.
        case rateLimited
        /// 503: a Global limit with failureMode FailClosed could not reach its backend.
        case unavailable
    }

    public var outcome: Outcome
    /// `namespace/name` of the deciding resource, `-` when nothing decided.
    public var policy: String
    /// Rule index (authorization), `default` / `override-N` (rate limit), `-` if none.
    public var rule: String
    /// `authorization`, `list`, `denier`, `ratelimit` or `-`.
    public var kind: String
    /// Metric label: `allow`, `deny`, `rate_limited`, `unavailable`, `shadow_rate_limited`, `dry_run_deny`,
    /// `dry_run_allow`, `audit`, `fail_open`.
    public var result: String
    /// The rate limit whose numbers go in the `x-ratelimit-*` headers: the refusing one on 429, the one
    /// with the fewest requests remaining on an allowed request. Nil: no headers.
    public var rateLimit: RateLimitStatus?
    /// For gRPC requests: 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE (or a denier's own).
    public var grpcStatus: Int?
    /// A Global limit was decided by its failureMode because the backend failed.
    public var degraded: Bool
    /// The 429 was decided in this proxy (Local scope, or the Local fallback of a Global limit).
    public var decidedLocally: Bool
    /// Dry-run and audit matches, shadow decisions, backend failures, in words.
    public var notes: [String]
    /// The other policies that took part (for metrics); the verdict's own policy/rule/result is not repeated.
    public var hits: [PolicyHit]

    public init(outcome: Outcome = .allow, policy: String = "-", rule: String = "-", kind: String = "-", result: String = "allow") {
        self.outcome = outcome
        self.policy = policy
        self.rule = rule
        self.kind = kind
        self.result = result
        rateLimit = nil
        grpcStatus = nil
        degraded = false
        decidedLocally = false
        notes = []
        hits = []
    }

    /// Allowed, nothing consulted.
    public static let allow = PolicyVerdict()

    public var isAllowed: Bool { outcome == .allow }

    /// The HTTP status to answer instead of forwarding; nil when allowed.
    public var httpStatus: Int? {
        switch outcome {
        case .allow: return nil
        case .deny(let status, _): return status
        case .rateLimited: return 429
        case .unavailable: return 503
        }
    }

    /// The body of that answer: the denial's message, `local_rate_limited` (decided in this proxy, as Envoy's
    /// local rate limit says), `rate_limited` (decided by the shared quota), `rate limit unavailable` (503).
    public var responseBody: String? {
        switch outcome {
        case .allow: return nil
        case .deny(_, let message): return message
        case .rateLimited: return decidedLocally ? "local_rate_limited" : "rate_limited"
        case .unavailable: return "rate limit unavailable"
        }
    }

    /// Headers to add to the answer (on 429 with `retry-after`) or to the forwarded response of a rate-limited
    /// route: `x-ratelimit-limit` (requests per unit), `x-ratelimit-remaining`, `x-ratelimit-reset` (seconds,
    /// rounded up), `retry-after` (seconds, rounded up, at least 1). Built when read, not when checked.
    public var responseHeaders: [(String, String)] {
        guard let r = rateLimit else { return [] }
        var out = [("x-ratelimit-limit", String(r.limit)), ("x-ratelimit-remaining", String(max(0, r.remaining))),
                   ("x-ratelimit-reset", String(Int(r.reset.rounded(.up))))]
        if outcome == .rateLimited { out.append(("retry-after", String(max(1, Int(r.retryAfter.rounded(.up)))))) }
        return out
    }

    /// `policy=shop/deny-admin rule=0 kind=authorization result=deny`, for the access and debug logs.
    public var logFields: String {
        var s = "policy=\(policy) rule=\(rule) kind=\(kind) result=\(result)"
        if degraded { s += " degraded=true" }
        return s
    }
}

/// The answer of `PolicyEngine.check`: decided, or waiting for the shared quota.
public enum PolicyCheck: Sendable {
    case done(PolicyVerdict)
    /// Ask the backend for `pending.requests` (in order), then call `PolicyEngine.complete`.
    case needsGlobal(PendingGlobalCheck)
}

/// A check waiting for Global quota answers: the requests to send and what `complete` needs to finish.
public struct PendingGlobalCheck: Sendable {
    /// One per Global limit that applies, in the order `complete` expects the answers.
    public let requests: [GlobalQuotaRequest]
    let entries: [GlobalEntry]
    /// The verdict so far (authorization allowed; local limits taken).
    let partial: PolicyVerdict
    let isGRPC: Bool
}

/// How `complete` finishes one Global limit.
struct GlobalEntry: Sendable {
    let policy: String
    let rule: String
    let shadow: Bool
    let failureMode: RateLimitFailureMode
    let limit: GCRALimit
    /// The Local fallback (failureMode Local): its bucket and key.
    let fallback: LocalLimiter
    let fallbackLimit: GCRALimit
    let key: String
}

/// Maps an HTTP status to a gRPC status for gRPC requests (403 -> 7, 429 -> 8, 503 -> 14, ...).
public func grpcStatus(forHTTPStatus status: Int) -> Int {
    switch status {
    case 400: return 9 // FAILED_PRECONDITION (Mixer's mapping)
    case 401: return 16 // UNAUTHENTICATED
    case 403: return 7 // PERMISSION_DENIED
    case 404: return 12 // UNIMPLEMENTED
    case 429: return 8 // RESOURCE_EXHAUSTED
    case 502, 503, 504: return 14 // UNAVAILABLE
    default: return 2 // UNKNOWN
    }
}
