import Foundation
import LifeboatCore

/// What a restore keeps on one node between its steps, in `<run dir>/restore-<id>/session.json`
/// (written atomically): where the fetched archive and database are, where the staged and the
/// old data dir go, and whether a swap began. An agent restarted mid-restore reads it back.
struct RestoreSession: Codable {
  var name: String
  var archivePath: String
  var databasePath: String
  var skipHashCheck: Bool
  var stagingDir: String
  var oldDataDir: String
  /// Written before the first rename of a swap, so a rollback after a crash mid-swap knows.
  var swapping: Bool = false
  var hadDataDir: Bool = true

  static func validate(id: String) throws(LifeboatError) { try RestoreID.validate(id) }

  /// The files of restore `id` on `node`.
  struct Paths {
    let node: EtcdNode
    let id: String
    var work: String { node.runDir + "/restore-" + id }
    var session: String { work + "/session.json" }
    var database: String { work + "/db" }
    var stagingParent: String { parentDirectory(of: node.dataDir) + "/.lifeboat-staged-" + id }
    var stagingDir: String { stagingParent + "/" + (node.dataDir as NSString).lastPathComponent }
    var oldDataDir: String { node.dataDir + ".lifeboat-old-" + id }
  }

  static func load(_ paths: Paths, address: String) throws(LifeboatError) -> RestoreSession {
    try validate(id: paths.id)
    guard let data = FileManager.default.contents(atPath: paths.session) else {
      throw LifeboatError.notFound("no restore \(paths.id) here").on(address)
    }
    do { return try JSONDecoder().decode(RestoreSession.self, from: data) } catch {
      throw LifeboatError.failure("\(paths.session) is unreadable: \(error)").on(address)
    }
  }

  func save(_ paths: Paths) throws(LifeboatError) {
    let data: Data
    do { data = try JSONEncoder().encode(self) } catch { throw .failure("cannot encode the restore session: \(error)") }
    try AtomicFile.write([UInt8](data), to: paths.session, mode: 0o600)
  }
}
