import EtcdClient
import Foundation
import LifeboatCore
import Logging
import SnapshotStores

/// How a node reads from another node's agent (implemented by the agent's client).
public protocol PeerClient: Sendable {
  /// The archive a peer fetched for restore `id`.
  func restoreArchive(at peer: String, id: String) async throws(LifeboatError) -> any ByteSource
  /// A snapshot in a peer's snapshot directory, and its manifest (nil when it has none).
  func snapshot(at peer: String, name: SnapshotName) async throws(LifeboatError) -> (archive: any ByteSource, manifest: [UInt8]?)
}

/// The node Lifeboat runs on: its snapshot directory, its data directory and its etcd runtime.
/// Keeps no state in memory: a restore's files are under `<run dir>/restore-<id>/`, with a
/// `session.json` (`RestoreSession`), so an agent restarted mid-restore can still roll back.
/// Its jobs, one file each: health and preflight (here), snapshot files (`+Snapshots`), the
/// fetch step (`+Fetch`), and stage, swap, rollback and finish (`+Swap`).
public struct LocalNode: Node {
  public let context: ClusterContext
  public let node: EtcdNode
  public let runtime: any EtcdRuntime
  public let peers: any PeerClient
  public var logger: Logger
  /// The restore steps and etcd stop/start never overlap on one node (a timed-out client may
  /// send a rollback while a swap still runs).
  let steps = AsyncLock()

  public init(context: ClusterContext, node: EtcdNode, peers: any PeerClient, logger: Logger = Logger(label: "lifeboat.node")) {
    self.context = context
    self.node = node
    self.runtime = EtcdRuntimes.make(context.config.lifeboat.runtime, node: node, config: context.config, state: context.state)
    self.peers = peers
    self.logger = logger
  }

  public var address: String { node.address }
  var store: LocalStore { LocalStore(directory: node.snapshotDir) }
  var catalog: SnapshotCatalog { SnapshotCatalog(store: store) }
  var files: NodeFiles { NodeFiles(address: address) }

  public func health() async throws(LifeboatError) -> NodeHealth {
    let process = node.listeningProcess()
    var running = await runtime.isRunning()
    if running != true, process != nil, context.config.lifeboat.runtime.kind == .supervised {
      running = true  // something serves the member's port: never report it stopped
    }
    var restore = currentLease().map { "\($0.line) holds this node" }
    if restore == nil, let id = RestoreJournal.ids(in: node.runDir).first { restore = "restore \(id) was interrupted" }
    return NodeHealth(
      address: address, member: node.memberName, runtime: runtime.summary, etcdRunning: running,
      version: LifeboatVersion.current, schedule: nil, etcdProcess: process, dataDirProblem: dataDirProblem(process),
      restore: restore, snapshotDirID: snapshotDirID(), s3: s3Summary(), encryption: context.config.lifeboat.encryptionSummary)
  }

  /// `s3://bucket/folder, keys from <source>[, proxy <url> (<origin>)]`, for status.
  func s3Summary() -> String? {
    do throws(LifeboatError) {
      guard let s3 = try context.s3Configuration() else { return nil }
      return "\(s3.location), keys from \(s3.credentials.source)" + (s3.proxy.map { ", proxy \($0) (\($0.origin))" } ?? "")
    } catch {
      return "NOT USABLE: \(error.message)"
    }
  }

  /// The id in `<snapshot dir>/.lifeboat-dir-id`, written once (never replaced) by the first
  /// agent that looks; nil while the directory does not exist.
  func snapshotDirID() -> String? {
    let path = node.snapshotDir + "/.lifeboat-dir-id"
    func read() -> String? {
      FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) }
    }
    if let id = read(), !id.isEmpty { return id }
    guard isDirectory(node.snapshotDir) else { return nil }
    // Two agents sharing the directory may look at once: each writes its own temporary file and
    // links it to the final name; link(2) never replaces, so exactly one id wins for both.
    let temporary = path + "." + UUID().uuidString + ".tmp"
    if FileManager.default.createFile(atPath: temporary, contents: Data((UUID().uuidString + "\n").utf8)) {
      _ = link(temporary, path)
      unlink(temporary)
    }
    return read()
  }

  public func preflight(dbSize: UInt64, archiveSize: UInt64) async throws(LifeboatError) -> NodePreflight {
    var problems = await runtime.preflightProblems(dbSize: dbSize)
    let dataParent = parentDirectory(of: node.dataDir)
    let freeSnapshot = NodeFiles.freeBytes(NodeFiles.existingAncestor(node.runDir))
    let freeData = NodeFiles.freeBytes(NodeFiles.existingAncestor(dataParent))
    // The download (archive) and the unzipped db go to the run dir, the staged data dir (about
    // the db's size) next to the data dir. Sizes come from callers: add without overflowing.
    let sameDevice =
      NodeFiles.deviceID(NodeFiles.existingAncestor(node.runDir)) == NodeFiles.deviceID(NodeFiles.existingAncestor(dataParent))
    let needRun = NodeFiles.sum([archiveSize, dbSize, sameDevice ? dbSize : 0])
    if freeSnapshot < needRun {
      problems.append("not enough free disk in \(node.runDir): \(freeSnapshot) bytes free, \(needRun) needed")
    }
    if !sameDevice, freeData < dbSize {
      problems.append("not enough free disk next to \(node.dataDir): \(freeData) bytes free, \(dbSize) needed")
    }
    if !isDirectory(node.dataDir) {
      problems.append("the data directory \(node.dataDir) does not exist")
    }
    do { try checkDirectoryCreatable(node.runDir) } catch { problems.append(error.message) }
    if context.config.lifeboat.etcdTLS {
      for name in ["kube-ca", node.certificateName] {
        guard let certificate = context.state?.certificates[name] else {
          problems.append("no certificate \(name) in the state file"); continue
        }
        for path in [certificate.path, name == "kube-ca" ? nil : certificate.keyPath].compactMap({ $0 })
        where !FileManager.default.fileExists(atPath: path) {
          problems.append("TLS file \(path) is missing")
        }
      }
    }
    return NodePreflight(address: address, freeSnapshotBytes: freeSnapshot, freeDataBytes: freeData, problems: problems)
  }

  /// During a restore (this node holds its lease) the stop is journaled.
  public func stopEtcd() async throws(LifeboatError) {
    try await steps.run { () async throws(LifeboatError) in
      guard let (found, paths) = leaseJournal() else { return try await stopEtcdUnlocked() }
      var journal = found
      try journal.record("stop.begun", paths: paths)
      try await stopEtcdUnlocked()
      try journal.record("stop.done", paths: paths)
      Failpoints.crash("agent", at: "swap.stopped")
    }
  }

  func stopEtcdUnlocked() async throws(LifeboatError) {
    do { try await runtime.stop() } catch { throw error.on(address, step: "stop etcd") }
  }

  /// During a restore the start is journaled, with the PID and data dir of the etcd started.
  public func startEtcd(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    // From a request body: checked before it reaches etcd's command line (16 TiB at most).
    if let quota = quotaBackendBytes, quota < 0 || quota > 1 << 44 {
      throw LifeboatError.usage("a backend quota of \(quota) bytes is out of range").on(address)
    }
    try await steps.run { () async throws(LifeboatError) in
      var journaled = leaseJournal()
      if let (found, paths) = journaled {
        var journal = found
        try journal.record("start.begun", node.dataDir, paths: paths)
        journaled = (journal, paths)
      }
      do throws(LifeboatError) { try await runtime.start(quotaBackendBytes: quotaBackendBytes) } catch {
        throw error.on(address, step: "start etcd")
      }
      if let (found, paths) = journaled {
        var journal = found
        let pid = await runtime.currentPID()
        journal.started.append(.init(pid: pid, dataDir: node.dataDir, at: Date()))
        try journal.record("start.done", pid.map { "PID \($0)" }, paths: paths)
        Failpoints.crash("agent", at: "swap.started")
      }
    }
  }
}
