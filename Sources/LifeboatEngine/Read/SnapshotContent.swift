import AsyncAlgorithms
import Foundation
import LifeboatCore
import SnapshotStores

/// Opens a stored snapshot (archive or legacy file, local or in S3) and streams its etcd
/// database, checking everything the format allows on the way: the ZIP structure, CRC-32 and
/// sizes, etcd's SHA-256 trailer, and the state file entry.
struct SnapshotContent {
  let snapshot: StoredSnapshot
  let source: any ByteSource
  private let reader: ZipReader?
  private let layout: SnapshotArchiveLayout?

  private init(snapshot: StoredSnapshot, source: any ByteSource, reader: ZipReader?, layout: SnapshotArchiveLayout?) {
    self.snapshot = snapshot
    self.source = source
    self.reader = reader
    self.layout = layout
  }

  static func open(_ snapshot: StoredSnapshot, in catalog: SnapshotCatalog) async throws(LifeboatError) -> SnapshotContent {
    try await open(snapshot, source: try await catalog.source(of: snapshot))
  }

  /// Reads the snapshot through `source` (a `HashingSource`, to hash the archive in the same read).
  static func open(_ snapshot: StoredSnapshot, source: any ByteSource) async throws(LifeboatError) -> SnapshotContent {
    switch snapshot.kind {
    case .archive:
      let reader = try await ZipReader(source: source)
      let layout = try SnapshotArchiveLayout(entries: reader.entries, name: snapshot.name, archivePath: source.name)
      return SnapshotContent(snapshot: snapshot, source: source, reader: reader, layout: layout)
    case .legacy:
      return SnapshotContent(snapshot: snapshot, source: source, reader: nil, layout: nil)
    }
  }

  var hasStateFile: Bool { layout?.stateFile != nil }
  /// The database's size as the ZIP's directory records it (a legacy file: its size), known
  /// before it is read.
  var recordedDatabaseSize: UInt64 { layout?.snapshot.uncompressedSize ?? source.size }
  var entryPath: String? { layout?.snapshot.path }

  /// Streams the database bytes to `body` and returns their digest. Fails on a bad CRC-32,
  /// a truncated entry or corrupt compressed data.
  ///
  /// Two stages on two cores, joined by a rendezvous channel (as `ArchivePipeline`):
  ///
  ///     read (+ the archive's SHA-256 when the source hashes) -> inflate + CRC-32 | -> SHA-256 + trailer -> body
  ///
  /// The first runs in a child task, the second (and `body`) in the caller's.
  func readDatabase(_ body: ([UInt8]) async throws(LifeboatError) -> Void = { _ in }) async throws(LifeboatError)
    -> SnapshotDigest.Result
  {
    let chunks = AsyncThrowingChannel<[UInt8], any Error>()
    let (reader, layout, source) = (reader, layout, source)
    do {
      return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
          do {
            if let reader, let layout {
              try await reader.read(layout.snapshot) { (chunk) async throws(LifeboatError) in await chunks.send(chunk) }
            } else {
              try await source.stream(from: 0, length: source.size, chunkSize: 1 << 20) { (chunk) async throws(LifeboatError) in
                await chunks.send(chunk)
              }
            }
            chunks.finish()
          } catch {
            chunks.fail(error)
          }
        }
        var digest = SnapshotDigest()
        do {
          for try await chunk in chunks {
            digest.update(chunk)
            try await body(chunk)
          }
        } catch {
          // The reader may wait in `send`: cancelling its task lets it go.
          group.cancelAll()
          throw error
        }
        try Task.checkCancellation()
        return digest.finalize()
      }
    } catch let error as LifeboatError {
      throw error
    } catch is CancellationError {
      throw LifeboatError(.failure, "interrupted", underlying: .cancelled)
    } catch {
      throw .failure("reading \(source.name): \(error)")
    }
  }

  /// Reads the state file entry (CRC-32 checked) and checks that it is a JSON object, as RKE
  /// writes it. Returns its size, or nil when the archive has none. Its contents are never printed.
  func checkStateFile() async throws(LifeboatError) -> UInt64? {
    guard let reader, let entry = layout?.stateFile else { return nil }
    let bytes = try await reader.readAll(entry)
    guard (try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any] else {
      throw .verification("\(source.name) entry \(entry.path) is not a JSON state file")
    }
    return UInt64(bytes.count)
  }

  /// The state file entry's bytes (CRC-32 checked, a JSON object), or nil when there is none.
  func stateFile() async throws(LifeboatError) -> [UInt8]? {
    guard let reader, let entry = layout?.stateFile else { return nil }
    let bytes = try await reader.readAll(entry)
    guard (try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any] else {
      throw .verification("\(source.name) entry \(entry.path) is not a JSON state file")
    }
    return bytes
  }

  /// SHA-256 and size of the whole archive or file: what `source` hashed while the database
  /// was read when it is a `HashingSource` (and the rest it skipped), else a read of its own.
  func wholeSHA256() async throws(LifeboatError) -> (sha: String, size: UInt64) {
    if let hashing = source as? HashingSource {
      let (sha, size) = try await hashing.finish()
      return (sha, size)
    }
    var hash = SHA256Stream()
    try await source.stream(from: 0, length: source.size, chunkSize: 1 << 20) { hash.update($0) }
    return (hash.finalize(), source.size)
  }
}
