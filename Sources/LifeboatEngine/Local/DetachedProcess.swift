#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import LifeboatCore

/// Starts long-running processes that outlive the command that started them (their own session,
/// stdin from /dev/null, output appended to a log file), and stops them by PID.
public enum DetachedProcess {
  /// Starts `executable` with `arguments`; returns its PID.
  public static func spawn(
    executable: String, arguments: [String], logFile: String, environment: [String: String] = [:]
  ) throws(LifeboatError) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, logFile, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // Nothing else leaks into the long-running child: an inherited pipe would keep whoever
    // reads our output waiting for an end that never comes.
    for fd in openDescriptors() where fd > 2 {
      posix_spawn_file_actions_addclose(&actions, fd)
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // A new session: no controlling terminal, no SIGHUP when the starting shell goes away.
    posix_spawnattr_setflags(&attributes, Int16(posixSpawnSetSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let envStrings = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
    let envp = envStrings.map { strdup($0) } + [nil]
    defer { envp.forEach { free($0) } }
    var pid: pid_t = 0
    let status = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    guard status == 0 else { throw .failure("cannot start \(executable): \(errnoDescription(status))") }
    return pid
  }

  /// Whether `pid` is alive (a zombie counts as gone; our own zombies are reaped).
  public static func isRunning(_ pid: pid_t) -> Bool {
    var status: Int32 = 0
    if waitpid(pid, &status, WNOHANG) == pid { return false }
    guard kill(pid, 0) == 0 || errno == EPERM else { return false }
    if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    {
      let state = stat[stat.index(close, offsetBy: 2)...].first
      return state != "Z" && state != "X"
    }
    return true
  }

  /// The command line of `pid` from /proc, or nil when it is gone.
  public static func commandLine(_ pid: pid_t) -> [String]? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
    return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
  }

  /// Sends SIGTERM, waits up to `timeout`, then SIGKILL. Returns true when the process is gone.
  @discardableResult
  public static func stop(_ pid: pid_t, timeout: Duration = .seconds(10)) async -> Bool {
    guard isRunning(pid) else { return true }
    kill(pid, SIGTERM)
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      if !isRunning(pid) { return true }
      try? await Task.sleep(for: .milliseconds(50))
    }
    kill(pid, SIGKILL)
    for _ in 0..<100 {
      if !isRunning(pid) { return true }
      try? await Task.sleep(for: .milliseconds(50))
    }
    return false
  }

  /// This process's open file descriptors, from /proc/self/fd.
  static func openDescriptors() -> [Int32] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.compactMap { Int32($0) }.filter { fcntl($0, F_GETFD) != -1 }
  }

  /// SIGKILL at once (tests: a member dying mid-stream).
  public static func kill9(_ pid: pid_t) {
    kill(pid, SIGKILL)
  }
}

/// glibc's `POSIX_SPAWN_SETSID` (spawn.h, since glibc 2.26); Swift does not import it because
/// glibc hides it behind `_GNU_SOURCE`.
private let posixSpawnSetSID: Int32 = 0x80
