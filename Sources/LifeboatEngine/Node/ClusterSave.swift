import Foundation
import LifeboatCore
import Logging

/// `lifeboat snapshot save --config cluster.yml`: one snapshot, from one healthy member, written
/// by the first reachable node's agent into its snapshot dir (and uploaded once when S3 is
/// configured), then copied by every other node's agent from that node, verified against the
/// manifest: every etcd node holds the same bytes under the same name.
public struct ClusterSave: Sendable {
  public let context: ClusterContext
  public let nodes: [any Node]
  public var progress: @Sendable (String) -> Void

  public init(context: ClusterContext, nodes: [any Node], progress: @escaping @Sendable (String) -> Void = { _ in }) {
    self.context = context
    self.nodes = nodes
    self.progress = progress
  }

  public struct Report: Sendable {
    public var saved: NodeSaveReport
    public var savedOn: String
    /// Nodes that hold a verified copy (the saving node included).
    public var copies: [String]
    /// Nodes that could not get a copy, and why.
    public var failures: [String: String]
  }

  public func run(name: SnapshotName?, upload: Bool = true) async throws(LifeboatError) -> Report {
    var reachable: [(index: Int, node: any Node)] = []
    var failures: [String: String] = [:]
    for (index, node) in nodes.enumerated() {
      do {
        _ = try await node.health()
        reachable.append((index, node))
      } catch { failures[node.address] = error.message }
    }
    guard let first = reachable.first else {
      throw .unavailable("no agent answers: \(failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; "))")
    }
    let saved = try await first.node.saveSnapshot(NodeSaveRequest(name: name?.value, upload: upload && context.config.backup.s3 != nil))
    progress("saved \(saved.snapshot.name) on \(first.node.address) from \(saved.member) (\(saved.endpoint))")
    if let remote = saved.remote { progress("uploaded \(remote)") }
    let snapshotName = try SnapshotName(saved.snapshot.name)
    let peer = context.config.etcdNodes[first.index].agentURL
    var copies = [first.node.address]
    await withTaskGroup(of: (String, LifeboatError?).self) { group in
      for (_, node) in reachable.dropFirst() {
        group.addTask {
          do throws(LifeboatError) {
            _ = try await node.copySnapshot(snapshotName, from: peer, applyRetention: false)
            return (node.address, nil)
          } catch { return (node.address, error) }
        }
      }
      for await (address, error) in group {
        if let error { failures[address] = error.message } else {
          copies.append(address)
          progress("copied to \(address)")
        }
      }
    }
    return Report(saved: saved, savedOn: first.node.address, copies: copies, failures: failures)
  }
}
