import NIOCore
import NIOHTTP1

/// A response the proxy makes itself, with Envoy's response flag so logs and metrics say why.
struct LocalReply {
    var status: HTTPResponseStatus
    var flag: String
    var body: String
    var extraHeaders: [(String, String)] = []
    var contentType = "text/plain"

    static let noRoute = LocalReply(status: .notFound, flag: "NR", body: "no route matched\n")
    static let blackHole = LocalReply(status: .badGateway, flag: "", body: "destination not in the registry (REGISTRY_ONLY)\n")
    static let noHealthyUpstream = LocalReply(status: .serviceUnavailable, flag: "UH", body: "no healthy upstream\n")
    static let noCluster = LocalReply(status: .serviceUnavailable, flag: "NC", body: "no cluster for the destination host\n")
    static let connectFailure = LocalReply(status: .serviceUnavailable, flag: "UF", body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure\n")
    static let upstreamReset = LocalReply(status: .serviceUnavailable, flag: "UC", body: "upstream connect error or disconnect/reset before headers. reset reason: connection termination\n")
    static let timeout = LocalReply(status: .gatewayTimeout, flag: "UT", body: "upstream request timeout\n")
    static let badRequest = LocalReply(status: .badRequest, flag: "", body: "Bad Request\n")
    static let headersTooLarge = LocalReply(status: .requestHeaderFieldsTooLarge, flag: "", body: "Request Header Fields Too Large\n")

    func head(version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        var h = HTTPHeaders()
        h.add(name: "content-type", value: contentType)
        h.add(name: "content-length", value: "\(body.utf8.count)")
        for (k, v) in extraHeaders { h.add(name: k, value: v) }
        if !keepAlive { h.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: version, status: status, headers: h)
    }
}
