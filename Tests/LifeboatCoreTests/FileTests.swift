import Foundation
import LifeboatCore
import SnapshotStores
import TestSupport
import Testing

@Suite struct AtomicFileTests {
  @Test func nothingExistsUnderTheFinalNameUntilCommit() throws {
    try withTemporaryDirectorySync { dir in
      let path = dir.file("snap.zip")
      let file = try AtomicFile(finalPath: path)
      try file.write(Array("hello".utf8))
      #expect(!FileManager.default.fileExists(atPath: path))
      #expect(FileManager.default.fileExists(atPath: path + ".part"))
      try file.commit()
      #expect(FileManager.default.fileExists(atPath: path))
      #expect(!FileManager.default.fileExists(atPath: path + ".part"))
      let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
      #expect(mode == 0o600)
    }
  }

  @Test func discardLeavesNothing() throws {
    try withTemporaryDirectorySync { dir in
      let path = dir.file("snap.zip")
      let file = try AtomicFile(finalPath: path)
      try file.write(Array("partial".utf8))
      file.discard()
      #expect(dir.contents().isEmpty)
    }
  }

  /// What a second Ctrl-C calls before quitting: every `.part` still being written is gone;
  /// published files and other processes' files are not touched.
  @Test func removeUnfinishedRemovesOnlyThisProcessesOpenParts() throws {
    try withTemporaryDirectorySync { dir in
      let published = try AtomicFile(finalPath: dir.file("done.zip"))
      try published.write(Array("whole".utf8))
      try published.commit()
      let discarded = try AtomicFile(finalPath: dir.file("gone.zip"))
      discarded.discard()
      let open = try AtomicFile(finalPath: dir.file("open.zip"))
      try open.write(Array("partial".utf8))
      try Data("someone else's".utf8).write(to: URL(fileURLWithPath: dir.file("other.zip.part")))
      AtomicFile.removeUnfinished()
      #expect(dir.contents().sorted() == ["done.zip", "other.zip.part"])
      open.discard()
    }
  }

  /// The same quit takes back the directories made for unfinished files, once their `.part`
  /// files are gone; a directory holding anything else, or whose file was published, stays.
  @Test func unfinishedDirectoriesAreRemovedWhenEmpty() throws {
    try withTemporaryDirectorySync { dir in
      let emptied = try makeDirectories(dir.file("a/b"))
      let open = try AtomicFile(finalPath: dir.file("a/b/x.zip"), createdDirectories: emptied)
      let holding = try makeDirectories(dir.file("c/d"))
      let held = try AtomicFile(finalPath: dir.file("c/d/y.zip"), createdDirectories: holding)
      try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file("c/d/kept")))
      let finished = try AtomicFile(finalPath: dir.file("e/z.zip"), createdDirectories: try makeDirectories(dir.file("e")))
      try finished.write(Array("whole".utf8))
      try finished.commit()
      AtomicFile.removeUnfinished()
      #expect(dir.contents().sorted() == ["c", "e"])
      #expect(isDirectory(dir.file("c/d")))
      open.discard()
      held.discard()
    }
  }

  /// A discarded file takes the directories made for it along, while they are empty.
  @Test func aDiscardedFileTakesBackItsDirectories() throws {
    try withTemporaryDirectorySync { dir in
      let file = try AtomicFile(finalPath: dir.file("n/m/x.zip"), createdDirectories: try makeDirectories(dir.file("n/m")))
      try file.write([1, 2, 3])
      file.discard()
      #expect(dir.contents().isEmpty)
    }
  }

  @Test func neverOverwritesAnExistingFile() throws {
    try withTemporaryDirectorySync { dir in
      let path = dir.file("snap.zip")
      try Data("keep".utf8).write(to: URL(fileURLWithPath: path))
      #expect(throws: LifeboatError.self) { try AtomicFile(finalPath: path) }
      #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep")
    }
  }

  @Test func aStalePartFileIsReplacedButALockedOneIsNot() throws {
    try withTemporaryDirectorySync { dir in
      let path = dir.file("snap.zip")
      try Data("stale".utf8).write(to: URL(fileURLWithPath: path + ".part"))
      let first = try AtomicFile(finalPath: path)
      #expect(throws: LifeboatError.self) { try AtomicFile(finalPath: path) }
      first.discard()
    }
  }

  @Test func directoriesUnderARegularFileFailWithOneLine() throws {
    try withTemporaryDirectorySync { dir in
      try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file("file")))
      #expect {
        try makeDirectories(dir.file("file/snapshots"))
      } throws: { error in
        let e = try #require(error as? LifeboatError)
        return e.kind == .storage && e.message.contains(dir.file("file")) && !e.message.contains("\n")
      }
    }
  }
}

@Suite struct SnapshotCatalogTests {
  @Test func listsArchivesLegacyFilesAndSkipsPartsAndStrangers() async throws {
    try await withTemporaryDirectory { dir in
      let store = LocalStore(directory: dir.path)
      let name = try SnapshotName("2020-10-15T14:53:26Z_etcd")
      try ZipArchiveTests.writeArchive(
        at: store.path(name.archiveFileName), name: name, snapshot: ChecksumTests.snapshotFile(pages: 4), state: nil,
        compression: .fast)
      // A legacy bare snapshot file: bbolt's magic at offset 16.
      var legacy = [UInt8](repeating: 0, count: 4096)
      legacy[16...19] = [0xED, 0xDA, 0x0C, 0xED]
      try Data(legacy).write(to: URL(fileURLWithPath: dir.file("old-snapshot")))
      try Data("not a snapshot".utf8).write(to: URL(fileURLWithPath: dir.file("notes.txt")))
      try Data("partial".utf8).write(to: URL(fileURLWithPath: dir.file("inflight.zip.part")))
      let listed = try await SnapshotCatalog(store: store).list()
      #expect(listed.map(\.name.value) == ["2020-10-15T14:53:26Z_etcd", "old-snapshot"])
      #expect(listed.map(\.kind) == [.archive, .legacy])
      #expect(listed[0].manifest == nil)
    }
  }

  @Test func findMatchesNamesExactly() async throws {
    try await withTemporaryDirectory { dir in
      let store = LocalStore(directory: dir.path)
      let name = try SnapshotName("myname1")
      try ZipArchiveTests.writeArchive(
        at: store.path(name.archiveFileName), name: name, snapshot: ChecksumTests.snapshotFile(pages: 2), state: nil,
        compression: .none)
      let catalog = SnapshotCatalog(store: store)
      #expect(try await catalog.find(name).path == store.path(name.archiveFileName))
      await #expect {
        try await catalog.find(try SnapshotName("myname"))
      } throws: { error in
        (error as? LifeboatError)?.kind == .notFound
      }
    }
  }

  @Test func aMissingDirectoryHoldsNoSnapshots() async throws {
    #expect(try await SnapshotCatalog(store: LocalStore(directory: "/nonexistent/lifeboat")).list().isEmpty)
  }
}

@Suite struct ManifestTests {
  @Test func roundTripsAndRejectsGarbage() throws {
    let manifest = Manifest(
      name: try SnapshotName("snap"), createdAt: Date(timeIntervalSince1970: 1_700_000_000),
      member: .init(name: "etcd-node1", id: "8e9e05c52164694d", clusterID: "cdf818194e3a8c32", endpoint: "https://127.0.0.11:2379", etcdVersion: "3.4.23"),
      revision: 42, dbSize: 20512, dbSHA256: String(repeating: "a", count: 64), archiveSHA256: String(repeating: "b", count: 64),
      archiveSize: 1000, compression: .fast, stateFile: true, noQuorum: false)
    let bytes = try manifest.encoded()
    #expect(try Manifest.decode(bytes, path: "m.json") == manifest)
    #expect(String(decoding: bytes, as: UTF8.self).contains("\"createdAt\" : \"2023-11-14T22:13:20Z\""))
    #expect(throws: LifeboatError.self) { try Manifest.decode(Array("{\"name\":\"../x\"}".utf8), path: "m.json") }
  }

  /// Numbers a manifest claims are range-checked before any arithmetic: an overflowing size is a
  /// verification error naming file and field, never a crash later.
  @Test(arguments: [
    ("\"dbSize\" : 20512", "\"dbSize\" : 18446744073709551615", "dbSize"),
    ("\"archiveSize\" : 1000", "\"archiveSize\" : 1125899906842625", "archiveSize"),
    ("\"revision\" : 42", "\"revision\" : -1", "revision"),
    ("\"dbSHA256\" : \"aaaa", "\"dbSHA256\" : \"zzzz", "dbSHA256"),
  ])
  func numbersOutOfRangeAreVerificationErrors(original: String, replacement: String, field: String) throws {
    let manifest = Manifest(
      name: try SnapshotName("snap"), createdAt: Date(timeIntervalSince1970: 1_700_000_000),
      member: .init(name: "etcd-node1", id: "8e9e05c52164694d", clusterID: "cdf818194e3a8c32", endpoint: "https://127.0.0.11:2379", etcdVersion: "3.4.23"),
      revision: 42, dbSize: 20512, dbSHA256: String(repeating: "a", count: 64), archiveSHA256: String(repeating: "b", count: 64),
      archiveSize: 1000, compression: .fast, stateFile: true, noQuorum: false)
    let text = String(decoding: try manifest.encoded(), as: UTF8.self)
    #expect(text.contains(original), "\(text)")
    let bad = Array(text.replacingOccurrences(of: original, with: replacement).utf8)
    do {
      _ = try Manifest.decode(bad, path: "/snaps/snap.manifest.json")
      Issue.record("\(field) out of range was accepted")
    } catch {
      #expect(error.kind == .verification)
      #expect(error.message.contains("/snaps/snap.manifest.json") && error.message.contains(field), "\(error.message)")
    }
  }
}
