import Foundation
import LifeboatCore

/// The throwaway etcd of a drill, as it runs.
public struct DrillEtcd: Sendable {
  /// Its process on this host (for `isRunning` and the cleanup of a killed drill).
  var pid: Int32?
  /// Its container, when it runs in one.
  var container: String?
}

/// Where a drill restores and serves its snapshot: this host's `etcdutl|etcdctl` and `etcd`
/// (`HostDrill`), or containers of the node's own etcd image (`DockerDrill`, for RKE's nodes,
/// which have no etcd binaries of their own). Both restore with the tool's own checks, run the
/// member on 127.0.0.1 at lower CPU priority, and stop it whatever happens.
public protocol DrillHost: Sendable {
  /// One line for the report: which tool and etcd.
  var summary: String { get }
  /// Fails with a usage error when the tools are missing, before anything is written.
  func check() async throws(LifeboatError)
  /// Restores the scratch database; a snapshot that does not restore is a `.verification`
  /// error, a full scratch disk a `.storage` error.
  func restore(_ invocation: RestoreInvocation, timeout: Duration) async throws(LifeboatError)
  /// Starts etcd with `arguments`, its log in `<scratch>/etcd.log` (or the container's).
  func start(_ arguments: [String], scratch: String, name: String) async throws(LifeboatError) -> DrillEtcd
  func isRunning(_ etcd: DrillEtcd) async -> Bool
  /// Its last log lines, for a member that exited.
  func logTail(_ etcd: DrillEtcd, scratch: String) async -> String
  /// Stops and removes it; without a handle, whatever a killed drill left running for the
  /// scratch directory `scratch`.
  func stop(_ etcd: DrillEtcd?, scratch: String) async
}

/// A restore message: a full disk is the machine's problem, anything else the snapshot's.
func drillRestoreFailure(_ output: String, scratch: String) -> LifeboatError {
  let last = output.split(whereSeparator: \.isNewline).last.map(String.init) ?? ""
  if output.lowercased().contains("no space left on device") {
    return LifeboatError(.storage, "the scratch disk \(scratch) filled up during the restore: \(last)")
  }
  return LifeboatError(.verification, "the snapshot does not restore: \(last)", underlying: .process)
}

/// This host's tools: the restore tool (default etcdutl, else etcdctl) and `etcd` under `nice`.
public struct HostDrill: DrillHost {
  public var etcdBinary: String
  public var restoreTool: String?

  public init(etcdBinary: String = "etcd", restoreTool: String? = nil) {
    self.etcdBinary = etcdBinary
    self.restoreTool = restoreTool
  }

  public var summary: String {
    "\((RestoreTool.find(restoreTool).map { ($0 as NSString).lastPathComponent }) ?? "etcdutl|etcdctl") and \(etcdBinary) on this host"
  }

  public func check() async throws(LifeboatError) {
    guard ProcessRunner.which(etcdBinary) != nil else { throw .usage("\(etcdBinary) not found on PATH (Debian: etcd-server)") }
    guard RestoreTool.find(restoreTool) != nil else { throw .usage("neither etcdutl nor etcdctl found on PATH (Debian: etcd-client)") }
  }

  public func restore(_ invocation: RestoreInvocation, timeout: Duration) async throws(LifeboatError) {
    guard let tool = RestoreTool.find(restoreTool) else { throw .usage("neither etcdutl nor etcdctl found on PATH") }
    let command = RestoreTool.command(tool: tool, invocation)
    let result = try await ProcessRunner.run(tool, command.arguments, environment: command.environment, timeout: timeout)
    guard result.status == 0 else { throw drillRestoreFailure(result.stderr + result.stdout, scratch: invocation.stagingDir) }
  }

  public func start(_ arguments: [String], scratch: String, name: String) async throws(LifeboatError) -> DrillEtcd {
    guard let etcd = ProcessRunner.which(etcdBinary) else { throw .usage("\(etcdBinary) not found on PATH") }
    var executable = etcd
    var arguments = arguments
    if let nice = ProcessRunner.which("nice") {
      executable = nice
      arguments = ["-n", "10", etcd] + arguments
    }
    return DrillEtcd(pid: try DetachedProcess.spawn(executable: executable, arguments: arguments, logFile: scratch + "/etcd.log"))
  }

  public func isRunning(_ etcd: DrillEtcd) async -> Bool { etcd.pid.map(DetachedProcess.isRunning) ?? false }

  public func logTail(_ etcd: DrillEtcd, scratch: String) async -> String { LocalCluster.logTail(scratch + "/etcd.log") }

  public func stop(_ etcd: DrillEtcd?, scratch: String) async {
    if let pid = etcd?.pid {
      await DetachedProcess.stop(pid, timeout: .seconds(10))
      return
    }
    // A killed drill's etcd, found by the data dir on its command line.
    let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    for pid in processes.compactMap({ Int32($0) }) where DetachedProcess.commandLine(pid)?.contains("--data-dir=\(scratch)/data") == true {
      await DetachedProcess.stop(pid, timeout: .seconds(10))
    }
  }
}

/// Containers of the node's etcd image, on its Docker engine (an RKE node): the restore in a
/// one-off container without network (as a restore's), etcd in a container `<name>` on the
/// host's network (it listens on 127.0.0.1 only) with a quarter of the default CPU shares. Only
/// the scratch directory is bound.
public struct DockerDrill: DrillHost {
  let runtime: DockerRuntime

  public init(runtime: DockerRuntime) { self.runtime = runtime }

  public var summary: String { "containers of the image of \(runtime.container)" }

  public func check() async throws(LifeboatError) { _ = try await runtime.image() }

  public func restore(_ invocation: RestoreInvocation, timeout: Duration) async throws(LifeboatError) {
    do {
      try await runtime.restore(invocation)
    } catch where error.underlying == .process {
      throw drillRestoreFailure(error.message, scratch: invocation.stagingDir)
    }
  }

  public func start(_ arguments: [String], scratch: String, name: String) async throws(LifeboatError) -> DrillEtcd {
    let engine = try runtime.engine()
    let image = try await runtime.image()
    try await engine.removeContainer(name)
    var spec = DockerContainerSpec(
      Image: image, Cmd: ["/usr/local/bin/etcd"] + arguments, Env: [], Labels: ["io.lifeboat.drill": scratch],
      HostConfig: .init(Binds: ["\(scratch):\(scratch)"], NetworkMode: "host"))
    spec.HostConfig.CpuShares = 256
    let id = try await engine.createContainer(name: name, spec)
    do {
      try await engine.startContainer(id)
    } catch {
      try? await engine.removeContainer(id)
      throw error
    }
    return DrillEtcd(container: id)
  }

  public func isRunning(_ etcd: DrillEtcd) async -> Bool {
    guard let id = etcd.container, let engine = try? runtime.engine() else { return false }
    return (try? await engine.inspectContainer(id, timeout: .seconds(5)))??.State.Running ?? false
  }

  public func logTail(_ etcd: DrillEtcd, scratch: String) async -> String {
    guard let id = etcd.container, let engine = try? runtime.engine() else { return "" }
    return (try? await engine.logs(id, tail: 5)) ?? ""
  }

  public func stop(_ etcd: DrillEtcd?, scratch: String) async {
    guard let engine = try? runtime.engine() else { return }
    let name = (scratch as NSString).lastPathComponent
    // Removing with force stops it; by name also catches a container a killed drill left.
    try? await engine.removeContainer(etcd?.container ?? name)
    if etcd?.container != nil { try? await engine.removeContainer(name) }
  }
}
