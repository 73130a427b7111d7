import Crypto
import Foundation
import LifeboatCore

/// `lifeboat local up --runtime docker`: nodes like RKE's on one machine. Each node gets its own
/// Docker engine (`dockerd` with its socket, data root and PID file under the node's directory,
/// its exec root under a short `/tmp` path for the socket length limit), an etcd image made
/// locally (`docker import` of a root file system with the host's `etcd` and `etcdctl` and the
/// libraries `ldd` lists, since no registry is needed), RKE's certificates in
/// `<node>/etc/kubernetes/ssl/`, and the container `etcd` with RKE's command line, binds,
/// `--network=host` and restart policy `always`.
struct LocalDockerNodes: Sendable {
  let directory: String

  /// The image tag: `lifeboat-local/etcd:<etcd version>`.
  static let repository = "lifeboat-local/etcd"

  // MARK: - Engines

  /// Where node `node`'s engine keeps its socket, data and exec root.
  struct EnginePaths {
    var socket: String
    var dataRoot: String
    var execRoot: String
    var pidFile: String
    var logFile: String
    var host: String { "unix://" + socket }
  }

  func enginePaths(_ member: LocalClusterState.Member) -> EnginePaths {
    let nodeDir = member.runDir
    // containerd's shim sockets live under the exec root and must fit 108 bytes too.
    let digest = SHA256.hash(data: Data(directory.utf8)).prefix(4).map { String(format: "%02x", $0) }.joined()
    var socket = nodeDir + "/docker.sock"
    if socket.utf8.count >= 100 { socket = "/tmp/lifeboat-\(digest)-\(member.node).sock" }
    return EnginePaths(
      socket: socket, dataRoot: nodeDir + "/docker", execRoot: "/tmp/lbx-\(digest)-\(member.node)",
      pidFile: nodeDir + "/docker.pid", logFile: nodeDir + "/dockerd.log")
  }

  /// Starts the node's engine unless it already answers; returns its PID.
  func startEngine(_ member: LocalClusterState.Member, timeout: Duration) async throws(LifeboatError) -> Int32? {
    let paths = enginePaths(member)
    let engine = try DockerEngine(host: paths.host)
    if (try? await engine.version()) != nil { return Self.enginePID(paths) }
    guard let dockerd = ProcessRunner.which("dockerd") else {
      throw .usage("dockerd not found on PATH (Debian: apt-get install docker.io)")
    }
    guard geteuid() == 0 else { throw .usage("--runtime docker starts Docker engines, which needs root") }
    try makeDirectories(paths.dataRoot)
    try makeDirectories(paths.execRoot)
    try? FileManager.default.removeItem(atPath: paths.socket)
    let pid = try DetachedProcess.spawn(
      executable: dockerd,
      arguments: [
        "--iptables=false", "--ip6tables=false", "--bridge=none", "--host", paths.host, "--data-root", paths.dataRoot,
        "--exec-root", paths.execRoot, "--pidfile", paths.pidFile,
      ],
      logFile: paths.logFile)
    let deadline = ContinuousClock.now + timeout
    while (try? await engine.version()) == nil {
      if !DetachedProcess.isRunning(pid) {
        throw .failure("the Docker engine of \(member.node) exited: \(LocalCluster.logTail(paths.logFile))")
      }
      if ContinuousClock.now > deadline {
        throw .unavailable("the Docker engine of \(member.node) did not answer within \(timeout): \(LocalCluster.logTail(paths.logFile))")
      }
      try? await Task.sleep(for: .milliseconds(100))
    }
    return pid
  }

  static func enginePID(_ paths: EnginePaths) -> Int32? {
    guard let data = FileManager.default.contents(atPath: paths.pidFile) else { return nil }
    return Int32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
  }

  /// Stops exactly the engine `up` started: the recorded PID, when its command line names the
  /// node's socket. Containers are removed first.
  func stopEngine(_ member: LocalClusterState.Member) async -> Bool {
    let paths = enginePaths(member)
    // Every container of the node's engine (a renamed etcd too: with restart policy `always` it
    // would start again with the engine).
    if let engine = try? DockerEngine(host: paths.host), let containers = try? await engine.listContainers() {
      for container in containers { try? await engine.removeContainer(container.id) }
    }
    // The engine `up` started, or the one its PID file names now (an engine restarted since).
    let candidates = [member.enginePid, Self.enginePID(paths)].compactMap { $0 }
    var stopped = false
    for pid in candidates where DetachedProcess.commandLine(pid)?.contains(paths.host) == true {
      stopped = await DetachedProcess.stop(pid, timeout: .seconds(30)) || stopped
    }
    // dockerd leaves its network namespace mounted in the exec root.
    Self.unmountAll(under: paths.execRoot)
    try? FileManager.default.removeItem(atPath: paths.execRoot)
    return stopped
  }

  /// Detaches every mount at or below `directory` (deepest first): what an engine killed
  /// without its cleanup leaves (its data root's overlay and bind mounts, its netns).
  static func unmountAll(under directory: String) {
    guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
    let prefix = directory.hasSuffix("/") ? directory : directory + "/"
    let points = text.split(separator: "\n").compactMap { line -> String? in
      let fields = line.split(separator: " ")
      guard fields.count > 4 else { return nil }
      // Mount points escape spaces and the like as octal (\040).
      let point = String(fields[4]).replacingOccurrences(of: "\\040", with: " ")
      return point == directory || point.hasPrefix(prefix) ? point : nil
    }
    for point in points.sorted(by: { $0.count > $1.count }) { umount2(point, Int32(MNT_DETACH)) }
  }

  // MARK: - Image

  /// Makes the etcd image in the node's engine unless it holds it already; returns its reference.
  func ensureImage(in engine: DockerEngine, etcd: String) async throws(LifeboatError) -> String {
    let version = try await Self.etcdVersion(etcd)
    let reference = "\(Self.repository):\(version)"
    if try await engine.hasImage(reference) { return reference }
    let tar = try await imageTar(etcd: etcd, version: version)
    try await engine.importImage(tarFile: tar, repository: Self.repository, tag: version)
    return reference
  }

  static func etcdVersion(_ etcd: String) async throws(LifeboatError) -> String {
    let result = try await ProcessRunner.run(etcd, ["--version"], timeout: .seconds(30))
    for line in result.stdout.split(whereSeparator: \.isNewline) where line.hasPrefix("etcd Version: ") {
      return String(line.dropFirst("etcd Version: ".count)).trimmingCharacters(in: .whitespaces)
    }
    throw .failure("cannot tell the version of \(etcd): \(result.lastLine)")
  }

  /// `<dir>/etcd-image-<version>.tar`: `/usr/local/bin/etcd`, `/usr/local/bin/etcdctl`, the
  /// libraries they load, and an empty `/tmp`. Made once per local cluster directory.
  func imageTar(etcd: String, version: String) async throws(LifeboatError) -> String {
    let tar = "\(directory)/etcd-image-\(version).tar"
    if FileManager.default.fileExists(atPath: tar) { return tar }
    guard let etcdctl = ProcessRunner.which("etcdctl") else { throw .usage("etcdctl not found on PATH (Debian: etcd-client)") }
    let root = "\(directory)/etcd-image-root"
    try? FileManager.default.removeItem(atPath: root)
    try makeDirectories(root + "/usr/local/bin")
    try makeDirectories(root + "/tmp")
    chmod(root + "/tmp", 0o1777)
    var libraries = Set<String>()
    for binary in [etcd, etcdctl] {
      try copy(binary, to: root + "/usr/local/bin/" + (binary as NSString).lastPathComponent)
      let ldd = try await ProcessRunner.run("/usr/bin/ldd", [binary], timeout: .seconds(30))
      // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"
      for line in ldd.stdout.split(whereSeparator: \.isNewline) {
        for word in line.split(whereSeparator: \.isWhitespace) where word.hasPrefix("/") { libraries.insert(String(word)) }
      }
    }
    for library in libraries {
      let resolved = URL(fileURLWithPath: library).resolvingSymlinksInPath().path
      try makeDirectories(root + parentDirectory(of: library))
      try copy(resolved, to: root + library)
    }
    let partial = tar + ".part"
    let result = try await ProcessRunner.run("/bin/tar", ["-C", root, "-cf", partial, "."], timeout: .seconds(120))
    guard result.status == 0 else { throw .failure("cannot pack the etcd image: \(result.lastLine)") }
    guard rename(partial, tar) == 0 else { throw .storage("cannot rename \(partial): \(String(cString: strerror(errno)))") }
    try? FileManager.default.removeItem(atPath: root)
    return tar
  }

  private func copy(_ from: String, to: String) throws(LifeboatError) {
    do {
      try? FileManager.default.removeItem(atPath: to)
      try FileManager.default.copyItem(atPath: from, toPath: to)
    } catch { throw .storage("cannot copy \(from) into the etcd image: \(error.localizedDescription)") }
  }

  // MARK: - The etcd container

  /// The host directories of node `member` that RKE binds into the container.
  struct NodeLayout {
    var root: String
    var dataDir: String { root + "/var/lib/etcd" }
    var kubernetesDir: String { root + "/etc/kubernetes" }
    var sslDir: String { kubernetesDir + "/ssl" }
    var snapshotDir: String { root + "/opt/rke/etcd-snapshots" }
  }

  /// RKE's etcd container (`cluster/plan.go` BuildEtcdProcess) for this member.
  static func containerSpec(
    _ member: LocalClusterState.Member, state: LocalClusterState, image: String, layout: NodeLayout
  ) -> DockerContainerSpec {
    let ssl = "/etc/kubernetes/ssl"
    let own = "kube-etcd-" + member.address.replacingOccurrences(of: ".", with: "-")
    let client = state.clientURL(member)
    let peer = state.peerURL(member)
    let arguments = [
      "/usr/local/bin/etcd", "--client-cert-auth", "--peer-client-cert-auth",
      "--name=\(member.memberName)", "--data-dir=/var/lib/rancher/etcd/",
      "--advertise-client-urls=\(client)", "--listen-client-urls=\(client)",
      "--initial-advertise-peer-urls=\(peer)", "--listen-peer-urls=\(peer)",
      "--initial-cluster-token=\(state.token)", "--initial-cluster=\(state.initialCluster)", "--initial-cluster-state=new",
      "--trusted-ca-file=\(ssl)/kube-ca.pem", "--peer-trusted-ca-file=\(ssl)/kube-ca.pem",
      "--cert-file=\(ssl)/\(own).pem", "--key-file=\(ssl)/\(own)-key.pem",
      "--peer-cert-file=\(ssl)/\(own).pem", "--peer-key-file=\(ssl)/\(own)-key.pem",
      "--election-timeout=5000", "--heartbeat-interval=500",
    ] + (state.quotaBackendBytes.map { ["--quota-backend-bytes=\($0)"] } ?? [])
    return DockerContainerSpec(
      Image: image, Cmd: arguments,
      Env: [
        "ETCDCTL_API=3", "ETCDCTL_CACERT=\(ssl)/kube-ca.pem", "ETCDCTL_CERT=\(ssl)/\(own).pem",
        "ETCDCTL_KEY=\(ssl)/\(own)-key.pem", "ETCDCTL_ENDPOINTS=\(client)",
      ],
      Labels: ["io.rancher.rke.container.name": "etcd"],
      HostConfig: .init(
        Binds: ["\(layout.dataDir):/var/lib/rancher/etcd/:z", "\(layout.kubernetesDir):/etc/kubernetes:z"], NetworkMode: "host",
        RestartPolicy: .init(Name: "always")))
  }

  /// Starts the node's engine, image and container `etcd` (created when missing, else the same
  /// container started again). Returns the engine's PID.
  func start(
    _ member: LocalClusterState.Member, state: LocalClusterState, etcd: String, timeout: Duration
  ) async throws(LifeboatError) -> Int32? {
    let pid = try await startEngine(member, timeout: timeout)
    let engine = try DockerEngine(host: enginePaths(member).host)
    let layout = NodeLayout(root: member.runDir)
    if try await engine.inspectContainer("etcd") == nil {
      let image = try await ensureImage(in: engine, etcd: etcd)
      try makeDirectories(layout.dataDir)
      _ = try await engine.createContainer(name: "etcd", Self.containerSpec(member, state: state, image: image, layout: layout))
    }
    try await engine.startContainer("etcd")
    return pid
  }
}
