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
    /// The route names a destination host that is not a known service: 503, response flag NC.
    case noCluster(host: String)
}

/// Where a routed request goes and what is done to it on the way. Immutable and shared: a connection's
/// RouteMemo hands the same plan to every request that takes the same route.
public final class ForwardPlan: Sendable {
    public let cluster: Cluster
    public let destination: Destination
    public let virtualService: String?
    public let route: String?
    public let rewrite: HTTPRewrite?
    public let uriRegexRewrite: CompiledRegexRewrite?
    public let requestHeaders: [HeaderOperations]
    public let responseHeaders: [HeaderOperations]
    public let mirrors: [(cluster: Cluster, percent: Double)]
    public let timeout: Double?
    /// What `rewrite.uri` replaces: the uri prefix of the match block that chose this route, `/` when that
    /// block (or the route) has no uri condition, as Istio matches it with prefix `/`; nil for an exact or
    /// regex uri match, where the whole path is replaced. See `rewritePath`.
    public let matchedPrefix: String?
    /// Whether any header is set, added or removed on the request.
    public let changesRequestHeaders: Bool

    public init(cluster: Cluster, destination: Destination, virtualService: String? = nil, route: String? = nil, rewrite: HTTPRewrite? = nil,
                uriRegexRewrite: CompiledRegexRewrite? = nil, requestHeaders: [HeaderOperations] = [], responseHeaders: [HeaderOperations] = [],
                mirrors: [(cluster: Cluster, percent: Double)] = [], timeout: Double? = nil, matchedPrefix: String? = nil) {
        self.cluster = cluster
        self.destination = destination
        self.virtualService = virtualService
        self.route = route
        self.rewrite = rewrite
        self.uriRegexRewrite = uriRegexRewrite
        self.requestHeaders = requestHeaders
        self.responseHeaders = responseHeaders
        self.mirrors = mirrors
        self.timeout = timeout
        self.matchedPrefix = matchedPrefix
        self.changesRequestHeaders = requestHeaders.contains { !$0.set.isEmpty || !$0.add.isEmpty || !$0.remove.isEmpty }
    }

    /// The path and query to send upstream after this plan's rewrite (unchanged without one).
    public func rewrittenPath(_ pathAndQuery: String) -> String {
        rewritePath(pathAndQuery, rewrite: rewrite, regex: uriRegexRewrite, matchedPrefix: matchedPrefix)
    }
}

/// What a request's authority (and original destination) resolves to, before its routes are matched.
enum HostResolution {
    case virtualService(host: String, CompiledVirtualService)
    /// A known service without a VirtualService: its default route (nil: no cluster for the port).
    case serviceDefault(ForwardPlan?)
    case blackHole
    case passthrough
}

/// One connection's memory of the routing work that does not depend on a request's details: what its
/// authority resolves to and the plan of each (route, match block, destination) taken so far. Requests
/// on a keep-alive connection usually repeat all of it. Confined to the connection's event loop; forgets
/// everything when the table changes.
public final class RouteMemo {
    var generation = -1
    var authority = ""
    var port: UInt16 = 0
    var originalAddress: String?
    var resolution: HostResolution?
    var plans: [Int: ForwardPlan] = [:]
    var plansHost: String?

    public init() {}

    /// The remembered resolution, if it was made for this table, authority, port and address.
    func resolution(_ generation: Int, _ request: RequestView, _ originalAddress: String?) -> HostResolution? {
        guard generation == self.generation, request.port == port, request.authority == authority, originalAddress == self.originalAddress else { return nil }
        return resolution
    }

    func remember(_ resolution: HostResolution, _ generation: Int, _ request: RequestView, _ originalAddress: String?) {
        // Plans belong to one table, one port and one VirtualService.
        var host: String?
        if case .virtualService(let h, _) = resolution { host = h }
        if generation != self.generation || request.port != port || host != plansHost {
            plans.removeAll(keepingCapacity: true)
            plansHost = host
        }
        self.generation = generation
        self.authority = request.authority
        self.port = request.port
        self.originalAddress = originalAddress
        self.resolution = resolution
    }
}

/// Why a request was routed as it was, for `interpose explain`.
public struct RouteTrace: Sendable {
    public var host = ""
    public var virtualService: String?
    public var lines: [String] = []
    public init() {}
}

/// Pure routing: a table, a request, the original destination, the dice. No I/O.
public struct HTTPRouter {
    public let table: RoutingTable

    public init(table: RoutingTable) { self.table = table }

    /// Routes one request. `memo` (one per connection) skips the work the previous requests already did;
    /// with a `trace` (`interpose explain`) every step is done and worded.
    public func route<R: RandomNumberGenerator>(_ request: RequestView, originalAddress: String?, using rng: inout R,
                                                memo: RouteMemo? = nil, trace: UnsafeMutablePointer<RouteTrace>? = nil) -> HTTPDecision {
        // The trace is for `interpose explain`: on the request path nothing is worded.
        func note(_ s: @autoclosure () -> String) { if let trace { trace.pointee.lines.append(s()) } }
        let memo = trace == nil ? memo : nil
        let resolution: HostResolution
        if let known = memo?.resolution(table.generation, request, originalAddress) {
            resolution = known
        } else {
            resolution = resolveHost(request, originalAddress: originalAddress, trace: trace)
            memo?.remember(resolution, table.generation, request, originalAddress)
        }
        let vs: CompiledVirtualService
        switch resolution {
        case .blackHole: return .blackHole
        case .passthrough: return .passthrough
        case .serviceDefault(let plan): return plan.map { .forward($0) } ?? .noRoute
        case .virtualService(_, let v): vs = v
        }
        let labels = table.proxy.labels
        for route in vs.http {
            var matched = route.matches.isEmpty
            var matchIndex = -1
            if route.matches.isEmpty { note("route \(route.label): no match conditions, matches everything") }
            for (i, m) in route.matches.enumerated() {
                if let why = m.mismatch(request, sourceLabels: labels, explain: trace != nil) {
                    note("route \(route.label) match[\(i)]\(m.name.map { " \($0)" } ?? ""): no — \(why)")
                } else {
                    note("route \(route.label) match[\(i)]\(m.name.map { " \($0)" } ?? ""): yes")
                    matched = true
                    matchIndex = i
                    break
                }
            }
            guard matched else { continue }
            if let r = route.redirect {
                let location = redirectLocation(r, request)
                note("redirect \(r.code) to \(location)")
                return .redirect(status: r.code, location: location)
            }
            if let d = route.directResponse {
                note("direct response \(d.status)")
                return .direct(status: d.status, body: d.body)
            }
            guard let pick = WeightedChoice.pick(route.weights, using: &rng) else {
                note("route \(route.label) has no destination with a weight above 0: 404 NR")
                return .noRoute
            }
            let dest = route.destinations[pick]
            note("destination \(dest.destination.host)\(dest.destination.subset.map { " subset \($0)" } ?? "") picked by weight \(dest.weight) of \(route.weights.reduce(0, +))")
            // Route, match block and destination: what the plan depends on besides the table and the port.
            let slot = (route.index << 32) | ((matchIndex + 1) << 16) | pick
            if let plan = memo?.plans[slot] { return .forward(plan) }
            guard let cluster = table.cluster(dest.destination, requestPort: request.port) else {
                note("no cluster for \(dest.destination.host): the host is not a known service (503 NC)")
                return .noCluster(host: dest.destination.host)
            }
            let mirrors = route.mirrors.compactMap { m -> (Cluster, Double)? in
                guard let c = table.cluster(m.destination, requestPort: request.port) else {
                    note("mirror to \(m.destination.host) skipped: not a known service")
                    return nil
                }
                note("mirror \(m.percent)% to \(c.key)")
                return (c, m.percent)
            }
            let matchedPrefix = matchIndex < 0 ? "/" : route.matches[matchIndex].rewritablePrefix
            let plan = ForwardPlan(cluster: cluster, destination: dest.destination, virtualService: vs.name, route: route.name,
                                   rewrite: route.rewrite, uriRegexRewrite: route.uriRegexRewrite,
                                   requestHeaders: [route.headers.request, dest.headers.request],
                                   responseHeaders: [route.headers.response, dest.headers.response],
                                   mirrors: mirrors, timeout: route.timeout, matchedPrefix: matchedPrefix)
            memo?.plans[slot] = plan
            return .forward(plan)
        }
        note("no route of \(vs.namespace)/\(vs.name) matched: 404 NR")
        return .noRoute
    }

    /// Host precedence and the fallbacks when no VirtualService serves the authority: the service of
    /// the original destination's address, a service's default route, then the outbound policy.
    func resolveHost(_ request: RequestView, originalAddress: String?, trace: UnsafeMutablePointer<RouteTrace>?) -> HostResolution {
        func note(_ s: @autoclosure () -> String) { if let trace { trace.pointee.lines.append(s()) } }
        var host = normalizeHost(request.authority)
        trace?.pointee.host = host
        var vs = table.virtualService(forHost: host)
        if vs == nil, table.service(forHost: host) == nil, let addr = originalAddress, let owner = table.serviceHost(forVIP: addr, port: request.port) {
            note("host '\(host)' is unknown; original destination \(addr) belongs to service \(owner)")
            host = owner
            vs = table.virtualService(forHost: owner)
        }
        guard let vs else {
            if let service = table.service(forHost: host) {
                note("no VirtualService for \(host): default route to the service itself")
                let d = Destination(host: service.host, subset: nil, port: nil)
                return .serviceDefault(table.cluster(d, requestPort: request.port).map { ForwardPlan(cluster: $0, destination: d) })
            }
            note("host '\(host)' is not in the registry; outbound policy \(table.outboundTrafficPolicy.rawValue)")
            return table.outboundTrafficPolicy == .registryOnly ? .blackHole : .passthrough
        }
        trace?.pointee.virtualService = "\(vs.namespace)/\(vs.name)"
        note("VirtualService \(vs.namespace)/\(vs.name) serves host '\(host)'")
        return .virtualService(host: host, vs)
    }

    /// Envoy's redirect: the scheme, host, port and path given replace the request's; a `uri` without a
    /// query keeps the request's query; changing the scheme drops the old scheme's default port
    /// (`http://a:80` -> `https://a`).
    func redirectLocation(_ r: HTTPRedirect, _ req: RequestView) -> String {
        let scheme = r.scheme ?? req.scheme
        var authority: String
        if let a = r.authority {
            authority = a
        } else {
            authority = req.authority
            let (host, port) = splitAuthority(req.authority)
            if let port {
                var removePort = r.port != nil
                if scheme != req.scheme {
                    removePort = removePort || (req.scheme == "https" && port == 443) || (req.scheme == "http" && port == 80)
                }
                if removePort { authority = host }
            }
        }
        if let port = r.port { authority += ":\(port)" }
        var path = req.pathAndQuery
        if let uri = r.uri {
            path = uri
            if !uri.contains("?"), let q = req.pathAndQuery.firstIndex(of: "?") { path += req.pathAndQuery[q...] }
        }
        return "\(scheme)://\(authority)\(path)"
    }
}

/// `host:port` or `[v6]:port` into the host (brackets kept) and the port.
func splitAuthority(_ authority: String) -> (host: String, port: UInt16?) {
    if authority.hasPrefix("[") {
        guard let close = authority.firstIndex(of: "]") else { return (authority, nil) }
        let rest = authority[authority.index(after: close)...]
        if rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()) { return (String(authority[...close]), p) }
        return (authority, nil)
    }
    if let colon = authority.lastIndex(of: ":"), authority.firstIndex(of: ":") == colon, let p = UInt16(authority[authority.index(after: colon)...]) {
        return (String(authority[..<colon]), p)
    }
    return (authority, nil)
}

/// Applies a route's rewrite to a request path (with or without its query string, which is kept):
/// `uriRegexRewrite` substitutes every match in the path; `uri` swaps the matched prefix (Envoy's
/// `prefix_rewrite`; compared ignoring ASCII case, for `ignoreUriCase`) or, with no prefix (exact or regex
/// match), replaces the whole path.
public func rewritePath(_ path: String, rewrite: HTTPRewrite?, regex: CompiledRegexRewrite?, matchedPrefix: String?) -> String {
    let q = path.firstIndex(of: "?")
    let pathOnly = q.map { String(path[..<$0]) } ?? path
    let query = q.map { String(path[$0...]) } ?? ""
    if let regex { return regex.apply(pathOnly) + query }
    guard let newURI = rewrite?.uri else { return path }
    if let prefix = matchedPrefix {
        let p = Array(prefix.utf8), bytes = Array(pathOnly.utf8)
        func lower(_ b: UInt8) -> UInt8 { (65...90).contains(b) ? b + 32 : b }
        if bytes.count >= p.count, zip(bytes, p).allSatisfy({ lower($0) == lower($1) }) {
            return newURI + String(decoding: bytes[p.count...], as: UTF8.self) + query
        }
    }
    return newURI + query
}
