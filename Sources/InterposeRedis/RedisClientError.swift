import NIOCore

/// Why a command got no answer from Redis. RESP error replies are not here: they are answers
/// (`RESPValue.error`). Every case is a transport problem, and none of them may become a 429.
public enum RedisClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The TCP connect did not finish within the connect timeout.
    case connectTimeout
    /// The TCP connect failed (the text says why, e.g. connection refused).
    case connectFailed(String)
    /// No reply within the command timeout (this command, or one ahead of it on the connection).
    case commandTimeout
    /// The connection closed with this command in flight.
    case connectionClosed
    /// The circuit breaker is open: the command was failed without touching the network.
    case circuitOpen
    /// A recent failure armed the reconnect backoff: failed without a connect attempt.
    case reconnectBackoff
    /// Redis sent bytes that are not RESP.
    case protocolError(String)
    /// `close()` was called.
    case clientClosed

    public var description: String {
        switch self {
        case .connectTimeout: return "redis connect timeout"
        case .connectFailed(let why): return "redis connect failed: \(why)"
        case .commandTimeout: return "redis command timeout"
        case .connectionClosed: return "redis connection closed"
        case .circuitOpen: return "redis circuit open"
        case .reconnectBackoff: return "redis reconnect backoff"
        case .protocolError(let why): return "redis protocol error: \(why)"
        case .clientClosed: return "redis client closed"
        }
    }
}
