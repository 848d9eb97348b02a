import NIOCore
import NIOHTTP1

/// A fire-and-forget copy of a request. It never slows or changes the primary: parts are buffered
/// only up to a bound while connecting, a mirror that cannot keep up is dropped, its answer is read and
/// discarded, and its failures are ignored.
final class MirrorSink: UpstreamResponseSink {
    static let bufferLimit = 64 * 1024
    private var channel: Channel?
    private var pending: [HTTPClientRequestPart] = []
    private var pendingBytes = 0
    private var abandoned = false
    private var ended = false
    private let poolKey: String
    private let state: LoopState

    init(head: HTTPRequestHead, host: String, port: UInt16, loop: EventLoop, state: LoopState, connectTimeout: Double) {
        self.state = state
        poolKey = UpstreamConnector.poolKey(host, port, nil)
        pending.append(.head(head))
        UpstreamConnector.connect(to: (host, port), source: nil, on: loop, timeout: min(connectTimeout, 1), state: state).whenComplete { [self] result in
            guard case .success(let ch) = result, !self.abandoned else {
                if case .success(let ch) = result { ch.close(promise: nil) }
                self.abandon()
                return
            }
            (try? ch.pipeline.syncOperations.handler(type: UpstreamHandler.self))?.sink = self
            self.channel = ch
            for p in self.pending { ch.write(NIOAny(p), promise: nil) }
            self.pending.removeAll()
            ch.flush()
        }
    }

    func send(_ part: HTTPClientRequestPart) {
        guard !abandoned else { return }
        if case .end = part { ended = true }
        if let ch = channel {
            guard ch.isWritable else { abandon(); return }
            ch.write(NIOAny(part), promise: nil)
        } else {
            if case .body(.byteBuffer(let b)) = part { pendingBytes += b.readableBytes }
            if pendingBytes > Self.bufferLimit { abandon(); return }
            pending.append(part)
        }
    }

    func flush() { channel?.flush() }

    private func abandon() {
        abandoned = true
        pending.removeAll()
        channel?.close(promise: nil)
        channel = nil
    }

    func upstreamResponse(_ part: HTTPClientResponsePart, from channel: Channel) {
        guard case .end = part else { return }
        if ended, !abandoned {
            (try? channel.pipeline.syncOperations.handler(type: UpstreamHandler.self))?.sink = nil
            state.putIdle(poolKey, channel)
        } else {
            // Answered before the copy of the request was complete: the connection cannot be reused.
            abandoned = true
            pending.removeAll()
            channel.close(promise: nil)
        }
        self.channel = nil
    }

    func upstreamClosed(_ channel: Channel) { self.channel = nil }
}
