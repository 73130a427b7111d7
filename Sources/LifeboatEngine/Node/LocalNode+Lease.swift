import Foundation
import LifeboatCore

/// The restore lease and what a restore left on this node.
extension LocalNode {
  var leasePath: String { node.runDir + "/restore.lease.json" }

  /// The lease this node holds, if any (an unreadable lease file counts as held, by "unknown").
  public func currentLease() -> RestoreLease? {
    guard let data = FileManager.default.contents(atPath: leasePath) else { return nil }
    return (try? JSONDecoder.journal.decode(RestoreLease.self, from: data))
      ?? RestoreLease(id: "unknown", snapshot: "unknown", started: .distantPast, origin: "an unreadable \(leasePath)")
  }

  /// Refuses `what` while a restore holds this node (or left a journal behind).
  func refuseDuringRestore(_ what: String) throws(LifeboatError) {
    if let lease = currentLease() { throw lease.refusal(what, on: address) }
    if let id = RestoreJournal.ids(in: node.runDir).first {
      throw LifeboatError(
        .restoreInProgress, "\(what) refused: restore \(id) was interrupted on \(address) (run `lifeboat snapshot restore --recover`)",
        node: address)
    }
  }

  /// Taking a lease this node already holds for the same restore renews it (the file's time).
  public func takeLease(_ lease: RestoreLease) async throws(LifeboatError) {
    try lease.validate()
    // Renewals do not wait for a restore step running on this node.
    if let held = currentLease(), held.id == lease.id {
      utimes(leasePath, nil)
      return
    }
    if lease.renewal == true { return }
    try await steps.run { () async throws(LifeboatError) in
      if let held = currentLease() {
        if held.id == lease.id { return }
        throw held.refusal("restore \(lease.id)", on: address)
      }
      if let id = RestoreJournal.ids(in: node.runDir).first(where: { $0 != lease.id }) {
        throw LifeboatError(
          .restoreInProgress, "restore \(lease.id) refused: restore \(id) was interrupted on \(address) (run `lifeboat snapshot restore --recover`)",
          node: address)
      }
      try makeDirectories(node.runDir)
      let data: Data
      do { data = try JSONEncoder.journal.encode(lease) } catch { throw .failure("cannot encode the lease: \(error)") }
      do throws(LifeboatError) {
        // Never replaces a lease another command took in the same instant.
        try AtomicFile.write([UInt8](data), to: leasePath, mode: 0o600, overwrite: false)
      } catch {
        if let held = currentLease(), held.id != lease.id { throw held.refusal("restore \(lease.id)", on: address) }
        if currentLease() == nil { throw error.on(address) }
      }
    }
  }

  /// Releases the lease of `id` and removes the journal of `id` (the restore, or its recovery,
  /// is over). A lease of another id stays.
  public func releaseLease(_ id: String) async throws(LifeboatError) {
    try RestoreID.validate(id)
    try await steps.run { () async throws(LifeboatError) in
      try files.removeIfPresent(RestoreJournal.Paths(node: node, id: id).journal)
      if let held = currentLease(), held.id == id || held.id == "unknown" { try files.removeIfPresent(leasePath) }
      try syncDirectory(of: leasePath)
    }
  }

  public func restoreStatus() async throws(LifeboatError) -> NodeRestoreStatus {
    var journals: [NodeRestoreStatus.Journal] = []
    for id in RestoreJournal.ids(in: node.runDir) {
      let paths = RestoreJournal.Paths(node: node, id: id)
      guard let journal = try RestoreJournal.loadIfPresent(paths, address: address) else { continue }
      journals.append(
        NodeRestoreStatus.Journal(
          id: id, name: journal.name, steps: journal.steps, swapped: NodeFiles.exists(journal.oldDataDir),
          staged: journal.stagingFinished && isDirectory(journal.stagingDir + "/member"), oldDataDir: journal.oldDataDir,
          revision: journal.revision, dbSize: journal.dbSize))
    }
    let process = node.listeningProcess()
    var status = NodeRestoreStatus(
      address: address, lease: currentLease(), journals: journals, etcd: process, dataDirProblem: dataDirProblem(process))
    if status.lease != nil, let modified = (try? FileManager.default.attributesOfItem(atPath: leasePath))?[.modificationDate] as? Date {
      status.leaseIdleSeconds = max(0, Date().timeIntervalSince(modified))
    }
    return status
  }

  /// Why the etcd serving this node is not the one it should be: it serves from another data dir
  /// (an old or staged one). Decided by the identity of the db file it holds open, which also
  /// works for an etcd in a container; by path only when that cannot be read. nil when it is
  /// right, or when this host cannot tell.
  func dataDirProblem(_ process: EtcdProcess?) -> String? {
    guard let process else { return nil }
    if let open = process.database {
      if open == FileIdentity.of(node.dataDir + "/member/snap/db") { return nil }
      let place = hostDirectory(holding: open) ?? process.dataDir.map { "\($0) (as the process sees it)" } ?? "another directory"
      return "etcd (PID \(process.pid)) serves from \(place), not from the data dir \(node.dataDir)"
    }
    guard context.config.lifeboat.runtime.kind != .docker, let open = process.dataDir else { return nil }
    let expected = URL(fileURLWithPath: node.dataDir).standardizedFileURL.resolvingSymlinksInPath().path
    let actual = URL(fileURLWithPath: open).standardizedFileURL.resolvingSymlinksInPath().path
    guard actual != expected else { return nil }
    return "etcd (PID \(process.pid)) serves from \(open), not from the data dir \(node.dataDir)"
  }

  /// Which of the directories a restore leaves next to the data dir (old, failed, staged) holds
  /// the db with this identity.
  func hostDirectory(holding database: FileIdentity) -> String? {
    let parent = parentDirectory(of: node.dataDir)
    let base = (node.dataDir as NSString).lastPathComponent
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
    for entry in entries where entry.contains("lifeboat") {
      for candidate in ["\(parent)/\(entry)", "\(parent)/\(entry)/\(base)"]
      where FileIdentity.of(candidate + "/member/snap/db") == database {
        return candidate
      }
    }
    return nil
  }

  /// After the cluster check: this node's etcd runs and serves from the data dir; journals it.
  public func confirmRestored(_ id: String) async throws(LifeboatError) {
    try await steps.run { () async throws(LifeboatError) in
      let paths = RestoreJournal.Paths(node: node, id: id)
      var journal = try RestoreJournal.load(paths, address: address)
      let process = node.listeningProcess()
      guard let process else { throw LifeboatError.unavailable("no etcd listens on \(node.clientURL)").on(address) }
      if let problem = dataDirProblem(process) { throw LifeboatError.verification(problem).on(address) }
      try journal.record("check.done", "PID \(process.pid)", paths: paths)
      Failpoints.crash("agent", at: "check.done")
    }
  }
}
