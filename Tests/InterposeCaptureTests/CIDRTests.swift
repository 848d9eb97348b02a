import InterposeCapture
import Testing

@Suite("CIDR and port parsing")
struct CIDRTests {
    func cidr(_ s: String) -> String? {
        if case .success(let c) = CIDR.parse(s) { return c.description }
        return nil
    }

    @Test func ipv4() {
        #expect(cidr("10.0.0.0/8") == "10.0.0.0/8")
        #expect(cidr("10.1.2.3/8") == "10.0.0.0/8")
        #expect(cidr("192.168.1.7") == "192.168.1.7")
        #expect(cidr("192.168.1.7/32") == "192.168.1.7")
        #expect(cidr("0.0.0.0/0") == "0.0.0.0/0")
        #expect(cidr("256.1.1.1") == nil)
        #expect(cidr("1.2.3") == nil)
        #expect(cidr("1.2.3.4/") == nil)
        #expect(cidr("01234.1.1.1") == nil)
    }

    @Test func ipv6() {
        #expect(cidr("fd00::/8") == "fd00::/8")
        #expect(cidr("FD00:0:0:0::1") == "fd00::1")
        #expect(cidr("2001:db8:0:0:1:0:0:1") == "2001:db8::1:0:0:1")
        #expect(cidr("::") == "::")
        #expect(cidr("::1") == "::1")
        #expect(cidr("::6/128") == "::6")
        #expect(cidr("::ffff:10.0.0.1") == "::ffff:a00:1")
        #expect(cidr("2001:db8::1/64") == "2001:db8::/64")
        #expect(cidr("1:2:3:4:5:6:7:8") == "1:2:3:4:5:6:7:8")
        #expect(cidr("1:2:3:4:5:6:7:8:9") == nil)
        #expect(cidr("1::2::3") == nil)
        #expect(cidr("12345::") == nil)
        #expect(cidr("fe80::1/129") == nil)
    }

    @Test func ports() {
        #expect(normalizePorts([PortRange(80), PortRange(81), PortRange(79)]).map(\.description) == ["79-81"])
        #expect(normalizePorts([PortRange(80), PortRange(80)]).map(\.description) == ["80"])
        #expect(PortRange(10, 5) == nil)
        #expect(PortRange(5, 10)!.contains(7))
    }
}
