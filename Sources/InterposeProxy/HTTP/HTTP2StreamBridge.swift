import InterposeHTTP1
import NIOCore
import NIOHTTP1

/// Lets one HTTP/2 stream be served by the HTTP/1 proxy handler: the stream's request (as NIO's
/// HTTP/2-to-HTTP/1 codec gives it) is written out as HTTP/1.1 bytes for the handler, and the
/// handler's HTTP/1.1 answer is read back into parts for the stream. The handler stays the one place
/// where requests are routed, checked and forwarded; h2c pays for one extra encode and decode.
final class HTTP2StreamBridge: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTPServerResponsePart

    private var encoder = HTTP1Encoder()
    private var decoder = HTTP1Decoder(kind: .response)
    /// The request head, held until it is known whether a body follows (a GET ends right after it).
    private var heldHead: HTTPRequestHead?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            decoder.expectResponse(to: head.method)
            if head.headers.contains(name: "content-length") {
                emitHead(head, context: context)
            } else {
                heldHead = head
            }
        case .body(let bytes):
            if var head = heldHead {
                heldHead = nil
                head.headers.add(name: "transfer-encoding", value: "chunked")
                emitHead(head, context: context)
            }
            var out = context.channel.allocator.buffer(capacity: bytes.readableBytes + 16)
            encoder.body(bytes, into: &out)
            context.fireChannelRead(wrapInboundOut(out))
        case .end(let trailers):
            if let head = heldHead {
                heldHead = nil
                emitHead(head, context: context)
            }
            var out = context.channel.allocator.buffer(capacity: 16)
            encoder.end(trailers, into: &out)
            if out.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(out)) }
        }
    }

    private func emitHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: 512)
        encoder.requestHead(head, into: &out)
        context.fireChannelRead(wrapInboundOut(out))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        decoder.feed(unwrapOutboundIn(data))
        do {
            while let part = try decoder.next() {
                switch part {
                case .responseHead(var head):
                    // Connection-specific fields do not exist in HTTP/2 (RFC 9113 8.2.2).
                    for name in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"] { head.headers.remove(name: name) }
                    context.write(wrapOutboundOut(.head(head)), promise: nil)
                case .body(let bytes):
                    context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
                case .end(let trailers):
                    context.write(wrapOutboundOut(.end(trailers)), promise: nil)
                case .requestHead, .rawRequestHead, .rawResponseHead:
                    break
                }
            }
            promise?.succeed()
        } catch {
            promise?.fail(error)
            context.close(promise: nil)
        }
    }
}
