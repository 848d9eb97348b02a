import Foundation
import InterposeKernel
import Testing

/// Inbound capture in TPROXY mode through the real proxy: `interpose run --inbound-transparent`
/// makes its inbound listener IP_TRANSPARENT while still root, then drops to uid 1337.
@Suite("Inbound through the proxy", .serialized, .enabled(if: Privileged.enabled, "needs root, ip, nft, iptables-nft"))
struct InboundTests {
    @Test func tproxyInboundReachesTheApplicationThroughTheTransparentListener() throws {
        let t = try Topology()
        defer { t.destroy() }
        let apply = t.capture(["apply", "-m", "tproxy"])
        #expect(apply.succeeded, "\(apply.stderr)")
        // The application: an HTTP server on 8080 and a line server on 9090.
        let ready = t.scratchPath + "/app.ready"
        try t.background(t.app, [Binaries.netcheck, "http-serve", "--port", "8080", "--name", "app", "--seconds", "120", "--ready-file", ready])
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: ready) { usleep(50_000) }
        try t.listen(in: t.app, name: "app-tcp", ports: [9090])
        let dir = t.scratchPath + "/config"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(t.scratchPath, 0o755)
        chmod(dir, 0o755)
        try """
        apiVersion: interpose.dev/v1alpha1
        kind: ProxyConfig
        metadata: {name: app, namespace: test}
        spec:
          workload: {name: app, namespace: test, labels: {app: web}}
        """.write(toFile: dir + "/proxy.yaml", atomically: true, encoding: .utf8)
        chmod(dir + "/proxy.yaml", 0o644)
        let log = t.scratchPath + "/interpose.log"
        let pid = try t.background(t.app, [Binaries.proxy, "run", "--config", dir, "--inbound-transparent"], logFile: log)
        var ready200 = false
        for _ in 0..<100 where !ready200 {
            ready200 = t.run(t.app, [Binaries.netcheck, "http-get", "127.0.0.1:15021", "--path", "/healthz/ready"]).stdout.contains("200")
            if !ready200 { usleep(100_000) }
        }
        #expect(ready200, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        // The listener holds no capability: it was made transparent before the drop.
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        #expect(status.contains("Uid:\t1337\t1337\t1337\t1337") && status.contains("CapEff:\t0000000000000000"), "\(status)")

        // HTTP from the peer: delivered by TPROXY to the proxy, then to the application from 127.0.0.6.
        let http = t.run(t.peer, [Binaries.netcheck, "http-get", "\(t.appV4):8080", "--count", "3"]).stdout
        #expect(http.contains("3 200 app"), "\(http)")
        // Plain TCP: relayed as bytes.
        let tcp = t.dial(from: t.peer, "\(t.appV4):9090")
        #expect(tcp.answer?.name == "app-tcp")
        #expect(tcp.answer?.peerHost == "127.0.0.6", "the application sees the proxy's passthrough address")
        let text = t.metrics()
        #expect(metricValue(text, "istio_requests_total", "reporter=\"destination\"", "response_code=\"200\"") == 3, "\(text)")
        #expect(metricValue(text, "istio_tcp_connections_opened_total", "reporter=\"destination\"") >= 1)
    }
}
