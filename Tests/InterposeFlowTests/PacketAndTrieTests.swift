import InterposeCapture
import Testing
@testable import InterposeFlow

/// The pure pieces under the verdict path: header parsing, prefix tries, token buckets, /proc statistics.
@Suite struct FlowTupleParseTests {
    @Test func ipv4TCPSyn() throws {
        let bytes = PacketBytes.ipv4("10.1.2.3", "93.184.216.34", sourcePort: 51000, destinationPort: 443)
        #expect(bytes.count == 40 && bytes[33] == 0x02) // 20 IP + 20 TCP, SYN flag
        let t = try #require(parse(bytes))
        #expect(t == FlowTuple(transport: FlowTuple.tcp, source: addr("10.1.2.3"), destination: addr("93.184.216.34"), sourcePort: 51000, destinationPort: 443))
        #expect(!t.source.isV6)
    }

    @Test func ipv4WithOptionsUsesIHL() throws {
        // IHL 6: a 4-byte option (router alert) sits between the addresses and the TCP header.
        let bytes = PacketBytes.ipv4("192.168.1.10", "192.168.1.20", sourcePort: 0x1111, destinationPort: 8080, options: [0x94, 0x04, 0x00, 0x00])
        #expect(bytes[0] == 0x46)
        let t = try #require(parse(bytes))
        #expect(t.sourcePort == 0x1111 && t.destinationPort == 8080)
        #expect(t.destination == addr("192.168.1.20"))
        // Reading at a fixed offset 20 would have taken the option bytes as ports.
        #expect(t.sourcePort != 0x9404)
    }

    @Test func ipv4UDP() throws {
        let t = try #require(parse(PacketBytes.ipv4("10.0.0.1", "10.0.0.53", proto: FlowTuple.udp, sourcePort: 5353, destinationPort: 53)))
        #expect(t.transport == FlowTuple.udp && t.sourcePort == 5353 && t.destinationPort == 53)
    }

    @Test func ipv6TCP() throws {
        let t = try #require(parse(PacketBytes.ipv6("2001:db8::1", "2001:db8:ffff::2", sourcePort: 40001, destinationPort: 443)))
        #expect(t == FlowTuple(transport: FlowTuple.tcp, source: addr("2001:db8::1"), destination: addr("2001:db8:ffff::2"), sourcePort: 40001, destinationPort: 443))
        #expect(t.destination.isV6)
    }

    @Test func ipv6ExtensionHeadersAreSkipped() throws {
        let hbh = try #require(parse(PacketBytes.ipv6("fe80::1", "ff02::16", sourcePort: 1, destinationPort: 2, extensions: [PacketBytes.hopByHop])))
        #expect(hbh.transport == FlowTuple.tcp && hbh.sourcePort == 1 && hbh.destinationPort == 2)
        // Two headers, the second 16 bytes long (its length field counts 8-byte units beyond the first).
        let two = try #require(parse(PacketBytes.ipv6("2001:db8::1", "2001:db8::2", proto: FlowTuple.udp, sourcePort: 3, destinationPort: 4,
                                                      extensions: [PacketBytes.hopByHop, PacketBytes.destinationOptions])))
        #expect(two.transport == FlowTuple.udp && two.sourcePort == 3 && two.destinationPort == 4)
    }

    @Test func ipv6FragmentHeader() throws {
        // The first fragment (offset 0) carries the ports; a later one does not.
        let first = PacketBytes.ipv6("2001:db8::1", "2001:db8::2", sourcePort: 5, destinationPort: 6, extensions: [(44, [0, 0, 0x00, 0x01, 0, 0, 0, 9])])
        #expect(try #require(parse(first)).destinationPort == 6)
        let later = PacketBytes.ipv6("2001:db8::1", "2001:db8::2", sourcePort: 5, destinationPort: 6, extensions: [(44, [0, 0, 0x00, 0xB8, 0, 0, 0, 9])])
        #expect(parse(later) == nil)
    }

    @Test func nonFirstIPv4FragmentHasNoPorts() {
        // Offset 185 (x8 = 1480 bytes): the bytes after the header are payload, not a TCP header.
        #expect(parse(PacketBytes.ipv4("10.0.0.1", "10.0.0.2", destinationPort: 443, fragment: 185)) == nil)
        #expect(parse(PacketBytes.ipv4("10.0.0.1", "10.0.0.2", destinationPort: 443, fragment: 0x2000 | 185)) == nil)
        // The first fragment (more-fragments set, offset 0) does carry them.
        #expect(parse(PacketBytes.ipv4("10.0.0.1", "10.0.0.2", destinationPort: 443, fragment: 0x2000))?.destinationPort == 443)
    }

    @Test func tooShortBuffersAreNil() {
        let v4 = PacketBytes.ipv4("10.0.0.1", "10.0.0.2", destinationPort: 443)
        #expect(parse([]) == nil)
        #expect(parse(Array(v4.prefix(19))) == nil)
        #expect(parse(Array(v4.prefix(23))) == nil) // the header, but not both ports
        #expect(parse(Array(v4.prefix(24)))?.destinationPort == 443) // a copy range that just covers the ports
        let withOptions = PacketBytes.ipv4("10.0.0.1", "10.0.0.2", destinationPort: 443, options: [1, 1, 1, 1])
        #expect(parse(Array(withOptions.prefix(26))) == nil)
        let v6 = PacketBytes.ipv6("2001:db8::1", "2001:db8::2", destinationPort: 443)
        #expect(parse(Array(v6.prefix(39))) == nil)
        #expect(parse(Array(v6.prefix(43))) == nil)
        #expect(parse(Array(v6.prefix(44)))?.destinationPort == 443)
        let hbh = PacketBytes.ipv6("2001:db8::1", "2001:db8::2", destinationPort: 443, extensions: [PacketBytes.hopByHop])
        #expect(parse(Array(hbh.prefix(45))) == nil) // inside the extension header
        #expect(parse(Array(hbh.prefix(51))) == nil)
    }

    @Test func otherProtocolsAndVersionsAreNil() {
        // ICMP echo request: no ports to read.
        let icmp = PacketBytes.ipv4("10.0.0.1", "10.0.0.2", proto: 1, destinationPort: 0, body: [8, 0, 0, 0, 0, 1, 0, 1])
        #expect(parse(icmp) == nil)
        // ICMPv6 and SCTP.
        #expect(parse(PacketBytes.ipv6("2001:db8::1", "2001:db8::2", proto: 58, destinationPort: 0)) == nil)
        #expect(parse(PacketBytes.ipv4("10.0.0.1", "10.0.0.2", proto: 132, destinationPort: 0)) == nil)
        // Version 5, and an IHL below 5.
        var v5 = PacketBytes.ipv4("10.0.0.1", "10.0.0.2", destinationPort: 443)
        v5[0] = 0x55
        #expect(parse(v5) == nil)
        var ihl4 = PacketBytes.ipv4("10.0.0.1", "10.0.0.2", destinationPort: 443)
        ihl4[0] = 0x44
        #expect(parse(ihl4) == nil)
    }

    @Test func flowAddressText() {
        #expect(addr("10.1.2.3") == FlowAddress(v4: 0x0A01_0203))
        #expect(addr("2001:db8::1") == FlowAddress(v6High: 0x2001_0DB8_0000_0000, v6Low: 1))
        #expect(addr("10.1.2.3").description == "10.1.2.3")
        #expect(addr("2001:db8::1").bytes.count == 16)
        #expect(FlowAddress("10.1.2") == nil)
        #expect(FlowAddress(bytes: [1, 2, 3]) == nil)
        // The same 32 bits in the two families are different addresses.
        #expect(FlowAddress(v4: 1) != FlowAddress(v6High: 0, v6Low: 1))
    }
}

@Suite struct PrefixTrieTests {
    @Test func emptyMatcherMatchesAny() {
        let m = AddressMatcher([])
        #expect(m.matchesAny)
        #expect(m.matches(addr("1.2.3.4")) && m.matches(addr("2001:db8::1")))
    }

    @Test func familiesAreSeparate() {
        let v4Only = AddressMatcher([cidr("0.0.0.0/0")])
        #expect(!v4Only.matchesAny)
        #expect(v4Only.matches(addr("203.0.113.9")))
        #expect(!v4Only.matches(addr("::")))
        #expect(!v4Only.matches(addr("2001:db8::1")))
        let v6Only = AddressMatcher([cidr("::/0")])
        #expect(v6Only.matches(addr("2001:db8::1")))
        #expect(!v6Only.matches(addr("0.0.0.0")))
        // A v4 prefix whose bits equal the start of a v6 address still does not match it.
        #expect(!AddressMatcher([cidr("32.1.0.0/16")]).matches(addr("2001::1")))
    }

    @Test func hostAndNetworkPrefixes() {
        var trie = PrefixTrie()
        #expect(trie.isEmpty)
        trie.insert(cidr("192.0.2.7/32"))
        trie.insert(cidr("10.0.0.0/8"))
        #expect(trie.count == 2)
        #expect(trie.contains(addr("192.0.2.7")))
        #expect(!trie.contains(addr("192.0.2.6")) && !trie.contains(addr("192.0.2.8")))
        #expect(trie.contains(addr("10.0.0.0")) && trie.contains(addr("10.255.255.255")))
        #expect(!trie.contains(addr("11.0.0.0")) && !trie.contains(addr("9.255.255.255")))
        let v6 = PrefixTrie([cidr("2001:db8::/32"), cidr("fd00::1")])
        #expect(v6.contains(addr("2001:db8:abcd::1")) && v6.contains(addr("fd00::1")))
        #expect(!v6.contains(addr("fd00::2")) && !v6.contains(addr("2001:db9::")))
    }

    @Test(arguments: [false, true])
    func overlappingPrefixesInEitherOrder(_ broadFirst: Bool) {
        let prefixes = [cidr("10.0.0.0/8"), cidr("10.1.0.0/16"), cidr("10.1.2.3/32")]
        let trie = PrefixTrie(broadFirst ? prefixes : prefixes.reversed())
        for a in ["10.0.0.1", "10.1.0.1", "10.1.2.3", "10.1.2.4", "10.200.0.1"] {
            #expect(trie.contains(addr(a)), "\(a)")
        }
        #expect(!trie.contains(addr("11.1.2.3")))
        // The broad prefix inserted first makes the narrower ones redundant: they are not stored.
        #expect(trie.count == (broadFirst ? 1 : 3))
    }

    @Test func slashZeroAndSiblings() {
        #expect(PrefixTrie([cidr("0.0.0.0/0")]).contains(addr("255.255.255.255")))
        // Two halves of the space: every address is in one of them.
        let halves = PrefixTrie([cidr("0.0.0.0/1"), cidr("128.0.0.0/1")])
        #expect(halves.contains(addr("127.255.255.255")) && halves.contains(addr("128.0.0.0")))
        let oneHalf = PrefixTrie([cidr("128.0.0.0/1")])
        #expect(!oneHalf.contains(addr("127.255.255.255")) && oneHalf.contains(addr("200.0.0.1")))
    }
}

@Suite struct TokenBucketTests {
    static let s: UInt64 = 1_000_000_000

    @Test func startsFullAndEmpties() {
        var b = TokenBucket(burst: 2, now: 10 * Self.s)
        #expect(b.tokens == 2)
        let took1 = b.take(now: 10 * Self.s, perFill: 1, burst: 2, interval: Self.s)
        #expect(took1)
        let took2 = b.take(now: 10 * Self.s, perFill: 1, burst: 2, interval: Self.s)
        #expect(took2)
        let took3 = b.take(now: 10 * Self.s, perFill: 1, burst: 2, interval: Self.s)
        #expect(!took3)
        #expect(b.tokens == 0)
    }

    /// Tokens come in whole intervals: however the first N were spread over the interval, the
    /// N+1th inside it is refused, and the next interval brings N again.
    @Test func refillsOnlyAtWholeIntervals() {
        var b = TokenBucket(burst: 4, now: 0)
        for i in 0..<4 {
            let took = b.take(now: UInt64(i) * Self.s / 5, perFill: 4, burst: 4, interval: Self.s)
            #expect(took)
        }
        let early = b.take(now: Self.s - 1, perFill: 4, burst: 4, interval: Self.s)
        #expect(!early, "the fifth flow 1 ns before the interval ends is refused")
        #expect(b.tokens == 0 && b.lastFill == 0)
        let next = b.take(now: Self.s, perFill: 4, burst: 4, interval: Self.s)
        #expect(next)
        #expect(b.tokens == 3 && b.lastFill == Self.s)
        // 2.5 intervals later: two fills, capped at the burst; the interval start moves by whole steps.
        b.refill(now: Self.s * 7 / 2, perFill: 4, burst: 4, interval: Self.s)
        #expect(b.tokens == 4 && b.lastFill == 3 * Self.s)
    }

    @Test func fractionalRatesAccumulate() {
        // 0.5 per second: one flow every two seconds.
        var b = TokenBucket(burst: 1, now: 0)
        let first = b.take(now: 0, perFill: 0.5, burst: 1, interval: Self.s)
        let afterOne = b.take(now: Self.s, perFill: 0.5, burst: 1, interval: Self.s)
        let afterTwo = b.take(now: 2 * Self.s, perFill: 0.5, burst: 1, interval: Self.s)
        #expect(first && !afterOne && afterTwo)
    }

    @Test func neverAboveBurst() {
        var b = TokenBucket(burst: 3, now: 0)
        _ = b.take(now: 0, perFill: 10, burst: 3, interval: Self.s)
        b.refill(now: 3600 * Self.s, perFill: 10, burst: 3, interval: Self.s)
        #expect(b.tokens == 3)
    }

    @Test func timeGoingBackwardsAddsNothing() {
        var b = TokenBucket(burst: 2, now: 5 * Self.s)
        _ = b.take(now: 5 * Self.s, perFill: 1, burst: 2, interval: Self.s)
        _ = b.take(now: 5 * Self.s, perFill: 1, burst: 2, interval: Self.s)
        let took6 = b.take(now: 4 * Self.s, perFill: 1, burst: 2, interval: Self.s)
        #expect(!took6)
        #expect(b.tokens == 0 && b.lastFill == 5 * Self.s)
        b.refill(now: 6 * Self.s, perFill: 1, burst: 2, interval: Self.s)
        #expect(b.tokens == 1)
    }

    @Test func limiterPrunesIdleSourcesAtTheCap() {
        let limiter = SourceRateLimiter(rate: 1, burst: 1, maxSources: 2)
        #expect(limiter.take(addr("10.0.0.1"), now: 0))
        #expect(limiter.take(addr("10.0.0.2"), now: 0))
        #expect(limiter.sourceCount == 2)
        // Both buckets are empty (busy): nothing can be pruned; the new source is served but not
        // remembered, so a scan cannot grow the map past its cap.
        #expect(limiter.take(addr("10.0.0.3"), now: 0))
        #expect(limiter.sourceCount == 2)
        // Two seconds on, every bucket is full again (idle): all are pruned before the newcomer is added.
        #expect(limiter.take(addr("10.0.0.4"), now: 2 * Self.s))
        #expect(limiter.sourceCount == 1)
        // A known source below the cap is never a reason to prune.
        #expect(limiter.take(addr("10.0.0.5"), now: 2 * Self.s))
        #expect(limiter.sourceCount == 2)
        #expect(!limiter.take(addr("10.0.0.4"), now: 2 * Self.s))
        #expect(limiter.sourceCount == 2)
    }

    @Test func limiterKeepsBusySourcesWhenPruning() {
        let limiter = SourceRateLimiter(rate: 1, burst: 3, maxSources: 2)
        #expect(limiter.take(addr("10.0.0.1"), now: 0)) // 2 tokens left
        for _ in 0..<3 { #expect(limiter.take(addr("10.0.0.2"), now: 0)) } // empty
        // 2 s later: .1 is full again (pruned), .2 has 2 of 3 tokens (kept).
        #expect(limiter.take(addr("10.0.0.3"), now: 2 * Self.s))
        #expect(limiter.sourceCount == 2)
        #expect(limiter.take(addr("10.0.0.2"), now: 2 * Self.s))
        #expect(limiter.take(addr("10.0.0.2"), now: 2 * Self.s))
        #expect(!limiter.take(addr("10.0.0.2"), now: 2 * Self.s))
    }

    @Test func limiterWithAShorterFillInterval() {
        // 10 per second filled every 100 ms: one token per step.
        let limiter = SourceRateLimiter(rate: 10, burst: 1, interval: 0.1)
        #expect(limiter.take(addr("10.0.0.1"), now: 0))
        #expect(!limiter.take(addr("10.0.0.1"), now: Self.s / 20))
        #expect(limiter.take(addr("10.0.0.1"), now: Self.s / 10))
    }
}

@Suite struct QueueStatisticsTests {
    @Test func parsesProcLines() {
        let text = """
            0  12345     0 2  128     7     3      42  1
            1 4294967295  17 2 65531     0     0 123456789  1

        garbage line
        """
        let stats = QueueStatistics.parse(text)
        #expect(stats == [
            QueueStatistics(queue: 0, portID: 12345, waiting: 0, queueDropped: 7, userDropped: 3),
            QueueStatistics(queue: 1, portID: 4_294_967_295, waiting: 17, queueDropped: 0, userDropped: 0),
        ])
    }

    @Test func shortOrNonNumericLinesAreSkipped() {
        #expect(QueueStatistics.parse("    0  12345     0 2  128     7").isEmpty)
        #expect(QueueStatistics.parse("    x  12345     0 2  128     7     3      42  1").isEmpty)
        #expect(QueueStatistics.parse("70000  12345     0 2  128     7     3      42  1").isEmpty) // not a queue number
        #expect(QueueStatistics.parse("").isEmpty)
    }
}
