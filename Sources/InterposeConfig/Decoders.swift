import Foundation
import InterposeCapture
import Yams

/// Turns one YAML document's `spec` into a resource, reporting problems with their field paths.
/// Fields Interpose does not act on yet are accepted with a warning so existing Istio files load.
struct ResourceDecoder {
    let diagnostics: Diagnostics

    // MARK: shared pieces

    func stringMatch(_ r: MapReader) -> StringMatch? {
        defer { r.finish() }
        let given = ["exact", "prefix", "regex"].filter { r.has($0) }
        if given.count > 1 {
            diagnostics.error(r.path, "a string match takes one of exact, prefix or regex, not \(given.joined(separator: " and "))", line: r.node.line)
        }
        if let v = r.string("exact") { r.accept("prefix", "regex"); return .exact(v) }
        if let v = r.string("prefix") { r.accept("regex"); return .prefix(v) }
        if let v = r.string("regex") {
            if (try? Regex(v)) == nil { diagnostics.error(r.sub("regex"), "'\(v)' is not a valid regular expression", line: r.raw("regex")?.line) }
            return .regex(v)
        }
        return nil
    }

    func matchList(_ r: MapReader, _ key: String, lowercaseKeys: Bool) -> [(String, StringMatch?)] {
        r.keyedMaps(key).map { (lowercaseKeys ? $0.0.lowercased() : $0.0, stringMatch($0.1)) }
    }

    func port(_ r: MapReader, _ key: String) -> UInt16? {
        r.int(key, range: 1...65535).map(UInt16.init)
    }

    func destination(_ r: MapReader) -> Destination? {
        defer { r.finish() }
        let host = r.string("host")
        let subset = r.string("subset")
        var port: UInt16?
        if let p = r.map("port") {
            port = self.port(p, "number")
            p.finish()
        }
        guard let host, !host.isEmpty else {
            diagnostics.error(r.sub("host"), "a destination needs a host", line: r.node.line)
            return nil
        }
        return Destination(host: host.lowercased(), subset: subset, port: port)
    }

    func headerOperations(_ r: MapReader?) -> HeaderOperations {
        guard let r else { return HeaderOperations() }
        defer { r.finish() }
        var ops = HeaderOperations()
        ops.set = r.stringMap("set").sorted { $0.key < $1.key }.map { ($0.key.lowercased(), $0.value) }
        ops.add = r.stringMap("add").sorted { $0.key < $1.key }.map { ($0.key.lowercased(), $0.value) }
        ops.remove = r.strings("remove").map { $0.lowercased() }
        return ops
    }

    func headers(_ r: MapReader?) -> Headers {
        guard let r else { return Headers() }
        defer { r.finish() }
        return Headers(request: headerOperations(r.map("request")), response: headerOperations(r.map("response")))
    }

    func weightedDestinations(_ r: MapReader, _ key: String) -> [WeightedDestination] {
        let items = r.maps(key)
        var out: [WeightedDestination] = []
        var invalid = false
        for item in items {
            defer { item.finish() }
            // Read every field first, so an error in one does not also report the others as unknown.
            let d = item.map("destination").flatMap(destination)
            let headers = headers(item.map("headers"))
            var weight: UInt32 = items.count == 1 ? 100 : 0
            if let w = item.raw("weight") {
                guard let v = w.string.flatMap(Int.init) else {
                    diagnostics.error(item.sub("weight"), "expected an integer", line: w.line); invalid = true; continue
                }
                if v < 0 {
                    diagnostics.error(item.sub("weight"), "weight \(v) is negative; weights are relative integers >= 0", line: w.line); invalid = true; continue
                }
                weight = UInt32(min(v, Int(UInt32.max)))
            }
            guard let d else {
                if !item.has("destination") { diagnostics.error(item.sub("destination"), "a route needs a destination", line: item.node.line) }
                invalid = true
                continue
            }
            out.append(WeightedDestination(destination: d, weight: weight, headers: headers))
        }
        if out.count > 1 && out.allSatisfy({ $0.weight == 0 }) {
            if !items.contains(where: { $0.has("weight") }) {
                // Several destinations without weights share the traffic equally.
                out = out.map { var d = $0; d.weight = 1; return d }
            } else if !invalid {
                // Istio's validation: with several destinations the weights cannot all be 0 (nothing could be picked).
                diagnostics.error(r.sub(key), "total destination weight is 0", line: r.raw(key)?.line)
            }
        }
        return out
    }

    // MARK: ServiceEntry

    func serviceEntry(_ spec: MapReader, meta: ResourceMeta) -> ServiceEntry {
        defer { spec.finish() }
        let hosts = spec.strings("hosts").map { $0.lowercased() }
        if hosts.isEmpty { diagnostics.error(spec.sub("hosts"), "a ServiceEntry needs at least one host") }
        var ports: [ServicePort] = []
        for p in spec.maps("ports") {
            defer { p.finish() }
            let number = port(p, "number")
            let protocolName = (p.string("protocol") ?? "TCP").uppercased()
            let name = p.string("name")
            let targetPort = port(p, "targetPort")
            guard let number else {
                if !p.has("number") { diagnostics.error(p.sub("number"), "a port needs a number", line: p.node.line) }
                continue
            }
            if ports.contains(where: { $0.number == number }) { diagnostics.error(p.sub("number"), "port \(number) is listed twice", line: p.node.line) }
            ports.append(ServicePort(number: number, protocolName: protocolName, name: name ?? "port-\(number)", targetPort: targetPort))
        }
        let resolutionText = spec.string("resolution") ?? "NONE"
        let resolution = Resolution(rawValue: resolutionText.uppercased()) ?? {
            diagnostics.error(spec.sub("resolution"), "'\(resolutionText)' is not NONE, STATIC, DNS or DNS_ROUND_ROBIN")
            return .none
        }()
        var endpoints: [WorkloadEntryEndpoint] = []
        for e in spec.maps("endpoints") {
            defer { e.finish() }
            let address = e.string("address")
            var ports: [String: UInt16] = [:]
            for (name, value) in e.stringMap("ports").sorted(by: { $0.key < $1.key }) {
                guard let v = UInt16(value), v > 0 else { diagnostics.error(e.sub("ports.\(name)"), "'\(value)' is not a port number 1-65535"); continue }
                ports[name] = v
            }
            // Weight 0 is "unset" in the proto: the endpoint gets the default weight 1.
            let weight = e.int("weight", range: 0...Int(UInt32.max)).map(UInt32.init) ?? 1
            let labels = e.stringMap("labels")
            let locality = e.string("locality")
            e.accept("network", "serviceAccount")
            guard let address, !address.isEmpty else {
                diagnostics.error(e.sub("address"), "an endpoint needs an address", line: e.node.line)
                continue
            }
            endpoints.append(WorkloadEntryEndpoint(address: address, ports: ports, labels: labels, weight: max(weight, 1), locality: locality))
        }
        if resolution == .staticAddresses && endpoints.isEmpty {
            diagnostics.error(spec.sub("endpoints"), "resolution STATIC needs endpoints")
        }
        // Istio's validation: NONE takes no endpoints; STATIC endpoints are addresses, not names (use DNS).
        if resolution == .none && !endpoints.isEmpty {
            diagnostics.error(spec.sub("endpoints"), "resolution NONE takes no endpoints (it connects to the original destination)")
        }
        if resolution == .staticAddresses {
            for (i, e) in endpoints.enumerated() where IPAddressText.parse(e.address) == nil && !e.address.hasPrefix("unix://") {
                diagnostics.error(spec.sub("endpoints[\(i)].address"), "'\(e.address)' is not an IP address; resolution STATIC needs addresses (use DNS for names)")
            }
        }
        spec.accept("exportTo", "subjectAltNames", "workloadSelector")
        return ServiceEntry(meta: meta, hosts: hosts, addresses: spec.strings("addresses"), ports: ports,
                            location: spec.string("location") ?? "MESH_EXTERNAL", resolution: resolution, endpoints: endpoints)
    }

    // MARK: VirtualService

    func virtualService(_ spec: MapReader, meta: ResourceMeta) -> VirtualService {
        defer { spec.finish() }
        let hosts = spec.strings("hosts").map { $0.lowercased() }
        if hosts.isEmpty { diagnostics.error(spec.sub("hosts"), "a VirtualService needs at least one host") }
        var http: [HTTPRoute] = []
        for r in spec.maps("http") {
            defer { r.finish() }
            var matches: [HTTPMatchRequest] = []
            for m in r.maps("match") {
                defer { m.finish() }
                var match = HTTPMatchRequest()
                match.name = m.string("name")
                match.uri = m.map("uri").flatMap(stringMatch)
                match.scheme = m.map("scheme").flatMap(stringMatch)
                match.method = m.map("method").flatMap(stringMatch)
                match.authority = m.map("authority").flatMap(stringMatch)
                match.headers = matchList(m, "headers", lowercaseKeys: true)
                match.withoutHeaders = matchList(m, "withoutHeaders", lowercaseKeys: true)
                match.queryParams = matchList(m, "queryParams", lowercaseKeys: false)
                match.port = port(m, "port")
                match.sourceLabels = m.stringMap("sourceLabels")
                match.ignoreUriCase = m.bool("ignoreUriCase") ?? false
                m.accept("gateways", "sourceNamespace", "statPrefix")
                matches.append(match)
            }
            var redirect: HTTPRedirect?
            if let rr = r.map("redirect") {
                defer { rr.finish() }
                let code = rr.int("redirectCode", range: 300...399) ?? 301
                redirect = HTTPRedirect(uri: rr.string("uri"), authority: rr.string("authority"), scheme: rr.string("scheme"), port: port(rr, "port"), code: code)
            }
            var direct: DirectResponse?
            if let dr = r.map("directResponse") {
                defer { dr.finish() }
                var body: String?
                if let b = dr.map("body") {
                    body = b.string("string") ?? b.string("bytes").flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
                    b.finish()
                }
                direct = DirectResponse(status: dr.int("status", range: 200...599) ?? 200, body: body)
            }
            var rewrite: HTTPRewrite?
            if let rw = r.map("rewrite") {
                defer { rw.finish() }
                var regex: (String, String)?
                if let rx = rw.map("uriRegexRewrite") {
                    if let m = rx.string("match"), let s = rx.string("rewrite") {
                        if (try? Regex(m)) == nil { diagnostics.error(rx.sub("match"), "'\(m)' is not a valid regular expression") }
                        regex = (m, s)
                    }
                    rx.finish()
                }
                rewrite = HTTPRewrite(uri: rw.string("uri"), authority: rw.string("authority"), uriRegex: regex)
            }
            var mirrors: [Mirror] = []
            func percentage(_ owner: MapReader, _ key: String) -> Double {
                guard let mp = owner.map(key) else { return 100 }
                defer { mp.finish() }
                let v = mp.double("value") ?? 100
                if !(0...100).contains(v) {
                    diagnostics.error(mp.sub("value"), "\(v) is not a percentage 0-100", line: mp.raw("value")?.line)
                    return min(max(v, 0), 100)
                }
                return v
            }
            if let m = r.map("mirror"), let d = destination(m) {
                var percent = 100.0
                if r.has("mirrorPercentage") { percent = percentage(r, "mirrorPercentage") }
                else if let legacy = r.int("mirrorPercent", range: 0...100) { percent = Double(legacy) }
                mirrors.append(Mirror(destination: d, percent: percent))
            }
            for m in r.maps("mirrors") {
                defer { m.finish() }
                let percent = percentage(m, "percentage")
                guard let dr = m.map("destination") else { diagnostics.error(m.sub("destination"), "a mirror needs a destination", line: m.node.line); continue }
                guard let d = destination(dr) else { continue }
                mirrors.append(Mirror(destination: d, percent: percent))
            }
            let route = weightedDestinations(r, "route")
            // An empty or missing route list; a list whose items all failed has been reported item by item.
            if route.isEmpty && redirect == nil && direct == nil && (r.raw("route")?.sequence?.isEmpty ?? !r.has("route")) {
                diagnostics.error(r.path, "an http route needs a route, a redirect or a directResponse", line: r.node.line)
            }
            r.accept("retries", "fault", "corsPolicy", "delegate", "match")
            if r.has("retries") { diagnostics.warning(r.sub("retries"), "retries are read but not applied yet") }
            if r.has("fault") { diagnostics.warning(r.sub("fault"), "fault injection is read but not applied yet") }
            http.append(HTTPRoute(name: r.string("name"), matches: matches, destinations: route, redirect: redirect, directResponse: direct,
                                  rewrite: rewrite, headers: headers(r.map("headers")), mirrors: mirrors, timeout: r.duration("timeout")))
        }
        var tcp: [TCPRoute] = []
        for r in spec.maps("tcp") {
            defer { r.finish() }
            var matches: [L4Match] = []
            for m in r.maps("match") {
                defer { m.finish() }
                m.accept("gateways", "sourceNamespace")
                matches.append(L4Match(destinationSubnets: cidrs(m, "destinationSubnets"), port: port(m, "port"), sourceLabels: m.stringMap("sourceLabels")))
            }
            let route = weightedDestinations(r, "route")
            if route.isEmpty && (r.raw("route")?.sequence?.isEmpty ?? !r.has("route")) { diagnostics.error(r.sub("route"), "a tcp route needs a route", line: r.node.line) }
            tcp.append(TCPRoute(matches: matches, destinations: route))
        }
        spec.accept("gateways", "exportTo", "tls")
        if spec.has("tls") { diagnostics.warning(spec.sub("tls"), "tls routes are read but not applied yet (TLS passes through as TCP)") }
        return VirtualService(meta: meta, hosts: hosts, http: http, tcp: tcp)
    }

    // MARK: DestinationRule

    func trafficPolicy(_ r: MapReader?) -> TrafficPolicy? {
        guard let r else { return nil }
        defer { r.finish() }
        var policy = TrafficPolicy()
        if let lb = r.map("loadBalancer") {
            defer { lb.finish() }
            if let simple = lb.string("simple") {
                switch simple.uppercased() {
                case "ROUND_ROBIN": policy.loadBalancer = .roundRobin
                case "LEAST_REQUEST", "LEAST_CONN", "UNSPECIFIED": policy.loadBalancer = .leastRequest
                case "RANDOM": policy.loadBalancer = .random
                case "PASSTHROUGH": policy.loadBalancer = .passthrough
                default: diagnostics.error(lb.sub("simple"), "'\(simple)' is not ROUND_ROBIN, LEAST_REQUEST, RANDOM or PASSTHROUGH")
                }
            } else if let ch = lb.map("consistentHash") {
                defer { ch.finish() }
                var key: LoadBalancerSetting.HashKey?
                if let h = ch.string("httpHeaderName") { key = .header(h.lowercased()) }
                else if let c = ch.map("httpCookie") {
                    defer { c.finish() }
                    if let name = c.string("name") { key = .cookie(name: name, path: c.string("path"), ttl: c.duration("ttl")) }
                    else { diagnostics.error(c.sub("name"), "httpCookie needs a name") }
                }
                else if ch.bool("useSourceIp") == true { key = .sourceIP }
                else if let q = ch.string("httpQueryParameterName") { key = .queryParameter(q) }
                var ringSize: Int? = ch.int("minimumRingSize", range: 1...8_388_608)
                var maglev = false
                if let rh = ch.map("ringHash") { ringSize = rh.int("minimumRingSize", range: 1...8_388_608) ?? ringSize; rh.finish() }
                if let mg = ch.map("maglev") { maglev = true; mg.accept("tableSize"); mg.finish() }
                if let key { policy.loadBalancer = .consistentHash(key, ringSize: ringSize, maglev: maglev) }
                else { diagnostics.error(ch.path, "consistentHash needs httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName") }
            }
            lb.accept("localityLbSetting", "warmupDurationSecs", "warmup")
        }
        if let cp = r.map("connectionPool") {
            defer { cp.finish() }
            var pool = ConnectionPoolSettings()
            if let tcp = cp.map("tcp") {
                pool.maxConnections = tcp.int("maxConnections", range: 1...Int(Int32.max))
                pool.connectTimeout = tcp.duration("connectTimeout")
                pool.tcpIdleTimeout = tcp.duration("idleTimeout")
                tcp.accept("tcpKeepalive", "maxConnectionDuration")
                tcp.finish()
            }
            if let http = cp.map("http") {
                pool.maxRequestsPerConnection = http.int("maxRequestsPerConnection", range: 0...Int(Int32.max))
                pool.idleTimeout = http.duration("idleTimeout")
                pool.http1MaxPendingRequests = http.int("http1MaxPendingRequests", range: 0...Int(Int32.max))
                http.accept("http2MaxRequests", "maxRetries", "h2UpgradePolicy", "useClientProtocol", "maxConcurrentStreams")
                http.finish()
            }
            policy.connectionPool = pool
        }
        for p in r.maps("portLevelSettings") {
            guard let pr = p.map("port"), let n = port(pr, "number") else {
                diagnostics.error(p.sub("port.number"), "port level settings need a port number")
                continue
            }
            pr.finish()
            var nested = trafficPolicy(p) ?? TrafficPolicy()
            nested.portSettings = [:]
            policy.portSettings[n] = nested
        }
        r.accept("outlierDetection", "tls", "tunnel", "proxyProtocol")
        return policy
    }

    func destinationRule(_ spec: MapReader, meta: ResourceMeta) -> DestinationRule {
        defer { spec.finish() }
        let host = spec.string("host")?.lowercased() ?? ""
        if host.isEmpty { diagnostics.error(spec.sub("host"), "a DestinationRule needs a host") }
        var subsets: [Subset] = []
        for s in spec.maps("subsets") {
            defer { s.finish() }
            guard let name = s.string("name"), !name.isEmpty else { diagnostics.error(s.sub("name"), "a subset needs a name"); continue }
            if subsets.contains(where: { $0.name == name }) { diagnostics.error(s.sub("name"), "subset '\(name)' is defined twice") }
            subsets.append(Subset(name: name, labels: s.stringMap("labels"), trafficPolicy: trafficPolicy(s.map("trafficPolicy"))))
        }
        spec.accept("exportTo", "workloadSelector")
        return DestinationRule(meta: meta, host: host, trafficPolicy: trafficPolicy(spec.map("trafficPolicy")), subsets: subsets)
    }

    // MARK: Sidecar and ProxyConfig

    func outboundPolicy(_ r: MapReader, _ key: String) -> OutboundTrafficPolicy? {
        guard let m = r.map(key) else { return nil }
        defer { m.finish() }
        m.accept("egressProxy")
        guard let mode = m.string("mode") else { return nil }
        guard let v = OutboundTrafficPolicy(rawValue: mode.uppercased()) else {
            diagnostics.error(m.sub("mode"), "'\(mode)' is not ALLOW_ANY or REGISTRY_ONLY")
            return nil
        }
        return v
    }

    func sidecar(_ spec: MapReader, meta: ResourceMeta) -> Sidecar {
        defer { spec.finish() }
        spec.accept("workloadSelector", "ingress", "egress", "inboundConnectionPool")
        return Sidecar(meta: meta, outboundTrafficPolicy: outboundPolicy(spec, "outboundTrafficPolicy"))
    }

    func proxyConfig(_ spec: MapReader, into s: inout ProxySettings) {
        defer { spec.finish() }
        if let w = spec.map("workload") {
            s.workloadName = w.string("name") ?? s.workloadName
            s.namespace = w.string("namespace") ?? s.namespace
            s.labels = w.stringMap("labels")
            w.finish()
        }
        if let p = spec.map("ports") {
            s.outboundPort = port(p, "outbound") ?? s.outboundPort
            s.inboundPort = port(p, "inbound") ?? s.inboundPort
            s.adminPort = port(p, "admin") ?? s.adminPort
            s.readinessPort = port(p, "readiness") ?? s.readinessPort
            s.metricsPort = port(p, "metrics") ?? s.metricsPort
            p.finish()
        }
        s.outboundTrafficPolicy = outboundPolicy(spec, "outboundTrafficPolicy") ?? s.outboundTrafficPolicy
        s.drainTimeout = spec.duration("drainTimeout") ?? s.drainTimeout
        s.accessLog = spec.bool("accessLog") ?? s.accessLog
        s.mirrorHostSuffix = spec.string("mirrorHostSuffix") ?? s.mirrorHostSuffix
        if let r = spec.map("redis") {
            if let address = r.string("address") {
                if var settings = RedisSettings.parse(address) {
                    if let t = r.duration("connectTimeout") { settings.connectTimeout = t }
                    if let t = r.duration("commandTimeout") { settings.commandTimeout = t }
                    s.redis = settings
                } else {
                    diagnostics.error(r.sub("address"), "'\(address)' is not host:port or [ipv6]:port")
                }
            } else {
                diagnostics.error(r.sub("address"), "the Redis address is required (host:port)")
            }
            r.finish()
        }
        if let d = spec.duration("dnsRefreshRate") {
            if d < 1 { diagnostics.error(spec.sub("dnsRefreshRate"), "must be at least 1s") } else { s.dnsRefreshInterval = d }
        }
    }
}

