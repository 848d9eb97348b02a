import Testing
@testable import InterposeConfig
@testable import InterposePolicy

func rateLimitYAML(_ name: String = "limit", spec: String) -> String {
    """
    apiVersion: interpose.dev/v1alpha1
    kind: RateLimitPolicy
    metadata: {name: \(name), namespace: shop}
    spec:
    \(spec.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))

    """
}

func headers(_ v: PolicyVerdict) -> [String: String] {
    Dictionary(v.responseHeaders, uniquingKeysWith: { a, _ in a })
}

/// GCRA arithmetic with an injected clock, and RateLimitPolicy: descriptors, overrides, shadow, Global.
@Suite("Rate limits: GCRA, descriptors, overrides, shadow, Global and failure modes")
struct RateLimitTests {
    @Test func gcraArithmetic() {
        let limit = GCRALimit(limit: 5, period: 1, burst: 4)
        #expect(limit.interval == 200_000_000 && limit.tolerance == 800_000_000)
        let t0: UInt64 = 50 * second
        var tat: UInt64?
        for expected in (0..<5).reversed() {
            let d = GCRA.decide(tat: tat, now: t0, limit: limit)
            #expect(d.allowed && d.remaining == expected && d.retryAfter == 0)
            #expect(d.reset == UInt64(5 - expected) * 200_000_000)
            tat = d.tat
        }
        let refused = GCRA.decide(tat: tat, now: t0, limit: limit)
        #expect(!refused.allowed && refused.remaining == 0)
        #expect(refused.retryAfter == 200_000_000, "one emission interval until the next request")
        #expect(refused.reset == second, "the whole quota is back one period after the burst")
        #expect(refused.tat == tat, "a refusal takes nothing")
        // One interval later one request passes, and only one.
        let later = GCRA.decide(tat: tat, now: t0 + 200_000_000, limit: limit)
        #expect(later.allowed && later.remaining == 0)
        #expect(!GCRA.decide(tat: later.tat, now: t0 + 200_000_000, limit: limit).allowed)
        // A whole period after the burst the quota is whole.
        let whole = GCRA.decide(tat: tat, now: t0 + second, limit: limit)
        #expect(whole.allowed && whole.remaining == 4)
        // Burst 0: strictly one request per interval.
        let strict = GCRALimit(limit: 2, period: 1, burst: 0)
        let first = GCRA.decide(tat: nil, now: t0, limit: strict)
        #expect(first.allowed && first.remaining == 0)
        #expect(!GCRA.decide(tat: first.tat, now: t0 + 499_999_999, limit: strict).allowed)
        #expect(GCRA.decide(tat: first.tat, now: t0 + 500_000_000, limit: strict).allowed)
        // Limit 0 refuses everything.
        #expect(!GCRA.decide(tat: nil, now: t0, limit: GCRALimit(limit: 0, period: 60, burst: 0)).allowed)
    }

    @Test func localLimitAllowsNThenRefusesWithHeadersThenRecovers() {
        let engine = makeEngine(rateLimitYAML(spec: "limit: {requestsPerUnit: 5, unit: SECOND}"))
        let t0: UInt64 = 100 * second
        for remaining in (0..<5).reversed() {
            let v = engine.verdict(Req.http(), now: t0)
            #expect(v.outcome == .allow)
            #expect(v.policy == "shop/limit" && v.rule == "default" && v.kind == "ratelimit" && v.result == "allow")
            #expect(headers(v) == ["x-ratelimit-limit": "5", "x-ratelimit-remaining": "\(remaining)", "x-ratelimit-reset": "1"])
        }
        let refused = engine.verdict(Req.http(), now: t0 + 1000)
        #expect(refused.outcome == .rateLimited && refused.httpStatus == 429 && refused.responseBody == "local_rate_limited")
        #expect(refused.policy == "shop/limit" && refused.rule == "default" && refused.kind == "ratelimit" && refused.result == "rate_limited")
        #expect(headers(refused) == ["x-ratelimit-limit": "5", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1", "retry-after": "1"])
        #expect(refused.responseHeaders.last?.0 == "retry-after")
        #expect(!refused.degraded && refused.decidedLocally)
        #expect(engine.verdict(Req.http(), now: t0 + second).outcome == .allow, "recovers after the window")
        #expect(headers(engine.verdict(Req.http(), now: t0 + 2 * second))["x-ratelimit-remaining"] == "4")
    }

    @Test func retryAfterAndResetRoundUp() {
        let engine = makeEngine(rateLimitYAML(spec: "limit: {requestsPerUnit: 2, unit: MINUTE, burst: 0}"))
        #expect(engine.allows(Req.http(), now: 10 * second))
        let v = engine.verdict(Req.http(), now: 10 * second + 1)
        #expect(v.outcome == .rateLimited)
        #expect(headers(v)["retry-after"] == "30" && headers(v)["x-ratelimit-reset"] == "30" && headers(v)["x-ratelimit-limit"] == "2")
        var grpc = Req.http()
        grpc.isGRPC = true
        #expect(engine.verdict(grpc, now: 10 * second + 2).grpcStatus == 8)
    }

    @Test func descriptorsKeepOneQuotaPerValueAndAbsentValuesAreNotLimited() {
        let engine = makeEngine(rateLimitYAML(spec: """
        descriptors: [{key: user, attribute: "request.headers[x-user]"}]
        limit: {requestsPerUnit: 1, unit: MINUTE}
        """))
        let now = 7 * second
        #expect(engine.allows(Req.http(headers: ["x-user": "alice"]), now: now))
        #expect(!engine.allows(Req.http(headers: ["x-user": "alice"]), now: now))
        #expect(engine.allows(Req.http(headers: ["x-user": "bob"]), now: now), "bob has his own quota")
        for _ in 0..<5 {
            let v = engine.verdict(Req.http(), now: now)
            #expect(v.outcome == .allow && v.rateLimit == nil, "no x-user: this policy does not limit the request (Envoy's rule)")
        }
    }

    @Test func severalDescriptorsAndOverrides() {
        let engine = makeEngine(rateLimitYAML(spec: """
        descriptors:
        - {key: user, attribute: "request.headers[x-user]"}
        - {key: path, attribute: request.path}
        limit: {requestsPerUnit: 1, unit: HOUR}
        overrides:
        - value: {user: batch}
          limit: {requestsPerUnit: 3, unit: HOUR}
        - value: {user: admin, path: /ops}
          limit: {unlimited: true}
        """))
        let now = 3 * second
        #expect(engine.allows(Req.http("GET", "/a", headers: ["x-user": "alice"]), now: now))
        #expect(!engine.allows(Req.http("GET", "/a", headers: ["x-user": "alice"]), now: now))
        #expect(engine.allows(Req.http("GET", "/b", headers: ["x-user": "alice"]), now: now), "another path is another descriptor value")
        for _ in 0..<3 {
            let v = engine.verdict(Req.http("GET", "/a", headers: ["x-user": "batch"]), now: now)
            #expect(v.outcome == .allow && v.rule == "override-0" && headers(v)["x-ratelimit-limit"] == "3")
        }
        let fourth = engine.verdict(Req.http("GET", "/a", headers: ["x-user": "batch"]), now: now)
        #expect(fourth.outcome == .rateLimited && fourth.rule == "override-0")
        for _ in 0..<10 { #expect(engine.allows(Req.http("GET", "/ops", headers: ["x-user": "admin"]), now: now)) }
        #expect(engine.allows(Req.http("GET", "/other", headers: ["x-user": "admin"]), now: now))
        #expect(!engine.allows(Req.http("GET", "/other", headers: ["x-user": "admin"]), now: now), "the override needs both values")
    }

    @Test func rulesSelectTheRequests() {
        let engine = makeEngine(rateLimitYAML(spec: """
        rules:
        - to: [{operation: {paths: ["/api/*"], methods: [POST]}}]
        - from: [{source: {ipBlocks: [203.0.113.0/24]}}]
        limit: {requestsPerUnit: 1, unit: DAY}
        """))
        #expect(engine.allows(Req.http("POST", "/api/x")))
        #expect(!engine.allows(Req.http("POST", "/api/y")), "one quota for every selected request")
        #expect(engine.allows(Req.http("GET", "/api/x")))
        #expect(engine.verdict(Req.http("GET", "/api/x")).rateLimit == nil, "not selected: no headers")
        #expect(!engine.allows(Req.tcp(from: "203.0.113.4")), "a connection selected by the L4 rule shares the quota")
        #expect(engine.allows(Req.tcp(from: "192.0.2.4")), "HTTP-only rules never select a TCP connection")
    }

    @Test func shadowModeCountsButNeverRefuses() {
        let engine = makeEngine(rateLimitYAML(spec: "shadow: true\nlimit: {requestsPerUnit: 2, unit: MINUTE}"))
        #expect(engine.verdict(Req.http()).result == "allow")
        #expect(engine.verdict(Req.http()).result == "allow")
        for _ in 0..<5 {
            let v = engine.verdict(Req.http())
            #expect(v.outcome == .allow && v.result == "shadow_rate_limited" && v.policy == "shop/limit")
            #expect(v.responseHeaders.isEmpty, "shadow limits are invisible to clients")
            #expect(v.notes.first?.contains("shadow RateLimitPolicy shop/limit default would refuse") == true)
        }
    }

    @Test func theMostConstrainedLimitFillsTheHeaders() {
        let engine = makeEngine(rateLimitYAML("a-wide", spec: "limit: {requestsPerUnit: 100, unit: SECOND}") + "---\n"
            + rateLimitYAML("b-narrow", spec: "limit: {requestsPerUnit: 3, unit: SECOND}"))
        let v = engine.verdict(Req.http())
        #expect(headers(v)["x-ratelimit-limit"] == "3" && headers(v)["x-ratelimit-remaining"] == "2")
    }

    static let globalYAML = rateLimitYAML("per-user", spec: """
    scope: Global
    failureMode: Local
    expectedProxies: 2
    descriptors: [{key: user, attribute: "request.headers[x-user]"}]
    limit: {requestsPerUnit: 10, unit: MINUTE}
    """)

    func pending(_ engine: PolicyEngine, _ r: Req, now: UInt64 = 9 * second) -> PendingGlobalCheck? {
        guard case .needsGlobal(let p) = engine.check(r, now: now) else {
            Issue.record("expected needsGlobal")
            return nil
        }
        return p
    }

    @Test func globalAsksTheBackendWithHashTaggedKeys() throws {
        let engine = makeEngine(Self.globalYAML)
        #expect(engine.hasGlobalLimits)
        let p = try #require(pending(engine, Req.http(headers: ["x-user": "al/ice{1}"])))
        #expect(p.requests == [GlobalQuotaRequest(key: "interpose:rl:{shop/per-user/default/al%2Fice%7B1%7D}", limit: 10, period: 60, burst: 9)])
        let allowed = engine.complete(p, answers: [.decided(allowed: true, remaining: 7, retryAfter: 0, reset: 18)], now: 9 * second)
        #expect(allowed.outcome == .allow && allowed.policy == "shop/per-user" && !allowed.degraded)
        #expect(headers(allowed) == ["x-ratelimit-limit": "10", "x-ratelimit-remaining": "7", "x-ratelimit-reset": "18"])
        let refused = engine.complete(p, answers: [.decided(allowed: false, remaining: 0, retryAfter: 5.5, reset: 60)], now: 9 * second)
        #expect(refused.outcome == .rateLimited && refused.responseBody == "rate_limited" && !refused.decidedLocally)
        #expect(headers(refused)["retry-after"] == "6" && headers(refused)["x-ratelimit-reset"] == "60")
        // Absent descriptor: nothing to ask.
        guard case .done(let v) = engine.check(Req.http(), now: 0) else { Issue.record("expected done"); return }
        #expect(v.outcome == .allow)
    }

    @Test func backendFailureWithFailureModeLocalUsesTheFallbackBucket() throws {
        let engine = makeEngine(Self.globalYAML)
        let r = Req.http(headers: ["x-user": "alice"])
        // The fallback allows 10 / 2 proxies = 5 per minute.
        for i in 0..<5 {
            let p = try #require(pending(engine, r))
            let v = engine.complete(p, answers: [.backendFailed(reason: "timeout")], now: 9 * second)
            #expect(v.outcome == .allow && v.degraded, "request \(i)")
            #expect(headers(v)["x-ratelimit-limit"] == "5")
            #expect(v.notes.contains { $0.contains("backend failed (timeout): local fallback") })
        }
        let p = try #require(pending(engine, r))
        let v = engine.complete(p, answers: [.backendFailed(reason: "timeout")], now: 9 * second)
        #expect(v.outcome == .rateLimited && v.degraded && v.decidedLocally, "the local fallback bucket is a real limit")
        #expect(engine.complete(p, answers: [], now: 9 * second).degraded, "a missing answer is a backend failure")
    }

    @Test func backendFailureWithFailOpenOrFailClosedIsNeverRateLimited() throws {
        for (mode, expected) in [("FailOpen", PolicyVerdict.Outcome.allow), ("FailClosed", .unavailable)] {
            let engine = makeEngine(rateLimitYAML(spec: "scope: Global\nfailureMode: \(mode)\nlimit: {requestsPerUnit: 1, unit: SECOND}"))
            var r = Req.http()
            r.isGRPC = true
            for _ in 0..<5 {
                let p = try #require(pending(engine, r))
                #expect(p.requests.first?.key == "interpose:rl:{shop/limit/default/}")
                let v = engine.complete(p, answers: [.backendFailed(reason: "connection refused")], now: 9 * second)
                #expect(v.outcome == expected && v.degraded, "\(mode)")
                #expect(v.outcome != .rateLimited)
                if expected == .unavailable {
                    #expect(v.httpStatus == 503 && v.grpcStatus == 14 && v.result == "unavailable" && v.kind == "ratelimit")
                } else {
                    #expect(v.result == "fail_open" && v.grpcStatus == nil)
                }
            }
        }
    }

    @Test func shadowGlobalNeverRefusesEvenWhenTheBackendFails() throws {
        let engine = makeEngine(rateLimitYAML(spec: "scope: Global\nfailureMode: FailClosed\nshadow: true\nlimit: {requestsPerUnit: 1, unit: SECOND}"))
        let p = try #require(pending(engine, Req.http()))
        #expect(engine.complete(p, answers: [.backendFailed(reason: "down")], now: 0).outcome == .allow)
        let v = engine.complete(p, answers: [.decided(allowed: false, remaining: 0, retryAfter: 1, reset: 1)], now: 0)
        #expect(v.outcome == .allow && v.result == "shadow_rate_limited")
    }

    @Test func localAndGlobalTogether() throws {
        let engine = makeEngine(Self.globalYAML + "---\n" + rateLimitYAML("local", spec: "limit: {requestsPerUnit: 1, unit: SECOND}"))
        let r = Req.http(headers: ["x-user": "alice"])
        let p = try #require(pending(engine, r, now: 0))
        #expect(p.requests.count == 1)
        let v = engine.complete(p, answers: [.decided(allowed: true, remaining: 8, retryAfter: 0, reset: 12)], now: 0)
        #expect(v.outcome == .allow && headers(v)["x-ratelimit-remaining"] == "0", "the local limit has fewer left")
        guard case .done(let refused) = engine.check(r, now: 1) else { Issue.record("a local refusal needs no backend"); return }
        #expect(refused.outcome == .rateLimited && refused.policy == "shop/local")
    }

    @Test func authorizationDenialsComeBeforeRateLimits() {
        let engine = makeEngine(authz("deny-all", action: "DENY", rules: "- {}") + "---\n" + Self.globalYAML)
        guard case .done(let v) = engine.check(Req.http(headers: ["x-user": "a"]), now: 0) else { Issue.record("expected done"); return }
        #expect(v.outcome == .deny(status: 403, message: "RBAC: access denied"))
    }

    @Test func aReloadKeepsTheBucketsOfUnchangedPolicies() {
        let yaml = rateLimitYAML(spec: "limit: {requestsPerUnit: 1, unit: MINUTE}")
        let first = makeEngine(yaml)
        #expect(first.allows(Req.http(), now: second))
        let same = makeEngine(yaml, previous: first)
        #expect(!same.allows(Req.http(), now: second), "the bucket survived the reload")
        let changed = makeEngine(rateLimitYAML(spec: "limit: {requestsPerUnit: 2, unit: MINUTE}"), previous: same)
        #expect(changed.allows(Req.http(), now: second), "a changed policy starts afresh")
    }

    @Test func zeroRequestsPerUnitRefusesEverything() {
        let engine = makeEngine(rateLimitYAML(spec: "limit: {requestsPerUnit: 0, unit: SECOND}"))
        #expect(engine.verdict(Req.http()).outcome == .rateLimited)
    }

    @Test func aFloodOfValuesIsBounded() {
        let limiter = LocalLimiter(maxKeys: 4)
        let limit = GCRALimit(limit: 1, period: 1, burst: 0)
        for i in 0..<4 { _ = limiter.take("k\(i)", limit: limit, now: 0) }
        #expect(limiter.keyCount == 4)
        _ = limiter.take("k9", limit: limit, now: 2 * second)
        #expect(limiter.keyCount == 1, "whole quotas are pruned when the map is full")
    }
}
