import Foundation
import LifeboatCore

/// File-system steps of one node, with errors that name the node and the paths.
struct NodeFiles: Sendable {
  let address: String

  func rename(_ from: String, _ to: String) throws(LifeboatError) {
    guard Foundation.rename(from, to) == 0 else {
      throw LifeboatError.storage("cannot move \(from) to \(to): \(String(cString: strerror(errno)))").on(address)
    }
  }

  func removeIfPresent(_ path: String) throws(LifeboatError) {
    guard FileManager.default.fileExists(atPath: path) else { return }
    do { try FileManager.default.removeItem(atPath: path) } catch {
      throw LifeboatError.storage("cannot remove \(path): \(error.localizedDescription)").on(address)
    }
  }

  static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

  static func existingAncestor(_ path: String) -> String {
    var current = path
    while !FileManager.default.fileExists(atPath: current), current != "/" { current = parentDirectory(of: current) }
    return current.isEmpty ? "/" : current
  }

  static func freeBytes(_ path: String) -> UInt64 {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return 0 }
    return UInt64(info.f_bavail) * UInt64(info.f_frsize)
  }

  static func deviceID(_ path: String) -> UInt64 {
    var info = stat()
    guard stat(path, &info) == 0 else { return 0 }
    return UInt64(info.st_dev)
  }

  /// Sizes from manifests and requests are added without overflowing (a huge one saturates,
  /// and then no disk is large enough).
  static func sum(_ values: [UInt64]) -> UInt64 {
    values.reduce(0) { total, value in
      let (result, overflow) = total.addingReportingOverflow(value)
      return overflow ? .max : result
    }
  }

  /// Failpoint `fetch.corrupt`: flips one byte in the middle of a downloaded file on disk.
  static func flipByte(in path: String) throws(LifeboatError) {
    guard let handle = FileHandle(forUpdatingAtPath: path) else { throw .failure("failpoint: cannot open \(path)") }
    defer { try? handle.close() }
    let size = (try? handle.seekToEnd()) ?? 0
    let offset = size / 2
    try? handle.seek(toOffset: offset)
    let byte = (try? handle.read(upToCount: 1))?.first ?? 0
    try? handle.seek(toOffset: offset)
    try? handle.write(contentsOf: Data([byte ^ 0xFF]))
    try? handle.synchronize()
  }
}
