import InterposeCapture
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
    /// Service VIPs and CIDRs (ServiceEntry addresses) to their hosts.
    let vips: AddressIndex
    /// STATIC endpoint addresses to the hosts that own them (for routing by original destination).
    let endpointHosts: AddressIndex
    public let clusters: [ClusterKey: Cluster]
    let serviceHostsBySuffix: [(suffix: String, host: String)]

    init(generation: Int, proxy: ProxySettings, outboundTrafficPolicy: OutboundTrafficPolicy, virtualServices: [CompiledVirtualService],
         services: [String: ServiceInfo], clusters: [ClusterKey: Cluster], vips: AddressIndex, endpointHosts: AddressIndex) {
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

    /// Host precedence as Istio: exact (the name as sent, then its short forms, see `hostForms`), then the
    /// longest `*.` suffix, then `*`. Case-insensitive, port ignored.
    public func virtualService(forHost host: String) -> CompiledVirtualService? {
        let h = normalizeHost(host)
        if let i = exactHosts[h] { return virtualServices[i] }
        for name in hostForms(h).dropFirst() { if let i = exactHosts[name] { return virtualServices[i] } }
        for (suffix, i) in wildcardHosts where h.hasSuffix(suffix) { return virtualServices[i] }
        return catchAll.map { virtualServices[$0] }
    }

    public func service(forHost host: String) -> ServiceInfo? {
        let h = normalizeHost(host)
        if let s = services[h] { return s }
        for name in hostForms(h).dropFirst() { if let s = services[name] { return s } }
        for (suffix, owner) in serviceHostsBySuffix where h.hasSuffix(suffix) { return services[owner] }
        return nil
    }

    /// The names a request's Host can stand for, as Istio gives a `*.svc.cluster.local` service extra
    /// virtual-host domains: `reviews` (in this proxy's namespace), `reviews.shop` and `reviews.shop.svc`
    /// all reach `reviews.shop.svc.cluster.local`. The name as sent comes first.
    func hostForms(_ h: String) -> [String] {
        guard let first = h.utf8.first, first != UInt8(ascii: "*"), !h.utf8.contains(UInt8(ascii: ":")) else { return [h] }
        switch h.utf8.reduce(0, { $0 + ($1 == UInt8(ascii: ".") ? 1 : 0) }) {
        case 0: return [h, "\(h).\(proxy.namespace).svc.cluster.local"]
        case 1: return [h, "\(h).svc.cluster.local"]
        case 2 where h.hasSuffix(".svc"): return [h, "\(h).cluster.local"]
        default: return [h]
        }
    }

    /// The service whose VIP (an address or CIDR of a ServiceEntry) or STATIC endpoint is this original
    /// destination. `address` may carry a port (`10.0.0.1:80`, `[::1]:80`); `port`, or that port, picks
    /// among services sharing an address by the ports they declare. The most specific CIDR wins.
    /// The service whose VIP (a ServiceEntry address) is this destination. HTTP routes by VIP only, as
    /// Istio: a request to an endpoint's own IP with an unknown Host is outside the registry.
    public func serviceHost(forVIP address: String, port: UInt16? = nil) -> String? {
        let (ip, embeddedPort) = splitAddressPort(address)
        return vips.lookup(ip, port: port ?? embeddedPort)
    }

    public func serviceHost(forAddress address: String, port: UInt16? = nil) -> String? {
        let (ip, embeddedPort) = splitAddressPort(address)
        let p = port ?? embeddedPort
        return vips.lookup(ip, port: p) ?? endpointHosts.lookup(ip, port: p, strictPort: p != nil)
    }

    public func cluster(_ d: Destination, requestPort: UInt16) -> Cluster? {
        guard let svc = service(forHost: d.host) else { return nil }
        let port = d.port ?? svc.port(requestPort)?.number ?? requestPort
        return clusters[ClusterKey(host: svc.host, subset: d.subset, port: port)]
    }
}

/// Lowercased, without a `:port` suffix (IPv6 literals in brackets keep their colons).
public func normalizeHost(_ host: String) -> String {
    // Fast path: already lower case, no port, no brackets (the common Host header) -> no allocation.
    if !host.utf8.contains(where: { ($0 >= 65 && $0 <= 90) || $0 == 58 || $0 == 91 }) { return host }
    var h = Substring(host)
    if h.hasPrefix("[") {
        if let close = h.firstIndex(of: "]") { h = h[h.index(after: h.startIndex)..<close] }
    } else if let colon = h.lastIndex(of: ":"), h.firstIndex(of: ":") == colon {
        h = h[..<colon]
    }
    return h.lowercased()
}

/// Splits `10.0.0.1:80`, `[::1]:80`, `10.0.0.1`, `::1` into the address and the port, if any.
func splitAddressPort(_ s: String) -> (address: String, port: UInt16?) {
    if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
        let address = String(s[s.index(after: s.startIndex)..<close])
        let rest = s[s.index(after: close)...]
        return (address, rest.hasPrefix(":") ? UInt16(rest.dropFirst()) : nil)
    }
    if let colon = s.lastIndex(of: ":"), s.firstIndex(of: ":") == colon, let port = UInt16(s[s.index(after: colon)...]) {
        return (String(s[..<colon]), port)
    }
    return (s, nil)
}

/// Addresses and CIDRs to the service hosts that declare them, in config order.
struct AddressIndex: Sendable {
    struct Owner: Sendable {
        var host: String
        var ports: Set<UInt16>
    }
    struct Block: Sendable {
        var network: CIDR
        var owners: [Owner]
    }
    private var exact: [[UInt8]: [Owner]] = [:]
    /// CIDRs shorter than a host address, most specific first.
    private var blocks: [Block] = []

    init() {}

    /// Adds `10.0.0.1`, `10.0.0.0/24`, `2001:db8::/32`. Returns false when it is not an address or CIDR.
    @discardableResult
    mutating func add(_ text: String, host: String, ports: Set<UInt16>) -> Bool {
        guard case .success(let network) = CIDR.parse(text) else { return false }
        let owner = Owner(host: host, ports: ports)
        if network.isHost {
            exact[network.bytes, default: []].append(owner)
        } else if let i = blocks.firstIndex(where: { $0.network == network }) {
            blocks[i].owners.append(owner)
        } else {
            blocks.append(Block(network: network, owners: [owner]))
            blocks.sort { $0.network.prefixLength > $1.network.prefixLength }
        }
        return true
    }

    /// `strictPort`: only an owner that declares the port counts (endpoint addresses: the same IP on
    /// another port is some other server).
    func lookup(_ address: String, port: UInt16?, strictPort: Bool = false) -> String? {
        guard let bytes = IPAddressText.parse(address) else { return nil }
        if let owners = exact[bytes] { return pick(owners, port, strictPort) }
        for block in blocks where block.network.contains(bytes) {
            return pick(block.owners, port, strictPort)
        }
        return nil
    }

    /// The first owner declaring the port, else the first owner.
    private func pick(_ owners: [Owner], _ port: UInt16?, _ strict: Bool) -> String? {
        if let port, let o = owners.first(where: { $0.ports.contains(port) }) { return o.host }
        return strict ? nil : owners.first?.host
    }
}

