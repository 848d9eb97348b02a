import Foundation
import InterposeConfig
import InterposePolicy
import InterposeRouting
import NIOCore
import InterposeHTTP1
import NIOHTTP1

/// What every connection handler needs: the config, telemetry, per-loop state and the connection's addresses.
struct ConnectionEnvironment {
    let store: ConfigStore
    let metrics: ProxyMetrics
    let loop: LoopState
    let originalDestination: SocketAddress?
    let client: SocketAddress?
    let lifecycle: ProxyLifecycle
    let accessLog: AccessLog?
    /// Accepted on the inbound port: requests go to the local application (reporter="destination").
    var inbound = false
    /// One HTTP/2 stream (h2c): one request; no connection-level headers in answers.
    var http2 = false
}

/// One downstream HTTP/1.1 connection. Every request is routed and balanced on its own, so a single
/// long-lived client connection is spread over all endpoints (the long-connection problem). Bodies are
/// streamed in both directions with backpressure; local answers carry Envoy's response flags.
final class HTTPProxyHandler: ChannelInboundHandler, RemovableChannelHandler, UpstreamResponseSink {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let env: ConnectionEnvironment
    private var context: ChannelHandlerContext?
    private var exchange: Exchange?
    /// A local reply was sent for this request: the rest of its body is read and dropped.
    private var discardingBody = false
    private var closeAfterResponse = false

    /// One request in flight.
    final class Exchange {
        /// The request head as received (its fields read on demand, copied upstream from its bytes).
        let raw: RawRequestHead
        /// The request target as routed and forwarded: normalized (`/./admin` is `/admin`).
        let uri: String
        var method: HTTPMethod { raw.method }
        var httpVersion: HTTPVersion { raw.version }
        /// NIO's head with the normalized target, made only for readers of every field (policy, the access log).
        lazy var requestHead: HTTPRequestHead = {
            var head = raw.head
            head.uri = uri
            return head
        }()
        let started = NIODeadline.now()
        var upstreamSent: NIODeadline?
        var cluster: Cluster?
        var endpointKey = ""
        /// The key least-request balancing counts active requests under (`Endpoint.description`).
        var activeKey: String?
        /// `host:port` (`[v6]:port`) of the endpoint, for the access log (activeKey is cleared before it).
        var upstreamAddress = "-"
        var connection: UpstreamConnection?
        var upstream: Channel? { connection?.channel }
        /// The request head for the upstream, until its connection is ready.
        var outgoingHead: OutgoingHead?
        /// Body parts that arrived before the upstream connection was ready.
        var pending: [UpstreamPart] = []
        var requestEnded = false
        var responseStarted = false
        var responseStatus = 0
        var flags = ""
        var bytesIn = 0
        var bytesOut = 0
        var upstreamReusable = true
        var responseHeaders: [HeaderOperations] = []
        var mirrors: [MirrorSink] = []
        var timeout: Scheduled<Void>?
        var upgrading = false
        /// The x-request-id made here when the client sent none.
        var generatedRequestID: String?
        /// `Expect: 100-continue`: answered here, not passed on.
        var expectsContinue = false
        var finished = false
        var version = "unknown"
        /// The policy decision's log fields when a policy took part (access log).
        var policyLog: String?
        /// x-ratelimit-* headers for the response of an allowed, rate-limited request, and the
        /// Set-Cookie of a consistent-hash cookie generated for this client.
        var policyHeaders: [(String, String)] = []
        init(_ raw: RawRequestHead, uri: String) {
            self.raw = raw
            self.uri = uri
        }
    }

    /// The original destination's address and port, read once per connection (SocketAddress.ipAddress formats anew on each call).
    private let originalIP: String?
    private let originalPort: UInt16
    /// The telemetry instruments of this connection's last request.
    private var lastInstruments: (labels: ProxyMetrics.RequestLabels, instruments: ProxyMetrics.RequestInstruments)?
    /// Routing work this connection's earlier requests already did.
    private let routeMemo = RouteMemo()

    init(env: ConnectionEnvironment) {
        self.env = env
        originalIP = env.originalDestination?.ipAddress
        originalPort = UInt16(env.originalDestination?.port ?? 80)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    // MARK: downstream events

    /// Inside a read burst from the client (between channelRead and channelReadComplete).
    private var inRead = false

    /// Requests are decoded here from the bytes (no codec handlers in the pipeline: one hop per read,
    /// not one per message piece) and answers encoded into one buffer written per flush.
    private var decoder = HTTP1Decoder(kind: .request, rawHeads: true)
    private var encoder = HTTP1Encoder()
    private var output = OutputBuffer()
    /// Edits made to each request's and response's head, kept so their lists' storage is reused.
    private var requestEdits = HeaderEdits()
    private var responseEdits = HeaderEdits()
    private var decoding = false
    /// Reading stopped because pipelined requests piled up behind the one in flight.
    private var pausedForPipeline = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inRead = true
        decoder.feed(unwrapInboundIn(data))
        decodeAvailable()
    }

    /// Handles what the buffered bytes make, up to the end of a request whose response is still in
    /// flight: pipelined requests wait in the decoder's buffer and are decoded in order after it.
    /// (Done here instead of with NIO's HTTPServerPipelineHandler, which stops and restarts reading
    /// around every request: two epoll_ctl calls per request.)
    private func decodeAvailable() {
        guard let context, !decoding else { return }
        decoding = true
        defer { decoding = false }
        while exchange?.requestEnded != true || discardingBody {
            if closeAfterResponse && exchange == nil { return }
            let part: HTTP1Part?
            do { part = try decoder.next() } catch {
                malformed(error, context: context)
                return
            }
            guard let part else { break }
            switch part {
            case .rawRequestHead(let head):
                discardingBody = false
                startRequest(head, context: context)
            case .body(let bytes): handleBody(bytes)
            case .end(let trailers): handleEnd(trailers)
            case .requestHead, .responseHead, .rawResponseHead: break
            }
        }
        if decoder.bufferedBytes > 64 * 1024 && !pausedForPipeline {
            pausedForPipeline = true
            _ = context.channel.setOption(ChannelOptions.autoRead, value: false)
        }
    }

    /// The answer to the request in flight is complete: the next pipelined request may go.
    private func replayQueued() {
        guard let context, !closeAfterResponse else { return }
        // An upgrade that did not happen: the connection goes on as HTTP/1.
        decoder.resume()
        decodeAvailable()
        if pausedForPipeline && decoder.bufferedBytes <= 64 * 1024 {
            pausedForPipeline = false
            _ = context.channel.setOption(ChannelOptions.autoRead, value: true)
        }
    }

    /// Encoded into the pending answer bytes; written by `flushOut`.
    private func respond(_ part: HTTPServerResponsePart, context: ChannelHandlerContext, requestMethod: HTTPMethod? = nil) {
        output.append(context.channel.allocator) { out in
            switch part {
            case .head(let head):
                let code = head.status.code
                let bodyless = requestMethod == .HEAD || (code >= 100 && code < 200) || code == 204 || code == 304
                encoder.responseHead(head, bodyless: bodyless, into: &out)
            case .body(.byteBuffer(let bytes)): encoder.body(bytes, into: &out)
            case .body(.fileRegion): break
            case .end(let trailers): encoder.end(trailers, into: &out)
            }
        }
        output.writeIfLarge { context.write(wrapOutboundOut($0), promise: nil) }
    }

    /// Writes and flushes what `respond` gathered.
    @discardableResult
    private func flushOut(_ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        let promise = context.eventLoop.makePromise(of: Void.self)
        let (bytes, _) = output.takeForFlush()
        if let out = bytes {
            context.writeAndFlush(wrapOutboundOut(out), promise: promise)
        } else {
            context.flush()
            promise.succeed()
        }
        return promise.futureResult
    }

    /// Flushes what `respond` gathered when nobody waits for the write.
    private func flushOutNow(_ context: ChannelHandlerContext) {
        let (bytes, flush) = output.takeForFlush()
        if let out = bytes {
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        } else if flush {
            context.flush()
        }
    }

    private func handleBody(_ buffer: ByteBuffer) {
        if discardingBody { return }
        guard let ex = exchange else { return }
        ex.bytesIn += buffer.readableBytes
        for m in ex.mirrors { m.send(.body(buffer)) }
        sendUpstream(.body(buffer), ex)
    }

    private func handleEnd(_ trailers: HTTPHeaders?) {
        if discardingBody { discardingBody = false; return }
        guard let ex = exchange else { return }
        ex.requestEnded = true
        for m in ex.mirrors { m.send(.end(trailers)) }
        sendUpstream(.end(trailers), ex)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let ex = exchange {
            ex.timeout?.cancel()
            ex.upstream?.close(promise: nil)
            releaseActive(ex)
            if !ex.finished { ex.finished = true; env.lifecycle.end() }
            exchange = nil
        }
        context.fireChannelInactive()
    }

    /// Bytes that are not HTTP/1: 400 (431 for an oversized head) when no answer has started, and the connection closes.
    private func malformed(_ error: Error, context: ChannelHandlerContext) {
        debugLog("malformed request from \(env.client.map { "\($0)" } ?? "?"): \(error)")
        guard exchange == nil || exchange?.responseStarted == false else {
            context.close(promise: nil)
            return
        }
        let reply: LocalReply = (error as? HTTPParserError) == .headerOverflow ? .headersTooLarge : .badRequest
        closeAfterResponse = true
        respond(.head(reply.head(version: .http1_1, keepAlive: false)), context: context)
        respond(.body(.byteBuffer(ByteBuffer(string: reply.body))), context: context)
        respond(.end(nil), context: context)
        flushOut(context).whenComplete { _ in context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        // A slow client: stop reading the upstream until the client catches up.
        exchange?.upstream.map { _ = $0.setOption(ChannelOptions.autoRead, value: context.channel.isWritable) }
        context.fireChannelWritabilityChanged()
    }

    func upstreamWritabilityChanged(_ upstream: Channel) {
        // A slow upstream: stop reading the client's body until it catches up.
        _ = context?.channel.setOption(ChannelOptions.autoRead, value: upstream.isWritable)
    }

    // MARK: routing

    private func startRequest(_ raw: RawRequestHead, context: ChannelHandlerContext) {
        // Routing and policy must see the path the upstream will: `/./admin` is `/admin`.
        let uri = normalizedRequestTarget(raw.uri)
        // One request id for the upstream request, its mirrors and the access log; added as the head is
        // written (the received head is not copied to add it).
        let generatedID = raw.facts.requestID ? nil : env.loop.requestID()
        debugLog("request \(raw.method) \(uri) host \(raw.fields.first("host") ?? "-") original \(env.originalDestination.map { "\($0)" } ?? "-")")
        let table = env.store.table
        let authority = raw.fields.first("host") ?? originalIP ?? ""
        let ex = Exchange(raw, uri: uri)
        ex.generatedRequestID = generatedID
        exchange = ex
        // The closure holds only the exchange (a single reference needs no closure context allocated).
        let view = RequestView(method: raw.method.rawValue, pathAndQuery: uri, authority: authority, port: originalPort,
                               header: { [unowned ex] in ex.raw.fields.first($0) })
        env.lifecycle.begin()
        if !raw.facts.keepAlive && !env.http2 { closeAfterResponse = true }
        ex.expectsContinue = raw.facts.expectsContinue
        if env.inbound {
            startInbound(ex, table: table)
            return
        }
        let decision = HTTPRouter(table: table).route(view, originalAddress: originalIP, using: &env.loop.rng, memo: routeMemo)
        if case .forward = decision, ex.expectsContinue {
            // As Envoy: answer 100 Continue here and send the upstream a request without Expect.
            respond(.head(HTTPResponseHead(version: ex.httpVersion, status: .continue)), context: context)
            flushOutNow(context)
        }
        switch decision {
        case .noRoute: localReply(.noRoute, ex)
        case .noCluster(let host): localReply(.noCluster, ex, clusterName: host)
        case .blackHole:
            ex.cluster = nil
            localReply(.blackHole, ex, clusterName: "BlackHoleCluster")
        case .direct(let status, let body):
            localReply(LocalReply(status: HTTPResponseStatus(statusCode: status), flag: "", body: body ?? ""), ex)
        case .redirect(let status, let location):
            localReply(LocalReply(status: HTTPResponseStatus(statusCode: status), flag: "", body: "", extraHeaders: [("location", location)]), ex)
        case .passthrough:
            guard let ip = originalIP else { localReply(.noRoute, ex); return }
            let port = originalPort
            gate(ex, service: ip, port: port, cluster: nil, table: table) { [unowned self] in
                self.forward(ex, host: ip, port: port, plan: nil, clusterName: "PassthroughCluster", table: table)
            }
        case .forward(let plan):
            ex.cluster = plan.cluster
            ex.responseHeaders = plan.responseHeaders
            ex.version = plan.destination.subset ?? "unknown"
            let target: (String, UInt16, String?)?
            if plan.cluster.usesOriginalDestination, let ip = originalIP {
                target = (ip, originalPort, nil)
            } else if let ep = env.loop.pick(plan.cluster, generation: table.generation, hash: hashKey(plan.cluster, ex)) {
                target = (ep.address, ep.port, ep.description)
                if let v = ep.labels["version"] { ex.version = v }
            } else {
                target = nil
            }
            guard let (host, port, hostPort) = target else {
                localReply(.noHealthyUpstream, ex)
                return
            }
            // Without policy the request goes on at once (no closure made per request).
            if env.store.policy.isEmpty {
                startMirrors(plan, ex: ex, table: table)
                forward(ex, host: host, port: port, hostPort: hostPort, plan: plan, clusterName: nil, table: table)
                return
            }
            gate(ex, service: plan.cluster.key.host, port: plan.cluster.key.port, cluster: plan.cluster, table: table) { [unowned self] in
                self.startMirrors(plan, ex: ex, table: table)
                // Body parts that arrived while the policy waited for the shared quota go to the mirrors too.
                for part in ex.pending { for m in ex.mirrors { m.send(part) } }
                self.forward(ex, host: host, port: port, hostPort: hostPort, plan: plan, clusterName: nil, table: table)
            }
        }
    }

    /// Inbound: no routing; the request goes to the application on the port the client dialled, from
    /// 127.0.0.6 (::6) so capture lets it pass, after the policy check with the peer as the source.
    private func startInbound(_ ex: Exchange, table: RoutingTable) {
        guard let orig = env.originalDestination, let port = orig.port else { localReply(.noRoute, ex); return }
        let v6 = orig.protocol == .inet6
        let me = table.proxy
        ex.version = me.labels["version"] ?? "unknown"
        ex.cluster = Cluster(key: ClusterKey(host: me.workloadName, subset: nil, port: UInt16(port)), endpoints: [], usesOriginalDestination: true,
                             loadBalancer: .passthrough, connectTimeout: TableCompiler.defaultConnectTimeout, maxRequestsPerConnection: nil,
                             idleTimeout: TableCompiler.defaultIdleTimeout, isHTTP: true, serviceName: me.workloadName, serviceNamespace: me.namespace)
        if ex.expectsContinue {
            if let context {
                respond(.head(HTTPResponseHead(version: ex.httpVersion, status: .continue)), context: context)
                flushOutNow(context)
            }
        }
        gate(ex, service: me.workloadName, port: UInt16(port), cluster: nil, table: table, outbound: false) { [unowned self] in
            self.forward(ex, host: v6 ? "::1" : "127.0.0.1", port: UInt16(port), plan: nil, clusterName: "inbound|\(port)||", table: table,
                         source: v6 ? "::6" : "127.0.0.6")
        }
    }

    // MARK: policy

    /// Checks the request against policy before it goes upstream, then `proceed`s or answers 403 /
    /// 429 / 503 itself. Usually decided at once; with a Global rate limit the answer comes back
    /// from Redis on this loop, and the client's body waits (reading paused) meanwhile.
    private func gate(_ ex: Exchange, service: String, port: UInt16, cluster: Cluster?, table: RoutingTable,
                      outbound: Bool = true, _ proceed: @escaping () -> Void) {
        let engine = env.store.policy
        if engine.isEmpty { proceed(); return }
        var attributes = RequestAttributes(raw: ex.raw, uri: ex.uri, client: env.client, workload: table.proxy, outbound: outbound,
                                           service: service, port: port, cluster: cluster)
        attributes.originalDestination = env.originalDestination
        switch PolicyGate.check(engine, attributes, env: env) {
        case .decided(let verdict):
            apply(verdict, ex, proceed)
        case .waiting(let verdict):
            // The client's body waits in the kernel meanwhile.
            _ = context?.channel.setOption(ChannelOptions.autoRead, value: false)
            verdict.whenSuccess { [weak self] verdict in
                guard let self else { return }
                // Reading resumes whatever became of the request meanwhile, or a keep-alive connection stays paused.
                _ = self.context?.channel.setOption(ChannelOptions.autoRead, value: true)
                guard self.exchange === ex, !ex.finished else { return }
                self.apply(verdict, ex, proceed)
            }
        }
    }

    private func apply(_ verdict: PolicyVerdict, _ ex: Exchange, _ proceed: () -> Void) {
        if verdict.kind != "-", env.accessLog != nil { ex.policyLog = verdict.logFields }
        if verdict.isAllowed {
            ex.policyHeaders += verdict.responseHeaders
            proceed()
        } else {
            policyReply(verdict, ex)
        }
    }

    /// 403 `RBAC: access denied`, 429 with retry-after and x-ratelimit-*, 503 when a FailClosed limit
    /// has no backend; gRPC requests get HTTP 200 with grpc-status (7, 8, 14) instead (the engine gives
    /// a refusal a gRPC status exactly when the request is gRPC).
    private func policyReply(_ v: PolicyVerdict, _ ex: Exchange) {
        let status = v.httpStatus ?? 403
        let body = v.responseBody ?? "RBAC: access denied"
        let flag: String
        switch v.outcome {
        case .rateLimited: flag = "RL"
        case .unavailable: flag = "RLSE"
        default: flag = "UAEX"
        }
        if let grpcStatus = v.grpcStatus {
            var reply = LocalReply(status: .ok, flag: flag, body: "",
                                   extraHeaders: [("grpc-status", "\(grpcStatus)"), ("grpc-message", body)] + v.responseHeaders)
            reply.contentType = "application/grpc"
            localReply(reply, ex)
        } else {
            localReply(LocalReply(status: HTTPResponseStatus(statusCode: status), flag: flag, body: body, extraHeaders: v.responseHeaders), ex)
        }
    }

    private func hashKey(_ cluster: Cluster, _ ex: Exchange) -> UInt64? {
        guard case .consistentHash(let key, _, _) = cluster.loadBalancer else { return nil }
        switch key {
        case .header(let name): return ex.raw.fields.first(name).map { stableHash64($0) }
        case .sourceIP: return env.client?.ipAddress.map { stableHash64($0) }
        case .queryParameter(let name):
            return RequestView(method: "", pathAndQuery: ex.uri, authority: "", port: 0, header: { _ in nil }).queryParameter(name).map { stableHash64($0) }
        case .cookie(let name, let path, let ttl):
            for c in ex.raw.fields.values("cookie").flatMap({ $0.split(separator: ";") }) {
                let kv = c.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == name { return stableHash64(String(kv[1])) }
            }
            // Istio/Envoy: with a ttl, a missing cookie is generated, and this request is hashed by the
            // value the client will send from now on, so it stays on the endpoint it got first.
            guard let ttl else { return nil }
            let value = String(env.loop.rng.next(), radix: 16)
            var cookie = "\(name)=\(value)"
            if let path { cookie += "; Path=\(path)" }
            if ttl > 0 { cookie += "; Max-Age=\(Int(ttl))" }
            ex.policyHeaders.append(("set-cookie", cookie + "; HttpOnly"))
            return stableHash64(value)
        }
    }

    /// The request as it goes upstream: hop-by-hop fields and Expect dropped (100 Continue was answered
    /// here), x-forwarded-proto added, then the route's rewrites and header operations.
    private func upstreamHead(_ ex: Exchange, plan: ForwardPlan?, requestID: String?) -> OutgoingHead {
        var edits = requestEdits
        requestEdits = HeaderEdits()  // one reference while it is filled: its storage is reused, not copied
        edits.reset()
        defer { requestEdits = edits }
        if let requestID { edits.add("x-request-id", requestID) }
        let facts = ex.raw.facts
        edits.keepUpgrade = facts.upgrade
        if facts.expect { edits.remove("expect") }
        if !facts.forwardedProto { edits.add("x-forwarded-proto", "http") }
        var uri = ex.uri
        if let plan {
            if plan.rewrite != nil || plan.uriRegexRewrite != nil {
                // The plan's own rewrite (it keeps the query).
                let rewritten = plan.rewrittenPath(ex.uri)
                if rewritten != ex.uri {
                    edits.set("x-envoy-original-path", ex.uri)
                    uri = rewritten
                }
                if let a = plan.rewrite?.authority { edits.set("host", a) }
            }
            if plan.changesRequestHeaders { for ops in plan.requestHeaders { apply(ops, to: &edits) } }
            if let t = plan.timeout, t > 0 { edits.set("x-envoy-expected-rq-timeout-ms", "\(Int(t * 1000))") }
        }
        return OutgoingHead(raw: ex.raw, uri: uri, edits: edits)
    }

    private func apply(_ ops: HeaderOperations, to edits: inout HeaderEdits) {
        for (k, v) in ops.set { edits.set(k, v) }
        for (k, v) in ops.add { edits.add(k, v) }
        for k in ops.remove { edits.remove(k) }
    }

    // MARK: forwarding

    /// `clusterName` names the cluster made up for a request outside the registry (plan nil); `hostPort`
    /// is the endpoint's `host:port` when known.
    private func forward(_ ex: Exchange, host: String, port: UInt16, hostPort: String? = nil, plan: ForwardPlan?, clusterName: String?,
                         table: RoutingTable, source: String? = nil) {
        guard let context else { return }
        let head = upstreamHead(ex, plan: plan, requestID: ex.generatedRequestID)
        ex.upgrading = head.edits.keepUpgrade
        // Sent first when the connection is ready: body parts may already wait (they arrived while the policy check was pending).
        ex.outgoingHead = head
        let activeKey = hostPort ?? InterposeRouting.hostPort(host, port)
        ex.endpointKey = UpstreamConnector.poolKey(activeKey, source)
        ex.activeKey = activeKey
        ex.upstreamAddress = activeKey
        env.loop.requestStarted(activeKey)
        if ex.cluster == nil {
            let clusterName = clusterName ?? "PassthroughCluster"
            ex.cluster = Cluster(key: ClusterKey(host: clusterName, subset: nil, port: port), endpoints: [], usesOriginalDestination: true,
                                 loadBalancer: .passthrough, connectTimeout: TableCompiler.defaultConnectTimeout, maxRequestsPerConnection: nil,
                                 idleTimeout: TableCompiler.defaultIdleTimeout, isHTTP: true, serviceName: clusterName, serviceNamespace: "unknown")
        }
        if let t = plan?.timeout, t > 0 {
            ex.timeout = context.eventLoop.scheduleTask(in: .milliseconds(Int64(t * 1000))) { [weak self, weak ex] in
                guard let self, let ex, self.exchange === ex else { return }
                ex.upstream?.close(promise: nil)
                ex.connection = nil
                if !ex.responseStarted { self.localReply(.timeout, ex) } else { self.context?.close(promise: nil) }
            }
        }
        let connectTimeout = ex.cluster?.connectTimeout ?? TableCompiler.defaultConnectTimeout
        switch UpstreamConnector.connect(to: (host, port), key: ex.endpointKey, source: source, on: context.eventLoop, timeout: connectTimeout, state: env.loop) {
        case .pooled(let connection):
            // Here inside the downstream read: the flush can wait for channelReadComplete with the
            // rest of the request (one syscall, not two).
            attach(connection, ex, flushLater: inRead)
        case .connecting(let future):
            future.whenComplete { [weak self] result in
                guard let self, self.exchange === ex else {
                    if case .success(let connection) = result { connection.channel.close(promise: nil) }
                    return
                }
                switch result {
                case .failure(let error):
                    debugLog("upstream \(host):\(port) connect failed: \(error)")
                    self.localReply(.connectFailure, ex)
                case .success(let connection):
                    self.attach(connection, ex, flushLater: false)
                }
            }
        }
    }

    /// The request's connection is ready: it receives what waited for it.
    private func attach(_ connection: UpstreamConnection, _ ex: Exchange, flushLater: Bool) {
        let channel = connection.channel
        connection.handler.sink = self
        ex.connection = connection
        ex.upstreamSent = .now()
        if let head = ex.outgoingHead {
            connection.handler.send(.head(head))
            ex.outgoingHead = nil
        }
        if !ex.pending.isEmpty {
            for part in ex.pending { connection.handler.send(part) }
            ex.pending.removeAll()
        }
        if flushLater { upstreamNeedsFlush = true } else { connection.handler.flush() }
        if !channel.isWritable { upstreamWritabilityChanged(channel) }
    }

    /// Written now, flushed once per downstream read (channelReadComplete): one syscall for a
    /// request's head and end instead of one each.
    private func sendUpstream(_ part: UpstreamPart, _ ex: Exchange) {
        if let up = ex.connection?.handler {
            up.send(part)
            if inRead { upstreamNeedsFlush = true } else { up.flush() }
        } else {
            ex.pending.append(part)
        }
    }

    private var upstreamNeedsFlush = false

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        if upstreamNeedsFlush {
            upstreamNeedsFlush = false
            exchange?.connection?.handler.flush()
            for m in exchange?.mirrors ?? [] { m.flush() }
        }
        context.fireChannelReadComplete()
    }

    /// The upstream's read burst is over: pass on what it produced in one write.
    func upstreamReadComplete(_ channel: Channel) {
        if let context { flushOutNow(context) }
    }

    private func startMirrors(_ plan: ForwardPlan, ex: Exchange, table: RoutingTable) {
        guard let context else { return }
        for (cluster, percent) in plan.mirrors where PercentSampler.sample(percent: percent, using: &env.loop.rng) {
            guard let ep = env.loop.pick(cluster, generation: table.generation, hash: nil) else { continue }
            var mh = upstreamHead(ex, plan: nil, requestID: ex.generatedRequestID)
            mh.edits.set("x-envoy-internal", "true")
            if let suffix = table.proxy.mirrorHostSuffix, let host = mh.edits.value("host", in: ex.raw.fields) {
                // Istio's optional "-shadow" host: reviews:9080 becomes reviews-shadow:9080.
                let name = normalizeHost(host)
                let port = host.dropFirst(host.hasPrefix("[") ? (host.firstIndex(of: "]").map { host.distance(from: host.startIndex, to: $0) + 1 } ?? host.count) : name.count)
                mh.edits.set("host", name + suffix + port)
            }
            ex.mirrors.append(MirrorSink(head: mh, host: ep.address, port: ep.port, loop: context.eventLoop, state: env.loop, connectTimeout: cluster.connectTimeout))
        }
    }

    // MARK: upstream events

    func upstreamResponse(_ part: UpstreamResponsePart, from channel: Channel) {
        guard let context, let ex = exchange, ex.upstream === channel else { return }
        switch part {
        case .head(let head):
            if head.status.code >= 100 && head.status.code < 200 && head.status != .switchingProtocols {
                // Interim (100 Continue): pass it on; the final response follows.
                respond(.head(HTTPResponseHead(version: .http1_1, status: head.status)), context: context)
                flushOutNow(context)
                return
            }
            ex.responseStarted = true
            ex.responseStatus = Int(head.status.code)
            let upgrade = head.status == .switchingProtocols
            if ex.connection?.handler.lastResponseKeepAlive != true || head.version != .http1_1 { ex.upstreamReusable = false }
            // The upstream's head goes out as received, changed while it is written.
            responseEdits.reset()
            responseEdits.keepUpgrade = upgrade
            if let sent = ex.upstreamSent {
                responseEdits.set("x-envoy-upstream-service-time", String((NIODeadline.now() - sent).nanoseconds / 1_000_000))
            }
            for ops in ex.responseHeaders { apply(ops, to: &responseEdits) }
            for (k, v) in ex.policyHeaders {
                if k == "set-cookie" { responseEdits.add(k, v) } else { responseEdits.set(k, v) }
            }
            if (env.lifecycle.isDraining || closeAfterResponse) && !env.http2 { responseEdits.set("connection", "close"); closeAfterResponse = true }
            let code = head.status.code
            let bodyless = ex.method == .HEAD || (code >= 100 && code < 200) || code == 204 || code == 304
            let version = ex.httpVersion
            output.append(context.channel.allocator) { encoder.responseHead(head, version: version, edits: responseEdits, bodyless: bodyless, into: &$0) }
            if encoder.endsWithClose { closeAfterResponse = true }
            if upgrade { flushOutNow(context) }
        case .body(let buffer):
            ex.bytesOut += buffer.readableBytes
            respond(.body(.byteBuffer(buffer)), context: context)
        case .end(let trailers):
            if ex.responseStatus == 101 {
                // The upgrade's response is complete: from here on both sides are one byte stream.
                respond(.end(trailers), context: context)
                flushOutNow(context)
                switchToTunnel(ex, upstream: channel)
                return
            }
            respond(.end(trailers), context: context)
            // A future only when the connection closes after the write: none per request otherwise.
            let done: EventLoopFuture<Void>? = closeAfterResponse ? flushOut(context) : nil
            if done == nil { flushOutNow(context) }
            finish(ex, flag: ex.flags)
            if ex.upstreamReusable && ex.requestEnded, let cluster = ex.cluster, let connection = ex.connection {
                env.loop.putIdle(ex.endpointKey, connection, limit: cluster.maxRequestsPerConnection)
            } else {
                channel.close(promise: nil)
            }
            if let done { done.whenComplete { _ in context.close(promise: nil) } }
            replayQueued()
        }
    }

    func upstreamClosed(_ channel: Channel) {
        guard let ex = exchange, ex.upstream === channel else { return }
        ex.connection = nil
        if ex.upgrading && ex.responseStarted { return }
        if !ex.responseStarted {
            localReply(.upstreamReset, ex)
        } else {
            finish(ex, flag: "UC")
            context?.close(promise: nil)
        }
    }

    // MARK: completion

    private func localReply(_ reply: LocalReply, _ ex: Exchange, clusterName: String? = nil) {
        guard let context else { return }
        ex.timeout?.cancel()
        ex.responseStatus = Int(reply.status.code)
        ex.flags = reply.flag
        if !ex.requestEnded { discardingBody = true }
        ex.requestEnded = true
        let keepAlive = env.http2 || (!closeAfterResponse && !env.lifecycle.isDraining)
        var head = reply.head(version: ex.httpVersion, keepAlive: keepAlive)
        if !reply.flag.isEmpty { head.headers.add(name: "x-envoy-response-flags", value: reply.flag) }
        respond(.head(head), context: context, requestMethod: ex.method)
        if !reply.body.isEmpty { respond(.body(.byteBuffer(ByteBuffer(string: reply.body))), context: context) }
        respond(.end(nil), context: context)
        let done = flushOut(context)
        ex.bytesOut = reply.body.utf8.count
        finish(ex, flag: reply.flag, clusterName: clusterName)
        if !keepAlive { done.whenComplete { _ in context.close(promise: nil) } }
        else { context.eventLoop.execute { self.replayQueued() } }
    }

    private func finish(_ ex: Exchange, flag: String, clusterName: String? = nil) {
        ex.timeout?.cancel()
        guard !ex.finished else { return }
        ex.finished = true
        env.lifecycle.end()
        releaseActive(ex)
        let millis = Double((NIODeadline.now() - ex.started).nanoseconds) / 1_000_000
        let cluster = ex.cluster
        let service = cluster?.key.host ?? clusterName ?? "unknown"
        let labels = ProxyMetrics.RequestLabels(reporter: env.inbound ? "destination" : "source", destinationService: service,
                                                destinationName: cluster?.serviceName ?? service, destinationNamespace: cluster?.serviceNamespace ?? "unknown",
                                                destinationVersion: ex.version, protocolName: "http", responseCode: ex.responseStatus, flags: flag)
        // A keep-alive connection's requests usually share one label set: compared, not hashed under the registry's lock.
        let instruments: ProxyMetrics.RequestInstruments
        if let last = lastInstruments, last.labels == labels {
            instruments = last.instruments
        } else {
            instruments = env.metrics.requestInstruments(labels)
            lastInstruments = (labels, instruments)
        }
        instruments.record(durationMillis: millis, requestBytes: ex.bytesIn, responseBytes: ex.bytesOut)
        env.accessLog?.log(ex.requestHead, requestID: ex.generatedRequestID, status: ex.responseStatus, flags: flag, bytesIn: ex.bytesIn, bytesOut: ex.bytesOut, millis: millis,
                           upstream: ex.upstreamAddress, cluster: cluster?.key.description ?? clusterName ?? "-", policy: ex.policyLog)
        if exchange === ex { exchange = nil }
    }

    /// Ends the request's place in least-request counting, exactly once.
    private func releaseActive(_ ex: Exchange) {
        if let key = ex.activeKey {
            env.loop.requestFinished(key)
            ex.activeKey = nil
        }
    }

    /// After `101 Switching Protocols`, both connections become one byte stream.
    private func switchToTunnel(_ ex: Exchange, upstream: Channel) {
        guard let context else { return }
        finish(ex, flag: "")
        let downstream = context.channel
        let (a, b) = GlueHandler.matchedPair()
        _ = downstream.setOption(ChannelOptions.autoRead, value: true)
        let dp = downstream.pipeline, up = upstream.pipeline
        // Bytes each side sent after its HTTP part (already read and buffered in the decoders) go on
        // first; then the HTTP handlers go and the glue joins the sockets.
        let fromClient = decoder.takeRemainingBytes()
        let fromUpstream = ex.connection?.handler.takeRemainingBytes()
        do {
            try up.syncOperations.addHandler(b)
            try removeNow(up, "upstream")
            try dp.syncOperations.addHandler(a)
            try removeNow(dp, "http-proxy")
            if let fromClient { upstream.writeAndFlush(NIOAny(fromClient), promise: nil) }
            if let fromUpstream { downstream.writeAndFlush(NIOAny(fromUpstream), promise: nil) }
        } catch {
            downstream.close(promise: nil)
            upstream.close(promise: nil)
        }
    }
}

/// Removes a handler by name now (we are on the channel's event loop).
func removeNow(_ pipeline: ChannelPipeline, _ name: String) throws {
    let ctx = try pipeline.syncOperations.context(name: name)
    pipeline.syncOperations.removeHandler(context: ctx, promise: nil)
}
