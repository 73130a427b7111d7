import Foundation
import LifeboatCore
import SnapshotStores
import Testing

/// The contract of `SnapshotStore` (see its doc comment), as one suite every implementation
/// runs. `make(folder)` returns a store over an empty location; stores made with different
/// folders share the same underlying bucket or directory tree.
public enum SnapshotStoreConformance {
  public static func run(
    partSize: Int, make: @escaping (_ folder: String) async throws -> any SnapshotStore
  ) async throws {
    let store = try await make("")
    try await roundTrips(store, sizes: [0, 1, 1000, partSize * 2 + partSize / 2 + 7])
    try await abortedWritesLeaveNothing(store, size: partSize + 1)
    try await namesAreExact(store)
    try await deletingTwiceIsFine(store)
    try await rangesAreExact(store)
    try await concurrentWritesOfDifferentNames(store)
    try await badKeysAreRefused(store)
    try await foldersAreSeparate(root: store, folder: try await make("prod/cluster-a"))
  }

  static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    return (0..<count).map { _ in
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return UInt8(truncatingIfNeeded: state >> 33)
    }
  }

  static func roundTrips(_ store: any SnapshotStore, sizes: [Int]) async throws {
    for size in sizes {
      let key = "round-trip-\(size).zip"
      let data = bytes(size, seed: UInt64(size))
      let writer = try await store.makeWriter(for: key, contentType: ContentType.zip)
      var offset = 0
      while offset < data.count {
        let end = min(data.count, offset + 700_001)
        try await writer.write(Array(data[offset..<end]))
        offset = end
      }
      let finished = try await writer.finish()
      #expect(finished.size == UInt64(size), "size of \(key)")
      #expect(try await store.stat(key).size == UInt64(size), "stat of \(key)")
      #expect(try await store.readAll(key, limit: 1 << 30) == data, "content of \(key) in \(store.location)")
      #expect(try await store.list().contains { $0.key == key && $0.size == UInt64(size) })
      try await store.delete(key)
    }
  }

  static func abortedWritesLeaveNothing(_ store: any SnapshotStore, size: Int) async throws {
    let writer = try await store.makeWriter(for: "aborted.zip", contentType: ContentType.zip)
    try await writer.write(bytes(size, seed: 1))
    await writer.abort()
    #expect(try await store.list().allSatisfy { !$0.key.hasPrefix("aborted") }, "an aborted write is invisible")
    await #expect(throws: LifeboatError.self) { try await store.stat("aborted.zip") }
    if let s3 = store as? S3Store {
      #expect(try await s3.unfinishedUploads().isEmpty, "no unfinished multipart upload is left")
    }
  }

  static func namesAreExact(_ store: any SnapshotStore) async throws {
    try await store.put("myname1.zip", bytes(10, seed: 2), contentType: ContentType.zip)
    await #expect {
      try await store.stat("myname.zip")
    } throws: { error in
      (error as? LifeboatError)?.kind == .notFound
    }
    await #expect {
      try await SnapshotCatalog(store: store).find(try SnapshotName("myname"))
    } throws: { error in
      (error as? LifeboatError)?.kind == .notFound
    }
    await #expect {
      _ = try await store.readAll("myname.zip")
    } throws: { error in
      (error as? LifeboatError)?.kind == .notFound
    }
    try await store.delete("myname1.zip")
  }

  static func deletingTwiceIsFine(_ store: any SnapshotStore) async throws {
    try await store.put("twice.zip", bytes(3, seed: 3), contentType: ContentType.zip)
    try await store.delete("twice.zip")
    try await store.delete("twice.zip")
    try await store.delete("never-existed.zip")
    #expect(try await store.exists("twice.zip") == false)
  }

  static func rangesAreExact(_ store: any SnapshotStore) async throws {
    let data = bytes(100_000, seed: 4)
    try await store.put("ranged.zip", data, contentType: ContentType.zip)
    for range: Range<UInt64> in [0..<1, 5..<105, 99_990..<100_000, 0..<100_000, 70..<70] {
      var got: [UInt8] = []
      try await store.read("ranged.zip", range: range) { got.append(contentsOf: $0) }
      #expect(got == Array(data[Int(range.lowerBound)..<Int(range.upperBound)]), "range \(range)")
    }
    try await store.delete("ranged.zip")
  }

  static func concurrentWritesOfDifferentNames(_ store: any SnapshotStore) async throws {
    let names = (0..<4).map { "concurrent-\($0).zip" }
    try await withThrowingTaskGroup(of: Void.self) { group in
      for (i, name) in names.enumerated() {
        group.addTask { try await store.put(name, bytes(200_000 + i, seed: UInt64(10 + i)), contentType: ContentType.zip) }
      }
      try await group.waitForAll()
    }
    for (i, name) in names.enumerated() {
      #expect(try await store.readAll(name) == bytes(200_000 + i, seed: UInt64(10 + i)))
      try await store.delete(name)
    }
  }

  static func badKeysAreRefused(_ store: any SnapshotStore) async throws {
    for key in ["../x.zip", "a/b.zip", "", ".."] {
      await #expect {
        _ = try await store.makeWriter(for: key, contentType: ContentType.zip)
      } throws: { error in
        (error as? LifeboatError)?.kind == .usage
      }
    }
  }

  static func foldersAreSeparate(root: any SnapshotStore, folder: any SnapshotStore) async throws {
    try await root.put("at-root.zip", bytes(5, seed: 5), contentType: ContentType.zip)
    try await folder.put("in-folder.zip", bytes(6, seed: 6), contentType: ContentType.zip)
    #expect(try await folder.list().map(\.key) == ["in-folder.zip"])
    #expect(try await root.list().map(\.key).contains("at-root.zip"))
    #expect(try await root.list().map(\.key).contains("in-folder.zip") == false)
    #expect(try await folder.readAll("in-folder.zip") == bytes(6, seed: 6))
    try await root.delete("at-root.zip")
    try await folder.delete("in-folder.zip")
  }
}
