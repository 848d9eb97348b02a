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

/// Opens upstream HTTP/1.1 connections on the caller's event loop and reuses idle ones.
enum UpstreamConnector {
    static func connect(to endpoint: (host: String, port: UInt16), source: String?, on loop: EventLoop, timeout: Double, state: LoopState) -> EventLoopFuture<Channel> {
        let key = "\(endpoint.host)|\(endpoint.port)|\(source ?? "")"
        if let idle = state.takeIdle(key) {
            state.lastWasPooled = true
            return loop.makeSucceededFuture(idle)
        }
        state.lastWasPooled = false
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(timeout * 1000)))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ops = channel.pipeline.syncOperations
                    try ops.addHandler(HTTPRequestEncoder(), name: "http-encoder")
                    try ops.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .forwardBytes)), name: "http-decoder")
                    try ops.addHandler(UpstreamHandler(), name: "upstream")
                }
            }
        if let source { bootstrap = bootstrap.bind(to: try! SocketAddress(ipAddress: source, port: 0)) }
        return bootstrap.connect(host: endpoint.host, port: Int(endpoint.port)).map { channel in
            state.watch(key, channel)
            return channel
        }
    }

    static func poolKey(_ host: String, _ port: UInt16, _ source: String?) -> String { "\(host)|\(port)|\(source ?? "")" }
}
