import EtcdClient
import LifeboatCore

/// What one endpoint answered when probed.
public struct MemberProbe: Sendable {
  public var endpoint: EtcdEndpoint
  public var status: EtcdMemberStatus?
  public var member: EtcdMember?
  /// Why the member cannot be used; nil when it is healthy.
  public var problem: String?

  public var isHealthy: Bool { problem == nil }
}

/// The member chosen to stream a snapshot from.
public struct SelectedMember: Sendable {
  public var endpoint: EtcdEndpoint
  public var status: EtcdMemberStatus
  public var member: EtcdMember
  /// True when no probed member had a leader: the cluster has lost quorum.
  public var noQuorum: Bool
  public var probes: [MemberProbe]

  public var name: String { member.name.isEmpty ? etcdIDString(member.id) : member.name }
}

/// Picks the member a snapshot is taken from. Every endpoint is probed at once with
/// `Maintenance.Status` (in etcd 3.4 its `errors` field carries the member's alarms; the Alarm
/// RPC would need quorum) and `Cluster.MemberList`. A member is healthy when it answers, reports
/// no errors, is not a learner and is in its own member list. The first healthy member, in the
/// order the endpoints were given, that has a leader wins; when no member has a leader, the one
/// with the highest applied raft index is used and the snapshot is marked `noQuorum`.
public struct MemberSelector: Sendable {
  public var connection: EtcdConnection

  public init(connection: EtcdConnection) {
    self.connection = connection
  }

  public func probeAll() async -> [MemberProbe] {
    await withTaskGroup(of: (Int, MemberProbe).self) { group in
      for (index, endpoint) in connection.endpoints.enumerated() {
        group.addTask { (index, await probe(endpoint)) }
      }
      var probes = [MemberProbe?](repeating: nil, count: connection.endpoints.count)
      for await (index, probe) in group { probes[index] = probe }
      return probes.compactMap { $0 }
    }
  }

  public func probe(_ endpoint: EtcdEndpoint) async -> MemberProbe {
    do {
      return try await EtcdClient.with(endpoint: endpoint, configuration: connection.client) { client in await Self.probe(client) }
    } catch {
      return MemberProbe(endpoint: endpoint, problem: "\(error)")
    }
  }

  /// Probes the member of an open client (operations that poll keep their clients open).
  public static func probe(_ client: EtcdClient) async -> MemberProbe {
    var probe = MemberProbe(endpoint: client.endpoint)
    do {
      let status = try await client.status()
      probe.status = status
      let members = try await client.memberList()
      probe.member = members.first { $0.id == status.memberID }
    } catch let error as EtcdClientError {
      probe.problem = error.message
      return probe
    } catch {
      probe.problem = "\(error)"
      return probe
    }
    guard let status = probe.status else { return probe }
    // etcd 3.4 lists "etcdserver: no leader" among a leaderless member's errors; that is what
    // `hasLeader` says already (and what the no-quorum fallback below is for), not an alarm.
    let errors = status.errors.filter { !$0.contains("no leader") }
    if !errors.isEmpty {
      probe.problem = "reports \(errors.joined(separator: "; "))"
    } else if status.isLearner || probe.member?.isLearner == true {
      probe.problem = "is a learner, not a voting member"
    } else if probe.member == nil {
      probe.problem = "is not in its own member list (removed from the cluster?)"
    }
    return probe
  }

  /// nil when every member answered healthy and has a leader; else the first problem, for messages.
  public func clusterProblem() async -> String? {
    Self.problem(of: await probeAll())
  }

  /// `clusterProblem` through open clients.
  public static func clusterProblem(_ clients: [EtcdClient]) async -> String? {
    var probes: [MemberProbe] = []
    for client in clients { probes.append(await probe(client)) }
    return problem(of: probes)
  }

  static func problem(of probes: [MemberProbe]) -> String? {
    if probes.allSatisfy({ $0.isHealthy && $0.status?.hasLeader == true }) { return nil }
    return probes.compactMap { p in p.problem.map { "\(p.endpoint) \($0)" } }.first ?? "no leader yet"
  }

  /// Probes every endpoint and picks one; fails with `.unavailable` naming each endpoint's problem.
  public func select() async throws(LifeboatError) -> SelectedMember {
    let probes = await probeAll()
    // Interrupted while probing: every member "failed" with a CancellationError, which is not
    // theirs to report.
    if Task.isCancelled { throw LifeboatError(.failure, "interrupted: no member was chosen", underlying: .cancelled) }
    let healthy = probes.filter(\.isHealthy)
    if let pick = healthy.first(where: { $0.status!.hasLeader }) {
      return SelectedMember(endpoint: pick.endpoint, status: pick.status!, member: pick.member!, noQuorum: false, probes: probes)
    }
    if let pick = healthy.max(by: { $0.status!.raftAppliedIndex < $1.status!.raftAppliedIndex }) {
      return SelectedMember(endpoint: pick.endpoint, status: pick.status!, member: pick.member!, noQuorum: true, probes: probes)
    }
    let reasons = probes.map { "\($0.endpoint): \($0.problem ?? "unusable")" }.joined(separator: "; ")
    throw .unavailable("no healthy etcd member to snapshot: \(reasons)")
  }
}
