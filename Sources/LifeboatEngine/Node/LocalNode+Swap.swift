import Foundation
import LifeboatCore

/// The restore steps after fetch on this node: stage, swap, rollback, finish.
extension LocalNode {
  func session(_ id: String) throws(LifeboatError) -> (RestoreSession, RestoreSession.Paths) {
    let paths = RestoreSession.Paths(node: node, id: id)
    return (try RestoreSession.load(paths, address: address), paths)
  }

  /// The archive a restore fetched, for serving to the other nodes.
  public func restoreArchivePath(_ id: String) throws(LifeboatError) -> String { try session(id).0.archivePath }

  public func stage(_ request: StageRequest) async throws(LifeboatError) {
    try await steps.run { () async throws(LifeboatError) in
      do throws(LifeboatError) { try await stageUnlocked(request) } catch { throw error.on(address) }
    }
  }

  func stageUnlocked(_ request: StageRequest) async throws(LifeboatError) {
    let (session, paths) = try session(request.id)
    // The staged data dir is about the db's size, next to the live data dir: check with the real
    // size now (the plan could only estimate it for archives without a manifest).
    let dbSize = regularFileInfo(session.databasePath)?.size ?? 0
    let free = NodeFiles.freeBytes(NodeFiles.existingAncestor(parentDirectory(of: node.dataDir)))
    let needed = NodeFiles.sum([dbSize, dbSize / 20, 64 << 20])
    guard free >= needed else {
      throw .storage("not enough free disk next to \(node.dataDir) to stage the restore: \(free) bytes free, \(needed) needed")
    }
    if Failpoints.fire("stage.slow") { try? await Task.sleep(for: .seconds(2)) }
    // The restore tool creates the staging dir inside a directory of its own, next to the data
    // dir (the same file system, so the swap is a rename; the docker runtime binds only it).
    try files.removeIfPresent(paths.stagingParent)
    try makeDirectories(paths.stagingParent)
    try await runtime.restore(
      RestoreInvocation(
        database: session.databasePath, stagingDir: session.stagingDir, memberName: node.memberName,
        initialCluster: request.initialCluster, token: request.token, peerURL: node.peerURL,
        skipHashCheck: session.skipHashCheck))
    guard isDirectory(session.stagingDir + "/member") else {
      throw .failure("the restore tool left no member directory in \(session.stagingDir)")
    }
    _ = try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: session.stagingDir)
  }

  public func swap(_ id: String) async throws(LifeboatError) -> SwapReport {
    try await steps.run { () async throws(LifeboatError) in
      var (session, paths) = try session(id)
      guard isDirectory(session.stagingDir) else { throw LifeboatError.failure("nothing staged for restore \(id)").on(address) }
      if await runtime.isRunning() == true { throw LifeboatError.failure("etcd still runs; stop it before the swap").on(address) }
      guard !NodeFiles.exists(session.oldDataDir) else {
        throw LifeboatError.failure("\(session.oldDataDir) already exists").on(address)
      }
      // The intent first: whatever happens from here, a rollback can tell what to undo.
      session.swapping = true
      session.hadDataDir = NodeFiles.exists(node.dataDir)
      try session.save(paths)
      var old: String?
      if session.hadDataDir {
        try files.rename(node.dataDir, session.oldDataDir)
        old = session.oldDataDir
      }
      try files.rename(session.stagingDir, node.dataDir)
      try syncDirectory(of: node.dataDir)
      return SwapReport(address: address, oldDataDir: old)
    }
  }

  /// Decides from the disk, not from what the session last recorded: the old data dir exists
  /// exactly when a swap moved it aside and it was not moved back yet.
  public func rollback(_ id: String) async throws(LifeboatError) -> RollbackReport {
    try await steps.run { () async throws(LifeboatError) in
      var (session, paths) = try session(id)
      var actions: [String] = []
      let oldExists = NodeFiles.exists(session.oldDataDir)
      let restoredWithoutOld = session.swapping && !session.hadDataDir && NodeFiles.exists(node.dataDir)
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
          try files.rename(session.oldDataDir, node.dataDir)
          try syncDirectory(of: node.dataDir)
          actions.append("moved \(session.oldDataDir) back to \(node.dataDir)")
        } else {
          actions.append("removed the restored data dir (the node had none before)")
        }
        // Only the restored copy is deleted, and only once the old one is back in place.
        try files.removeIfPresent(failed)
      }
      try files.removeIfPresent(paths.stagingParent)
      session.swapping = false
      try session.save(paths)
      return RollbackReport(address: address, actions: actions)
    }
  }

  /// Removes the restore's downloads and staging leftovers, with or without a session (a failed
  /// fetch leaves a partial one). Never touches the data dir or the old data dir.
  public func finish(_ id: String) async throws(LifeboatError) {
    try RestoreSession.validate(id: id)
    let paths = RestoreSession.Paths(node: node, id: id)
    try await steps.run { () async throws(LifeboatError) in
      try files.removeIfPresent(paths.stagingParent)
      try files.removeIfPresent(paths.work)
    }
  }
}
