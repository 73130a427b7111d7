import Foundation
import LifeboatCore

/// The restore steps after fetch on this node: stage, swap, rollback, finish; each journaled
/// before and after it acts.
extension LocalNode {
  func journal(_ id: String) throws(LifeboatError) -> (RestoreJournal, RestoreJournal.Paths) {
    let paths = RestoreJournal.Paths(node: node, id: id)
    return (try RestoreJournal.load(paths, address: address), paths)
  }

  /// The journal of the restore that holds this node's lease, if any (etcd stops and starts are
  /// part of it then).
  func leaseJournal() -> (RestoreJournal, RestoreJournal.Paths)? {
    guard let lease = currentLease() else { return nil }
    return try? journal(lease.id)
  }

  /// The archive a restore fetched, for serving to the other nodes.
  public func restoreArchivePath(_ id: String) throws(LifeboatError) -> String {
    guard let path = try journal(id).0.archivePath else { throw LifeboatError.notFound("restore \(id) has fetched nothing").on(address) }
    return path
  }

  public func stage(_ request: StageRequest) async throws(LifeboatError) {
    try await steps.run { () async throws(LifeboatError) in
      do throws(LifeboatError) { try await stageUnlocked(request) } catch { throw error.on(address) }
    }
  }

  func stageUnlocked(_ request: StageRequest) async throws(LifeboatError) {
    var (journal, paths) = try journal(request.id)
    guard let database = journal.databasePath else { throw .notFound("restore \(request.id) has fetched nothing") }
    // The staged data dir is about the db's size, next to the live data dir: check with the real
    // size now (the plan could only estimate it for archives without a manifest).
    let dbSize = regularFileInfo(database)?.size ?? 0
    let free = NodeFiles.freeBytes(NodeFiles.existingAncestor(parentDirectory(of: node.dataDir)))
    let needed = NodeFiles.sum([dbSize, dbSize / 20, 64 << 20])
    guard free >= needed else {
      throw .storage("not enough free disk next to \(node.dataDir) to stage the restore: \(free) bytes free, \(needed) needed")
    }
    if Failpoints.fire("stage.slow") { try? await Task.sleep(for: .seconds(2)) }
    try journal.record("stage.begun", paths.stagingDir, paths: paths)
    // The restore tool creates the staging dir inside a directory of its own, next to the data
    // dir (the same file system, so the swap is a rename; the docker runtime binds only it).
    try files.removeIfPresent(paths.stagingParent)
    try makeDirectories(paths.stagingParent)
    try await runtime.restore(
      RestoreInvocation(
        database: database, stagingDir: journal.stagingDir, memberName: node.memberName,
        initialCluster: request.initialCluster, token: request.token, peerURL: node.peerURL,
        skipHashCheck: journal.skipHashCheck, id: request.id))
    guard isDirectory(journal.stagingDir + "/member") else {
      throw .failure("the restore tool left no member directory in \(journal.stagingDir)")
    }
    _ = try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: journal.stagingDir)
    try syncDirectory(of: journal.stagingDir)
    try journal.record("stage.done", paths: paths)
    Failpoints.crash("agent", at: "stage.done")
  }

  public func swap(_ id: String) async throws(LifeboatError) -> SwapReport {
    try await steps.run { () async throws(LifeboatError) in
      var (journal, paths) = try journal(id)
      guard journal.stagingFinished, isDirectory(journal.stagingDir) else {
        throw LifeboatError.failure("nothing staged for restore \(id) (the restore tool did not finish here)").on(address)
      }
      if await runtime.isRunning() == true { throw LifeboatError.failure("etcd still runs; stop it before the swap").on(address) }
      guard !NodeFiles.exists(journal.oldDataDir) else {
        throw LifeboatError.failure("\(journal.oldDataDir) already exists").on(address)
      }
      // The intent first: whatever happens from here, a rollback can tell what to undo.
      journal.swapping = true
      journal.hadDataDir = NodeFiles.exists(node.dataDir)
      try journal.record("swap.begun", paths: paths)
      var old: String?
      if journal.hadDataDir {
        try files.rename(node.dataDir, journal.oldDataDir)
        try journal.record("swap.moved-old", "\(node.dataDir) -> \(journal.oldDataDir)", paths: paths)
        old = journal.oldDataDir
      }
      try files.rename(journal.stagingDir, node.dataDir)
      try syncDirectory(of: node.dataDir)
      try journal.record("swap.done", "\(journal.stagingDir) -> \(node.dataDir)", paths: paths)
      Failpoints.crash("agent", at: "swap.moved")
      return SwapReport(address: address, oldDataDir: old)
    }
  }

  /// Decides from the disk, not from what the journal last recorded: the old data dir exists
  /// exactly when a swap moved it aside and it was not moved back yet.
  public func rollback(_ id: String) async throws(LifeboatError) -> RollbackReport {
    try await steps.run { () async throws(LifeboatError) in
      var (journal, paths) = try journal(id)
      try journal.record("rollback.begun", paths: paths)
      var actions: [String] = []
      let oldExists = NodeFiles.exists(journal.oldDataDir)
      let restoredWithoutOld = journal.swapping && !journal.hadDataDir && NodeFiles.exists(node.dataDir)
      if oldExists || restoredWithoutOld {
        if await runtime.isRunning() != false {
          try await stopEtcdUnlocked()
          actions.append("stopped etcd")
        }
        let failed = node.dataDir + ".lifeboat-failed-" + id
        if NodeFiles.exists(node.dataDir) {
          try files.removeIfPresent(failed)
          try files.rename(node.dataDir, failed)
        }
        if oldExists {
          try files.rename(journal.oldDataDir, node.dataDir)
          try syncDirectory(of: node.dataDir)
          actions.append("moved \(journal.oldDataDir) back to \(node.dataDir)")
        } else {
          actions.append("removed the restored data dir (the node had none before)")
        }
        // Only the restored copy is deleted, and only once the old one is back in place.
        try files.removeIfPresent(failed)
      }
      await runtime.removeRestoreLeftovers(id: id)
      try files.removeIfPresent(paths.stagingParent)
      journal.swapping = false
      try journal.record("rollback.done", actions.joined(separator: "; "), paths: paths)
      return RollbackReport(address: address, actions: actions)
    }
  }

  /// Removes the restore's downloads and staging leftovers, with or without a journal (a failed
  /// fetch leaves a partial one). Never touches the data dir, the old data dir or the journal.
  public func finish(_ id: String) async throws(LifeboatError) {
    try RestoreID.validate(id)
    Failpoints.crash("agent", at: "cleanup")
    let paths = RestoreJournal.Paths(node: node, id: id)
    try await steps.run { () async throws(LifeboatError) in
      await runtime.removeRestoreLeftovers(id: id)
      try files.removeIfPresent(paths.stagingParent)
      try files.removeIfPresent(paths.work)
    }
  }
}
