import Foundation
import LifeboatCore

/// The cluster-wide "one restore at a time" lock. etcd may be down during a restore, so the lock
/// lives with the agents: a file `<run dir>/restore.lease.json` on every node, taken on all nodes
/// (in config order) or on none. While any node holds one, a second restore, `save --config`, a
/// prune and every recurring run are refused (exit 9) with `line`.
public struct RestoreLease: Codable, Sendable, Equatable {
  public var id: String
  public var snapshot: String
  public var started: Date
  /// Where the operator's command runs: host name and PID.
  public var origin: String
  /// The same, for `recover` to tell whether that command still runs (absent in older leases).
  public var host: String?
  public var pid: Int32?
  /// A renewal: refresh the lease where this restore holds it, never take it anew (a renewal
  /// arriving after the release must not bring the lease back).
  public var renewal: Bool?

  public init(
    id: String, snapshot: String, started: Date = Date(), origin: String = RestoreLease.thisProcess,
    host: String? = ProcessInfo.processInfo.hostName, pid: Int32? = getpid()
  ) {
    self.host = host
    self.pid = pid
    self.id = id
    self.snapshot = snapshot
    // Whole seconds: the lease travels and is stored as RFC 3339 text and must compare equal.
    self.started = Date(timeIntervalSince1970: started.timeIntervalSince1970.rounded(.down))
    self.origin = origin
  }

  public static var thisProcess: String { "\(ProcessInfo.processInfo.hostName) (PID \(getpid()))" }

  /// A lease from a request body: printable text of sane length only (it is printed by `status`
  /// and `recover`, and it names a snapshot).
  public func validate() throws(LifeboatError) {
    try RestoreID.validate(id)
    for (field, value) in [("snapshot", snapshot), ("origin", origin), ("host", host ?? "")] {
      // Control and format characters (escape sequences, right-to-left overrides) and line or
      // paragraph separators would be printed by `status` and `recover` as they are.
      let unprintable: Set<Unicode.GeneralCategory> = [.control, .format, .lineSeparator, .paragraphSeparator]
      guard value.utf8.count <= 256, !value.unicodeScalars.contains(where: { unprintable.contains($0.properties.generalCategory) }) else {
        throw .usage("the lease's \(field) must be at most 256 bytes of printable text")
      }
    }
    if let pid, pid < 0 { throw .usage("the lease's pid \(pid) is out of range") }
  }

  /// Whether the command that holds this lease may still run, as far as this host can tell: on
  /// this host, a live (not zombie) `lifeboat` process with its PID (nil when the lease names
  /// another host or no PID). A PID reused by another program is not the holder.
  public var holderRunsHere: Bool? {
    guard let host, host == ProcessInfo.processInfo.hostName, let pid, pid > 0 else { return nil }
    if pid == getpid() { return false }
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
    // "pid (comm) S ...": the state follows the last ')'.
    if let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z") {
      return false
    }
    guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
    return String(decoding: cmdline, as: UTF8.self).contains("lifeboat")
  }

  /// One line naming the restore: id, snapshot, when and from where it started.
  public var line: String {
    let formatter = ISO8601DateFormatter()
    return "restore \(id) of \(snapshot), started \(formatter.string(from: started)) from \(origin)"
  }

  /// The refusal for an operation that must wait for this restore.
  public func refusal(_ what: String, on node: String) -> LifeboatError {
    LifeboatError(
      .restoreInProgress,
      "\(what) refused: \(line) holds \(node) (in progress, or interrupted: run `lifeboat snapshot restore --recover`)",
      node: node)
  }
}

/// What a node holds of a restore, read from its lease, its journals and its disk: what the
/// recovery decides from.
public struct NodeRestoreStatus: Codable, Sendable, Equatable {
  public var address: String
  public var lease: RestoreLease?
  public var journals: [Journal]
  /// The etcd serving the node (found by its port) and whether it uses the expected data dir.
  public var etcd: EtcdProcess?
  public var dataDirProblem: String?
  /// Seconds since the lease holder last renewed the lease (by the node's own clock): a running
  /// restore renews it every few seconds.
  public var leaseIdleSeconds: Double?

  public struct Journal: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// The steps recorded, in order (`fetch.done`, `swap.moved-old`, ...).
    public var steps: [String]
    /// The restored data is in place: the old data dir is aside (`<data dir>.lifeboat-old-<id>`).
    public var swapped: Bool
    /// A staged data dir is ready to be moved in.
    public var staged: Bool
    public var oldDataDir: String
    /// The snapshot's revision, once fetched.
    public var revision: Int64?
    public var dbSize: UInt64?

    public init(
      id: String, name: String, steps: [String], swapped: Bool, staged: Bool, oldDataDir: String, revision: Int64? = nil,
      dbSize: UInt64? = nil
    ) {
      self.dbSize = dbSize
      self.id = id
      self.name = name
      self.steps = steps
      self.swapped = swapped
      self.staged = staged
      self.oldDataDir = oldDataDir
      self.revision = revision
    }
  }

  public init(address: String, lease: RestoreLease?, journals: [Journal], etcd: EtcdProcess?, dataDirProblem: String?) {
    self.address = address
    self.lease = lease
    self.journals = journals
    self.etcd = etcd
    self.dataDirProblem = dataDirProblem
  }

  /// Nothing of a restore is left on the node.
  public var isClear: Bool { lease == nil && journals.isEmpty }
}
