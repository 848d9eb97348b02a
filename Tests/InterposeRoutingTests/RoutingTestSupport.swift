import InterposeConfig
import InterposeRouting
import Testing

/// Loads YAML into a bundle (decode only; the tests that need validation say so) and compiles it.
func routingTable(_ yaml: String, resolved: [String: [String]] = [:], expectErrors: Bool = false,
                  sourceLocation: SourceLocation = #_sourceLocation) -> RoutingTable {
    var bundle = ConfigBundle()
    ConfigLoader.load(text: yaml, file: "routing.yaml", into: &bundle)
    if !expectErrors {
        #expect(bundle.errors.isEmpty, "\(bundle.errors.map(\.description).joined(separator: "\n"))", sourceLocation: sourceLocation)
    }
    return TableCompiler.compile(bundle, generation: 1, resolved: resolved)
}

/// One request through the router. Header names are looked up lowercased, as the proxy does.
func route(_ table: RoutingTable, host: String, path: String = "/", method: String = "GET", scheme: String = "http",
           headers: [String: String] = [:], port: UInt16 = 80, original: String? = nil, seed: UInt64 = 7) -> HTTPDecision {
    var rng = SplitMix64(seed: seed)
    return route(table, host: host, path: path, method: method, scheme: scheme, headers: headers, port: port, original: original, rng: &rng)
}

func route(_ table: RoutingTable, host: String, path: String = "/", method: String = "GET", scheme: String = "http",
           headers: [String: String] = [:], port: UInt16 = 80, original: String? = nil, rng: inout SplitMix64) -> HTTPDecision {
    let lower = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
    let view = RequestView(method: method, pathAndQuery: path, authority: host, scheme: scheme, port: port, header: { lower[$0] })
    return HTTPRouter(table: table).route(view, originalAddress: original, using: &rng)
}

/// The decision and the explain trace.
func explain(_ table: RoutingTable, host: String, path: String = "/", headers: [String: String] = [:], port: UInt16 = 80,
             original: String? = nil) -> (HTTPDecision, RouteTrace) {
    var rng = SplitMix64(seed: 7)
    var trace = RouteTrace()
    let lower = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
    let view = RequestView(method: "GET", pathAndQuery: path, authority: host, port: port, header: { lower[$0] })
    let decision = withUnsafeMutablePointer(to: &trace) { HTTPRouter(table: table).route(view, originalAddress: original, using: &rng, trace: $0) }
    return (decision, trace)
}

extension HTTPDecision {
    var plan: ForwardPlan? {
        if case .forward(let p) = self { return p }
        return nil
    }

    /// `forward outbound|9080|v2|reviews...`, `redirect 301 http://...`, `direct 418 body`, `noRoute`, `blackHole`, `passthrough`.
    var summary: String {
        switch self {
        case .forward(let p): return "forward \(p.cluster.key)"
        case .redirect(let status, let location): return "redirect \(status) \(location)"
        case .direct(let status, let body): return "direct \(status) \(body ?? "-")"
        case .noRoute: return "noRoute"
        case .blackHole: return "blackHole"
        case .passthrough: return "passthrough"
        case .noCluster(let host): return "noCluster \(host)"
        }
    }
}

/// A ServiceEntry with one HTTP port and one STATIC endpoint.
func serviceEntry(_ name: String, host: String, port: UInt16 = 80, address: String = "10.1.1.1", extra: String = "") -> String {
    """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: \(name), namespace: mesh}
    spec:
      hosts: [\(host)]
      ports: [{number: \(port), name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints: [{address: \(address)}]
    \(extra)
    ---

    """
}

/// A VirtualService with a single route to one host.
func virtualService(_ name: String, hosts: [String], to destination: String) -> String {
    """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: \(name), namespace: mesh}
    spec:
      hosts: [\(hosts.map { "\"\($0)\"" }.joined(separator: ", "))]
      http:
      - route:
        - destination: {host: \(destination)}
    ---

    """
}
