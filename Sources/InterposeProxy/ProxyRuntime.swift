import Foundation
import InterposeConfig
import InterposeFlow
import InterposePolicy
import InterposeKernel
import InterposeRouting
import NIOCore
import NIOHTTP1
import NIOPosix

/// The running proxy: listeners, the config store and its reload loop, admin servers, and shutdown.
public final class ProxyRuntime: @unchecked Sendable {
    public struct Options: Sendable {
        public var configPath: String
        public var threads = 1
        public var reloadInterval = 1.0
        public var bindAddress4 = "0.0.0.0"
        public var bindAddress6: String? = "::"
        public var adminAddress = "127.0.0.1"
        /// Command-line settings that win over ProxyConfig, kept across reloads.
        public var overrides: @Sendable (inout ProxySettings) -> Void = { _ in }
        /// NFQUEUE numbers for the flow engine (`--queue`); nil leaves the engine off.
        public var flowQueues: FlowQueueSettings?
        /// /proc/net/netfilter/nfnetlink_queue opened while still root (it is 0440 root).
        public var queueStatistics: PinnedProcFile?
        /// Inbound listening sockets made transparent (IP_TRANSPARENT) before privileges were dropped,
        /// for interpose-init --mode tproxy; used instead of binding the inbound port.
        public var transparentInbound: [Int32] = []
        public init(configPath: String) { self.configPath = configPath }
    }

    public let store: ConfigStore
    public let metrics: ProxyMetrics
    public let lifecycle = ProxyLifecycle()
    let options: Options
    let group: MultiThreadedEventLoopGroup
    let loops: LoopStates
    private var listeners: [Channel] = []
    private var adminChannels: [Channel] = []
    private let shutdownPromise: EventLoopPromise<Void>
    private var reloadTimer: DispatchSourceTimer?
    /// Timer reloads, SIGHUP reloads, DNS refreshes and list fetches all run here, one at a time: a
    /// DNS refresh must never store a table compiled from a bundle a concurrent reload replaced.
    private let reloadQueue = DispatchQueue(label: "interpose.reload")
    private var signalSources: [DispatchSourceSignal] = []
    /// The NFQUEUE flow engine, when asked for and allowed (CAP_NET_ADMIN).
    public private(set) var flowEngine: FlowEngine?
    public let flowMetrics: FlowMetrics
    let log: (String) -> Void

    public init(options: Options, bundle: ConfigBundle, log: @escaping (String) -> Void) {
        self.options = options
        self.log = log
        store = ConfigStore(path: options.configPath, initial: bundle, overrides: options.overrides)
        metrics = ProxyMetrics(workload: store.table.proxy)
        flowMetrics = FlowMetrics(registry: metrics.registry)
        group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
        loops = LoopStates(group: group)
        shutdownPromise = group.next().makePromise()
    }

    public func start() throws {
        let p = store.table.proxy
        let dispatcher = ConnectionDispatcher(store: store, metrics: metrics, loops: loops, lifecycle: lifecycle, accessLog: p.accessLog ? AccessLog() : nil)
        for fd in options.transparentInbound {
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.maxMessagesPerRead, value: 64)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in dispatcher.initialize(channel, direction: .inbound) }
            listeners.append(try bootstrap.withBoundSocket(fd).wait())
        }
        for (port, direction) in [(p.outboundPort, ConnectionDispatcher.Direction.outbound), (p.inboundPort, .inbound)] {
            if direction == .inbound && !options.transparentInbound.isEmpty { continue }
            for addr in [options.bindAddress4] + (options.bindAddress6.map { [$0] } ?? []) {
                let bootstrap = ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 1024)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.maxMessagesPerRead, value: 64)
                    .childChannelOption(.allowRemoteHalfClosure, value: true)
                    .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .childChannelInitializer { channel in dispatcher.initialize(channel, direction: direction) }
                let configured = addr.contains(":")
                    ? bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 1)
                    : bootstrap
                do {
                    listeners.append(try configured.bind(to: try SocketAddress(ipAddress: addr, port: Int(port))).wait())
                } catch where addr.contains(":") {
                    log("IPv6 listener on [\(addr)]:\(port) not started: \(error)")
                }
            }
        }
        adminChannels.append(try adminServer(.admin, host: options.adminAddress, port: p.adminPort))
        adminChannels.append(try adminServer(.readiness, host: options.bindAddress4, port: p.readinessPort))
        adminChannels.append(try adminServer(.metrics, host: options.bindAddress4, port: p.metricsPort))
        try startFlowEngine()
        refreshLists()
        if !store.policy.isEmpty { log("policy: \(store.policy.summary)") }
        startReloading()
        handleSignals()
        lifecycle.markReady()
        log("interpose ready: outbound :\(p.outboundPort), inbound :\(p.inboundPort), admin \(options.adminAddress):\(p.adminPort), readiness :\(p.readinessPort), metrics :\(p.metricsPort)")
    }

    /// Starts the NFQUEUE engine before the proxy is ready, so the first queued SYN finds a reader.
    /// Without CAP_NET_ADMIN it stays off and says so; the queue's fail-open then sends flows on.
    private func startFlowEngine() throws {
        guard let settings = options.flowQueues else {
            if !store.flowRules.isEmpty {
                log("warning: FlowPolicy rules are loaded but no --queue was given: the flow engine is off and they are not enforced")
            }
            return
        }
        let queues = settings.queues.map(String.init).joined(separator: ",")
        guard Privileges.canAdministerNetwork else {
            log("flow engine OFF: NFQUEUE \(queues) needs CAP_NET_ADMIN, which this process does not have (uid \(getuid())). "
                + "Start interpose as root (it drops to uid 1337 keeping only CAP_NET_ADMIN) or grant the capability. "
                + "Queued flows follow the queue's fail-open setting meanwhile.")
            return
        }
        let store = self.store
        let statistics = options.queueStatistics ?? PinnedProcFile(path: "/proc/net/netfilter/nfnetlink_queue")
        if statistics == nil { log("note: /proc/net/netfilter/nfnetlink_queue is not readable: queue drop counters are not exported") }
        let engine = FlowEngine(settings: settings, rules: { store.flowRules }, metrics: flowMetrics,
                                openKernel: { _ in try NetfilterQueueKernel(settings: settings) },
                                readStatistics: { statistics?.read() }, log: { FileHandle.standardError.write(Data(("interpose: " + $0 + "\n").utf8)) })
        try engine.start()
        flowEngine = engine
        log("flow engine on: NFQUEUE \(queues), \(store.flowRules.ruleCount) FlowPolicy rules, queue length \(settings.queueLength), \(settings.failOpen ? "fail-open" : "fail-closed")")
    }

    private func adminServer(_ role: AdminHandler.Role, host: String, port: UInt16) throws -> Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(role: role, runtime: self))
                }
            }
            .bind(host: host, port: Int(port)).wait()
    }

    private func startReloading() {
        let timer = DispatchSource.makeTimerSource(queue: reloadQueue)
        timer.schedule(deadline: .now() + options.reloadInterval, repeating: options.reloadInterval)
        var ticks = 0
        let refreshEvery = max(1, Int((store.table.proxy.dnsRefreshInterval / options.reloadInterval).rounded()))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            self.reload(force: false)
            self.refreshLists()
            ticks += 1
            if ticks % refreshEvery == 0, let generation = self.store.refreshDNS() {
                self.log("DNS answers changed: endpoints updated (generation \(generation))")
            }
        }
        timer.resume()
        reloadTimer = timer
    }

    /// When each ValueList read from a file or URL was last fetched, and how many entries it had.
    /// Touched only on the reload queue (and once at start, before it runs).
    private var listFetches: [String: (at: Date, count: Int)] = [:]

    /// Fetches the ValueLists whose refresh interval has passed. A failed fetch or a list with a bad
    /// entry keeps the last good list in force; it is counted and logged.
    func refreshLists() {
        for source in store.listSources {
            if let last = listFetches[source.list], Date().timeIntervalSince(last.at) < source.refreshInterval { continue }
            let previous = listFetches[source.list]?.count ?? -1
            listFetches[source.list] = (Date(), previous)
            let text: String
            do {
                if let file = source.file {
                    text = try String(contentsOfFile: file, encoding: .utf8)
                } else if let url = source.url {
                    text = try HTTPFetch.get(url)
                } else { continue }
            } catch {
                store.lists.recordRefreshFailure(source.list, reason: "\(error)")
                metrics.valueListRefreshFailed(source.list)
                log("ValueList \(source.list): refresh failed, the last good list stays in force: \(error)")
                continue
            }
            switch store.lists.update(source.list, entries: ValueListStore.parseEntries(text)) {
            case .success(let count):
                listFetches[source.list] = (Date(), count)
                if count != previous { log("ValueList \(source.list): \(count) entries in force") }
            case .failure(let error):
                metrics.valueListRefreshFailed(source.list)
                log("ValueList \(source.list): refresh refused, the last good list stays in force: \(error)")
            }
        }
    }

    /// Reloads the config when its files changed; a config with errors is refused and the last good stays.
    public func reload(force: Bool) {
        switch store.reloadIfChanged(force: force) {
        case .unchanged: break
        case .applied(let generation, let warnings):
            metrics.reloadSucceeded()
            log("config reloaded: generation \(generation)\(warnings.isEmpty ? "" : ", \(warnings.count) warnings")")
            for w in warnings { log(w.description) }
        case .refused(let errors):
            metrics.reloadFailed()
            log("config refused, the last good config stays in force: \(errors.count) errors")
            for e in errors { log(e.description) }
        }
    }

    private func handleSignals() {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let src = DispatchSource.makeSignalSource(signal: sig, queue: DispatchQueue(label: "interpose.signal"))
            src.setEventHandler { [weak self] in self?.requestShutdown() }
            src.resume()
            signalSources.append(src)
        }
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: reloadQueue)
        signal(SIGHUP, SIG_IGN)
        hup.setEventHandler { [weak self] in self?.reload(force: true) }
        hup.resume()
        signalSources.append(hup)
    }

    /// Stop accepting, let requests in flight finish (responses say Connection: close) within the
    /// drain timeout, then stop.
    public func requestShutdown() {
        guard !lifecycle.isDraining else { return }
        lifecycle.startDraining()
        let drain = store.table.proxy.drainTimeout
        log("draining: no new connections; waiting up to \(drain)s for requests in flight")
        let closes = listeners.map { $0.close() }
        let loop = group.next()
        let deadline = NIODeadline.now() + .milliseconds(Int64(drain * 1000))
        EventLoopFuture.andAllComplete(closes, on: loop).whenComplete { _ in
            // Finish as soon as nothing is in flight, or at the drain deadline.
            func check() {
                if self.lifecycle.activeWork <= 0 || NIODeadline.now() >= deadline {
                    self.log("drained (\(max(0, self.lifecycle.activeWork)) still open at exit)")
                    self.shutdownPromise.succeed(())
                } else {
                    loop.scheduleTask(in: .milliseconds(50)) { check() }
                }
            }
            check()
        }
    }

    /// After a failed `start`: closes what did start and the event loops, so the process exits with
    /// its error (and not on the never-completed shutdown promise).
    public func abandon() {
        shutdownPromise.succeed(())
        reloadTimer?.cancel()
        flowEngine?.stop()
        for c in listeners + adminChannels { try? c.close().wait() }
        try? group.syncShutdownGracefully()
    }

    /// Blocks until shutdown completes; returns so the process can exit 0.
    public func wait() throws {
        try shutdownPromise.futureResult.wait()
        reloadTimer?.cancel()
        flowEngine?.stop()
        for c in adminChannels { try? c.close().wait() }
        try group.syncShutdownGracefully()
    }
}
