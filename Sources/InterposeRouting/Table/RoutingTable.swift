import InterposeConfig

/// The compiled configuration the data path reads: immutable, built once per config load and swapped
/// atomically on reload. Lookups are dictionary reads; regexes are precompiled.
public final class RoutingTable: Sendable {
    public let generation: Int
    public let proxy: ProxySettings
    public let outboundTrafficPolicy: OutboundTrafficPolicy
    public let virtualServices: [CompiledVirtualService]
    public let services: [String: ServiceInfo]
    let exactHosts: [String: Int]
    /// `*.suffix` hosts, longest suffix first; the value indexes `virtualServices`.
    let wildcardHosts: [(suffix: String, index: Int)]
    let catchAll: Int?
    /// Service VIPs (ServiceEntry addresses) to their host.
    let vips: [String: String]
    /// Endpoint addresses to the host that owns them (for routing by original destination).
    let endpointHosts: [String: String]
    public let clusters: [ClusterKey: Cluster]
    let serviceHostsBySuffix: [(suffix: String, host: String)]

    init(generation: Int, proxy: ProxySettings, outboundTrafficPolicy: OutboundTrafficPolicy, virtualServices: [CompiledVirtualService],
         services: [String: ServiceInfo], clusters: [ClusterKey: Cluster], vips: [String: String], endpointHosts: [String: String]) {
        self.generation = generation
        self.proxy = proxy
        self.outboundTrafficPolicy = outboundTrafficPolicy
        self.virtualServices = virtualServices
        self.services = services
        self.clusters = clusters
        self.vips = vips
        self.endpointHosts = endpointHosts
        var exact: [String: Int] = [:]
        var wild: [(String, Int)] = []
        var all: Int?
        for (i, vs) in virtualServices.enumerated() {
            for h in vs.hosts {
                if h == "*" { if all == nil { all = i } }
                else if h.hasPrefix("*.") { wild.append((String(h.dropFirst(1)), i)) }
                else if exact[h] == nil { exact[h] = i }
            }
        }
        exactHosts = exact
        wildcardHosts = wild.sorted { $0.0.count > $1.0.count }
        catchAll = all
        serviceHostsBySuffix = services.keys.filter { $0.hasPrefix("*.") }.map { (String($0.dropFirst(1)), $0) }.sorted { $0.0.count > $1.0.count }
    }

    /// Host precedence as Istio: exact, then the longest `*.` suffix, then `*`. Case-insensitive, port ignored.
    public func virtualService(forHost host: String) -> CompiledVirtualService? {
        let h = normalizeHost(host)
        if let i = exactHosts[h] { return virtualServices[i] }
        for (suffix, i) in wildcardHosts where h.hasSuffix(suffix) { return virtualServices[i] }
        return catchAll.map { virtualServices[$0] }
    }

    public func service(forHost host: String) -> ServiceInfo? {
        let h = normalizeHost(host)
        if let s = services[h] { return s }
        for (suffix, owner) in serviceHostsBySuffix where h.hasSuffix(suffix) { return services[owner] }
        return nil
    }

    /// The service whose VIP (or endpoint address) is this original destination.
    public func serviceHost(forAddress address: String) -> String? {
        vips[address] ?? endpointHosts[address]
    }

    public func cluster(_ d: Destination, requestPort: UInt16) -> Cluster? {
        guard let svc = service(forHost: d.host) else { return nil }
        let port = d.port ?? svc.port(requestPort)?.number ?? requestPort
        return clusters[ClusterKey(host: svc.host, subset: d.subset, port: port)]
    }
}

/// Lowercased, without a `:port` suffix (IPv6 literals in brackets keep their colons).
public func normalizeHost(_ host: String) -> String {
    var h = Substring(host)
    if h.hasPrefix("[") {
        if let close = h.firstIndex(of: "]") { h = h[h.index(after: h.startIndex)..<close] }
    } else if let colon = h.lastIndex(of: ":"), h.firstIndex(of: ":") == colon {
        h = h[..<colon]
    }
    return h.lowercased()
}
