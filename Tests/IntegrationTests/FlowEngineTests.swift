import Foundation
import InterposeKernel
import Testing

/// The flow engine end to end: interpose-init queues the first SYN of captured flows, the real
/// `interpose --queue` (started as root, dropping to uid 1337 with only CAP_NET_ADMIN) gives
/// verdicts from FlowPolicy, and real servers in the peer namespace answer.
@Suite("Flow engine in network namespaces", .serialized, .enabled(if: Privileged.enabled, "needs root, ip, nft, iptables-nft"))
struct FlowEngineTests {
    let app: UInt32 = 1000
    let queue = "3"

    static func policy(denyResetPort: Int = 7001, extraRules: String = "") -> String {
        """
        apiVersion: interpose.dev/v1alpha1
        kind: FlowPolicy
        metadata: {name: guard, namespace: test}
        spec:
          rules:
          - name: deny-reset
            match: {destinationPorts: ["\(denyResetPort)"]}
            action: DENY
          - name: deny-drop
            match: {destinationCIDRs: [10.233.1.3/32, "fd00:233:1::3/128"]}
            action: DENY
            denyMode: DROP
          - name: bypass
            match: {destinationPorts: ["7003"], uids: [1000]}
            action: BYPASS
        \(extraRules)
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: default, namespace: test}
        spec:
          outboundTrafficPolicy: {mode: ALLOW_ANY}
        """
    }

    struct Daemon {
        let pid: pid_t
        let log: String
        let configFile: String
    }

    /// Capture with the queue, servers on 7000-7004 in the peer namespace, and interpose started as root.
    func setUp(_ t: Topology, config: String = FlowEngineTests.policy(), queues: String = "3") throws -> Daemon {
        let r = t.capture(["apply", "--inbound-ports", "", "--queue", queues])
        guard r.succeeded else { throw Topology.Failure(description: r.stderr) }
        try t.listen(in: t.peer, name: "server", ports: [7000, 7001, 7002, 7003, 7004])
        let dir = t.scratchPath + "/config"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(t.scratchPath, 0o755)
        chmod(dir, 0o755)
        let file = dir + "/flows.yaml"
        try config.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o644)
        return try startDaemon(t, configDir: dir, file: file, extra: ["--queue", queues])
    }

    func startDaemon(_ t: Topology, configDir: String, file: String, extra: [String] = ["--queue", "3"], asUID: UInt32? = nil) throws -> Daemon {
        let log = t.scratchPath + "/interpose-\(UInt32.random(in: 0..<UInt32.max)).log"
        let pid = try t.background(t.app, [Binaries.proxy, "run", "--config", configDir, "--reload-interval", "0.2"] + extra, uid: asUID, logFile: log)
        for _ in 0..<100 {
            if t.run(t.app, [Binaries.netcheck, "http-get", "127.0.0.1:15021", "--path", "/healthz/ready"]).stdout.contains("200") {
                return Daemon(pid: pid, log: log, configFile: file)
            }
            usleep(100_000)
        }
        throw Topology.Failure(description: "interpose did not become ready: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }

    func timedDial(_ t: Topology, _ address: String, source: String? = nil, timeoutMs: Int = 2000) -> (answer: Answer?, status: Int32, seconds: Double) {
        let start = Date()
        let r = t.dial(from: t.app, uid: app, address, source: source, timeoutMs: timeoutMs)
        return (r.answer, r.status, Date().timeIntervalSince(start))
    }

    @Test func deniedFlowsAreResetOrDroppedWhileOthersGoThroughTheProxy() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try setUp(t)
        let before = metricValue(t.metrics(), "istio_tcp_connections_opened_total")

        let reset = timedDial(t, "\(t.peerV4):7001", timeoutMs: 3000)
        #expect(reset.answer == nil && reset.status == 1, "deny RESET: connection refused at once, status \(reset.status)")
        #expect(reset.seconds < 1.0, "a reset fails fast (\(reset.seconds)s)")
        let drop = timedDial(t, "\(t.peerV4Extra):7000", timeoutMs: 1000)
        #expect(drop.answer == nil && drop.status == 2, "deny DROP: the connect times out, status \(drop.status)")

        // IPv6 takes the same path: the v6 trie denies one address, others go through the proxy.
        let drop6 = timedDial(t, "[\(t.peerV6Extra)]:7000", timeoutMs: 1000)
        #expect(drop6.answer == nil && drop6.status == 2, "deny DROP over IPv6, status \(drop6.status)")
        #expect(timedDial(t, "[\(t.peerV6)]:7001", timeoutMs: 3000).status == 1, "deny RESET over IPv6")
        #expect(timedDial(t, "[\(t.peerV6)]:7000").answer?.name == "server")

        let through = timedDial(t, "\(t.peerV4):7000")
        #expect(through.answer?.name == "server")
        let text = t.metrics()
        #expect(metricValue(text, "istio_tcp_connections_opened_total") == before + 2, "only the allowed flows reached the proxy")
        #expect(metricValue(text, "interpose_flow_verdicts_total", "action=\"deny_reset\"", "rule=\"deny-reset\"") >= 1)
        #expect(metricValue(text, "interpose_flow_verdicts_total", "action=\"deny_drop\"", "rule=\"deny-drop\"") >= 1)
        #expect(metricValue(text, "interpose_flow_verdicts_total", "action=\"proxy\"", "policy=\"-\"") >= 1)
        #expect(metricValue(text, "interpose_flow_decision_seconds_count") >= 3)
        #expect(text.contains("interpose_flow_queue_dropped{queue=\"3\"}"), "kernel queue counters are exported")
    }

    @Test func bypassedFlowsReachTheServerWithoutTheProxy() throws {
        let t = try Topology()
        defer { t.destroy() }
        _ = try setUp(t)
        let before = metricValue(t.metrics(), "istio_tcp_connections_opened_total")
        let bypass = timedDial(t, "\(t.peerV4):7003", source: "\(t.appV4):41003")
        #expect(bypass.answer?.peer == "\(t.appV4):41003", "the server sees the application's own source port")
        let afterBypass = t.metrics()
        #expect(metricValue(afterBypass, "istio_tcp_connections_opened_total") == before, "the proxy's counters did not move")
        #expect(metricValue(afterBypass, "interpose_flow_verdicts_total", "action=\"bypass\"", "rule=\"bypass\"") == 1)

        let proxied = timedDial(t, "\(t.peerV4):7000", source: "\(t.appV4):41000")
        #expect(proxied.answer?.name == "server")
        #expect(proxied.answer?.peer != "\(t.appV4):41000", "a proxied flow reaches the server from the proxy's own socket")
        #expect(metricValue(t.metrics(), "istio_tcp_connections_opened_total") == before + 1)
    }

    @Test func aPerSourceRateLimitRefusesTheNextNewFlow() throws {
        let t = try Topology()
        defer { t.destroy() }
        let limited = """
          - name: three-per-second
            match: {destinationPorts: ["7004"]}
            action: PROXY
            rateLimit: {newFlowsPerSecond: 3, burst: 3, exceededAction: DENY}
        """
        _ = try setUp(t, config: Self.policy(extraRules: limited))
        var outcomes: [Bool] = []
        let start = Date()
        for _ in 0..<4 { outcomes.append(timedDial(t, "\(t.peerV4):7004").answer?.name == "server") }
        let elapsed = Date().timeIntervalSince(start)
        #expect(elapsed < 1.0, "the four connections were made within a second (\(elapsed)s)")
        #expect(outcomes == [true, true, true, false], "\(outcomes)")
        #expect(metricValue(t.metrics(), "interpose_flow_verdicts_total", "rule=\"three-per-second\"", "rate_limited=\"true\"") == 1)
        // The bucket refills: after a second the source may connect again.
        usleep(1_100_000)
        #expect(timedDial(t, "\(t.peerV4):7004").answer?.name == "server")
    }

    @Test func killingTheDaemonFailsOpenAndARestartResumesVerdicts() throws {
        let t = try Topology()
        defer { t.destroy() }
        let d = try setUp(t)
        #expect(timedDial(t, "\(t.peerV4):7001").status == 1, "denied while the engine runs")
        _ = t.stop(d.pid, signal: SIGKILL)
        // No reader: the queue's bypass flag lets the SYN through and the flow goes straight on.
        let open = timedDial(t, "\(t.peerV4):7001", source: "\(t.appV4):41101")
        #expect(open.answer?.name == "server", "fail-open: traffic keeps flowing with the daemon gone")
        #expect(open.answer?.peer == "\(t.appV4):41101")
        let restarted = try startDaemon(t, configDir: (d.configFile as NSString).deletingLastPathComponent, file: d.configFile)
        #expect(timedDial(t, "\(t.peerV4):7001").status == 1, "verdicts resume after a restart")
        #expect(timedDial(t, "\(t.peerV4):7000").answer?.name == "server")
        _ = restarted
    }

    /// Also with a range of queues: interpose-init spreads flows over queues 2 and 3 (hashed by address,
    /// so these flows may all land on one), and the engine runs one reader on each.
    @Test func aPolicyChangeByHotReloadAppliesToNewFlows() throws {
        let t = try Topology()
        defer { t.destroy() }
        let d = try setUp(t, queues: "2-3")
        let bound = t.run(t.app, ["cat", "/proc/net/netfilter/nfnetlink_queue"]).stdout.split(separator: "\n").compactMap { $0.split(separator: " ").first }
        #expect(bound.contains("2") && bound.contains("3"), "both queues have a reader: \(bound)")
        #expect(timedDial(t, "\(t.peerV4):7001").status == 1)
        #expect(timedDial(t, "\(t.peerV4):7002").answer?.name == "server")
        try Self.policy(denyResetPort: 7002).write(toFile: d.configFile, atomically: true, encoding: .utf8)
        chmod(d.configFile, 0o644)
        var reloaded = false
        for _ in 0..<50 where !reloaded {
            usleep(100_000)
            reloaded = ((try? String(contentsOfFile: d.log, encoding: .utf8)) ?? "").contains("config reloaded")
        }
        #expect(reloaded)
        #expect(timedDial(t, "\(t.peerV4):7001").answer?.name == "server", "7001 is allowed now")
        #expect(timedDial(t, "\(t.peerV4):7002").status == 1, "7002 is denied now")
        // Every flow above got a verdict from one of the two readers.
        #expect(metricValue(t.metrics(), "interpose_flow_decision_seconds_count") >= 4)
    }

    @Test func theDaemonRunsAsUid1337WithOnlyTheCapabilitiesItNeeds() throws {
        let t = try Topology()
        defer { t.destroy() }
        let d = try setUp(t)
        let status = try String(contentsOfFile: "/proc/\(d.pid)/status", encoding: .utf8)
        func field(_ name: String) -> String {
            status.split(separator: "\n").first { $0.hasPrefix(name + ":") }.map { $0.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces) } ?? ""
        }
        #expect(field("Uid").split(separator: "\t").allSatisfy { $0 == "1337" }, "Uid: \(field("Uid"))")
        #expect(field("Gid").split(separator: "\t").allSatisfy { $0 == "1337" }, "Gid: \(field("Gid"))")
        #expect(field("Groups").isEmpty, "no supplementary groups: \(field("Groups"))")
        #expect(field("CapEff") == "0000000000001000", "only CAP_NET_ADMIN effective: \(field("CapEff"))")
        #expect(field("CapPrm") == "0000000000001000", "only CAP_NET_ADMIN permitted: \(field("CapPrm"))")
        #expect(field("CapInh") == "0000000000000000" && field("CapAmb") == "0000000000000000")
        _ = t.stop(d.pid)

        // Without the flow engine, root keeps nothing at all.
        let dir = (d.configFile as NSString).deletingLastPathComponent
        let plain = try startDaemon(t, configDir: dir, file: d.configFile, extra: [])
        let plainStatus = try String(contentsOfFile: "/proc/\(plain.pid)/status", encoding: .utf8)
        #expect(plainStatus.contains("CapEff:\t0000000000000000") && plainStatus.contains("CapPrm:\t0000000000000000"), "\(plainStatus)")
        #expect(plainStatus.contains("Uid:\t1337\t1337\t1337\t1337"))
        _ = t.stop(plain.pid)

        // Started as uid 1337 without the capability: it runs, without the engine, and says so.
        let unprivileged = try startDaemon(t, configDir: dir, file: d.configFile, asUID: 1337)
        let log = (try? String(contentsOfFile: unprivileged.log, encoding: .utf8)) ?? ""
        #expect(log.contains("flow engine OFF"), "\(log)")
        #expect(timedDial(t, "\(t.peerV4):7000").answer?.name == "server", "no verdicts: fail-open carries the flow")
    }
}
