import NIOCore
import NIOHTTP1
import NIOPosix

/// Receives what an upstream connection answers and hands it to whoever holds the connection now.
protocol UpstreamResponseSink: AnyObject {
    func upstreamResponse(_ part: HTTPClientResponsePart, from channel: Channel)
    func upstreamClosed(_ channel: Channel)
    func upstreamReadComplete(_ channel: Channel)
}

extension UpstreamResponseSink {
    func upstreamReadComplete(_ channel: Channel) {}
}

final class UpstreamHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    weak var sink: UpstreamResponseSink?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        sink?.upstreamResponse(unwrapInboundIn(data), from: context.channel)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        sink?.upstreamReadComplete(context.channel)
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
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
                    let ops = channel.pipeline.syncOperations
                    try ops.addHandler(HTTPRequestEncoder(), name: "http-encoder")
                    try ops.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)), name: "http-decoder")
                    try ops.addHandler(handler, name: "upstream")
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
