import EtcdClient
import Foundation
import LifeboatCore
import Logging
import SnapshotStores

/// `lifeboat snapshot save`: one healthy member's snapshot, streamed in one pass into
/// `<dir>/<name>.zip` (RKE's layout) and, with a remote store, into a multipart upload of
/// `[folder/]<name>.zip` at the same time; then `<name>.manifest.json` beside each.
///
/// Order of work: check the request (name free locally and remotely, directory usable, bucket
/// reachable, state file readable), pick a member, stream into `<name>.zip.part` and the upload,
/// check etcd's trailer, fsync and rename, complete the upload, write the manifests (remote last,
/// so a listed manifest means a complete archive). On any failure before the rename the `.part`
/// file is removed and the upload aborted. An upload failure keeps the local archive and is
/// reported in `SaveResult.uploadError`.
public struct SnapshotSaver: Sendable {
  public var logger: Logger

  public init(logger: Logger = Logger(label: "lifeboat.save")) {
    self.logger = logger
  }

  public func save(
    _ request: SaveRequest, events: @escaping @Sendable (SaveEvent) -> Void = { _ in }
  ) async throws(LifeboatError) -> SaveResult {
    let started = ContinuousClock.now
    let createdAt = Date()
    let name = request.name ?? request.naming.oneTimeName(at: createdAt)
    let store = request.store
    let stateFile = try request.stateFilePath.map { (path) throws(LifeboatError) in try Self.readStateFile(path) }
    try await store.checkWritable()
    let encrypted = !request.remoteRecipients.isEmpty
    guard encrypted || !request.encryptLocal else { throw .usage("encrypting the local copy needs age recipients") }
    let localKey = request.encryptLocal ? name.encryptedArchiveFileName : name.archiveFileName
    let remoteKey = encrypted ? name.encryptedArchiveFileName : name.archiveFileName
    let archivePath = store.path(localKey)
    for key in name.archiveFileNames where FileManager.default.fileExists(atPath: store.path(key)) {
      throw .usage("snapshot \(name) already exists at \(store.path(key)); choose another --name")
    }

    if let remote = request.remote {
      try await remote.checkWritable()
      for key in name.archiveFileNames where try await remote.exists(key) {
        throw .usage("snapshot \(name) already exists in \(remote.location) (\(key)); choose another --name")
      }
    }

    let member = try await MemberSelector(connection: request.connection).select()
    events(.memberSelected(member, name: name))
    if member.noQuorum {
      logger.warning(
        "no etcd member has a leader (quorum lost?): the snapshot from \(member.name) may miss the last writes")
    }

    let local = try await store.makeWriter(
      for: localKey, contentType: request.encryptLocal ? ContentType.age : ContentType.zip, replace: false)
    // The other form of the name (x.zip beside x.zip.age) may have been started since the check
    // above: with our `.part` held, one of two such saves always sees the other.
    let twin = request.encryptLocal ? name.archiveFileName : name.encryptedArchiveFileName
    if FileManager.default.fileExists(atPath: store.path(twin)) || store.isBeingWritten(twin) {
      await local.abort()
      throw .usage("snapshot \(name) is being saved at \(store.path(twin)) at the same time; choose another --name")
    }
    let remoteWriter: (any ObjectWriter)?
    do {
      remoteWriter = try await request.remote?.makeWriter(
        for: remoteKey, contentType: encrypted ? ContentType.age : ContentType.zip, replace: false)
    } catch {
      await local.abort()
      throw error
    }
    // Where the archive's bytes go. Encrypted in the bucket only: the upload side encrypts.
    // Encrypted everywhere: one encryption before the tee, the same bytes on disk and in the bucket.
    let file: TeeWriter
    let encrypting: AgeEncryptingWriter?
    let sink: any ObjectWriter
    if request.encryptLocal {
      file = TeeWriter(primary: local, secondary: remoteWriter)
      encrypting = AgeEncryptingWriter(base: file, recipients: request.remoteRecipients)
      sink = encrypting!
    } else {
      encrypting = encrypted ? remoteWriter.map { AgeEncryptingWriter(base: $0, recipients: request.remoteRecipients) } : nil
      file = TeeWriter(primary: local, secondary: encrypting ?? remoteWriter)
      sink = file
    }
    let pipeline = ArchivePipeline(
      name: name, compression: request.compression, stateFile: stateFile, modified: createdAt)
    let expected = UInt64(max(0, member.status.dbSize))
    let configuration = request.connection.client
    let endpoint = member.endpoint
    let output: ArchivePipeline.Output
    let summary: EtcdSnapshotStreamSummary
    do {
      (output, summary) = try await pipeline.run(into: sink) { send in
        try await EtcdClient.with(endpoint: endpoint, configuration: configuration) { client in
          let progress = ProgressCounter()
          return try await client.snapshot(batchSize: ArchivePipeline.batchSize, nextBatch: pipeline.batches.take) { batch in
            events(.progress(received: progress.add(batch.count), expected: expected))
            try await send(batch)
          }
        }
      }
    } catch {
      await file.abort()
      throw Self.describe(error, member: member)
    }

    let digest = output.digest
    guard summary.complete else {
      await file.abort()
      throw .unavailable("the snapshot stream from \(member.name) (\(endpoint)) ended early after \(digest.size) bytes")
    }
    switch digest.trailer {
    case .valid: break
    case .mismatch:
      await file.abort()
      throw .verification(
        "the snapshot from \(member.name) (\(endpoint)) fails etcd's SHA-256 trailer check: it was altered or cut in transit; nothing was saved")
    case .absent:
      await file.abort()
      throw .verification(
        "the snapshot from \(member.name) (\(endpoint)) has no SHA-256 trailer (\(digest.size) bytes): nothing was saved")
    }
    if request.encryptLocal {
      // The last age chunk, into both copies, before either is published.
      do { try await encrypting?.seal() } catch {
        await file.abort()
        throw error
      }
    }
    do {
      _ = try await file.finishPrimary()
    } catch {
      await file.abortSecondary()
      throw error
    }
    events(.archived(path: archivePath))
    var uploadError = await file.finishSecondary()

    let manifest = Manifest(
      name: name, createdAt: createdAt,
      member: .init(
        name: member.name, id: etcdIDString(member.status.memberID), clusterID: etcdIDString(member.status.clusterID),
        endpoint: endpoint.description, etcdVersion: member.status.version),
      revision: member.status.revision, dbSize: digest.size, dbSHA256: digest.sha256,
      archiveSHA256: output.archiveSHA256, archiveSize: output.archiveSize, compression: request.compression,
      stateFile: stateFile != nil, noQuorum: member.noQuorum)
    let encryption = await encrypting?.manifestEncryption
    var localManifest = manifest
    if request.encryptLocal { localManifest.encryption = encryption }
    let manifestPath = store.path(name.manifestFileName)
    do {
      try await store.put(name.manifestFileName, try localManifest.encoded(), contentType: ContentType.json)
    } catch {
      throw LifeboatError(
        error.kind, "\(archivePath) is complete, but its manifest could not be written: \(error.message)")
    }
    var remoteArchive: String?
    if let remote = request.remote, uploadError == nil {
      var remoteManifest = manifest
      remoteManifest.encryption = encryption
      do {
        try await remote.put(name.manifestFileName, try remoteManifest.encoded(), contentType: ContentType.json)
        remoteArchive = "\(remote.location)/\(remoteKey)"
        events(.uploaded(location: remote.location))
      } catch {
        // The remote archive is complete (its upload finished after the trailer check); it
        // stays, readable like an archive made by RKE, and the missing manifest is reported.
        uploadError = .storage("the archive was uploaded but its manifest was not: \(error.message)")
      }
    }
    return SaveResult(
      manifest: localManifest, archivePath: archivePath, manifestPath: manifestPath, member: member,
      elapsed: ContinuousClock.now - started, remoteArchive: remoteArchive,
      uploadError: uploadError.map { .storage("\(archivePath) is saved, but the upload to \(request.remote?.location ?? "") failed: \($0.message)") })
  }

  /// Reads a state file to store in the archive; it must exist and be a readable, non-empty file.
  static func readStateFile(_ path: String) throws(LifeboatError) -> [UInt8] {
    guard isDirectory(path) == false, let data = FileManager.default.contents(atPath: path) else {
      throw .usage("state file \(path) does not exist or cannot be read")
    }
    guard !data.isEmpty else { throw .usage("state file \(path) is empty") }
    return [UInt8](data)
  }

  static func describe(_ error: any Error, member: SelectedMember) -> LifeboatError {
    if Task.isCancelled { return .failure("interrupted: the snapshot was not saved") }
    switch error {
    case let error as LifeboatError:
      return error
    case let error as EtcdClientError:
      return .unavailable("snapshot from \(member.name) failed: \(error)")
    case is CancellationError:
      return .failure("interrupted: the snapshot was not saved")
    default:
      return .failure("snapshot from \(member.name) failed: \(error)")
    }
  }
}

/// Counts bytes across batches (batches arrive one at a time, from one task).
private final class ProgressCounter: @unchecked Sendable {
  private var total: UInt64 = 0
  func add(_ n: Int) -> UInt64 {
    total += UInt64(n)
    return total
  }
}
