import InterposeConfig
import InterposePolicy
import NIOConcurrencyHelpers
import Prometheus

/// Istio's standard metrics, so existing dashboards work: names, labels and buckets as Istio's
/// telemetry produces them. Backed by swift-prometheus; label sets are bounded (cluster x code x flag).
public final class ProxyMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// Istio's buckets for both milliseconds and bytes.
    public static let istioBuckets: [Double] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]

    let workload: ProxySettings
    let configReloads: Counter
    let configReloadFailures: Counter

    public init(workload: ProxySettings) {
        self.workload = workload
        configReloads = registry.makeCounter(name: "interpose_config_reloads_total", labels: [("result", "success")])
        configReloadFailures = registry.makeCounter(name: "interpose_config_reloads_total", labels: [("result", "failure")])
        policyDegraded = registry.makeCounter(name: "interpose_policy_degraded_decisions_total")
        _ = registry.makeGauge(name: "istio_build", labels: [("component", "proxy"), ("tag", "interpose")]).set(to: 1.0)
    }

    public func reloadSucceeded() { configReloads.increment() }
    public func reloadFailed() { configReloadFailures.increment() }

    /// The fields of one request's telemetry that vary.
    public struct RequestLabels: Hashable, Sendable {
        public var reporter: String
        public var destinationService: String
        public var destinationName: String
        public var destinationNamespace: String
        public var destinationVersion: String
        public var protocolName: String
        public var responseCode: Int
        public var flags: String
    }

    func labels(_ r: RequestLabels) -> [(String, String)] {
        // reporter="source": this workload called out. reporter="destination": this workload was called
        // (inbound); the caller is not known here (no mTLS identity), this workload is the destination.
        let inbound = r.reporter == "destination"
        let me = workload.workloadName, app = workload.labels["app"] ?? "unknown", version = workload.labels["version"] ?? "unknown"
        let canonical = workload.labels["service.istio.io/canonical-name"] ?? workload.labels["app"] ?? me
        let revision = workload.labels["service.istio.io/canonical-revision"] ?? workload.labels["version"] ?? "latest"
        return [("reporter", r.reporter),
         ("source_workload", inbound ? "unknown" : me), ("source_workload_namespace", inbound ? "unknown" : workload.namespace),
         ("source_principal", "unknown"), ("source_app", inbound ? "unknown" : app),
         ("source_version", inbound ? "unknown" : version),
         ("source_canonical_service", inbound ? "unknown" : canonical),
         ("source_canonical_revision", inbound ? "unknown" : revision),
         ("source_cluster", "unknown"),
         ("destination_workload", inbound ? me : "unknown"), ("destination_workload_namespace", r.destinationNamespace),
         ("destination_principal", "unknown"), ("destination_app", inbound ? app : "unknown"), ("destination_version", r.destinationVersion),
         ("destination_service", r.destinationService), ("destination_service_name", r.destinationName),
         ("destination_service_namespace", r.destinationNamespace),
         ("destination_canonical_service", inbound ? canonical : r.destinationName), ("destination_canonical_revision", r.destinationVersion),
         ("destination_cluster", "unknown"),
         ("request_protocol", r.protocolName), ("response_code", "\(r.responseCode)"), ("grpc_response_status", ""),
         ("response_flags", r.flags.isEmpty ? "-" : r.flags), ("connection_security_policy", "unknown")]
    }

    /// Per-label-set instruments, cached so the request path does one locked dictionary read.
    final class RequestInstruments: Sendable {
        let total: Counter
        let duration: ValueHistogram
        let requestBytes: ValueHistogram
        let responseBytes: ValueHistogram
        init(_ registry: PrometheusCollectorRegistry, _ labels: [(String, String)]) {
            total = registry.makeCounter(name: "istio_requests_total", labels: labels)
            duration = registry.makeValueHistogram(name: "istio_request_duration_milliseconds", labels: labels, buckets: ProxyMetrics.istioBuckets)
            requestBytes = registry.makeValueHistogram(name: "istio_request_bytes", labels: labels, buckets: ProxyMetrics.istioBuckets)
            responseBytes = registry.makeValueHistogram(name: "istio_response_bytes", labels: labels, buckets: ProxyMetrics.istioBuckets)
        }

        func record(durationMillis: Double, requestBytes: Int, responseBytes: Int) {
            total.increment()
            duration.record(durationMillis)
            self.requestBytes.record(Double(requestBytes))
            self.responseBytes.record(Double(responseBytes))
        }
    }

    let requestCache = NIOLockedValueBox<[RequestLabels: RequestInstruments]>([:])

    func requestInstruments(_ l: RequestLabels) -> RequestInstruments {
        requestCache.withLockedValue { cache -> RequestInstruments in
            if let i = cache[l] { return i }
            let i = RequestInstruments(registry, labels(l))
            cache[l] = i
            return i
        }
    }

    final class TCPInstruments: Sendable {
        let opened: Counter, closed: Counter, sent: Counter, received: Counter
        init(_ registry: PrometheusCollectorRegistry, _ labels: [(String, String)]) {
            opened = registry.makeCounter(name: "istio_tcp_connections_opened_total", labels: labels)
            closed = registry.makeCounter(name: "istio_tcp_connections_closed_total", labels: labels)
            sent = registry.makeCounter(name: "istio_tcp_sent_bytes_total", labels: labels)
            received = registry.makeCounter(name: "istio_tcp_received_bytes_total", labels: labels)
        }
    }

    let tcpCache = NIOLockedValueBox<[RequestLabels: TCPInstruments]>([:])

    func tcp(_ l: RequestLabels) -> TCPInstruments {
        tcpCache.withLockedValue { cache in
            if let i = cache[l] { return i }
            var named = labels(l)
            named.removeAll { $0.0 == "response_code" || $0.0 == "grpc_response_status" }
            let i = TCPInstruments(registry, named)
            cache[l] = i
            return i
        }
    }

    public func tcpOpened(_ l: RequestLabels) { tcp(l).opened.increment() }

    public func tcpClosed(_ l: RequestLabels, sent: Int, received: Int) {
        let i = tcp(l)
        i.closed.increment()
        i.sent.increment(by: Int64(sent))
        i.received.increment(by: Int64(received))
    }

    // MARK: policy

    struct PolicyKey: Hashable {
        let policy: String, rule: String, kind: String, result: String
    }
    let policyCache = NIOLockedValueBox<[PolicyKey: Counter]>([:])

    private func policyCounter(_ k: PolicyKey) -> Counter {
        policyCache.withLockedValue { cache in
            if let c = cache[k] { return c }
            let c = registry.makeCounter(name: "interpose_policy_decisions_total",
                                         labels: [("policy", k.policy), ("rule", k.rule), ("kind", k.kind), ("result", k.result)])
            cache[k] = c
            return c
        }
    }

    /// Decisions by policy, rule and result: the deciding one, and the others that took part
    /// (audit, dry-run, shadow, rate limits that allowed).
    public func recordPolicy(_ v: PolicyVerdict) {
        if v.kind != "-" { policyCounter(PolicyKey(policy: v.policy, rule: v.rule, kind: v.kind, result: v.result)).increment() }
        for h in v.hits { policyCounter(PolicyKey(policy: h.policy, rule: h.rule, kind: h.kind, result: h.result)).increment() }
        if v.degraded { policyDegraded.increment() }
    }

    let policyDegraded: Counter

    /// Fetches of ValueList files or URLs that failed (the last good list stayed in force).
    public func valueListRefreshFailed(_ list: String) {
        registry.makeCounter(name: "interpose_value_list_refresh_failures_total", labels: [("list", list)]).increment()
    }

    public func render() -> String { registry.emitToString() }
}
