import InterposeConfig
import InterposeRouting
import Testing

@Suite("Routing: DestinationRule policy in clusters")
struct RoutingPolicyTests {
    static let yaml = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: reviews, namespace: shop}
    spec:
      hosts: [reviews.shop]
      ports:
      - {number: 9080, name: http, protocol: HTTP}
      - {number: 9443, name: grpc, protocol: GRPC}
      resolution: STATIC
      endpoints:
      - {address: 10.0.0.1, labels: {version: v1}}
      - {address: 10.0.0.2, labels: {version: v2}}
      - {address: 10.0.0.3, labels: {version: v3}}
      - {address: 10.0.0.4, labels: {version: v4}}
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: plain, namespace: shop}
    spec:
      hosts: [plain.shop]
      ports: [{number: 80, name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints: [{address: 10.0.9.1}]
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews, namespace: shop}
    spec:
      host: reviews.shop
      trafficPolicy:
        loadBalancer: {simple: ROUND_ROBIN}
        connectionPool:
          tcp: {connectTimeout: 1s}
          http: {maxRequestsPerConnection: 1, idleTimeout: 30s}
        portLevelSettings:
        - port: {number: 9443}
          loadBalancer: {simple: RANDOM}
      subsets:
      - name: v1
        labels: {version: v1}
        trafficPolicy:
          loadBalancer:
            consistentHash: {httpHeaderName: x-user}
      - name: v2
        labels: {version: v2}
        trafficPolicy:
          loadBalancer:
            consistentHash:
              httpCookie: {name: sticky, ttl: 10s}
              maglev: {}
          connectionPool:
            tcp: {connectTimeout: 3s}
          portLevelSettings:
          - port: {number: 9080}
            loadBalancer: {simple: RANDOM}
      - name: v3
        labels: {version: v3}
      - name: v4
        labels: {version: v4}
        trafficPolicy:
          loadBalancer: {simple: PASSTHROUGH}
    """
    let table = routingTable(yaml)

    func cluster(_ subset: String?, _ port: UInt16, host: String = "reviews.shop") -> Cluster? {
        table.clusters[ClusterKey(host: host, subset: subset, port: port)]
    }

    @Test func ruleLevel() throws {
        let c = try #require(cluster(nil, 9080))
        #expect(c.loadBalancer == .roundRobin)
        #expect(c.connectTimeout == 1)
        #expect(c.maxRequestsPerConnection == 1)
        #expect(c.idleTimeout == 30)
    }

    @Test func rulePortLevelReplacesTheRuleAndDoesNotInherit() throws {
        let c = try #require(cluster(nil, 9443))
        #expect(c.loadBalancer == .random)
        // Port-level settings do not inherit: no connectionPool there means the defaults.
        #expect(c.connectTimeout == TableCompiler.defaultConnectTimeout)
        #expect(c.maxRequestsPerConnection == nil)
        #expect(c.idleTimeout == TableCompiler.defaultIdleTimeout)
    }

    @Test func subsetOverridesFieldByField() throws {
        let v1 = try #require(cluster("v1", 9080))
        #expect(v1.loadBalancer == .consistentHash(.header("x-user"), ringSize: nil, maglev: false))
        #expect(v1.connectTimeout == 1, "the subset sets no connection pool: the rule's applies")
        let v1grpc = try #require(cluster("v1", 9443))
        #expect(v1grpc.loadBalancer == .consistentHash(.header("x-user"), ringSize: nil, maglev: false), "subset beats rule port level")
        #expect(v1grpc.connectTimeout == TableCompiler.defaultConnectTimeout, "the rule's port level (no pool) is what the subset merges into")
    }

    @Test func subsetPortLevelBeatsEverything() throws {
        let v2 = try #require(cluster("v2", 9080))
        #expect(v2.loadBalancer == .random)
        #expect(v2.connectTimeout == TableCompiler.defaultConnectTimeout, "subset port level does not inherit the subset's 3 s")
        let v2grpc = try #require(cluster("v2", 9443))
        #expect(v2grpc.loadBalancer == .consistentHash(.cookie(name: "sticky", path: nil, ttl: 10), ringSize: nil, maglev: true))
        #expect(v2grpc.connectTimeout == 3)
    }

    @Test func subsetWithoutPolicyUsesTheRule() throws {
        #expect(cluster("v3", 9080)?.loadBalancer == .roundRobin)
        #expect(cluster("v3", 9080)?.connectTimeout == 1)
        #expect(cluster("v3", 9443)?.loadBalancer == .random)
        #expect(cluster("v3", 9080)?.endpoints.map(\.address) == ["10.0.0.3"])
    }

    @Test func passthroughGoesToTheOriginalDestination() throws {
        let v4 = try #require(cluster("v4", 9080))
        #expect(v4.loadBalancer == .passthrough)
        #expect(v4.usesOriginalDestination)
        #expect(cluster("v3", 9080)?.usesOriginalDestination == false)
    }

    @Test func noRuleMeansIstioDefaults() throws {
        let c = try #require(cluster(nil, 80, host: "plain.shop"))
        #expect(c.loadBalancer == .leastRequest)
        #expect(c.connectTimeout == 10)
        #expect(c.idleTimeout == 3600)
        #expect(c.maxRequestsPerConnection == nil)
        #expect(table.clusters.keys.filter { $0.host == "plain.shop" }.count == 1)
    }

    @Test func wildcardRulesApplyByLongestSuffix() {
        let table = routingTable("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: ext}
        spec:
          hosts: [api.example.com, x.eu.example.com, other.org]
          ports: [{number: 443, name: https, protocol: TLS}]
          resolution: DNS
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: everything}
        spec:
          host: "*"
          trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: example}
        spec:
          host: "*.example.com"
          trafficPolicy: {loadBalancer: {simple: RANDOM}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: eu}
        spec:
          host: "*.eu.example.com"
          trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
        """)
        func lb(_ host: String) -> LoadBalancerSetting? { table.clusters[ClusterKey(host: host, subset: nil, port: 443)]?.loadBalancer }
        #expect(lb("api.example.com") == .random)
        #expect(lb("x.eu.example.com") == .consistentHash(.sourceIP, ringSize: nil, maglev: false))
        #expect(lb("other.org") == .roundRobin)
        #expect(table.clusters[ClusterKey(host: "other.org", subset: nil, port: 443)]?.isHTTP == false)
    }
}

@Suite("Routing: endpoints and resolution")
struct RoutingEndpointTests {
    @Test func dnsServiceWithoutEndpointsResolvesItsHost() throws {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: httpbin}
        spec:
          hosts: [httpbin.org]
          ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
          resolution: DNS
        """
        var bundle = ConfigBundle()
        ConfigLoader.load(text: yaml, file: "dns.yaml", into: &bundle)
        #expect(TableCompiler.namesToResolve(bundle) == ["httpbin.org"])
        let table = TableCompiler.compile(bundle, generation: 3, resolved: ["httpbin.org": ["1.2.3.4", "2001:db8::1"]])
        #expect(table.generation == 3)
        let c = try #require(table.clusters[ClusterKey(host: "httpbin.org", subset: nil, port: 80)])
        #expect(c.endpoints.map(\.description) == ["1.2.3.4:8080", "[2001:db8::1]:8080"])
        #expect(c.usesOriginalDestination == false)
    }

    @Test func dnsServiceWithEndpointsResolvesTheEndpointNames() throws {
        let yaml = """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: backends}
        spec:
          hosts: [api.internal]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: DNS
          endpoints:
          - {address: a.backend.internal, labels: {zone: a}, ports: {http: 8081}}
          - {address: b.backend.internal, labels: {zone: b}, weight: 2}
          - {address: 10.9.0.9, labels: {zone: c}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: backends}
        spec:
          host: api.internal
          subsets: [{name: zone-b, labels: {zone: b}}]
        """
        var bundle = ConfigBundle()
        ConfigLoader.load(text: yaml, file: "dns.yaml", into: &bundle)
        #expect(bundle.errors.isEmpty)
        #expect(TableCompiler.namesToResolve(bundle) == ["a.backend.internal", "b.backend.internal"])
        let table = TableCompiler.compile(bundle, generation: 1, resolved: [
            "a.backend.internal": ["10.8.0.1"],
            "b.backend.internal": ["10.8.0.2", "10.8.0.3"],
            "api.internal": ["10.7.7.7"],
        ])
        let all = try #require(table.clusters[ClusterKey(host: "api.internal", subset: nil, port: 80)])
        #expect(all.endpoints.map(\.description) == ["10.8.0.1:8081", "10.8.0.2:80", "10.8.0.3:80", "10.9.0.9:80"],
                "the endpoints' names are resolved, not the service host")
        #expect(all.endpoints.map(\.weight) == [1, 2, 2, 1])
        let zoneB = try #require(table.clusters[ClusterKey(host: "api.internal", subset: "zone-b", port: 80)])
        #expect(zoneB.endpoints.map(\.description) == ["10.8.0.2:80", "10.8.0.3:80"])
    }

    @Test func unresolvedNamesHaveNoEndpointsYet() {
        let table = routingTable("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: later}
        spec:
          hosts: [later.example.com]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: DNS_ROUND_ROBIN
        """)
        #expect(table.clusters[ClusterKey(host: "later.example.com", subset: nil, port: 80)]?.endpoints.isEmpty == true)
    }

    @Test func firstServiceEntryForAHostWins() {
        let table = routingTable(
            serviceEntry("first", host: "dup.svc", address: "10.4.0.1") + serviceEntry("second", host: "dup.svc", address: "10.4.0.2"))
        #expect(table.clusters[ClusterKey(host: "dup.svc", subset: nil, port: 80)]?.endpoints.map(\.address) == ["10.4.0.1"])
        #expect(table.service(forHost: "DUP.svc:80")?.host == "dup.svc")
    }

    @Test func ipLiterals() {
        #expect(isIPLiteral("10.0.0.1"))
        #expect(isIPLiteral("::1"))
        #expect(isIPLiteral("2001:db8::ff00:42:8329"))
        #expect(isIPLiteral("::ffff:10.0.0.1"))
        #expect(!isIPLiteral("10.0.0"))
        #expect(!isIPLiteral("10.0.0.256"))
        #expect(!isIPLiteral("api.internal"))
        #expect(!isIPLiteral("dead:beef"))
        #expect(!isIPLiteral("1:2:3:4:5:6:7:8:9"))
    }
}
