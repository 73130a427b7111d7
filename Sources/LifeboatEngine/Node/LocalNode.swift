import EtcdClient
import Foundation
import LifeboatCore
import Logging
import SnapshotStores

/// How a node downloads from another node's agent (implemented by the agent's client).
public protocol PeerClient: Sendable {
  /// The archive a peer fetched for restore `id`.
  func restoreArchive(at peer: String, id: String) async throws(LifeboatError) -> any ByteSource
  /// A snapshot in a peer's snapshot directory, and its manifest (nil when it has none).
  func snapshot(at peer: String, name: SnapshotName) async throws(LifeboatError) -> (archive: any ByteSource, manifest: [UInt8]?)
}

/// The node Lifeboat runs on: its snapshot directory, its data directory and its etcd runtime.
/// Keeps no state in memory: a restore's files are under `<run dir>/restore-<id>/`, with a
/// `session.json`, so an agent restarted mid-restore can still roll back.
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

  // MARK: - Health and preflight

  public func health() async throws(LifeboatError) -> NodeHealth {
    NodeHealth(
      address: address, member: node.memberName, runtime: runtime.summary, etcdRunning: await runtime.isRunning(),
      version: LifeboatVersion.current, schedule: nil)
  }

  public func preflight(dbSize: UInt64, archiveSize: UInt64) async throws(LifeboatError) -> NodePreflight {
    var problems = await runtime.preflightProblems()
    let dataParent = parentDirectory(of: node.dataDir)
    let freeSnapshot = freeBytes(existingAncestor(node.runDir))
    let freeData = freeBytes(existingAncestor(dataParent))
    // The download (archive) and the unzipped db go to the run dir, the staged data dir (about
    // the db's size) next to the data dir.
    let sameDevice = deviceID(existingAncestor(node.runDir)) == deviceID(existingAncestor(dataParent))
    let needRun = archiveSize + dbSize + (sameDevice ? dbSize : 0)
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

  // MARK: - Snapshots

  public func listSnapshots() async throws(LifeboatError) -> [NodeSnapshot] {
    guard isDirectory(node.snapshotDir) else { return [] }
    return try await catalog.list().map(Self.summary)
  }

  static func summary(_ s: StoredSnapshot) -> NodeSnapshot {
    NodeSnapshot(
      name: s.name.value, kind: s.kind, size: s.size, archiveSHA256: s.manifest?.archiveSHA256, dbSHA256: s.manifest?.dbSHA256,
      dbSize: s.manifest?.dbSize, revision: s.manifest?.revision, created: s.created)
  }

  public func deleteSnapshot(_ name: SnapshotName) async throws(LifeboatError) {
    let snapshot = try await catalog.find(name)
    if snapshot.kind == .archive {
      try await store.delete(name.manifestFileName)
      try await store.delete(name.archiveFileName)
    } else {
      try await store.delete(name.value)
    }
  }

  /// The file of a snapshot in the snapshot directory, for serving to peers.
  public func snapshotFiles(_ name: SnapshotName) async throws(LifeboatError) -> (archive: String, manifest: String?) {
    let snapshot = try await catalog.find(name)
    let manifest = snapshot.kind == .archive && snapshot.manifest != nil ? store.path(name.manifestFileName) : nil
    return (store.path(snapshot.object.key), manifest)
  }

  public func saveSnapshot(_ request: NodeSaveRequest) async throws(LifeboatError) -> NodeSaveReport {
    let name = try request.name.map { (n) throws(LifeboatError) in try SnapshotName(n) }
    var connection = try context.etcdConnection(certificate: node.certificateName)
    if request.ownMemberOnly == true, let index = context.config.etcdNodes.firstIndex(where: { $0.address == node.address }) {
      connection.endpoints = [connection.endpoints[index]]
    }
    let s3 = request.upload ? try context.s3Configuration() : nil
    let stateFile = FileManager.default.fileExists(atPath: context.config.stateFilePath) ? context.config.stateFilePath : nil
    let result: SaveResult
    if let s3 {
      result = try await withS3(s3) { (remote) async throws(LifeboatError) in
        try await SnapshotSaver(logger: logger).save(
          SaveRequest(connection: connection, store: store, remote: remote, name: name, stateFilePath: stateFile))
      }
    } else {
      result = try await SnapshotSaver(logger: logger).save(
        SaveRequest(connection: connection, store: store, name: name, stateFilePath: stateFile))
    }
    let snapshot = try await catalog.find(result.manifest.name)
    return NodeSaveReport(
      snapshot: Self.summary(snapshot), member: result.member.name, endpoint: result.member.endpoint.description,
      noQuorum: result.manifest.noQuorum, remote: result.remoteArchive, uploadError: result.uploadError?.message)
  }

  public func copySnapshot(_ name: SnapshotName, from peer: String, applyRetention: Bool) async throws(LifeboatError) -> NodeSnapshot {
    // Only from the config's own agents: a caller cannot point this node at another server.
    guard context.config.etcdNodes.contains(where: { $0.agentURL == peer }) else {
      throw .usage("\(peer) is not the agent of an etcd node in \(context.config.path)")
    }
    // A restore reads from this directory: no copies (and no pruning) until it is finished.
    if applyRetention, restoreInProgress() { throw .unavailable("\(address): a restore is in progress") }
    // A recurring name dated in the future would outrank every real snapshot in retention.
    if let taken = RetentionCandidate.recurringTime(name), taken > Date().addingTimeInterval(3600) {
      throw .usage("\(name) is dated in the future")
    }
    let (source, manifestBytes) = try await peers.snapshot(at: peer, name: name)
    guard let manifestBytes else {
      throw .verification("\(peer) has no manifest for \(name): a copy could not be verified")
    }
    let manifest = try Manifest.decode(manifestBytes, path: "\(peer) \(name.manifestFileName)")
    guard manifest.name == name else {
      throw .verification("\(peer)'s manifest for \(name) names \(manifest.name)")
    }
    var hash = SHA256Stream()
    try await store.put(
      name.archiveFileName, from: source, contentType: ContentType.zip, replace: false, inspect: { hash.update($0) },
      check: { () throws(LifeboatError) in
        let sha = hash.finalize()
        if manifest.archiveSHA256 != sha || manifest.archiveSize != source.size {
          throw .verification("the copy of \(name) from \(peer) has SHA-256 \(sha), the manifest says \(manifest.archiveSHA256)")
        }
      })
    _ = try await store.put(name.manifestFileName, manifestBytes, contentType: ContentType.json)
    let copied = Self.summary(try await catalog.find(name))
    // A recurring snapshot arrived: apply the retention policy to this node's own directory
    // (each node prunes only itself; the node that saved prunes S3).
    if applyRetention, RetentionCandidate.recurringTime(name) != nil {
      _ = try? await ClusterPrune(context: context, nodes: [self], includeS3: false).run(dryRun: false, includeManual: false)
    }
    return copied
  }

  // MARK: - Recurring runs

  /// A restore has files on this node (between its fetch and its finish).
  public func restoreInProgress() -> Bool {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: node.runDir)) ?? []
    return entries.contains { $0.hasPrefix("restore-") }
  }

  /// Free bytes where snapshots are written, and the size of the newest archive there.
  public func snapshotDiskState() async -> (free: UInt64, newestArchive: UInt64) {
    let free = freeBytes(existingAncestor(node.snapshotDir))
    let newest = ((try? await listSnapshots()) ?? []).max { $0.created < $1.created }?.size ?? 0
    return (free, newest)
  }

  /// Uploads every complete local snapshot (archive with manifest) that S3 lacks: archive first,
  /// manifest last, as `save --s3` does. Returns the names uploaded.
  public func uploadMissing() async throws(LifeboatError) -> [String] {
    guard let configuration = try context.s3Configuration() else { return [] }
    // Recurring snapshots only: a one-time snapshot kept local stays local.
    let local = try await catalog.list().filter {
      $0.kind == .archive && $0.manifest != nil && RetentionCandidate.recurringTime($0.name) != nil
    }
    guard !local.isEmpty else { return [] }
    return try await withS3(configuration) { (s3) async throws(LifeboatError) in
      let remote = Set(try await SnapshotCatalog(store: s3).list().filter { $0.manifest != nil }.map(\.name))
      var uploaded: [String] = []
      for snapshot in local where !remote.contains(snapshot.name) {
        let file = try ReadOnlyFile(path: store.path(snapshot.object.key))
        try await s3.put(snapshot.name.archiveFileName, from: file, contentType: ContentType.zip, replace: true)
        let manifest = try await store.readAll(snapshot.name.manifestFileName)
        _ = try await s3.put(snapshot.name.manifestFileName, manifest, contentType: ContentType.json)
        uploaded.append(snapshot.name.value)
      }
      return uploaded
    }
  }

  // MARK: - Restore

  struct Session: Codable {
    var name: String
    var archivePath: String
    var databasePath: String
    var skipHashCheck: Bool
    var stagingDir: String
    var oldDataDir: String
    /// Written before the first rename of a swap, so a rollback after a crash mid-swap knows.
    var swapping: Bool = false
    var hadDataDir: Bool = true
  }

  func workDir(_ id: String) -> String { node.runDir + "/restore-" + id }
  func sessionPath(_ id: String) -> String { workDir(id) + "/session.json" }

  func loadSession(_ id: String) throws(LifeboatError) -> Session {
    try Self.validate(id: id)
    guard let data = FileManager.default.contents(atPath: sessionPath(id)) else {
      throw .notFound("no restore \(id) on \(address)")
    }
    do { return try JSONDecoder().decode(Session.self, from: data) } catch {
      throw .failure("\(sessionPath(id)) is unreadable: \(error)")
    }
  }

  func saveSession(_ session: Session, _ id: String) throws(LifeboatError) {
    let data: Data
    do { data = try JSONEncoder().encode(session) } catch { throw .failure("cannot encode the restore session: \(error)") }
    try AtomicFile.write([UInt8](data), to: sessionPath(id), mode: 0o600)
  }

  /// Restore ids are times (`20261125T230102Z`): letters, digits and `-` only.
  public static func validate(id: String) throws(LifeboatError) {
    guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
      throw .usage("invalid restore id \(id)")
    }
  }

  /// The archive a restore fetched, for serving to the other nodes.
  public func restoreArchivePath(_ id: String) throws(LifeboatError) -> String { try loadSession(id).archivePath }

  public func fetch(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport {
    try Self.validate(id: request.id)
    return try await steps.run { () async throws(LifeboatError) in try await fetchUnlocked(request) }
  }

  func fetchUnlocked(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport {
    let name = try SnapshotName(request.name)
    let work = workDir(request.id)
    try makeDirectories(work)
    // 1. Obtain the archive.
    var snapshot: StoredSnapshot
    var archiveCatalog: SnapshotCatalog
    switch request.origin {
    case .local:
      archiveCatalog = catalog
      snapshot = try await catalog.find(name)
    case .s3:
      guard let configuration = try context.s3Configuration() else {
        throw .usage("\(context.config.path) has no s3backupconfig: cannot restore from S3")
      }
      let local = LocalStore(directory: work)
      try await withS3(configuration) { (s3) async throws(LifeboatError) in
        let remote = SnapshotCatalog(store: s3)
        let found = try await remote.find(name)
        try await local.put(found.object.key, from: remote.source(of: found), contentType: ContentType.zip, replace: true)
        if found.manifest != nil {
          let bytes = try await s3.readAll(name.manifestFileName)
          _ = try await local.put(name.manifestFileName, bytes, contentType: ContentType.json)
        }
      }
      archiveCatalog = SnapshotCatalog(store: local)
      snapshot = try await archiveCatalog.find(name)
    case .peer(let peer):
      let local = LocalStore(directory: work)
      let source = try await peers.restoreArchive(at: peer, id: request.id)
      let key = source.name.hasSuffix(".zip") ? name.archiveFileName : name.value
      try await local.put(key, from: source, contentType: ContentType.zip, replace: true)
      archiveCatalog = SnapshotCatalog(store: local)
      snapshot = try await archiveCatalog.find(name)
    }
    if request.origin != .local, Failpoints.fire("fetch.corrupt") {
      try Self.flipByte(in: archiveCatalog.store.location + "/" + snapshot.object.key)
    }
    // 2. Verify while unzipping the db next to it.
    let database = work + "/db"
    let file = try AtomicFile(finalPath: database, mode: 0o600, overwrite: true)
    let content: SnapshotContent
    let digest: SnapshotDigest.Result
    do {
      content = try await SnapshotContent.open(snapshot, in: archiveCatalog)
      digest = try await content.readDatabase { (chunk) throws(LifeboatError) in try file.write(chunk) }
      try file.commit()
    } catch {
      file.discard()
      throw LifeboatError(error.kind, "\(address): \(error.message)")
    }
    if digest.trailer == .mismatch {
      throw .verification("\(address): \(snapshot.path) fails etcd's SHA-256 trailer check (corrupt or truncated)")
    }
    let whole = try await content.wholeSHA256()
    if let expected = request.expectedArchiveSHA256 ?? snapshot.manifest?.archiveSHA256, snapshot.kind == .archive,
      expected != whole.sha
    {
      throw .verification("\(address): the archive's SHA-256 is \(whole.sha), expected \(expected)")
    }
    if let expected = request.expectedDBSHA256 ?? snapshot.manifest?.dbSHA256, expected != digest.sha256 {
      throw .verification("\(address): the database's SHA-256 is \(digest.sha256), expected \(expected)")
    }
    let status = try SnapshotStatus.read(path: database)
    let session = Session(
      name: name.value, archivePath: archiveCatalog.store.location + "/" + snapshot.object.key, databasePath: database,
      skipHashCheck: digest.trailer == .absent,
      stagingDir: parentDirectory(of: node.dataDir) + "/.lifeboat-staged-" + request.id + "/" + (node.dataDir as NSString).lastPathComponent,
      oldDataDir: node.dataDir + ".lifeboat-old-" + request.id)
    try saveSession(session, request.id)
    return FetchReport(
      address: address, archiveSize: whole.size, archiveSHA256: whole.sha, dbSize: digest.size, dbSHA256: digest.sha256,
      trailer: digest.trailer.rawValue, revision: status.revision, hasStateFile: content.hasStateFile,
      manifest: snapshot.manifest)
  }

  public func fetchedStateFile(_ id: String) async throws(LifeboatError) -> [UInt8]? {
    let session = try loadSession(id)
    let name = try SnapshotName(session.name)
    let directory = parentDirectory(of: session.archivePath)
    let local = SnapshotCatalog(store: LocalStore(directory: directory))
    let snapshot = try await local.find(name)
    let content = try await SnapshotContent.open(snapshot, in: local)
    return try await content.stateFile()
  }

  public func stage(_ request: StageRequest) async throws(LifeboatError) {
    try await steps.run { () async throws(LifeboatError) in try await stageUnlocked(request) }
  }

  func stageUnlocked(_ request: StageRequest) async throws(LifeboatError) {
    let session = try loadSession(request.id)
    // The staged data dir is about the db's size, next to the live data dir: check with the real
    // size now (the plan could only estimate it for archives without a manifest).
    let dbSize = regularFileInfo(session.databasePath)?.size ?? 0
    let free = freeBytes(existingAncestor(parentDirectory(of: node.dataDir)))
    let needed = dbSize + dbSize / 20 + (64 << 20)
    guard free >= needed else {
      throw .storage("\(address): not enough free disk next to \(node.dataDir) to stage the restore: \(free) bytes free, \(needed) needed")
    }
    if Failpoints.fire("stage.slow") { try? await Task.sleep(for: .seconds(2)) }
    // The restore tool creates the staging dir inside a directory of its own, next to the data
    // dir (the same file system, so the swap is a rename; the docker runtime binds only it).
    try removeIfPresent(parentDirectory(of: session.stagingDir))
    try makeDirectories(parentDirectory(of: session.stagingDir))
    try await runtime.restore(
      RestoreInvocation(
        database: session.databasePath, stagingDir: session.stagingDir, memberName: node.memberName,
        initialCluster: request.initialCluster, token: request.token, peerURL: node.peerURL,
        skipHashCheck: session.skipHashCheck))
    guard isDirectory(session.stagingDir + "/member") else {
      throw .failure("\(address): the restore tool left no member directory in \(session.stagingDir)")
    }
    _ = try? FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: session.stagingDir)
  }

  public func stopEtcd() async throws(LifeboatError) {
    try await steps.run { () async throws(LifeboatError) in try await stopEtcdUnlocked() }
  }

  func stopEtcdUnlocked() async throws(LifeboatError) {
    do { try await runtime.stop() } catch { throw LifeboatError(error.kind, "\(address): \(error.message)") }
  }

  public func startEtcd(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    try await steps.run { () async throws(LifeboatError) in
      do throws(LifeboatError) { try await runtime.start(quotaBackendBytes: quotaBackendBytes) } catch {
        throw LifeboatError(error.kind, "\(address): \(error.message)")
      }
    }
  }

  public func swap(_ id: String) async throws(LifeboatError) -> SwapReport {
    try await steps.run { () async throws(LifeboatError) in
      var session = try loadSession(id)
      guard isDirectory(session.stagingDir) else { throw .failure("\(address): nothing staged for restore \(id)") }
      if await runtime.isRunning() == true { throw .failure("\(address): etcd still runs; stop it before the swap") }
      guard !FileManager.default.fileExists(atPath: session.oldDataDir) else {
        throw .failure("\(address): \(session.oldDataDir) already exists")
      }
      // The intent first: whatever happens from here, a rollback can tell what to undo.
      session.swapping = true
      session.hadDataDir = FileManager.default.fileExists(atPath: node.dataDir)
      try saveSession(session, id)
      var old: String?
      if session.hadDataDir {
        try rename(node.dataDir, session.oldDataDir)
        old = session.oldDataDir
      }
      try rename(session.stagingDir, node.dataDir)
      try syncDirectory(of: node.dataDir)
      return SwapReport(address: address, oldDataDir: old)
    }
  }

  /// Decides from the disk, not from what the session last recorded: the old data dir exists
  /// exactly when a swap moved it aside and it was not moved back yet.
  public func rollback(_ id: String) async throws(LifeboatError) -> RollbackReport {
    try await steps.run { () async throws(LifeboatError) in
      var session = try loadSession(id)
      var actions: [String] = []
      let oldExists = FileManager.default.fileExists(atPath: session.oldDataDir)
      let restoredWithoutOld = session.swapping && !session.hadDataDir && FileManager.default.fileExists(atPath: node.dataDir)
      if oldExists || restoredWithoutOld {
        if await runtime.isRunning() != false {
          try await stopEtcdUnlocked()
          actions.append("stopped etcd")
        }
        let failed = node.dataDir + ".lifeboat-failed-" + id
        if FileManager.default.fileExists(atPath: node.dataDir) {
          try removeIfPresent(failed)
          try rename(node.dataDir, failed)
        }
        if oldExists {
          try rename(session.oldDataDir, node.dataDir)
          try syncDirectory(of: node.dataDir)
          actions.append("moved \(session.oldDataDir) back to \(node.dataDir)")
        } else {
          actions.append("removed the restored data dir (the node had none before)")
        }
        // Only the restored copy is deleted, and only once the old one is back in place.
        try removeIfPresent(failed)
      }
      try removeIfPresent(parentDirectory(of: session.stagingDir))
      session.swapping = false
      try saveSession(session, id)
      return RollbackReport(address: address, actions: actions)
    }
  }

  /// Removes the restore's downloads and staging leftovers, with or without a session (a failed
  /// fetch leaves a partial one). Never touches the data dir or the old data dir.
  public func finish(_ id: String) async throws(LifeboatError) {
    try Self.validate(id: id)
    try await steps.run { () async throws(LifeboatError) in
      try removeIfPresent(parentDirectory(of: node.dataDir) + "/.lifeboat-staged-" + id)
      try removeIfPresent(workDir(id))
    }
  }

  // MARK: - Helpers

  /// Failpoint `fetch.corrupt`: flips one byte in the middle of a downloaded file on disk.
  static func flipByte(in path: String) throws(LifeboatError) {
    guard let handle = FileHandle(forUpdatingAtPath: path) else { throw .failure("failpoint: cannot open \(path)") }
    defer { try? handle.close() }
    let size = (try? handle.seekToEnd()) ?? 0
    let offset = size / 2
    try? handle.seek(toOffset: offset)
    let byte = (try? handle.read(upToCount: 1))?.first ?? 0
    try? handle.seek(toOffset: offset)
    try? handle.write(contentsOf: Data([byte ^ 0xFF]))
    try? handle.synchronize()
  }

  func rename(_ from: String, _ to: String) throws(LifeboatError) {
    guard Foundation.rename(from, to) == 0 else {
      throw .storage("\(address): cannot move \(from) to \(to): \(String(cString: strerror(errno)))")
    }
  }

  func removeIfPresent(_ path: String) throws(LifeboatError) {
    guard FileManager.default.fileExists(atPath: path) else { return }
    do { try FileManager.default.removeItem(atPath: path) } catch {
      throw .storage("\(address): cannot remove \(path): \(error.localizedDescription)")
    }
  }
}

func existingAncestor(_ path: String) -> String {
  var current = path
  while !FileManager.default.fileExists(atPath: current), current != "/" { current = parentDirectory(of: current) }
  return current.isEmpty ? "/" : current
}

func freeBytes(_ path: String) -> UInt64 {
  var info = statvfs()
  guard statvfs(path, &info) == 0 else { return 0 }
  return UInt64(info.f_bavail) * UInt64(info.f_frsize)
}

func deviceID(_ path: String) -> UInt64 {
  var info = stat()
  guard stat(path, &info) == 0 else { return 0 }
  return UInt64(info.st_dev)
}
