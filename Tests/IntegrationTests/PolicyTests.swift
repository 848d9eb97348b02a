import Foundation
import InterposeKernel
import Testing

/// Policy and quota end to end: the real proxy (`interpose run`, as uid 1337 behind capture) checks
/// every request and connection against AuthorizationPolicy, ValueList and RateLimitPolicy, with a
/// real redis-server for Global limits. Backends are `interpose-netcheck http-serve` in the peer namespace.
@Suite("Policy in network namespaces", .serialized, .enabled(if: Privileged.enabled, "needs root, ip, nft, iptables-nft, redis-server"))
struct PolicyTests {
    static let vip = "10.240.0.10"

    /// A service `reviews` on the VIP with one backend (v1 on `backend`:9081), plus `extra` resources.
    static func config(backend: String = "10.233.1.2", redis: String? = nil, extra: String) -> String {
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
          - {address: \(backend), ports: {http: 9081}, labels: {version: v1}}
        ---
        apiVersion: interpose.dev/v1alpha1
        kind: ProxyConfig
        metadata: {name: app, namespace: test}
        spec:
          workload: {name: app, namespace: test, labels: {app: web}}
          drainTimeout: 1s
        \(redis.map { "  redis: {address: \"\($0)\", commandTimeout: 20ms, connectTimeout: 20ms}" } ?? "")
        ---
        \(extra)
        """
    }

    struct Proxy {
        let pid: pid_t
        let log: String
        let configFile: String
    }

    /// Capture + interpose (started as root: it drops to 1337) in namespace `ns` with `config`.
    func startProxy(_ t: Topology, ns: String, config: String, name: String = "config", inbound: Bool = false) throws -> Proxy {
        let r = t.run(ns, [Binaries.initTool, "apply"] + (inbound ? [] : ["--inbound-ports", ""]))
        guard r.succeeded else { throw Topology.Failure(description: r.stderr) }
        let dir = t.scratchPath + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(t.scratchPath, 0o755)
        chmod(dir, 0o755)
        let file = dir + "/mesh.yaml"
        try config.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        let log = t.scratchPath + "/\(name).log"
        let pid = try t.background(ns, [Binaries.proxy, "run", "--config", dir, "--reload-interval", "0.2", "--access-log"], logFile: log)
        for _ in 0..<100 {
            if t.run(ns, [Binaries.netcheck, "http-get", "127.0.0.1:15021", "--path", "/healthz/ready"]).stdout.contains("200") {
                return Proxy(pid: pid, log: log, configFile: file)
            }
            usleep(100_000)
        }
        throw Topology.Failure(description: "interpose did not become ready: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func backend(_ t: Topology, ns: String? = nil) throws {
        let ready = t.scratchPath + "/backend-\(UInt32.random(in: 0..<UInt32.max)).ready"
        try t.background(ns ?? t.peer, [Binaries.netcheck, "http-serve", "--port", "9081", "--name", "v1", "--seconds", "120", "--ready-file", ready])
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: ready) { usleep(50_000) }
    }

    /// `http-get` as the application (uid 1000) through capture: tally lines as [key: count].
    func get(_ t: Topology, ns: String? = nil, path: String = "/", count: Int = 1, headers: [String] = []) -> [String: Int] {
        var argv = [Binaries.netcheck, "http-get", "\(Self.vip):9080", "--host", "reviews:9080", "--count", "\(count)", "--path", path]
        for h in headers { argv += ["-H", h] }
        var tally: [String: Int] = [:]
        for line in t.run(ns ?? t.app, argv, uid: 1000).stdout.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2, let n = Int(parts[0]) { tally[String(parts[1]), default: 0] += n }
        }
        return tally
    }

    /// One raw request as the application; the whole response (status line, headers, body).
    func raw(_ t: Topology, ns: String? = nil, path: String, headers: [String] = []) -> String {
        let extra = headers.map { "\($0)\\r\\n" }.joined()
        let script = "exec 3<>/dev/tcp/\(Self.vip)/9080; printf 'GET \(path) HTTP/1.1\\r\\nhost: reviews:9080\\r\\n\(extra)connection: close\\r\\n\\r\\n' >&3; timeout 3 cat <&3"
        return t.run(ns ?? t.app, ["bash", "-c", script], uid: 1000).stdout
    }



    func header(_ response: String, _ name: String) -> String? {
        response.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name + ":") }
            .map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) }
    }

    // MARK: authorization

    @Test func aDenyOnAPathGets403WhileOtherPathsPass() throws {
        let t = try Topology()
        defer { t.destroy() }
        try t.must(["ip", "-n", t.app, "route", "add", "10.240.0.0/16", "dev", "eth0"])
        try backend(t)
        let p = try startProxy(t, ns: t.app, config: Self.config(extra: """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: deny-admin, namespace: test}
        spec:
          action: DENY
          rules:
          - to:
            - operation:
                paths: ["/admin/*"]
          - when:
            - key: request.headers[x-user]
              values: [evil]
        """))
        let denied = raw(t, path: "/admin/users")
        #expect(denied.hasPrefix("HTTP/1.1 403"), "\(denied)")
        #expect(denied.hasSuffix("RBAC: access denied"), "\(denied)")
        #expect(get(t, path: "/admin/users", count: 5) == ["403 flag=UAEX": 5])
        // The path is normalized before routing and policy: dot segments and doubled slashes do not hide it.
        for disguised in ["/./admin/users", "/api/../admin/users", "//admin//users", "/api/%2e%2e/admin/users"] {
            #expect(get(t, path: disguised) == ["403 flag=UAEX": 1], "\(disguised)")
        }
        // A header sent twice: the second value counts too, it cannot hide behind the first.
        #expect(get(t, path: "/products", headers: ["x-user: ok", "x-user: evil"]) == ["403 flag=UAEX": 1])
        #expect(get(t, path: "/products", headers: ["x-user: ok", "x-user: fine"]) == ["200 v1": 1])
        // gRPC clients read the status from grpc-status: HTTP 200 with grpc-status 7 (PERMISSION_DENIED).
        let grpc = raw(t, path: "/admin/users", headers: ["content-type: application/grpc"])
        #expect(grpc.hasPrefix("HTTP/1.1 200") && header(grpc, "grpc-status") == "7", "\(grpc)")
        #expect(get(t, path: "/products", count: 5) == ["200 v1": 5])
        #expect(get(t, path: "/administrator", count: 1) == ["200 v1": 1], "a prefix match ends at the /")
        let text = t.metrics()
        #expect(metricValue(text, "interpose_policy_decisions_total", "policy=\"test/deny-admin\"", "result=\"deny\"") == 12)
        // explain shows the same decision for the same request.
        let explained = t.run(t.app, [Binaries.proxy, "explain", "--config", (p.configFile as NSString).deletingLastPathComponent,
                                      "GET http://reviews:9080/admin/users"]).stdout
        #expect(explained.contains("policy:") && explained.contains("test/deny-admin") && explained.contains("decision: deny 403"), "\(explained)")
        // The access log names the policy and rule that decided.
        let log = (try? String(contentsOfFile: p.log, encoding: .utf8)) ?? ""
        #expect(log.split(separator: "\n").contains { $0.contains("\"GET /admin/users HTTP/1.1\" 403 UAEX") && $0.contains("policy=test/deny-admin rule=0") }, "\(log)")
    }

    /// Inbound HTTP is proxied request by request: policy applies per request with the peer as the
    /// source, and requests are reported with reporter="destination".
    @Test func inboundHTTPRequestsAreCheckedOneByOneAndReportedAsDestination() throws {
        let t = try Topology()
        defer { t.destroy() }
        let ready = t.scratchPath + "/app-http.ready"
        try t.background(t.app, [Binaries.netcheck, "http-serve", "--port", "8080", "--name", "app", "--seconds", "120", "--ready-file", ready])
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: ready) { usleep(50_000) }
        _ = try startProxy(t, ns: t.app, config: Self.config(extra: """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: inbound-admin, namespace: test}
        spec:
          action: DENY
          rules:
          - from:
            - source:
                ipBlocks: [10.233.1.3/32]
            to:
            - operation:
                paths: ["/admin/*"]
        """), inbound: true)
        /// From the peer namespace, with the source address its route to the app says.
        func get(path: String, count: Int) -> [String: Int] {
            var tally: [String: Int] = [:]
            let out = t.run(t.peer, [Binaries.netcheck, "http-get", "\(t.appV4):8080", "--path", path, "--count", "\(count)"]).stdout
            for line in out.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1)
                if parts.count == 2, let n = Int(parts[0]) { tally[String(parts[1]), default: 0] += n }
            }
            return tally
        }
        // From 10.233.1.2 (not the listed source): /admin is allowed, on one keep-alive connection.
        #expect(get(path: "/admin/x", count: 3) == ["200 app": 3])
        // From 10.233.1.3 (the peer's route now picks that source): the DENY rule's source matches,
        // so /admin is refused and / is not.
        try t.must(["ip", "-n", t.peer, "route", "replace", "\(t.appV4)/32", "dev", "eth0", "src", t.peerV4Extra])
        #expect(get(path: "/admin/x", count: 2) == ["403 flag=UAEX": 2])
        #expect(get(path: "/", count: 2) == ["200 app": 2])
        let text = t.metrics()
        #expect(metricValue(text, "istio_requests_total", "reporter=\"destination\"", "response_code=\"200\"", "destination_workload=\"app\"") == 5, "\(text)")
        #expect(metricValue(text, "istio_requests_total", "reporter=\"destination\"", "response_code=\"403\"") == 2)
        #expect(metricValue(text, "interpose_policy_decisions_total", "policy=\"test/inbound-admin\"", "result=\"deny\"") == 2)
    }

    // MARK: lists

    @Test func aValueListOfIPRangesBlocksASourceNamespace() throws {
        let t = try Topology()
        defer { t.destroy() }
        // The application listens on 8080; inbound connections come through the proxy (:15006).
        try t.listen(in: t.app, name: "app", ports: [8080])
        let listFile = t.scratchPath + "/blocked.txt"
        try "# the peer namespace's first address\n10.233.1.2/32\n".write(toFile: listFile, atomically: true, encoding: .utf8)
        chmod(listFile, 0o644)
        let p = try startProxy(t, ns: t.app, config: Self.config(extra: """
        apiVersion: interpose.dev/v1alpha1
        kind: ValueList
        metadata: {name: blocked-sources, namespace: test}
        spec:
          blacklist: true
          entryType: IP_ADDRESSES
          file: \(listFile)
          refreshInterval: 1s
          check:
            attribute: source.ip
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: block-listed, namespace: test}
        spec:
          action: CUSTOM
          provider: {name: blocked-sources}
          rules:
          - {}
        """), inbound: true)
        func dial(from source: String) -> String? {
            t.dial(from: t.peer, "\(t.appV4):8080", source: "\(source):0").answer?.name
        }
        #expect(dial(from: t.peerV4) == nil, "10.233.1.2 is on the list: the connection is closed")
        #expect(dial(from: t.peerV4Extra) == "app", "10.233.1.3 is not")
        // The file changes: the whole /24 is listed now; picked up at the next refresh.
        try "10.233.1.0/24\n".write(toFile: listFile, atomically: true, encoding: .utf8)
        var blocked = false
        for _ in 0..<30 where !blocked { usleep(200_000); blocked = dial(from: t.peerV4Extra) == nil }
        #expect(blocked, "10.233.1.3 is blocked after the refresh")
        // A broken refresh keeps the last good list and is counted.
        try "10.233.1.0/24\nnot-an-address\n".write(toFile: listFile, atomically: true, encoding: .utf8)
        var failures = 0.0
        for _ in 0..<30 where failures == 0 {
            usleep(200_000)
            failures = metricValue(t.metrics(), "interpose_value_list_refresh_failures_total", "list=\"test/blocked-sources\"")
        }
        #expect(failures >= 1)
        #expect(dial(from: t.peerV4Extra) == nil, "the last good list is still in force")
        #expect(metricValue(t.metrics(), "interpose_policy_decisions_total", "policy=\"test/block-listed\"") >= 3)
        _ = p
    }

    @Test func aValueListFromAURLIsFetchedRefreshedAndKeptWhenTheFetchFails() throws {
        let t = try Topology()
        defer { t.destroy() }
        try t.listen(in: t.app, name: "app", ports: [8080])
        // The list is served over HTTP from the peer namespace (the proxy fetches it as uid 1337, uncaptured).
        let listFile = t.scratchPath + "/served-list.txt"
        try "10.233.1.3\n".write(toFile: listFile, atomically: true, encoding: .utf8)
        chmod(listFile, 0o644)
        let ready = t.scratchPath + "/list-server.ready"
        let server = try t.background(t.peer, [Binaries.netcheck, "http-serve", "--port", "9090", "--body-file", listFile, "--seconds", "120", "--ready-file", ready])
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: ready) { usleep(50_000) }
        _ = try startProxy(t, ns: t.app, config: Self.config(extra: """
        apiVersion: interpose.dev/v1alpha1
        kind: ValueList
        metadata: {name: remote-blocklist, namespace: test}
        spec:
          blacklist: true
          entryType: IP_ADDRESSES
          url: http://10.233.1.2:9090/blocklist.txt
          refreshInterval: 1s
          check: {attribute: source.ip}
        ---
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata: {name: remote-blocked, namespace: test}
        spec:
          action: CUSTOM
          provider: {name: remote-blocklist}
          rules:
          - {}
        """), inbound: true)
        func dial(from source: String) -> String? { t.dial(from: t.peer, "\(t.appV4):8080", source: "\(source):0").answer?.name }
        #expect(dial(from: t.peerV4Extra) == nil, "fetched at start: 10.233.1.3 is listed")
        #expect(dial(from: t.peerV4) == "app")
        try "10.233.1.3\n10.233.1.2\n".write(toFile: listFile, atomically: true, encoding: .utf8)
        var blocked = false
        for _ in 0..<30 where !blocked { usleep(200_000); blocked = dial(from: t.peerV4) == nil }
        #expect(blocked, "the refreshed list blocks 10.233.1.2 too")
        // The list server goes away: fetches fail, are counted, and the last good list stays.
        _ = t.stop(server)
        var failures = 0.0
        for _ in 0..<30 where failures == 0 {
            usleep(200_000)
            failures = metricValue(t.metrics(), "interpose_value_list_refresh_failures_total", "list=\"test/remote-blocklist\"")
        }
        #expect(failures >= 1)
        #expect(dial(from: t.peerV4) == nil && dial(from: t.peerV4Extra) == nil, "the last good list is still in force")
    }

    // MARK: local rate limit

    @Test func aLocalLimitPerHeaderValueRefusesTheNextRequestAndRecovers() throws {
        let t = try Topology()
        defer { t.destroy() }
        try t.must(["ip", "-n", t.app, "route", "add", "10.240.0.0/16", "dev", "eth0"])
        try backend(t)
        _ = try startProxy(t, ns: t.app, config: Self.config(extra: """
        apiVersion: interpose.dev/v1alpha1
        kind: RateLimitPolicy
        metadata: {name: per-user, namespace: test}
        spec:
          scope: Local
          descriptors:
          - {key: user, attribute: "request.headers[x-user]"}
          limit: {requestsPerUnit: 3, unit: SECOND}
        """))
        #expect(get(t, count: 4, headers: ["x-user: alice"]) == ["200 v1": 3, "429 flag=RL": 1])
        let refused = raw(t, path: "/", headers: ["x-user: alice"])
        #expect(refused.hasPrefix("HTTP/1.1 429"), "\(refused)")
        #expect(header(refused, "x-ratelimit-limit") == "3", "\(refused)")
        #expect(header(refused, "x-ratelimit-remaining") == "0", "\(refused)")
        #expect(header(refused, "x-ratelimit-reset") != nil, "\(refused)")
        #expect(Int(header(refused, "retry-after") ?? "") ?? 0 >= 1, "\(refused)")
        #expect(get(t, count: 3, headers: ["x-user: bob"]) == ["200 v1": 3], "another header value has its own quota")
        #expect(get(t, count: 2) == ["200 v1": 2], "no header: no descriptor, not limited")
        usleep(1_100_000)
        #expect(get(t, count: 1, headers: ["x-user: alice"]) == ["200 v1": 1], "the window passed")
        let allowed = raw(t, path: "/", headers: ["x-user: carol"])
        #expect(header(allowed, "x-ratelimit-remaining") == "2", "allowed responses carry the quota too: \(allowed)")
    }

    // MARK: global rate limit through Redis

    /// Two app namespaces, each with capture and its own interpose, share one redis-server in the
    /// peer namespace. The second app namespace joins the peer through a second veth (10.234.1.0/24).
    func secondApp(_ t: Topology) throws -> String {
        let ns = "ipx-b-\(t.id)"
        try t.must(["ip", "netns", "add", ns])
        t.extraNamespaces.append(ns)
        try t.must(["ip", "link", "add", "vb\(t.id)", "type", "veth", "peer", "name", "vq\(t.id)"])
        try t.must(["ip", "link", "set", "vb\(t.id)", "netns", ns, "name", "eth0"])
        try t.must(["ip", "link", "set", "vq\(t.id)", "netns", t.peer, "name", "eth1"])
        try t.must(["ip", "-n", ns, "addr", "add", "10.234.1.1/24", "dev", "eth0"])
        try t.must(["ip", "-n", t.peer, "addr", "add", "10.234.1.2/24", "dev", "eth1"])
        for (n, dev) in [(ns, "eth0"), (t.peer, "eth1"), (ns, "lo")] { try t.must(["ip", "-n", n, "link", "set", dev, "up"]) }
        try t.must(["ip", "-n", ns, "route", "add", "10.240.0.0/16", "dev", "eth0"])
        return ns
    }

    func startRedis(_ t: Topology) throws -> pid_t {
        let pid = try t.background(t.peer, ["redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
                                            "--save", "", "--appendonly", "no", "--daemonize", "no"])
        for _ in 0..<50 {
            if t.run(t.peer, ["redis-cli", "-p", "6379", "ping"]).stdout.contains("PONG") { return pid }
            usleep(100_000)
        }
        throw Topology.Failure(description: "redis-server did not start")
    }

    static let globalLimit = """
    apiVersion: interpose.dev/v1alpha1
    kind: RateLimitPolicy
    metadata: {name: shared, namespace: test}
    spec:
      scope: Global
      failureMode: FailClosed
      descriptors:
      - {key: user, attribute: "request.headers[x-user]"}
      limit: {requestsPerUnit: 10, unit: MINUTE}
    """

    @Test func twoProxiesShareAGlobalLimitThroughRedisAndRedisFailuresFollowFailureMode() throws {
        let t = try Topology()
        defer { t.destroy() }
        try t.must(["ip", "-n", t.app, "route", "add", "10.240.0.0/16", "dev", "eth0"])
        let app2 = try secondApp(t)
        try backend(t)
        var redis = try startRedis(t)
        _ = try startProxy(t, ns: t.app, config: Self.config(redis: "10.233.1.2:6379", extra: Self.globalLimit), name: "one")
        _ = try startProxy(t, ns: app2, config: Self.config(backend: "10.234.1.2", redis: "10.234.1.2:6379", extra: Self.globalLimit), name: "two")

        // 16 requests of one user, alternating between the two proxies: the shared quota of 10 holds.
        var total: [String: Int] = [:]
        for i in 0..<16 {
            for (k, v) in get(t, ns: i % 2 == 0 ? t.app : app2, headers: ["x-user: dana"]) { total[k, default: 0] += v }
        }
        #expect(total == ["200 v1": 10, "429 flag=RL": 6], "\(total)")
        let refused = raw(t, ns: app2, path: "/", headers: ["x-user: dana"])
        #expect(refused.hasPrefix("HTTP/1.1 429") && header(refused, "retry-after") != nil, "\(refused)")

        // Redis killed: FailClosed answers 503 (never 429), quickly, and counts degraded decisions.
        _ = t.stop(redis, signal: SIGKILL)
        let start = Date()
        let down = get(t, count: 10, headers: ["x-user: erin"])
        let elapsed = Date().timeIntervalSince(start)
        #expect(down == ["503 flag=RLSE": 10], "\(down)")
        #expect(elapsed < 3, "ten requests with Redis down took \(elapsed)s: each waits at most the command timeout")
        #expect(metricValue(t.metrics(), "interpose_policy_degraded_decisions_total") >= 10)

        // Redis back (empty): after the circuit's cooldown, counting resumes in Redis.
        redis = try startRedis(t)
        var resumed: [String: Int] = [:]
        for _ in 0..<30 {
            usleep(200_000)
            resumed = get(t, headers: ["x-user: frank"])
            if resumed["200 v1"] == 1 { break }
        }
        #expect(resumed == ["200 v1": 1], "\(resumed)")
        var after: [String: Int] = [:]
        for i in 0..<12 {
            for (k, v) in get(t, ns: i % 2 == 0 ? t.app : app2, headers: ["x-user: frank"]) { after[k, default: 0] += v }
        }
        #expect(after == ["200 v1": 9, "429 flag=RL": 3], "shared counting again: \(after)")
        _ = redis
    }
}
