import Foundation
import LifeboatCore
import LifeboatEngine
import TestSupport
import Testing

/// Entries and offsets past 4 GiB switch to ZIP64. The data is generated (zeros), and the stored
/// variant writes its zero blocks as holes, so the test costs seconds and no disk space.
@Suite(.serialized) struct Zip64Tests {
  static let bigSize: UInt64 = (4 << 30) + 3 * (1 << 20) + 12345

  /// Writes an archive with a `bigSize` zero entry and a small state entry after it.
  static func writeBig(to path: String, compression: Compression) throws -> ZipWriter.EntrySummary {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    #expect(fd >= 0)
    defer { close(fd) }
    var zip = ZipWriter()
    var out: [UInt8] = []
    var position: off_t = 0
    func flush(hole: Bool = false) {
      // The stored entry's data is all zeros: written as a hole, a sparse file.
      if hole {
        position += off_t(out.count)
        lseek(fd, position, SEEK_SET)
      } else {
        out.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
        position += off_t(out.count)
      }
      out.removeAll(keepingCapacity: true)
    }
    let name = try SnapshotName("big")
    zip.startEntry(path: name.snapshotEntryPath, compression: compression, into: &out)
    flush()
    let chunk = [UInt8](repeating: 0, count: 1 << 20)
    var written: UInt64 = 0
    while written < bigSize {
      let n = Int(min(UInt64(chunk.count), bigSize - written))
      try Array(chunk.prefix(n)).withBytes { (b) throws(LifeboatError) in try zip.write(b, into: &out) }
      written += UInt64(n)
      flush(hole: compression == .none)
    }
    let summary = try zip.finishEntry(into: &out)
    try zip.addEntry(path: name.stateEntryPath, contents: Array("{\"state\":1}".utf8), compression: compression, into: &out)
    zip.finish(into: &out)
    flush()
    ftruncate(fd, position)
    return summary
  }

  static func pythonCheck(_ path: String, readBig: Bool) async throws -> [String] {
    let result = try await ProcessRunner.run(
      "/usr/bin/env",
      [
        "python3", "-c",
        """
        import zipfile, sys, zlib
        z = zipfile.ZipFile(sys.argv[1])
        for i in z.infolist():
            print(i.filename, i.file_size, i.header_offset)
        print(z.read(z.infolist()[1]).decode())
        if sys.argv[2] == "1":
            crc = 0
            with z.open(z.infolist()[0]) as f:
                while True:
                    b = f.read(1 << 22)
                    if not b: break
                    crc = zlib.crc32(b, crc)
            print("crc", crc == z.infolist()[0].CRC)
        """, path, readBig ? "1" : "0",
      ])
    #expect(result.status == 0, "\(result.stderr)")
    return result.stdout.split(separator: "\n").map(String.init)
  }

  @Test func deflatedEntryOver4GiB() async throws {
    try await withTemporaryDirectory { dir in
      let path = dir.file("big.zip")
      let summary = try Self.writeBig(to: path, compression: .fast)
      #expect(summary.uncompressedSize == Self.bigSize)
      let lines = try await Self.pythonCheck(path, readBig: true)
      #expect(lines[0] == "/backup/big \(Self.bigSize) 0")
      #expect(lines[2] == "{\"state\":1}")
      #expect(lines[3] == "crc True")
      let reader = try await ZipReader(path: path)
      #expect(reader.entries[0].uncompressedSize == Self.bigSize)
      let unzip = try await ProcessRunner.run("/usr/bin/unzip", ["-t", path])
      #expect(unzip.status == 0, "\(unzip.stdout)")
    }
  }

  @Test func storedEntryPushesTheNextOffsetPast4GiB() async throws {
    try await withTemporaryDirectory { dir in
      let path = dir.file("big-stored.zip")
      let summary = try Self.writeBig(to: path, compression: .none)
      #expect(summary.compressedSize == Self.bigSize)
      let lines = try await Self.pythonCheck(path, readBig: false)
      let second = lines[1].split(separator: " ")
      #expect(second[0] == "/etc/kubernetes/big.rkestate")
      #expect(UInt64(second[2])! > 0xFFFF_FFFF)
      #expect(lines[2] == "{\"state\":1}")
      let reader = try await ZipReader(path: path)
      #expect(reader.entries.count == 2)
      #expect(try await reader.readAll(reader.entries[1]) == Array("{\"state\":1}".utf8))
      let unzip = try await ProcessRunner.run("/usr/bin/unzip", ["-t", path])
      #expect(unzip.status == 0, "\(unzip.stdout)")
    }
  }
}
