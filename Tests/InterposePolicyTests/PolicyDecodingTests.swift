import InterposeCapture
import Testing
@testable import InterposeConfig
@testable import InterposePolicy

/// YAML decoding of AuthorizationPolicy, ValueList, Denier and RateLimitPolicy: every field, and errors that
/// name the field.
@Suite("Policy decoding: fields and errors with their paths")
struct PolicyDecodingTests {
    @Test func authorizationPolicyEveryField() throws {
        let bundle = loadPolicyYAML("""
        apiVersion: security.istio.io/v1beta1
        kind: AuthorizationPolicy
        metadata:
          name: full
          namespace: shop
          annotations: {istio.io/dry-run: "true"}
        spec:
          selector: {matchLabels: {app: reviews}}
          action: DENY
          rules:
          - from:
            - source:
                principals: [a]
                notPrincipals: [b]
                requestPrincipals: [c]
                notRequestPrincipals: [d]
                namespaces: [e]
                notNamespaces: [f]
                ipBlocks: [10.0.0.0/8]
                notIpBlocks: [10.1.0.0/16]
                remoteIpBlocks: ["2001:db8::/32"]
                notRemoteIpBlocks: [192.0.2.1]
            - source: {serviceAccounts: [shop/a], notServiceAccounts: [shop/b]}
            to:
            - operation:
                hosts: [a.example]
                notHosts: [b.example]
                ports: ["80", 443]
                notPorts: ["8080"]
                methods: [GET]
                notMethods: [POST]
                paths: ["/a/*", "/b/{*}/c"]
                notPaths: ["*.png"]
            when:
            - key: request.headers[X-Tenant]
              values: [acme]
              notValues: [evil]
            - key: source.ip
              values: [10.0.0.1]
          - {}
        """)
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.warnings.contains { $0.path == "spec.selector" && $0.message.contains("one workload") })
        let p = try #require(bundle.authorizationPolicies.first)
        #expect(p.action == .deny && p.dryRun && p.id == "shop/full" && p.rules.count == 2)
        let s = p.rules[0].from[0]
        #expect(s.principals == ["a"] && s.notPrincipals == ["b"] && s.requestPrincipals == ["c"] && s.notRequestPrincipals == ["d"])
        #expect(s.namespaces == ["e"] && s.notNamespaces == ["f"])
        #expect(s.ipBlocks.map(\.description) == ["10.0.0.0/8"] && s.notIpBlocks.map(\.description) == ["10.1.0.0/16"])
        #expect(s.remoteIpBlocks.map(\.description) == ["2001:db8::/32"] && s.notRemoteIpBlocks.map(\.description) == ["192.0.2.1"])
        #expect(p.rules[0].from[1].serviceAccounts == ["shop/a"] && p.rules[0].from[1].notServiceAccounts == ["shop/b"])
        let o = p.rules[0].to[0]
        #expect(o.hosts == ["a.example"] && o.notHosts == ["b.example"] && o.ports == [80, 443] && o.notPorts == [8080])
        #expect(o.methods == ["GET"] && o.notMethods == ["POST"] && o.paths == ["/a/*", "/b/{*}/c"] && o.notPaths == ["*.png"])
        #expect(p.rules[0].when == [
            AuthorizationCondition(key: "request.headers[X-Tenant]", attribute: .requestHeader("x-tenant"), values: ["acme"], notValues: ["evil"]),
            AuthorizationCondition(key: "source.ip", attribute: .sourceIP, values: ["10.0.0.1"], notValues: []),
        ])
        #expect(p.rules[1] == { var r = AuthorizationRule(); r.path = "spec.rules[1]"; return r }())
        #expect(!bundle.warnings.contains { $0.message.contains("not enforced") })
    }

    @Test(arguments: [
        ("spec: {action: PERMIT, rules: [{}]}", "spec.action", "'PERMIT' is not ALLOW, DENY, AUDIT or CUSTOM"),
        ("spec: {action: DENY}", "spec.rules", "DENY action without rules"),
        ("spec: {action: CUSTOM, rules: [{}]}", "spec.provider.name", "CUSTOM action needs provider.name"),
        ("spec: {action: CUSTOM, provider: {name: x}}", "spec.rules", "CUSTOM action without rules"),
        ("spec: {action: ALLOW, provider: {name: x}, rules: [{}]}", "spec.provider", "only for action CUSTOM"),
        ("spec: {rules: [{from: []}]}", "spec.rules[0].from", "must not be empty"),
        ("spec: {rules: [{from: [{}]}]}", "spec.rules[0].from[0].source", "needs a `source`"),
        ("spec: {rules: [{from: [{source: {}}]}]}", "spec.rules[0].from[0].source", "must not be empty"),
        ("spec: {rules: [{to: [{operation: {}}]}]}", "spec.rules[0].to[0].operation", "must not be empty"),
        ("spec: {rules: [{from: [{source: {ipBlocks: [10.0.0.0/33]}}]}]}", "spec.rules[0].from[0].source.ipBlocks[0]", "is not an IPv4 or IPv6 address or CIDR"),
        ("spec: {rules: [{from: [{source: {notRemoteIpBlocks: [x]}}]}]}", "spec.rules[0].from[0].source.notRemoteIpBlocks[0]", "is not an IPv4"),
        ("spec: {rules: [{to: [{operation: {ports: [\"80\", \"http\"]}}]}]}", "spec.rules[0].to[0].operation.ports[1]", "is not a port number"),
        ("spec: {rules: [{to: [{operation: {methods: [\"\"]}}]}]}", "spec.rules[0].to[0].operation.methods[0]", "empty value not allowed"),
        ("spec: {rules: [{to: [{operation: {paths: [\"/a/{x}\"]}}]}]}", "spec.rules[0].to[0].operation.paths[0]", "is not a template segment"),
        ("spec: {rules: [{to: [{operation: {paths: [\"/{**}/a\"]}}]}]}", "spec.rules[0].to[0].operation.paths[0]", "must be the last segment"),
        ("spec: {rules: [{when: [{key: request.colour, values: [red]}]}]}", "spec.rules[0].when[0].key", "is not a supported attribute"),
        ("spec: {rules: [{when: [{key: source.ip}]}]}", "spec.rules[0].when[0]", "at least one of values or notValues"),
        ("spec: {rules: [{when: [{key: source.ip, values: [nope]}]}]}", "spec.rules[0].when[0].values[0]", "is not an IPv4"),
        ("spec: {rules: [{when: [{key: destination.port, notValues: [http]}]}]}", "spec.rules[0].when[0].notValues[0]", "is not a port number"),
        ("spec: {rules: [{from: [{source: {serviceAccounts: [a/b], principals: [c]}}]}]}", "spec.rules[0].from[0].source.serviceAccounts", "cannot be set with"),
    ])
    func authorizationPolicyErrors(spec: String, path: String, message: String) {
        let bundle = loadPolicyYAML("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\n" + spec)
        let issues = bundle.issues(at: path).filter { $0.severity == .error }
        #expect(issues.contains { $0.message.contains(message) }, "\(bundle.summary)")
        #expect(issues.allSatisfy { $0.resource == "AuthorizationPolicy shop/p" && $0.file == "policy.yaml" && $0.document == 1 })
    }

    @Test func dryRunAnnotationIsCheckedAsIstioDoes() {
        let bad = loadPolicyYAML(authz("p", annotations: ["istio.io/dry-run": "maybe"], rules: "- {}"))
        #expect(bad.issues(at: "metadata.annotations.istio.io/dry-run").first?.message.contains("'maybe' is not true or false") == true, "\(bad.summary)")
        let audit = loadPolicyYAML(authz("p", action: "AUDIT", annotations: ["istio.io/dry-run": "true"], rules: "- {}"))
        #expect(audit.issues(at: "metadata.annotations.istio.io/dry-run").first?.message.contains("only supports action ALLOW or DENY") == true)
        #expect(loadPolicyYAML(authz("p", annotations: ["istio.io/dry-run": "True"], rules: "- {}")).authorizationPolicies.first?.dryRun == true)
    }

    @Test func unknownFieldsWarnAndJWTFieldsWarn() {
        let bundle = loadPolicyYAML(authz("p", rules: """
        - from: [{source: {requestPrincipals: ["*"]}}]
          when: [{key: "request.auth.claims[iss]", values: [x]}]
          colour: red
        """))
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        #expect(bundle.issues(at: "spec.rules[0].colour").first?.message == "unknown field, ignored")
        #expect(bundle.issues(at: "spec.rules[0].from[0].source.requestPrincipals").first?.severity == .warning)
        #expect(bundle.issues(at: "spec.rules[0].when[0].key").first?.message.contains("no request authentication") == true)
    }

    @Test func customProvidersMustExist() {
        let missing = loadPolicyYAML(authz("p", action: "CUSTOM", provider: "nobody", rules: "- {}"))
        let issue = missing.issues(at: "spec.provider.name").first
        #expect(issue?.message.contains("'nobody' is not a Denier or a ValueList of namespace shop") == true, "\(missing.summary)")
        #expect(issue?.resource == "AuthorizationPolicy shop/p")
        let noCheck = loadPolicyYAML(authz("p", action: "CUSTOM", provider: "l", rules: "- {}") + "---\n"
            + "apiVersion: interpose.dev/v1alpha1\nkind: ValueList\nmetadata: {name: l, namespace: shop}\nspec: {entries: [a]}\n")
        #expect(noCheck.issues(at: "spec.provider.name").first?.message.contains("has no `check`") == true, "\(noCheck.summary)")
        let otherNamespace = loadPolicyYAML(authz("p", action: "CUSTOM", provider: "d", rules: "- {}") + "---\n"
            + "apiVersion: interpose.dev/v1alpha1\nkind: Denier\nmetadata: {name: d, namespace: web}\n")
        #expect(!otherNamespace.errors.isEmpty, "providers are looked up in the policy's namespace")
        let twice = loadPolicyYAML(authz("p", rules: "- {}") + "---\n" + authz("p", rules: "- {}"))
        #expect(twice.issues(at: "metadata.name").first?.message.contains("another AuthorizationPolicy is named shop/p") == true)
    }

    @Test func denierDefaultsAndFields() throws {
        let bundle = loadPolicyYAML("""
        apiVersion: interpose.dev/v1alpha1
        kind: Denier
        metadata: {name: plain, namespace: shop}
        ---
        apiVersion: interpose.dev/v1alpha1
        kind: Denier
        metadata: {name: custom, namespace: shop}
        spec: {status: 429, message: slow down, grpcStatus: 8}
        ---
        apiVersion: interpose.dev/v1alpha1
        kind: Denier
        metadata: {name: bad, namespace: shop}
        spec: {status: 99, grpcStatus: 17}
        """)
        #expect(bundle.deniers.first == Denier(meta: bundle.deniers[0].meta, status: 403, message: "access denied", grpcStatus: nil))
        #expect(bundle.deniers[1].status == 429 && bundle.deniers[1].message == "slow down" && bundle.deniers[1].grpcStatus == 8)
        #expect(bundle.issues(at: "spec.status").first?.message.contains("out of range 200-599") == true)
        #expect(bundle.issues(at: "spec.grpcStatus").first?.message.contains("out of range 0-16") == true)
    }

    @Test func valueListFieldsAndErrors() throws {
        let good = loadPolicyYAML("""
        apiVersion: interpose.dev/v1alpha1
        kind: ValueList
        metadata: {name: ips, namespace: shop}
        spec:
          blacklist: true
          entryType: ip_addresses
          entries: [10.0.0.0/8, "::1"]
          providerUrl: http://lists.example/ips
          refreshInterval: 2m
          check: {attribute: source.ip, status: 451, message: blocked, grpcStatus: 7}
        """)
        #expect(good.errors.isEmpty, "\(good.summary)")
        let list = try #require(good.valueLists.first)
        #expect(list.blacklist && list.entryType == .ipAddresses && list.entries == ["10.0.0.0/8", "::1"])
        #expect(list.url == "http://lists.example/ips" && list.file == nil && list.refreshInterval == 120)
        #expect(list.check == ValueListCheck(attribute: .sourceIP, status: 451, message: "blocked", grpcStatus: 7))

        let cases: [(String, String, String)] = [
            ("entryType: WORDS", "spec.entryType", "is not STRINGS, CASE_INSENSITIVE_STRINGS, IP_ADDRESSES or REGEX"),
            ("entryType: IP_ADDRESSES\n  entries: [10.0.0.1, 10.0.0.0/99]", "spec.entries[1]", "is not an IPv4 or IPv6 address or CIDR"),
            ("entryType: REGEX\n  entries: [\"a(\"]", "spec.entries[0]", "not a valid regular expression"),
            ("file: /a\n  url: http://b", "spec.file", "not both"),
            ("url: ftp://b", "spec.url", "is not an http:// URL"),
            ("url: https://b", "spec.url", "https is not fetched"),
            ("url: http://b\n  refreshInterval: 10ms", "spec.refreshInterval", "at least 1s"),
            ("check: {attribute: source.colour}", "spec.check.attribute", "is not a supported attribute"),
            ("check: {status: 403}", "spec.check.attribute", "names the attribute"),
        ]
        for (spec, path, message) in cases {
            let bundle = loadPolicyYAML("apiVersion: interpose.dev/v1alpha1\nkind: ValueList\nmetadata: {name: l, namespace: shop}\nspec:\n  \(spec)\n")
            #expect(bundle.issues(at: path).contains { $0.severity == .error && $0.message.contains(message) }, "\(spec): \(bundle.summary)")
        }
    }

    @Test func rateLimitPolicyFieldsAndDefaults() throws {
        let bundle = loadPolicyYAML(rateLimitYAML(spec: """
        scope: global
        failureMode: FailClosed
        expectedProxies: 3
        shadow: true
        rules: [{to: [{operation: {paths: ["/api/*"]}}]}]
        descriptors: [{key: user, attribute: "request.headers[X-User]"}, {key: ip, attribute: source.ip}]
        limit: {requestsPerUnit: 100, unit: minute}
        overrides:
        - value: {user: batch}
          limit: {requestsPerUnit: 1000, unit: MINUTE, burst: 50}
        """))
        #expect(bundle.errors.isEmpty, "\(bundle.summary)")
        let p = try #require(bundle.rateLimitPolicies.first)
        #expect(p.scope == .global && p.failureMode == .failClosed && p.expectedProxies == 3 && p.shadow)
        #expect(p.rules.count == 1 && p.rules[0].to[0].paths == ["/api/*"])
        #expect(p.descriptors == [RateLimitDescriptor(key: "user", attribute: .requestHeader("x-user")), RateLimitDescriptor(key: "ip", attribute: .sourceIP)])
        #expect(p.limit == RateLimitAmount(requestsPerUnit: 100, unit: .minute, burst: 99))
        #expect(p.overrides == [RateLimitOverride(values: ["user": "batch"], limit: RateLimitAmount(requestsPerUnit: 1000, unit: .minute, burst: 50))])

        let defaults = try #require(loadPolicyYAML(rateLimitYAML(spec: "limit: {requestsPerUnit: 5}")).rateLimitPolicies.first)
        #expect(defaults.scope == .local && defaults.failureMode == .local && defaults.expectedProxies == 1 && !defaults.shadow)
        #expect(defaults.rules.isEmpty && defaults.descriptors.isEmpty && defaults.limit == RateLimitAmount(requestsPerUnit: 5, unit: .second, burst: 4))
    }

    @Test(arguments: [
        ("scope: Regional\nlimit: {requestsPerUnit: 1}", "spec.scope", "is not Local or Global"),
        ("scope: Global\nfailureMode: Panic\nlimit: {requestsPerUnit: 1}", "spec.failureMode", "is not Local, FailOpen or FailClosed"),
        ("expectedProxies: 0\nlimit: {requestsPerUnit: 1}", "spec.expectedProxies", "out of range"),
        ("descriptors: []", "spec.limit", "needs a limit"),
        ("limit: {unit: SECOND}", "spec.limit.requestsPerUnit", "needs requestsPerUnit"),
        ("limit: {requestsPerUnit: 1, unit: WEEK}", "spec.limit.unit", "is not SECOND, MINUTE, HOUR or DAY"),
        ("limit: {requestsPerUnit: -1}", "spec.limit.requestsPerUnit", "out of range"),
        ("limit: {requestsPerUnit: 1, burst: -2}", "spec.limit.burst", "out of range"),
        ("descriptors: [{key: u, attribute: request.colour}]\nlimit: {requestsPerUnit: 1}", "spec.descriptors[0].attribute", "is not a supported attribute"),
        ("descriptors: [{attribute: source.ip}]\nlimit: {requestsPerUnit: 1}", "spec.descriptors[0].key", "needs a key"),
        ("descriptors: [{key: a, attribute: source.ip}, {key: a, attribute: request.path}]\nlimit: {requestsPerUnit: 1}", "spec.descriptors[1].key", "used twice"),
        ("descriptors: [{key: u, attribute: source.ip}]\nlimit: {requestsPerUnit: 1}\noverrides: [{value: {user: x}, limit: {requestsPerUnit: 2}}]",
         "spec.overrides[0].value.user", "is not a descriptor key"),
        ("descriptors: [{key: u, attribute: source.ip}]\nlimit: {requestsPerUnit: 1}\noverrides: [{value: {u: x}}]", "spec.overrides[0].limit", "needs a limit"),
        ("rules: [{from: [{source: {ipBlocks: [bad]}}]}]\nlimit: {requestsPerUnit: 1}", "spec.rules[0].from[0].source.ipBlocks[0]", "is not an IPv4"),
    ])
    func rateLimitPolicyErrors(spec: String, path: String, message: String) {
        let bundle = loadPolicyYAML(rateLimitYAML(spec: spec))
        #expect(bundle.issues(at: path).contains { $0.severity == .error && $0.message.contains(message) && $0.resource == "RateLimitPolicy shop/limit" },
                "\(bundle.summary)")
    }

    @Test func attributeNames() {
        let names: [(String, PolicyAttribute)] = [
            ("source.ip", .sourceIP), ("remote.ip", .remoteIP), ("source.principal", .sourcePrincipal), ("source.namespace", .sourceNamespace),
            ("source.serviceAccount", .sourceServiceAccount), ("source.labels[app]", .sourceLabel("app")), ("destination.service", .destinationService),
            ("destination.port", .destinationPort), ("destination.ip", .destinationIP), ("destination.labels[v]", .destinationLabel("v")),
            ("request.path", .requestPath), ("request.method", .requestMethod), ("request.host", .requestHost),
            ("request.headers[X-A]", .requestHeader("x-a")), ("request.query[q]", .requestQuery("q")), ("request.auth.claims[iss]", .requestAuth("claims[iss]")),
            ("connection.sni", .connectionSNI), ("connection.requested_server_name", .connectionSNI),
        ]
        for (name, attribute) in names { #expect(PolicyAttribute.parse(name) == attribute, "\(name)") }
        for bad in ["request.headers[]", "request.headers", "source", "request.headers[a]b", ""] { #expect(PolicyAttribute.parse(bad) == nil, "\(bad)") }
    }
}
