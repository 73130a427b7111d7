import Foundation
import LifeboatCore

/// A fresh directory under the system's temporary directory, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
  public let path: String

  public init(prefix: String = "lifeboat-test") throws {
    let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    self.path = base
  }

  public func file(_ name: String) -> String { path + "/" + name }

  public func remove() {
    try? FileManager.default.removeItem(atPath: path)
  }

  /// Names of the entries in `directory` (relative to this one), sorted; empty when missing.
  public func contents(of directory: String = "") -> [String] {
    let target = directory.isEmpty ? path : file(directory)
    return ((try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []).sorted()
  }
}

/// Runs `body` with a temporary directory that is removed afterwards, whatever happens.
public func withTemporaryDirectory<R>(_ body: (TemporaryDirectory) async throws -> R) async throws -> R {
  let directory = try TemporaryDirectory()
  return try await withCleanup({ try await body(directory) }, cleanup: { directory.remove() })
}
