import EtcdClient
import Foundation
import LifeboatCore
import Logging

/// How `lifeboat local up` builds its cluster.
public struct LocalClusterSpec: Sendable {
  /// Number of members (1 to 9). Default 3.
  public var nodes: Int = 3
  /// etcd speaks mutual TLS to clients and peers. Default off. (The agents always do.)
  public var tls: Bool = false
  /// Where data dirs, snapshots, logs, certificates, `cluster.yml`, `cluster.rkestate` and
  /// `cluster.json` go.
  public var directory: String
  /// The etcd binary. Default `etcd` from PATH.
  public var etcd: String = "etcd"
  /// How etcd runs: supervised processes (default) or RKE's container in a Docker engine per node
  /// (always with mutual TLS, as RKE runs it).
  public var runtime: LocalRuntime = .supervised
  /// Node i listens on 127.0.0.(firstHost + i - 1). Default 11.
  public var firstHost: Int = 11
  /// etcd's `--quota-backend-bytes`; nil keeps etcd's default (2 GiB).
  public var quotaBackendBytes: Int64?
  /// How long to wait for every member (and agent) to be up. Default 30 seconds.
  public var startTimeout: Duration = .seconds(30)
  /// The `lifeboat` executable to run one agent per node with; nil starts no agents.
  public var agentExecutable: String?
  /// Extra environment of node i's agent (tests switch failpoints on this way).
  public var agentEnvironment: [Int: [String: String]] = [:]
  /// An `s3backupconfig` for the written cluster.yml.
  public var s3: S3BackupConfig?
  /// Allow an http:// S3 endpoint (a local moto).
  public var s3InsecureHTTP = false
  /// `lifeboat.s3.proxy` (`--s3-proxy`).
  public var s3Proxy: String?
  /// Post-restore hooks for the written cluster.yml.
  public var postRestoreHooks: [String] = []
  /// More lines for the `lifeboat:` section (`interval_seconds: 3`, `keep_last: 2`).
  public var lifeboatSettings: [String] = []

  public init(directory: String, nodes: Int = 3, tls: Bool = false) {
    self.directory = directory
    self.nodes = nodes
    self.tls = tls
  }
}

/// The embedded default: N real etcd members on 127.0.0.x with free ports, data, snapshots and
/// logs under one directory, optionally with mutual TLS, and one Lifeboat agent per node. It
/// writes an RKE-style `cluster.yml` and `cluster.rkestate` (CA and certificates with RKE's
/// names) describing itself, so every `--config` command works against it. etcd runs under the
/// `supervised` runtime, the same code the agents use to stop and start it.
public struct LocalCluster: Sendable {
  public var logger: Logger

  public init(logger: Logger = Logger(label: "lifeboat.local")) {
    self.logger = logger
  }

  /// Starts the cluster described by `spec`, or restarts the one already recorded in its
  /// directory. Returns once every member answers and has a leader, and every agent listens.
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
      let context = try state.context()
      for member in state.members {
        let engineUp = state.runtime == .docker && member.enginePid.map(DetachedProcess.isRunning) == true
        if let pid = await Self.runtime(context, member).currentPID() ?? (engineUp ? member.enginePid : nil) {
          throw .usage("the local cluster in \(directory) is already up (\(member.memberName) runs as PID \(pid)); run `lifeboat local down` first")
        }
      }
      logger.info("restarting the local cluster recorded in \(directory)")
    } else {
      state = try create(spec, directory: directory, etcd: etcd)
    }
    let context = try state.context()
    do {
      for index in state.members.indices {
        let runtime = Self.runtime(context, state.members[index])
        if state.runtime == .docker {
          state.members[index].enginePid = try await LocalDockerNodes(directory: directory).start(
            state.members[index], state: state, etcd: etcd, timeout: spec.startTimeout)
          try state.save(to: directory)
        } else {
          try await runtime.start(quotaBackendBytes: nil)
        }
        state.members[index].pid = await runtime.currentPID()
      }
      try state.save(to: directory)
      try await waitUntilHealthy(state, timeout: spec.startTimeout)
      if let agent = spec.agentExecutable {
        for index in state.members.indices {
          let member = state.members[index]
          let pid = try DetachedProcess.spawn(
            executable: agent, arguments: ["agent", "--config", state.configFile!, "--node", member.address],
            logFile: member.runDir + "/agent.log", environment: spec.agentEnvironment[index] ?? [:])
          state.members[index].agentPid = pid
        }
        try state.save(to: directory)
        try await waitForAgents(state, timeout: spec.startTimeout)
      }
    } catch {
      _ = try? await down(directory: directory)
      throw error
    }
    return state
  }

  /// Stops the agents and members recorded in `directory`: SIGTERM, then SIGKILL after a
  /// timeout. Only processes whose command line still names their data directory (etcd) or
  /// their node (agents) are signalled.
  @discardableResult
  public func down(directory: String, purge: Bool = false) async throws(LifeboatError) -> [String] {
    let directory = Self.absolute(directory)
    var state = try LocalClusterState.load(from: directory)
    var stopped: [String] = []
    for index in state.members.indices {
      let member = state.members[index]
      if let pid = member.agentPid, let command = DetachedProcess.commandLine(pid), command.contains("agent"),
        command.contains(member.address)
      {
        if await DetachedProcess.stop(pid) { stopped.append("agent on \(member.address)") }
      }
      state.members[index].agentPid = nil
    }
    let context = try? state.context()
    for index in state.members.indices where state.runtime == .docker {
      if await LocalDockerNodes(directory: directory).stopEngine(state.members[index]) {
        stopped.append(state.members[index].memberName)
      }
      state.members[index].pid = nil
      state.members[index].enginePid = nil
    }
    for index in state.members.indices where state.runtime != .docker {
      let member = state.members[index]
      if let context {
        let runtime = Self.runtime(context, member)
        if await runtime.currentPID() != nil, (try? await runtime.stop()) != nil { stopped.append(member.memberName) }
      }
      if let pid = member.pid, let command = DetachedProcess.commandLine(pid), command.contains("--data-dir=\(member.dataDir)") {
        if await DetachedProcess.stop(pid), !stopped.contains(member.memberName) { stopped.append(member.memberName) }
      }
      state.members[index].pid = nil
    }
    try state.save(to: directory)
    if purge {
      if state.runtime == .docker { LocalDockerNodes.unmountAll(under: directory) }
      do { try FileManager.default.removeItem(atPath: directory) } catch {
        throw .storage("cannot remove \(directory): \(error.localizedDescription)")
      }
    }
    return stopped
  }

  /// Stops one member (tests: a member down). docker: stops its container (`kill`: at once), which
  /// its restart policy then leaves stopped.
  public func stopMember(_ member: LocalClusterState.Member, kill: Bool = false) async {
    if let host = member.dockerHost, let engine = try? DockerEngine(host: host) {
      try? await engine.stopContainer("etcd", grace: kill ? 0 : 10)
      return
    }
    guard let pid = member.pid else { return }
    if kill {
      DetachedProcess.kill9(pid)
      for _ in 0..<100 where DetachedProcess.isRunning(pid) { try? await Task.sleep(for: .milliseconds(20)) }
    } else {
      await DetachedProcess.stop(pid)
    }
  }

  static func runtime(_ context: ClusterContext, _ member: LocalClusterState.Member) -> any EtcdRuntime {
    let node = context.config.etcdNodes.first { $0.address == member.address }!
    return EtcdRuntimes.make(context.config.lifeboat.runtime, node: node, config: context.config, state: context.state)
  }

  // MARK: -

  private func create(_ spec: LocalClusterSpec, directory: String, etcd: String) throws(LifeboatError) -> LocalClusterState {
    var members: [LocalClusterState.Member] = []
    var used = Set<Int>()
    for i in 1...spec.nodes {
      let address = "127.0.0.\(spec.firstHost + i - 1)"
      var ports: [Int] = []
      while ports.count < 3 {
        let port = try freeTCPPort(on: address)
        if used.insert(port).inserted { ports.append(port) }
      }
      let node = "node\(i)"
      var member = LocalClusterState.Member(
        node: node, address: address, clientPort: ports[0], peerPort: ports[1],
        dataDir: "\(directory)/\(node)/data", logFile: "\(directory)/\(node)/etcd.log", agentPort: ports[2],
        runDir: "\(directory)/\(node)", snapshotDir: "\(directory)/\(node)/snapshots")
      if spec.runtime == .docker {
        // RKE's host layout under the node's directory; etcd logs to the container's log.
        let layout = LocalDockerNodes.NodeLayout(root: member.runDir)
        member.dataDir = layout.dataDir
        member.snapshotDir = layout.snapshotDir
        member.logFile = member.runDir + "/dockerd.log"
        member.dockerHost = LocalDockerNodes(directory: directory).enginePaths(member).host
      }
      members.append(member)
      try makeDirectories("\(directory)/\(node)")
    }
    let tls = spec.tls || spec.runtime == .docker
    var state = LocalClusterState(runtime: spec.runtime, tls: tls, token: ClusterConfig.clusterToken, members: members)
    state.quotaBackendBytes = spec.quotaBackendBytes
    // The agents always speak mutual TLS, so the CA and certificates are made in any case.
    let tlsDir = directory + "/tls"
    try makeDirectories(tlsDir)
    let ca = try CertificateAuthority(commonName: "kube-ca")
    var bundle: [RKEState.Certificate] = []
    func add(_ name: String, _ cert: String, _ key: String?, keyMode: mode_t = 0o600) throws(LifeboatError) {
      let path = "\(tlsDir)/\(name).pem"
      let keyPath = "\(tlsDir)/\(name)-key.pem"
      try write(cert, to: path, mode: 0o644)
      if let key { try write(key, to: keyPath, mode: keyMode) }
      bundle.append(.init(name: name, certificatePEM: cert, keyPEM: key, path: path, keyPath: key == nil ? nil : keyPath))
    }
    try add("kube-ca", ca.certificatePEM, nil)
    try write(ca.keyPEM, to: tlsDir + "/kube-ca-key.pem", mode: 0o600)
    let addresses = members.map(\.address)
    for index in state.members.indices {
      let member = state.members[index]
      // RKE: every etcd node's certificate has the common name kube-etcd and SANs for all etcd nodes.
      let issued = try ca.issue(commonName: "kube-etcd", ipAddresses: addresses, dnsNames: ["localhost"])
      let name = "kube-etcd-" + member.address.replacingOccurrences(of: ".", with: "-")
      try add(name, issued.certificatePEM, issued.keyPEM)
      state.members[index].certFile = "\(tlsDir)/\(name).pem"
      state.members[index].keyFile = "\(tlsDir)/\(name)-key.pem"
    }
    if spec.runtime == .docker {
      // RKE: every etcd node holds the CA and every etcd node's certificate and key.
      for member in state.members {
        let ssl = LocalDockerNodes.NodeLayout(root: member.runDir).sslDir
        try makeDirectories(ssl)
        for certificate in bundle {
          try write(certificate.certificatePEM, to: "\(ssl)/\(certificate.name).pem", mode: 0o644)
          if let key = certificate.keyPEM { try write(key, to: "\(ssl)/\(certificate.name)-key.pem", mode: 0o600) }
        }
      }
    }
    let admin = try ca.issue(commonName: "kube-admin", organization: "system:masters")
    try add("kube-admin", admin.certificatePEM, admin.keyPEM)
    // A worker's certificate from the same CA: tests use it to check that it is refused.
    let worker = try ca.issue(commonName: "kube-node", organization: "system:nodes")
    try add("kube-node", worker.certificatePEM, worker.keyPEM)
    if tls {
      state.caFile = tlsDir + "/kube-ca.pem"
      state.clientCertFile = tlsDir + "/kube-admin.pem"
      state.clientKeyFile = tlsDir + "/kube-admin-key.pem"
    }
    let configFile = directory + "/cluster.yml"
    try AtomicFile.write(try RKEState.encode(bundle), to: directory + "/cluster.rkestate", mode: 0o600)
    try write(Self.clusterYAML(state, spec: spec, etcd: etcd), to: configFile, mode: 0o600)
    state.configFile = configFile
    try state.save(to: directory)
    return state
  }

  private func write(_ text: String, to path: String, mode: mode_t) throws(LifeboatError) {
    try AtomicFile.write(Array(text.utf8), to: path, mode: mode)
  }

  /// Waits until every member answers `Status` and has a leader.
  public func waitUntilHealthy(_ state: LocalClusterState, timeout: Duration) async throws(LifeboatError) {
    let connection = try Self.connection(for: state)
    let context = try state.context()
    let deadline = ContinuousClock.now + timeout
    var lastProblem = ""
    while ContinuousClock.now < deadline {
      for member in state.members where await Self.runtime(context, member).currentPID() == nil {
        throw .failure("\(member.memberName) exited during start: \(await Self.etcdLogTail(member))")
      }
      guard let problem = await MemberSelector(connection: connection).clusterProblem() else { return }
      lastProblem = problem
      try? await Task.sleep(for: .milliseconds(200))
    }
    throw .unavailable("the local cluster did not become healthy within \(timeout): \(lastProblem)")
  }

  /// Waits until every agent accepts connections on its port.
  func waitForAgents(_ state: LocalClusterState, timeout: Duration) async throws(LifeboatError) {
    let deadline = ContinuousClock.now + timeout
    for member in state.members {
      while !canConnect(member.address, member.agentPort ?? 0) {
        if let pid = member.agentPid, !DetachedProcess.isRunning(pid) {
          throw .failure("the agent on \(member.address) exited: \(Self.logTail(member.runDir + "/agent.log"))")
        }
        if ContinuousClock.now > deadline { throw .unavailable("the agent on \(member.address) did not start within \(timeout)") }
        try? await Task.sleep(for: .milliseconds(100))
      }
    }
  }

  private func canConnect(_ address: String, _ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    inet_pton(AF_INET, address, &addr.sin_addr)
    return withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
  }

  /// How to reach a local cluster's members.
  public static func connection(for state: LocalClusterState) throws(LifeboatError) -> EtcdConnection {
    try EtcdConnection.parse(
      endpoints: state.endpoints.joined(separator: ","), caFile: state.caFile, certFile: state.clientCertFile,
      keyFile: state.clientKeyFile)
  }

  /// The last line etcd wrote: its log file, or its container's log.
  static func etcdLogTail(_ member: LocalClusterState.Member) async -> String {
    if let host = member.dockerHost, let engine = try? DockerEngine(host: host) {
      let line = (try? await engine.logs("etcd", tail: 1))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
      return "\(line) (log: docker logs etcd, DOCKER_HOST=\(host))"
    }
    return logTail(member.logFile)
  }

  static func logTail(_ path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "no log at \(path)" }
    let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline).suffix(1)
    return lines.joined(separator: " ") + " (log: \(path))"
  }

  static func absolute(_ path: String) -> String {
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    return (absolute as NSString).standardizingPath
  }
}
