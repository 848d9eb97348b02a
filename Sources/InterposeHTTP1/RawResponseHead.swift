import NIOCore
import NIOHTTP1

/// A response head kept as the bytes it came in: the proxy needs only its status and what frames
/// its body, so its fields are copied to the client line by line (with the route's edits applied)
/// instead of being turned into Strings and written out again.
public struct RawResponseHead: Sendable {
    public let status: HTTPResponseStatus
    public let version: HTTPVersion
    public let fields: RawFields

    /// The fields as NIO headers (for the rare reader that needs them; the proxy does not).
    public var headers: HTTPHeaders { fields.headers }

    /// The head as a NIO response head.
    public var head: HTTPResponseHead { HTTPResponseHead(version: version, status: status, headers: headers) }
}

/// A request head kept as the bytes it came in (see RawFields): its request line read, its fields
/// read one at a time when asked for, and copied upstream with the route's edits.
public struct RawRequestHead: Sendable {
    public let method: HTTPMethod
    public let uri: String
    public let version: HTTPVersion
    public let fields: RawFields
    /// What the head said about the connection (keep-alive, Expect, Upgrade, ...), read while it was decoded.
    public let facts: HeadFacts

    /// The head as a NIO request head (allocates: for policy and the access log, not the forwarding path).
    public var head: HTTPRequestHead { HTTPRequestHead(version: version, method: method, uri: uri, headers: fields.headers) }
}
