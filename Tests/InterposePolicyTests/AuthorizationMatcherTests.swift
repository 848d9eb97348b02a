import InterposeFlow
import Testing
@testable import InterposePolicy

/// Every AuthorizationPolicy field and its not-form, through an ALLOW policy of one rule: the request is
/// allowed exactly when the rule matches.
@Suite("Authorization: every matcher field")
struct AuthorizationMatcherTests {
    @Test func principalsAndNotPrincipals() {
        var r = Req.http()
        r.sourcePrincipal = "cluster.local/ns/shop/sa/checkout"
        #expect(ruleEngine("- from: [{source: {principals: [cluster.local/ns/shop/sa/checkout]}}]").allows(r))
        #expect(ruleEngine("- from: [{source: {principals: [\"cluster.local/ns/shop/*\"]}}]").allows(r))
        #expect(ruleEngine("- from: [{source: {principals: [\"*/sa/checkout\"]}}]").allows(r))
        #expect(ruleEngine("- from: [{source: {principals: [\"*\"]}}]").allows(r))
        #expect(!ruleEngine("- from: [{source: {principals: [cluster.local/ns/shop/sa/cart]}}]").allows(r))
        #expect(!ruleEngine("- from: [{source: {notPrincipals: [\"cluster.local/ns/shop/*\"]}}]").allows(r))
        #expect(ruleEngine("- from: [{source: {notPrincipals: [cluster.local/ns/shop/sa/cart]}}]").allows(r))
        // No identity (plain text): principals never match, notPrincipals always do; `*` means authenticated.
        let plain = Req.http()
        #expect(!ruleEngine("- from: [{source: {principals: [\"*\"]}}]").allows(plain))
        #expect(ruleEngine("- from: [{source: {notPrincipals: [\"*\"]}}]").allows(plain))
    }

    @Test func requestPrincipalsNeverMatchWithoutJWT() {
        let r = Req.http()
        #expect(!ruleEngine("- from: [{source: {requestPrincipals: [\"*\"]}}]").allows(r))
        #expect(ruleEngine("- from: [{source: {notRequestPrincipals: [\"*\"]}}]").allows(r))
    }

    @Test func namespacesAndNotNamespaces() {
        var r = Req.http()
        r.sourceNamespace = "shop"
        #expect(ruleEngine("- from: [{source: {namespaces: [shop, web]}}]").allows(r))
        #expect(ruleEngine("- from: [{source: {namespaces: [\"sh*\"]}}]").allows(r))
        #expect(!ruleEngine("- from: [{source: {namespaces: [web]}}]").allows(r))
        #expect(!ruleEngine("- from: [{source: {notNamespaces: [shop]}}]").allows(r))
        #expect(ruleEngine("- from: [{source: {notNamespaces: [web]}}]").allows(r))
    }

    @Test func serviceAccountsComeFromThePrincipal() {
        var r = Req.http()
        r.sourcePrincipal = "cluster.local/ns/shop/sa/checkout"
        #expect(ruleEngine("- from: [{source: {serviceAccounts: [shop/checkout]}}]").allows(r))
        #expect(!ruleEngine("- from: [{source: {serviceAccounts: [shop/cart]}}]").allows(r))
        #expect(!ruleEngine("- from: [{source: {notServiceAccounts: [shop/checkout]}}]").allows(r))
        #expect(ruleEngine("- from: [{source: {notServiceAccounts: [web/checkout]}}]").allows(r))
    }

    @Test func ipBlocksAndNotIpBlocks() {
        let rule = "- from: [{source: {ipBlocks: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\"]}}]"
        #expect(ruleEngine(rule).allows(Req.http(from: "10.20.30.40")))
        #expect(ruleEngine(rule).allows(Req.http(from: "192.0.2.7")))
        #expect(!ruleEngine(rule).allows(Req.http(from: "192.0.2.8")))
        #expect(ruleEngine(rule).allows(Req.http(from: "2001:db8::1")))
        #expect(!ruleEngine(rule).allows(Req.http(from: "2001:db9::1")))
        let not = "- from: [{source: {notIpBlocks: [10.0.0.0/8]}}]"
        #expect(!ruleEngine(not).allows(Req.http(from: "10.1.1.1")))
        #expect(ruleEngine(not).allows(Req.http(from: "192.0.2.1")))
        // An IPv4 prefix never covers an IPv6 address and the other way round.
        #expect(!ruleEngine("- from: [{source: {ipBlocks: [0.0.0.0/0]}}]").allows(Req.http(from: "::1")))
        #expect(ruleEngine("- from: [{source: {ipBlocks: [\"::/0\"]}}]").allows(Req.http(from: "::1")))
    }

    @Test func remoteIpBlocksAreTheSourceAddress() {
        #expect(ruleEngine("- from: [{source: {remoteIpBlocks: [192.0.2.0/24]}}]").allows(Req.http(from: "192.0.2.99")))
        #expect(!ruleEngine("- from: [{source: {remoteIpBlocks: [198.51.100.0/24]}}]").allows(Req.http(from: "192.0.2.99")))
        #expect(!ruleEngine("- from: [{source: {notRemoteIpBlocks: [192.0.2.0/24]}}]").allows(Req.http(from: "192.0.2.99")))
        #expect(ruleEngine("- from: [{source: {notRemoteIpBlocks: [198.51.100.0/24]}}]").allows(Req.http(from: "192.0.2.99")))
    }

    @Test func hostsAreCaseInsensitiveAndTakePatterns() {
        var r = Req.http()
        r.requestHost = "API.Example.COM"
        #expect(ruleEngine("- to: [{operation: {hosts: [api.example.com]}}]").allows(r))
        #expect(ruleEngine("- to: [{operation: {hosts: [\"*.example.com\"]}}]").allows(r))
        #expect(ruleEngine("- to: [{operation: {hosts: [\"api.*\"]}}]").allows(r))
        #expect(!ruleEngine("- to: [{operation: {hosts: [www.example.com]}}]").allows(r))
        #expect(!ruleEngine("- to: [{operation: {notHosts: [\"*.EXAMPLE.com\"]}}]").allows(r))
        #expect(ruleEngine("- to: [{operation: {notHosts: [www.example.com]}}]").allows(r))
        // The Host header is compared as sent, port included (as Istio does).
        r.requestHost = "api.example.com:8080"
        #expect(!ruleEngine("- to: [{operation: {hosts: [api.example.com]}}]").allows(r))
        #expect(ruleEngine("- to: [{operation: {hosts: [\"api.example.com:*\"]}}]").allows(r))
    }

    @Test func portsAndNotPorts() {
        var r = Req.http()
        r.destinationPort = 9080
        #expect(ruleEngine("- to: [{operation: {ports: [\"9080\", \"8080\"]}}]").allows(r))
        #expect(!ruleEngine("- to: [{operation: {ports: [\"8080\"]}}]").allows(r))
        #expect(!ruleEngine("- to: [{operation: {notPorts: [\"9080\"]}}]").allows(r))
        #expect(ruleEngine("- to: [{operation: {notPorts: [\"8080\"]}}]").allows(r))
    }

    @Test func methodsAndNotMethodsAreCaseSensitive() {
        #expect(ruleEngine("- to: [{operation: {methods: [GET, HEAD]}}]").allows(Req.http("GET")))
        #expect(!ruleEngine("- to: [{operation: {methods: [get]}}]").allows(Req.http("GET")))
        #expect(!ruleEngine("- to: [{operation: {methods: [POST]}}]").allows(Req.http("GET")))
        #expect(!ruleEngine("- to: [{operation: {notMethods: [GET]}}]").allows(Req.http("GET")))
        #expect(ruleEngine("- to: [{operation: {notMethods: [POST]}}]").allows(Req.http("GET")))
    }

    @Test(arguments: [
        ("/api/v1/items", "/api/v1/items", true), ("/api/v1/items", "/api/v1", false), ("/api/v1/items", "/api/v1/items/", false),
        ("/api/*", "/api/v1/items", true), ("/api/*", "/api", false), ("/api*", "/api", true), ("/api/*", "/apix", false),
        ("*/info", "/a/b/info", true), ("*/info", "/a/b/information", false), ("*.png", "/img/x.png", true),
        ("*", "/anything", true), ("*", "/", true),
        ("/users/{*}/orders", "/users/42/orders", true), ("/users/{*}/orders", "/users//orders", false),
        ("/users/{*}/orders", "/users/4/2/orders", false), ("/static/{**}", "/static/a/b/c.css", true),
        ("/static/{**}", "/static", false), ("/static/{**}", "/static/", true), ("/static/{**}", "/staticx/a", false),
    ])
    func pathsExactPrefixSuffixPresenceAndTemplates(pattern: String, path: String, matches: Bool) {
        let engine = ruleEngine("- to: [{operation: {paths: [\"\(pattern)\"]}}]")
        #expect(engine.allows(Req.http("GET", path)) == matches, "\(pattern) vs \(path)")
        let not = ruleEngine("- to: [{operation: {notPaths: [\"\(pattern)\"]}}]")
        #expect(not.allows(Req.http("GET", path)) == !matches, "notPaths \(pattern) vs \(path)")
    }

    @Test func whenRequestHeaders() {
        let r = Req.http(headers: ["x-version": "v1", "x-empty": ""])
        #expect(ruleEngine("- when: [{key: \"request.headers[X-Version]\", values: [v1, v2]}]").allows(r))
        #expect(ruleEngine("- when: [{key: \"request.headers[x-version]\", values: [\"v*\"]}]").allows(r))
        #expect(!ruleEngine("- when: [{key: \"request.headers[x-version]\", values: [v2]}]").allows(r))
        #expect(!ruleEngine("- when: [{key: \"request.headers[x-version]\", notValues: [v1]}]").allows(r))
        #expect(ruleEngine("- when: [{key: \"request.headers[x-version]\", notValues: [v2]}]").allows(r))
        #expect(ruleEngine("- when: [{key: \"request.headers[x-version]\", values: [\"v*\"], notValues: [v2]}]").allows(r))
        // `*` is presence: a header sent empty is present; a missing header matches no value.
        #expect(ruleEngine("- when: [{key: \"request.headers[x-empty]\", values: [\"*\"]}]").allows(r))
        #expect(!ruleEngine("- when: [{key: \"request.headers[x-missing]\", values: [\"*\"]}]").allows(r))
        #expect(ruleEngine("- when: [{key: \"request.headers[x-missing]\", notValues: [v1]}]").allows(r))
    }

    /// A header sent twice reaches the engine comma-joined (RFC 9110); any element matching counts, as
    /// with Istio, so a second `x-user` value cannot hide behind a first one.
    @Test func repeatedHeaderValuesMatchElementByElement() {
        let repeated = Req.http(headers: ["x-user": "ok, evil"])
        #expect(ruleEngine("- when: [{key: \"request.headers[x-user]\", values: [evil]}]").allows(repeated))
        #expect(ruleEngine("- when: [{key: \"request.headers[x-user]\", values: [\"ev*\"]}]").allows(repeated))
        #expect(!ruleEngine("- when: [{key: \"request.headers[x-user]\", notValues: [evil]}]").allows(repeated))
        #expect(!ruleEngine("- when: [{key: \"request.headers[x-user]\", values: [vil]}]").allows(repeated))
        #expect(!ruleEngine("- when: [{key: \"request.headers[x-user]\", values: [evil]}]").allows(Req.http(headers: ["x-user": "ok"])))
    }

    @Test func whenConnectionAndSourceKeys() {
        var r = Req.http(from: "10.1.2.3")
        r.sourceNamespace = "web"
        r.sourcePrincipal = "cluster.local/ns/web/sa/frontend"
        r.destinationAddress = FlowAddress("10.96.0.20")
        r.destinationPort = 9080
        r.connectionSNI = "reviews.example.com"
        r.sourceLabels = ["app": "frontend"]
        r.destinationLabels = ["version": "v2"]
        r.query = ["debug": "1"]
        let cases: [(String, Bool)] = [
            ("{key: source.ip, values: [10.0.0.0/8]}", true), ("{key: source.ip, notValues: [10.0.0.0/8]}", false),
            ("{key: remote.ip, values: [10.1.2.3]}", true), ("{key: remote.ip, notValues: [10.1.2.3/32]}", false),
            ("{key: source.namespace, values: [web]}", true), ("{key: source.namespace, notValues: [web]}", false),
            ("{key: source.principal, values: [\"*/sa/frontend\"]}", true), ("{key: source.principal, notValues: [\"*\"]}", false),
            ("{key: source.serviceAccount, values: [web/frontend]}", true),
            ("{key: destination.ip, values: [10.96.0.0/12]}", true), ("{key: destination.ip, notValues: [10.96.0.0/12]}", false),
            ("{key: destination.port, values: [\"9080\"]}", true), ("{key: destination.port, notValues: [\"9080\"]}", false),
            ("{key: connection.sni, values: [\"*.example.com\"]}", true), ("{key: connection.sni, notValues: [reviews.example.com]}", false),
            ("{key: \"source.labels[app]\", values: [frontend]}", true), ("{key: \"source.labels[app]\", notValues: [frontend]}", false),
            ("{key: \"destination.labels[version]\", values: [v2]}", true), ("{key: \"destination.labels[version]\", values: [v1]}", false),
            ("{key: \"request.query[debug]\", values: [\"1\"]}", true), ("{key: \"request.query[debug]\", notValues: [\"1\"]}", false),
            ("{key: \"request.auth.claims[iss]\", values: [\"*\"]}", false), ("{key: request.auth.principal, notValues: [\"*\"]}", true),
        ]
        for (condition, expected) in cases {
            #expect(ruleEngine("- when: [\(condition)]").allows(r) == expected, "\(condition)")
        }
    }

    @Test func conjunctionsAndDisjunctions() {
        // Within a source, fields AND; sources OR; from, to and when AND; rules OR.
        let engine = ruleEngine("""
        - from: [{source: {ipBlocks: [10.0.0.0/8], notIpBlocks: [10.9.0.0/16]}}, {source: {namespaces: [web]}}]
          to: [{operation: {methods: [GET], paths: ["/api/*"]}}, {operation: {methods: [POST], paths: [/api/orders]}}]
          when: [{key: "request.headers[x-tenant]", values: [acme]}]
        - to: [{operation: {paths: [/healthz]}}]
        """)
        let tenant = ["x-tenant": "acme"]
        #expect(engine.allows(Req.http("GET", "/api/x", from: "10.1.1.1", headers: tenant)))
        #expect(!engine.allows(Req.http("GET", "/api/x", from: "10.9.1.1", headers: tenant)), "notIpBlocks within the same source")
        #expect(!engine.allows(Req.http("GET", "/api/x", from: "192.0.2.1", headers: tenant)), "no source matches")
        var web = Req.http("GET", "/api/x", from: "192.0.2.1", headers: tenant)
        web.sourceNamespace = "web"
        #expect(engine.allows(web), "the second source")
        #expect(engine.allows(Req.http("POST", "/api/orders", from: "10.1.1.1", headers: tenant)))
        #expect(!engine.allows(Req.http("POST", "/api/x", from: "10.1.1.1", headers: tenant)), "method and path must match in one operation")
        #expect(!engine.allows(Req.http("GET", "/api/x", from: "10.1.1.1")), "when must hold")
        #expect(engine.allows(Req.http("GET", "/healthz", from: "203.0.113.1")), "the second rule")
        #expect(engine.verdict(Req.http("GET", "/healthz")).rule == "1")
    }

    @Test func anEmptyRuleMatchesEverything() {
        #expect(ruleEngine("- {}").allows(Req.http("DELETE", "/x")))
        #expect(ruleEngine("- {}").allows(Req.tcp()))
    }

    @Test func tcpAllowRulesWithHTTPFieldsNeverMatch() {
        // Istio drops ALLOW rules that use HTTP-only fields from the TCP filter (a smaller allow).
        #expect(!ruleEngine("- to: [{operation: {methods: [GET]}}]").allows(Req.tcp()))
        #expect(!ruleEngine("- to: [{operation: {ports: [\"9080\"], paths: [\"*\"]}}]").allows(Req.tcp(port: 9080)))
        #expect(!ruleEngine("- when: [{key: \"request.headers[x]\", notValues: [a]}]").allows(Req.tcp()))
        #expect(ruleEngine("- to: [{operation: {ports: [\"9080\"]}}]").allows(Req.tcp(port: 9080)))
        #expect(ruleEngine("- from: [{source: {ipBlocks: [192.0.2.0/24]}}]").allows(Req.tcp(from: "192.0.2.3")))
    }

    @Test func tcpDenyRulesIgnoreHTTPFields() {
        // Istio leaves HTTP-only fields out of DENY rules on TCP (a wider deny): what remains decides.
        let deny = makeEngine(authz("no-get", action: "DENY", rules: "- to: [{operation: {methods: [GET]}}]"))
        #expect(!deny.allows(Req.tcp()), "a DENY of only HTTP fields denies every TCP connection")
        #expect(deny.allows(Req.http("POST")))
        let scoped = makeEngine(authz("no-admin", action: "DENY", rules: "- to: [{operation: {ports: [\"8080\"], paths: [\"/admin/*\"]}}]"))
        #expect(!scoped.allows(Req.tcp(port: 8080)))
        #expect(scoped.allows(Req.tcp(port: 9080)), "the port still decides")
        #expect(scoped.allows(Req.http("GET", "/public")))
    }
}
