import Foundation
import LifeboatCore
import SnapshotStores
import TestSupport
import Testing

/// The one conformance suite, against every store: a local directory and S3 (real moto server,
/// over plain HTTP and over HTTPS with a certificate from a custom CA).
@Suite struct StoreConformanceTests {
  @Test func localStore() async throws {
    try await withTemporaryDirectory { dir in
      try await SnapshotStoreConformance.run(partSize: 5 << 20) { folder in
        LocalStore(directory: folder.isEmpty ? dir.path : dir.file(folder))
      }
    }
  }

  /// A write into a snapshot directory that did not exist yet creates it, and one that fails
  /// takes back what it created (a directory that already was there stays).
  @Test func anAbortedWriteRemovesTheDirectoriesItCreated() async throws {
    try await withTemporaryDirectory { dir in
      let existing = dir.file("kept")
      try makeDirectories(existing)
      let store = LocalStore(directory: existing + "/new/snapshots")
      let writer = try await store.makeWriter(for: "x.zip", contentType: ContentType.zip)
      #expect(isDirectory(store.directory))
      try await writer.write([1, 2, 3])
      await writer.abort()
      #expect(!FileManager.default.fileExists(atPath: existing + "/new"), "the directories the write made are gone")
      #expect(isDirectory(existing), "the directory that was there stays")

      let kept = try await store.makeWriter(for: "y.zip", contentType: ContentType.zip)
      try await kept.write([4])
      _ = try await kept.finish()
      let aborted = try await store.makeWriter(for: "z.zip", contentType: ContentType.zip)
      await aborted.abort()
      #expect(try await store.list().map(\.key) == ["y.zip"], "a directory holding a snapshot is never removed")
    }
  }

  @Test(arguments: [false, true])
  func s3Store(https: Bool) async throws {
    try await withMotoServer(https: https) { moto in
      try await moto.createBucket("snaps")
      let opened = OpenedStores()
      do {
        try await SnapshotStoreConformance.run(partSize: 5 << 20) { folder in
          await opened.add(try S3Store(configuration: try moto.configuration(bucket: "snaps", folder: folder)))
        }
      } catch {
        await opened.closeAll()
        throw error
      }
      await opened.closeAll()
    }
  }
}

/// S3 stores opened during a test, shut down at its end.
actor OpenedStores {
  private var stores: [S3Store] = []

  func add(_ store: S3Store) -> S3Store {
    stores.append(store)
    return store
  }

  func closeAll() async {
    for store in stores { await store.shutdown() }
    stores = []
  }
}
