import AsyncAlgorithms
import LifeboatCore
import SnapshotStores

/// Sends the archive's bytes to the local file (primary) and to a remote store (secondary) in
/// the same pass. The local copy comes first: a local failure fails the save. A remote failure
/// only ends the upload (aborted at once, so no unfinished upload is left); the local archive is
/// still completed and the failure reported at the end. An upload that stops making progress
/// for `stallLimit` counts as failed, so a hung S3 never holds up the local save for long.
///
/// The secondary is fed by a task of its own through a rendezvous channel: while it takes one
/// write (encrypting it, buffering it into a part), the pipeline already compresses the next.
/// At most one write waits for it, so memory stays bounded.
actor TeeWriter: ObjectWriter {
  let primary: any ObjectWriter
  let secondary: (any ObjectWriter)?
  let stallLimit: Duration
  private let queue = AsyncChannel<[UInt8]>()
  private var pump: Task<LifeboatError?, Never>?
  private var secondaryError: LifeboatError?

  init(primary: any ObjectWriter, secondary: (any ObjectWriter)?, stallLimit: Duration = .seconds(120)) {
    self.primary = primary
    self.secondary = secondary
    self.stallLimit = stallLimit
  }

  func write(_ bytes: [UInt8]) async throws(LifeboatError) {
    try await primary.write(bytes)
    guard let secondary else { return }
    if pump == nil { pump = Self.startPump(queue, into: secondary, limit: stallLimit) }
    await queue.send(bytes)
  }

  /// Writes what `queue` brings to `writer` until the queue ends; after a failure (aborted at
  /// once) it only drains. Returns the failure.
  private static func startPump(
    _ queue: AsyncChannel<[UInt8]>, into writer: any ObjectWriter, limit: Duration
  ) -> Task<LifeboatError?, Never> {
    Task {
      var failure: LifeboatError?
      for await bytes in queue where failure == nil {
        if let error = await write(bytes, to: writer, limit: limit) {
          failure = error
          await writer.abort()
        }
      }
      return failure
    }
  }

  /// Writes to `writer`, giving up after `limit`; returns the error, nil on success.
  private static func write(_ bytes: [UInt8], to writer: any ObjectWriter, limit: Duration) async -> LifeboatError? {
    await withTaskGroup(of: LifeboatError??.self) { group in
      group.addTask {
        do {
          try await writer.write(bytes)
          return .some(nil)
        } catch let error as LifeboatError {
          return .some(error)
        } catch {
          return .some(.storage("\(error)"))
        }
      }
      group.addTask {
        try? await Task.sleep(for: limit)
        return Task.isCancelled ? nil : .some(.storage("the upload made no progress for \(limit)"))
      }
      defer { group.cancelAll() }
      while let result = await group.next() {
        if let outcome = result { return outcome }
      }
      return nil
    }
  }

  /// Publishes the local archive.
  func finishPrimary() async throws(LifeboatError) -> StoredObject {
    try await primary.finish()
  }

  /// Completes the upload once the pump has written everything; returns why it failed, if it
  /// did (then nothing is left remotely).
  func finishSecondary() async -> LifeboatError? {
    guard let secondary else { return nil }
    if let secondaryError { return secondaryError }
    queue.finish()
    if let failure = await pump?.value {
      secondaryError = failure
      return failure
    }
    do {
      try await secondary.finish()
      return nil
    } catch {
      secondaryError = error
      return error
    }
  }

  func finish() async throws(LifeboatError) -> StoredObject {
    let object = try await finishPrimary()
    if let error = await finishSecondary() { throw error }
    return object
  }

  /// Ends the upload (the pump stopped first, so nothing is written after the abort).
  func abortSecondary() async {
    queue.finish()
    pump?.cancel()
    _ = await pump?.value
    await secondary?.abort()
  }

  /// The local `.part` goes first: it is gone even while a server that stopped answering holds
  /// up the upload's abort.
  func abort() async {
    await primary.abort()
    await abortSecondary()
  }
}
