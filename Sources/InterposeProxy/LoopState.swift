import InterposeConfig
import InterposeRedis
import InterposeRouting
import NIOCore
import NIOPosix

/// Per-event-loop state, touched only on its own loop (like Envoy's per-worker state): balancers,
/// active request counts and idle upstream connections. No locks on the request path.
final class LoopState: @unchecked Sendable {
    let eventLoop: EventLoop
    private var balancers: [Int: BalancerSlot] = [:]
    /// A class, so a pick mutates the balancer in place (a dictionary value would be copied out and back).
    private final class BalancerSlot {
        let generation: Int
        var balancer: LoadBalancer
        init(_ generation: Int, _ balancer: LoadBalancer) { self.generation = generation; self.balancer = balancer }
    }
    private var active: [String: Int] = [:]
    private var idle: [String: IdleConnections] = [:]
    /// One endpoint's idle connections: a class, so taking and returning one changes the list in
    /// place (no dictionary value copied out and back).
    private final class IdleConnections {
        var connections: [UpstreamConnection] = []
    }
    var rng = FastRandom()

    init(eventLoop: EventLoop) { self.eventLoop = eventLoop }

    /// The shared-quota client of this loop (one Redis connection per loop, pipelined), made on first
    /// use and made again when the configured Redis changes.
    private var quota: (settings: RedisSettings, quota: GlobalQuota)?

    func globalQuota(_ settings: RedisSettings) -> GlobalQuota {
        if let q = quota, q.settings == settings { return q.quota }
        if let old = quota { _ = old.quota.client.close() }
        let client = RedisClient(host: settings.host, port: settings.port, eventLoop: eventLoop,
                                 connectTimeout: .nanoseconds(Int64(settings.connectTimeout * 1e9)),
                                 commandTimeout: .nanoseconds(Int64(settings.commandTimeout * 1e9)))
        let q = GlobalQuota(client: client)
        quota = (settings, q)
        return q
    }

    /// Monotonic nanoseconds, the policy engine's clock.
    @inline(__always) func now() -> UInt64 { UInt64(NIODeadline.now().uptimeNanoseconds) }

    /// Picks an endpoint of the cluster; `hash` feeds consistent-hash policies.
    func pick(_ cluster: Cluster, generation: Int, hash: UInt64?) -> Endpoint? {
        guard !cluster.endpoints.isEmpty else { return nil }
        // Balancers are kept per table cluster (its id, an Int: no string hashing per request).
        let slot: BalancerSlot
        if let known = balancers[cluster.id], known.generation == generation, cluster.id >= 0 {
            slot = known
        } else {
            let algorithm: BalancerAlgorithm
            switch cluster.loadBalancer {
            case .roundRobin: algorithm = .roundRobin
            case .random: algorithm = .random
            case .leastRequest, .passthrough: algorithm = .leastRequest()
            case .consistentHash(_, let ring, let maglev):
                algorithm = maglev ? .maglev() : .ringHash(minimumRingSize: ring ?? 1024)
            }
            let eps = cluster.endpoints.map { BalancerEndpoint(key: $0.description, weight: $0.weight) }
            slot = BalancerSlot(generation, LoadBalancer(algorithm: algorithm, endpoints: eps))
            balancers[cluster.id] = slot
        }
        let endpoints = cluster.endpoints
        if endpoints.count == 1 { return endpoints[0] }
        let index = slot.balancer.pick(hash: hash, activeRequests: { [active] in active[endpoints[$0].description] ?? 0 }, using: &rng)
        return index.map { endpoints[$0] }
    }

    func requestStarted(_ key: String) { active[key, default: 0] += 1 }
    func requestFinished(_ key: String) {
        let n = (active[key] ?? 1) - 1
        active[key] = n > 0 ? n : nil
    }

    func takeIdle(_ key: String) -> UpstreamConnection? {
        guard let pool = idle[key] else { return nil }
        while let connection = pool.connections.popLast() {
            if connection.channel.isActive { return connection }
        }
        return nil
    }

    /// Returns a connection to the pool unless it has served `limit` requests (maxRequestsPerConnection;
    /// 1 means no keep-alive upstream), in which case it is closed.
    func putIdle(_ key: String, _ connection: UpstreamConnection, limit: Int? = nil) {
        connection.handler.sink = nil
        if let limit, limit > 0 {
            connection.served += 1
            if connection.served >= limit {
                connection.channel.close(promise: nil)
                return
            }
        }
        if let pool = idle[key] {
            pool.connections.append(connection)
        } else {
            let pool = IdleConnections()
            pool.connections.append(connection)
            idle[key] = pool
        }
    }

    /// Called once per upstream connection when it is opened: a closed connection leaves the pool.
    func watch(_ key: String, _ connection: UpstreamConnection) {
        connection.channel.closeFuture.whenComplete { [weak self, weak connection] _ in
            self?.idle[key]?.connections.removeAll { $0 === connection }
        }
    }

    /// A random UUIDv4 for x-request-id, from the loop's generator (no syscall per request).
    func requestID() -> String {
        let a = rng.next(), b = rng.next()
        return String(unsafeUninitializedCapacity: 36) { out in
            let hex: StaticString = "0123456789abcdef"
            var o = 0
            for i in 0..<16 {
                var byte = UInt8(truncatingIfNeeded: (i < 8 ? a : b) >> (8 * UInt64(i & 7)))
                if i == 6 { byte = (byte & 0x0f) | 0x40 }  // version 4
                if i == 8 { byte = (byte & 0x3f) | 0x80 }  // RFC 4122 variant
                if i == 4 || i == 6 || i == 8 || i == 10 { out[o] = UInt8(ascii: "-"); o += 1 }
                out[o] = hex.utf8Start[Int(byte >> 4)]
                out[o + 1] = hex.utf8Start[Int(byte & 0x0f)]
                o += 2
            }
            return o
        }
    }
}

/// One LoopState per event loop of the group, created at start.
final class LoopStates: Sendable {
    private let states: [ObjectIdentifier: LoopState]

    init(group: MultiThreadedEventLoopGroup) {
        var s: [ObjectIdentifier: LoopState] = [:]
        for loop in group.makeIterator() { s[ObjectIdentifier(loop)] = LoopState(eventLoop: loop) }
        states = s
    }

    func state(for loop: EventLoop) -> LoopState { states[ObjectIdentifier(loop)]! }
}
