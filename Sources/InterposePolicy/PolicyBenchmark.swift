import InterposeConfig
import InterposeFlow

/// A config and a request for measuring the per-request cost of `PolicyEngine.check` (bench/ runs it; no
/// timing happens here). The request is allowed by the last ALLOW rule, so every rule is evaluated.
public enum PolicyBenchmark {
    /// `authorizationRules` rules: a tenth (at least one) in a DENY policy, the rest in ALLOW policies of 10
    /// rules each, every rule with `from`, `to` and `when`; `rateLimits` Local RateLimitPolicies, of which the
    /// first two select the request (per `x-user` and per source address) and never refuse it.
    public static func benchmarkConfig(authorizationRules: Int, rateLimits: Int) -> ConfigBundle {
        var bundle = ConfigBundle()
        ConfigLoader.load(text: benchmarkYAML(authorizationRules: authorizationRules, rateLimits: rateLimits), file: "benchmark.yaml", into: &bundle)
        return bundle
    }

    /// The same config as YAML.
    /// `selectedPath`: the paths the first two rate limits select; `firstDescriptor`: the first one's descriptor.
    public static func benchmarkYAML(authorizationRules: Int, rateLimits: Int, selectedPath: String = "/api/*",
                                     firstDescriptor: String = "request.headers[x-user]") -> String {
        let total = max(1, authorizationRules)
        let denyRules = max(1, total / 10)
        let allowRules = total - denyRules
        var docs: [String] = []
        var deny = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: bench-deny, namespace: bench}
        spec:
          action: DENY
          rules:

        """
        for i in 0..<denyRules {
            deny += """
              - from: [{source: {ipBlocks: ["198.51.100.\(i % 256)/32"]}}]
                to: [{operation: {methods: [DELETE], paths: ["/admin/\(i)/*"]}}]

            """
        }
        docs.append(deny)
        var index = 0
        var policy = 0
        while index < allowRules {
            var doc = """
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: bench-allow-\(policy), namespace: bench}
            spec:
              action: ALLOW
              rules:

            """
            for _ in 0..<min(10, allowRules - index) {
                doc += """
                  - from: [{source: {ipBlocks: ["10.\(index % 256).0.0/16"]}}, {source: {namespaces: [team-\(index)]}}]
                    to: [{operation: {methods: [GET, HEAD], paths: ["/api/v\(index)/*"]}}]
                    when: [{key: "request.headers[x-tenant]", values: [tenant-\(index)]}]

                """
                index += 1
            }
            docs.append(doc)
            policy += 1
        }
        for i in 0..<max(0, rateLimits) {
            let descriptor = i == 1 ? "source.ip" : firstDescriptor
            let paths = i < 2 ? "\"\(selectedPath)\"" : "\"/other/\(i)/*\""
            docs.append("""
            apiVersion: interpose.dev/v1alpha1
            kind: RateLimitPolicy
            metadata: {name: bench-limit-\(i), namespace: bench}
            spec:
              rules: [{to: [{operation: {paths: [\(paths)]}}]}]
              descriptors: [{key: k, attribute: "\(descriptor)"}]
              limit: {requestsPerUnit: 1000000000, unit: SECOND}

            """)
        }
        return docs.joined(separator: "---\n")
    }

    /// The request of the benchmark for a config of `authorizationRules` rules: matches the last ALLOW rule.
    public static func request(authorizationRules: Int) -> Request {
        let total = max(1, authorizationRules)
        let last = max(0, total - max(1, total / 10) - 1)
        return Request(sourceAddress: FlowAddress("10.\(last % 256).1.2"), requestPath: "/api/v\(last)/items", requestMethod: "GET",
                       headers: [("x-tenant", "tenant-\(last)"), ("x-user", "alice"), ("user-agent", "bench")])
    }

    /// A plain attribute source: fixed values.
    public struct Request: AttributeSource, Sendable {
        public var sourceAddress: FlowAddress?
        public var sourcePrincipal: String?
        public var sourceNamespace: String?
        public var sourceLabels: [String: String] = [:]
        public var destinationService: String? = "bench.bench.svc.cluster.local"
        public var destinationPort: UInt16? = 8080
        public var destinationLabels: [String: String] = [:]
        public var isHTTP = true
        public var requestPath: String?
        public var requestMethod: String?
        public var requestHost: String? = "bench.bench.svc.cluster.local:8080"
        public var headers: [(String, String)] = []
        public var query: [(String, String)] = []
        public var isGRPC = false

        public init(sourceAddress: FlowAddress?, requestPath: String?, requestMethod: String?, headers: [(String, String)]) {
            self.sourceAddress = sourceAddress
            self.requestPath = requestPath
            self.requestMethod = requestMethod
            self.headers = headers
        }

        public func sourceLabel(_ key: String) -> String? { sourceLabels[key] }
        public func destinationLabel(_ key: String) -> String? { destinationLabels[key] }
        public func requestHeader(_ lowercasedName: String) -> String? { headers.first { $0.0 == lowercasedName }?.1 }
        public func requestQuery(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
    }
}
