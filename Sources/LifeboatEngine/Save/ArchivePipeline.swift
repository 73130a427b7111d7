import AsyncAlgorithms
import Foundation
import LifeboatCore
import SnapshotStores

/// The one-pass path from etcd's snapshot stream to a finished ZIP archive:
///
///     receive (gRPC, 1 MiB batches) -> hash (SHA-256 + trailer) -> compress + CRC-32 + write
///
/// Each arrow is a rendezvous channel, so the three stages overlap on different cores while at
/// most a few batches are in memory. The archive goes to an `ObjectWriter` (nothing visible
/// under its final name); the caller finishes it only if the trailer checks out.
struct ArchivePipeline: Sendable {
  var name: SnapshotName
  var compression: Compression
  var stateFile: [UInt8]?
  var modified: Date

  /// How much archive output is gathered before each write.
  static let writeSize = 1 << 19
  /// The size of the batches the snapshot stream is gathered in.
  static let batchSize = 1 << 20

  /// The batch buffers: the write stage gives each back once compressed, the stream fills it again.
  let batches = BufferPool(capacity: Self.batchSize + (64 << 10), keep: 2)

  struct Output: Sendable {
    var digest: SnapshotDigest.Result
    var archiveSHA256: String
    var archiveSize: UInt64
  }

  /// Runs the pipeline. `produce` streams the snapshot, calling its argument with each batch.
  func run<Summary: Sendable>(
    into file: any ObjectWriter,
    produce: @escaping @Sendable (@escaping @Sendable ([UInt8]) async throws -> Void) async throws -> Summary
  ) async throws -> (Output, Summary) {
    let received = AsyncThrowingChannel<[UInt8], any Error>()
    let hashed = AsyncThrowingChannel<[UInt8], any Error>()

    return try await withThrowingTaskGroup(of: PipelineStage<Summary>.self) { group in
      group.addTask {
        do {
          let summary = try await produce { batch in await received.send(batch) }
          received.finish()
          return .produced(summary)
        } catch {
          received.fail(error)
          throw error
        }
      }
      group.addTask {
        var digest = SnapshotDigest()
        do {
          for try await batch in received {
            digest.update(batch)
            await hashed.send(batch)
          }
          hashed.finish()
        } catch {
          hashed.fail(error)
          throw error
        }
        return .hashed(digest.finalize())
      }
      group.addTask { [self] in
        let (sha, size) = try await writeArchive(from: hashed, to: file)
        return .archived(sha256: sha, size: size)
      }
      var summary: Summary?
      var digest: SnapshotDigest.Result?
      var archive: (String, UInt64)?
      for try await result in group {
        switch result {
        case .produced(let s): summary = s
        case .hashed(let d): digest = d
        case .archived(let sha, let size): archive = (sha, size)
        }
      }
      try Task.checkCancellation()
      guard let summary, let digest, let archive else {
        throw LifeboatError.failure("the snapshot pipeline ended without a result")
      }
      return (Output(digest: digest, archiveSHA256: archive.0, archiveSize: archive.1), summary)
    }
  }

  private func writeArchive(
    from batches: AsyncThrowingChannel<[UInt8], any Error>, to file: any ObjectWriter
  ) async throws -> (String, UInt64) {
    var zip = ZipWriter()
    var archiveHash = SHA256Stream()
    // The writes' buffers, reused once the writer and the upload behind it (`TeeWriter` holds
    // one write) are done with them.
    let writes = BufferPool(capacity: Self.writeSize + (1 << 18), keep: 2, lag: 1)
    var out = writes.take()
    func flush(force: Bool) async throws(LifeboatError) {
      guard !out.isEmpty, force || out.count >= Self.writeSize else { return }
      archiveHash.update(out)
      try await file.write(out)
      writes.recycle(out)
      out = writes.take()
    }
    zip.startEntry(path: name.snapshotEntryPath, compression: compression, modified: modified, into: &out)
    for try await batch in batches {
      try batch.withBytes { (bytes) throws(LifeboatError) in try zip.write(bytes, into: &out) }
      self.batches.recycle(batch)
      try await flush(force: false)
    }
    try zip.finishEntry(into: &out)
    if let stateFile {
      try zip.addEntry(path: name.stateEntryPath, contents: stateFile, compression: compression, modified: modified, into: &out)
    }
    zip.finish(into: &out)
    try await flush(force: true)
    return (archiveHash.finalize(), zip.offset)
  }
}

/// What each stage of the pipeline hands back.
private enum PipelineStage<Summary: Sendable>: Sendable {
  case produced(Summary)
  case hashed(SnapshotDigest.Result)
  case archived(sha256: String, size: UInt64)
}
