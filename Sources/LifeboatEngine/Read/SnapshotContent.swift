import Foundation
import LifeboatCore

/// Opens a local snapshot (archive or legacy file) and streams its etcd database, checking
/// everything the format allows on the way: the ZIP structure, CRC-32 and sizes, etcd's
/// SHA-256 trailer, and the state file entry.
struct SnapshotContent {
  let snapshot: LocalSnapshot
  private let reader: ZipReader?
  private let layout: SnapshotArchiveLayout?

  init(_ snapshot: LocalSnapshot) throws(LifeboatError) {
    self.snapshot = snapshot
    switch snapshot.kind {
    case .archive:
      let reader = try ZipReader(path: snapshot.path)
      self.reader = reader
      self.layout = try SnapshotArchiveLayout(entries: reader.entries, name: snapshot.name, archivePath: snapshot.path)
    case .legacy:
      self.reader = nil
      self.layout = nil
    }
  }

  var hasStateFile: Bool { layout?.stateFile != nil }
  var compressedSize: UInt64? { layout?.snapshot.compressedSize }
  var entryPath: String? { layout?.snapshot.path }

  /// Streams the database bytes to `body` and returns their digest. Fails on a bad CRC-32,
  /// a truncated entry or corrupt compressed data.
  func readDatabase(_ body: (UnsafeRawBufferPointer) throws(LifeboatError) -> Void = { _ in }) throws(LifeboatError)
    -> SnapshotDigest.Result
  {
    var digest = SnapshotDigest()
    if let reader, let layout {
      try reader.read(layout.snapshot) { (chunk) throws(LifeboatError) in
        digest.update(chunk)
        try body(chunk)
      }
    } else {
      let file = try ReadOnlyFile(path: snapshot.path)
      try file.forEachChunk(from: 0, length: file.size) { (chunk) throws(LifeboatError) in
        digest.update(chunk)
        try body(chunk)
      }
    }
    return digest.finalize()
  }

  /// Reads the state file entry (CRC-32 checked) and checks that it is a JSON object, as RKE
  /// writes it. Returns nil when the archive has none. The contents are never printed.
  func checkStateFile() throws(LifeboatError) -> UInt64? {
    guard let reader, let entry = layout?.stateFile else { return nil }
    let bytes = try reader.readAll(entry)
    guard (try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any] else {
      throw .verification("\(snapshot.path) entry \(entry.path) is not a JSON state file")
    }
    return UInt64(bytes.count)
  }
}
