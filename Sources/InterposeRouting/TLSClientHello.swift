/// Reads the server name (SNI) from a TLS ClientHello, so a TLS connection can be routed by host
/// while its bytes pass through untouched. Pure parsing of RFC 8446 4.1.2 / RFC 6066 3; no crypto.
public enum TLSClientHello {
    /// How many bytes the first TLS record needs (header + length), once 5 bytes are known.
    public static func recordLength(_ bytes: some Collection<UInt8>) -> Int? {
        let b = Array(bytes.prefix(5))
        guard b.count == 5, b[0] == 0x16 else { return nil }
        return 5 + (Int(b[3]) << 8 | Int(b[4]))
    }

    /// The SNI host name, lowercased; nil when absent or the bytes are not a ClientHello.
    public static func serverName(_ bytes: some Collection<UInt8>) -> String? {
        var r = Reader(Array(bytes))
        guard r.u8() == 0x16, r.skip(2), let recordLen = r.u16(), r.remaining >= min(recordLen, 4) else { return nil }
        guard r.u8() == 0x01, r.skip(3) else { return nil }          // handshake type ClientHello, length
        guard r.skip(2 + 32) else { return nil }                     // legacy_version, random
        guard let sid = r.u8(), r.skip(Int(sid)) else { return nil } // session id
        guard let cs = r.u16(), r.skip(cs) else { return nil }       // cipher suites
        guard let cm = r.u8(), r.skip(Int(cm)) else { return nil }   // compression methods
        guard let extLen = r.u16() else { return nil }
        var end = r.offset + extLen
        end = min(end, r.bytes.count)
        while r.offset + 4 <= end {
            guard let type = r.u16(), let len = r.u16() else { return nil }
            if type == 0 {                                           // server_name
                guard r.u16() != nil, r.u8() == 0, let nameLen = r.u16(), r.remaining >= nameLen else { return nil }
                let name = r.bytes[r.offset..<(r.offset + nameLen)]
                guard name.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return nil }
                return String(decoding: name, as: UTF8.self).lowercased()
            }
            guard r.skip(len) else { return nil }
        }
        return nil
    }

    /// A minimal, well-formed ClientHello naming `serverName` (for tests and the netcheck tool).
    public static func make(serverName: String?) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
        var ext: [UInt8] = []
        if let serverName {
            let name = Array(serverName.utf8)
            let list: [UInt8] = [0] + u16(name.count) + name
            ext += [0, 0] + u16(list.count + 2) + u16(list.count) + list
        }
        ext += [0, 43] + u16(3) + [2, 3, 4]     // supported_versions: TLS 1.3
        var body: [UInt8] = [3, 3] + Array(repeating: 7, count: 32)
        body += [0]                              // no session id
        body += u16(2) + [0x13, 0x01]            // TLS_AES_128_GCM_SHA256
        body += [1, 0]                           // null compression
        body += u16(ext.count) + ext
        let handshake: [UInt8] = [1, 0] + u16(body.count) + body
        return [0x16, 3, 1] + u16(handshake.count) + handshake
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        init(_ b: [UInt8]) { bytes = b }
        var remaining: Int { bytes.count - offset }
        mutating func u8() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func u16() -> Int? {
            guard offset + 2 <= bytes.count else { return nil }
            defer { offset += 2 }
            return Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
        }
        mutating func skip(_ n: Int) -> Bool {
            guard n >= 0, offset + n <= bytes.count else { return false }
            offset += n
            return true
        }
    }
}
