import CInterposeLinux
#if canImport(Glibc)
import Glibc
#endif

/// Runs external programs with posix_spawn. Written by hand rather than with Foundation's Process:
/// the child gets exactly stdin/stdout/stderr and no other descriptor (`closefrom(3)`), so a long-lived
/// child (a listener) can never hold the write end of another command's output pipe open, which would
/// leave that command's reader waiting for an end of file that never comes. (swift-subprocess is
/// async-only; this path is synchronous by design.)
public enum Subprocess {
    /// Output that should go nowhere.
    public static let devNull: Int32 = open("/dev/null", O_RDWR | O_CLOEXEC)

    /// Starts `path` with `argv` (argv[0] included); the child's 0/1/2 are the given descriptors.
    public static func spawn(path: String, argv: [String], stdin: Int32, stdout: Int32, stderr: Int32, environment: [String]? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        cinterpose_spawn_closefrom(&actions, 3)

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        // The child starts with default signal handling and an empty mask, whatever the parent set.
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &none)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        let env = environment ?? currentEnvironment()
        let cEnv = env.map { strdup($0) } + [nil]
        defer { cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attr, cArgs, cEnv)
        guard rc == 0 else { throw SystemError("posix_spawn(\(path))", errno: rc) }
        return pid
    }

    static func currentEnvironment() -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            out.append(String(cString: entry))
            p += 1
        }
        return out
    }

    /// Waits for a child and returns its exit status (128+signal when killed).
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }

    /// Runs to completion, feeding `input` and collecting stdout and stderr.
    public static func run(path: String, argv: [String], input: String?) throws -> (status: Int32, stdout: [UInt8], stderr: [UInt8]) {
        var inPipe: [Int32] = [-1, -1], outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        try syscall("pipe") { cinterpose_pipe_cloexec(&outPipe) }
        try syscall("pipe") { cinterpose_pipe_cloexec(&errPipe) }
        if input != nil { try syscall("pipe") { cinterpose_pipe_cloexec(&inPipe) } }
        let pid: pid_t
        do {
            pid = try spawn(path: path, argv: argv, stdin: input != nil ? inPipe[0] : devNull, stdout: outPipe[1], stderr: errPipe[1])
        } catch {
            for fd in inPipe + outPipe + errPipe where fd >= 0 { close(fd) }
            throw error
        }
        close(outPipe[1]); close(errPipe[1])
        if input != nil { close(inPipe[0]) }

        var pending = Array((input ?? "").utf8)
        var inFD: Int32 = input != nil ? inPipe[1] : -1
        if inFD >= 0 && pending.isEmpty { close(inFD); inFD = -1 }
        if inFD >= 0 { _ = fcntl(inFD, F_SETFL, fcntl(inFD, F_GETFL) | O_NONBLOCK) }
        var out: [UInt8] = [], err: [UInt8] = []
        var open: [Int32: Bool] = [outPipe[0]: true, errPipe[0]: true]
        var buf = [UInt8](repeating: 0, count: 65536)
        // One poll loop for writing stdin and draining both outputs, so no pipe can fill and block the child.
        while open.values.contains(true) || inFD >= 0 {
            var fds = open.filter { $0.value }.map { pollfd(fd: $0.key, events: Int16(POLLIN), revents: 0) }
            if inFD >= 0 { fds.append(pollfd(fd: inFD, events: Int16(POLLOUT), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 { if errno == EINTR { continue }; break }
            for p in fds where p.revents != 0 {
                if p.fd == inFD {
                    let n = pending.withUnsafeBytes { write(inFD, $0.baseAddress, $0.count) }
                    if n > 0 { pending.removeFirst(n) }
                    if n < 0 && errno != EAGAIN || pending.isEmpty { close(inFD); inFD = -1 }
                    continue
                }
                let n = read(p.fd, &buf, buf.count)
                if n > 0 {
                    if p.fd == outPipe[0] { out += buf[0..<n] } else { err += buf[0..<n] }
                } else if n == 0 || errno != EINTR {
                    open[p.fd] = false
                }
            }
        }
        close(outPipe[0]); close(errPipe[0])
        return (wait(pid), out, err)
    }
}
