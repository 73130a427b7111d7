import EtcdClient
import Foundation
import LifeboatCore

/// How the engine checks the cluster itself (etcd, not the agents): the seam that lets the
/// workflows run against `FakeNode`s in unit tests.
public protocol ClusterCheck: Sendable {
  /// Every member healthy with a leader, the member list as planned, `HashKV` equal on every
  /// member at one revision, that revision no lower than `snapshotRevision`. `nodes` are asked
  /// whether their etcd still runs, so one that exits is reported at once.
  func checkRestored(snapshotRevision: Int64, nodes: [any Node]) async throws(LifeboatError) -> (hash: UInt32, revision: Int64)
  /// Every member healthy with a leader and `HashKV` equal on every member (after a rollback:
  /// healthy alone would take a member that diverged for a good one).
  func waitConsistent(nodes: [any Node]) async throws(LifeboatError) -> (hash: UInt32, revision: Int64)
  /// Deletes Lifeboat's lock keys that came back with a restored snapshot; returns how many.
  func removeLockKeys() async throws(LifeboatError) -> Int64
  /// The address of the node whose member leads now, when one does and answers.
  func leader() async -> String?
}

/// `ClusterCheck` against the real cluster, through one client per member for the whole poll.
public struct EtcdClusterCheck: ClusterCheck {
  public let context: ClusterContext
  public init(context: ClusterContext) { self.context = context }
  var members: [EtcdNode] { context.config.etcdNodes }

  public func leader() async -> String? {
    guard var connection = try? context.etcdConnection(certificate: "kube-admin") else { return nil }
    // Only an ordering hint: a member that does not answer soon is no leader to wait for.
    connection.client.requestTimeout = .seconds(2)
    let probes = await MemberSelector(connection: connection).probeAll()
    guard let leaderID = probes.compactMap({ $0.status?.leader }).first(where: { $0 != 0 }),
      let index = probes.firstIndex(where: { $0.status?.memberID == leaderID }), index < members.count
    else { return nil }
    return members[index].address
  }

  public func removeLockKeys() async throws(LifeboatError) -> Int64 {
    let connection = try context.etcdConnection(certificate: "kube-admin")
    do {
      return try await EtcdClient.with(endpoint: connection.endpoints[0], configuration: connection.client) { client in
        try await client.deletePrefix(ClusterEngine.lockPrefix)
      }
    } catch { throw .unavailable("\(error)") }
  }

  /// Every member healthy with a leader, the member list as planned, `HashKV` equal on every
  /// member at one revision, that revision no lower than the snapshot's. An etcd that exits is
  /// reported at once (its agent says so), not at the health timeout.
  public func checkRestored(snapshotRevision: Int64, nodes: [any Node]) async throws(LifeboatError) -> (hash: UInt32, revision: Int64) {
    let connection = try context.etcdConnection(certificate: "kube-admin")
    let timeout = context.config.lifeboat.healthTimeoutSeconds
    do {
      return try await EtcdClient.withAll(endpoints: connection.endpoints, configuration: connection.client) { clients in
        let deadline = ContinuousClock.now + .seconds(timeout)
        var problem = "no answer yet"
        while ContinuousClock.now < deadline {
          do throws(LifeboatError) {
            return try await checkOnce(clients, snapshotRevision: snapshotRevision)
          } catch {
            if error.kind == .verification { throw error }
            problem = error.message
          }
          for node in nodes {
            if let health = try? await node.health(), health.etcdRunning == false {
              throw LifeboatError.unavailable("etcd exited after the swap (see its etcd log)").on(node.address)
            }
          }
          try await Task.sleep(for: .milliseconds(500))
        }
        throw LifeboatError.unavailable("the restored cluster did not become healthy within \(timeout) s: \(problem)")
      }
    } catch let error as LifeboatError {
      throw error
    } catch {
      throw LifeboatError(.failure, "the check was interrupted: \(error)", underlying: .cancelled)
    }
  }

  private func checkOnce(_ clients: [EtcdClient], snapshotRevision: Int64) async throws(LifeboatError) -> (hash: UInt32, revision: Int64) {
    var statuses: [EtcdMemberStatus] = []
    for client in clients {
      do {
        let status = try await client.status()
        guard status.hasLeader else { throw LifeboatError.unavailable("\(client.endpoint) has no leader") }
        statuses.append(status)
      } catch let error as LifeboatError { throw error } catch { throw .unavailable("\(client.endpoint): \(error)") }
    }
    let list: [EtcdMember]
    do { list = try await clients[0].memberList() } catch { throw .unavailable("member list: \(error)") }
    let planned = Set(members.map { "\($0.memberName)=\($0.peerURL)" })
    let actual = Set(list.map { "\($0.name)=\($0.peerURLs.sorted().joined(separator: ","))" })
    guard planned == actual else {
      if list.contains(where: { $0.name.isEmpty }) { throw .unavailable("members still joining") }
      throw .verification("the member list is \(actual.sorted()), planned \(planned.sorted())")
    }
    let revision = statuses.map(\.revision).min() ?? 0
    guard revision >= snapshotRevision else {
      throw .verification("the restored revision \(revision) is lower than the snapshot's \(snapshotRevision)")
    }
    var hashes: [UInt32] = []
    for client in clients {
      do { hashes.append(try await client.hashKV(revision: revision).hash) } catch {
        throw .unavailable("HashKV on \(client.endpoint): \(error)")
      }
    }
    guard Set(hashes).count == 1 else {
      throw .verification("the members' HashKV at revision \(revision) differ: \(hashes)")
    }
    return (hashes[0], revision)
  }

  /// The check of a restore without its revision bound: healthy, the members planned, HashKV equal.
  public func waitConsistent(nodes: [any Node]) async throws(LifeboatError) -> (hash: UInt32, revision: Int64) {
    try await checkRestored(snapshotRevision: 0, nodes: nodes)
  }
}
