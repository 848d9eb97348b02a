import InterposeCapture
import Testing

@Suite("Flow marks, owned-resource records, diffs")
struct MarkAndRecordTests {
    @Test func verdictValuesFitTheMaskAndAreDistinct() {
        let values = [FlowMark.queued, FlowMark.proxy, FlowMark.denyReset, FlowMark.bypass]
        #expect(Set(values).count == values.count)
        for v in values { #expect(v & ~FlowMark.mask == 0 && v != 0) }
        // The TPROXY mark must not collide with the verdict field.
        #expect(UInt32(1337) & FlowMark.mask == 0)
    }

    @Test func applyingAVerdictKeepsOtherMarkBits() {
        let mark: UInt32 = 0x539 | FlowMark.queued
        let out = FlowMark.applying(FlowMark.bypass, to: mark)
        #expect(out == 0x539 | FlowMark.bypass)
        #expect(FlowMark.verdict(of: out) == FlowMark.bypass)
        #expect(FlowMark.hex(FlowMark.mask) == "0x00700000")
    }

    @Test func ownedResourcesRoundTripWithinNftCommentLimit() {
        var o = OwnedResources()
        o.loopbackV6Added = true
        o.xtablesMangleV4Created = true
        o.xtablesMangleV6Created = true
        o.tproxyRouting = .init(mark: 4_294_967_295, table: 4_294_967_294)
        #expect(o.encoded.utf8.count <= 128)
        #expect(OwnedResources.decode(o.encoded) == o)
        #expect(OwnedResources.decode("someone else's table") == nil)
        #expect(OwnedResources.decode(OwnedResources().encoded) == OwnedResources())
    }

    @Test func ownedResourcesRememberWhatAnEarlierApplyCreated() {
        var options = CaptureOptions()
        options.queue = QueueRange(first: 1, last: 1)
        let plan = CapturePlanner(options: options, facts: HostFacts(ipv6: true)).plan()
        let first = OwnedResources.expected(for: plan, previous: nil, loopbackV6Present: false, xtablesMangleExists: [:])
        #expect(first.loopbackV6Added && first.xtablesMangleV4Created && first.xtablesMangleV6Created)
        // A second apply sees ::6 and the mangle tables present, yet they are still ours.
        let second = OwnedResources.expected(for: plan, previous: first, loopbackV6Present: true, xtablesMangleExists: [.v4: true, .v6: true])
        #expect(second == first)
        // Things that existed before the first apply are never claimed.
        let foreign = OwnedResources.expected(for: plan, previous: nil, loopbackV6Present: true, xtablesMangleExists: [.v4: true, .v6: true])
        #expect(!foreign.loopbackV6Added && !foreign.xtablesMangleV4Created)
    }

    @Test func lineDiffShowsMissingAndExtraInOrder() {
        let d = LineDiff.diff(expected: ["a", "b", "c", "d"], actual: ["a", "c", "d", "e"])
        #expect(d == ["- b", "+ e"])
        #expect(LineDiff.diff(expected: ["x"], actual: ["x"]).isEmpty)
    }

    @Test func shellWordsReadIptablesListing() {
        let line = "-A OUTPUT -m mark --mark 0x100000/0x700000 -m comment --comment \"interpose flow queue\" -j NFQUEUE --queue-num 3"
        let words = ShellWords.split(line)
        #expect(words.contains("interpose flow queue"))
        #expect(words.count == 14)
        #expect(words[1] == "OUTPUT" && words.last == "3")
    }
}
