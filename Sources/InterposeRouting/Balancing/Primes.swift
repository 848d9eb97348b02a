/// Primality helpers for the maglev table size (Envoy rejects a non-prime `table_size`).
enum Primes {
    static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        if n < 4 { return true }
        if n % 2 == 0 || n % 3 == 0 { return false }
        var i = 5
        while i <= n / i {
            if n % i == 0 || n % (i + 2) == 0 { return false }
            i += 6
        }
        return true
    }

    /// The smallest prime >= `n` (2 for anything below 2).
    static func atLeast(_ n: Int) -> Int {
        var c = max(2, n)
        while !isPrime(c) { c += 1 }
        return c
    }
}
