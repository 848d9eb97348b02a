/// Envoy's ketama-style hash ring (`RING_HASH`), built exactly as Envoy's `RingHashLoadBalancer::Ring`.
///
/// Normalized weight `w_i = weight_i / Σweight`; `scale = min(ceil(min(w) * minimumRingSize) / min(w),
/// maximumRingSize)`; walking the endpoints in order with running sums, endpoint `i` gets entries until
/// the running count reaches `Σ scale * w`; entry `n` of an endpoint hashes
/// `xxHash64("<key>_<n>")`. The ring is sorted by hash; a request hash maps to the first entry
/// whose hash is >= it, wrapping to the first entry. With the same keys and weights the ring is
/// bit-for-bit Envoy's, so Interpose and Envoy sidecars agree on where a hash goes.
struct HashRing: Sendable {
    private let hashes: [UInt64]
    private let owners: [UInt32]
    private let endpointCount: Int

    init(endpoints: [BalancerEndpoint], minimumRingSize: Int, maximumRingSize: Int) {
        endpointCount = endpoints.count
        guard !endpoints.isEmpty else {
            hashes = []
            owners = []
            return
        }
        let maxRing = max(1, maximumRingSize)
        let minRing = min(max(1, minimumRingSize), maxRing)
        let sum = endpoints.reduce(UInt64(0)) { $0 + UInt64($1.effectiveWeight) }
        let normalized = endpoints.map { Double($0.effectiveWeight) * 1.0 / Double(sum) }
        let minNormalized = normalized.min() ?? 1.0
        let scale = min((minNormalized * Double(minRing)).rounded(.up) / minNormalized, Double(maxRing))
        let ringSize = Int(scale.rounded(.up))

        var entries: [(hash: UInt64, owner: UInt32)] = []
        entries.reserveCapacity(ringSize)
        var buffer: [UInt8] = []
        var currentHashes = 0.0
        var targetHashes = 0.0
        for (index, endpoint) in endpoints.enumerated() {
            buffer.removeAll(keepingCapacity: true)
            buffer.append(contentsOf: endpoint.key.utf8)
            buffer.append(UInt8(ascii: "_"))
            let prefixLength = buffer.count
            targetHashes += scale * normalized[index]
            var n: UInt64 = 0
            while currentHashes < targetHashes {
                buffer.removeSubrange(prefixLength...)
                appendDecimal(n, to: &buffer)
                let h = buffer.withUnsafeBytes { XXH64.hash($0, seed: 0) }
                entries.append((h, UInt32(index)))
                n += 1
                currentHashes += 1
            }
        }
        entries.sort { $0.hash != $1.hash ? $0.hash < $1.hash : $0.owner < $1.owner }
        hashes = entries.map(\.hash)
        owners = entries.map(\.owner)
    }

    var size: Int { hashes.count }

    /// Entries per endpoint (diagnostics, tests).
    func entryCounts() -> [Int] {
        var counts = Array(repeating: 0, count: endpointCount)
        for o in owners { counts[Int(o)] += 1 }
        return counts
    }

    /// Index of the first ring entry with hash >= `hash`, wrapping to 0.
    func entryIndex(for hash: UInt64) -> Int {
        var lo = 0
        var hi = hashes.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if hashes[mid] < hash { lo = mid + 1 } else { hi = mid }
        }
        return lo == hashes.count ? 0 : lo
    }

    /// The owner of the entry for `hash`, walking clockwise past excluded endpoints. Walking past an
    /// excluded endpoint's entries is what a ring rebuilt without that endpoint would answer.
    func pick(hash: UInt64, excluding: (Int) -> Bool) -> Int? {
        let size = hashes.count
        guard size > 0 else { return nil }
        var slot = entryIndex(for: hash)
        let quickSteps = min(size, 64)
        for _ in 0..<quickSteps {
            let owner = Int(owners[slot])
            if !excluding(owner) { return owner }
            slot += 1
            if slot == size { slot = 0 }
        }
        // Long walk: make sure it can end before walking the whole ring.
        guard UniformIndex.anyEligible(count: endpointCount, excluding: excluding) else { return nil }
        for _ in quickSteps..<size {
            let owner = Int(owners[slot])
            if !excluding(owner) { return owner }
            slot += 1
            if slot == size { slot = 0 }
        }
        return nil
    }
}

/// Appends the decimal digits of `n` (as `absl::StrCat` would print it).
private func appendDecimal(_ n: UInt64, to buffer: inout [UInt8]) {
    if n == 0 {
        buffer.append(UInt8(ascii: "0"))
        return
    }
    let start = buffer.count
    var v = n
    while v > 0 {
        buffer.append(UInt8(ascii: "0") + UInt8(v % 10))
        v /= 10
    }
    buffer[start...].reverse()
}
