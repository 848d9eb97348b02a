import Foundation
import InterposeKernel
import Testing

/// The real proxy (`interpose run`) against real backends (`interpose-netcheck http-serve`) on
/// loopback, with no capture and no namespace: needs no root, so it runs everywhere. A client
/// dials the proxy's port itself; with no original destination the proxy routes by Host alone.
/// Ports are picked per test run from a high range so two runs on one machine do not meet.
@Suite("Proxy on loopback", .serialized)
struct LoopbackProxyTests {
    /// A running proxy with two backends (v1, v2) behind the service `reviews:9080`.
    final class Mesh {
        let dir: String
        let proxyPort: UInt16
        let metricsPort: UInt16
        private var pids: [pid_t] = []

        init() throws {
            // Distinct per process: 8 ports from a base in 30000..<62000.
            let base = UInt16(30000 + Int(getpid() % 4000) * 8)
            let (v1, v2) = (base, base + 1)
            proxyPort = base + 2
            metricsPort = base + 6
            dir = NSTemporaryDirectory() + "interpose-loopback-\(getpid())-\(base)"
            try FileManager.default.createDirectory(atPath: dir + "/config", withIntermediateDirectories: true)
            chmod(dir, 0o755)
            chmod(dir + "/config", 0o755)
            // "big" answers every request with a 2 MiB body (read by http-get as served by "big").
            let bigBody = dir + "/big.txt"
            try ("served-by big " + String(repeating: "0123456789abcdef", count: 131_072) + "\n").write(toFile: bigBody, atomically: true, encoding: .utf8)
            for (name, port, extra) in [("v1", v1, [String]()), ("v2", v2, []), ("big", base + 7, ["--body-file", bigBody])] {
                let ready = "\(dir)/\(name).ready"
                pids.append(try spawn([Binaries.netcheck, "http-serve", "--port", "\(port)", "--name", name, "--seconds", "60", "--ready-file", ready] + extra))
                try Self.waitFor(ready)
            }
            let config = """
                apiVersion: networking.istio.io/v1
                kind: ServiceEntry
                metadata: {name: reviews, namespace: test}
                spec:
                  hosts: [reviews]
                  ports: [{number: 9080, name: http, protocol: HTTP}]
                  resolution: STATIC
                  endpoints:
                  - {address: 127.0.0.1, ports: {http: \(v1)}, labels: {version: v1}}
                  - {address: 127.0.0.1, ports: {http: \(v2)}, labels: {version: v2}}
                ---
                apiVersion: networking.istio.io/v1
                kind: DestinationRule
                metadata: {name: reviews, namespace: test}
                spec:
                  host: reviews
                  subsets:
                  - {name: v1, labels: {version: v1}}
                  - {name: v2, labels: {version: v2}}
                ---
                apiVersion: networking.istio.io/v1
                kind: VirtualService
                metadata: {name: reviews, namespace: test}
                spec:
                  hosts: [reviews]
                  http:
                  - match: [{headers: {end-user: {exact: jason}}}]
                    route: [{destination: {host: reviews, subset: v2}}]
                  - match: [{uri: {prefix: /split}}]
                    route:
                    - {destination: {host: reviews, subset: v1}, weight: 50}
                    - {destination: {host: reviews, subset: v2}, weight: 50}
                  - route: [{destination: {host: reviews, subset: v1}}]
                ---
                apiVersion: networking.istio.io/v1
                kind: ServiceEntry
                metadata: {name: big, namespace: test}
                spec:
                  hosts: [big]
                  ports: [{number: 9080, name: http, protocol: HTTP}]
                  resolution: STATIC
                  endpoints: [{address: 127.0.0.1, ports: {http: \(base + 7)}}]
                """
            let file = dir + "/config/mesh.yaml"
            try config.write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, 0o644)
            let log = dir + "/interpose.log"
            pids.append(try spawn([Binaries.proxy, "run", "--config", dir + "/config", "--outbound-port", "\(proxyPort)",
                                   "--inbound-port", "\(base + 3)", "--admin-port", "\(base + 4)", "--readiness-port", "\(base + 5)",
                                   "--metrics-port", "\(metricsPort)"], log: log))
            for _ in 0..<100 {
                if get(path: "/healthz/ready", port: base + 5, host: "localhost").keys.contains(where: { $0.hasPrefix("200") }) { return }
                usleep(100_000)
            }
            destroy()
            throw Topology.Failure(description: "interpose did not become ready: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }

        private func spawn(_ argv: [String], log: String? = nil) throws -> pid_t {
            let out = log.map { open($0, O_WRONLY | O_CREAT | O_TRUNC, 0o644) } ?? Subprocess.devNull
            defer { if log != nil { close(out) } }
            return try Subprocess.spawn(path: argv[0], argv: argv, stdin: Subprocess.devNull, stdout: out, stderr: out)
        }

        static func waitFor(_ file: String) throws {
            for _ in 0..<100 where !FileManager.default.fileExists(atPath: file) { usleep(50_000) }
            if !FileManager.default.fileExists(atPath: file) { throw Topology.Failure(description: "\(file) never appeared") }
        }

        /// `http-get` straight to the proxy (or another local port); the tally lines as [key: count].
        func get(path: String = "/", port: UInt16? = nil, host: String = "reviews:9080", count: Int = 1, headers: [String] = [],
                 extra: [String] = []) -> [String: Int] {
            // Bounded: a proxy that stops reading would otherwise block the client's write for good.
            var argv = ["timeout", "30", Binaries.netcheck, "http-get", "127.0.0.1:\(port ?? proxyPort)", "--host", host, "--count", "\(count)",
                        "--path", path] + extra
            for h in headers { argv += ["-H", h] }
            let r = Privileged.runner.run(argv)
            var tally: [String: Int] = [:]
            for line in r.stdout.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1)
                if parts.count == 2, let n = Int(parts[0]) { tally[String(parts[1]), default: 0] += n }
            }
            return tally
        }

        func destroy() {
            for pid in pids.reversed() {
                kill(pid, SIGTERM)
                _ = Subprocess.wait(pid)
            }
            pids.removeAll()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    @Test func routesByHostHeaderAndBalancesEveryRequestOnOneConnection() throws {
        let mesh = try Mesh()
        defer { mesh.destroy() }
        #expect(mesh.get(count: 50) == ["200 v1": 50])
        #expect(mesh.get(count: 50, headers: ["end-user: jason"]) == ["200 v2": 50])
        // 50/50 over 400 requests on one keep-alive connection: each side within 200 ± 60 (6 sigma).
        let split = mesh.get(path: "/split", count: 400)
        let v1 = split["200 v1"] ?? 0, v2 = split["200 v2"] ?? 0
        #expect(v1 + v2 == 400 && (140...260).contains(v1), "\(split)")
    }

    /// Bodies larger than the proxy's write pieces (64 KiB) and the sockets' buffers, both ways: they
    /// stream through with backpressure (a stuck flush here once left them hanging).
    @Test func streamsLargeBodiesBothWaysAndCountsThemInIstioMetrics() throws {
        let mesh = try Mesh()
        defer { mesh.destroy() }
        // 1 MiB bodies, sent with content-length, on one keep-alive connection.
        #expect(mesh.get(count: 5, extra: ["--method", "POST", "--body-bytes", "1048576"]) == ["200 v1": 5])
        // 2 MiB answers.
        #expect(mesh.get(host: "big:9080", count: 3) == ["200 big": 3])
        let metrics = Privileged.runner.run(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(mesh.metricsPort); printf 'GET /stats/prometheus HTTP/1.1\\r\\nhost: x\\r\\nconnection: close\\r\\n\\r\\n' >&3; timeout 2 cat <&3"]).stdout
        #expect(metricValue(metrics, "istio_requests_total", "destination_version=\"v1\"", "response_code=\"200\"") >= 5, "\(metrics.prefix(2000))")
        #expect(metricValue(metrics, "istio_request_bytes_sum", "destination_version=\"v1\"") >= 5 * 1_048_576, "\(metrics.prefix(2000))")
    }

    @Test func unknownHostIsNotRoutedAndMalformedRequestsGet400() throws {
        let mesh = try Mesh()
        defer { mesh.destroy() }
        // Not redirected and not in the registry: there is nowhere to pass it through to.
        #expect(mesh.get(host: "nowhere.example").keys.contains { $0.hasPrefix("404") }, "\(mesh.get(host: "nowhere.example"))")
        // Content-Length and Transfer-Encoding together: refused, not guessed.
        let raw = Privileged.runner.run([Binaries.netcheck, "send", "127.0.0.1:\(mesh.proxyPort)", "--data",
                                         "POST / HTTP/1.1\\r\\nHost: reviews:9080\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n"])
        #expect(raw.stdout.contains("400"), "\(raw.stdout) \(raw.stderr)")
        // The proxy keeps serving.
        #expect(mesh.get(count: 3) == ["200 v1": 3])
    }
}
