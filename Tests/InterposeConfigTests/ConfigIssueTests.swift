import Foundation
import Testing
@testable import InterposeConfig

@Suite("Config: warnings for unknown fields")
struct ConfigWarningTests {
    @Test func unknownFieldsWarnWithTheirPathAndDoNotFail() throws {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        colour: blue
        http:
        - match:
          - uri: {prefix: /}
            headerz: {x: {exact: y}}
          route:
          - destination: {host: reviews.shop.svc.cluster.local, subsett: v1}
            wieght: 5
        """), file: "vs.yaml")
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        let paths = Set(bundle.warnings.map(\.path))
        #expect(paths == ["spec.colour", "spec.http[0].match[0].headerz", "spec.http[0].route[0].destination.subsett",
                          "spec.http[0].route[0].wieght"], "\(bundle.summary)")
        let w = try #require(bundle.issues(at: "spec.http[0].route[0].wieght").first)
        #expect(w.severity == .warning)
        #expect(w.description.hasPrefix("warning: vs.yaml:"))
        #expect(w.description.contains("document 1 (VirtualService shop/reviews) spec.http[0].route[0].wieght"))
        #expect(w.message.contains("unknown field"))
        #expect(w.line == 15, "line of the unknown key in the file (the spec starts on line 7)")
        // The resource still loads.
        #expect(bundle.virtualServices.count == 1)
    }

    @Test func unknownKindWarns() throws {
        let bundle = loadYAML("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: cm}
        data: {a: b}
        """)
        #expect(bundle.errors.isEmpty)
        let w = try #require(bundle.warnings.first { $0.path == "kind" })
        #expect(w.message.contains("v1 ConfigMap"))
    }

    @Test func acceptedButNotAppliedFeaturesWarn() {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - route:
          - destination: {host: reviews.shop.svc.cluster.local}
          retries: {attempts: 3}
          fault: {abort: {httpStatus: 500, percentage: {value: 1}}}
        """))
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(Set(bundle.warnings.map(\.path)) == ["spec.http[0].retries", "spec.http[0].fault"])
    }

    @Test func anErrorDoesNotAlsoReportItsSiblingsAsUnknown() {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: bad-port, namespace: shop}
        spec:
          hosts: [a.example.com]
          ports:
          - number: 70000
            name: http
            protocol: HTTP
          resolution: STATIC
          endpoints:
          - labels: {version: v1}
            weight: 2
          - address: 10.0.0.1
        """)
        #expect(bundle.warnings.isEmpty, "\(bundle.summary)")
        #expect(bundle.errors.map(\.path) == ["spec.ports[0].number", "spec.endpoints[0].address"], "\(bundle.summary)")
    }
}

@Suite("Config: errors name the field")
struct ConfigErrorTests {
    @Test func negativeWeight() throws {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - route:
          - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
            weight: 100
          - destination: {host: reviews.shop.svc.cluster.local, subset: v2}
            weight: -5
        """), file: "/etc/interpose/reviews.yaml")
        let e = try #require(bundle.errors.first)
        #expect(bundle.errors.count == 1, "\(bundle.summary)")
        #expect(e.path == "spec.http[0].route[1].weight")
        #expect(e.file == "/etc/interpose/reviews.yaml")
        #expect(e.document == 1)
        #expect(e.resource == "VirtualService shop/reviews")
        #expect(e.line == 13, "the spec starts on line 7")
        #expect(e.message.contains("negative"))
        #expect(e.description == "error: /etc/interpose/reviews.yaml:13: document 1 (VirtualService shop/reviews) spec.http[0].route[1].weight: \(e.message)")
    }

    @Test func weightThatIsNotANumber() {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - route:
          - destination: {host: reviews.shop.svc.cluster.local}
            weight: lots
          - destination: {host: httpbin.org}
        """))
        #expect(bundle.errors.map(\.path) == ["spec.http[0].route[0].weight"], "\(bundle.summary)")
    }

    @Test func weightsThatAreAllZero() {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - route:
          - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
            weight: 0
          - destination: {host: reviews.shop.svc.cluster.local, subset: v2}
            weight: 0
        """))
        #expect(bundle.errors.map(\.path) == ["spec.http[0].route"], "\(bundle.summary)")
        #expect(bundle.errors.first?.message.contains("total destination weight") == true)
    }

    @Test func invalidRegexes() {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - match:
          - uri: {regex: "/item/([0-9]+"}
            headers:
              x-id: {regex: "[unclosed"}
          rewrite:
            uriRegexRewrite: {match: "(", rewrite: /x}
          route:
          - destination: {host: reviews.shop.svc.cluster.local}
        """), file: "rx.yaml")
        #expect(bundle.errors.map(\.path) == ["spec.http[0].match[0].uri.regex", "spec.http[0].match[0].headers.x-id.regex",
                                              "spec.http[0].rewrite.uriRegexRewrite.match"], "\(bundle.summary)")
        #expect(bundle.errors.allSatisfy { $0.message.contains("not a valid regular expression") })
        #expect(bundle.errors[0].description.contains("rx.yaml:"))
        #expect(bundle.errors[0].description.contains("document 1 (VirtualService shop/reviews) spec.http[0].match[0].uri.regex"))
    }

    @Test func stringMatchWithTwoKinds() {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - match:
          - uri: {exact: /a, prefix: /b}
          route:
          - destination: {host: reviews.shop.svc.cluster.local}
        """))
        #expect(bundle.errors.map(\.path) == ["spec.http[0].match[0].uri"], "\(bundle.summary)")
        #expect(bundle.warnings.isEmpty, "\(bundle.summary)")
    }

    @Test func routeToUndefinedSubset() throws {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - route:
          - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
            weight: 50
          - destination: {host: reviews.shop.svc.cluster.local, subset: v9}
            weight: 50
          mirrors:
          - destination: {host: httpbin.org, subset: shadow}
        """), file: "subsets.yaml")
        #expect(bundle.errors.map(\.path) == ["spec.http[0].route[1].destination.subset", "spec.http[0].mirrors[0].destination.subset"],
                "\(bundle.summary)")
        let e = bundle.errors[0]
        #expect(e.message.contains("'v9'"))
        #expect(e.message.contains("DestinationRule shop/reviews"))
        #expect(e.description.contains("subsets.yaml: document 1 (VirtualService shop/reviews) spec.http[0].route[1].destination.subset"))
        #expect(bundle.errors[1].message.contains("no DestinationRule"))
    }

    @Test func subsetDefinedByAWildcardRuleIsFound() {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: all-example}
        spec:
          host: "*.example.com"
          subsets: [{name: blue, labels: {color: blue}}]
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: api}
        spec:
          hosts: [api.example.com]
          http:
          - route:
            - destination: {host: api.example.com, subset: blue}
        """)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
    }

    @Test func tcpRouteToUndefinedSubset() {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        tcp:
        - match: [{port: 9080}]
          route:
          - destination: {host: reviews.shop.svc.cluster.local, subset: nope}
        """))
        #expect(bundle.errors.map(\.path) == ["spec.tcp[0].route[0].destination.subset"], "\(bundle.summary)")
    }

    @Test func missingHosts() {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: no-host-dest, namespace: shop}
        spec:
          hosts: [a.example.com]
          http:
          - route:
            - destination: {subset: v1, port: {number: 80}}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: no-hosts}
        spec:
          http:
          - route:
            - destination: {host: a.example.com}
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: no-host}
        spec:
          subsets: [{name: v1}]
        ---
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: no-hosts}
        spec:
          ports: [{number: 80, name: http, protocol: HTTP}]
        """, file: "hosts.yaml")
        let found = bundle.errors.map { "\($0.document) \($0.resource) \($0.path)" }
        #expect(found == [
            "1 VirtualService shop/no-host-dest spec.http[0].route[0].destination.host",
            "2 VirtualService default/no-hosts spec.hosts",
            "3 DestinationRule default/no-host spec.host",
            "4 ServiceEntry default/no-hosts spec.hosts",
        ], "\(bundle.summary)")
        #expect(bundle.warnings.isEmpty, "\(bundle.summary)")
    }

    @Test func badPortNumbers() {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: ports, namespace: shop}
        spec:
          hosts: [a.example.com]
          ports:
          - {number: 0, name: zero}
          - {number: 65536, name: big}
          - {number: eighty, name: word}
          - {number: 80, name: http, protocol: HTTP, targetPort: 99999}
          - {name: missing}
          - {number: 80, name: again}
          resolution: STATIC
          endpoints:
          - address: 10.0.0.1
            ports: {http: 70000}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: vs, namespace: shop}
        spec:
          hosts: [a.example.com]
          http:
          - match: [{port: 0}]
            route:
            - destination: {host: a.example.com, port: {number: 123456}}
        """)
        #expect(bundle.errors.map(\.path) == [
            "spec.ports[0].number", "spec.ports[1].number", "spec.ports[2].number", "spec.ports[3].targetPort",
            "spec.ports[4].number", "spec.ports[5].number", "spec.endpoints[0].ports.http",
            "spec.http[0].match[0].port", "spec.http[0].route[0].destination.port.number",
        ], "\(bundle.summary)")
        #expect(bundle.errors[0].message.contains("out of range 1-65535"))
        #expect(bundle.errors[2].message.contains("integer"))
        #expect(bundle.errors[5].message.contains("twice"))
    }

    @Test func badEnumValues() {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: se}
        spec:
          hosts: [a.example.com]
          resolution: MAGIC
        ---
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: dr}
        spec:
          host: a.example.com
          trafficPolicy:
            loadBalancer: {simple: FASTEST}
        ---
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: sc}
        spec:
          outboundTrafficPolicy: {mode: BLOCK_ALL}
        """)
        #expect(bundle.errors.map(\.path) == ["spec.resolution", "spec.trafficPolicy.loadBalancer.simple", "spec.outboundTrafficPolicy.mode"],
                "\(bundle.summary)")
    }

    @Test func badDurationsAndPercentages() {
        let bundle = loadYAML(virtualServiceDocument("""
        hosts: [reviews.shop.svc.cluster.local]
        http:
        - route:
          - destination: {host: reviews.shop.svc.cluster.local}
          timeout: 10
          mirror: {host: httpbin.org}
          mirrorPercentage: {value: 150}
        - route:
          - destination: {host: reviews.shop.svc.cluster.local}
          mirrors:
          - destination: {host: httpbin.org}
            percentage: {value: -1}
        """))
        #expect(bundle.errors.map(\.path) == ["spec.http[0].mirrorPercentage.value", "spec.http[0].timeout", "spec.http[1].mirrors[0].percentage.value"],
                "\(bundle.summary)")
    }

    @Test func missingNameAndNonMappingDocument() {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {namespace: shop}
        spec: {}
        ---
        - just
        - a list
        """, file: "odd.yaml")
        #expect(bundle.errors.map { "\($0.document) \($0.path)" } == ["1 metadata.name", "2 "], "\(bundle.summary)")
        #expect(bundle.errors[1].description.contains("odd.yaml:6: document 2"))
    }

    @Test func notValidYAML() throws {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        metadata: {name: fine}
        spec: {}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: broken
        spec:
          hosts: [a]
        """, file: "broken.yaml")
        let e = try #require(bundle.errors.first)
        #expect(bundle.errors.count == 1, "\(bundle.summary)")
        #expect(e.message.hasPrefix("not valid YAML"))
        #expect(e.file == "broken.yaml")
        #expect(e.document == 2, "the document the syntax error is in")
        #expect(e.line != nil)
        #expect(e.description.hasPrefix("error: broken.yaml:"))
        // Nothing of the broken document is taken.
        #expect(bundle.virtualServices.isEmpty)
    }

    @Test func tabIndentationIsNotValidYAML() {
        let bundle = loadYAML("apiVersion: v1\nkind: Sidecar\nspec:\n\tfoo: bar\n", file: "tab.yaml")
        #expect(bundle.errors.count == 1)
        #expect(bundle.errors.first?.message.hasPrefix("not valid YAML") == true, "\(bundle.summary)")
    }

    @Test func duplicateKeysAreAnError() {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: Sidecar
        kind: Sidecar
        metadata: {name: dup}
        """)
        #expect(bundle.errors.count == 1)
        #expect(bundle.errors.first?.message.contains("duplicated key") == true, "\(bundle.summary)")
    }

    @Test func missingSpec() {
        let bundle = loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: nothing}
        """)
        #expect(bundle.errors.map(\.path) == ["spec"])
        #expect(bundle.errors.first?.resource == "DestinationRule default/nothing")
    }
}

@Suite("Config: loading files and directories")
struct ConfigFileTests {
    @Test func directoryIsLoadedInNameOrder() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: (dir as NSString).appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        func se(_ name: String, _ host: String) -> String {
            """
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {name: \(name)}
            spec:
              hosts: [\(host)]
              ports: [{number: 80, name: http, protocol: HTTP}]
            """
        }
        try write("20-b.yaml", se("b", "b.example.com"))
        try write("10-a.yml", se("a", "a.example.com") + "\n---\n" + se("a2", "a2.example.com"))
        try write("30-c.yaml", se("c", "c.example.com"))
        try write("notes.txt", "not: [yaml")
        try write(".hidden.yaml", "not: [yaml")
        try FileManager.default.createDirectory(atPath: (dir as NSString).appendingPathComponent("sub"), withIntermediateDirectories: false)

        #expect(try ConfigLoader.files(at: dir).map { ($0 as NSString).lastPathComponent } == ["10-a.yml", "20-b.yaml", "30-c.yaml"])
        let bundle = try ConfigLoader.load(path: dir)
        #expect(bundle.issues.isEmpty, "\(bundle.summary)")
        #expect(bundle.serviceEntries.map(\.meta.name) == ["a", "a2", "b", "c"])
        #expect(bundle.serviceEntries.map(\.meta.document) == [1, 2, 1, 1])
        #expect(bundle.serviceEntries.map { ($0.meta.file as NSString).lastPathComponent } == ["10-a.yml", "10-a.yml", "20-b.yaml", "30-c.yaml"])
    }

    @Test func errorsInADirectoryNameTheirFile() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: reviews, namespace: shop}
        spec:
          host: reviews.shop.svc.cluster.local
          subsets: [{name: v1, labels: {version: v1}}]
        """
        let bad = """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: shop}
        spec:
          hosts: [reviews.shop.svc.cluster.local]
          http:
          - route:
            - destination: {host: reviews.shop.svc.cluster.local, subset: v2}
        """
        try good.write(toFile: (dir as NSString).appendingPathComponent("a.yaml"), atomically: true, encoding: .utf8)
        try bad.write(toFile: (dir as NSString).appendingPathComponent("b.yaml"), atomically: true, encoding: .utf8)
        let bundle = try ConfigLoader.load(path: dir)
        let e = try #require(bundle.errors.first)
        #expect(bundle.errors.count == 1, "\(bundle.summary)")
        #expect(e.file == (dir as NSString).appendingPathComponent("b.yaml"))
        #expect(e.description.contains("b.yaml: document 1 (VirtualService shop/reviews) spec.http[0].route[0].destination.subset"))
    }

    @Test func singleFileAndMissingPath() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = (dir as NSString).appendingPathComponent("only.yaml")
        try "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let bundle = try ConfigLoader.load(path: file)
        #expect(bundle.issues.isEmpty)
        #expect(bundle.outboundTrafficPolicy == .registryOnly)

        #expect(throws: ConfigLoadError.self) { try ConfigLoader.load(path: (dir as NSString).appendingPathComponent("missing")) }
    }
}

@Suite("Config: ServiceEntry resolution rules")
struct ConfigResolutionRuleTests {
    func serviceEntry(_ resolution: String, _ endpoints: String) -> ConfigBundle {
        loadYAML("""
        apiVersion: networking.istio.io/v1
        kind: ServiceEntry
        metadata: {name: se}
        spec:
          hosts: [svc.example.com]
          ports: [{number: 80, name: http, protocol: HTTP}]
          resolution: \(resolution)
          endpoints: \(endpoints)
        """)
    }

    @Test func noneTakesNoEndpoints() {
        #expect(serviceEntry("NONE", "[{address: 10.0.0.1}]").errors.map(\.path) == ["spec.endpoints"])
        #expect(serviceEntry("NONE", "[]").errors.isEmpty)
    }

    @Test func staticNeedsAddressesNotNames() {
        let bundle = serviceEntry("STATIC", "[{address: 10.0.0.1}, {address: backend.internal}, {address: '2001:db8::1'}, {address: '::ffff:10.1.2.3'}, {address: 'unix:///run/app.sock'}, {address: 10.0.0.300}]")
        #expect(bundle.errors.map(\.path) == ["spec.endpoints[1].address", "spec.endpoints[5].address"], "\(bundle.summary)")
        #expect(serviceEntry("STATIC", "[]").errors.map(\.path) == ["spec.endpoints"])
        #expect(serviceEntry("DNS", "[{address: backend.internal}, {address: 10.0.0.1}]").errors.isEmpty)
    }
}
