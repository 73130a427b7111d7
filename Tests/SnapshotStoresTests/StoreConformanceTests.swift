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
