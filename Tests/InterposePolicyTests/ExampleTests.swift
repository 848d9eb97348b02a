import Foundation
import Testing
@testable import InterposeConfig
@testable import InterposePolicy

/// examples/policy/*.yaml load without errors and decide as their comments and docs/policy.md say.
@Suite("Policy: the shipped examples")
struct ExampleTests {
    func load(_ name: String, lists: ValueListStore = ValueListStore()) throws -> PolicyEngine {
        let bundle = try ConfigLoader.load(path: (examplesDirectory as NSString).appendingPathComponent(name))
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.warnings.isEmpty, "\(bundle.summary)")
        return PolicyEngine.compile(bundle, lists: lists, previous: nil)
    }

    @Test func theDirectoryLoadsAsOneConfig() throws {
        let bundle = try ConfigLoader.load(path: examplesDirectory)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.authorizationPolicies.count == 7 && bundle.valueLists.count == 2 && bundle.deniers.count == 1 && bundle.rateLimitPolicies.count == 3)
    }

    @Test func authorization() throws {
        let engine = try load("authorization.yaml")
        let reads = engine.verdict(Req.http("GET", "/products", from: "192.0.2.10"))
        #expect(reads.outcome == .allow && reads.policy == "shop/allow-reads" && reads.rule == "0")

        let internalPost = engine.verdict(Req.http("POST", "/api/orders", from: "10.1.2.3"))
        #expect(internalPost.outcome == .allow && internalPost.result == "audit" && internalPost.policy == "shop/audit-writes")
        #expect(internalPost.hits == [PolicyHit(policy: "shop/allow-reads", rule: "1", kind: "authorization", result: "allow")])

        let externalPost = engine.verdict(Req.http("POST", "/api/orders", from: "192.0.2.10"))
        #expect(externalPost.outcome == .deny(status: 403, message: "RBAC: access denied") && externalPost.policy == "-")

        let admin = engine.verdict(Req.http("GET", "/admin/stats", from: "192.0.2.10"))
        #expect(admin.outcome == .deny(status: 403, message: "RBAC: access denied") && admin.policy == "shop/deny-admin" && admin.rule == "0")
        #expect(engine.allows(Req.http("GET", "/admin/stats", from: "10.1.2.3")))

        let curl = engine.verdict(Req.http("GET", "/products", headers: ["user-agent": "curl/8.5.0"]))
        #expect(curl.outcome == .allow && curl.result == "dry_run_deny" && curl.policy == "shop/trial-deny-curl")

        let internalTCP = engine.verdict(Req.tcp(from: "10.1.2.3"))
        #expect(internalTCP.outcome == .deny(status: 403, message: "RBAC: access denied") && internalTCP.policy == "-")
        #expect(engine.verdict(Req.tcp(from: "192.0.2.10")).policy == "shop/deny-admin")
    }

    @Test func lists() throws {
        let store = ValueListStore()
        let engine = try load("lists.yaml", lists: store)
        let bad = engine.verdict(Req.http("GET", "/products", from: "203.0.113.50"))
        #expect(bad.outcome == .deny(status: 403, message: "source.ip is blacklisted") && bad.policy == "shop/block-bad-ips" && bad.kind == "list")
        #expect(!engine.allows(Req.tcp(from: "203.0.113.50")))
        #expect(engine.allows(Req.http("GET", "/partner/catalog", headers: ["x-partner": "ACME"])))
        #expect(engine.verdict(Req.http("GET", "/partner/catalog")).outcome == .deny(status: 403, message: "unknown partner"))
        let legacy = engine.verdict(Req.http("GET", "/legacy/report"))
        #expect(legacy.outcome == .deny(status: 503, message: "legacy API retired") && legacy.policy == "shop/retire-legacy" && legacy.kind == "denier")
        #expect(engine.allows(Req.http("GET", "/products", from: "192.0.2.10")))

        let bundle = try ConfigLoader.load(path: (examplesDirectory as NSString).appendingPathComponent("lists.yaml"))
        #expect(store.sources(of: bundle) == [ValueListSource(list: "shop/bad-ips", file: nil, url: "http://lists.internal.example/bad-ips.txt", refreshInterval: 300)])
        #expect(store.update("shop/bad-ips", entries: ["192.0.2.66"]) == .success(3))
        #expect(!engine.allows(Req.http("GET", "/products", from: "192.0.2.66")))
    }

    /// Answers the Global request (shop/per-client) with `answer`.
    func decide(_ engine: PolicyEngine, _ r: Req, now: UInt64, answer: GlobalQuotaAnswer = .decided(allowed: true, remaining: 999, retryAfter: 0, reset: 0.06)) -> PolicyVerdict {
        switch engine.check(r, now: now) {
        case .done(let v): return v
        case .needsGlobal(let p):
            #expect(p.requests.map(\.key) == ["interpose:rl:{shop/per-client/default/\(r.sourceAddress!)}"])
            #expect(p.requests.first?.limit == 1000 && p.requests.first?.period == 60 && p.requests.first?.burst == 999)
            return engine.complete(p, answers: [answer], now: now)
        }
    }

    @Test func rateLimits() throws {
        let engine = try load("ratelimits.yaml")
        let now = 1000 * second
        let alice = Req.http("POST", "/api/orders", headers: ["x-user": "alice"])
        for remaining in (0..<10).reversed() {
            let v = decide(engine, alice, now: now)
            #expect(v.outcome == .allow && headers(v)["x-ratelimit-remaining"] == "\(remaining)" && headers(v)["x-ratelimit-limit"] == "10")
        }
        let eleventh = decide(engine, alice, now: now)
        #expect(eleventh.outcome == .rateLimited && eleventh.responseBody == "local_rate_limited" && headers(eleventh)["retry-after"] == "6")
        #expect(eleventh.policy == "shop/per-user" && eleventh.rule == "default")

        let batch = decide(engine, Req.http("POST", "/api/orders", headers: ["x-user": "batch"]), now: now)
        #expect(batch.rule == "override-0" && headers(batch)["x-ratelimit-limit"] == "100")
        for _ in 0..<20 { #expect(decide(engine, Req.http("POST", "/api/orders"), now: now).outcome == .allow, "no x-user: not limited by per-user") }

        // Redis down: a local bucket of 250 per minute per address decides.
        let client = Req.http("GET", "/products", from: "198.51.100.9")
        for _ in 0..<250 {
            #expect(decide(engine, client, now: now, answer: .backendFailed(reason: "timeout")).outcome == .allow)
        }
        let over = decide(engine, client, now: now, answer: .backendFailed(reason: "timeout"))
        #expect(over.outcome == .rateLimited && over.degraded && over.policy == "shop/per-client")

        for i in 0..<8 {
            let v = decide(engine, Req.http("GET", "/search", from: "192.0.2.77"), now: now)
            #expect(v.outcome == .allow)
            #expect(v.result == (i < 5 ? "allow" : "shadow_rate_limited"))
        }
    }
}
