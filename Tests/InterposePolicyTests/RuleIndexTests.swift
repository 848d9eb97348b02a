import InterposeFlow
import Testing
@testable import InterposeConfig
@testable import InterposePolicy

/// The rule index finds the same first matching rule as trying every rule in order.
@Suite("Authorization: the rule index agrees with a linear scan")
struct RuleIndexTests {
    static let rules = """
    - when: [{key: "request.headers[x-tenant]", values: [acme, globex]}]
    - to: [{operation: {paths: ["/api/v1/*", /status]}}]
    - to: [{operation: {paths: ["/api/*"], methods: [POST]}}, {operation: {paths: [/login]}}]
    - to: [{operation: {paths: ["*.css"]}}]
    - when: [{key: "request.headers[x-tenant]", values: [acme], notValues: [acme]}]
    - to: [{operation: {paths: ["/api/v1/items"]}}]
    - from: [{source: {ipBlocks: [10.0.0.0/8]}}]
      to: [{operation: {paths: ["/internal/*"]}}]
    - when: [{key: request.path, values: [/exact]}]
    - to: [{operation: {paths: ["/users/{*}/orders"]}}]
    - to: [{operation: {paths: ["/api/v2/*"]}}, {operation: {methods: [PUT]}}]
    - when: [{key: "request.headers[x-user]", values: ["adm*"]}]
    - to: [{operation: {paths: [/]}}]
    - to: [{operation: {paths: ["/api*"]}}]
    - when: [{key: "request.query[v]", values: ["2"]}]
    """

    @Test func sameFirstMatchAsALinearScan() throws {
        let engine = makeEngine(authz("a", rules: Self.rules) + "---\n" + authz("b", rules: Self.rules))
        #expect(engine.allow.index != nil)
        #expect(engine.allow.index?.keyed.count == 3, "x-tenant, request.path and request.query[v] are filed by value")
        let paths = ["/", "/api", "/api/", "/api/v1", "/api/v1/items", "/api/v1/x", "/api/v2/y", "/apix", "/status", "/status/x", "/login",
                     "/a.css", "/internal/z", "/exact", "/users/7/orders", "/users//orders", "/other", ""]
        // A header sent twice reaches the rules as one comma-joined list: the index must file it by element, as the matcher reads it.
        let headerSets: [[String: String]] = [[:], ["x-tenant": "acme"], ["x-tenant": "globex"], ["x-tenant": "initech"], ["x-user": "admin"],
                                              ["x-tenant": "initech, acme"], ["x-tenant": "initech,globex"]]
        var tried = 0
        for path in paths {
            for method in ["GET", "POST", "PUT"] {
                for headers in headerSets {
                    for source in ["10.1.1.1", "192.0.2.1"] {
                        for q in [[:], ["v": "2"]] {
                            var r = Req.http(method, path, from: source, headers: headers)
                            r.query = q
                            var c1 = engine.program.cache(for: r)
                            let indexed = engine.allow.firstMatch(engine.program, r, &c1)
                            var c2 = engine.program.cache(for: r)
                            var linear: (String, Int)?
                            for p in engine.allow.policies {
                                if let i = p.firstMatch(engine.program, r, &c2) { linear = (p.id, i); break }
                            }
                            #expect(indexed?.policy.id == linear?.0 && indexed?.position == linear?.1, "\(method) \(path) \(headers) \(source) \(q)")
                            tried += 1
                        }
                    }
                }
            }
        }
        #expect(tried > 1000)
    }

    @Test func rateLimitSelectionAgreesWithALinearScan() throws {
        let specs = [
            "rules: [{to: [{operation: {paths: [\"/api/*\"]}}]}]", "rules: [{to: [{operation: {paths: [/login]}}]}, {when: [{key: request.method, values: [PUT]}]}]",
            "rules: [{when: [{key: \"request.headers[x-tenant]\", values: [acme]}]}]", "rules: [{to: [{operation: {methods: [POST]}}]}]",
            "descriptors: []", "rules: [{to: [{operation: {paths: [\"/api/v1/*\"]}}]}, {to: [{operation: {paths: [\"*.png\"]}}]}]",
            "rules: [{from: [{source: {ipBlocks: [10.0.0.0/8]}}]}]", "rules: [{to: [{operation: {paths: [/]}}]}]",
        ]
        let yaml = specs.enumerated().map { rateLimitYAML("l\($0.offset)", spec: $0.element + "\nlimit: {requestsPerUnit: 1000000}") }.joined(separator: "---\n")
        let engine = makeEngine(yaml)
        #expect(engine.limitIndex != nil)
        for path in ["/", "/api", "/api/v1/x", "/login", "/a.png", "/x"] {
            for method in ["GET", "POST", "PUT"] {
                for source in ["10.0.0.1", "192.0.2.1"] {
                    for headers in [[:], ["x-tenant": "acme"]] {
                        let r = Req.http(method, path, from: source, headers: headers)
                        var c1 = engine.program.cache(for: r)
                        let mask = try #require(engine.applicableLimits(engine.program, r, &c1))
                        var c2 = engine.program.cache(for: r)
                        for (n, rl) in engine.rateLimits.enumerated() {
                            #expect((mask & (1 << UInt64(n)) != 0) == rl.applies(engine.program, r, &c2), "\(rl.id) \(method) \(path) \(source) \(headers)")
                        }
                    }
                }
            }
        }
    }

    @Test func tcpConnectionsSkipTheIndex() {
        let engine = makeEngine(authz("d", action: "DENY", rules: Self.rules))
        // Every DENY rule with only HTTP fields matches a TCP connection (they are ignored), the first one wins.
        let v = engine.verdict(Req.tcp())
        #expect(v.policy == "shop/d" && v.rule == "0")
    }

    @Test func pathTrie() {
        let trie = PathTrie([(Array("/a/".utf8), true, 0), (Array("/a/b".utf8), false, 1), (Array("/".utf8), true, 2), (Array("/a/b".utf8), true, 3)])
        func found(_ path: String) -> [Int32] {
            var out: [Int32] = []
            var p = path
            p.withUTF8 { trie.collect($0) { out.append($0) } }
            return out.sorted()
        }
        #expect(found("/a/b") == [0, 1, 2, 3])
        #expect(found("/a/bc") == [0, 2, 3])
        #expect(found("/a") == [2])
        #expect(found("x") == [])
        #expect(found("") == [])
    }

    @Test func addressText() {
        for text in ["0.0.0.0", "1.2.3.4", "10.200.30.255", "255.255.255.255", "192.0.2.10"] {
            #expect(InterposePolicy.addressText(FlowAddress(text)!) == text)
        }
        #expect(InterposePolicy.addressText(FlowAddress("2001:db8::1")!) == "2001:db8::1")
    }

    @Test func theBenchmarkConfigLoadsAndItsRequestIsAllowedByTheLastRule() {
        let bundle = PolicyBenchmark.benchmarkConfig(authorizationRules: 100, rateLimits: 10)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.authorizationPolicies.reduce(0) { $0 + $1.rules.count } == 100 && bundle.rateLimitPolicies.count == 10)
        let engine = PolicyEngine.compile(bundle, lists: ValueListStore(), previous: nil)
        let v = engine.verdict(PolicyBenchmark.request(authorizationRules: 100))
        #expect(v.outcome == .allow && v.policy == "bench/bench-allow-8" && v.rule == "9")
        #expect(v.responseHeaders.count == 3)
    }
}
