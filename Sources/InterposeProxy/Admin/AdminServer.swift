import Foundation
import InterposeFlow
import InterposeConfig
import InterposeRouting
import NIOCore
import NIOHTTP1
import NIOPosix

/// Admin (127.0.0.1:15000), readiness (:15021) and metrics (:15090): small HTTP/1.1 servers.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum Role { case admin, readiness, metrics }
    let role: Role
    let runtime: ProxyRuntime
    private var head: HTTPRequestHead?

    init(role: Role, runtime: ProxyRuntime) {
        self.role = role
        self.runtime = runtime
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let head else { return }
            let (status, type, body) = answer(head)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: type)
            headers.add(name: "content-length", value: "\(body.utf8.count)")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
            self.head = nil
        }
    }

    func answer(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, String) {
        let path = head.uri.split(separator: "?").first.map(String.init) ?? head.uri
        switch (role, path) {
        case (.readiness, "/healthz/ready"), (.admin, "/ready"):
            return runtime.lifecycle.isReady ? (.ok, "text/plain", "LIVE\n") : (.serviceUnavailable, "text/plain", runtime.lifecycle.isDraining ? "DRAINING\n" : "NOT READY\n")
        case (.metrics, "/stats/prometheus"), (.admin, "/stats/prometheus"):
            return (.ok, "text/plain; version=0.0.4", runtime.metrics.render())
        case (.admin, "/config_dump"):
            return (.ok, "application/json", ConfigDump.json(runtime.store, flowEngine: runtime.flowEngine))
        case (.admin, "/clusters"):
            return (.ok, "text/plain", ConfigDump.clusters(runtime.store.table))
        case (.admin, "/quitquitquit"):
            guard head.method == .POST else { return (.methodNotAllowed, "text/plain", "use POST\n") }
            runtime.requestShutdown()
            return (.ok, "text/plain", "OK\n")
        case (.admin, "/"):
            return (.ok, "text/plain", "/ready\n/config_dump\n/clusters\n/stats/prometheus\n/quitquitquit (POST)\n")
        default:
            return (.notFound, "text/plain", "not found\n")
        }
    }
}

enum ConfigDump {
    static func json(_ store: ConfigStore, flowEngine: FlowEngine? = nil) -> String {
        let t = store.table
        var root: [String: Any] = [
            "generation": t.generation,
            "workload": ["name": t.proxy.workloadName, "namespace": t.proxy.namespace, "labels": t.proxy.labels],
            "outboundTrafficPolicy": t.outboundTrafficPolicy.rawValue,
            "virtualServices": t.virtualServices.map { vs in
                ["name": vs.name, "namespace": vs.namespace, "hosts": vs.hosts,
                 "http": vs.http.map { r in ["name": r.name ?? "", "index": r.index,
                                             "destinations": r.destinations.map { ["host": $0.destination.host, "subset": $0.destination.subset ?? "", "weight": $0.weight] },
                                             "mirrors": r.mirrors.map { ["host": $0.destination.host, "subset": $0.destination.subset ?? "", "percent": $0.percent] }] },
                 "tcp": vs.tcp.count] as [String: Any]
            },
            "services": t.services.values.sorted { $0.host < $1.host }.map { ["host": $0.host, "resolution": $0.resolution.rawValue, "ports": $0.ports.map { Int($0.number) }] },
            "clusters": t.clusters.values.sorted { $0.key.description < $1.key.description }.map { c in
                ["name": c.key.description, "endpoints": c.endpoints.map(\.description), "originalDestination": c.usesOriginalDestination]
            },
        ]
        let flow = store.flowRules
        var flowDump: [String: Any] = [
            "engine": flowEngine == nil ? "off" : "on",
            "rules": flow.ruleNames.map { ["policy": $0.policy, "rule": $0.rule] },
        ]
        if let e = flowEngine {
            flowDump["queues"] = e.boundQueues.map(Int.init)
            flowDump["decisions"] = e.metrics.decisions.load(ordering: .relaxed)
            flowDump["staleVerdicts"] = e.metrics.staleVerdicts.load(ordering: .relaxed)
            flowDump["watchdogRestarts"] = e.metrics.watchdogRestarts.load(ordering: .relaxed)
        }
        root["flow"] = flowDump
        if !store.lastErrors.isEmpty { root["lastRejectedConfig"] = store.lastErrors.map(\.description) }
        let data = (try? JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func clusters(_ t: RoutingTable) -> String {
        var out = ""
        for c in t.clusters.values.sorted(by: { $0.key.description < $1.key.description }) {
            if c.usesOriginalDestination { out += "\(c.key)::original_destination\n" }
            for e in c.endpoints { out += "\(c.key)::\(e)::health_flags::healthy\n\(c.key)::\(e)::weight::\(e.weight)\n" }
        }
        return out
    }
}
