import Foundation
import LifeboatCore
import TestSupport
import Testing

/// The native reader's agreement with etcdctl is checked against real etcd databases in the
/// integration tests; here: what it does with files that are not etcd databases.
@Suite struct BoltReaderTests {
  @Test func refusesFilesThatAreNotDatabases() throws {
    try withTemporaryDirectorySync { dir in
      let path = dir.file("garbage.db")
      try Data((0..<16384).map { UInt8(truncatingIfNeeded: $0 * 13) }).write(to: URL(fileURLWithPath: path))
      #expect {
        try SnapshotStatus.read(path: path)
      } throws: { error in
        let e = try #require(error as? LifeboatError)
        return e.kind == .verification && e.message.contains("not an etcd database")
      }
    }
  }

  @Test func refusesADatabaseWhoseMetaPagesAreDamaged() throws {
    try withTemporaryDirectorySync { dir in
      // Two meta pages with the right magic and version but a wrong checksum.
      var bytes = [UInt8](repeating: 0, count: 4 * 4096)
      for page in 0..<2 {
        let base = page * 4096 + 16
        bytes.replaceSubrange(base..<(base + 12), with: [0xED, 0xDA, 0x0C, 0xED, 2, 0, 0, 0, 0, 0x10, 0, 0])
      }
      let path = dir.file("damaged.db")
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      #expect(throws: LifeboatError.self) { try SnapshotStatus.read(path: path) }
    }
  }
}
