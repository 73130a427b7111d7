import Foundation
import Synchronization

/// Named failpoints, as etcd's gofail: tests break a chosen step on a chosen node without fakes.
/// Compiled only into debug builds (the `LIFEBOAT_FAILPOINTS` define of Package.swift) and
/// switched on per process by the environment variable `LIFEBOAT_FAILPOINTS`, a comma-separated
/// list of names; each fires once, or every time when written `name=always`. The code at a
/// failpoint acts on the real thing (flips a byte of a file on disk, starts etcd with a flag it
/// rejects); it never returns a made-up error.
///
/// Failpoints in the code base:
/// - `fetch.corrupt`: after a node has downloaded a snapshot for restore, one byte of the
///   downloaded archive is flipped on disk before it is verified.
/// - `start.exit`: the next etcd start (supervised runtime) passes a flag etcd rejects, so etcd exits.
/// - `stage.slow`: the stage step sleeps 2 seconds first.
/// - `agent.crash=<point>` and `cli.crash=<point>`: the agent (or the operator's command) ends
///   with `_exit(137)`, as a SIGKILL would, at that point of a restore: `fetch.done`,
///   `stage.done`, `swap.stopped` (after etcd stopped), `swap.moved` (after the data dirs
///   moved), `swap.started` (after etcd started), `check.done`.
public enum Failpoints {
  /// Each switched-on name and its value (`always`, a crash point, or empty).
  private static let state = Mutex<[String: String]?>(nil)

  private static func withTable<R>(_ body: (inout [String: String]) -> R) -> R {
    state.withLock { table in
      if table == nil {
        var parsed: [String: String] = [:]
        let spec = ProcessInfo.processInfo.environment["LIFEBOAT_FAILPOINTS"] ?? ""
        for item in spec.split(separator: ",") {
          let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
          parsed[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        table = parsed
      }
      return body(&table!)
    }
  }

  /// True when the failpoint `name` is switched on (and, unless `always`, uses it up).
  public static func fire(_ name: String) -> Bool {
    #if LIFEBOAT_FAILPOINTS
      return withTable { table in
        guard let value = table[name] else { return false }
        if value != "always" { table[name] = nil }
        return true
      }
    #else
      return false
    #endif
  }

  /// Ends the process at once (`_exit(137)`, no cleanup, as SIGKILL) when `<role>.crash` names
  /// `point`: the crash tests of restore and recovery.
  public static func crash(_ role: String, at point: String) {
    #if LIFEBOAT_FAILPOINTS
      let hit = withTable { table in table["\(role).crash"] == point }
      if hit {
        FileHandle.standardError.write(Data("lifeboat: failpoint \(role).crash=\(point): exiting\n".utf8))
        _exit(137)
      }
    #endif
  }

  /// Whether this build has failpoints at all.
  public static var compiledIn: Bool {
    #if LIFEBOAT_FAILPOINTS
      true
    #else
      false
    #endif
  }
}
