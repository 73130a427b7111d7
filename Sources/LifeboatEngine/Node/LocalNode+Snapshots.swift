import Foundation
import LifeboatCore
import SnapshotStores

/// Snapshot files in the node's snapshot directory.
extension LocalNode {
  public func listSnapshots() async throws(LifeboatError) -> [NodeSnapshot] {
    guard isDirectory(node.snapshotDir) else { return [] }
    return try await catalog.list().map(Self.summary)
  }

  static func summary(_ s: StoredSnapshot) -> NodeSnapshot {
    var summary = NodeSnapshot(
      name: s.name.value, kind: s.kind, size: s.size, archiveSHA256: s.manifest?.archiveSHA256, dbSHA256: s.manifest?.dbSHA256,
      dbSize: s.manifest?.dbSize, revision: s.manifest?.revision, created: s.created, manifestProblem: s.manifestProblem)
    if s.encrypted { summary.encrypted = true }
    return summary
  }

  public func verifySnapshot(_ name: SnapshotName) async throws(LifeboatError) -> VerifyReport {
    do throws(LifeboatError) {
      let snapshot = try await catalog.find(name)
      // This agent holds no identity: an encrypted copy is checked sealed.
      if snapshot.encrypted { return try await SnapshotVerifier().verifySealed(snapshot, in: catalog) }
      return try await SnapshotVerifier().verify(snapshot, in: catalog)
    } catch { throw error.on(address) }
  }

  /// The archive as stored (an encrypted copy stays encrypted: the agent holds no identity) and
  /// its manifest's bytes.
  public func openSnapshot(_ name: SnapshotName) async throws(LifeboatError) -> (archive: any ByteSource, manifest: [UInt8]?) {
    let snapshot = try await catalog.find(name)
    let manifest = snapshot.kind == .archive && snapshot.manifest != nil ? try await store.readAll(name.manifestFileName) : nil
    return (catalog.storedSource(of: snapshot), manifest)
  }

  /// The files of a snapshot in the snapshot directory, for serving to peers.
  public func snapshotFiles(_ name: SnapshotName) async throws(LifeboatError) -> (archive: String, manifest: String?) {
    let snapshot = try await catalog.find(name)
    let manifest = snapshot.kind == .archive && snapshot.manifest != nil ? store.path(name.manifestFileName) : nil
    return (store.path(snapshot.object.key), manifest)
  }

  public func deleteSnapshot(_ name: SnapshotName) async throws(LifeboatError) {
    try refuseDuringRestore("deleting \(name)")
    try await catalog.delete(try await catalog.find(name))
  }

  public func saveSnapshot(_ request: NodeSaveRequest) async throws(LifeboatError) -> NodeSaveReport {
    try refuseDuringRestore("a snapshot")
    let name = try request.name.map { (n) throws(LifeboatError) in try SnapshotName(n) }
    var connection = try context.etcdConnection(certificate: node.certificateName)
    if request.ownMemberOnly == true, let index = context.config.etcdNodes.firstIndex(where: { $0.address == node.address }) {
      connection.endpoints = [connection.endpoints[index]]
    }
    let s3 = request.upload ? try context.s3Configuration() : nil
    if request.upload, s3 == nil { throw .usage("an upload was asked, but \(context.config.path) has no s3backupconfig") }
    let stateFile = FileManager.default.fileExists(atPath: context.config.stateFilePath) ? context.config.stateFilePath : nil
    let naming = SnapshotNaming(safeTimestamp: context.config.backup.safeTimestamp)
    let result: SaveResult
    if let s3 {
      result = try await withS3(s3) { (remote) async throws(LifeboatError) in
        var save = SaveRequest(
          connection: connection, store: store, remote: remote, name: name, naming: naming, stateFilePath: stateFile,
          compression: request.compression ?? context.config.lifeboat.compression)
        save.remoteRecipients = context.config.lifeboat.ageRecipients
        save.encryptLocal = context.config.lifeboat.encryptLocal
        return try await SnapshotSaver(logger: logger).save(save)
      }
    } else {
      var save = SaveRequest(
        connection: connection, store: store, name: name, naming: naming, stateFilePath: stateFile,
        compression: request.compression ?? context.config.lifeboat.compression)
      if context.config.lifeboat.encryptLocal {
        save.remoteRecipients = context.config.lifeboat.ageRecipients
        save.encryptLocal = true
      }
      result = try await SnapshotSaver(logger: logger).save(save)
    }
    let snapshot = try await catalog.find(result.manifest.name)
    return NodeSaveReport(
      snapshot: Self.summary(snapshot), member: result.member.name, endpoint: result.member.endpoint.description,
      noQuorum: result.manifest.noQuorum, remote: result.remoteArchive, uploadError: result.uploadError?.message)
  }

  public func receiveSnapshot(_ name: SnapshotName, from peer: String, pruneAfter: Bool) async throws(LifeboatError) -> NodeSnapshot {
    // Only from the config's own agents: a caller cannot point this node at another server.
    guard context.config.etcdNodes.contains(where: { $0.agentURL == peer }) else {
      throw LifeboatError.usage("\(peer) is not the agent of an etcd node in \(context.config.path)").on(address)
    }
    // A restore reads from this directory: no copies (and no pruning) until it is finished.
    try refuseDuringRestore("a copy of \(name)")
    // A recurring name dated in the future would outrank every real snapshot in retention.
    if let taken = RetentionCandidate.recurringTime(name), taken > Date().addingTimeInterval(3600) {
      throw LifeboatError.usage("\(name) is dated in the future").on(address)
    }
    let (source, manifestBytes) = try await peers.snapshot(at: peer, name: name)
    guard let manifestBytes else {
      throw LifeboatError.verification("\(peer) has no manifest for \(name): a copy could not be verified").on(address)
    }
    let manifest = try Manifest.decode(manifestBytes, path: "\(peer) \(name.manifestFileName)")
    guard manifest.name == name else {
      throw LifeboatError.verification("\(peer)'s manifest for \(name) names \(manifest.name)").on(address)
    }
    var hash = SHA256Stream()
    // An encrypted copy (encrypt_local) travels as it is stored; its manifest gives the object's hash.
    let expected = manifest.encryption.map { ($0.objectSHA256, $0.objectSize) } ?? (manifest.archiveSHA256, manifest.archiveSize)
    try await store.put(
      manifest.encryption == nil ? name.archiveFileName : name.encryptedArchiveFileName, from: source,
      contentType: manifest.encryption == nil ? ContentType.zip : ContentType.age, replace: false, inspect: { hash.update($0) },
      check: { () throws(LifeboatError) in
        let sha = hash.finalize()
        if expected.0 != sha || expected.1 != source.size {
          throw .verification("the copy of \(name) from \(peer) has SHA-256 \(sha), the manifest says \(expected.0)")
        }
      })
    _ = try await store.put(name.manifestFileName, manifestBytes, contentType: ContentType.json)
    let copied = Self.summary(try await catalog.find(name))
    // A recurring snapshot arrived: this node applies the retention policy to its own directory
    // (each node prunes only itself; the node that saved prunes S3).
    if pruneAfter, RetentionCandidate.recurringTime(name) != nil {
      await pruneOwnDirectory()
    }
    return copied
  }

  /// The retention policy applied to this node's directory alone (recurring names only; the
  /// newest verified snapshot always stays). Failures are logged: the copy itself succeeded.
  func pruneOwnDirectory(now: Date = Date()) async {
    do throws(LifeboatError) {
      let snapshots = try await catalog.list()
      let candidates = snapshots.map {
        RetentionCandidate(name: $0.name, taken: RetentionCandidate.recurringTime($0.name) ?? $0.created, verified: $0.manifest != nil)
      }
      let doomed = Set(context.config.retentionPolicy.decide(candidates, now: now, includeManual: false).filter { !$0.keep }.map(\.name))
      for snapshot in snapshots where doomed.contains(snapshot.name) {
        try await catalog.delete(snapshot)
        logger.info("pruned \(snapshot.name) (retention)")
      }
    } catch {
      logger.warning("pruning \(node.snapshotDir) failed: \(error.message)")
    }
  }

  /// A restore holds this node's lease or left its journal here (stray files never count).
  public func restoreInProgress() -> Bool {
    currentLease() != nil || !RestoreJournal.ids(in: node.runDir).isEmpty
  }

  /// Free bytes where snapshots are written, and the size of the newest archive there.
  public func snapshotDiskState() async -> (free: UInt64, newestArchive: UInt64) {
    let free = NodeFiles.freeBytes(NodeFiles.existingAncestor(node.snapshotDir))
    let newest = ((try? await listSnapshots()) ?? []).max { $0.created < $1.created }?.size ?? 0
    return (free, newest)
  }
}
