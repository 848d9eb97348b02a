import InterposeCapture
import InterposeConfig

/// Compiles a validated ConfigBundle into a RoutingTable. `resolved` maps DNS names to addresses
/// (the DNS refresher fills it; names absent from it have no endpoints yet).
public enum TableCompiler {
    public static let defaultConnectTimeout = 10.0
    public static let defaultIdleTimeout = 3600.0

    public static func compile(_ bundle: ConfigBundle, generation: Int, resolved: [String: [String]] = [:]) -> RoutingTable {
        var services: [String: ServiceInfo] = [:]
        var vips = AddressIndex()
        var endpointHosts = AddressIndex()
        for se in bundle.serviceEntries {
            // The first ServiceEntry to name a host owns it; an address shared by several hosts goes to
            // the first one that declares the request's port (see AddressIndex).
            for host in se.hosts where services[host] == nil {
                services[host] = ServiceInfo(host: host, namespace: se.meta.namespace, ports: se.ports, resolution: se.resolution, endpoints: se.endpoints)
                let ports = Set(se.ports.map(\.number))
                for a in se.addresses { vips.add(a, host: host, ports: ports) }
                if se.resolution == .staticAddresses {
                    for e in se.endpoints {
                        // The ports this endpoint really listens on: its own map, else targetPort, else the service port.
                        let own = Set(se.ports.map { e.ports[$0.name] ?? $0.targetPort ?? $0.number })
                        endpointHosts.add(e.address, host: host, ports: own)
                    }
                }
            }
        }

        var clusters: [ClusterKey: Cluster] = [:]
        for (host, svc) in services {
            let rule = bundle.destinationRule(forHost: host)
            let subsets: [Subset?] = [nil] + (rule?.subsets ?? []).map { Optional($0) }
            for port in svc.ports {
                for subset in subsets {
                    let key = ClusterKey(host: host, subset: subset?.name, port: port.number)
                    let policy = effectivePolicy(rule: rule, subset: subset, port: port.number)
                    let endpoints = self.endpoints(svc, port: port, subset: subset, resolved: resolved)
                    let isPassthrough = svc.resolution == .none && svc.endpoints.isEmpty || policy.loadBalancer == .passthrough
                    let name = host.split(separator: ".").first.map(String.init) ?? host
                    let cluster = Cluster(key: key, endpoints: endpoints, usesOriginalDestination: isPassthrough,
                                          loadBalancer: policy.loadBalancer ?? .leastRequest,
                                          connectTimeout: policy.connectionPool?.connectTimeout ?? defaultConnectTimeout,
                                          maxRequestsPerConnection: policy.connectionPool?.maxRequestsPerConnection,
                                          idleTimeout: policy.connectionPool?.idleTimeout ?? defaultIdleTimeout,
                                          tcpIdleTimeout: policy.connectionPool?.tcpIdleTimeout ?? 3600,
                                          isHTTP: port.isHTTP, serviceName: name, serviceNamespace: svc.namespace, id: clusters.count)
                    clusters[key] = cluster
                }
            }
        }

        let compiled = bundle.virtualServices.map { vs -> CompiledVirtualService in
            // Short names resolve against the VirtualService's namespace (ConfigBundle.resolveHost).
            func resolved(_ d: Destination) -> Destination {
                var d = d
                d.host = bundle.resolveHost(d.host, namespace: vs.meta.namespace)
                return d
            }
            func routable(_ all: [WeightedDestination]) -> (destinations: [WeightedDestination], weights: [UInt32]) {
                // Zero weights are dropped when there are several; a single destination takes everything.
                let kept = all.filter { $0.weight > 0 || all.count == 1 }.map { w -> WeightedDestination in
                    var w = w
                    w.destination = resolved(w.destination)
                    return w
                }
                return (kept, kept.map { max($0.weight, all.count == 1 ? 1 : 0) })
            }
            let http = vs.http.enumerated().map { i, r in
                let (destinations, weights) = routable(r.destinations)
                return CompiledRoute(index: i, name: r.name, matches: r.matches.map(CompiledHTTPMatch.init),
                                     destinations: destinations, weights: weights,
                                     redirect: r.redirect, directResponse: r.directResponse, rewrite: r.rewrite,
                                     uriRegexRewrite: r.rewrite?.uriRegex.flatMap { CompiledRegexRewrite($0.match, $0.rewrite) },
                                     headers: r.headers, mirrors: r.mirrors.map { m -> Mirror in var m = m; m.destination = resolved(m.destination); return m },
                                     timeout: r.timeout)
            }
            let tcp = vs.tcp.enumerated().map { i, r in
                let (destinations, weights) = routable(r.destinations)
                return CompiledTCPRoute(index: i, matches: r.matches, destinations: destinations, weights: weights)
            }
            return CompiledVirtualService(name: vs.meta.name, namespace: vs.meta.namespace,
                                          hosts: vs.hosts.map { bundle.resolveHost($0, namespace: vs.meta.namespace) }, http: http, tcp: tcp)
        }
        return RoutingTable(generation: generation, proxy: bundle.proxy, outboundTrafficPolicy: bundle.outboundTrafficPolicy,
                            virtualServices: compiled, services: services, clusters: clusters, vips: vips, endpointHosts: endpointHosts)
    }

    /// Istio's merge (`MergeSubsetTrafficPolicy`): the rule's policy, or its port-level settings for this port
    /// instead; then each field the subset sets overrides it, or, when the subset has port-level settings
    /// for this port, those replace every field. Port-level settings do not inherit: a field they leave out
    /// takes its default, not the level below.
    static func effectivePolicy(rule: DestinationRule?, subset: Subset?, port: UInt16) -> TrafficPolicy {
        func atPort(_ policy: TrafficPolicy?) -> (policy: TrafficPolicy?, portLevel: Bool) {
            guard let policy else { return (nil, false) }
            if let p = policy.portSettings[port] { return (p, true) }
            return (policy, false)
        }
        var out = atPort(rule?.trafficPolicy).policy ?? TrafficPolicy()
        out.portSettings = [:]
        let (sub, subsetPortLevel) = atPort(subset?.trafficPolicy)
        if let sub {
            if sub.loadBalancer != nil || subsetPortLevel { out.loadBalancer = sub.loadBalancer }
            if sub.connectionPool != nil || subsetPortLevel { out.connectionPool = sub.connectionPool }
        }
        return out
    }

    static func endpoints(_ svc: ServiceInfo, port: ServicePort, subset: Subset?, resolved: [String: [String]]) -> [Endpoint] {
        let wanted = subset?.labels ?? [:]
        func addresses(_ name: String) -> [String] {
            if isIPLiteral(name) { return [name] }
            return resolved[name] ?? []
        }
        switch svc.resolution {
        case .none where svc.endpoints.isEmpty:
            return []
        case .dns where svc.endpoints.isEmpty, .dnsRoundRobin where svc.endpoints.isEmpty:
            return addresses(svc.host).map { Endpoint(address: $0, port: port.targetPort ?? port.number, weight: 1, labels: [:]) }
        default:
            var out: [Endpoint] = []
            for e in svc.endpoints where wanted.allSatisfy({ e.labels[$0.key] == $0.value }) {
                let p = e.ports[port.name] ?? port.targetPort ?? port.number
                for a in addresses(e.address) { out.append(Endpoint(address: a, port: p, weight: e.weight, labels: e.labels)) }
            }
            return out
        }
    }

    /// Names the DNS refresher must resolve for this bundle.
    public static func namesToResolve(_ bundle: ConfigBundle) -> Set<String> {
        var names: Set<String> = []
        for se in bundle.serviceEntries where se.resolution == .dns || se.resolution == .dnsRoundRobin {
            if se.endpoints.isEmpty { names.formUnion(se.hosts.filter { !$0.hasPrefix("*") }) }
            else { names.formUnion(se.endpoints.map(\.address).filter { !isIPLiteral($0) }) }
        }
        return names
    }
}

public func isIPLiteral(_ s: String) -> Bool {
    IPAddressText.parse(s) != nil
}
