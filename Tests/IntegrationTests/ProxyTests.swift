import Foundation
import InterposeKernel
import Testing

/// The real proxy (`interpose run`) against real backends (`interpose-netcheck http-serve`), in
/// network namespaces: capture in the app namespace, interpose as uid 1337, the application as uid 1000.
/// Backends v1/v2/v3 listen in the peer namespace on 10.233.1.2 and .3.
@Suite("Proxy in network namespaces", .serialized, .enabled(if: Privileged.enabled, "needs root, ip, nft, iptables-nft"))
struct ProxyTests {
    static let vip = "10.240.0.10"

    static func config(weights: (Int, Int) = (90, 10), mirrorHost: String = "10.233.1.3", policy: String = "REGISTRY_ONLY", extraRoutes: String = "") -> String {
        """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: reviews, namespace: test}
        spec:
          hosts: [reviews]
          addresses: [\(vip)]
          ports: [{number: 9080, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints:
          - {address: 10.233.1.2, ports: {http: 9081}, labels: {version: v1}}
          - {address: 10.233.1.2, ports: {http: 9082}, labels: {version: v2}}
          - {address: \(mirrorHost), ports: {http: 9083}, labels: {version: v3}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: test}
        spec:
          host: reviews
          subsets:
          - {name: v1, labels: {version: v1}}
          - {name: v2, labels: {version: v2}}
          - {name: v3, labels: {version: v3}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: test}
        spec:
          hosts: [reviews]
          http:
          - name: jason
            match: [{headers: {end-user: {exact: jason}}}]
            route: [{destination: {host: reviews, subset: v2}}]
          - name: api-prefix
            match: [{uri: {prefix: /api/}}]
            rewrite: {uri: /v3api/}
            route: [{destination: {host: reviews, subset: v3}}]
        \(extraRoutes)
          - name: canary
            route:
            - {destination: {host: reviews, subset: v1}, weight: \(weights.0)}
            - {destination: {host: reviews, subset: v2}, weight: \(weights.1)}
            mirror: {host: reviews, subset: v3}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default, namespace: test}
        spec:
          outboundTrafficPolicy: {mode: \(policy)}
        ---
        apiVersion: interpose.dev/v1alpha1
        kind: ProxyConfig
        metadata: {name: app, namespace: test}
        spec:
          workload: {name: app, namespace: test, labels: {app: web}}
          drainTimeout: 1s
        """
    }

    struct Mesh {
        let t: Topology
        let configFile: String
        let proxyPID: pid_t
        let log: String
    }

    /// Topology + backends + capture + interpose as uid 1337, torn down by the caller's `t.destroy()`.
    func mesh(_ t: Topology, config: String = ProxyTests.config(), silentMirror: Bool = false) throws -> Mesh {
        try t.must(["ip", "-n", t.app, "route", "add", "10.240.0.0/16", "dev", "eth0"])
        try t.must(["ip", "-n", t.app, "route", "add", "10.250.0.0/16", "dev", "eth0"])
        for (name, port) in [("v1", 9081), ("v2", 9082)] {
            let ready = t.scratchPath + "/\(name).ready"
            try t.background(t.peer, [Binaries.netcheck, "http-serve", "--port", "\(port)", "--name", name, "--seconds", "120",
                                      "--stream-chunks", "30", "--stream-delay-ms", "50", "--ready-file", ready])
            try waitFor(ready)
        }
        let mirrorReady = t.scratchPath + "/v3.ready"
        try t.background(t.peer, [Binaries.netcheck, "http-serve", "--port", "9083", "--name", "v3", "--seconds", "120", "--ready-file", mirrorReady] + (silentMirror ? ["--silent"] : []))
        try waitFor(mirrorReady)
        let dir = t.scratchPath + "/config"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(t.scratchPath, 0o755)
        chmod(dir, 0o755)
        let file = dir + "/mesh.yaml"
        try config.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let capture = t.capture(["apply", "--inbound-ports", ""])
        guard capture.succeeded else { throw Topology.Failure(description: capture.stderr) }
        let log = t.scratchPath + "/interpose.log"
        let pid = try t.background(t.app, [Binaries.proxy, "run", "--config", dir, "--reload-interval", "0.2"], uid: 1337, logFile: log)
        for _ in 0..<100 {
            if t.run(t.app, [Binaries.netcheck, "http-get", "127.0.0.1:15021", "--path", "/healthz/ready"]).stdout.contains("200") {
                return Mesh(t: t, configFile: file, proxyPID: pid, log: log)
            }
            usleep(100_000)
        }
        throw Topology.Failure(description: "interpose did not become ready: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func waitFor(_ file: String) throws {
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: file) { usleep(50_000) }
        if !FileManager.default.fileExists(atPath: file) { throw Topology.Failure(description: "\(file) never appeared") }
    }

    /// `http-get` from the app (uid 1000) through capture; returns the tally lines as [key: count].
    func get(_ t: Topology, _ address: String = "\(ProxyTests.vip):9080", host: String = "reviews:9080", count: Int = 1, path: String = "/", headers: [String] = [], extra: [String] = []) -> [String: Int] {
        var argv = [Binaries.netcheck, "http-get", address, "--host", host, "--count", "\(count)", "--path", path] + extra
        for h in headers { argv += ["-H", h] }
        let r = t.run(t.app, argv, uid: 1000)
        var tally: [String: Int] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2, let n = Int(parts[0]) { tally[String(parts[1]), default: 0] += n }
        }
        return tally
    }


    @Test func weightedSplitSpreadsOneKeepAliveConnectionOverTheSubsets() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t)
        let tally = get(t, count: 1000)
        let v1 = tally["200 v1"] ?? 0, v2 = tally["200 v2"] ?? 0
        #expect(v1 + v2 == 1000, "\(tally)")
        // 90/10 over 1000 draws: the standard deviation is about 9.5, so 60..140 is over 4 sigma.
        #expect((60...140).contains(v2), "v2 got \(v2) of 1000: \(tally)")
    }

    @Test func upstreamConnectionsAreReusedUnlessMaxRequestsPerConnectionSaysOtherwise() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t)
        let reused = t.run(t.app, [Binaries.netcheck, "http-get", "\(Self.vip):9080", "--host", "reviews", "--count", "5", "-H", "end-user: jason", "--verbose"], uid: 1000).stdout
        #expect(reused.contains("connection-request 5"), "keep-alive upstream: one connection served all five: \(reused)")

        let limited = try Topology()
        defer { limited.destroy() }
        let rule = "  trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}\n  subsets:"
        _ = try mesh(limited, config: Self.config().replacingOccurrences(of: "  subsets:", with: rule))
        let fresh = limited.run(limited.app, [Binaries.netcheck, "http-get", "\(Self.vip):9080", "--host", "reviews", "--count", "5", "-H", "end-user: jason", "--verbose"], uid: 1000).stdout
        #expect(fresh.components(separatedBy: "connection-request 1").count == 6, "maxRequestsPerConnection 1: a new upstream connection per request: \(fresh)")
    }

    @Test func headerAndPrefixRoutingWithRewrite() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t)
        #expect(get(t, count: 50, headers: ["end-user: jason"]) == ["200 v2": 50])
        let api = t.run(t.app, [Binaries.netcheck, "http-get", "\(Self.vip):9080", "--host", "reviews:9080", "--path", "/api/items?id=7", "--verbose"], uid: 1000).stdout
        #expect(api.contains("served-by v3"), "\(api)")
        #expect(api.contains("path /v3api/items?id=7"), "prefix rewrite keeps the rest and the query: \(api)")
        // Host names compare case-insensitively and the port in Host is ignored.
        #expect(get(t, host: "REVIEWS", count: 10, headers: ["end-user: jason"]) == ["200 v2": 10])
    }

    @Test func mirrorGetsACopyAndASilentMirrorChangesNothing() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t)
        let tally = get(t, count: 200)
        #expect((tally["200 v1"] ?? 0) + (tally["200 v2"] ?? 0) == 200)
        usleep(300_000)
        let count = t.run(t.app, [Binaries.netcheck, "http-get", "10.233.1.3:9083", "--path", "/count", "--verbose"], uid: 1337).stdout
        #expect(count.contains("200 200"), "the mirror saw every canary request: \(count)")

        let silent = try Topology()
        defer { silent.destroy() }
        _ = try mesh(silent, silentMirror: true)
        let answered = get(silent, count: 200, extra: ["--timeout-ms", "2000"])
        #expect((answered["200 v1"] ?? 0) + (answered["200 v2"] ?? 0) == 200, "a mirror that never answers must not hold the primary: \(answered)")
    }

    @Test func registryOnlyRefusesAndAllowAnyPassesThrough() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t)
        #expect(get(t, "10.233.1.2:9081", host: "elsewhere.example") == ["502 -": 1])
        // Something does listen there: only the proxy can be what refuses the connection.
        try t.listen(in: t.peer, name: "unknown-service", ports: [7000])
        let tcp = t.run(t.app, [Binaries.netcheck, "dial", "10.233.1.2:7000", "--timeout-ms", "1500"], uid: 1000)
        #expect(!tcp.succeeded, "REGISTRY_ONLY closes TCP to unknown destinations")
        #expect(t.metrics().contains("destination_service=\"BlackHoleCluster\""))

        let open = try Topology()
        defer { open.destroy() }
        _ = try mesh(open, config: Self.config(policy: "ALLOW_ANY"))
        let passed = t.run(open.app, [Binaries.netcheck, "http-get", "10.233.1.2:9081", "--host", "elsewhere.example", "--verbose"], uid: 1000).stdout
        #expect(passed.contains("served-by v1"), "ALLOW_ANY sends unknown hosts to their original destination: \(passed)")
        // A server-first TCP protocol (the server speaks first) passes through untouched.
        try open.listen(in: open.peer, name: "server-first", ports: [7000])
        let banner = open.dial(from: open.app, uid: 1000, "10.233.1.2:7000")
        #expect(banner.answer?.name == "server-first")
        #expect(banner.answer?.peerHost == open.appV4)
        // The bytes relayed from the server are counted when the relay ends (recorded once both sides close).
        usleep(300_000)
        let sentLine = open.metrics().split(separator: "\n").first { $0.hasPrefix("istio_tcp_sent_bytes_total") && $0.contains("PassthroughCluster") }
        #expect(sentLine.map { !$0.hasSuffix(" 0") } == true, "\(sentLine.map(String.init) ?? "no istio_tcp_sent_bytes_total line")")
    }

    @Test func tlsIsRoutedByItsServerNameAndPassedThrough() throws {
        let t = try Topology()
        defer { t.destroy() }
        let tlsService = """
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: secure, namespace: test}
        spec:
          hosts: [secure.example]
          ports: [{number: 443, name: tls, protocol: TLS, targetPort: 8443}]
          resolution: STATIC
          endpoints: [{address: 10.233.1.3}]
        """
        _ = try mesh(t, config: Self.config() + "\n" + tlsService)
        try t.listen(in: t.peer, name: "tls-backend", ports: [8443])
        // An address nobody declared: the ClientHello's SNI names the service, so it is routed there.
        let routed = t.run(t.app, [Binaries.netcheck, "dial", "10.250.0.5:443", "--tls-sni", "secure.example"], uid: 1000)
        #expect(routed.stdout.contains("name=tls-backend"), "\(routed.stdout)\(routed.stderr)")
        // Without a known SNI, to a live address nobody declared (tls-backend answers on 10.233.1.2:8443
        // too): it is outside the registry, and REGISTRY_ONLY closes it.
        let refused = t.run(t.app, [Binaries.netcheck, "dial", "10.233.1.2:8443", "--tls-sni", "other.example"], uid: 1000)
        #expect(!refused.succeeded, "\(refused.stdout)")
    }

    @Test func idleTCPRelaysAreClosed() throws {
        let t = try Topology()
        defer { t.destroy() }
        let idleService = """
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: db, namespace: test}
        spec:
          hosts: [db.example]
          addresses: [10.240.0.20]
          ports: [{number: 5432, name: tcp, protocol: TCP, targetPort: 9081}]
          resolution: STATIC
          endpoints: [{address: 10.233.1.2}]
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: db, namespace: test}
        spec:
          host: db.example
          trafficPolicy: {connectionPool: {tcp: {idleTimeout: 1s}}}
        """
        _ = try mesh(t, config: Self.config() + "\n" + idleService)
        // The backend (an HTTP server) waits for a request that never comes; the relay goes idle.
        let r = t.run(t.app, [Binaries.netcheck, "dial", "10.240.0.20:5432", "--timeout-ms", "6000"], uid: 1000)
        #expect(r.status == 1, "closed by the idle timeout (exit 1), not by the client's 6 s timeout (exit 2): \(r.stderr)")
        #expect(r.stderr.contains("reset") || r.stderr.contains("ECONNRESET") || r.stderr.contains("Connection"), "\(r.stderr)")
    }

    /// tcp routes: a match on sourceLabels this workload (app: web) does not carry is skipped; the next
    /// route decides. Port 5432 is declared TCP, so the relay starts at once.
    @Test func tcpRoutesHonourSourceLabels() throws {
        let t = try Topology()
        defer { t.destroy() }
        let dbService = """
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: db, namespace: test}
        spec:
          hosts: [db.example]
          addresses: [10.240.0.30]
          ports: [{number: 5432, name: tcp, protocol: TCP, targetPort: 7001}]
          resolution: STATIC
          endpoints:
          - {address: 10.233.1.2, labels: {role: primary}}
          - {address: 10.233.1.3, labels: {role: replica}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: db, namespace: test}
        spec:
          host: db.example
          subsets:
          - {name: primary, labels: {role: primary}}
          - {name: replica, labels: {role: replica}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: db, namespace: test}
        spec:
          hosts: [db.example]
          tcp:
          - match: [{sourceLabels: {app: batch}}]
            route: [{destination: {host: db.example, subset: replica}}]
          - route: [{destination: {host: db.example, subset: primary}}]
        """
        _ = try mesh(t, config: Self.config() + "\n" + dbService)
        try t.listen(in: t.peer, name: "db", ports: [7001])
        for _ in 0..<5 {
            let answer = t.dial(from: t.app, uid: 1000, "10.240.0.30:5432").answer
            #expect(answer?.fields["local"] == "10.233.1.2:7001", "the batch-only route is skipped: \(answer.map { "\($0.fields)" } ?? "no answer")")
        }
    }

    @Test func websocketUpgradeBecomesATunnel() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t)
        let r = t.run(t.app, [Binaries.netcheck, "send", "\(Self.vip):9080",
                              "--data", "GET /chat HTTP/1.1\\r\\nhost: reviews\\r\\nend-user: jason\\r\\nconnection: Upgrade\\r\\nupgrade: websocket\\r\\n\\r\\n",
                              "--then", "ping-1", "--then", "ping-2"], uid: 1000)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "HTTP/1.1 101 Switching Protocols", "\(r.stdout) \(r.stderr)")
        #expect(lines.contains("ping-1") && lines.contains("ping-2"), "bytes flow both ways after the upgrade: \(lines)")
    }

    @Test func malformedRequestGets400AndTheProxyKeepsServing() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t)
        let bad = t.run(t.app, [Binaries.netcheck, "send", "\(Self.vip):9080", "--data", "GET / HTTP/1.1\\r\\nhost: reviews\\r\\nno colon here\\r\\n\\r\\n"], uid: 1000)
        #expect(bad.stdout.hasPrefix("HTTP/1.1 400"), "\(bad.stdout)")
        let big = String(repeating: "a", count: 100_000)
        let huge = t.run(t.app, [Binaries.netcheck, "send", "\(Self.vip):9080", "--data", "GET / HTTP/1.1\\r\\nhost: reviews\\r\\nx-big: \(big)\\r\\n\\r\\n"], uid: 1000)
        #expect(huge.stdout.hasPrefix("HTTP/1.1 431"), "\(huge.stdout)")
        #expect(get(t, count: 5, headers: ["end-user: jason"]) == ["200 v2": 5])
        // Expect: 100-continue is answered by the proxy (as Envoy does); the body then flows upstream.
        let expect = t.run(t.app, [Binaries.netcheck, "send", "\(Self.vip):9080",
                                   "--data", "POST /upload HTTP/1.1\r\nhost: reviews\r\nend-user: jason\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n",
                                   "--then", "hello"], uid: 1000)
        #expect(expect.stdout.hasPrefix("HTTP/1.1 100 Continue"), "\(expect.stdout)")
        #expect(expect.stdout.contains("body-bytes 5"), "\(expect.stdout)")
    }

    @Test func hotReloadChangesWeightsWhileAStreamInFlightCompletes() throws {
        let t = try Topology()
        defer { t.destroy() }
        let m = try mesh(t, config: Self.config(weights: (100, 0)))
        #expect(get(t, count: 20) == ["200 v1": 20])
        // A 1.5 s chunked response from v1 is in flight while the weights flip to v2.
        let streamLog = t.scratchPath + "/stream.out"
        // Written by the client, which runs as uid 1000.
        _ = FileManager.default.createFile(atPath: streamLog, contents: nil, attributes: [.posixPermissions: 0o666])
        let sh = "\(Binaries.netcheck) http-get \(Self.vip):9080 --host reviews:9080 --path /stream --body-lines > \(streamLog)"
        let streamPID = try t.background(t.app, ["bash", "-c", sh], uid: 1000)
        usleep(300_000)
        try Self.config(weights: (0, 100)).write(toFile: m.configFile, atomically: true, encoding: .utf8)
        chmod(m.configFile, 0o644)
        var flipped = false
        for _ in 0..<50 where !flipped {
            usleep(100_000)
            flipped = get(t, count: 1) == ["200 v2": 1]
        }
        #expect(flipped, "the new weights apply to new requests")
        #expect(Subprocess.wait(streamPID) == 0)
        let out = (try? String(contentsOfFile: streamLog, encoding: .utf8)) ?? ""
        #expect(out.contains("body-lines 30") && out.contains("1 200 v1"), "the response in flight completed intact: \(out)")

        // A broken config is refused; the last good one stays in force and the refusal is counted.
        try "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}, weight: -5}]\n"
            .write(toFile: m.configFile, atomically: true, encoding: .utf8)
        usleep(800_000)
        #expect(get(t, count: 5) == ["200 v2": 5])
        #expect(t.metrics().contains("interpose_config_reloads_total{result=\"failure\"} 1"))
        let log = (try? String(contentsOfFile: m.log, encoding: .utf8)) ?? ""
        #expect(log.contains("config refused") && log.contains("spec.http[0].route[0].weight"), "\(log)")
    }

    /// A minimal h2c client (prior knowledge): N streams on ONE connection, each a GET with the given
    /// headers; prints each stream's body. (curl 7.88 cannot reuse a prior-knowledge connection: curl#10634.)
    static let h2cClient = #"""
    import socket, struct, sys
    host, port, authority, count = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), int(sys.argv[4])
    extra = [h.split(":", 1) for h in sys.argv[5:]]
    def frame(t, flags, sid, payload): return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload
    def lit(name, value): return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    def headers(path):
        block = b"\x82\x86" + b"\x04" + bytes([len(path)]) + path + b"\x01" + bytes([len(authority)]) + authority
        for k, v in extra: block += lit(k.strip().lower().encode(), v.strip().encode())
        return block
    s = socket.create_connection((host, port), timeout=10)
    out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"")
    for i in range(count): out += frame(1, 5, 2 * i + 1, headers(b"/r%d" % i))
    s.sendall(out)
    bodies, done, buf = {}, set(), b""
    while len(done) < count:
        d = s.recv(65536)
        if not d: break
        buf += d
        while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
            l = int.from_bytes(buf[:3], "big"); t, f = buf[3], buf[4]; sid = int.from_bytes(buf[5:9], "big") & 0x7fffffff
            p, buf = buf[9:9 + l], buf[9 + l:]
            if t == 4 and not f & 1: s.sendall(frame(4, 1, 0, b""))
            if t == 0: bodies[sid] = bodies.get(sid, b"") + p
            if t in (0, 1) and f & 1: done.add(sid)
            if t == 7: print("GOAWAY", p.hex()); sys.exit(1)
    for sid in sorted(bodies): print(bodies[sid].decode().splitlines()[0])
    print("streams-answered", len(done))
    """#

    /// HTTP/2 with prior knowledge (h2c): each stream of one client connection is routed and balanced
    /// on its own, like an HTTP/1.1 request.
    @Test func http2PriorKnowledgeIsRoutedPerRequest() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t)
        let script = t.scratchPath + "/h2c.py"
        try Self.h2cClient.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o644)
        func h2(_ headers: [String]) -> String {
            let r = t.run(t.app, ["/usr/bin/python3", script, ProxyTests.vip, "9080", "reviews:9080", "100"] + headers, uid: 1000)
            return r.stdout + r.stderr
        }
        let canary = h2([])
        let v1 = canary.components(separatedBy: "served-by v1").count - 1
        let v2 = canary.components(separatedBy: "served-by v2").count - 1
        #expect(canary.contains("streams-answered 100"), "\(canary.suffix(300))")
        #expect(v1 + v2 == 100 && v1 > 70 && v2 > 0, "one h2 connection, 100 streams split by weight: v1 \(v1), v2 \(v2)")
        let jason = h2(["end-user: jason"])
        #expect(jason.components(separatedBy: "served-by v2").count - 1 == 100, "header routing per stream: \(jason.suffix(300))")
        #expect(metricValue(t.metrics(), "istio_requests_total", "reporter=\"source\"", "destination_version=\"v2\"") >= 100)
    }

    /// consistentHash httpCookie with a ttl: a missing cookie is generated (Set-Cookie), and requests
    /// carrying it stay on one endpoint.
    @Test func aGeneratedHashCookieKeepsAClientOnOneEndpoint() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try mesh(t, config: """
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: sticky, namespace: test}
        spec:
          hosts: [sticky]
          addresses: [10.240.0.20]
          ports: [{number: 9080, name: http, protocol: HTTP}]
          resolution: STATIC
          endpoints:
          - {address: 10.233.1.2, ports: {http: 9081}}
          - {address: 10.233.1.2, ports: {http: 9082}}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: sticky, namespace: test}
        spec:
          host: sticky
          trafficPolicy:
            loadBalancer:
              consistentHash:
                httpCookie: {name: session, path: /, ttl: 60s}
        """)
        let first = t.run(t.app, ["bash", "-c", "exec 3<>/dev/tcp/10.240.0.20/9080; printf 'GET / HTTP/1.1\\r\\nhost: sticky:9080\\r\\nconnection: close\\r\\n\\r\\n' >&3; timeout 3 cat <&3"], uid: 1000).stdout
        let setCookie = first.split(separator: "\r\n").first { $0.lowercased().hasPrefix("set-cookie:") }.map(String.init) ?? ""
        #expect(setCookie.contains("session=") && setCookie.contains("Max-Age=60") && setCookie.contains("Path=/"), "\(first)")
        let value = setCookie.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last.map(String.init) ?? ""
        let servedFirst = first.contains("served-by v1") ? "v1" : (first.contains("served-by v2") ? "v2" : "?")
        let sticky = get(t, "10.240.0.20:9080", host: "sticky:9080", count: 30, headers: ["cookie: session=\(value)"])
        #expect(sticky == ["200 \(servedFirst)": 30], "every request with the cookie goes where the first went: \(sticky), first \(servedFirst)")
        // Requests without the cookie each get a new one, so new clients are spread over the endpoints.
        let spread = get(t, "10.240.0.20:9080", host: "sticky:9080", count: 40)
        #expect(spread.count == 2, "new clients without the cookie are spread: \(spread)")
    }

    @Test func adminReadinessAndMetricsEndpoints() throws {
        let t = try Topology()
        defer { t.destroy() }
        let m = try mesh(t)
        _ = get(t, count: 3, headers: ["end-user: jason"])
        let dump = t.run(t.app, [Binaries.netcheck, "http-get", "127.0.0.1:15000", "--path", "/config_dump", "--verbose"]).stdout
        #expect(dump.contains("200"))
        let clusters = t.run(t.app, ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/15000; printf 'GET /clusters HTTP/1.1\\r\\nhost: x\\r\\nconnection: close\\r\\n\\r\\n' >&3; timeout 2 cat <&3"]).stdout
        #expect(clusters.contains("outbound|9080|v2|reviews"), "\(clusters)")
        let text = t.metrics()
        #expect(text.contains("istio_requests_total{reporter=\"source\""))
        #expect(text.contains("destination_version=\"v2\""))
        #expect(text.contains("response_code=\"200\""))
        #expect(text.contains("istio_request_duration_milliseconds_bucket"))
        #expect(text.contains("le=\"0.5\""))
        // SIGTERM: readiness goes away, the process drains and exits 0.
        #expect(t.stop(m.proxyPID) == 0)
    }
}
