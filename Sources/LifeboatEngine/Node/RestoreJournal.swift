import Foundation
import LifeboatCore

/// A restore's journal on one node, `<run dir>/restore-<id>.journal.json`, rewritten atomically
/// (temporary file, fsync, rename, fsync of the directory) before and after every step that
/// changes the node: where the fetched archive and database are, where the staged and the old
/// data dir go, what a swap moved, and the PID and data dir of every etcd started. An agent
/// killed at any instruction finds in it, with the disk, what to finish or undo. It outlives the
/// downloads (`finish`) and goes with the lease, once the restore or its recovery is over.
struct RestoreJournal: Codable {
  var id: String
  var name: String
  var archivePath: String?
  var databasePath: String?
  var skipHashCheck: Bool = false
  /// The snapshot's revision, read from the fetched db (the check after a recovery needs it).
  var revision: Int64?
  var dbSize: UInt64?
  var stagingDir: String
  var oldDataDir: String
  /// Written before the first rename of a swap, so a rollback after a crash mid-swap knows.
  var swapping: Bool = false
  var hadDataDir: Bool = true
  var events: [Event] = []
  /// Every etcd this node started during the restore.
  var started: [Started] = []

  struct Event: Codable, Equatable {
    /// `fetch.begun`, `fetch.done`, `stage.begun`, `stage.done`, `stop.begun`, `stop.done`,
    /// `swap.begun`, `swap.moved-old`, `swap.done`, `start.begun`, `start.done`, `rollback.begun`,
    /// `rollback.done`, `check.done`.
    var step: String
    var at: Date
    var detail: String?
  }

  struct Started: Codable, Equatable {
    var pid: Int32?
    var dataDir: String
    var at: Date
  }

  /// The files of restore `id` on `node`.
  struct Paths {
    let node: EtcdNode
    let id: String
    var journal: String { node.runDir + "/restore-" + id + ".journal.json" }
    var work: String { node.runDir + "/restore-" + id }
    var database: String { work + "/db" }
    var stagingParent: String { parentDirectory(of: node.dataDir) + "/.lifeboat-staged-" + id }
    var stagingDir: String { stagingParent + "/" + (node.dataDir as NSString).lastPathComponent }
    var oldDataDir: String { node.dataDir + ".lifeboat-old-" + id }
  }

  /// The restore tool finished and its output was synced (`stage.done` recorded after the last
  /// `stage.begun`): a staging dir without it may hold a db and no WAL, and must never be swapped in.
  var stagingFinished: Bool {
    guard let done = events.lastIndex(where: { $0.step == "stage.done" }) else { return false }
    return !events[done...].contains { $0.step == "stage.begun" }
  }

  init(id: String, name: String, paths: Paths) {
    self.id = id
    self.name = name
    self.stagingDir = paths.stagingDir
    self.oldDataDir = paths.oldDataDir
  }

  static func load(_ paths: Paths, address: String) throws(LifeboatError) -> RestoreJournal {
    try RestoreID.validate(paths.id)
    guard let data = FileManager.default.contents(atPath: paths.journal) else {
      throw LifeboatError.notFound("no restore \(paths.id) here").on(address)
    }
    do { return try JSONDecoder.journal.decode(RestoreJournal.self, from: data) } catch {
      throw LifeboatError.failure("\(paths.journal) is unreadable: \(error)").on(address)
    }
  }

  static func loadIfPresent(_ paths: Paths, address: String) throws(LifeboatError) -> RestoreJournal? {
    FileManager.default.fileExists(atPath: paths.journal) ? try load(paths, address: address) : nil
  }

  func save(_ paths: Paths) throws(LifeboatError) {
    let data: Data
    do { data = try JSONEncoder.journal.encode(self) } catch { throw .failure("cannot encode the restore journal: \(error)") }
    try AtomicFile.write([UInt8](data), to: paths.journal, mode: 0o600, overwrite: true)
  }

  /// Records `step` (and saves) before or after the act it names.
  mutating func record(_ step: String, _ detail: String? = nil, paths: Paths) throws(LifeboatError) {
    events.append(Event(step: step, at: Date(), detail: detail))
    try save(paths)
  }

  var steps: [String] { events.map(\.step) }

  /// The ids of every journal in `runDir`.
  static func ids(in runDir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: runDir)) ?? []).compactMap { entry in
      guard entry.hasPrefix("restore-"), entry.hasSuffix(".journal.json") else { return nil }
      return String(entry.dropFirst("restore-".count).dropLast(".journal.json".count))
    }.sorted()
  }
}

extension JSONEncoder {
  static var journal: JSONEncoder {
    let e = JSONEncoder()
    e.dateEncodingStrategy = .iso8601
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return e
  }
}

extension JSONDecoder {
  static var journal: JSONDecoder {
    let d = JSONDecoder()
    d.dateDecodingStrategy = .iso8601
    return d
  }
}
