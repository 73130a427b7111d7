import Foundation
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing
import ZIPFoundation

/// Writes archives in RKE's layout with ZipWriter and reads them back with ZipReader,
/// ZIPFoundation, Python's zipfile and Info-ZIP's `unzip -t`.
@Suite struct ZipArchiveTests {
  static func writeArchive(
    at path: String, name: SnapshotName, snapshot: [UInt8], state: [UInt8]?, compression: Compression
  ) throws {
    var zip = ZipWriter()
    var out: [UInt8] = []
    zip.startEntry(path: name.snapshotEntryPath, compression: compression, into: &out)
    var offset = 0
    while offset < snapshot.count {
      let end = min(snapshot.count, offset + 70_000)
      try Array(snapshot[offset..<end]).withBytes { (b) throws(LifeboatError) in try zip.write(b, into: &out) }
      offset = end
    }
    try zip.finishEntry(into: &out)
    if let state {
      try zip.addEntry(path: name.stateEntryPath, contents: state, compression: compression, into: &out)
    }
    zip.finish(into: &out)
    #expect(zip.offset == UInt64(out.count))
    try Data(out).write(to: URL(fileURLWithPath: path))
  }

  @Test(arguments: Compression.allCases)
  func roundTripsInEveryReader(_ compression: Compression) async throws {
    try await withTemporaryDirectory { dir in
      let name = try SnapshotName("rke_etcd_snapshot_2020-10-15T16:47:24+02:00")
      let snapshot = CompressionTests.sample(2 << 20)
      let state = Array("{\"desiredState\":{}}".utf8)
      let path = dir.file(name.archiveFileName)
      try Self.writeArchive(at: path, name: name, snapshot: snapshot, state: state, compression: compression)

      // Lifeboat's reader.
      let reader = try await ZipReader(path: path)
      #expect(reader.entries.map(\.path) == [name.snapshotEntryPath, name.stateEntryPath])
      let layout = try SnapshotArchiveLayout(entries: reader.entries, name: name, archivePath: path)
      var read: [UInt8] = []
      try await reader.read(layout.snapshot) { read.append(contentsOf: $0) }
      #expect(read == snapshot)
      #expect(try await reader.readAll(layout.stateFile!) == state)

      // ZIPFoundation.
      let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read)
      var viaZIPFoundation = Data()
      let entry = try #require(archive[name.snapshotEntryPath])
      _ = try archive.extract(entry) { viaZIPFoundation.append($0) }
      #expect([UInt8](viaZIPFoundation) == snapshot)

      // Python's zipfile: exactly RKE's entry paths, CRCs good, same bytes.
      let python = try await ProcessRunner.run(
        "/usr/bin/env",
        [
          "python3", "-c",
          """
          import zipfile, hashlib, sys
          z = zipfile.ZipFile(sys.argv[1])
          print("\\n".join(z.namelist()))
          print("testzip", z.testzip())
          print(hashlib.sha256(z.read(z.namelist()[0])).hexdigest())
          """, path,
        ])
      #expect(python.status == 0, "\(python.stderr)")
      let lines = python.stdout.split(separator: "\n").map(String.init)
      #expect(Array(lines.prefix(2)) == [name.snapshotEntryPath, name.stateEntryPath])
      #expect(lines[2] == "testzip None")
      #expect(lines[3] == sha256Hex(snapshot))

      // Info-ZIP: `unzip -t` (plain `unzip` refuses absolute paths by design).
      let unzip = try await ProcessRunner.run("/usr/bin/unzip", ["-t", path])
      #expect(unzip.status == 0, "\(unzip.stdout)")
      #expect(unzip.stdout.contains("No errors detected"))
    }
  }

  @Test func aFlippedByteFailsTheCRC() async throws {
    try await withTemporaryDirectory { dir in
      let name = try SnapshotName("flip")
      let path = dir.file("flip.zip")
      try Self.writeArchive(at: path, name: name, snapshot: CompressionTests.sample(1 << 20), state: nil, compression: .none)
      var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
      bytes[500_000] ^= 0x01
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      try await Self.expectFirstEntryRefused(path, saying: "CRC-32")
    }
  }

  /// Reading the first entry of the archive at `path` is a verification error saying `text`.
  static func expectFirstEntryRefused(_ path: String, saying text: String) async throws {
    let reader = try await ZipReader(path: path)
    await #expect {
      try await reader.read(reader.entries[0]) { _ in }
    } throws: { error in
      let e = try #require(error as? LifeboatError)
      return e.kind == .verification && e.message.contains(text)
    }
  }

  /// Found by a review: a central directory that overstates an entry's compressed size passed
  /// (the Deflate stream ends early; the bytes after it were ignored).
  @Test func anOverstatedCompressedSizeIsRefused() async throws {
    try await withTemporaryDirectory { dir in
      let name = try SnapshotName("over")
      let path = dir.file("over.zip")
      try Self.writeArchive(
        at: path, name: name, snapshot: CompressionTests.sample(300_000), state: Array("{\"a\":1}".utf8), compression: .fast)
      var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
      let central = try #require((0..<(bytes.count - 4)).first { bytes[$0..<($0 + 4)].elementsEqual([0x50, 0x4B, 0x01, 0x02]) })
      let size = bytes[(central + 20)..<(central + 24)].reversed().reduce(0) { $0 << 8 | UInt32($1) }
      try #require(size != 0xFFFF_FFFF, "a 32-bit size in the central directory")
      let overstated = size + 40  // into the state entry's local header, still inside the file
      for i in 0..<4 { bytes[central + 20 + i] = UInt8(truncatingIfNeeded: overstated >> (8 * i)) }
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      try await Self.expectFirstEntryRefused(path, saying: "before its recorded size")
    }
  }

  @Test func truncatedArchivesAreRefused() async throws {
    try await withTemporaryDirectory { dir in
      let name = try SnapshotName("cut")
      let path = dir.file("cut.zip")
      try Self.writeArchive(at: path, name: name, snapshot: CompressionTests.sample(300_000), state: nil, compression: .fast)
      let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
      try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
      await #expect {
        _ = try await ZipReader(path: path)
      } throws: { error in
        (error as? LifeboatError)?.kind == .verification
      }
    }
  }

  @Test func relativeEntryPathsAreMatchedByLastComponent() throws {
    let entries = [
      ZipEntry(path: "backup/snap", method: 8, flags: 0, crc32: 0, compressedSize: 0, uncompressedSize: 0, localHeaderOffset: 0),
      ZipEntry(path: "etc/kubernetes/snap.rkestate", method: 8, flags: 0, crc32: 0, compressedSize: 0, uncompressedSize: 0, localHeaderOffset: 10),
      ZipEntry(path: "/backup/snap1", method: 8, flags: 0, crc32: 0, compressedSize: 0, uncompressedSize: 0, localHeaderOffset: 20),
    ]
    let layout = try SnapshotArchiveLayout(entries: entries, name: try SnapshotName("snap"), archivePath: "x.zip")
    #expect(layout.snapshot.path == "backup/snap")
    #expect(layout.stateFile?.path == "etc/kubernetes/snap.rkestate")
    #expect(throws: LifeboatError.self) {
      try SnapshotArchiveLayout(entries: entries, name: try SnapshotName("sna"), archivePath: "x.zip")
    }
  }
}

func sha256Hex(_ bytes: [UInt8]) -> String {
  var digest = SnapshotDigest()
  digest.update(bytes)
  return digest.finalize().sha256
}

func withTemporaryDirectorySync<R>(_ body: (TemporaryDirectory) throws -> R) throws -> R {
  let directory = try TemporaryDirectory()
  defer { directory.remove() }
  return try body(directory)
}
