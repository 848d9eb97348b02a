import Foundation
@testable import InterposeConfig
import InterposeRouting
import Testing

/// Bookinfo outside Kubernetes: reviews v1/v2/v3 as STATIC endpoints, ratings behind a VIP, httpbin by DNS.
let bookinfoYAML = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  addresses: [240.0.0.10]
  ports:
  - {number: 9080, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9443, name: grpc, protocol: GRPC}
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}, ports: {http: 9090}, weight: 3}
  - {address: 10.0.0.3, labels: {version: v2}}
  - {address: 10.0.0.4, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings.shop.svc.cluster.local]
  addresses: [240.0.1.0/24]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.1.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: ext}
spec:
  hosts: [httpbin.org]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews.shop.svc.cluster.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - name: jason
    match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v2}
    headers:
      request:
        set: {x-route: jason}
      response:
        remove: [server]
  - name: api
    match:
    - uri: {prefix: /api/v1}
      ignoreUriCase: true
    rewrite: {uri: /v2, authority: reviews.internal}
    route:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v3}
      headers:
        request:
          add: {x-dest: v3}
    timeout: 2s
  - name: login
    match:
    - uri: {exact: /login}
    rewrite: {uri: /auth/login}
    route:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
  - name: service-regex
    match:
    - uri: {regex: "/service/[^/]+/.*"}
    rewrite:
      uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: '\\2/instance/\\1'}
    route:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
  - name: split
    route:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
      weight: 90
    - destination: {host: reviews.shop.svc.cluster.local, subset: v2}
      weight: 10
    mirror: {host: httpbin.org}
    mirrorPercentage: {value: 12.5}
    mirrors:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v3}
      percentage: {value: 50}
    - destination: {host: not-a-service.example}
"""

@Suite("Routing: requests through the bookinfo table")
struct RoutingBookinfoTests {
    let table = routingTable(bookinfoYAML)
    let reviews = "reviews.shop.svc.cluster.local"

    @Test func headerRouteSendsJasonToV2() throws {
        let jason = try #require(route(table, host: reviews, headers: ["End-User": "jason"], port: 9080).plan)
        #expect(jason.cluster.key.description == "outbound|9080|v2|reviews.shop.svc.cluster.local")
        #expect(jason.destination == Destination(host: reviews, subset: "v2"))
        #expect(jason.virtualService == "reviews")
        #expect(jason.route == "jason")
        #expect(jason.requestHeaders.first?.set.map(\.0) == ["x-route"])
        #expect(jason.responseHeaders.first?.remove == ["server"])
        #expect(jason.mirrors.isEmpty)
        #expect(jason.timeout == nil)

        // Header values are case-sensitive; anyone else falls through to the split.
        let other = try #require(route(table, host: reviews, headers: ["end-user": "Jason"], port: 9080).plan)
        #expect(other.route == "split")
    }

    @Test func weightedSplitIsNinetyTenWithinTwoPercent() {
        var rng = SplitMix64(seed: 2024)
        var counts: [String: Int] = [:]
        let n = 10_000
        for _ in 0..<n {
            let d = route(table, host: reviews, path: "/reviews/1", port: 9080, rng: &rng)
            counts[d.plan?.destination.subset ?? "none", default: 0] += 1
        }
        #expect(Set(counts.keys) == ["v1", "v2"])
        #expect(abs(fraction(counts["v1", default: 0], of: n) - 0.90) <= 0.02, "\(counts)")
        #expect(abs(fraction(counts["v2", default: 0], of: n) - 0.10) <= 0.02, "\(counts)")
    }

    @Test func mirrorsResolveToClustersWithTheirPercent() throws {
        let (decision, trace) = explain(table, host: reviews, path: "/x", port: 9080)
        let plan = try #require(decision.plan)
        #expect(plan.mirrors.map(\.cluster.key.description) == ["outbound|80||httpbin.org", "outbound|9080|v3|reviews.shop.svc.cluster.local"])
        #expect(plan.mirrors.map(\.percent) == [12.5, 50])
        #expect(trace.lines.contains("mirror to not-a-service.example skipped: not a known service"), "\(trace.lines)")
    }

    @Test func prefixRewriteSwapsTheMatchedPrefixAndKeepsTheQuery() throws {
        let plan = try #require(route(table, host: reviews, path: "/api/v1/users?id=3", port: 9080).plan)
        #expect(plan.route == "api")
        #expect(plan.cluster.key.subset == "v3")
        #expect(plan.matchedPrefix == "/api/v1")
        #expect(plan.rewrite?.authority == "reviews.internal")
        #expect(plan.rewrittenPath("/api/v1/users?id=3") == "/v2/users?id=3")
        #expect(plan.timeout == 2)
        // Route-level header operations first, then the destination's.
        #expect(plan.requestHeaders.count == 2)
        #expect(plan.requestHeaders[1].add.map(\.0) == ["x-dest"])

        // ignoreUriCase: matched ignoring case, and the prefix swapped all the same.
        let upper = try #require(route(table, host: reviews, path: "/API/V1/users", port: 9080).plan)
        #expect(upper.route == "api")
        #expect(upper.rewrittenPath("/API/V1/users") == "/v2/users")
    }

    @Test func exactMatchRewriteReplacesTheWholePath() throws {
        let plan = try #require(route(table, host: reviews, path: "/login?next=%2Fhome", port: 9080).plan)
        #expect(plan.route == "login")
        #expect(plan.matchedPrefix == nil)
        #expect(plan.rewrittenPath("/login?next=%2Fhome") == "/auth/login?next=%2Fhome")
        // Exact means exact: a longer path is not this route.
        #expect(route(table, host: reviews, path: "/login/again", port: 9080).plan?.route == "split")
    }

    @Test func regexRewriteUsesCaptureGroups() throws {
        let plan = try #require(route(table, host: reviews, path: "/service/foo/v1/api?x=1", port: 9080).plan)
        #expect(plan.route == "service-regex")
        #expect(plan.rewrittenPath("/service/foo/v1/api?x=1") == "/v1/api/instance/foo?x=1")
        // Without the query string too (the proxy passes the path alone).
        #expect(plan.rewrittenPath("/service/bar/z") == "/z/instance/bar")
    }

    @Test func subsetEndpointsAreFilteredByLabelsWithTheirPorts() throws {
        func endpoints(_ subset: String?, _ port: UInt16) -> [String] {
            table.clusters[ClusterKey(host: reviews, subset: subset, port: port)]?.endpoints.map(\.description) ?? ["(no cluster)"]
        }
        // The endpoint's own port for the port name, else the service port's targetPort, else its number.
        #expect(endpoints(nil, 9080) == ["10.0.0.1:8080", "10.0.0.2:9090", "10.0.0.3:8080", "10.0.0.4:8080"])
        #expect(endpoints("v1", 9080) == ["10.0.0.1:8080"])
        #expect(endpoints("v2", 9080) == ["10.0.0.2:9090", "10.0.0.3:8080"])
        #expect(endpoints("v3", 9080) == ["10.0.0.4:8080"])
        #expect(endpoints("v2", 9443) == ["10.0.0.2:9443", "10.0.0.3:9443"])
        let v2 = try #require(table.clusters[ClusterKey(host: reviews, subset: "v2", port: 9080)])
        #expect(v2.endpoints.map(\.weight) == [3, 1])
        #expect(v2.endpoints.first?.labels == ["version": "v2"])
        #expect(v2.isHTTP)
        #expect(v2.serviceName == "reviews")
        #expect(v2.serviceNamespace == "shop")
        #expect(v2.usesOriginalDestination == false)
        // One cluster per port and subset (plus the subset-less one).
        #expect(table.clusters.keys.filter { $0.host == reviews }.count == 8)
    }

    @Test func unknownHostWithServiceVIPAsOriginalDestinationRoutesToThatService() throws {
        // Host is an IP nobody declared, but the connection went to the reviews VIP.
        let (decision, trace) = explain(table, host: "240.0.0.10:9080", headers: ["end-user": "jason"], port: 9080, original: "240.0.0.10")
        let plan = try #require(decision.plan)
        #expect(plan.cluster.key.description == "outbound|9080|v2|reviews.shop.svc.cluster.local")
        #expect(trace.lines.first == "host '240.0.0.10' is unknown; original destination 240.0.0.10 belongs to service reviews.shop.svc.cluster.local")
        #expect(trace.virtualService == "shop/reviews")

        // With the port in the original address, and an address inside a VIP CIDR.
        #expect(route(table, host: "whatever", port: 9080, original: "240.0.0.10:9080").plan?.virtualService == "reviews")
        let ratings = try #require(route(table, host: "10.9.9.9", port: 9080, original: "240.0.1.77").plan)
        #expect(ratings.cluster.key.description == "outbound|9080||ratings.shop.svc.cluster.local")
        #expect(ratings.virtualService == nil, "no VirtualService: the service's default route")
        // An endpoint's own address is not a VIP: with an unknown Host it is outside the registry (as Istio).
        #expect(route(table, host: "", port: 9080, original: "10.0.1.1").summary == "passthrough")
        // Outside every VIP: not in the registry.
        #expect(route(table, host: "10.9.9.9", port: 9080, original: "240.0.2.1").summary == "passthrough")
    }

    @Test func knownServiceWithoutVirtualServiceTakesTheDefaultRoute() throws {
        let (decision, trace) = explain(table, host: "HTTPBin.org:80", path: "/get", port: 80)
        let plan = try #require(decision.plan)
        #expect(plan.cluster.key.description == "outbound|80||httpbin.org")
        #expect(plan.destination == Destination(host: "httpbin.org"))
        #expect(plan.virtualService == nil)
        #expect(plan.route == nil)
        #expect(plan.rewrittenPath("/get?a=1") == "/get?a=1")
        #expect(trace.lines == ["no VirtualService for httpbin.org: default route to the service itself"])
        // Not resolved yet: a DNS service with no addresses has no endpoints.
        #expect(plan.cluster.endpoints.isEmpty)
    }

    @Test func explainSaysWhyEarlierRoutesDidNotMatch() {
        let (decision, trace) = explain(table, host: reviews, path: "/reviews/7", headers: ["end-user": "bob"], port: 9080)
        #expect(decision.plan?.route == "split")
        #expect(trace.host == reviews)
        #expect(trace.virtualService == "shop/reviews")
        #expect(trace.lines.first == "VirtualService shop/reviews serves host 'reviews.shop.svc.cluster.local'")
        #expect(trace.lines.contains("route jason (#0) match[0]: no — header end-user: 'bob' does not match exact 'jason'"), "\(trace.lines)")
        #expect(trace.lines.contains("route api (#1) match[0]: no — uri '/reviews/7' does not match prefix '/api/v1' (ignoring case)"), "\(trace.lines)")
        #expect(trace.lines.contains("route login (#2) match[0]: no — uri '/reviews/7' does not match exact '/login'"), "\(trace.lines)")
        #expect(trace.lines.contains("route service-regex (#3) match[0]: no — uri '/reviews/7' does not match regex '/service/[^/]+/.*'"), "\(trace.lines)")
        #expect(trace.lines.contains("route split (#4): no match conditions, matches everything"), "\(trace.lines)")
        #expect(trace.lines.contains { $0.hasPrefix("destination reviews.shop.svc.cluster.local subset v") && $0.hasSuffix("of 100") }, "\(trace.lines)")

        let (_, absent) = explain(table, host: reviews, path: "/", port: 9080)
        #expect(absent.lines.contains("route jason (#0) match[0]: no — header end-user is absent"), "\(absent.lines)")
    }
}

@Suite("Routing: host precedence and outbound policy")
struct RoutingHostTests {
    // Declared in the "wrong" order on purpose: precedence must not depend on it.
    let table = routingTable(
        serviceEntry("all", host: "all.svc", address: "10.2.0.4")
            + serviceEntry("short", host: "short.svc", address: "10.2.0.2")
            + serviceEntry("long", host: "long.svc", address: "10.2.0.3")
            + serviceEntry("exact", host: "exact.svc", address: "10.2.0.1")
            + virtualService("catch-all", hosts: ["*"], to: "all.svc")
            + virtualService("wild", hosts: ["*.example.com"], to: "short.svc")
            + virtualService("wild-eu", hosts: ["*.eu.example.com"], to: "long.svc")
            + virtualService("exact", hosts: ["api.example.com"], to: "exact.svc"))

    @Test(arguments: [
        ("api.example.com", "exact"),
        ("API.Example.COM", "exact"),
        ("api.example.com:8080", "exact"),
        ("x.eu.example.com", "wild-eu"),
        ("a.b.eu.example.com:443", "wild-eu"),
        ("eu.example.com", "wild"),
        ("y.example.com", "wild"),
        ("Y.EXAMPLE.com:80", "wild"),
        ("example.com", "catch-all"),
        ("other.net", "catch-all"),
        ("10.0.0.1:80", "catch-all"),
    ])
    func hostPrecedence(host: String, expected: String) {
        #expect(table.virtualService(forHost: host)?.name == expected)
        #expect(route(table, host: host).plan?.virtualService == expected)
    }

    @Test func destinationsOfEachVirtualService() {
        #expect(route(table, host: "api.example.com").plan?.cluster.key.host == "exact.svc")
        #expect(route(table, host: "x.eu.example.com").plan?.cluster.key.host == "long.svc")
        #expect(route(table, host: "y.example.com").plan?.cluster.key.host == "short.svc")
        #expect(route(table, host: "z.org").plan?.cluster.endpoints.map(\.description) == ["10.2.0.4:80"])
    }

    @Test func normalizeHostDropsThePortAndLowercases() {
        #expect(normalizeHost("Example.COM:8080") == "example.com")
        #expect(normalizeHost("[2001:DB8::1]:443") == "2001:db8::1")
        #expect(normalizeHost("2001:db8::1") == "2001:db8::1")
        #expect(normalizeHost("plain") == "plain")
    }

    @Test func unknownHostPassesThroughUnderAllowAny() {
        let table = routingTable(serviceEntry("a", host: "a.svc"))
        let (decision, trace) = explain(table, host: "unknown.example.org", original: "93.184.216.34")
        #expect(decision.summary == "passthrough")
        #expect(trace.lines == ["host 'unknown.example.org' is not in the registry; outbound policy ALLOW_ANY"])
    }

    @Test func unknownHostIsBlackHoledUnderRegistryOnly() {
        let sidecar = """
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default}
        spec:
          outboundTrafficPolicy: {mode: REGISTRY_ONLY}
        """
        let table = routingTable(serviceEntry("a", host: "a.svc") + sidecar)
        #expect(table.outboundTrafficPolicy == .registryOnly)
        #expect(route(table, host: "unknown.example.org", original: "93.184.216.34").summary == "blackHole")
        // Registered services still route.
        #expect(route(table, host: "a.svc").summary == "forward outbound|80||a.svc")
    }

    @Test func sidecarPolicyWinsOverProxyConfig() {
        let proxyConfig = """
        apiVersion: interpose.dev/v1alpha1
        kind: ProxyConfig
        metadata: {name: p}
        spec:
          outboundTrafficPolicy: {mode: REGISTRY_ONLY}

        """
        let sidecar = """
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default}
        spec:
          outboundTrafficPolicy: {mode: ALLOW_ANY}
        """
        #expect(route(routingTable(proxyConfig + sidecar), host: "unknown.example.org").summary == "passthrough")
        #expect(route(routingTable(proxyConfig), host: "unknown.example.org").summary == "blackHole")
    }

    @Test func wildcardServiceEntryCoversItsSubdomains() throws {
        let table = routingTable("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: external}
        spec:
          hosts: ["*.googleapis.com"]
          ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: http, protocol: HTTP}]
          resolution: NONE
        """)
        let plan = try #require(route(table, host: "storage.googleapis.com").plan)
        #expect(plan.cluster.key.description == "outbound|80||*.googleapis.com")
        #expect(plan.cluster.usesOriginalDestination, "resolution NONE goes to the original destination")
        #expect(plan.cluster.endpoints.isEmpty)
        #expect(route(table, host: "googleapis.com").summary == "passthrough")
    }

    @Test func sharedVIPIsDisambiguatedByPort() {
        let table = routingTable("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: web}
        spec:
          hosts: [web.internal]
          addresses: [10.50.0.1]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints: [{address: 10.60.0.1}]
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: admin}
        spec:
          hosts: [admin.internal]
          addresses: [10.50.0.1/32]
          ports: [{number: 8080, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints: [{address: 10.60.0.2}]
        """)
        #expect(table.serviceHost(forAddress: "10.50.0.1", port: 80) == "web.internal")
        #expect(table.serviceHost(forAddress: "10.50.0.1", port: 8080) == "admin.internal")
        #expect(table.serviceHost(forAddress: "10.50.0.1:8080") == "admin.internal")
        #expect(table.serviceHost(forAddress: "10.50.0.1") == "web.internal", "no port: the first declared")
        #expect(route(table, host: "10.50.0.1:8080", port: 8080, original: "10.50.0.1").plan?.cluster.key.description == "outbound|8080||admin.internal")
        #expect(table.serviceHost(forAddress: "10.50.0.2") == nil)
    }

    @Test func ipv6VIPsAndCIDRs() {
        let table = routingTable("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: v6}
        spec:
          hosts: [v6.internal]
          addresses: ["2001:db8::/64", "fd00::10"]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: NONE
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: v6-narrow}
        spec:
          hosts: [narrow.internal]
          addresses: ["2001:db8::ff00/120"]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: NONE
        """)
        #expect(table.serviceHost(forAddress: "2001:db8::1") == "v6.internal")
        #expect(table.serviceHost(forAddress: "[2001:DB8:0:0::7]:80") == "v6.internal")
        #expect(table.serviceHost(forAddress: "2001:db8::ff42") == "narrow.internal", "the most specific CIDR wins")
        #expect(table.serviceHost(forAddress: "fd00:0::10") == "v6.internal")
        #expect(table.serviceHost(forAddress: "2001:db9::1") == nil)
        #expect(table.serviceHost(forAddress: "not-an-ip") == nil)
    }
}

@Suite("Routing: matching and outcomes")
struct RoutingMatchTests {
    static let services = serviceEntry("a", host: "a.svc", address: "10.3.0.1") + serviceEntry("b", host: "b.svc", address: "10.3.0.2")
        + serviceEntry("c", host: "c.svc", address: "10.3.0.3")

    func table(_ http: String, proxyLabels: String = "") -> RoutingTable {
        routingTable(Self.services + """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs, namespace: mesh}
        spec:
          hosts: [app.example.com]
          http:
        \(http.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n"))
        ---
        apiVersion: interpose.dev/v1alpha1
        kind: ProxyConfig
        metadata: {name: proxy}
        spec:
          workload: {name: me, labels: {app: productpage\(proxyLabels)}}
        """)
    }

    func target(_ t: RoutingTable, _ path: String = "/", method: String = "GET", scheme: String = "http",
                headers: [String: String] = [:], port: UInt16 = 80, host: String = "app.example.com") -> String {
        route(t, host: host, path: path, method: method, scheme: scheme, headers: headers, port: port).plan?.cluster.key.host
            ?? route(t, host: host, path: path, method: method, scheme: scheme, headers: headers, port: port).summary
    }

    @Test func firstMatchingRouteWins() {
        let t = table("""
        - match: [{uri: {prefix: /api}}]
          route: [{destination: {host: a.svc}}]
        - match: [{uri: {prefix: /api/v2}}]
          route: [{destination: {host: b.svc}}]
        - route: [{destination: {host: c.svc}}]
        """)
        #expect(target(t, "/api/v2/items") == "a.svc", "the earlier, broader route wins")
        #expect(target(t, "/apiary") == "a.svc", "prefix is a string prefix")
        #expect(target(t, "/other") == "c.svc")
    }

    @Test func noMatchingRouteIsNoRoute() {
        let t = table("""
        - match: [{uri: {exact: /only}}]
          route: [{destination: {host: a.svc}}]
        """)
        #expect(target(t, "/only") == "a.svc")
        let (decision, trace) = explain(t, host: "app.example.com", path: "/other")
        #expect(decision.summary == "noRoute")
        #expect(trace.lines.last == "no route of mesh/vs matched: 404 NR")
    }

    @Test func matchBlocksAreOredAndConditionsAnded() {
        let t = table("""
        - match:
          - uri: {prefix: /a}
            method: {exact: POST}
          - headers: {x-force: {}}
          route: [{destination: {host: a.svc}}]
        - route: [{destination: {host: b.svc}}]
        """)
        #expect(target(t, "/a", method: "POST") == "a.svc")
        #expect(target(t, "/a", method: "GET") == "b.svc", "both conditions of a block must hold")
        #expect(target(t, "/z", method: "GET", headers: ["x-force": ""]) == "a.svc", "the second block alone is enough")
    }

    @Test func headerMatchKinds() {
        let t = table("""
        - match: [{headers: {x-exact: {exact: yes}}}]
          route: [{destination: {host: a.svc}}]
        - match: [{headers: {x-prefix: {prefix: abc}}}]
          route: [{destination: {host: b.svc}}]
        - match: [{headers: {x-regex: {regex: "v[0-9]+"}}}]
          route: [{destination: {host: c.svc}}]
        """)
        #expect(target(t, headers: ["X-Exact": "yes"]) == "a.svc")
        #expect(target(t, headers: ["x-exact": "yes!"]) == "noRoute")
        #expect(target(t, headers: ["x-prefix": "abcdef"]) == "b.svc")
        #expect(target(t, headers: ["x-prefix": "xabc"]) == "noRoute")
        #expect(target(t, headers: ["x-regex": "v12"]) == "c.svc")
        #expect(target(t, headers: ["x-regex": "v12-beta"]) == "noRoute", "regexes match the whole value")
    }

    @Test func queryParameterSemantics() {
        let t = table("""
        - match:
          - queryParams:
              debug: {exact: "1"}
              user: {regex: "a.*"}
              flag: {}
          route: [{destination: {host: a.svc}}]
        """)
        #expect(target(t, "/?debug=1&user=alice&flag") == "a.svc")
        #expect(target(t, "/path?flag=&user=ann&debug=1") == "a.svc", "order does not matter; {} means present, even empty")
        #expect(target(t, "/?user=a%6Cice&debug=1&flag=x") == "a.svc", "values are percent-decoded")
        #expect(target(t, "/?debug=2&user=alice&flag") == "noRoute")
        #expect(target(t, "/?debug=1&user=bob&flag") == "noRoute")
        #expect(target(t, "/?debug=1&user=alice") == "noRoute", "flag absent")
        #expect(target(t, "/debug=1&user=alice&flag") == "noRoute", "no query string at all")
        #expect(target(t, "/?debug=1&debug=2&user=alice&flag") == "a.svc", "the first value counts")
    }

    @Test func withoutHeadersSemantics() {
        let t = table("""
        - match:
          - withoutHeaders:
              x-internal: {}
              x-env: {exact: test}
          route: [{destination: {host: a.svc}}]
        - match:
          - withoutHeaders:
              x-anything: {prefix: ""}
          route: [{destination: {host: b.svc}}]
        - route: [{destination: {host: c.svc}}]
        """)
        #expect(target(t) == "a.svc", "no headers: nothing to exclude")
        #expect(target(t, headers: ["x-internal": "1"]) == "c.svc", "{} excludes a present header")
        #expect(target(t, headers: ["x-internal": ""]) == "c.svc", "present though empty")
        #expect(target(t, headers: ["x-env": "test"]) == "c.svc")
        #expect(target(t, headers: ["x-env": "prod"]) == "a.svc")
        // The second route: a missing header is treated as empty, so prefix "" excludes requests without it too.
        #expect(target(t, headers: ["x-internal": "1", "x-anything": "v"]) == "c.svc")
        #expect(target(t, headers: ["x-internal": "1"]) == "c.svc", "excluded although x-anything is absent")
    }

    @Test func authorityMethodSchemeAndPort() {
        let t = table("""
        - match: [{authority: {exact: app.example.com:8080}}]
          route: [{destination: {host: a.svc}}]
        - match: [{method: {regex: "PUT|PATCH"}, scheme: {exact: https}}]
          route: [{destination: {host: b.svc}}]
        - match: [{port: 9000}]
          route: [{destination: {host: c.svc}}]
        """)
        #expect(target(t, host: "app.example.com:8080") == "a.svc", "authority compares the Host value as sent")
        #expect(target(t, method: "PATCH", scheme: "https") == "b.svc")
        #expect(target(t, method: "PATCH", scheme: "http") == "noRoute")
        #expect(target(t, method: "DELETE", scheme: "https") == "noRoute")
        #expect(target(t, port: 9000) == "c.svc", "port is the destination port dialled")
        #expect(target(t, port: 80, host: "app.example.com:9000") == "noRoute", "not the port in Host")
    }

    @Test func ignoreUriCaseAppliesToExactAndPrefixOnly() {
        let t = table("""
        - match: [{uri: {exact: /Login}, ignoreUriCase: true}]
          route: [{destination: {host: a.svc}}]
        - match: [{uri: {regex: "/items/[a-z]+"}, ignoreUriCase: true}]
          route: [{destination: {host: b.svc}}]
        - match: [{uri: {prefix: /CaseSensitive}}]
          route: [{destination: {host: c.svc}}]
        """)
        #expect(target(t, "/LOGIN") == "a.svc")
        #expect(target(t, "/login?x=1") == "a.svc", "the query string is not part of the uri match")
        #expect(target(t, "/items/abc") == "b.svc")
        #expect(target(t, "/items/ABC") == "noRoute", "Istio ignores case for exact and prefix only")
        #expect(target(t, "/casesensitive") == "noRoute")
        #expect(target(t, "/CaseSensitive/x") == "c.svc")
    }

    @Test func sourceLabelsSelectTheWorkload() {
        let http = """
        - match: [{sourceLabels: {app: productpage, version: v1}}]
          route: [{destination: {host: a.svc}}]
        - match: [{sourceLabels: {app: productpage}}]
          route: [{destination: {host: b.svc}}]
        """
        #expect(target(table(http)) == "b.svc", "this proxy has no version label")
        #expect(target(table(http, proxyLabels: ", version: v1")) == "a.svc")
        #expect(target(table(http, proxyLabels: ", version: v2")) == "b.svc")
    }

    @Test func zeroWeightDestinationIsNeverChosen() {
        let t = table("""
        - route:
          - destination: {host: a.svc}
            weight: 0
          - destination: {host: b.svc}
            weight: 50
          - destination: {host: c.svc}
            weight: 50
        """)
        let compiled = t.virtualService(forHost: "app.example.com")?.http.first
        #expect(compiled?.destinations.map(\.destination.host) == ["b.svc", "c.svc"])
        #expect(compiled?.weights == [50, 50])
        var rng = SplitMix64(seed: 99)
        var seen: Set<String> = []
        for _ in 0..<2000 {
            seen.insert(route(t, host: "app.example.com", rng: &rng).plan?.cluster.key.host ?? "none")
        }
        #expect(seen == ["b.svc", "c.svc"])
    }

    @Test func singleDestinationTakesAllTrafficEvenWithWeightZero() {
        let t = table("""
        - route:
          - destination: {host: a.svc}
            weight: 0
        """)
        var rng = SplitMix64(seed: 3)
        for _ in 0..<100 { #expect(route(t, host: "app.example.com", rng: &rng).plan?.cluster.key.host == "a.svc") }
    }

    @Test func relativeWeightsNeedNotSumToHundred() {
        let t = table("""
        - route:
          - destination: {host: a.svc}
            weight: 1
          - destination: {host: b.svc}
            weight: 3
        """)
        var rng = SplitMix64(seed: 11)
        var a = 0
        for _ in 0..<8000 where route(t, host: "app.example.com", rng: &rng).plan?.cluster.key.host == "a.svc" { a += 1 }
        #expect(abs(fraction(a, of: 8000) - 0.25) <= 0.02, "\(a)")
    }

    @Test func redirects() {
        let t = table("""
        - match: [{uri: {prefix: /old}}]
          redirect: {uri: /new, authority: new.example.com, redirectCode: 302}
        - match: [{uri: {prefix: /secure}}]
          redirect: {scheme: https}
        - match: [{uri: {prefix: /port}}]
          redirect: {port: 8443}
        - match: [{uri: {prefix: /query}}]
          redirect: {uri: "/q?fixed=1"}
        - match: [{uri: {prefix: /default}}]
          redirect: {authority: elsewhere.example.com}
        """)
        #expect(route(t, host: "app.example.com", path: "/old/page?x=1").summary == "redirect 302 http://new.example.com/new?x=1",
                "a uri without a query keeps the request's query")
        #expect(route(t, host: "app.example.com:80", path: "/secure/a").summary == "redirect 301 https://app.example.com/secure/a",
                "changing the scheme drops the old default port")
        #expect(route(t, host: "app.example.com:8000", path: "/secure/a").summary == "redirect 301 https://app.example.com:8000/secure/a")
        #expect(route(t, host: "app.example.com:8080", path: "/port?y").summary == "redirect 301 http://app.example.com:8443/port?y")
        #expect(route(t, host: "app.example.com", path: "/query?x=1").summary == "redirect 301 http://app.example.com/q?fixed=1")
        #expect(route(t, host: "app.example.com", path: "/default/x", scheme: "https").summary
                == "redirect 301 https://elsewhere.example.com/default/x")
    }

    @Test func directResponse() {
        let t = table("""
        - match: [{uri: {exact: /healthz}}]
          directResponse: {status: 200, body: {string: ok}}
        - match: [{uri: {exact: /gone}}]
          directResponse: {status: 410}
        """)
        #expect(route(t, host: "app.example.com", path: "/healthz").summary == "direct 200 ok")
        #expect(route(t, host: "app.example.com", path: "/gone").summary == "direct 410 -")
    }

    @Test func rewriteWithoutUriConditionSwapsTheRootPrefix() throws {
        // Istio matches a route with no uri condition as prefix "/", and Envoy's prefix_rewrite swaps it.
        let t = table("""
        - match: [{headers: {x-v2: {}}}]
          rewrite: {uri: /v2/}
          route: [{destination: {host: a.svc}}]
        - rewrite: {uri: /root}
          route: [{destination: {host: b.svc}}]
        """)
        let plan = try #require(route(t, host: "app.example.com", path: "/items", headers: ["x-v2": "1"]).plan)
        #expect(plan.matchedPrefix == "/")
        #expect(plan.rewrittenPath("/items?a=b") == "/v2/items?a=b")
        let noMatch = try #require(route(t, host: "app.example.com", path: "/items").plan)
        #expect(noMatch.rewrittenPath("/items") == "/rootitems", "Envoy's prefix swap, trailing slashes and all")
    }

    @Test func unknownDestinationHostIsNoClusterAndNothingIsMirrored() throws {
        let t = table("""
        - route: [{destination: {host: nowhere.svc}}]
          mirror: {host: a.svc}
        """)
        // 503 NC, decided by the router; no mirror when the primary destination is missing.
        #expect(route(t, host: "app.example.com").summary == "noCluster nowhere.svc")
    }

    @Test func invalidRegexNeverMatchesEvenIfCompiled() {
        let t = routingTable(Self.services + """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs, namespace: mesh}
        spec:
          hosts: [app.example.com]
          http:
          - match: [{uri: {regex: "(unclosed"}}]
            route: [{destination: {host: a.svc}}]
          - route: [{destination: {host: b.svc}}]
        """, expectErrors: true)
        #expect(route(t, host: "app.example.com", path: "/(unclosed").plan?.cluster.key.host == "b.svc")
        #expect(CompiledStringMatch(.regex("(unclosed")) == nil)
        #expect(CompiledStringMatch(.regex("a+"))?.matches("aaa") == true)
    }
}

@Suite("Routing: rewritePath")
struct RoutingRewritePathTests {
    @Test func prefixSwap() {
        let rw = HTTPRewrite(uri: "/v2", authority: nil, uriRegex: nil)
        #expect(rewritePath("/api/v1/users", rewrite: rw, regex: nil, matchedPrefix: "/api/v1") == "/v2/users")
        #expect(rewritePath("/api/v1", rewrite: rw, regex: nil, matchedPrefix: "/api/v1") == "/v2")
        #expect(rewritePath("/api/v1/x?q=1&r=2", rewrite: rw, regex: nil, matchedPrefix: "/api/v1") == "/v2/x?q=1&r=2")
        #expect(rewritePath("/API/V1/x", rewrite: rw, regex: nil, matchedPrefix: "/api/v1") == "/v2/x")
        #expect(rewritePath("/anything?k=v", rewrite: rw, regex: nil, matchedPrefix: nil) == "/v2?k=v", "no prefix: the whole path")
        #expect(rewritePath("/same?k=v", rewrite: nil, regex: nil, matchedPrefix: "/") == "/same?k=v", "no rewrite: unchanged")
    }
}

@Suite("Routing: short host names")
struct RoutingShortNameTests {
    static let yaml = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: reviews, namespace: demo}
    spec:
      hosts: [reviews.demo.svc.cluster.local]
      addresses: [10.240.0.10]
      ports: [{number: 9080, name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints:
      - {address: 10.241.1.2, labels: {version: v1}}
      - {address: 10.241.2.2, labels: {version: v2}}
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews, namespace: demo}
    spec:
      host: reviews
      trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
      subsets:
      - {name: v1, labels: {version: v1}}
      - {name: v2, labels: {version: v2}}
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews, namespace: demo}
    spec:
      hosts: [reviews]
      http:
      - match: [{headers: {end-user: {exact: jason}}}]
        route: [{destination: {host: reviews, subset: v2}}]
        mirror: {host: reviews, subset: v1}
      - route: [{destination: {host: reviews, subset: v1}}]
    ---
    apiVersion: interpose.dev/v1alpha1
    kind: ProxyConfig
    metadata: {name: productpage, namespace: demo}
    spec:
      workload: {name: productpage-v1, namespace: demo}
    """
    let table = routingTable(yaml)

    @Test func theVirtualServiceHostIsTheFullName() {
        #expect(table.virtualServices.first?.hosts == ["reviews.demo.svc.cluster.local"])
        #expect(table.virtualServices.first?.http.first?.destinations.first?.destination == Destination(host: "reviews.demo.svc.cluster.local", subset: "v2"))
    }

    @Test(arguments: ["reviews", "reviews:9080", "reviews.demo", "reviews.demo.svc", "reviews.demo.svc.cluster.local", "REVIEWS.demo.svc.cluster.local:9080"])
    func everyFormOfTheNameReachesTheVirtualService(host: String) throws {
        let plan = try #require(route(table, host: host, headers: ["end-user": "jason"], port: 9080).plan)
        #expect(plan.virtualService == "reviews")
        #expect(plan.cluster.key.description == "outbound|9080|v2|reviews.demo.svc.cluster.local")
        #expect(plan.cluster.loadBalancer == .roundRobin, "the short-named DestinationRule applies")
        #expect(plan.mirrors.map(\.cluster.key.description) == ["outbound|9080|v1|reviews.demo.svc.cluster.local"])
    }

    @Test func theServiceVIPReachesTheVirtualServiceToo() {
        #expect(route(table, host: "10.240.0.10:9080", port: 9080, original: "10.240.0.10").plan?.cluster.key.subset == "v1")
    }

    @Test func shortNamesOfAnotherNamespaceDoNotMatch() {
        #expect(route(table, host: "reviews.prod", port: 9080).summary == "passthrough")
    }
}

@Suite("Routing: the shipped examples")
struct RoutingExampleTests {
    @Test func examplesLoadAndRouteTheCanary() throws {
        let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("examples").path
        let bundle = try ConfigLoader.load(path: examples)
        #expect(bundle.errors.isEmpty, "\(bundle.errors.map(\.description))")
        let table = TableCompiler.compile(bundle, generation: 1)
        let vip = try #require(bundle.serviceEntries.first?.addresses.first)
        let port = try #require(bundle.serviceEntries.first?.ports.first?.number)
        // By name, by full name and by VIP alike, the same VirtualService decides.
        for (host, original) in [("reviews", nil), ("reviews.demo.svc.cluster.local", nil), (vip, vip)] as [(String, String?)] {
            let plan = route(table, host: "\(host):\(port)", headers: ["end-user": "jason"], port: port, original: original).plan
            #expect(plan?.virtualService == "reviews", "\(host)")
            #expect(plan?.cluster.key.subset == "v2", "\(host)")
        }
    }
}
