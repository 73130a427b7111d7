import Foundation
import LifeboatCore
import SnapshotStores
import Testing

@testable import LifeboatEngine

/// `TeeWriter`: the local copy first and always; the upload fed by its own task, and never
/// written to once it failed, stalled or was aborted.
@Suite struct TeeWriterTests {
  /// An in-memory writer that records what it is given and can fail or hang on a given write.
  actor RecordingWriter: ObjectWriter {
    var received: [[UInt8]] = []
    var finished = false
    var aborted = false
    var writesAfterAbort = 0
    let failOnWrite: Int?
    let hangOnWrite: Int?

    init(failOnWrite: Int? = nil, hangOnWrite: Int? = nil) {
      self.failOnWrite = failOnWrite
      self.hangOnWrite = hangOnWrite
    }

    func write(_ bytes: [UInt8]) async throws(LifeboatError) {
      if aborted { writesAfterAbort += 1 }
      if received.count + 1 == failOnWrite { throw .storage("the bucket refused part \(received.count + 1)") }
      if received.count + 1 == hangOnWrite { try? await Task.sleep(for: .seconds(3600)) }
      received.append(bytes)
    }

    func finish() async throws(LifeboatError) -> StoredObject {
      finished = true
      return StoredObject(key: "k", size: UInt64(received.reduce(0) { $0 + $1.count }), modified: Date())
    }

    func abort() async { aborted = true }
  }

  static let batches: [[UInt8]] = (0..<20).map { i in [UInt8](repeating: UInt8(i), count: 1000 + i) }

  @Test func bothCopiesGetEveryByteInOrder() async throws {
    let local = RecordingWriter()
    let remote = RecordingWriter()
    let tee = TeeWriter(primary: local, secondary: remote)
    for batch in Self.batches { try await tee.write(batch) }
    _ = try await tee.finishPrimary()
    #expect(await tee.finishSecondary() == nil)
    #expect(await local.received == Self.batches)
    #expect(await remote.received == Self.batches)
    #expect(await local.finished)
    #expect(await remote.finished)
  }

  @Test func aFailedUploadIsAbortedAndTheLocalCopyCompletes() async throws {
    let local = RecordingWriter()
    let remote = RecordingWriter(failOnWrite: 3)
    let tee = TeeWriter(primary: local, secondary: remote)
    for batch in Self.batches { try await tee.write(batch) }
    _ = try await tee.finishPrimary()
    let failure = await tee.finishSecondary()
    #expect(failure?.message == "the bucket refused part 3")
    #expect(await local.received == Self.batches)
    #expect(await local.finished)
    #expect(await remote.aborted)
    #expect(await !remote.finished)
    #expect(await remote.received.count == 2)
    #expect(await remote.writesAfterAbort == 0, "nothing is sent after the abort")
  }

  @Test func aStalledUploadDoesNotHoldTheLocalCopy() async throws {
    let local = RecordingWriter()
    let remote = RecordingWriter(hangOnWrite: 2)
    let tee = TeeWriter(primary: local, secondary: remote, stallLimit: .milliseconds(300))
    let started = ContinuousClock.now
    for batch in Self.batches { try await tee.write(batch) }
    _ = try await tee.finishPrimary()
    let failure = await tee.finishSecondary()
    #expect(ContinuousClock.now - started < .seconds(30))
    #expect(failure?.message.contains("made no progress") == true, "\(String(describing: failure))")
    #expect(await local.received == Self.batches)
    #expect(await local.finished)
    #expect(await remote.aborted)
    #expect(await !remote.finished)
  }

  @Test func abortStopsBothAndWritesNothingAfter() async throws {
    let local = RecordingWriter()
    let remote = RecordingWriter()
    let tee = TeeWriter(primary: local, secondary: remote)
    for batch in Self.batches.prefix(5) { try await tee.write(batch) }
    await tee.abort()
    #expect(await local.aborted)
    #expect(await remote.aborted)
    #expect(await remote.writesAfterAbort == 0)
    #expect(await !remote.finished)
  }
}
