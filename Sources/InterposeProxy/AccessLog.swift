import Foundation
import NIOHTTP1

/// Envoy's default text access log line, written to standard output when enabled.
final class AccessLog: Sendable {
    /// `policy`: the policy fields of the decision (`policy=ns/name rule=0 kind=authorization result=deny`), appended.
    /// `requestID`: the x-request-id the proxy generated (the head has none then).
    func log(_ head: HTTPRequestHead, requestID: String? = nil, status: Int, flags: String, bytesIn: Int, bytesOut: Int, millis: Double, upstream: String, cluster: String, policy: String? = nil) {
        let now = Date().ISO8601Format()  // no formatter object per line
        let h = head.headers
        func q(_ s: String?) -> String { "\"\(s ?? "-")\"" }
        let line = "[\(now)] \"\(head.method.rawValue) \(h.first(name: "x-envoy-original-path") ?? head.uri) HTTP/\(head.version.major).\(head.version.minor)\" \(status) \(flags.isEmpty ? "-" : flags) \(bytesIn) \(bytesOut) \(Int(millis)) \(q(h.first(name: "x-forwarded-for"))) \(q(h.first(name: "user-agent"))) \(q(h.first(name: "x-request-id") ?? requestID)) \(q(h.first(name: "host"))) \(q(upstream)) \(cluster)\(policy.map { " " + $0 } ?? "")\n"
        FileHandle.standardOutput.write(Data(line.utf8))
    }
}
