import Foundation
import LifeboatCore
import LifeboatEngine
import Synchronization

/// N fake nodes at 10.0.0.1, 10.0.0.2, ... whose agents are `https://<address>:2382`, with the
/// `cluster.yml` that describes them and one ordered log of every call.
public struct FakeCluster: Sendable {
  public final class Log: Sendable {
    private let lines = Mutex<[String]>([])
    public func append(_ line: String) { lines.withLock { $0.append(line) } }
    public var all: [String] { lines.withLock { $0 } }
    /// The lines of one step (`stop`, `rollback`, ...), in order.
    public func of(_ step: FakeNode.Step) -> [String] { all.filter { $0.hasPrefix(step.rawValue + " ") } }
    /// Where the first and last call of `step` are in the log.
    public func span(_ step: FakeNode.Step) -> ClosedRange<Int>? {
      let indexes = all.indices.filter { all[$0].hasPrefix(step.rawValue + " ") }
      guard let first = indexes.first, let last = indexes.last else { return nil }
      return first...last
    }
  }

  public let nodes: [FakeNode]
  public let log: Log
  public let context: ClusterContext

  public init(count: Int = 3, lifeboat: [String] = []) throws {
    let log = Log()
    let addresses = (1...count).map { "10.0.0.\($0)" }
    let table = Mutex<[String: FakeNode]>([:])
    let nodes = addresses.map { address in
      FakeNode(address: address, log: log) { url in table.withLock { $0[url] } }
    }
    table.withLock { t in for node in nodes { t["https://\(node.address):2382"] = node } }
    self.nodes = nodes
    self.log = log
    var yaml = "cluster_name: fake\nnodes:\n"
    for address in addresses { yaml += "  - address: \(address)\n    role: [etcd]\n" }
    yaml += "lifeboat:\n  etcd_tls: false\n  health_timeout: 5\n"
    for line in lifeboat { yaml += "  \(line)\n" }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fake-cluster-\(UUID().uuidString)").path
    self.context = ClusterContext(config: try ClusterConfig.parse(yaml, path: directory + "/cluster.yml"), state: nil)
  }

  /// The engine over these nodes, checking "etcd" through `FakeClusterCheck`.
  public func engine(check: FakeClusterCheck? = nil, progress: @escaping @Sendable (String) -> Void = { _ in }) -> ClusterEngine {
    ClusterEngine(context: context, nodes: nodes, check: check ?? FakeClusterCheck(nodes: nodes), progress: progress)
  }
}

/// The cluster check over fake nodes: healthy when every node's etcd runs and all of them hold
/// the same dataset; can be told to fail.
public struct FakeClusterCheck: ClusterCheck {
  let nodes: [FakeNode]
  public var failRestoredCheck: LifeboatError?
  public init(nodes: [FakeNode], failRestoredCheck: LifeboatError? = nil) {
    self.nodes = nodes
    self.failRestoredCheck = failRestoredCheck
  }

  public func checkRestored(snapshotRevision: Int64, nodes _: [any Node]) async throws(LifeboatError) -> (hash: UInt32, revision: Int64) {
    if let failRestoredCheck { throw failRestoredCheck }
    try waitHealthy()
    return (7, snapshotRevision)
  }

  public func waitConsistent(nodes _: [any Node]) async throws(LifeboatError) -> (hash: UInt32, revision: Int64) {
    try waitHealthy()
    return (7, 1)
  }

  public func waitHealthy() throws(LifeboatError) {
    let states = nodes.map(\.current)
    guard states.allSatisfy(\.etcdRunning) else { throw .unavailable("a member is down") }
    guard Set(states.map { $0.data ?? "" }).count == 1 else { throw .verification("the members hold different data") }
  }

  public func removeLockKeys() async throws(LifeboatError) -> Int64 { 0 }

  /// The fake cluster's leader: the last node, so that the stop order shows.
  public func leader() async -> String? { nodes.last?.address }
}

/// Bytes in memory as a `ByteSource`.
public struct BytesSource: ByteSource {
  public let name: String
  public let bytes: [UInt8]
  public init(name: String, bytes: [UInt8]) {
    self.name = name
    self.bytes = bytes
  }
  public var size: UInt64 { UInt64(bytes.count) }
  public func read(at offset: UInt64, count: Int) async throws(LifeboatError) -> [UInt8] {
    guard offset + UInt64(count) <= size else { throw .verification("\(name): read past the end") }
    return Array(bytes[Int(offset)..<Int(offset) + count])
  }
  public func stream(
    from offset: UInt64, length: UInt64, chunkSize: Int, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    var position = Int(offset)
    let end = Int(offset + length)
    while position < end {
      let next = min(end, position + chunkSize)
      try await body(Array(bytes[position..<next]))
      position = next
    }
  }
}
