import InterposeConfig

/// The routing decision for one HTTP request.
public enum HTTPDecision: Sendable {
    /// Send to a cluster (after rewrites and header changes), mirroring as configured.
    case forward(ForwardPlan)
    case redirect(status: Int, location: String)
    case direct(status: Int, body: String?)
    /// A known host whose routes all failed to match: 404, response flag NR.
    case noRoute
    /// Unknown destination under REGISTRY_ONLY: 502 (BlackHoleCluster).
    case blackHole
    /// Unknown destination under ALLOW_ANY: straight to the original destination (PassthroughCluster).
    case passthrough
}

public struct ForwardPlan: Sendable {
    public var cluster: Cluster
    public var destination: Destination
    public var virtualService: String?
    public var route: String?
    public var rewrite: HTTPRewrite?
    public var uriRegexRewrite: CompiledRegexRewrite?
    public var requestHeaders: [HeaderOperations]
    public var responseHeaders: [HeaderOperations]
    public var mirrors: [(cluster: Cluster, percent: Double)]
    public var timeout: Double?
}

/// Why a request was routed as it was, for `interpose explain`.
public struct RouteTrace: Sendable {
    public var host = ""
    public var virtualService: String?
    public var lines: [String] = []
}

/// Pure routing: a table, a request, the original destination, the dice. No I/O.
public struct HTTPRouter {
    public let table: RoutingTable

    public init(table: RoutingTable) { self.table = table }

    public func route<R: RandomNumberGenerator>(_ request: RequestView, originalAddress: String?, using rng: inout R,
                                                trace: UnsafeMutablePointer<RouteTrace>? = nil) -> HTTPDecision {
        func note(_ s: String) { trace?.pointee.lines.append(s) }
        var host = normalizeHost(request.authority)
        trace?.pointee.host = host
        var vs = table.virtualService(forHost: host)
        if vs == nil, table.service(forHost: host) == nil, let addr = originalAddress, let owner = table.serviceHost(forAddress: addr) {
            note("host '\(host)' is unknown; original destination \(addr) belongs to service \(owner)")
            host = owner
            vs = table.virtualService(forHost: owner)
        }
        guard let vs else {
            if table.service(forHost: host) != nil {
                note("no VirtualService for \(host): default route to the service itself")
                let d = Destination(host: table.service(forHost: host)!.host, subset: nil, port: nil)
                guard let cluster = table.cluster(d, requestPort: request.port) else { return .noRoute }
                return .forward(ForwardPlan(cluster: cluster, destination: d, virtualService: nil, route: nil, rewrite: nil, uriRegexRewrite: nil,
                                            requestHeaders: [], responseHeaders: [], mirrors: [], timeout: nil))
            }
            note("host '\(host)' is not in the registry; outbound policy \(table.outboundTrafficPolicy.rawValue)")
            return table.outboundTrafficPolicy == .registryOnly ? .blackHole : .passthrough
        }
        trace?.pointee.virtualService = "\(vs.namespace)/\(vs.name)"
        note("VirtualService \(vs.namespace)/\(vs.name) serves host '\(host)'")
        let labels = table.proxy.labels
        for route in vs.http {
            var matched = route.matches.isEmpty
            if route.matches.isEmpty { note("route \(route.label): no match conditions, matches everything") }
            for (i, m) in route.matches.enumerated() {
                if let why = m.mismatch(request, sourceLabels: labels) {
                    note("route \(route.label) match[\(i)]\(m.name.map { " \($0)" } ?? ""): no — \(why)")
                } else {
                    note("route \(route.label) match[\(i)]\(m.name.map { " \($0)" } ?? ""): yes")
                    matched = true
                    break
                }
            }
            guard matched else { continue }
            if let r = route.redirect { return .redirect(status: r.code, location: redirectLocation(r, request)) }
            if let d = route.directResponse { return .direct(status: d.status, body: d.body) }
            guard let pick = WeightedChoice.pick(route.weights, using: &rng) else { return .noRoute }
            let dest = route.destinations[pick]
            note("destination \(dest.destination.host)\(dest.destination.subset.map { " subset \($0)" } ?? "") picked by weight \(dest.weight) of \(route.weights.reduce(0, +))")
            guard let cluster = table.cluster(dest.destination, requestPort: request.port) else {
                note("no cluster for \(dest.destination.host): the host is not a known service")
                return .forward(ForwardPlan(cluster: Cluster(key: ClusterKey(host: dest.destination.host, subset: dest.destination.subset, port: dest.destination.port ?? request.port),
                                                             endpoints: [], usesOriginalDestination: false, loadBalancer: .roundRobin, connectTimeout: 10,
                                                             maxRequestsPerConnection: nil, idleTimeout: 3600, isHTTP: true, serviceName: dest.destination.host, serviceNamespace: "unknown"),
                                            destination: dest.destination, virtualService: vs.name, route: route.name, rewrite: nil, uriRegexRewrite: nil,
                                            requestHeaders: [], responseHeaders: [], mirrors: [], timeout: route.timeout))
            }
            let mirrors = route.mirrors.compactMap { m -> (Cluster, Double)? in
                table.cluster(m.destination, requestPort: request.port).map { ($0, m.percent) }
            }
            return .forward(ForwardPlan(cluster: cluster, destination: dest.destination, virtualService: vs.name, route: route.name,
                                        rewrite: route.rewrite, uriRegexRewrite: route.uriRegexRewrite,
                                        requestHeaders: [route.headers.request, dest.headers.request],
                                        responseHeaders: [route.headers.response, dest.headers.response],
                                        mirrors: mirrors, timeout: route.timeout))
        }
        note("no route of \(vs.namespace)/\(vs.name) matched: 404 NR")
        return .noRoute
    }

    func redirectLocation(_ r: HTTPRedirect, _ req: RequestView) -> String {
        let scheme = r.scheme ?? req.scheme
        var authority = r.authority ?? req.authority
        if let port = r.port { authority = normalizeHost(authority) + ":\(port)" }
        let path = r.uri ?? req.pathAndQuery
        return "\(scheme)://\(authority)\(path)"
    }
}

/// Applies a route's rewrite to a path: prefix swap (Istio's `uri`) or regex rewrite.
public func rewritePath(_ path: String, rewrite: HTTPRewrite?, regex: CompiledRegexRewrite?, matchedPrefix: String?) -> String {
    if let regex { return regex.apply(path) }
    guard let newURI = rewrite?.uri else { return path }
    if let prefix = matchedPrefix, path.hasPrefix(prefix) { return newURI + path.dropFirst(prefix.count) }
    return newURI
}
