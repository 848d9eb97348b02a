import InterposeConfig
import InterposeRedis
import InterposeRouting
import NIOCore
import NIOPosix

/// Per-event-loop state, touched only on its own loop (like Envoy's per-worker state): balancers,
/// active request counts and idle upstream connections. No locks on the request path.
final class LoopState: @unchecked Sendable {
    let eventLoop: EventLoop
    private var balancers: [ClusterKey: (generation: Int, balancer: LoadBalancer)] = [:]
    private var active: [String: Int] = [:]
    private var idle: [String: [Channel]] = [:]
    var rng = FastRandom()
    /// Whether the last `UpstreamConnector.connect` was answered from the pool (synchronously).
    var lastWasPooled = false

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
        if balancers[cluster.key]?.generation != generation {
            let algorithm: BalancerAlgorithm
            switch cluster.loadBalancer {
            case .roundRobin: algorithm = .roundRobin
            case .random: algorithm = .random
            case .leastRequest, .passthrough: algorithm = .leastRequest()
            case .consistentHash(_, let ring, let maglev):
                algorithm = maglev ? .maglev() : .ringHash(minimumRingSize: ring ?? 1024)
            }
            let eps = cluster.endpoints.map { BalancerEndpoint(key: $0.description, weight: $0.weight) }
            balancers[cluster.key] = (generation, LoadBalancer(algorithm: algorithm, endpoints: eps))
        }
        let endpoints = cluster.endpoints
        let index = balancers[cluster.key]!.balancer.pick(hash: hash, activeRequests: { [active] in active[endpoints[$0].description] ?? 0 }, using: &rng)
        return index.map { endpoints[$0] }
    }

    func requestStarted(_ key: String) { active[key, default: 0] += 1 }
    func requestFinished(_ key: String) {
        let n = (active[key] ?? 1) - 1
        active[key] = n > 0 ? n : nil
    }

    func takeIdle(_ key: String) -> Channel? {
        // Popped in place: copying the list out and back would copy it on every take.
        while let ch = idle[key]?.popLast() {
            if ch.isActive { return ch }
        }
        return nil
    }

    private var served: [ObjectIdentifier: Int] = [:]

    /// Returns a connection to the pool unless it has served `limit` requests (maxRequestsPerConnection;
    /// 1 means no keep-alive upstream), in which case it is closed.
    func putIdle(_ key: String, _ channel: Channel, limit: Int? = nil) {
        if let limit, limit > 0 {
            let n = (served[ObjectIdentifier(channel)] ?? 0) + 1
            if n >= limit {
                served[ObjectIdentifier(channel)] = nil
                channel.close(promise: nil)
                return
            }
            served[ObjectIdentifier(channel)] = n
        }
        idle[key, default: []].append(channel)
    }

    /// Called once per upstream connection when it is opened: a closed connection leaves the pool.
    func watch(_ key: String, _ channel: Channel) {
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.idle[key]?.removeAll { $0 === channel }
            self?.served[ObjectIdentifier(channel)] = nil
        }
    }

    /// A random UUIDv4 for x-request-id, from the loop's generator (no syscall per request).
    func requestID() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        let a = rng.next(), b = rng.next()
        for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: a >> (8 * UInt64(i))); bytes[8 + i] = UInt8(truncatingIfNeeded: b >> (8 * UInt64(i))) }
        bytes[6] = (bytes[6] & 0x0f) | 0x40
        bytes[8] = (bytes[8] & 0x3f) | 0x80
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(36)
        for (i, byte) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
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
