/// Decides whether a percentage-gated action happens for one request: Istio `mirrorPercentage`
/// (and fault `percentage`).
///
/// Istio turns the percentage into an Envoy `FractionalPercent` with denominator `MILLION` and
/// numerator `uint32(percent * 10000)` (truncated); Envoy then fires when `random % 1_000_000 <
/// numerator`. This does the same, so the precision is 0.0001% and e.g. 0.00001% never fires.
/// Values <= 0 (and NaN) never fire; values >= 100 always fire.
public struct PercentSampler: Sendable {
    public static let denominator: UInt64 = 1_000_000

    /// Istio's numerator over a million for `percent`, clamped to `0...1_000_000`.
    public static func numerator(percent: Double) -> UInt64 {
        guard percent > 0 else { return 0 }   // also NaN
        if percent >= 100 { return denominator }
        return UInt64(percent * 10_000)
    }

    public static func sample<R: RandomNumberGenerator>(percent: Double, using rng: inout R) -> Bool {
        let n = numerator(percent: percent)
        if n == 0 { return false }
        if n >= denominator { return true }
        return UInt64.random(in: 0..<denominator, using: &rng) < n
    }
}
