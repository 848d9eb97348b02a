import NIOCore

/// One command on its way to Redis: its arguments, the moment it must have been answered by, and
/// who waits. Three words, so it travels through the pipeline's NIOAny without a box.
struct RedisCommand: Sendable {
    var args: [String]
    var deadline: NIODeadline
    var promise: EventLoopPromise<RESPValue>
}

/// What a connection tells its client, on the event loop. `connection` is the channel's identity, so
/// the client can ignore news from a connection it has already given up on.
protocol RedisConnectionDelegate: AnyObject, Sendable {
    /// Redis answered a command: the server is alive.
    func connectionDidReply(_ connection: ObjectIdentifier)
    /// The connection failed `count` commands in flight with `error` and is closing.
    func connectionDidFail(_ connection: ObjectIdentifier, error: RedisClientError, count: Int)
    /// The connection closed (after `connectionDidFail` if commands were in flight).
    func connectionDidClose(_ connection: ObjectIdentifier)
}

/// Pipelining on one connection: commands are written as they come and answered in FIFO order.
/// A command that is not answered by its deadline poisons the FIFO (a late reply would be taken
/// for the next command's), so the connection is closed and everything in flight fails.
///
/// One timer at most: it is armed for the oldest command's deadline and, when it fires, either
/// fails the connection or re-arms for the new oldest one. Deadlines grow along the FIFO (every
/// command gets the same timeout), so the oldest command is always the next one to expire, and
/// a busy connection does not schedule a task per command.
final class RedisCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    typealias OutboundIn = RedisCommand
    typealias OutboundOut = ByteBuffer

    private struct InFlight {
        var deadline: NIODeadline
        var promise: EventLoopPromise<RESPValue>
    }

    private let delegate: RedisConnectionDelegate
    private var inFlight = CircularBuffer<InFlight>(initialCapacity: 16)
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    private var connection = ObjectIdentifier(RedisCommandHandler.self)
    /// Once failed, the connection takes no more commands (it is closing).
    private var failed = false

    init(delegate: RedisConnectionDelegate) {
        self.delegate = delegate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.connection = ObjectIdentifier(context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(.connectionClosed)
        self.context = nil
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        guard !failed, context.channel.isActive else {
            command.promise.fail(RedisClientError.connectionClosed)
            promise?.fail(RedisClientError.connectionClosed)
            return
        }
        var size = 16
        for arg in command.args { size += arg.utf8.count + 16 }
        var buffer = context.channel.allocator.buffer(capacity: size)
        buffer.writeRESPCommand(command.args)
        inFlight.append(InFlight(deadline: command.deadline, promise: command.promise))
        if timer == nil { armTimer(command.deadline) }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let head = inFlight.popFirst() else {
            fail(context: context, .protocolError("reply with no command in flight"))
            return
        }
        delegate.connectionDidReply(connection)
        head.promise.succeed(value)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(.connectionClosed)
        delegate.connectionDidClose(connection)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parse = error as? RESPParseError {
            fail(context: context, .protocolError(parse.message))
        } else {
            fail(context: context, .connectionClosed)
        }
    }

    private func armTimer(_ deadline: NIODeadline) {
        guard let context else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timer = nil
            self.timerFired()
        }
    }

    private func timerFired() {
        guard let head = inFlight.first, let context else { return }
        if NIODeadline.now() >= head.deadline {
            fail(context: context, .commandTimeout)
        } else {
            armTimer(head.deadline)
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: RedisClientError) {
        failAll(error)
        failed = true
        context.close(promise: nil)
    }

    /// Fails everything in flight. The client hears of it before any waiter does, so a waiter that
    /// sends again from its callback already finds the client off this connection.
    private func failAll(_ error: RedisClientError) {
        failed = true
        timer?.cancel()
        timer = nil
        guard !inFlight.isEmpty else { return }
        let pending = inFlight
        inFlight.removeAll()
        delegate.connectionDidFail(connection, error: error, count: pending.count)
        for command in pending { command.promise.fail(error) }
    }
}
