import InterposePolicy

/// The shared quota's Lua script and how to call it and read its reply.
///
/// GCRA (generic cell rate algorithm, as in ATM networks and redis-cell). One key per quota holds
/// one number: the theoretical arrival time TAT, in microseconds of Redis's own clock
/// (`redis.call('TIME')`), so proxies' clocks never matter. With `limit` units per `period` seconds:
///
///     T     = period * 1e6 / limit       emission interval (µs), the steady cost of one unit
///     span  = (burst + 1) * T            how far TAT may run ahead of now: burst tolerance + one unit
///     tat   = max(stored TAT or now, now)
///     avail = min(floor((now + span - tat + 1) / T), burst + 1)   units that fit right now
///     granted = min(units wanted, avail)
///     granted == 0: refused; nothing stored;
///                   retryAfter = tat - span + T - now  (when the next unit fits), reset = tat - now
///     granted >= 1: TAT' = round(tat + granted * T), stored with PX ceil((TAT' - now) / 1000 ms)
///                   so the key vanishes exactly when the quota is whole again;
///                   remaining = avail - granted, retryAfter = 0, reset = TAT' - now
///
/// A fresh key allows burst + 1 units at once (so burst = limit - 1 lets a whole `limit` through at
/// once, as a fixed window would) and then one unit every T: never more than burst + 1 + d/T units
/// in any interval of length d, whatever the interleaving of proxies. TAT is stored as an integer
/// number of µs (Lua numbers print with 14 digits, too few for µs since 1970), so each grant rounds
/// by at most 0.5 µs; the `+ 1` µs in `avail` absorbs that rounding so a unit due now is not
/// refused over a fraction of a microsecond. Times are returned in ms, rounded up (a client told
/// to retry after 1 ms instead of 0.3 ms never retries too early).
///
/// T is at least 1 µs (limit / period above 10^6 per second is capped there): increments below
/// the rounding of TAT would vanish.
///
/// `redis.replicate_commands()` lets Redis 3.2 to 4 write after reading TIME (effects replication);
/// from Redis 5 it is the default and from 7 the call does nothing.
enum GCRAScript {
    static let source = """
        if redis.replicate_commands then redis.replicate_commands() end
        local T = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        local want = tonumber(ARGV[3])
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
        local tat = tonumber(redis.call('GET', KEYS[1])) or now
        if tat < now then tat = now end
        local span = (burst + 1) * T
        local avail = math.floor((now + span - tat + 1) / T)
        if avail > burst + 1 then avail = burst + 1 end
        if avail < 0 then avail = 0 end
        local granted = math.min(want, avail)
        if granted < 1 then
          return {0, 0, math.ceil((tat - span + T - now) / 1000), math.ceil((tat - now) / 1000), 0}
        end
        local newTat = math.floor(tat + granted * T + 0.5)
        local ttl = math.max(1, math.ceil((newTat - now) / 1000))
        redis.call('SET', KEYS[1], string.format('%d', newTat), 'PX', string.format('%d', ttl))
        return {1, avail - granted, 0, ttl, granted}
        """

    /// What EVALSHA names the script by.
    static let sha = SHA1.hex(source)

    /// The script's reply, decoded.
    struct Reply: Sendable, Equatable {
        var allowed: Bool
        var remaining: Int
        var retryAfterMillis: Int
        var resetMillis: Int
        var granted: Int

        var answer: GlobalQuotaAnswer {
            .decided(
                allowed: allowed, remaining: remaining,
                retryAfter: Double(retryAfterMillis) / 1000, reset: Double(resetMillis) / 1000
            )
        }
    }

    /// Whether a request can be asked of Redis at all.
    enum Validity {
        case valid(emissionMicros: Double)
        /// Nothing can ever be allowed (limit 0): answered without Redis.
        case neverAllowed(GlobalQuotaAnswer)
        case invalid(String)
    }

    static func validate(_ request: GlobalQuotaRequest) -> Validity {
        guard request.period.isFinite, request.period > 0 else {
            return .invalid("invalid quota period \(request.period) for \(request.key)")
        }
        guard request.limit > 0 else {
            return .neverAllowed(.decided(allowed: false, remaining: 0, retryAfter: request.period, reset: request.period))
        }
        // TAT moves in whole microseconds, so T is at least 1 µs: a key is capped at a million
        // units per second (far beyond what one Redis key serves anyway).
        return .valid(emissionMicros: max(1, request.period * 1_000_000 / Double(request.limit)))
    }

    static func evalsha(_ request: GlobalQuotaRequest, emissionMicros: Double, units: Int) -> [String] {
        ["EVALSHA", sha, "1", request.key, "\(emissionMicros)", String(max(0, request.burst)), String(max(1, units))]
    }

    static func decode(_ value: RESPValue) -> Reply? {
        guard let items = value.elements, items.count == 5,
              let allowed = items[0].int, let remaining = items[1].int, let retry = items[2].int,
              let reset = items[3].int, let granted = items[4].int
        else { return nil }
        return Reply(allowed: allowed == 1, remaining: remaining, retryAfterMillis: retry, resetMillis: reset, granted: granted)
    }
}
