import InterposePolicy
import NIOCore

/// The shared quota with leases: one EVALSHA takes up to `batch` units at once, and the event loop
/// spends them locally, saving up to batch - 1 round trips of every batch.
///
/// Units are always charged in Redis before they are spent, so the count admitted over time never
/// exceeds what Redis granted. What leases change is *when* units are spent and *who* holds them.
/// With P clients (one per proxy event loop) sharing a key, k = `batch`, H = `maxHold` and
/// T = period / limit:
///
/// - Over-admission: in any interval of length d, at most `burst + 1 + d/T + min(P·(k−1), H/T)`
///   units are admitted, against `burst + 1 + d/T` for exact GCRA. (Spent units were granted at
///   most H earlier, and at most P·(k−1) granted units are unspent at any moment.)
/// - Under-admission: up to P·(k−1) units may sit unspent on other loops while this one is
///   refused, and units still held when a lease expires after H are lost for good.
/// - `remaining` on a locally answered take is Redis's count at lease time plus the units still
///   held here: other proxies' spending since is not seen.
///
/// Keep P·(k−1) small against `limit` (e.g. k ≤ limit / (10·P) for a 10% bound); k = 1 is exact.
/// A grant is partial when fewer than k units are left, and takes that find no local unit wait for
/// the one fetch in flight for their key rather than each asking Redis.
public final class LeasedGlobalQuota: @unchecked Sendable {
    public let quota: GlobalQuota
    public let batch: Int
    public let maxHold: TimeAmount
    public var eventLoop: EventLoop { quota.eventLoop }

    private struct Lease {
        var units = 0
        var expires = NIODeadline.uptimeNanoseconds(0)
        /// Redis's `remaining` when the units were granted.
        var remainingAtGrant = 0
        var resetAt = NIODeadline.uptimeNanoseconds(0)
        /// Takes waiting for the fetch in flight.
        var waiters: [EventLoopPromise<GlobalQuotaAnswer>] = []
        var fetching: Bool { !waiters.isEmpty }
    }

    /// Per key, confined to the event loop.
    private var leases: [String: Lease] = [:]
    /// Expired leases are swept when the table grows past this (then it doubles), so keys of
    /// unbounded cardinality (one per client IP, say) cannot grow it without bound.
    private var sweepAt = 1024

    public init(quota: GlobalQuota, batch: Int = 4, maxHold: TimeAmount = .milliseconds(50)) {
        self.quota = quota
        self.batch = max(1, batch)
        self.maxHold = maxHold
    }

    /// Takes one unit, from a local lease when one is held.
    public func take(_ request: GlobalQuotaRequest) -> EventLoopFuture<GlobalQuotaAnswer> {
        if eventLoop.inEventLoop { return take0(request) }
        return eventLoop.flatSubmit { self.take0(request) }
    }

    /// Units held locally for `key` (for tests and introspection; event loop only).
    func heldUnits(_ key: String) -> Int { leases[key]?.units ?? 0 }

    private func take0(_ request: GlobalQuotaRequest) -> EventLoopFuture<GlobalQuotaAnswer> {
        guard case .valid(let t) = GCRAScript.validate(request) else { return quota.take(request) }
        let now = NIODeadline.now()
        let key = request.key
        if var lease = leases[key], lease.units > 0 {
            if lease.expires > now {
                lease.units -= 1
                let answer = GlobalQuotaAnswer.decided(
                    allowed: true, remaining: lease.remainingAtGrant + lease.units, retryAfter: 0,
                    reset: max(0, Double((lease.resetAt - now).nanoseconds) / 1e9)
                )
                if lease.units == 0 { leases[key] = nil } else { leases[key] = lease }
                return eventLoop.makeSucceededFuture(answer)
            }
            leases[key] = nil  // expired: its units are lost (charged, never spent)
        }
        let promise = eventLoop.makePromise(of: GlobalQuotaAnswer.self)
        let start = leases[key]?.fetching != true
        leases[key, default: Lease()].waiters.append(promise)
        if start {
            sweepIfLarge(now: now)
            fetch(request, emissionMicros: t, units: batch)
        }
        return promise.futureResult
    }

    private func fetch(_ request: GlobalQuotaRequest, emissionMicros: Double, units: Int) {
        quota.grant(request, units: units, emissionMicros: emissionMicros).whenComplete { result in
            // grant never fails; its value is the result of asking Redis.
            guard case .success(let outcome) = result else { return }
            self.fetched(request, emissionMicros: emissionMicros, asked: units, outcome)
        }
    }

    private func fetched(
        _ request: GlobalQuotaRequest, emissionMicros: Double, asked: Int,
        _ outcome: Result<GCRAScript.Reply, RedisQuotaFailure>
    ) {
        let key = request.key
        guard var lease = leases[key] else { return }
        var waiters = lease.waiters[...]
        lease.waiters = []
        switch outcome {
        case .failure(let failure):
            leases[key] = nil
            for waiter in waiters { waiter.succeed(.backendFailed(reason: failure.reason)) }
            return
        case .success(let reply) where reply.granted < 1:
            // Refused for one, refused for all of them: Redis's answer is exact for each.
            leases[key] = nil
            for waiter in waiters { waiter.succeed(reply.answer) }
            return
        case .success(let reply):
            let now = NIODeadline.now()
            lease.units = reply.granted
            lease.expires = now + maxHold
            lease.remainingAtGrant = reply.remaining
            lease.resetAt = now + .milliseconds(Int64(reply.resetMillis))
            while lease.units > 0, let waiter = waiters.popFirst() {
                lease.units -= 1
                waiter.succeed(.decided(
                    allowed: true, remaining: reply.remaining + lease.units, retryAfter: 0,
                    reset: Double(reply.resetMillis) / 1000
                ))
            }
            if waiters.isEmpty {
                leases[key] = lease.units > 0 ? lease : nil
            } else {
                // More takes than units: ask again for them; Redis grants more or refuses them all.
                lease.waiters = Array(waiters)
                leases[key] = lease
                fetch(request, emissionMicros: emissionMicros, units: max(batch, waiters.count))
            }
        }
    }

    private func sweepIfLarge(now: NIODeadline) {
        guard leases.count >= sweepAt else { return }
        leases = leases.filter { $0.value.fetching || $0.value.expires > now }
        sweepAt = max(1024, leases.count * 2)
    }
}
