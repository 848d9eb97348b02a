import InterposeHTTP1
import NIOCore
import NIOHTTP1
import NIOPosix

/// Receives what an upstream connection answers and hands it to whoever holds the connection now.
/// A piece of an upstream's response; the head stays in its received bytes.
enum UpstreamResponsePart {
    case head(RawResponseHead)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

protocol UpstreamResponseSink: AnyObject {
    func upstreamResponse(_ part: UpstreamResponsePart, from channel: Channel)
    func upstreamClosed(_ channel: Channel)
    func upstreamReadComplete(_ channel: Channel)
}

extension UpstreamResponseSink {
    func upstreamReadComplete(_ channel: Channel) {}
}

/// A request head as received, with what changes on its way upstream: written straight into the
/// connection's buffer with the changes applied (the received head is not copied).
struct OutgoingHead {
    var raw: RawRequestHead
    var uri: String
    var edits: HeaderEdits
}

/// What is sent to an upstream for one request.
enum UpstreamPart {
    case head(OutgoingHead)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

/// An upstream connection's HTTP/1.1: requests encoded into one buffer per flush, responses decoded
/// from the bytes and handed to the current sink (the request's handler, a mirror, or nobody while idle).
final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    weak var sink: UpstreamResponseSink?
    private var context: ChannelHandlerContext?
    private var decoder = HTTP1Decoder(kind: .response, rawHeads: true)
    private var encoder = HTTP1Encoder()
    private var output = OutputBuffer()

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// Encodes a request part; written by `flush`.
    func send(_ part: UpstreamPart) {
        guard let context else { return }
        output.append(context.channel.allocator) { out in
            switch part {
            case .head(let outgoing):
                decoder.expectResponse(to: outgoing.raw.method)
                encoder.requestHead(outgoing.raw, uri: outgoing.uri, edits: outgoing.edits, into: &out)
            case .body(let bytes): encoder.body(bytes, into: &out)
            case .end(let trailers): encoder.end(trailers, into: &out)
            }
        }
        output.writeIfLarge { context.write(wrapOutboundOut($0), promise: nil) }
    }

    /// Sends what `send` gathered, and what it already wrote without flushing (large bodies).
    func flush() {
        guard let context else { return }
        let (bytes, flush) = output.takeForFlush()
        if let out = bytes {
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        } else if flush {
            context.flush()
        }
    }

    /// Whether the response decoded last lets the connection be reused (version and Connection).
    var lastResponseKeepAlive: Bool { decoder.lastHead.keepAlive }

    /// After `101 Switching Protocols`: the bytes that followed it, for the tunnel.
    func takeRemainingBytes() -> ByteBuffer? { decoder.takeRemainingBytes() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decoder.feed(unwrapInboundIn(data))
        let channel = context.channel
        while true {
            let part: HTTP1Part?
            do { part = try decoder.next() } catch {
                debugLog("upstream \(channel.remoteAddress.map { "\($0)" } ?? "?") sent a malformed response: \(error)")
                context.close(promise: nil)
                return
            }
            guard let part else { return }
            // Bytes while nobody waits (an idle pooled connection): the connection cannot be trusted.
            guard let sink else { context.close(promise: nil); return }
            switch part {
            case .rawResponseHead(let head): sink.upstreamResponse(.head(head), from: channel)
            case .body(let bytes): sink.upstreamResponse(.body(bytes), from: channel)
            case .end(let trailers): sink.upstreamResponse(.end(trailers), from: channel)
            case .requestHead, .responseHead, .rawRequestHead: break
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        sink?.upstreamReadComplete(context.channel)
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A response that runs until the connection closes ends here.
        if let end = try? decoder.finishAtEOF(), case .end(let trailers) = end {
            sink?.upstreamResponse(.end(trailers), from: context.channel)
        }
        sink?.upstreamClosed(context.channel)
        sink = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        (sink as? HTTPProxyHandler)?.upstreamWritabilityChanged(context.channel)
        context.fireChannelWritabilityChanged()
    }
}

/// An upstream HTTP/1.1 connection with its response handler, as the pool keeps it (no pipeline
/// lookup to find the handler again on each request).
final class UpstreamConnection {
    let channel: Channel
    let handler: UpstreamHandler
    /// Requests it has carried (maxRequestsPerConnection).
    var served = 0
    init(channel: Channel, handler: UpstreamHandler) {
        self.channel = channel
        self.handler = handler
    }
}

/// A pooled connection at once, or one being opened.
enum UpstreamAttempt {
    case pooled(UpstreamConnection)
    case connecting(EventLoopFuture<UpstreamConnection>)
}

/// Opens upstream HTTP/1.1 connections on the caller's event loop and reuses idle ones.
enum UpstreamConnector {
    static func connect(to endpoint: (host: String, port: UInt16), key: String, source: String?, on loop: EventLoop, timeout: Double,
                        state: LoopState) -> UpstreamAttempt {
        if let idle = state.takeIdle(key) { return .pooled(idle) }
        let handler = UpstreamHandler()
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(timeout * 1000)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler, name: "upstream")
                }
            }
        if let source { bootstrap = bootstrap.bind(to: try! SocketAddress(ipAddress: source, port: 0)) }
        return .connecting(bootstrap.connect(host: endpoint.host, port: Int(endpoint.port)).map { channel in
            let connection = UpstreamConnection(channel: channel, handler: handler)
            state.watch(key, connection)
            return connection
        })
    }

    /// The pool an endpoint's connections share: its `host:port`, and the source address when bound to one.
    static func poolKey(_ hostPort: String, _ source: String?) -> String { source.map { "\(hostPort)|\($0)" } ?? hostPort }
}
