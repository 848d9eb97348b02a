import NIOCore
import Testing

@testable import InterposeRedis

@Suite struct CircuitBreakerTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func opensAfterThresholdConsecutiveFailures() {
        var breaker = CircuitBreaker(threshold: 3, cooldown: .milliseconds(500))
        #expect(breaker.admit(now: t0) == .allow)
        var opened = [breaker.recordFailure(now: t0), breaker.recordFailure(now: t0)]
        breaker.recordSuccess()  // the count is of consecutive failures
        opened += [breaker.recordFailure(now: t0), breaker.recordFailure(now: t0), breaker.recordFailure(now: t0)]
        #expect(opened == [false, false, false, false, true])
        #expect(breaker.isOpen)
        let admission = breaker.admit(now: t0 + .milliseconds(499))
        #expect(admission == .reject)
    }

    @Test func halfOpenAllowsOneProbe() {
        var breaker = CircuitBreaker(threshold: 1, cooldown: .milliseconds(500))
        breaker.recordFailure(now: t0)
        let later = t0 + .milliseconds(500)
        let admissions = [breaker.admit(now: later), breaker.admit(now: later)]
        #expect(admissions == [.probe, .reject])
        breaker.recordSuccess()
        #expect(!breaker.isOpen)
        let afterSuccess = breaker.admit(now: later)
        #expect(afterSuccess == .allow)
    }

    @Test func failedProbeReopensForAnotherCooldown() {
        var breaker = CircuitBreaker(threshold: 1, cooldown: .milliseconds(500))
        breaker.recordFailure(now: t0)
        let probeTime = t0 + .milliseconds(600)
        let probe = breaker.admit(now: probeTime)
        let reopened = breaker.recordFailure(now: probeTime)
        let admissions = [breaker.admit(now: probeTime + .milliseconds(499)), breaker.admit(now: probeTime + .milliseconds(500))]
        #expect(probe == .probe)
        #expect(reopened)
        #expect(admissions == [.reject, .probe])
    }

    @Test func lostProbeIsReplacedAfterACooldown() {
        var breaker = CircuitBreaker(threshold: 1, cooldown: .milliseconds(100))
        breaker.recordFailure(now: t0)
        let admissions = [100, 150, 200].map { breaker.admit(now: t0 + .milliseconds($0)) }
        #expect(admissions == [.probe, .reject, .probe])
    }

    @Test func backoffDoublesToTheMaximumAndResets() {
        var backoff = ReconnectBackoff(initial: .milliseconds(10), maximum: .seconds(1))
        #expect(backoff.mayConnect(now: t0))
        var now = t0
        var waits: [Int64] = []
        for _ in 0..<9 {
            backoff.recordFailure(now: now)
            let wait = backoff.notBefore - now
            #expect(!backoff.mayConnect(now: now + wait - .nanoseconds(1)))
            #expect(backoff.mayConnect(now: now + wait))
            waits.append(wait.nanoseconds / 1_000_000)
            now = now + wait
        }
        #expect(waits == [10, 20, 40, 80, 160, 320, 640, 1000, 1000])
        backoff.recordSuccess()
        #expect(backoff.mayConnect(now: now))
        backoff.recordFailure(now: now)
        #expect(backoff.notBefore - now == .milliseconds(10))
    }
}
