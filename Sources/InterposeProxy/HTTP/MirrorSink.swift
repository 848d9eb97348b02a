import NIOCore
import InterposeHTTP1
import InterposeRouting
import NIOHTTP1

/// A fire-and-forget copy of a request. It never slows or changes the primary: parts are buffered
/// only up to a bound while connecting, a mirror that cannot keep up is dropped, its answer is read and
/// discarded, and its failures are ignored.
final class MirrorSink: UpstreamResponseSink {
    static let bufferLimit = 64 * 1024
    private var connection: UpstreamConnection?
    private var channel: Channel? { connection?.channel }
    private var pending: [UpstreamPart] = []
    private var pendingBytes = 0
    private var abandoned = false
    private var ended = false
    private let poolKey: String
    private let state: LoopState

    init(head: OutgoingHead, host: String, port: UInt16, loop: EventLoop, state: LoopState, connectTimeout: Double) {
        self.state = state
        poolKey = UpstreamConnector.poolKey(hostPort(host, port), nil)
        pending.append(.head(head))
        switch UpstreamConnector.connect(to: (host, port), key: poolKey, source: nil, on: loop, timeout: min(connectTimeout, 1), state: state) {
        case .pooled(let connection): attach(connection)
        case .connecting(let future):
            future.whenComplete { [self] result in
                guard case .success(let connection) = result, !self.abandoned else {
                    if case .success(let connection) = result { connection.channel.close(promise: nil) }
                    self.abandon()
                    return
                }
                self.attach(connection)
            }
        }
    }

    private func attach(_ connection: UpstreamConnection) {
        connection.handler.sink = self
        self.connection = connection
        for p in pending { connection.handler.send(p) }
        pending.removeAll()
        connection.handler.flush()
    }

    func send(_ part: UpstreamPart) {
        guard !abandoned else { return }
        if case .end = part { ended = true }
        if let connection {
            guard connection.channel.isWritable else { abandon(); return }
            connection.handler.send(part)
        } else {
            if case .body(let b) = part { pendingBytes += b.readableBytes }
            if pendingBytes > Self.bufferLimit { abandon(); return }
            pending.append(part)
        }
    }

    func flush() { connection?.handler.flush() }

    private func abandon() {
        abandoned = true
        pending.removeAll()
        channel?.close(promise: nil)
        connection = nil
    }

    func upstreamResponse(_ part: UpstreamResponsePart, from channel: Channel) {
        guard case .end = part else { return }
        if ended, !abandoned, let connection, connection.channel === channel {
            state.putIdle(poolKey, connection)
        } else {
            // Answered before the copy of the request was complete: the connection cannot be reused.
            abandoned = true
            pending.removeAll()
            channel.close(promise: nil)
        }
        connection = nil
    }

    func upstreamClosed(_ channel: Channel) { connection = nil }
}
