import InterposeRouting
import Testing

@Suite("Routing: SNI from a TLS ClientHello")
struct RoutingTLSClientHelloTests {
    static func clientHello(sni: String?) -> [UInt8] { TLSClientHello.make(serverName: sni) }

    @Test func readsTheServerName() {
        let hello = Self.clientHello(sni: "Reviews.Demo.svc.cluster.local")
        #expect(TLSClientHello.serverName(hello) == "reviews.demo.svc.cluster.local")
        #expect(TLSClientHello.recordLength(hello) == hello.count)
    }

    @Test func noServerNameOrNotAClientHello() {
        #expect(TLSClientHello.serverName(Self.clientHello(sni: nil)) == nil)
        #expect(TLSClientHello.serverName(Array("GET / HTTP/1.1\r\n".utf8)) == nil)
        let hello = Self.clientHello(sni: "a.example")
        #expect(TLSClientHello.serverName(hello.prefix(20)) == nil, "a truncated hello is not read past its end")
    }
}
