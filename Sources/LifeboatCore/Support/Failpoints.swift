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
public enum Failpoints {
  private static let state = Mutex<[String: Bool]?>(nil)

  /// True when the failpoint `name` is switched on (and, unless `always`, uses it up).
  public static func fire(_ name: String) -> Bool {
    #if LIFEBOAT_FAILPOINTS
      return state.withLock { table in
        if table == nil {
          var parsed: [String: Bool] = [:]
          let spec = ProcessInfo.processInfo.environment["LIFEBOAT_FAILPOINTS"] ?? ""
          for item in spec.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            parsed[parts[0]] = parts.count > 1 && parts[1] == "always"
          }
          table = parsed
        }
        guard let always = table?[name] else { return false }
        if !always { table?[name] = nil }
        return true
      }
    #else
      return false
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
