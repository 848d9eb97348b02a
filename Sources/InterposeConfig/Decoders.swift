import Foundation
import Yams

/// Turns one YAML document's `spec` into a resource, reporting problems with their field paths.
/// Fields Interpose does not act on yet are accepted with a warning so existing Istio files load.
struct ResourceDecoder {
    let diagnostics: Diagnostics

    // MARK: shared pieces

    func stringMatch(_ r: MapReader) -> StringMatch? {
        defer { r.finish() }
        if let v = r.string("exact") { return .exact(v) }
        if let v = r.string("prefix") { return .prefix(v) }
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
        guard let host = r.string("host"), !host.isEmpty else {
            diagnostics.error(r.sub("host"), "a destination needs a host", line: r.node.line)
            return nil
        }
        var port: UInt16?
        if let p = r.map("port") {
            port = self.port(p, "number")
            p.finish()
        }
        return Destination(host: host.lowercased(), subset: r.string("subset"), port: port)
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
        for item in items {
            defer { item.finish() }
            guard let dr = item.map("destination"), let d = destination(dr) else {
                if !item.has("destination") { diagnostics.error(item.path, "a route needs a destination", line: item.node.line) }
                continue
            }
            var weight: UInt32 = items.count == 1 ? 100 : 0
            if let w = item.raw("weight") {
                guard let v = w.string.flatMap(Int.init) else { diagnostics.error(item.sub("weight"), "expected an integer", line: w.line); continue }
                if v < 0 { diagnostics.error(item.sub("weight"), "weight \(v) is negative; weights are relative integers >= 0", line: w.line); continue }
                weight = UInt32(min(v, Int(UInt32.max)))
            }
            out.append(WeightedDestination(destination: d, weight: weight, headers: headers(item.map("headers"))))
        }
        if out.count > 1 && out.allSatisfy({ $0.weight == 0 }) && !items.contains(where: { $0.has("weight") }) {
            // Istio: several destinations without weights share the traffic equally.
            out = out.map { var d = $0; d.weight = 1; return d }
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
            guard let number = port(p, "number") else {
                if !p.has("number") { diagnostics.error(p.sub("number"), "a port needs a number", line: p.node.line) }
                continue
            }
            ports.append(ServicePort(number: number, protocolName: (p.string("protocol") ?? "TCP").uppercased(),
                                     name: p.string("name") ?? "port-\(number)", targetPort: port(p, "targetPort")))
        }
        let resolutionText = spec.string("resolution") ?? "NONE"
        let resolution = Resolution(rawValue: resolutionText.uppercased()) ?? {
            diagnostics.error(spec.sub("resolution"), "'\(resolutionText)' is not NONE, STATIC, DNS or DNS_ROUND_ROBIN")
            return .none
        }()
        var endpoints: [WorkloadEntryEndpoint] = []
        for e in spec.maps("endpoints") {
            defer { e.finish() }
            guard let address = e.string("address"), !address.isEmpty else {
                diagnostics.error(e.sub("address"), "an endpoint needs an address", line: e.node.line)
                continue
            }
            var ports: [String: UInt16] = [:]
            for (name, value) in e.stringMap("ports") {
                guard let v = UInt16(value), v > 0 else { diagnostics.error(e.sub("ports.\(name)"), "'\(value)' is not a port"); continue }
                ports[name] = v
            }
            let weight = e.int("weight", range: 0...Int(UInt32.max)).map(UInt32.init) ?? 1
            e.accept("network", "serviceAccount")
            endpoints.append(WorkloadEntryEndpoint(address: address, ports: ports, labels: e.stringMap("labels"), weight: max(weight, 1), locality: e.string("locality")))
        }
        if resolution == .staticAddresses && endpoints.isEmpty {
            diagnostics.error(spec.sub("endpoints"), "resolution STATIC needs endpoints")
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
            if let m = r.map("mirror"), let d = destination(m) {
                var percent = 100.0
                if let mp = r.map("mirrorPercentage") { percent = mp.double("value") ?? 100; mp.finish() }
                else if let legacy = r.int("mirrorPercent", range: 0...100) { percent = Double(legacy) }
                mirrors.append(Mirror(destination: d, percent: percent))
            }
            for m in r.maps("mirrors") {
                defer { m.finish() }
                guard let dr = m.map("destination"), let d = destination(dr) else { continue }
                var percent = 100.0
                if let mp = m.map("percentage") { percent = mp.double("value") ?? 100; mp.finish() }
                mirrors.append(Mirror(destination: d, percent: percent))
            }
            for (i, m) in mirrors.enumerated() where !(0...100).contains(m.percent) {
                diagnostics.error(r.sub("mirrors[\(i)].percentage.value"), "\(m.percent) is not a percentage 0-100")
            }
            let route = weightedDestinations(r, "route")
            if route.isEmpty && redirect == nil && direct == nil {
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
                matches.append(L4Match(destinationSubnets: m.strings("destinationSubnets"), port: port(m, "port"), sourceLabels: m.stringMap("sourceLabels")))
            }
            let route = weightedDestinations(r, "route")
            if route.isEmpty { diagnostics.error(r.sub("route"), "a tcp route needs a route", line: r.node.line) }
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
                tcp.accept("tcpKeepalive", "maxConnectionDuration", "idleTimeout")
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
    }
}
