import Crypto
import Foundation
import LifeboatCore
import LifeboatEngine
import Synchronization

/// An in-memory `Node` for unit tests of the cluster workflows: it holds snapshots, an etcd that
/// runs or not, and the dataset each of its directories holds, and it can be told to fail any
/// step (once, or until told otherwise). Every call goes to the cluster's ordered log, so a test
/// can check the order of phases across nodes.
public final class FakeNode: Node {
  public enum Step: String, CaseIterable, Sendable {
    case health, preflight, list, open, save, receive, delete, verify, stop, start, fetch, stage, swap, rollback, finish, confirm
    case takeLease, releaseLease, status
  }

  public struct State: Sendable {
    public var snapshots: [String: NodeSnapshot] = [:]
    public var etcdRunning = true
    /// The dataset in the data dir: `old` before a restore, the snapshot's name after a swap.
    public var data: String? = "old"
    /// The dataset moved aside by a swap (`<data dir>.lifeboat-old-<id>`).
    public var aside: String?
    /// A restore's fetched and staged snapshot names.
    public var fetched: String?
    public var staged: String?
    /// Steps that fail: once (removed when they fire) or always.
    public var failOnce: Set<Step> = []
    public var failAlways: Set<Step> = []
    /// A fetched database that differs from everyone else's.
    public var corruptCopy = false
    public var preflightProblems: [String] = []
    /// Snapshots received with `pruneAfter`.
    public var prunedAfter: [String] = []
    /// The restore lease and the id of the restore whose journal the node keeps.
    public var lease: RestoreLease?
    public var journal: String?
    public var journalSteps: [String] = []
  }

  public let address: String
  let log: FakeCluster.Log
  let lookup: @Sendable (String) -> FakeNode?
  private let state: Mutex<State>

  init(address: String, log: FakeCluster.Log, lookup: @escaping @Sendable (String) -> FakeNode?) {
    self.address = address
    self.log = log
    self.lookup = lookup
    self.state = Mutex(State())
  }

  public var current: State { state.withLock { $0 } }
  public func update(_ change: (inout State) -> Void) { state.withLock { change(&$0) } }
  public func failOnce(_ step: Step) { update { $0.failOnce.insert(step) } }
  public func failAlways(_ step: Step) { update { $0.failAlways.insert(step) } }

  /// Records the call; throws when the step is set to fail.
  private func enter(_ step: Step, _ detail: String = "") throws(LifeboatError) {
    log.append("\(step.rawValue) \(address)\(detail.isEmpty ? "" : " " + detail)")
    let fails = state.withLock { s in
      if s.failAlways.contains(step) { return true }
      return s.failOnce.remove(step) != nil
    }
    if fails { throw LifeboatError.failure("injected \(step.rawValue) failure").on(address) }
  }

  /// What a real node's checks give for the snapshot `name`: the same on every node.
  public static func sha(_ text: String) -> String { SHA256.hash(data: Data(text.utf8)).hexString }

  public static func snapshot(_ name: String, created: Date = Date(), verified: Bool = true) -> NodeSnapshot {
    NodeSnapshot(
      name: name, kind: .archive, size: 100, archiveSHA256: verified ? sha("archive " + name) : nil,
      dbSHA256: verified ? sha("db " + name) : nil, dbSize: verified ? 1000 : nil, revision: verified ? 42 : nil, created: created)
  }

  // MARK: - Node

  public func health() async throws(LifeboatError) -> NodeHealth {
    try enter(.health)
    let s = current
    return NodeHealth(
      address: address, member: "etcd-\(address)", runtime: "fake", etcdRunning: s.etcdRunning, version: "test", schedule: nil,
      restore: s.lease.map { "\($0.line) holds this node" } ?? s.journal.map { "restore \($0) was interrupted" })
  }

  public func preflight(dbSize: UInt64, archiveSize: UInt64) async throws(LifeboatError) -> NodePreflight {
    try enter(.preflight)
    return NodePreflight(address: address, freeSnapshotBytes: 1 << 40, freeDataBytes: 1 << 40, problems: current.preflightProblems)
  }

  public func listSnapshots() async throws(LifeboatError) -> [NodeSnapshot] {
    try enter(.list)
    return current.snapshots.values.sorted { $0.name < $1.name }
  }

  public func openSnapshot(_ name: SnapshotName) async throws(LifeboatError) -> (archive: any ByteSource, manifest: [UInt8]?) {
    try enter(.open, name.value)
    guard let snapshot = current.snapshots[name.value] else { throw LifeboatError.notFound("no \(name)").on(address) }
    return (BytesSource(name: name.archiveFileName, bytes: Array("archive \(name)".utf8)), snapshot.dbSHA256 == nil ? nil : [])
  }

  public func saveSnapshot(_ request: NodeSaveRequest) async throws(LifeboatError) -> NodeSaveReport {
    let name = request.name ?? "rke_etcd_snapshot_fake"
    try enter(.save, name)
    guard current.snapshots[name] == nil else { throw LifeboatError.storage("\(name) already exists").on(address) }
    let snapshot = Self.snapshot(name)
    update { $0.snapshots[name] = snapshot }
    return NodeSaveReport(snapshot: snapshot, member: "etcd-\(address)", endpoint: "https://\(address):2379", noQuorum: false)
  }

  public func receiveSnapshot(_ name: SnapshotName, from peer: String, pruneAfter: Bool) async throws(LifeboatError) -> NodeSnapshot {
    try enter(.receive, name.value)
    guard let source = lookup(peer) else { throw LifeboatError.usage("\(peer) is not an agent of the cluster").on(address) }
    guard let snapshot = source.current.snapshots[name.value], snapshot.dbSHA256 != nil else {
      throw LifeboatError.verification("\(peer) has no verified \(name)").on(address)
    }
    update {
      $0.snapshots[name.value] = snapshot
      if pruneAfter { $0.prunedAfter.append(name.value) }
    }
    return snapshot
  }

  public func deleteSnapshot(_ name: SnapshotName) async throws(LifeboatError) {
    try enter(.delete, name.value)
    let removed = state.withLock { $0.snapshots.removeValue(forKey: name.value) }
    if removed == nil { throw LifeboatError.notFound("snapshot \(name) not found").on(address) }
  }

  public func verifySnapshot(_ name: SnapshotName) async throws(LifeboatError) -> VerifyReport {
    try enter(.verify, name.value)
    guard let s = current.snapshots[name.value] else { throw LifeboatError.notFound("snapshot \(name) not found").on(address) }
    return VerifyReport(
      name: s.name, path: "/snapshots/\(s.name).zip", kind: s.kind, dbSize: s.dbSize ?? 0, dbSHA256: s.dbSHA256 ?? "",
      archiveSHA256: s.archiveSHA256, stateFile: false, hasManifest: s.dbSHA256 != nil, checks: ["fake"])
  }

  public func confirmRestored(_ id: String) async throws(LifeboatError) {
    try enter(.confirm)
    guard current.etcdRunning else { throw LifeboatError.unavailable("etcd is not running").on(address) }
    update { $0.journalSteps.append("check.done") }
  }

  public func takeLease(_ lease: RestoreLease) async throws(LifeboatError) {
    if lease.renewal == true {
      // A renewal (every few seconds while a restore runs) is not a step: never recorded or failed.
      return
    }
    try enter(.takeLease, lease.id)
    try state.withLock { (s) throws(LifeboatError) in
      if let held = s.lease, held.id != lease.id { throw held.refusal("restore \(lease.id)", on: address) }
      if let journal = s.journal, journal != lease.id {
        throw LifeboatError(.restoreInProgress, "restore \(journal) was interrupted on \(address)", node: address)
      }
      s.lease = lease
    }
  }

  public func releaseLease(_ id: String) async throws(LifeboatError) {
    try enter(.releaseLease, id)
    update { s in
      if s.lease?.id == id { s.lease = nil }
      if s.journal == id {
        s.journal = nil
        s.journalSteps = []
      }
    }
  }

  public func restoreStatus() async throws(LifeboatError) -> NodeRestoreStatus {
    try enter(.status)
    let s = current
    let journals = s.journal.map { id in
      [
        NodeRestoreStatus.Journal(
          id: id, name: s.fetched ?? "snap", steps: s.journalSteps, swapped: s.aside != nil, staged: s.staged != nil,
          oldDataDir: "/data.lifeboat-old-\(id)", revision: 42, dbSize: 1000)
      ]
    } ?? []
    var status = NodeRestoreStatus(
      address: address, lease: s.lease, journals: journals, etcd: s.etcdRunning ? EtcdProcess(pid: 1, dataDir: "/data", dataDirArgument: "/data") : nil,
      dataDirProblem: nil)
    // Renewed when taken, as far as a fake can tell.
    status.leaseIdleSeconds = s.lease.map { max(0, Date().timeIntervalSince($0.started)) }
    return status
  }

  public func stopEtcd() async throws(LifeboatError) {
    try enter(.stop)
    update { $0.etcdRunning = false }
  }

  public func startEtcd(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    try enter(.start)
    try state.withLock { (s) throws(LifeboatError) in
      if s.etcdRunning { throw LifeboatError.failure("etcd already runs").on(address) }
      if s.data == nil { throw LifeboatError.failure("no data dir").on(address) }
      s.etcdRunning = true
    }
  }

  public func fetch(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport {
    try enter(.fetch, request.origin == .local ? "local" : "\(request.origin)")
    switch request.origin {
    case .local:
      guard current.snapshots[request.name] != nil else { throw LifeboatError.notFound("snapshot \(request.name) not found").on(address) }
    case .peer(let peer):
      guard lookup(peer)?.current.fetched == request.name else {
        throw LifeboatError.notFound("\(peer) has not fetched \(request.name)").on(address)
      }
    case .s3:
      break
    }
    let db = current.corruptCopy ? Self.sha("corrupt") : Self.sha("db " + request.name)
    if let expected = request.expectedDBSHA256, expected != db {
      throw LifeboatError.verification("the database's SHA-256 is \(db), expected \(expected)").on(address)
    }
    update {
      $0.fetched = request.name
      $0.journal = request.id
      $0.journalSteps.append("fetch.done")
    }
    return FetchReport(
      address: address, archiveSize: 100, archiveSHA256: Self.sha("archive " + request.name), dbSize: 1000, dbSHA256: db,
      trailer: "valid", revision: 42, hasStateFile: false, manifest: nil, stateFile: nil)
  }

  public func stage(_ request: StageRequest) async throws(LifeboatError) {
    try enter(.stage)
    try state.withLock { (s) throws(LifeboatError) in
      guard let fetched = s.fetched else { throw LifeboatError.notFound("nothing fetched").on(address) }
      s.staged = fetched
    }
  }

  public func swap(_ id: String) async throws(LifeboatError) -> SwapReport {
    try enter(.swap)
    return try state.withLock { (s) throws(LifeboatError) in
      guard let staged = s.staged else { throw LifeboatError.failure("nothing staged").on(address) }
      guard !s.etcdRunning else { throw LifeboatError.failure("etcd still runs").on(address) }
      s.aside = s.data
      s.data = staged
      s.staged = nil
      return SwapReport(address: address, oldDataDir: s.aside == nil ? nil : "/data.lifeboat-old-\(id)")
    }
  }

  public func rollback(_ id: String) async throws(LifeboatError) -> RollbackReport {
    try enter(.rollback)
    return state.withLock { s in
      var actions: [String] = []
      if let aside = s.aside {
        if s.etcdRunning {
          s.etcdRunning = false
          actions.append("stopped etcd")
        }
        s.data = aside
        s.aside = nil
        actions.append("moved /data.lifeboat-old-\(id) back to /data")
      }
      s.staged = nil
      return RollbackReport(address: address, actions: actions)
    }
  }

  public func finish(_ id: String) async throws(LifeboatError) {
    try enter(.finish)
    update {
      $0.fetched = nil
      $0.staged = nil
    }
  }
}
