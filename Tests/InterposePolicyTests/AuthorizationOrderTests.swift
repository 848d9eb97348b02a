import Testing
@testable import InterposeConfig
@testable import InterposePolicy

/// Istio's evaluation order and defaults: CUSTOM, then DENY, then ALLOW; AUDIT never decides; dry-run never enforces.
@Suite("Authorization: Istio's order and defaults")
struct AuthorizationOrderTests {
    @Test func noPolicyAllowsAndTheEngineIsEmpty() {
        let engine = makeEngine("")
        #expect(engine.isEmpty)
        #expect(PolicyEngine.empty.isEmpty)
        let v = engine.verdict(Req.http())
        #expect(v.outcome == .allow && v.policy == "-" && v.rule == "-" && v.kind == "-" && v.result == "allow")
        #expect(v.responseHeaders.isEmpty && v.httpStatus == nil)
    }

    @Test func withoutAnAllowPolicyWhatIsNotDeniedIsAllowed() {
        let engine = makeEngine(authz("deny-admin", action: "DENY", rules: "- to: [{operation: {paths: [\"/admin/*\"]}}]"))
        #expect(!engine.isEmpty)
        #expect(engine.allows(Req.http("GET", "/products")))
        let v = engine.verdict(Req.http("GET", "/admin/users"))
        #expect(v.outcome == .deny(status: 403, message: "RBAC: access denied"))
        #expect(v.policy == "shop/deny-admin" && v.rule == "0" && v.kind == "authorization" && v.result == "deny")
        #expect(v.httpStatus == 403 && v.responseBody == "RBAC: access denied")
        #expect(v.logFields == "policy=shop/deny-admin rule=0 kind=authorization result=deny")
    }

    @Test func allowPoliciesExistAndNoneMatchesDenies() {
        let engine = makeEngine([
            authz("reads", rules: "- to: [{operation: {methods: [GET]}}]"),
            authz("health", rules: "- to: [{operation: {paths: [/healthz]}}]"),
        ].joined(separator: "---\n"))
        let get = engine.verdict(Req.http("GET", "/x"))
        #expect(get.outcome == .allow && get.policy == "shop/reads" && get.rule == "0" && get.kind == "authorization" && get.result == "allow")
        #expect(engine.verdict(Req.http("POST", "/healthz")).policy == "shop/health")
        let post = engine.verdict(Req.http("POST", "/x"))
        #expect(post.outcome == .deny(status: 403, message: "RBAC: access denied"))
        #expect(post.policy == "-" && post.kind == "authorization" && post.result == "deny")
    }

    @Test func allowNothing() {
        // Istio's allow-nothing: an ALLOW policy without rules matches nothing; `spec: {}` is one (ALLOW is the default action).
        for yaml in [authz("allow-nothing", action: "ALLOW", rules: nil), authz("allow-nothing", action: nil, rules: nil)] {
            let engine = makeEngine(yaml)
            #expect(!engine.allows(Req.http()))
            #expect(!engine.allows(Req.tcp()))
        }
        // With another ALLOW policy, allow-nothing adds nothing and takes nothing away.
        let engine = makeEngine(authz("allow-nothing", rules: nil) + "---\n" + authz("reads", rules: "- to: [{operation: {methods: [GET]}}]"))
        #expect(engine.allows(Req.http("GET")))
        #expect(!engine.allows(Req.http("PUT")))
    }

    @Test func allowAllAndDenyAll() {
        #expect(makeEngine(authz("allow-all", rules: "- {}")).allows(Req.http("DELETE", "/anything")))
        let both = makeEngine(authz("allow-all", rules: "- {}") + "---\n" + authz("deny-all", action: "DENY", rules: "- {}"))
        let v = both.verdict(Req.http())
        #expect(v.outcome == .deny(status: 403, message: "RBAC: access denied") && v.policy == "shop/deny-all")
        #expect(!both.allows(Req.tcp()))
    }

    @Test func denyWinsOverAllow() {
        let engine = makeEngine(authz("allow-get", rules: "- to: [{operation: {methods: [GET]}}]") + "---\n"
            + authz("deny-secret", action: "DENY", rules: "- to: [{operation: {paths: [\"/secret*\"]}}]"))
        #expect(engine.allows(Req.http("GET", "/public")))
        #expect(engine.verdict(Req.http("GET", "/secret/x")).policy == "shop/deny-secret")
    }

    @Test func customComesFirstAndItsProviderDecides() {
        let yaml = [
            authz("allow-all", rules: "- {}"),
            authz("maintenance", action: "CUSTOM", provider: "kill-switch", rules: "- to: [{operation: {paths: [\"/legacy/*\"]}}]"),
            authz("deny-admin", action: "DENY", rules: "- to: [{operation: {paths: [\"/legacy/admin\"]}}]"),
            """
            apiVersion: interpose.dev/v1alpha1
            kind: Denier
            metadata: {name: kill-switch, namespace: shop}
            spec: {status: 503, message: down for maintenance}
            """,
        ].joined(separator: "---\n")
        let engine = makeEngine(yaml)
        let v = engine.verdict(Req.http("GET", "/legacy/admin"))
        #expect(v.outcome == .deny(status: 503, message: "down for maintenance"), "CUSTOM decides before DENY")
        #expect(v.policy == "shop/maintenance" && v.rule == "0" && v.kind == "denier" && v.result == "deny")
        #expect(v.grpcStatus == nil)
        #expect(engine.allows(Req.http("GET", "/new")), "the provider is asked only for requests the rules select")
        var grpc = Req.http("POST", "/legacy/x")
        grpc.isGRPC = true
        #expect(engine.verdict(grpc).grpcStatus == 14, "503 maps to UNAVAILABLE")
    }

    @Test func aCustomProviderThatAllowsHandsOnToDenyAndAllow() {
        let yaml = [
            authz("partners", action: "CUSTOM", provider: "partner-list", rules: "- {}"),
            authz("reads", rules: "- to: [{operation: {methods: [GET]}}]"),
            """
            apiVersion: interpose.dev/v1alpha1
            kind: ValueList
            metadata: {name: partner-list, namespace: shop}
            spec:
              entries: [acme, globex]
              check: {attribute: "request.headers[x-partner]"}
            """,
        ].joined(separator: "---\n")
        let engine = makeEngine(yaml)
        #expect(engine.allows(Req.http("GET", headers: ["x-partner": "acme"])))
        let post = engine.verdict(Req.http("POST", headers: ["x-partner": "acme"]))
        #expect(post.policy == "-" && post.outcome == .deny(status: 403, message: "RBAC: access denied"), "the list allowed, then no ALLOW matched")
        let stranger = engine.verdict(Req.http("GET", headers: ["x-partner": "initech"]))
        #expect(stranger.outcome == .deny(status: 403, message: "request.headers[x-partner] is not whitelisted"))
        #expect(stranger.policy == "shop/partners" && stranger.kind == "list")
    }

    @Test func auditNeverChangesTheDecision() {
        let audit = authz("audit-writes", action: "AUDIT", rules: "- to: [{operation: {methods: [POST, DELETE]}}]")
        let alone = makeEngine(audit)
        let post = alone.verdict(Req.http("POST"))
        #expect(post.outcome == .allow && post.result == "audit" && post.policy == "shop/audit-writes" && post.rule == "0")
        #expect(post.notes == ["AUDIT shop/audit-writes rule 0 matched"])
        #expect(alone.verdict(Req.http("GET")).result == "allow")

        let withDeny = makeEngine(audit + "---\n" + authz("no-delete", action: "DENY", rules: "- to: [{operation: {methods: [DELETE]}}]"))
        let delete = withDeny.verdict(Req.http("DELETE"))
        #expect(delete.outcome == .deny(status: 403, message: "RBAC: access denied") && delete.policy == "shop/no-delete")
        #expect(delete.hits == [PolicyHit(policy: "shop/audit-writes", rule: "0", kind: "authorization", result: "audit")], "the audit is still counted")

        let withAllow = makeEngine(audit + "---\n" + authz("reads", rules: "- to: [{operation: {methods: [GET]}}]"))
        #expect(!withAllow.allows(Req.http("POST")), "AUDIT is not an ALLOW")
    }

    @Test func dryRunDenyIsReportedNeverEnforced() {
        let engine = makeEngine(authz("trial", action: "DENY", annotations: ["istio.io/dry-run": "true"], rules: "- to: [{operation: {paths: [\"/old/*\"]}}]"))
        #expect(!engine.isEmpty)
        let v = engine.verdict(Req.http("GET", "/old/page"))
        #expect(v.outcome == .allow)
        #expect(v.result == "dry_run_deny" && v.policy == "shop/trial" && v.rule == "0")
        #expect(v.notes == ["dry-run DENY shop/trial rule 0 would deny"])
        #expect(engine.verdict(Req.http("GET", "/new")).result == "allow")
    }

    @Test func dryRunAllowIsJudgedOnItsOwnAndNeverEnforced() {
        // The only ALLOW policy is dry-run: nothing is enforced, so everything is allowed, and the report says
        // what the dry-run policy would do.
        let engine = makeEngine(authz("trial-reads", annotations: ["istio.io/dry-run": "true"], rules: "- to: [{operation: {methods: [GET]}}]"))
        let get = engine.verdict(Req.http("GET"))
        #expect(get.outcome == .allow && get.result == "dry_run_allow" && get.policy == "shop/trial-reads")
        let post = engine.verdict(Req.http("POST"))
        #expect(post.outcome == .allow && post.result == "dry_run_deny")
        #expect(post.notes == ["dry-run ALLOW shop/trial-reads: no rule matches, would deny"])
        // With an enforced ALLOW policy the enforced one decides and names the verdict.
        let mixed = makeEngine(authz("trial-reads", annotations: ["istio.io/dry-run": "true"], rules: "- to: [{operation: {methods: [GET]}}]")
            + "---\n" + authz("all", rules: "- {}"))
        let v = mixed.verdict(Req.http("GET"))
        #expect(v.policy == "shop/all" && v.result == "allow")
        #expect(v.hits == [PolicyHit(policy: "shop/trial-reads", rule: "0", kind: "authorization", result: "dry_run_allow")])
        #expect(!makeEngine(authz("x", annotations: ["istio.io/dry-run": "false"], rules: "- to: [{operation: {methods: [GET]}}]")).allows(Req.http("POST")),
                "dry-run false is enforced")
    }

    @Test func grpcDenialsCarryPermissionDenied() {
        let engine = makeEngine(authz("reads", rules: "- to: [{operation: {methods: [GET]}}]"))
        var r = Req.http("POST")
        r.isGRPC = true
        let v = engine.verdict(r)
        #expect(v.grpcStatus == 7 && v.httpStatus == 403)
    }

    @Test func policiesAreConsultedInNameOrderAndTheFirstMatchingRuleIsNamed() {
        let engine = makeEngine(authz("b-allow", namespace: "shop", rules: "- to: [{operation: {methods: [PUT]}}]\n- {}") + "---\n"
            + authz("a-allow", namespace: "shop", rules: "- to: [{operation: {methods: [GET]}}]"))
        #expect(engine.verdict(Req.http("GET")).policy == "shop/a-allow")
        let put = engine.verdict(Req.http("DELETE"))
        #expect(put.policy == "shop/b-allow" && put.rule == "1")
    }

    @Test func explainSaysWhyAndTakesNothing() {
        let yaml = authz("deny-admin", action: "DENY", rules: "- to: [{operation: {paths: [\"/admin/*\"]}}]") + "---\n"
            + authz("reads", rules: "- to: [{operation: {methods: [GET]}}]") + "---\n" + """
            apiVersion: interpose.dev/v1alpha1
            kind: RateLimitPolicy
            metadata: {name: one-per-second, namespace: shop}
            spec:
              limit: {requestsPerUnit: 1, unit: SECOND}
            """
        let engine = makeEngine(yaml)
        let lines = engine.explain(Req.http("GET", "/x"), now: 5 * second)
        #expect(lines.contains { $0.contains("DENY shop/deny-admin: no rule matches") }, "\(lines)")
        #expect(lines.contains { $0.contains("ALLOW shop/reads rule 0 matches") }, "\(lines)")
        #expect(lines.contains { $0.contains("RateLimitPolicy shop/one-per-second") && $0.contains("allows, 0 remaining") }, "\(lines)")
        #expect(lines.last?.contains("decision: allow") == true, "\(lines)")
        _ = engine.explain(Req.http("GET", "/x"), now: 5 * second)
        #expect(engine.allows(Req.http("GET", "/x"), now: 5 * second), "explain took nothing from the bucket")
        #expect(!engine.allows(Req.http("GET", "/x"), now: 5 * second))
        let denied = engine.explain(Req.http("GET", "/admin/x"), now: 5 * second)
        #expect(denied.last?.contains("deny 403") == true && denied.last?.contains("policy=shop/deny-admin rule=0") == true, "\(denied)")
        #expect(PolicyEngine.empty.explain(Req.http(), now: 0).count == 1)
    }
}
