import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A small Redis client bound to one event loop (the proxy makes one per loop, like its upstream
/// pools): one lazily opened connection carrying pipelined commands, short connect and command
/// timeouts, reconnect with backoff, and a circuit breaker.
///
/// All state is confined to `eventLoop`: calls made on it run straight through (no hop, no lock),
/// calls from elsewhere are moved onto it. Nothing blocks and the request path uses futures only.
public final class RedisClient: RedisConnectionDelegate, @unchecked Sendable {
    public let eventLoop: EventLoop
    public let host: String
    public let port: Int
    public let connectTimeout: TimeAmount
    public let commandTimeout: TimeAmount
    /// Read from any thread.
    public let counters = RedisClientCounters()

    private enum State {
        case idle
        case connecting
        case connected(Channel)
        case closed
    }

    // Confined to eventLoop.
    private var state: State = .idle
    /// Commands that arrived while the connection was being made, written once it is up.
    private var waiting = CircularBuffer<RedisCommand>()
    private var breaker: CircuitBreaker
    private var backoff: ReconnectBackoff
    /// A numeric host is used as is: a name would be resolved on every connect.
    private let address: SocketAddress?

    public init(
        host: String,
        port: Int,
        eventLoop: EventLoop,
        connectTimeout: TimeAmount = .milliseconds(10),
        commandTimeout: TimeAmount = .milliseconds(5),
        failureThreshold: Int = 3,
        circuitCooldown: TimeAmount = .milliseconds(500),
        initialBackoff: TimeAmount = .milliseconds(10),
        maximumBackoff: TimeAmount = .seconds(1)
    ) {
        self.host = host
        self.port = port
        self.eventLoop = eventLoop
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.breaker = CircuitBreaker(threshold: failureThreshold, cooldown: circuitCooldown)
        self.backoff = ReconnectBackoff(initial: initialBackoff, maximum: maximumBackoff)
        self.address = try? SocketAddress(ipAddress: host, port: port)
    }

    /// Sends one command (`["SET", "k", "v"]`). RESP errors come back as `.error` values; the future
    /// fails only with a `RedisClientError`. It is answered within `commandTimeout`, plus at most
    /// `connectTimeout` when it has to wait for a new connection; when the circuit is open or a
    /// reconnect backoff is running, it fails at once without touching the network.
    public func send(_ args: [String]) -> EventLoopFuture<RESPValue> {
        let promise = eventLoop.makePromise(of: RESPValue.self)
        if eventLoop.inEventLoop {
            enqueue(args, promise: promise, now: .now())
            flush()
        } else {
            eventLoop.execute {
                self.enqueue(args, promise: promise, now: .now())
                self.flush()
            }
        }
        return promise.futureResult
    }

    /// Sends several commands pipelined with one flush; the futures are in the same order.
    public func send(batch commands: [[String]]) -> [EventLoopFuture<RESPValue>] {
        let promises = commands.map { _ in eventLoop.makePromise(of: RESPValue.self) }
        let run: @Sendable () -> Void = {
            let now = NIODeadline.now()
            for (args, promise) in zip(commands, promises) { self.enqueue(args, promise: promise, now: now) }
            self.flush()
        }
        if eventLoop.inEventLoop { run() } else { eventLoop.execute(run) }
        return promises.map(\.futureResult)
    }

    /// Closes the connection; commands sent afterwards fail with `.clientClosed`.
    public func close() -> EventLoopFuture<Void> {
        eventLoop.flatSubmit {
            let previous = self.state
            self.state = .closed
            self.failWaiting(.clientClosed)
            guard case .connected(let channel) = previous else { return self.eventLoop.makeSucceededVoidFuture() }
            return channel.close().recover { _ in }
        }
    }

    /// Whether the circuit breaker currently refuses commands (read on the event loop).
    public var isCircuitOpen: EventLoopFuture<Bool> {
        eventLoop.submit { self.breaker.isOpen }
    }

    // MARK: - On the event loop

    private func enqueue(_ args: [String], promise: EventLoopPromise<RESPValue>, now: NIODeadline) {
        counters.commandsBox.wrappingAdd(1, ordering: .relaxed)
        if case .closed = state { return fail(promise, .clientClosed) }
        let admission = breaker.admit(now: now)
        if admission == .reject { return fail(promise, .circuitOpen) }
        let command = RedisCommand(args: args, deadline: now + commandTimeout, promise: promise)
        if case .connected(let channel) = state, !channel.isActive {
            // Closed, and its handler's goodbye is still on the way: this connection is gone.
            state = .idle
        }
        switch state {
        case .connected(let channel):
            channel.write(command, promise: nil)
        case .connecting:
            waiting.append(command)
        case .idle:
            // The half-open probe skips the backoff: the cooldown it waited for is the longer wait.
            guard admission == .probe || backoff.mayConnect(now: now) else { return fail(promise, .reconnectBackoff) }
            waiting.append(command)
            connect()
        case .closed:
            fail(promise, .clientClosed)
        }
    }

    private func flush() {
        if case .connected(let channel) = state { channel.flush() }
    }

    private func connect() {
        state = .connecting
        counters.connectAttemptsBox.wrappingAdd(1, ordering: .relaxed)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        ByteToMessageHandler(RESPDecoder()),
                        RedisCommandHandler(delegate: self)
                    )
                }
            }
        let connected = address.map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: host, port: port)
        connected.whenComplete { result in self.connectDone(result) }
    }

    private func connectDone(_ result: Result<Channel, Error>) {
        guard case .connecting = state else {
            // close() came first.
            if case .success(let channel) = result { channel.close(promise: nil) }
            return
        }
        switch result {
        case .success(let channel) where channel.isActive:
            state = .connected(channel)
            // The command timeout counts from here for commands that waited for the connect (the
            // connect has its own timeout): otherwise a connect slower than the command timeout
            // would time out, and so poison, every fresh connection.
            let deadline = NIODeadline.now() + commandTimeout
            while var command = waiting.popFirst() {
                command.deadline = max(command.deadline, deadline)
                channel.write(command, promise: nil)
            }
            channel.flush()
        case .success(let channel):
            channel.close(promise: nil)
            connectFailed(.connectionClosed)
        case .failure(let error):
            connectFailed(Self.classify(error, host: host, port: port))
        }
    }

    private func connectFailed(_ error: RedisClientError) {
        state = .idle
        recordFailure()
        failWaiting(error)
    }

    private func failWaiting(_ error: RedisClientError) {
        while let command = waiting.popFirst() { fail(command.promise, error) }
    }

    private func fail(_ promise: EventLoopPromise<RESPValue>, _ error: RedisClientError) {
        counters.failuresBox.wrappingAdd(1, ordering: .relaxed)
        promise.fail(error)
    }

    private func recordFailure() {
        let now = NIODeadline.now()
        backoff.recordFailure(now: now)
        if breaker.recordFailure(now: now) { counters.circuitOpensBox.wrappingAdd(1, ordering: .relaxed) }
    }

    private func isCurrent(_ connection: ObjectIdentifier) -> Bool {
        if case .connected(let channel) = state { return ObjectIdentifier(channel) == connection }
        return false
    }

    // MARK: - RedisConnectionDelegate (called by the connection's handler, on the event loop)

    func connectionDidReply(_ connection: ObjectIdentifier) {
        breaker.recordSuccess()
        backoff.recordSuccess()
    }

    func connectionDidFail(_ connection: ObjectIdentifier, error: RedisClientError, count: Int) {
        counters.failuresBox.wrappingAdd(count, ordering: .relaxed)
        guard isCurrent(connection) else { return }
        state = .idle
        recordFailure()
    }

    func connectionDidClose(_ connection: ObjectIdentifier) {
        if isCurrent(connection) { state = .idle }
    }

    /// Connect errors in words an operator reads in a log line.
    static func classify(_ error: Error, host: String, port: Int) -> RedisClientError {
        if case ChannelError.connectTimeout = error { return .connectTimeout }
        if let io = error as? IOError {
            return .connectFailed("\(String(cString: strerror(io.errnoCode)).lowercased()) (\(host):\(port))")
        }
        if let many = error as? NIOConnectionError {
            if let first = many.connectionErrors.first { return classify(first.error, host: host, port: port) }
            if let dns = many.dnsAAAAError ?? many.dnsAError { return .connectFailed("resolving \(host): \(dns)") }
        }
        return .connectFailed("\(error) (\(host):\(port))")
    }
}
