import Foundation
import LifeboatCore

/// Writes one S3 object: bytes gather into parts of `partSize`; each full part uploads while
/// later bytes are still being written, at most `partsInFlight` at once (so memory stays near
/// (partsInFlight + 1) × partSize). Objects smaller than one part are a single PUT. `finish`
/// completes the upload; any failure, and `abort`, aborts it, so no unfinished upload is left.
actor S3MultipartWriter: ObjectWriter {
  private let store: S3Store
  private let key: String
  private let contentType: String
  private let partSize: Int
  private let partsInFlight: Int
  private var buffer: [UInt8] = []
  private var uploadId: String?
  private var nextPart = 1
  private var inFlight: [(number: Int, task: Task<S3Store.UploadedPart, any Error>)] = []
  private var uploaded: [S3Store.UploadedPart] = []
  private var total: UInt64 = 0
  private var failed: LifeboatError?

  init(store: S3Store, key: String, contentType: String) {
    self.store = store
    self.key = key
    self.contentType = contentType
    self.partSize = max(5 << 20, store.configuration.partSize)
    self.partsInFlight = max(1, store.configuration.partsInFlight)
  }

  func write(_ bytes: [UInt8]) async throws(LifeboatError) {
    if let failed { throw failed }
    total += UInt64(bytes.count)
    var rest = bytes[...]
    while !rest.isEmpty {
      if buffer.isEmpty { buffer.reserveCapacity(partSize) }
      let take = min(partSize - buffer.count, rest.count)
      buffer.append(contentsOf: rest.prefix(take))
      rest = rest.dropFirst(take)
      if buffer.count == partSize {
        // Hand the full buffer over whole (no copy) and start the next one.
        let part = buffer
        buffer = []
        try await launch(part)
      }
    }
  }

  private func launch(_ part: [UInt8]) async throws(LifeboatError) {
    do {
      if uploadId == nil { uploadId = try await store.createMultipartUpload(key, contentType: contentType) }
      while inFlight.count >= partsInFlight { try await collectOldest() }
    } catch {
      failed = error
      throw error
    }
    let number = nextPart
    nextPart += 1
    let (store, key, uploadId) = (self.store, self.key, self.uploadId!)
    inFlight.append((number, Task { try await store.uploadPart(key, uploadId: uploadId, number: number, part) }))
  }

  private func collectOldest() async throws(LifeboatError) {
    let (number, task) = inFlight.removeFirst()
    do {
      // A cancelled save (Ctrl-C, SIGTERM) stops the part's upload too, at once: a server that
      // stopped answering would otherwise hold it until the request's deadline.
      uploaded.append(try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() })
    } catch let error as LifeboatError {
      failed = error
      throw error
    } catch {
      let wrapped = LifeboatError.storage("upload part \(number) of \(key) to \(store.location): \(error)")
      failed = wrapped
      throw wrapped
    }
  }

  func finish() async throws(LifeboatError) -> StoredObject {
    if let failed {
      await abort()
      throw failed
    }
    do {
      if let uploadId {
        if !buffer.isEmpty {
          try await launch(buffer)
          buffer = []
        }
        while !inFlight.isEmpty { try await collectOldest() }
        try await store.completeMultipartUpload(key, uploadId: uploadId, parts: uploaded.sorted { $0.number < $1.number }, size: total)
        self.uploadId = nil
        await store.abortStrayUploads(key, keeping: nil)
      } else {
        try await store.putObject(key, buffer, contentType: contentType)
        buffer = []
      }
    } catch {
      await abort()
      throw error
    }
    return StoredObject(key: key, size: total, modified: Date())
  }

  /// How long `abort` waits for the server: a save that failed or was interrupted because S3
  /// stopped answering must not hang in its cleanup.
  static let abortLimit: Duration = .seconds(10)

  func abort() async {
    let (store, key, parts, uploadId) = (self.store, self.key, inFlight, self.uploadId)
    inFlight = []
    buffer = []
    self.uploadId = nil
    let cleanup = Task {
      for (_, task) in parts { task.cancel() }
      for (_, task) in parts { _ = try? await task.value }
      if let uploadId {
        await store.abortMultipartUpload(key, uploadId: uploadId)
        await store.abortStrayUploads(key, keeping: nil)
      }
    }
    if !(await cleanup.finishes(within: Self.abortLimit)) {
      store.logger.warning(
        "S3: aborting the upload of \(key) at \(store.location) got no answer within \(Self.abortLimit); the bucket may keep an unfinished upload (`snapshot prune` removes it once it is a day old)")
    }
  }
}
