/// xxHash64 (Yann Collet's XXH64), the hash Envoy uses for ring hash and maglev
/// (`HashUtil::xxHash64`), for header/cookie/source-IP hash policies and for generated
/// hash cookies.
///
/// Deterministic across processes, runs and machines (unlike Swift's randomly seeded `Hasher`).
/// Input is read as little-endian 64/32-bit lanes, as the reference implementation specifies.
public func xxHash64(_ bytes: some Sequence<UInt8>, seed: UInt64 = 0) -> UInt64 {
    if let h = bytes.withContiguousStorageIfAvailable({ XXH64.hash(UnsafeRawBufferPointer($0), seed: seed) }) {
        return h
    }
    return Array(bytes).withUnsafeBytes { XXH64.hash($0, seed: seed) }
}

/// xxHash64 of the UTF-8 bytes of `s`.
public func xxHash64(_ s: String, seed: UInt64 = 0) -> UInt64 {
    if let h = s.utf8.withContiguousStorageIfAvailable({ XXH64.hash(UnsafeRawBufferPointer($0), seed: seed) }) {
        return h
    }
    var copy = s
    return copy.withUTF8 { XXH64.hash(UnsafeRawBufferPointer($0), seed: seed) }
}

/// A stable 64-bit hash: xxHash64 with seed 0, exactly Envoy's `HashUtil::xxHash64(value)`.
public func stableHash64(_ bytes: some Sequence<UInt8>) -> UInt64 {
    xxHash64(bytes, seed: 0)
}

/// A stable 64-bit hash of the UTF-8 bytes of `s`: xxHash64 with seed 0.
public func stableHash64(_ s: String) -> UInt64 {
    xxHash64(s, seed: 0)
}

/// The XXH64 algorithm over a raw buffer.
enum XXH64 {
    static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always)
    static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 &- r)) }

    @inline(__always)
    static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        var acc = acc &+ input &* p2
        acc = rotl(acc, 31)
        return acc &* p1
    }

    @inline(__always)
    static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        (acc ^ round(0, val)) &* p1 &+ p4
    }

    @inline(__always)
    static func read64(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    @inline(__always)
    static func read32(_ p: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
    }

    static func hash(_ p: UnsafeRawBufferPointer, seed: UInt64) -> UInt64 {
        let length = p.count
        var offset = 0
        var h: UInt64
        if length >= 32 {
            var v1 = seed &+ p1 &+ p2
            var v2 = seed &+ p2
            var v3 = seed
            var v4 = seed &- p1
            while length - offset >= 32 {
                v1 = round(v1, read64(p, offset))
                v2 = round(v2, read64(p, offset + 8))
                v3 = round(v3, read64(p, offset + 16))
                v4 = round(v4, read64(p, offset + 24))
                offset += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = merge(h, v1)
            h = merge(h, v2)
            h = merge(h, v3)
            h = merge(h, v4)
        } else {
            h = seed &+ p5
        }
        h &+= UInt64(truncatingIfNeeded: length)
        while length - offset >= 8 {
            h ^= round(0, read64(p, offset))
            h = rotl(h, 27) &* p1 &+ p4
            offset += 8
        }
        if length - offset >= 4 {
            h ^= read32(p, offset) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            offset += 4
        }
        while offset < length {
            h ^= UInt64(p[offset]) &* p5
            h = rotl(h, 11) &* p1
            offset += 1
        }
        h ^= h >> 33
        h &*= p2
        h ^= h >> 29
        h &*= p3
        h ^= h >> 32
        return h
    }
}
