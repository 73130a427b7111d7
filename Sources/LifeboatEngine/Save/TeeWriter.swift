import LifeboatCore
import SnapshotStores

/// Sends the archive's bytes to the local file (primary) and to a remote store (secondary) in
/// the same pass. The local copy comes first: a local failure fails the save. A remote failure
/// only ends the upload (aborted at once, so no unfinished upload is left); the local archive is
/// still completed and the failure reported at the end.
actor TeeWriter: ObjectWriter {
  let primary: any ObjectWriter
  let secondary: (any ObjectWriter)?
  private(set) var secondaryError: LifeboatError?

  init(primary: any ObjectWriter, secondary: (any ObjectWriter)?) {
    self.primary = primary
    self.secondary = secondary
  }

  func write(_ bytes: [UInt8]) async throws(LifeboatError) {
    try await primary.write(bytes)
    guard let secondary, secondaryError == nil else { return }
    do { try await secondary.write(bytes) } catch {
      secondaryError = error
      await secondary.abort()
    }
  }

  /// Publishes the local archive.
  func finishPrimary() async throws(LifeboatError) -> StoredObject {
    try await primary.finish()
  }

  /// Completes the upload; returns why it failed, if it did (then nothing is left remotely).
  func finishSecondary() async -> LifeboatError? {
    guard let secondary else { return nil }
    if let secondaryError { return secondaryError }
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

  func abort() async {
    await primary.abort()
    await secondary?.abort()
  }
}
