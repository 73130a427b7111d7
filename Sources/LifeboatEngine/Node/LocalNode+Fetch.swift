import Foundation
import LifeboatCore
import SnapshotStores

/// The fetch step of a restore on this node.
extension LocalNode {
  public func fetch(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport {
    try RestoreID.validate(request.id)
    return try await steps.run { () async throws(LifeboatError) in
      do throws(LifeboatError) { return try await fetchUnlocked(request) } catch { throw error.on(address) }
    }
  }

  func fetchUnlocked(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport {
    let name = try SnapshotName(request.name)
    let paths = RestoreJournal.Paths(node: node, id: request.id)
    guard let lease = currentLease() else {
      throw .usage("fetch for restore \(request.id) refused: this node holds no lease for it (a restore takes it first)")
    }
    if lease.id != request.id { throw lease.refusal("fetch for restore \(request.id)", on: address) }
    try makeDirectories(paths.work)
    // The journal first: whatever happens from here, recovery finds what this restore left.
    var journal = try RestoreJournal.loadIfPresent(paths, address: address) ?? RestoreJournal(id: request.id, name: name.value, paths: paths)
    try journal.record("fetch.begun", "\(request.origin)", paths: paths)
    // 1. The archive on this node's disk: its own copy, or a download hashed as it arrives.
    var (snapshot, archiveCatalog, downloadedSHA256) = try await obtain(
      name, origin: request.origin, paths: paths, identities: request.ageIdentities)
    if request.origin != .local, Failpoints.fire("fetch.corrupt") {
      try NodeFiles.flipByte(in: archiveCatalog.store.location + "/" + snapshot.object.key)
      downloadedSHA256 = nil
    }
    // 2. Unzip the db next to it while hashing both (the archive's hash in the same read when
    // it was not downloaded), then check everything the snapshot promises.
    // A download was hashed as it arrived; a node's own copy is hashed in the unzip's read.
    let plain = try await archiveCatalog.source(of: snapshot)
    let hashing = downloadedSHA256 == nil ? HashingSource(plain) : nil
    let source: any ByteSource = hashing ?? plain
    let file = try AtomicFile(finalPath: paths.database, mode: 0o600, overwrite: true)
    let content: SnapshotContent
    let digest: SnapshotDigest.Result
    var stateFile: [UInt8]?
    do {
      content = try await SnapshotContent.open(snapshot, source: source)
      digest = try await content.readDatabase { (chunk) throws(LifeboatError) in try file.write(chunk) }
      if request.wantStateFile { stateFile = try await content.stateFile() }
      try file.commit()
    } catch {
      file.discard()
      throw error
    }
    if digest.trailer == .mismatch {
      throw .verification("\(snapshot.path) fails etcd's SHA-256 trailer check (corrupt or truncated)")
    }
    let whole: (String, UInt64)
    if let downloadedSHA256 { whole = (downloadedSHA256, snapshot.size) } else { whole = try await hashing!.finish() }
    if let expected = request.expectedArchiveSHA256 ?? snapshot.manifest?.archiveSHA256, snapshot.kind == .archive,
      expected != whole.0
    {
      throw .verification("the archive's SHA-256 is \(whole.0), expected \(expected)")
    }
    if let expected = request.expectedDBSHA256 ?? snapshot.manifest?.dbSHA256, expected != digest.sha256 {
      throw .verification("the database's SHA-256 is \(digest.sha256), expected \(expected)")
    }
    let status = try SnapshotStatus.read(path: paths.database)
    journal.archivePath = archiveCatalog.store.location + "/" + snapshot.object.key
    journal.databasePath = paths.database
    journal.skipHashCheck = digest.trailer == .absent
    journal.revision = status.revision
    journal.dbSize = digest.size
    try journal.record("fetch.done", "db sha256 \(digest.sha256), revision \(status.revision)", paths: paths)
    Failpoints.crash("agent", at: "fetch.done")
    return FetchReport(
      address: address, archiveSize: whole.1, archiveSHA256: whole.0, dbSize: digest.size, dbSHA256: digest.sha256,
      trailer: digest.trailer.rawValue, revision: status.revision, hasStateFile: content.hasStateFile,
      manifest: snapshot.manifest, stateFile: stateFile.map(SecretBytes.init))
  }

  /// The archive to restore, on this node's disk; with the SHA-256 computed while downloading.
  private func obtain(
    _ name: SnapshotName, origin: SnapshotOrigin, paths: RestoreJournal.Paths, identities: SecretBytes?
  ) async throws(LifeboatError)
    -> (StoredSnapshot, SnapshotCatalog, String?)
  {
    let local = LocalStore(directory: paths.work)
    var hash = SHA256Stream()
    /// Beside the plain archive a decryption wrote, the manifest describes a plain archive.
    func keepPlainManifest(_ found: StoredSnapshot) async throws(LifeboatError) {
      guard var manifest = found.manifest else { return }
      manifest.encryption = nil
      _ = try await local.put(name.manifestFileName, try manifest.encoded(), contentType: ContentType.json)
    }
    switch origin {
    case .local:
      let found = try await catalog.find(name)
      guard found.encrypted else { return (found, catalog, nil) }
      // encrypt_local: decrypted into the run directory as it is read, with the operator's
      // identity (this request only); that plain archive is what the restore serves.
      guard let identities else {
        throw .usage("\(found.path) is encrypted (age): the restore needs --age-identity")
      }
      let keys = try AgeIdentity.parse(identities, origin: "the age identity of this restore")
      let own = SnapshotCatalog(store: store, identities: keys)
      try await local.put(
        name.archiveFileName, from: try await own.source(of: found), contentType: ContentType.zip, replace: true,
        inspect: { hash.update($0) })
      try await keepPlainManifest(found)
    case .s3:
      guard let configuration = try context.s3Configuration() else {
        throw .usage("\(context.config.path) has no s3backupconfig: cannot restore from S3")
      }
      try await withS3(configuration) { (s3) async throws(LifeboatError) in
        let keys = try identities.map { (text) throws(LifeboatError) in
          try AgeIdentity.parse(text, origin: "the age identity of this restore")
        }
        let remote = SnapshotCatalog(store: s3, identities: keys ?? [])
        let found = try await remote.find(name)
        // An encrypted archive is decrypted as it downloads: this node keeps the plain RKE archive
        // the restore serves, never the identity.
        try await local.put(
          found.kind == .legacy ? found.object.key : name.archiveFileName, from: try await remote.source(of: found),
          contentType: ContentType.zip, replace: true, inspect: { hash.update($0) })
        try await keepPlainManifest(found)
      }
    case .peer(let peer):
      let source = try await peers.restoreArchive(at: peer, id: paths.id)
      let key = source.name.hasSuffix(".zip") ? name.archiveFileName : name.value
      try await local.put(key, from: source, contentType: ContentType.zip, replace: true, inspect: { hash.update($0) })
    }
    let downloaded = SnapshotCatalog(store: local)
    return (try await downloaded.find(name), downloaded, hash.finalize())
  }
}
