import ArgumentParser
import Foundation
import InterposeCapture
import InterposeConfig
import InterposeFlow
import InterposePolicy
import InterposeProxy
import InterposeRouting
import InterposeKernel

@main
struct Interpose: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interpose",
        abstract: "The Interpose proxy: Istio's traffic management (VirtualService, DestinationRule, ServiceEntry, Sidecar) without Envoy or a control plane.",
        version: "0.1.0",
        subcommands: [Run.self, Validate.self, Explain.self, Version.self]
    )
}

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// Loads a config path and prints its problems; throws when it has errors.
func loadOrFail(_ path: String) throws -> ConfigBundle {
    let bundle: ConfigBundle
    do { bundle = try ConfigLoader.load(path: path) } catch { printErr("interpose: \(error)"); throw ExitCode(2) }
    for w in bundle.warnings { printErr(w.description) }
    if !bundle.errors.isEmpty {
        for e in bundle.errors { printErr(e.description) }
        printErr("interpose: \(path): \(bundle.errors.count) error(s)")
        throw ExitCode(1)
    }
    return bundle
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the proxy with a config file or directory (watched and hot-reloaded; SIGHUP reloads at once).")

    @Option(help: "A YAML file or a directory of YAML files (Istio resources and interpose.dev kinds).") var config: String
    @Option(help: "Outbound capture port (overrides ProxyConfig; default 15001).") var outboundPort: UInt16?
    @Option(help: "Inbound capture port (overrides ProxyConfig; default 15006).") var inboundPort: UInt16?
    @Option(help: "Admin port on 127.0.0.1 (default 15000).") var adminPort: UInt16?
    @Option(help: "Readiness port, /healthz/ready (default 15021).") var readinessPort: UInt16?
    @Option(help: "Metrics port, /stats/prometheus (default 15090).") var metricsPort: UInt16?
    @Option(help: "Event loop threads (default 1, one worker like HAProxy nbthread 1).") var threads: Int = 1
    @Option(help: "Drain timeout in seconds after SIGTERM (overrides ProxyConfig; default 5).") var drainTimeout: Double?
    @Flag(help: "Write an Envoy-format access log line per request to standard output.") var accessLog = false
    @Option(help: "Seconds between checks of the config path for changes.") var reloadInterval: Double = 1
    @Option(help: ArgumentHelp("NFQUEUE number or range (N or N-M) to read new flows from: turns the flow engine on (FlowPolicy verdicts). Use the same value as interpose-init --queue.", valueName: "queue")) var queue: String?
    @Option(help: "Packets the kernel may hold per queue before fail-open applies.") var queueLength: UInt32 = 4096
    @Flag(inversion: .prefixedNo, help: "Set the queue's fail-open flag: when the queue is full the kernel accepts new flows instead of dropping them.") var queueFailOpen = true
    @Option(help: "Seconds without progress before the watchdog declares a queue reader stalled, releases the queue (fail-open) and restarts it.") var queueStallTimeout: Double = 2
    @Flag(help: "Make the inbound listener transparent (IP_TRANSPARENT), for interpose-init --mode tproxy. The sockets are made at start, while still root (or with CAP_NET_ADMIN), on --inbound-port (default 15006).") var inboundTransparent = false
    @Option(help: "The Redis for Global rate limits, host:port (overrides ProxyConfig spec.redis.address).") var redis: String?
    @Option(help: "When started as root: the user to run as (numeric uid). Privileges are dropped at once, before any thread starts.") var user: UInt32 = 1337
    @Option(help: "When started as root: the group to run as (numeric gid; default: the same as --user).") var group: UInt32?

    func run() throws {
        var flowQueues: FlowQueueSettings?
        if let queue {
            switch CaptureOptionParser.queue(queue) {
            case .success(let range):
                var s = FlowQueueSettings(queues: Array(range.first...range.last))
                s.queueLength = queueLength
                s.failOpen = queueFailOpen
                s.stallTimeout = queueStallTimeout
                flowQueues = s
            case .failure:
                throw ValidationError("--queue: '\(queue)' is not a queue number or range (expected N or N-M, 0-65535, like interpose-init --queue)")
            }
        }
        // Root only long enough to give itself up: before config loading, before any thread exists.
        var queueStatistics: PinnedProcFile?
        var transparent: [Int32] = []
        if inboundTransparent {
            // Before the drop: IP_TRANSPARENT needs CAP_NET_ADMIN, which the proxy does not keep for it.
            let port = inboundPort ?? 15006
            do {
                transparent.append(try TCPSocket.listen(family: .v4, port: port, transparent: true).takeDescriptor())
                if HostInspector(runner: ProcessCommandRunner()).ipv6Enabled(), let v6 = try? TCPSocket.listen(family: .v6, port: port, transparent: true) { transparent.append(v6.takeDescriptor()) }
            } catch {
                printErr("interpose: --inbound-transparent: cannot make the transparent inbound listener on :\(port): \(error) (run as root or with CAP_NET_ADMIN)")
                throw ExitCode(1)
            }
        }
        if geteuid() == 0 {
            if flowQueues != nil { queueStatistics = PinnedProcFile(path: "/proc/net/netfilter/nfnetlink_queue") }
            do {
                try Privileges.drop(toUser: user, group: group ?? user, keepNetAdmin: flowQueues != nil, keepNetRaw: false)
            } catch {
                printErr("interpose: \(error)")
                throw ExitCode(1)
            }
            printErr("interpose: running as uid \(getuid()) gid \(getgid()), " + (flowQueues != nil ? "keeping only CAP_NET_ADMIN (flow engine)" : "with no capabilities"))
        }
        let bundle = try loadOrFail(config)
        var redisOverride: RedisSettings?
        if let redis {
            guard let r = RedisSettings.parse(redis) else { throw ValidationError("--redis: '\(redis)' is not host:port or [ipv6]:port") }
            redisOverride = r
        }
        let (outbound, inbound, admin, readiness, metrics, drain, log) = (outboundPort, inboundPort, adminPort, readinessPort, metricsPort, drainTimeout, accessLog)
        let redisGiven = redisOverride
        var options = ProxyRuntime.Options(configPath: config)
        options.overrides = { p in
            if let v = outbound { p.outboundPort = v }
            if let v = inbound { p.inboundPort = v }
            if let v = admin { p.adminPort = v }
            if let v = readiness { p.readinessPort = v }
            if let v = metrics { p.metricsPort = v }
            if let v = drain { p.drainTimeout = v }
            if log { p.accessLog = true }
            if let r = redisGiven {
                let timeouts = p.redis
                p.redis = r
                if let t = timeouts { p.redis?.connectTimeout = t.connectTimeout; p.redis?.commandTimeout = t.commandTimeout }
            }
        }
        options.threads = threads
        options.reloadInterval = reloadInterval
        options.flowQueues = flowQueues
        options.queueStatistics = queueStatistics
        options.transparentInbound = transparent
        let runtime = ProxyRuntime(options: options, bundle: bundle, log: { printErr("interpose: \($0)") })
        do { try runtime.start() } catch {
            printErr("interpose: cannot start: \(error)")
            runtime.abandon()
            throw ExitCode(1)
        }
        try runtime.wait()
        printErr("interpose: stopped")
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a config file or directory: exit 0, or print every problem with file, document, resource and field path.")
    @Argument(help: "A YAML file or a directory of YAML files.") var path: String

    func run() throws {
        let b = try loadOrFail(path)
        print("\(path): valid: \(b.serviceEntries.count) ServiceEntry, \(b.virtualServices.count) VirtualService, \(b.destinationRules.count) DestinationRule, \(b.sidecars.count) Sidecar, \(b.flowPolicies.count) FlowPolicy, \(b.authorizationPolicies.count) AuthorizationPolicy, \(b.valueLists.count) ValueList, \(b.deniers.count) Denier, \(b.rateLimitPolicies.count) RateLimitPolicy\(b.warnings.isEmpty ? "" : ", \(b.warnings.count) warning(s)")")
    }
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how a request would be routed: VirtualService, route and match, destination and subset, candidate endpoints, and why earlier routes did not match.",
        discussion: "Example: interpose explain --config examples/ 'GET http://reviews:9080/api?x=1' -H 'end-user: jason'")
    @Option(help: "A YAML file or a directory of YAML files.") var config: String
    @Argument(help: "'METHOD URL', e.g. 'GET http://reviews:9080/api?x=1'") var request: String
    @Option(name: [.customShort("H"), .customLong("header")], help: "A request header 'name: value' (repeatable).") var headers: [String] = []
    @Option(help: "This workload's labels for sourceLabels matches, 'k=v,k=v' (default: ProxyConfig's).") var sourceLabels: String?
    @Option(help: "The original destination address the client dialled (for VIP routing).") var destinationAddress: String?
    @Option(help: "The client's address (source.ip) for policy checks; default: none.") var sourceAddress: String?

    func run() throws {
        var bundle = try loadOrFail(config)
        if let sourceLabels {
            var labels: [String: String] = [:]
            for kv in sourceLabels.split(separator: ",") {
                let p = kv.split(separator: "=", maxSplits: 1)
                guard p.count == 2 else { throw ValidationError("--source-labels: '\(kv)' is not key=value") }
                labels[String(p[0])] = String(p[1])
            }
            bundle.proxy.labels = labels
        }
        let parts = request.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2, let url = URLComponents(string: parts[1]), let host = url.host else {
            throw ValidationError("the request must look like 'GET http://host:port/path?query'")
        }
        let port = UInt16(url.port ?? (url.scheme == "https" ? 443 : 80))
        var hdrs: [String: String] = [:]
        for h in headers {
            guard let colon = h.firstIndex(of: ":") else { throw ValidationError("-H: '\(h)' is not 'name: value'") }
            hdrs[h[..<colon].lowercased()] = h[h.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let authority = url.port.map { "\(host):\($0)" } ?? host
        let path = (url.percentEncodedPath.isEmpty ? "/" : url.percentEncodedPath) + (url.percentEncodedQuery.map { "?\($0)" } ?? "")
        let view = RequestView(method: parts[0].uppercased(), pathAndQuery: path, authority: authority, scheme: url.scheme ?? "http", port: port,
                               header: { name in name == "host" ? authority : hdrs[name] })
        let table = TableCompiler.compile(bundle, generation: 1, resolved: DNSResolver.resolveAll(TableCompiler.namesToResolve(bundle)))
        var trace = RouteTrace()
        var rng = SystemRandomNumberGenerator()
        let decision = withUnsafeMutablePointer(to: &trace) { HTTPRouter(table: table).route(view, originalAddress: destinationAddress, using: &rng, trace: $0) }
        print("request:   \(parts[0].uppercased()) \(path)  host \(authority)  port \(port)")
        for line in trace.lines { print("  - \(line)") }
        switch decision {
        case .forward(let plan):
            print("decision:  forward to cluster \(plan.cluster.key)")
            if let vs = plan.virtualService { print("           VirtualService \(vs), route \(plan.route ?? "(unnamed)")") }
            print("           destination \(plan.destination.host)\(plan.destination.subset.map { ", subset \($0)" } ?? "")")
            if plan.cluster.usesOriginalDestination { print("           endpoint: the original destination (resolution NONE / PASSTHROUGH)") }
            else if plan.cluster.endpoints.isEmpty { print("           endpoints: none (503 UH)") }
            else { print("           candidate endpoints (\(plan.cluster.loadBalancer)): " + plan.cluster.endpoints.map { "\($0) w=\($0.weight)" }.joined(separator: ", ")) }
            for m in plan.mirrors { print("           mirror to \(m.cluster.key) at \(m.percent)%") }
            if let t = plan.timeout { print("           timeout \(t)s") }
            print("note:      a weighted route picks per request; this shows one draw")
        case .redirect(let status, let location): print("decision:  redirect \(status) to \(location)")
        case .direct(let status, let body): print("decision:  direct response \(status)\(body.map { ": \($0)" } ?? "")")
        case .noRoute: print("decision:  404 NR (no route matched)")
        case .blackHole: print("decision:  502 BlackHoleCluster (REGISTRY_ONLY and the host is not in the registry)")
        case .passthrough: print("decision:  PassthroughCluster (ALLOW_ANY): straight to the original destination")
        case .noCluster(let host): print("decision:  503 NC: the route's destination \(host) is not a known service")
        }
        // The policy decision for the same request (authorization, lists, deniers, rate limits).
        let engine = PolicyEngine.compile(bundle, lists: ValueListStore(), previous: nil)
        var cluster: Cluster?
        var service = host
        if case .forward(let plan) = decision { cluster = plan.cluster; service = plan.cluster.key.host }
        let attributes = RequestAttributes.described(method: parts[0].uppercased(), uri: path, headers: [("host", authority)] + hdrs.map { ($0.key, $0.value) },
                                                     sourceAddress: sourceAddress, workload: bundle.proxy, service: service, port: port, cluster: cluster)
        if engine.isEmpty {
            print("policy:    none configured (allowed)")
        } else {
            print("policy:")
            for line in engine.explain(attributes, now: 0) { print("  - \(line.hasPrefix("policy: ") ? String(line.dropFirst(8)) : line)") }
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")
    func run() { print("interpose 0.1.0") }
}
