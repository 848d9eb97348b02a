import InterposeConfig
import InterposePolicy
import InterposeRedis
import NIOCore

/// Runs the policy engine for one request or connection on its event loop: decided at once from
/// local state, or after the shared quota answered (a pipelined Redis round trip on the same loop).
/// No Swift Concurrency hop either way.
enum PolicyGate {
    /// The verdict at once (nearly always), or a future for it when a Global limit asks Redis. The
    /// caller builds no callback for the common case.
    enum Outcome {
        case decided(PolicyVerdict)
        case waiting(EventLoopFuture<PolicyVerdict>)
    }

    static func check(_ engine: PolicyEngine, _ attributes: RequestAttributes, env: ConnectionEnvironment) -> Outcome {
        let loop = env.loop
        switch engine.check(attributes, now: loop.now()) {
        case .done(let verdict):
            record(verdict, env)
            return .decided(verdict)
        case .needsGlobal(let pending):
            guard let redis = env.store.table.proxy.redis else {
                // No Redis configured: every Global limit is a backend failure, its failureMode decides.
                let verdict = engine.complete(pending, answers: pending.requests.map { _ in .backendFailed(reason: "no redis configured (ProxyConfig spec.redis)") }, now: loop.now())
                record(verdict, env)
                return .decided(verdict)
            }
            return .waiting(loop.globalQuota(redis).take(pending.requests).map { answers in
                let verdict = engine.complete(pending, answers: answers, now: loop.now())
                record(verdict, env)
                return verdict
            })
        }
    }

    private static func record(_ v: PolicyVerdict, _ env: ConnectionEnvironment) {
        guard v.kind != "-" || !v.hits.isEmpty || v.degraded else { return }
        env.metrics.recordPolicy(v)
        if !v.isAllowed || v.degraded || !v.notes.isEmpty {
            debugLog("policy \(v.logFields)\(v.notes.isEmpty ? "" : " notes: " + v.notes.joined(separator: "; "))")
        }
    }
}
