import Foundation
import InterposeCapture
import InterposeConfig
import InterposeKernel
import InterposePolicy
import InterposeRouting
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

/// Decides what each accepted connection becomes: HTTP/1.1 proxying, or a TCP relay to where the
/// config sends it (or its original destination, or nowhere under REGISTRY_ONLY).
struct ConnectionDispatcher {
    let store: ConfigStore
    let metrics: ProxyMetrics
    let loops: LoopStates
    let lifecycle: ProxyLifecycle
    let accessLog: AccessLog?

    enum Direction { case outbound, inbound }

    func initialize(_ channel: Channel, direction: Direction) -> EventLoopFuture<Void> {
        ChannelOriginalDestination.read(channel).flatMapThrowing { original in
            debugLog("accepted \(channel.remoteAddress.map { "\($0)" } ?? "?") original \(original.map { "\($0)" } ?? "none") local \(channel.localAddress.map { "\($0)" } ?? "?")")
            // Not redirected (someone dialled the capture port itself): there is no original destination,
            // and falling back to our own address would make the proxy connect to itself in a loop.
            // Under TPROXY the local address is the original destination (its port is not ours).
            // The port the listener is bound to (a transparent inbound listener may not use the configured one).
            let listening = channel.parent?.localAddress?.port
            let tproxied = channel.localAddress.flatMap { $0.port }.map { $0 != listening } ?? false
            let env = ConnectionEnvironment(store: store, metrics: metrics, loop: loops.state(for: channel.eventLoop),
                                            originalDestination: original ?? (tproxied ? channel.localAddress : nil), client: channel.remoteAddress,
                                            lifecycle: lifecycle, accessLog: accessLog)
            if direction == .inbound {
                // HTTP/1 is proxied request by request (policy per request, reporter="destination"
                // telemetry); anything else is relayed to the application as bytes.
                var inboundEnv = env
                inboundEnv.inbound = true
                try channel.pipeline.syncOperations.addHandler(ProtocolDetectHandler { ctx, proto, bytes in
                    switch proto {
                    case .http1: self.startHTTP(ctx, env: inboundEnv, firstBytes: bytes)
                    case .http2PriorKnowledge: self.startHTTP2(ctx, env: inboundEnv, firstBytes: bytes)
                    default: self.relayInbound(ctx, env: env, firstBytes: bytes)
                    }
                }, name: "detect")
                return
            }
            // A port the registry declares as TCP is relayed without sniffing.
            let table = store.table
            if let orig = env.originalDestination, let ip = orig.ipAddress, let host = table.serviceHost(forAddress: ip, port: UInt16(orig.port ?? 0)),
               let svc = table.service(forHost: host), let port = svc.port(UInt16(orig.port ?? 0)), !port.isHTTP, port.number == UInt16(orig.port ?? 0) {
                _ = try channel.pipeline.syncOperations.addHandler(ProtocolDetectHandler(immediate: .opaque) { ctx, _, bytes in
                    self.relayOutbound(ctx, env: env, firstBytes: bytes)
                }, name: "detect")
                return
            }
            try channel.pipeline.syncOperations.addHandler(ProtocolDetectHandler { ctx, proto, bytes in
                switch proto {
                case .http1: self.startHTTP(ctx, env: env, firstBytes: bytes)
                case .http2PriorKnowledge: self.startHTTP2(ctx, env: env, firstBytes: bytes)
                case .tls:
                    let sni = bytes.flatMap { TLSClientHello.serverName($0.readableBytesView) }
                    debugLog("TLS ClientHello, server name \(sni ?? "(none)")")
                    self.relayOutbound(ctx, env: env, firstBytes: bytes, serverName: sni)
                default: self.relayOutbound(ctx, env: env, firstBytes: bytes)
                }
            }, name: "detect")
        }
    }

    // MARK: HTTP

    private func startHTTP(_ ctx: ChannelHandlerContext, env: ConnectionEnvironment, firstBytes: ByteBuffer?) {
        takeOver(ctx, firstBytes: firstBytes) { ops in
            // One handler: it decodes requests and encodes answers itself (InterposeHTTP1).
            try ops.addHandler(HTTPProxyHandler(env: env), name: "http-proxy")
        }
    }

    /// HTTP/2 with prior knowledge (h2c): every stream is one request, bridged to HTTP/1.1 and
    /// handled by the same proxy handler as HTTP/1.1 (routing, balancing, policy, mirrors, telemetry
    /// per request); upstreams are spoken to in HTTP/1.1.
    private func startHTTP2(_ ctx: ChannelHandlerContext, env: ConnectionEnvironment, firstBytes: ByteBuffer?) {
        var streamEnv = env
        streamEnv.http2 = true
        takeOver(ctx, firstBytes: firstBytes) { [streamEnv] ops in
            _ = try ops.configureHTTP2Pipeline(mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                    try stream.pipeline.syncOperations.addHandler(HTTP2StreamBridge())
                    try stream.pipeline.syncOperations.addHandler(HTTPProxyHandler(env: streamEnv), name: "http-proxy")
                }
            }
            try ops.addHandler(ConnectionErrorLog(what: "HTTP/2 connection"))
        }
    }

    /// Installs the handlers that take over from protocol detection, gives them the sniffed bytes first
    /// (bytes that came later follow when "detect" goes), and removes "detect".
    private func takeOver(_ ctx: ChannelHandlerContext, firstBytes: ByteBuffer?, _ install: (ChannelPipeline.SynchronousOperations) throws -> Void) {
        do {
            try install(ctx.channel.pipeline.syncOperations)
            if let firstBytes {
                ctx.fireChannelRead(NIOAny(firstBytes))
                ctx.fireChannelReadComplete()
            }
            try removeNow(ctx.channel.pipeline, "detect")
        } catch {
            ctx.channel.close(promise: nil)
        }
    }

    // MARK: TCP

    enum TCPTarget { case endpoint(String, UInt16, Cluster?), blackHole }

    func tcpTarget(_ env: ConnectionEnvironment, serverName: String? = nil) -> TCPTarget {
        let table = store.table
        guard let orig = env.originalDestination, let ip = orig.ipAddress else { return .blackHole }
        let port = UInt16(orig.port ?? 0)
        // TLS: the SNI names the service when the registry knows it; otherwise the address decides.
        let sniHost = serverName.flatMap { table.service(forHost: $0)?.host }
        guard let host = sniHost ?? table.serviceHost(forAddress: ip, port: port) else {
            return table.outboundTrafficPolicy == .registryOnly ? .blackHole : .endpoint(ip, port, nil)
        }
        var destination = Destination(host: host)
        if let vs = table.virtualService(forHost: host) {
            let address = IPAddressText.parse(ip) ?? []
            for route in vs.tcp where route.matches.isEmpty || route.matches.contains(where: { m in
                (m.port == nil || m.port == port) && (m.destinationSubnets.isEmpty || m.destinationSubnets.contains { $0.contains(address) })
                    && m.sourceLabels.allSatisfy { table.proxy.labels[$0.key] == $0.value }
            }) {
                if let i = WeightedChoice.pick(route.weights, using: &env.loop.rng) { destination = route.destinations[i].destination }
                break
            }
        }
        guard let cluster = table.cluster(destination, requestPort: port) else { return .endpoint(ip, port, nil) }
        if cluster.usesOriginalDestination { return .endpoint(ip, port, cluster) }
        guard let ep = env.loop.pick(cluster, generation: table.generation, hash: env.client?.ipAddress.map { stableHash64($0) }) else { return .blackHole }
        return .endpoint(ep.address, ep.port, cluster)
    }

    private func relayOutbound(_ ctx: ChannelHandlerContext, env: ConnectionEnvironment, firstBytes: ByteBuffer?, serverName: String? = nil) {
        switch tcpTarget(env, serverName: serverName) {
        case .blackHole:
            ctx.close(promise: nil)
        case .endpoint(let host, let port, let cluster):
            let labels = ProxyMetrics.RequestLabels(reporter: "source", destinationService: cluster?.key.host ?? "PassthroughCluster",
                                                    destinationName: cluster?.serviceName ?? "PassthroughCluster",
                                                    destinationNamespace: cluster?.serviceNamespace ?? "unknown", destinationVersion: cluster?.key.subset ?? "unknown",
                                                    protocolName: "tcp", responseCode: 0, flags: "")
            let orig = env.originalDestination
            var attributes = RequestAttributes(head: nil, client: env.client, workload: store.table.proxy, outbound: true,
                                               service: cluster?.key.host ?? orig?.ipAddress, port: orig?.port.map { UInt16($0) }, cluster: cluster)
            attributes.originalDestination = orig
            attributes.serverName = serverName
            admit(ctx, env: env, attributes) {
                self.relay(ctx, to: host, port: port, source: nil, timeout: cluster?.connectTimeout ?? TableCompiler.defaultConnectTimeout,
                           idle: cluster?.tcpIdleTimeout ?? 3600, firstBytes: firstBytes, labels: labels, env: env)
            }
        }
    }

    /// Checks a TCP connection against policy (source, destination and port; request.* are absent)
    /// before it is relayed; a denied connection is closed.
    private func admit(_ ctx: ChannelHandlerContext, env: ConnectionEnvironment, _ attributes: RequestAttributes, _ proceed: @escaping () -> Void) {
        let engine = env.store.policy
        if engine.isEmpty { proceed(); return }
        let channel = ctx.channel
        func apply(_ verdict: PolicyVerdict) {
            guard channel.isActive else { return }
            if verdict.isAllowed {
                proceed()
            } else {
                debugLog("connection from \(env.client.map { "\($0)" } ?? "?") closed by policy: \(verdict.logFields)")
                channel.close(promise: nil)
            }
        }
        switch PolicyGate.check(engine, attributes, env: env) {
        case .decided(let verdict): apply(verdict)
        case .waiting(let verdict):
            _ = channel.setOption(ChannelOptions.autoRead, value: false)
            verdict.whenSuccess { apply($0) }
        }
    }

    /// Inbound: to the local application, from 127.0.0.6 / ::6 so capture lets it pass.
    private func relayInbound(_ ctx: ChannelHandlerContext, env: ConnectionEnvironment, firstBytes: ByteBuffer?) {
        guard let orig = env.originalDestination else { ctx.close(promise: nil); return }
        let v6 = orig.protocol == .inet6
        let labels = ProxyMetrics.RequestLabels(reporter: "destination", destinationService: env.store.table.proxy.workloadName,
                                                destinationName: env.store.table.proxy.workloadName, destinationNamespace: env.store.table.proxy.namespace,
                                                destinationVersion: env.store.table.proxy.labels["version"] ?? "unknown", protocolName: "tcp", responseCode: 0, flags: "")
        let proxy = store.table.proxy
        var attributes = RequestAttributes(head: nil, client: env.client, workload: proxy, outbound: false,
                                           service: proxy.workloadName, port: orig.port.map { UInt16($0) }, cluster: nil)
        attributes.originalDestination = orig
        admit(ctx, env: env, attributes) {
            self.relay(ctx, to: v6 ? "::1" : "127.0.0.1", port: UInt16(orig.port ?? 0), source: v6 ? "::6" : "127.0.0.6",
                       timeout: TableCompiler.defaultConnectTimeout, idle: 3600, firstBytes: firstBytes, labels: labels, env: env)
        }
    }

    private func relay(_ ctx: ChannelHandlerContext, to host: String, port: UInt16, source: String?, timeout: Double, idle: Double,
                       firstBytes: ByteBuffer?, labels: ProxyMetrics.RequestLabels, env: ConnectionEnvironment) {
        let downstream = ctx.channel
        var bootstrap = ClientBootstrap(group: downstream.eventLoop)
            .connectTimeout(.milliseconds(Int64(timeout * 1000)))
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
        if let source, let addr = try? SocketAddress(ipAddress: source, port: 0) { bootstrap = bootstrap.bind(to: addr) }
        let metrics = env.metrics
        _ = downstream.setOption(ChannelOptions.autoRead, value: false)
        bootstrap.connect(host: host, port: Int(port)).whenComplete { result in
            switch result {
            case .failure(let error):
                debugLog("relay to \(host):\(port) failed: \(error)")
                downstream.close(promise: nil)
            case .success(let upstream):
                metrics.tcpOpened(labels)
                env.lifecycle.begin()
                upstream.closeFuture.whenComplete { _ in env.lifecycle.end() }
                let (a, b) = GlueHandler.matchedPair()
                // Recorded once both sides have closed, whichever closes first (both run on this loop).
                var fromClient: Int?, fromUpstream: Int?
                func recordIfDone() {
                    if let received = fromClient, let sent = fromUpstream { metrics.tcpClosed(labels, sent: sent, received: received) }
                }
                a.onClose = { fromClient = $0; recordIfDone() }
                b.onClose = { fromUpstream = $0; recordIfDone() }
                do {
                    // Idle in both directions for `idle` seconds: the relay is closed (the glue sees the event).
                    let idleTime = TimeAmount.milliseconds(Int64(idle * 1000))
                    try downstream.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idleTime))
                    try upstream.pipeline.syncOperations.addHandler(b)
                    try downstream.pipeline.syncOperations.addHandler(a)
                    if let firstBytes { upstream.writeAndFlush(NIOAny(firstBytes), promise: nil) }
                    try removeNow(downstream.pipeline, "detect")
                    _ = downstream.setOption(ChannelOptions.autoRead, value: true)
                    _ = upstream.setOption(ChannelOptions.autoRead, value: true)
                } catch {
                    downstream.close(promise: nil)
                    upstream.close(promise: nil)
                }
            }
        }
    }
}


/// Connection-level diagnostics on standard error when INTERPOSE_DEBUG is set.
let debugEnabled = ProcessInfo.processInfo.environment["INTERPOSE_DEBUG"] != nil
func debugLog(_ s: @autoclosure () -> String) {
    if debugEnabled { FileHandle.standardError.write(Data("interpose debug: \(s())\n".utf8)) }
}

/// Logs (INTERPOSE_DEBUG) the errors a connection-level handler reports, such as HTTP/2 protocol errors.
final class ConnectionErrorLog: ChannelInboundHandler, Sendable {
    typealias InboundIn = Any
    let what: String
    init(what: String) { self.what = what }
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        debugLog("\(what) from \(context.channel.remoteAddress.map { "\($0)" } ?? "?"): \(error)")
        context.fireErrorCaught(error)
    }
}
