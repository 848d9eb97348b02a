import InterposePolicy
import NIOCore

/// The shared (Global scope) quota: GCRA in Redis through one `RedisClient`, so one per event loop.
///
/// `take` never fails: a transport problem, an open circuit or an unexpected reply becomes
/// `.backendFailed(reason:)`, and the policy's failureMode decides. A backend problem is never a
/// refusal (never a 429). The script is run with EVALSHA under its SHA-1 computed here; a NOSCRIPT
/// answer (Redis restarted, SCRIPT FLUSH, failover) loads it with SCRIPT LOAD and retries once.
public final class GlobalQuota: @unchecked Sendable {
    public let client: RedisClient
    public var counters: RedisClientCounters { client.counters }
    public var eventLoop: EventLoop { client.eventLoop }

    /// The SCRIPT LOAD in flight, shared by every command that met NOSCRIPT meanwhile (a pipeline
    /// of EVALSHAs after a flush all come back NOSCRIPT: one load serves them all). Event loop only.
    private var loading: EventLoopFuture<Void>?

    public init(client: RedisClient) {
        self.client = client
    }

    /// Takes one unit.
    public func take(_ request: GlobalQuotaRequest) -> EventLoopFuture<GlobalQuotaAnswer> {
        let promise = eventLoop.makePromise(of: GlobalQuotaAnswer.self)
        switch GCRAScript.validate(request) {
        case .neverAllowed(let answer): promise.succeed(answer)
        case .invalid(let why): promise.succeed(.backendFailed(reason: why))
        case .valid(let t):
            let args = GCRAScript.evalsha(request, emissionMicros: t, units: 1)
            run(args, first: client.send(args)) { promise.succeed(Self.answer($0)) }
        }
        return promise.futureResult
    }

    /// Takes one unit for each request, pipelined on the connection (one flush), answers in order.
    public func take(_ requests: [GlobalQuotaRequest]) -> EventLoopFuture<[GlobalQuotaAnswer]> {
        var promises: [EventLoopPromise<GlobalQuotaAnswer>] = []
        var toSend: [(args: [String], promise: EventLoopPromise<GlobalQuotaAnswer>)] = []
        for request in requests {
            let promise = eventLoop.makePromise(of: GlobalQuotaAnswer.self)
            promises.append(promise)
            switch GCRAScript.validate(request) {
            case .neverAllowed(let answer): promise.succeed(answer)
            case .invalid(let why): promise.succeed(.backendFailed(reason: why))
            case .valid(let t): toSend.append((GCRAScript.evalsha(request, emissionMicros: t, units: 1), promise))
            }
        }
        let sent = client.send(batch: toSend.map(\.args))
        for (item, future) in zip(toSend, sent) {
            let promise = item.promise
            run(item.args, first: future) { promise.succeed(Self.answer($0)) }
        }
        return EventLoopFuture.whenAllSucceed(promises.map(\.futureResult), on: eventLoop)
    }

    /// Takes up to `units` units at once (fewer if fewer are left; a lease). Internal: `QuotaLease`.
    func grant(_ request: GlobalQuotaRequest, units: Int, emissionMicros: Double) -> EventLoopFuture<Result<GCRAScript.Reply, RedisQuotaFailure>> {
        let promise = eventLoop.makePromise(of: Result<GCRAScript.Reply, RedisQuotaFailure>.self)
        let args = GCRAScript.evalsha(request, emissionMicros: emissionMicros, units: units)
        run(args, first: client.send(args)) { promise.succeed($0) }
        return promise.futureResult
    }

    // MARK: - On the event loop

    /// Reads the reply of an EVALSHA, reloading the script once on NOSCRIPT.
    private func run(
        _ args: [String],
        first: EventLoopFuture<RESPValue>,
        retried: Bool = false,
        done: @escaping @Sendable (Result<GCRAScript.Reply, RedisQuotaFailure>) -> Void
    ) {
        first.whenComplete { result in
            switch result {
            case .failure(let error):
                done(.failure(RedisQuotaFailure(reason: "\(error)")))
            case .success(.error(let message)) where message.hasPrefix("NOSCRIPT") && !retried:
                self.loadScript().whenComplete { loaded in
                    switch loaded {
                    case .success: self.run(args, first: self.client.send(args), retried: true, done: done)
                    case .failure(let error): done(.failure(RedisQuotaFailure(reason: "\(error)")))
                    }
                }
            case .success(.error(let message)):
                done(.failure(RedisQuotaFailure(reason: "redis error: \(message)")))
            case .success(let value):
                if let reply = GCRAScript.decode(value) {
                    done(.success(reply))
                } else {
                    done(.failure(RedisQuotaFailure(reason: "redis: unexpected script reply \(value)")))
                }
            }
        }
    }

    private func loadScript() -> EventLoopFuture<Void> {
        if let loading { return loading }
        counters.scriptReloadsBox.wrappingAdd(1, ordering: .relaxed)
        let load = client.send(["SCRIPT", "LOAD", GCRAScript.source]).flatMapThrowing { reply in
            guard reply.string == GCRAScript.sha else {
                throw RedisQuotaFailure(reason: "redis: SCRIPT LOAD answered \(reply), expected \(GCRAScript.sha)")
            }
        }
        loading = load
        load.whenComplete { _ in self.loading = nil }
        return load
    }

    private static func answer(_ result: Result<GCRAScript.Reply, RedisQuotaFailure>) -> GlobalQuotaAnswer {
        switch result {
        case .success(let reply): return reply.answer
        case .failure(let failure): return .backendFailed(reason: failure.reason)
        }
    }
}

/// Why Redis gave no quota decision, in words for a log line and the degraded-decision metric.
struct RedisQuotaFailure: Error, Sendable, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
