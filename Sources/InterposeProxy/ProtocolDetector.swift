import InterposeRouting
import NIOCore

/// What the first bytes of a connection say it is.
enum DetectedProtocol: Equatable {
    case http1
    case http2PriorKnowledge
    case tls
    case opaque
}

enum ProtocolSniffer {
    static let methods = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "]
    static let h2Preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// nil: not enough bytes to tell yet.
    static func classify(_ bytes: ByteBuffer) -> DetectedProtocol? {
        let view = bytes.readableBytesView
        guard let first = view.first else { return nil }
        if first == 0x16 {
            guard view.count >= 2 else { return nil }
            guard view[view.startIndex + 1] == 0x03 else { return .opaque }
            // Wait for the whole first record: the ClientHello, whose SNI routes the connection.
            guard let need = TLSClientHello.recordLength(view), view.count >= min(need, ProtocolDetectHandler.maxSniffTLS) else { return nil }
            return .tls
        }
        let prefix = Array(view.prefix(24))
        if h2Preface.starts(with: prefix) { return prefix.count == h2Preface.count ? .http2PriorKnowledge : nil }
        var couldBeMethod = false
        for m in methods {
            let mb = Array(m.utf8)
            if prefix.count >= mb.count ? Array(prefix.prefix(mb.count)) == mb : mb.starts(with: prefix) {
                if prefix.count >= mb.count { return .http1 }
                couldBeMethod = true
            }
        }
        return couldBeMethod ? nil : .opaque
    }
}

/// Buffers a connection's first bytes until their protocol is clear (or the client stays silent, as
/// server-first protocols do), then hands the connection and the bytes to `decide`.
final class ProtocolDetectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    static let silenceTimeout = TimeAmount.milliseconds(200)
    static let maxSniff = 64
    static let maxSniffTLS = 16 * 1024 + 5

    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var decided = false
    private let decide: (ChannelHandlerContext, DetectedProtocol, ByteBuffer?) -> Void
    /// Decide at once, without waiting for bytes: for ports the registry declares as TCP, where a
    /// server-first protocol must not wait out the silence timeout.
    private let immediate: DetectedProtocol?

    init(immediate: DetectedProtocol? = nil, decide: @escaping (ChannelHandlerContext, DetectedProtocol, ByteBuffer?) -> Void) {
        self.immediate = immediate
        self.decide = decide
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if let immediate {
            finish(context, immediate)
            return
        }
        timer = context.eventLoop.scheduleTask(in: Self.silenceTimeout) { [weak self] in
            guard let self, !self.decided else { return }
            self.finish(context, .opaque)
        }
        if context.channel.isActive { context.read() }
    }

    /// Bytes that arrived after the decision, while the next handlers were being set up: passed on
    /// when this handler is removed, after the sniffed bytes.
    private var late: [ByteBuffer] = []

    func handlerRemoved(context: ChannelHandlerContext) {
        for b in late { context.fireChannelRead(NIOAny(b)) }
        if !late.isEmpty { context.fireChannelReadComplete() }
        late.removeAll()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else { late.append(unwrapInboundIn(data)); return }
        var incoming = unwrapInboundIn(data)
        if buffered == nil { buffered = incoming } else { buffered!.writeBuffer(&incoming) }
        if let p = ProtocolSniffer.classify(buffered!) { finish(context, p) }
        else if buffered!.readableBytes >= (buffered!.readableBytesView.first == 0x16 ? Self.maxSniffTLS : Self.maxSniff) { finish(context, .opaque) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        context.fireChannelInactive()
    }

    private func finish(_ context: ChannelHandlerContext, _ p: DetectedProtocol) {
        guard !decided else { return }
        decided = true
        timer?.cancel()
        let bytes = buffered
        buffered = nil
        decide(context, p, bytes)
    }
}
