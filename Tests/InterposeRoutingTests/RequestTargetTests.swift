import InterposeRouting
import Testing

@Suite("Routing: request target normalization")
struct RequestTargetTests {
    @Test(arguments: [
        ("/admin/x", "/admin/x"),
        ("/api/v1?x=1", "/api/v1?x=1"),
        ("/./admin/x", "/admin/x"),
        ("/api/../admin/x", "/admin/x"),
        ("/api/%2e%2E/admin/x", "/admin/x"),
        ("//admin//x", "/admin/x"),
        ("/a/b/../../..", "/"),
        ("/a/./b/", "/a/b/"),
        ("/a/b/..?q=/../", "/a/?q=/../"),
        ("http://reviews:9080/admin/x?y=1", "/admin/x?y=1"),
        ("http://reviews:9080", "/"),
        ("https://h?q", "/?q"),
        ("/", "/"),
    ])
    func normalizesAsIstiosMergeSlashes(_ input: String, _ expected: String) {
        #expect(normalizedRequestTarget(input) == expected)
    }
}
