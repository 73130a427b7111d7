import Foundation
import LifeboatCore
import Logging

/// Every workflow that spans nodes, over the `Node` primitives: save and copy (`+Save`), prune
/// (`+Prune`), S3 catch-up (`+S3`), the recurring run (`+Recurring`), restore and rollback
/// (`+Restore`, `+Check`, `+Rollback`). The CLI and the agents' scheduler call it; no node
/// operation calls it back.
public struct ClusterEngine: Sendable {
  public let context: ClusterContext
  /// One per etcd node, in the config's order.
  public let nodes: [any Node]
  public var logger: Logger
  /// Progress lines, as they happen.
  public var progress: @Sendable (String) -> Void
  /// How etcd itself is checked (`EtcdClusterCheck` unless a test gives another).
  public var check: any ClusterCheck

  public init(
    context: ClusterContext, nodes: [any Node], logger: Logger = Logger(label: "lifeboat.cluster"),
    check: (any ClusterCheck)? = nil, progress: @escaping @Sendable (String) -> Void = { _ in }
  ) {
    self.context = context
    self.nodes = nodes
    self.logger = logger
    self.check = check ?? EtcdClusterCheck(context: context)
    self.progress = progress
  }

  var members: [EtcdNode] { context.config.etcdNodes }

  /// Lifeboat's own lock keys (recurring snapshots), which a restored snapshot brings back.
  public static let lockPrefix = "/lifeboat/lock/"

  /// The agent URL of a node of this engine.
  func agentURL(of node: any Node) -> String {
    members.first { $0.address == node.address }?.agentURL ?? node.address
  }

  // MARK: - Fan-out

  /// Runs `body` on every node of `subset` at once; results in order. Every failure is
  /// attributed to its node and step.
  func settle<R: Sendable>(
    _ subset: [any Node], _ step: String, _ body: @escaping @Sendable (any Node) async throws(LifeboatError) -> R
  ) async -> [Result<R, LifeboatError>] {
    await withTaskGroup(of: (Int, Result<R, LifeboatError>).self) { group in
      for (index, node) in subset.enumerated() {
        group.addTask {
          do throws(LifeboatError) { return (index, .success(try await body(node))) } catch {
            return (index, .failure(error.on(node.address, step: step)))
          }
        }
      }
      var all: [(Int, Result<R, LifeboatError>)] = []
      for await r in group { all.append(r) }
      return all.sorted { $0.0 < $1.0 }.map(\.1)
    }
  }

  /// `settle`, throwing the first failure (in node order) once all have finished.
  func onEach<R: Sendable>(
    _ subset: [any Node], _ step: String, _ body: @escaping @Sendable (any Node) async throws(LifeboatError) -> R
  ) async throws(LifeboatError) -> [R] {
    var values: [R] = []
    for result in await settle(subset, step, body) {
      switch result {
      case .success(let value): values.append(value)
      case .failure(let error): throw error
      }
    }
    return values
  }

  /// Stops etcd on every node of `subset`: the followers at once, then the leader. A leader told
  /// to stop first hands its leadership to a follower, and when that follower is stopping too
  /// it waits for etcd's request timeout (7 s) in vain; with no follower left it stops at once.
  func stopAll(_ subset: [any Node]) async -> [Result<Void, LifeboatError>] {
    let leader = await check.leader()
    let followers = subset.filter { $0.address != leader }
    var results: [String: Result<Void, LifeboatError>] = [:]
    for (node, result) in zip(followers, await settle(followers, "stop", { (node) async throws(LifeboatError) in try await node.stopEtcd() })) {
      results[node.address] = result
    }
    let last = subset.filter { $0.address == leader }
    for (node, result) in zip(last, await settle(last, "stop", { (node) async throws(LifeboatError) in try await node.stopEtcd() })) {
      results[node.address] = result
    }
    return subset.map { results[$0.address]! }
  }

  /// Every node that answers its health check, in order, and the others' errors. `what` is
  /// refused (exit 9) while a restore holds a node or was interrupted on one.
  /// The nodes whose agents answer (and why the others did not). A restore in progress refuses
  /// `what`; with `sameEncryption`, so does an agent that encrypts otherwise than this config says
  /// (it read an older cluster.yml: agents read theirs when they start).
  func reachable(
    refusingDuringRestore what: String, sameEncryption: Bool = false
  ) async throws(LifeboatError) -> (nodes: [any Node], failures: [LifeboatError]) {
    var up: [any Node] = []
    var failures: [LifeboatError] = []
    for (node, result) in zip(nodes, await settle(nodes, "health") { (node) async throws(LifeboatError) in try await node.health() }) {
      switch result {
      case .success(let health):
        if let restore = health.restore {
          throw LifeboatError(
            .restoreInProgress, "\(what) refused: \(restore) (on \(node.address); if interrupted, run `lifeboat snapshot restore --recover`)",
            node: node.address)
        }
        let wanted = context.config.lifeboat.encryptionSummary
        if sameEncryption, health.encryption != wanted {
          throw LifeboatError(
            .usage,
            "\(what) refused: the agent on \(node.address) encrypts \(health.encryption ?? "nothing"), but \(context.config.path) says \(wanted ?? "nothing"): restart the agents after changing lifeboat.encryption (nothing was saved)",
            node: node.address)
        }
        up.append(node)
      case .failure(let error): failures.append(error)
      }
    }
    return (up, failures)
  }
}

extension Sequence {
  /// The failures among the per-node results of `settle` or `stopAll`, in node order.
  func failures<T>() -> [LifeboatError] where Element == Result<T, LifeboatError> {
    compactMap { result in
      if case .failure(let error) = result { return error }
      return nil
    }
  }
}
