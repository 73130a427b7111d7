import EtcdClient
import Foundation
import LifeboatCore
import Logging

/// How `lifeboat local up` builds its cluster.
public struct LocalClusterSpec: Sendable {
  /// Number of members (1 to 9). Default 3.
  public var nodes: Int = 3
  /// Mutual TLS between members and for clients, with a CA made for the cluster. Default off.
  public var tls: Bool = false
  /// Where data dirs, logs, certificates and `cluster.json` go.
  public var directory: String
  /// The etcd binary. Default `etcd` from PATH.
  public var etcd: String = "etcd"
  /// Node i listens on 127.0.0.(firstHost + i - 1). Default 11.
  public var firstHost: Int = 11
  /// etcd's `--quota-backend-bytes`; nil keeps etcd's default (2 GiB).
  public var quotaBackendBytes: Int64?
  /// How long to wait for every member to be up with a leader. Default 30 seconds.
  public var startTimeout: Duration = .seconds(30)

  public init(directory: String, nodes: Int = 3, tls: Bool = false) {
    self.directory = directory
    self.nodes = nodes
    self.tls = tls
  }
}

/// The embedded default: N real etcd members on 127.0.0.x with free ports, data and logs under
/// one directory, optionally with mutual TLS. Members run detached; their PIDs are recorded so
/// `down` stops exactly those.
public struct LocalCluster: Sendable {
  public var logger: Logger

  public init(logger: Logger = Logger(label: "lifeboat.local")) {
    self.logger = logger
  }

  /// Starts the cluster described by `spec`, or restarts the one already recorded in its
  /// directory. Returns once every member answers and has a leader.
  public func up(_ spec: LocalClusterSpec) async throws(LifeboatError) -> LocalClusterState {
    guard (1...9).contains(spec.nodes) else { throw .usage("--nodes must be between 1 and 9") }
    guard let etcd = ProcessRunner.which(spec.etcd) else {
      throw .usage("\(spec.etcd) not found on PATH (Debian: apt-get install etcd-server etcd-client)")
    }
    let directory = Self.absolute(spec.directory)
    try makeDirectories(directory)
    var state: LocalClusterState
    if FileManager.default.fileExists(atPath: LocalClusterState.path(in: directory)) {
      state = try LocalClusterState.load(from: directory)
      if let running = state.members.first(where: { $0.pid.map(DetachedProcess.isRunning) ?? false }) {
        throw .usage("the local cluster in \(directory) is already up (\(running.memberName) runs as PID \(running.pid!)); run `lifeboat local down` first")
      }
      logger.info("restarting the local cluster recorded in \(directory)")
    } else {
      state = try create(spec, directory: directory)
    }
    do {
      for index in state.members.indices {
        state.members[index].pid = try start(state, member: state.members[index], etcd: etcd, quota: spec.quotaBackendBytes)
      }
      try state.save(to: directory)
      try await waitUntilHealthy(state, timeout: spec.startTimeout)
    } catch {
      for member in state.members { if let pid = member.pid { await DetachedProcess.stop(pid) } }
      for index in state.members.indices { state.members[index].pid = nil }
      try? state.save(to: directory)
      throw error
    }
    return state
  }

  /// Stops the members recorded in `directory`: SIGTERM, then SIGKILL after 10 seconds. Only
  /// processes whose command line still names their data directory are signalled.
  @discardableResult
  public func down(directory: String, purge: Bool = false) async throws(LifeboatError) -> [String] {
    let directory = Self.absolute(directory)
    var state = try LocalClusterState.load(from: directory)
    var stopped: [String] = []
    for index in state.members.indices {
      guard let pid = state.members[index].pid else { continue }
      if let command = DetachedProcess.commandLine(pid), command.contains("--data-dir=\(state.members[index].dataDir)") {
        if await DetachedProcess.stop(pid) { stopped.append(state.members[index].memberName) }
      }
      state.members[index].pid = nil
    }
    try state.save(to: directory)
    if purge {
      do { try FileManager.default.removeItem(atPath: directory) } catch {
        throw .storage("cannot remove \(directory): \(error.localizedDescription)")
      }
    }
    return stopped
  }

  /// Stops one member (tests: a member down).
  public func stopMember(_ member: LocalClusterState.Member, kill: Bool = false) async {
    guard let pid = member.pid else { return }
    if kill {
      DetachedProcess.kill9(pid)
      for _ in 0..<100 where DetachedProcess.isRunning(pid) { try? await Task.sleep(for: .milliseconds(20)) }
    } else {
      await DetachedProcess.stop(pid)
    }
  }

  // MARK: -

  private func create(_ spec: LocalClusterSpec, directory: String) throws(LifeboatError) -> LocalClusterState {
    var members: [LocalClusterState.Member] = []
    var used = Set<Int>()
    for i in 1...spec.nodes {
      let address = "127.0.0.\(spec.firstHost + i - 1)"
      var ports: [Int] = []
      while ports.count < 2 {
        let port = try freeTCPPort(on: address)
        if used.insert(port).inserted { ports.append(port) }
      }
      let node = "node\(i)"
      members.append(
        .init(
          node: node, address: address, clientPort: ports[0], peerPort: ports[1],
          dataDir: "\(directory)/\(node)/data", logFile: "\(directory)/\(node)/etcd.log"))
      try makeDirectories("\(directory)/\(node)")
    }
    var state = LocalClusterState(tls: spec.tls, token: "etcd-cluster-1", members: members)
    if spec.tls {
      let tlsDir = directory + "/tls"
      try makeDirectories(tlsDir)
      let ca = try CertificateAuthority(commonName: "kube-ca")
      try write(ca.certificatePEM, to: tlsDir + "/kube-ca.pem", mode: 0o644)
      try write(ca.keyPEM, to: tlsDir + "/kube-ca-key.pem", mode: 0o600)
      let addresses = members.map(\.address)
      for index in state.members.indices {
        let member = state.members[index]
        // RKE: every etcd node's certificate has the common name kube-etcd and SANs for all etcd nodes.
        let issued = try ca.issue(commonName: "kube-etcd", ipAddresses: addresses, dnsNames: ["localhost"])
        let base = tlsDir + "/kube-etcd-" + member.address.replacingOccurrences(of: ".", with: "-")
        try write(issued.certificatePEM, to: base + ".pem", mode: 0o644)
        try write(issued.keyPEM, to: base + "-key.pem", mode: 0o600)
        state.members[index].certFile = base + ".pem"
        state.members[index].keyFile = base + "-key.pem"
      }
      let admin = try ca.issue(commonName: "kube-admin", organization: "system:masters")
      try write(admin.certificatePEM, to: tlsDir + "/kube-admin.pem", mode: 0o644)
      try write(admin.keyPEM, to: tlsDir + "/kube-admin-key.pem", mode: 0o600)
      // A worker's certificate from the same CA: tests use it to check that it is refused.
      let worker = try ca.issue(commonName: "kube-node", organization: "system:nodes")
      try write(worker.certificatePEM, to: tlsDir + "/kube-node.pem", mode: 0o644)
      try write(worker.keyPEM, to: tlsDir + "/kube-node-key.pem", mode: 0o600)
      state.caFile = tlsDir + "/kube-ca.pem"
      state.clientCertFile = tlsDir + "/kube-admin.pem"
      state.clientKeyFile = tlsDir + "/kube-admin-key.pem"
    }
    try state.save(to: directory)
    return state
  }

  private func write(_ text: String, to path: String, mode: mode_t) throws(LifeboatError) {
    try AtomicFile.write(Array(text.utf8), to: path, mode: mode)
  }

  /// The etcd command line of one member.
  public static func arguments(_ state: LocalClusterState, member: LocalClusterState.Member, quota: Int64?) -> [String] {
    var args = [
      "--name=\(member.memberName)",
      "--data-dir=\(member.dataDir)",
      "--listen-client-urls=\(state.clientURL(member))",
      "--advertise-client-urls=\(state.clientURL(member))",
      "--listen-peer-urls=\(state.peerURL(member))",
      "--initial-advertise-peer-urls=\(state.peerURL(member))",
      "--initial-cluster=\(state.initialCluster)",
      "--initial-cluster-token=\(state.token)",
      "--initial-cluster-state=new",
      "--logger=zap",
      "--log-outputs=stderr",
    ]
    if let quota { args.append("--quota-backend-bytes=\(quota)") }
    if state.tls, let ca = state.caFile, let cert = member.certFile, let key = member.keyFile {
      args += [
        "--cert-file=\(cert)", "--key-file=\(key)", "--trusted-ca-file=\(ca)", "--client-cert-auth",
        "--peer-cert-file=\(cert)", "--peer-key-file=\(key)", "--peer-trusted-ca-file=\(ca)",
        "--peer-client-cert-auth",
      ]
    }
    return args
  }

  private func start(
    _ state: LocalClusterState, member: LocalClusterState.Member, etcd: String, quota: Int64?
  ) throws(LifeboatError) -> Int32 {
    let pid = try DetachedProcess.spawn(
      executable: etcd, arguments: Self.arguments(state, member: member, quota: quota), logFile: member.logFile)
    logger.debug("started \(member.memberName) as PID \(pid)")
    return pid
  }

  /// Waits until every member answers `Status` and has a leader.
  public func waitUntilHealthy(_ state: LocalClusterState, timeout: Duration) async throws(LifeboatError) {
    let connection = try Self.connection(for: state)
    let deadline = ContinuousClock.now + timeout
    var lastProblem = ""
    while ContinuousClock.now < deadline {
      for member in state.members {
        if let pid = member.pid, !DetachedProcess.isRunning(pid) {
          throw .failure("\(member.memberName) exited during start: \(Self.logTail(member.logFile))")
        }
      }
      let probes = await MemberSelector(connection: connection).probeAll()
      if probes.allSatisfy({ $0.isHealthy && $0.status?.hasLeader == true }) { return }
      lastProblem = probes.compactMap { p in p.problem.map { "\(p.endpoint) \($0)" } }.first ?? "no leader yet"
      try? await Task.sleep(for: .milliseconds(200))
    }
    throw .unavailable("the local cluster did not become healthy within \(timeout): \(lastProblem)")
  }

  /// How to reach a local cluster's members.
  public static func connection(for state: LocalClusterState) throws(LifeboatError) -> EtcdConnection {
    try EtcdConnection.parse(
      endpoints: state.endpoints.joined(separator: ","), caFile: state.caFile, certFile: state.clientCertFile,
      keyFile: state.clientKeyFile)
  }

  static func logTail(_ path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "no log at \(path)" }
    let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).suffix(1)
    return lines.joined(separator: " ") + " (log: \(path))"
  }

  static func absolute(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    return FileManager.default.currentDirectoryPath + "/" + path
  }
}
