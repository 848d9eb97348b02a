import Testing
@testable import InterposeConfig

/// A realistic mesh file: every resource kind and most fields Interpose reads.
let meshYAML = """
# Bookinfo-style mesh, outside Kubernetes.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: shop
  labels: {app: reviews}
spec:
  hosts:
  - Reviews.Shop.svc.cluster.local
  addresses: [240.0.0.10]
  location: MESH_INTERNAL
  ports:
  - number: 9080
    name: http
    protocol: http
    targetPort: 8080
  - number: 9443
    name: grpc
    protocol: GRPC
  resolution: STATIC
  endpoints:
  - address: 10.0.0.1
    labels: {version: v1}
    weight: 3
  - address: 10.0.0.2
    ports: {http: 9090}
    labels: {version: v2, track: canary}
    locality: us-east1/zone-a
  - address: 10.0.0.3
    labels: {version: v3}
    weight: 0
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: httpbin, namespace: shop}
spec:
  hosts: [httpbin.org]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: https, protocol: TLS}
  resolution: DNS
---
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: anything-external}
spec:
  hosts: ["*.example.com"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews.shop.svc.cluster.local]
  http:
  - name: jason
    match:
    - name: by-user
      headers:
        End-User: {exact: jason}
        x-canary: {}
        x-trace: {prefix: abc}
        x-session: {regex: "s-[0-9]+"}
      uri: {exact: /reviews/1}
      authority: {prefix: reviews}
      method: {exact: GET}
      queryParams:
        debug: {exact: "1"}
      withoutHeaders:
        x-skip: {}
      ignoreUriCase: true
      port: 9080
      sourceLabels: {app: productpage}
    - uri: {prefix: /api/}
      scheme: {exact: http}
    - uri: {regex: "/item/[0-9]+"}
    route:
    - destination:
        host: Reviews.shop.svc.cluster.local
        subset: v2
        port: {number: 9080}
      headers:
        request:
          set: {x-version: v2}
    timeout: 1.5s
  - name: split
    route:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
      weight: 90
    - destination: {host: reviews.shop.svc.cluster.local, subset: v2}
      weight: 10
    rewrite:
      uri: /v2/
      authority: reviews.internal
    headers:
      request:
        set: {X-Env: prod}
        add: {x-hop: one}
        remove: [X-Debug]
      response:
        set: {cache-control: no-store}
        add: {x-served-by: interpose}
        remove: [server]
    mirror: {host: httpbin.org}
    mirrorPercentage: {value: 12.5}
    mirrors:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
      percentage: {value: 50}
    - destination: {host: httpbin.org}
  - name: regex-rewrite
    match:
    - uri: {prefix: /old}
    rewrite:
      uriRegexRewrite: {match: "^/old/(.*)$", rewrite: '/new/\\1'}
    route:
    - destination: {host: reviews.shop.svc.cluster.local}
  - name: moved
    match:
    - uri: {exact: /moved}
    redirect: {uri: /new-home, authority: example.com, scheme: https, port: 8443, redirectCode: 308}
  - name: teapot
    match:
    - uri: {exact: /teapot}
    directResponse:
      status: 418
      body: {string: "short and stout"}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
spec:
  host: reviews.shop.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 250ms}
      http: {maxRequestsPerConnection: 1, idleTimeout: 1m, http1MaxPendingRequests: 10}
    portLevelSettings:
    - port: {number: 9443}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpHeaderName: X-User
          ringHash: {minimumRingSize: 2048}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpCookie: {name: session, path: /, ttl: 1h}
          maglev: {tableSize: 65537}
      portLevelSettings:
      - port: {number: 9080}
        loadBalancer: {simple: LEAST_REQUEST}
        connectionPool:
          tcp: {connectTimeout: 2s}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer:
        consistentHash: {useSourceIp: true}
  - name: v4
    labels: {version: v4}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpQueryParameterName: user, minimumRingSize: 4096}
  - name: passthrough
    labels: {version: v5}
    trafficPolicy:
      loadBalancer: {simple: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: shop}
spec:
  host: httpbin.org
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: interpose.dev/v1alpha1
kind: ProxyConfig
metadata: {name: proxy}
spec:
  workload:
    name: productpage-v1
    namespace: shop
    labels: {app: productpage, version: v1}
  ports: {outbound: 16001, inbound: 16006, admin: 16000, readiness: 16021, metrics: 16090}
  outboundTrafficPolicy: {mode: ALLOW_ANY}
  drainTimeout: 1m30s
  accessLog: true
"""

@Suite("Config: a realistic mesh file")
struct ConfigMeshFileTests {
    let bundle = loadYAML(meshYAML, file: "mesh.yaml")

    @Test func loadsWithoutErrorsOrWarnings() {
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.warnings.isEmpty, "\(bundle.summary)")
        #expect(bundle.serviceEntries.count == 3)
        #expect(bundle.virtualServices.count == 1)
        #expect(bundle.destinationRules.count == 2)
        #expect(bundle.sidecars.count == 1)
    }

    @Test func staticServiceEntry() throws {
        let se = try #require(bundle.serviceEntry("reviews"))
        #expect(se.meta.namespace == "shop")
        #expect(se.meta.file == "mesh.yaml")
        #expect(se.meta.document == 1)
        #expect(se.hosts == ["reviews.shop.svc.cluster.local"], "hosts are lowercased")
        #expect(se.addresses == ["240.0.0.10"])
        #expect(se.location == "MESH_INTERNAL")
        #expect(se.resolution == .staticAddresses)
        #expect(se.ports == [
            ServicePort(number: 9080, protocolName: "HTTP", name: "http", targetPort: 8080),
            ServicePort(number: 9443, protocolName: "GRPC", name: "grpc", targetPort: nil),
        ])
        #expect(se.ports.allSatisfy { $0.isHTTP })
        #expect(se.endpoints.count == 3)
        #expect(se.endpoints[0] == WorkloadEntryEndpoint(address: "10.0.0.1", ports: [:], labels: ["version": "v1"], weight: 3, locality: nil))
        #expect(se.endpoints[1] == WorkloadEntryEndpoint(address: "10.0.0.2", ports: ["http": 9090], labels: ["version": "v2", "track": "canary"],
                                                         weight: 1, locality: "us-east1/zone-a"))
        // Weight 0 is the proto's "unset": the default weight 1.
        #expect(se.endpoints[2].weight == 1)
    }

    @Test func dnsAndNoneServiceEntries() throws {
        let dns = try #require(bundle.serviceEntry("httpbin"))
        #expect(dns.resolution == .dns)
        #expect(dns.location == "MESH_EXTERNAL", "MESH_EXTERNAL is the default location")
        #expect(dns.ports.map(\.number) == [80, 443])
        #expect(dns.ports.map(\.isHTTP) == [true, false])
        #expect(dns.endpoints.isEmpty)

        let none = try #require(bundle.serviceEntry("anything-external"))
        #expect(none.meta.namespace == "default", "namespace defaults to default")
        #expect(none.hosts == ["*.example.com"])
        #expect(none.resolution == .none)
    }

    @Test func firstRouteHasEveryKindOfMatch() throws {
        let vs = try #require(bundle.virtualService("reviews"))
        #expect(vs.hosts == ["reviews.shop.svc.cluster.local"])
        #expect(vs.http.count == 5)
        let route = vs.http[0]
        #expect(route.name == "jason")
        #expect(route.matches.count == 3)
        let m = route.matches[0]
        #expect(m.name == "by-user")
        #expect(m.uri == .exact("/reviews/1"))
        #expect(m.authority == .prefix("reviews"))
        #expect(m.method == .exact("GET"))
        #expect(m.headers.map(\.0) == ["end-user", "x-canary", "x-trace", "x-session"], "header names are lowercased, order kept")
        #expect(m.headers.map(\.1) == [.exact("jason"), nil, .prefix("abc"), .regex("s-[0-9]+")], "{} means present (nil)")
        #expect(m.queryParams.map(\.0) == ["debug"])
        #expect(m.queryParams.map(\.1) == [.exact("1")])
        #expect(m.withoutHeaders.map(\.0) == ["x-skip"])
        #expect(m.withoutHeaders.map(\.1) == [nil])
        #expect(m.ignoreUriCase)
        #expect(m.port == 9080)
        #expect(m.sourceLabels == ["app": "productpage"])

        #expect(route.matches[1].uri == .prefix("/api/"))
        #expect(route.matches[1].scheme == .exact("http"))
        #expect(route.matches[1].ignoreUriCase == false)
        #expect(route.matches[2].uri == .regex("/item/[0-9]+"))

        #expect(route.destinations.count == 1)
        let d = route.destinations[0]
        #expect(d.destination == Destination(host: "reviews.shop.svc.cluster.local", subset: "v2", port: 9080), "destination host lowercased")
        #expect(d.weight == 100, "a single destination takes 100")
        #expect(d.headers.request.set.map(\.0) == ["x-version"])
        #expect(d.headers.request.set.map(\.1) == ["v2"])
        #expect(route.timeout == 1.5)
    }

    @Test func weightedRouteWithRewriteHeadersAndMirrors() throws {
        let route = try #require(bundle.virtualService("reviews")?.http[1])
        #expect(route.matches.isEmpty)
        #expect(route.destinations.map(\.destination.subset) == ["v1", "v2"])
        #expect(route.destinations.map(\.weight) == [90, 10])
        #expect(route.rewrite == HTTPRewrite(uri: "/v2/", authority: "reviews.internal", uriRegex: nil))
        #expect(route.timeout == nil, "no timeout by default (not Envoy's 15 s)")

        let h = route.headers
        #expect(h.request.set.map(\.0) == ["x-env"])
        #expect(h.request.set.map(\.1) == ["prod"])
        #expect(h.request.add.map(\.0) == ["x-hop"])
        #expect(h.request.remove == ["x-debug"])
        #expect(h.response.set.map(\.0) == ["cache-control"])
        #expect(h.response.add.map(\.1) == ["interpose"])
        #expect(h.response.remove == ["server"])

        #expect(route.mirrors == [
            Mirror(destination: Destination(host: "httpbin.org"), percent: 12.5),
            Mirror(destination: Destination(host: "reviews.shop.svc.cluster.local", subset: "v1"), percent: 50),
            Mirror(destination: Destination(host: "httpbin.org"), percent: 100),
        ])
    }

    @Test func regexRewriteRedirectAndDirectResponse() throws {
        let vs = try #require(bundle.virtualService("reviews"))
        let rx = try #require(vs.http[2].rewrite?.uriRegex)
        #expect(rx.match == "^/old/(.*)$")
        #expect(rx.rewrite == "/new/\\1")
        #expect(vs.http[2].destinations.first?.weight == 100)

        #expect(vs.http[3].redirect == HTTPRedirect(uri: "/new-home", authority: "example.com", scheme: "https", port: 8443, code: 308))
        #expect(vs.http[3].destinations.isEmpty)
        #expect(vs.http[4].directResponse == DirectResponse(status: 418, body: "short and stout"))
    }

    @Test func destinationRulePolicies() throws {
        let dr = try #require(bundle.destinationRule("reviews"))
        #expect(dr.host == "reviews.shop.svc.cluster.local")
        let policy = try #require(dr.trafficPolicy)
        #expect(policy.loadBalancer == .roundRobin)
        #expect(policy.connectionPool == ConnectionPoolSettings(maxConnections: 100, connectTimeout: 0.25, maxRequestsPerConnection: 1,
                                                                idleTimeout: 60, http1MaxPendingRequests: 10))
        #expect(policy.portSettings.keys.sorted() == [9443])
        #expect(policy.portSettings[9443]?.loadBalancer == .random)
        #expect(policy.portSettings[9443]?.connectionPool == nil)

        #expect(dr.subsets.map(\.name) == ["v1", "v2", "v3", "v4", "passthrough"])
        #expect(dr.subsets[0].labels == ["version": "v1"])
        let lbs = dr.subsets.map { $0.trafficPolicy?.loadBalancer }
        #expect(lbs[0] == .consistentHash(.header("x-user"), ringSize: 2048, maglev: false))
        #expect(lbs[1] == .consistentHash(.cookie(name: "session", path: "/", ttl: 3600), ringSize: nil, maglev: true))
        #expect(lbs[2] == .consistentHash(.sourceIP, ringSize: nil, maglev: false))
        #expect(lbs[3] == .consistentHash(.queryParameter("user"), ringSize: 4096, maglev: false))
        #expect(lbs[4] == .passthrough)
        let v2Port = try #require(dr.subsets[1].trafficPolicy?.portSettings[9080])
        #expect(v2Port.loadBalancer == .leastRequest)
        #expect(v2Port.connectionPool?.connectTimeout == 2)

        let bare = try #require(bundle.destinationRule("httpbin"))
        #expect(bare.trafficPolicy == nil)
        #expect(bare.subsets.isEmpty)
    }

    @Test func sidecarAndProxyConfig() {
        #expect(bundle.sidecars.first?.outboundTrafficPolicy == .registryOnly)
        let p = bundle.proxy
        #expect(p.workloadName == "productpage-v1")
        #expect(p.namespace == "shop")
        #expect(p.labels == ["app": "productpage", "version": "v1"])
        #expect([p.outboundPort, p.inboundPort, p.adminPort, p.readinessPort, p.metricsPort] == [16001, 16006, 16000, 16021, 16090])
        #expect(p.outboundTrafficPolicy == .allowAny)
        #expect(p.drainTimeout == 90)
        #expect(p.accessLog)
        // The Sidecar's mode wins over ProxyConfig's.
        #expect(bundle.outboundTrafficPolicy == .registryOnly)
    }

    @Test func documentNumbersAndFilesAreRecorded() throws {
        #expect(bundle.serviceEntries.map(\.meta.document) == [1, 2, 3])
        let vs = try #require(bundle.virtualService("reviews"))
        #expect(vs.meta.document == 4)
        #expect(bundle.destinationRules.map(\.meta.document) == [5, 6])
        #expect(bundle.sidecars.first?.meta.document == 7)
    }
}

@Suite("Config: defaults")
struct ConfigDefaultTests {
    @Test func emptyConfigMeansAllowAnyAndStandardPorts() {
        let bundle = loadYAML("")
        #expect(bundle.issues.isEmpty)
        #expect(bundle.outboundTrafficPolicy == .allowAny)
        #expect(bundle.proxy == ProxySettings())
        #expect(bundle.proxy.outboundPort == 15001)
        #expect(bundle.proxy.inboundPort == 15006)
    }

    @Test func proxyConfigPolicyAppliesWithoutSidecar() {
        let bundle = loadYAML("""
        apiVersion: interpose.dev/v1alpha1
        kind: ProxyConfig
        metadata: {name: p}
        spec:
          outboundTrafficPolicy: {mode: registry_only}
        """)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.outboundTrafficPolicy == .registryOnly)
    }

    @Test func severalDestinationsWithoutWeightsShareEqually() throws {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - route:
          - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
          - destination: {host: reviews.shop.svc.cluster.local, subset: v2}
        """))
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        let vs = try #require(bundle.virtualService("reviews"))
        #expect(vs.http[0].destinations.map(\.weight) == [1, 1])
    }

    @Test func mirrorDefaultsToHundredPercentAndZeroDisables() throws {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - route:
          - destination: {host: reviews.shop.svc.cluster.local}
          mirror: {host: httpbin.org}
        - route:
          - destination: {host: reviews.shop.svc.cluster.local}
          mirror: {host: httpbin.org}
          mirrorPercentage: {value: 0}
        - route:
          - destination: {host: reviews.shop.svc.cluster.local}
          mirror: {host: httpbin.org}
          mirrorPercent: 30
        """))
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        let vs = try #require(bundle.virtualService("reviews"))
        #expect(vs.http.map { $0.mirrors.map(\.percent) } == [[100], [0], [30]])
    }

    @Test func redirectCodeDefaultsTo301AndDirectResponseBytesDecode() throws {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - redirect: {uri: /elsewhere}
        - directResponse: {status: 503, body: {bytes: aGVsbG8=}}
        """))
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        let vs = try #require(bundle.virtualService("reviews"))
        #expect(vs.http[0].redirect?.code == 301)
        #expect(vs.http[1].directResponse == DirectResponse(status: 503, body: "hello"))
    }

    @Test func durations() {
        #expect(parseDuration("10s") == 10)
        #expect(parseDuration("250ms") == 0.25)
        #expect(parseDuration("1.5s") == 1.5)
        #expect(parseDuration("2m") == 120)
        #expect(parseDuration("1h") == 3600)
        #expect(parseDuration("1h30m") == 5400)
        #expect(parseDuration("0") == 0)
        #expect(parseDuration("0s") == 0)
        #expect(parseDuration("10") == nil, "a unit is required")
        #expect(parseDuration("-1s") == nil)
        #expect(parseDuration("soon") == nil)
        #expect(parseDuration("") == nil)
    }

    @Test func emptyDocumentsAreSkippedButCounted() {
        let bundle = loadYAML("""
        ---
        # only a comment
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: s}
        spec: {}
        ---
        """)
        #expect(bundle.issues.isEmpty, "\(bundle.summary)")
        #expect(bundle.sidecars.count == 1)
        #expect(bundle.sidecars.first?.outboundTrafficPolicy == nil)
    }

    @Test func kindsNotEnforcedLoadWithAWarningThatSaysSo() {
        let bundle = loadYAML("""
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: strict, namespace: shop}
        spec: {mtls: {mode: STRICT}}
        """)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.warnings.count == 1)
        #expect(bundle.warnings.first?.message.contains("not enforced yet") == true, "a security policy must not be silently ignored")
        // AuthorizationPolicy is enforced now: it loads without that warning.
        let authz = loadYAML("""
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-all, namespace: shop}
        spec: {action: DENY, rules: [{}]}
        """)
        #expect(authz.errors.isEmpty && authz.warnings.isEmpty, "\(authz.summary)")
        #expect(authz.authorizationPolicies.count == 1)
    }
}

@Suite("Config: short host names")
struct ConfigShortNameTests {
    static let yaml = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: reviews, namespace: shop}
    spec:
      hosts: [reviews.shop.svc.cluster.local]
      ports: [{number: 9080, name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: db, namespace: shop}
    spec:
      hosts: [db]
      ports: [{number: 5432, name: pg, protocol: TCP}]
      resolution: STATIC
      endpoints: [{address: 10.0.0.9}]
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews, namespace: shop}
    spec:
      host: reviews
      subsets: [{name: v1, labels: {version: v1}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews-elsewhere, namespace: other}
    spec:
      host: reviews
      subsets: [{name: v9, labels: {version: v9}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews, namespace: shop}
    spec:
      hosts: [reviews]
      http:
      - route:
        - destination: {host: reviews, subset: v1}
      - route:
        - destination: {host: reviews, subset: v9}
    """

    @Test func shortNamesExpandAgainstTheResourceNamespace() {
        let bundle = loadYAML(Self.yaml)
        #expect(bundle.resolveHost("reviews", namespace: "shop") == "reviews.shop.svc.cluster.local")
        #expect(bundle.resolveHost("Reviews", namespace: "other") == "reviews.other.svc.cluster.local")
        #expect(bundle.resolveHost("db", namespace: "shop") == "db", "declared short by a ServiceEntry: kept")
        #expect(bundle.resolveHost("cache", namespace: "shop") == "cache.shop.svc.cluster.local", "undeclared: Istio's expansion")
        #expect(bundle.resolveHost("api.example.com", namespace: "shop") == "api.example.com")
        #expect(bundle.resolveHost("*", namespace: "shop") == "*")
        #expect(bundle.destinationRule(forHost: "reviews.shop.svc.cluster.local")?.meta.name == "reviews")
        #expect(bundle.destinationRule(forHost: "reviews.other.svc.cluster.local")?.meta.name == "reviews-elsewhere")
    }

    @Test func subsetsAreCheckedAgainstTheRuleOfTheResolvedHost() {
        let bundle = loadYAML(Self.yaml)
        // v1 is found through the short names; v9 belongs to namespace other's "reviews".
        #expect(bundle.errors.map(\.path) == ["spec.http[1].route[0].destination.subset"], "\(bundle.summary)")
        #expect(bundle.errors.first?.message.contains("reviews.shop.svc.cluster.local") == true)
    }
}
