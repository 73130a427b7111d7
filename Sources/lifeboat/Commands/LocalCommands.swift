import ArgumentParser
import Foundation
import LifeboatCore
import LifeboatEngine

struct LocalDirectoryOptions: ParsableArguments {
  @Option(help: "Directory of the local cluster (data, logs, certificates, cluster.json).")
  var dir: String = ".lifeboat-local"
}

struct LocalUp: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "up", abstract: "Start N real etcd members on 127.0.0.x in the background.")

  @Option(help: "Number of members (1-9).")
  var nodes: Int = 3

  @Flag(help: "Mutual TLS, with a CA and certificates made for the cluster (kube-ca, kube-etcd, kube-admin).")
  var tls = false

  @Option(help: "etcd's --quota-backend-bytes for every member (default: etcd's 2 GiB).")
  var quotaBackendBytes: Int64?

  @Option(help: "How etcd runs: supervised (processes) or docker (RKE's container etcd in a Docker engine per node, with TLS; needs root and dockerd).")
  var runtime: LocalRuntime = .supervised

  @Flag(help: "Start no node agents (etcd members only).")
  var noAgents = false

  @OptionGroup(title: "S3 (written into cluster.yml's s3backupconfig)") var remote: S3Options

  @OptionGroup var location: LocalDirectoryOptions

  /// The member count is checked before anything else (S3 flags, files, etcd on PATH).
  func validate() throws {
    guard (1...9).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 9") }
  }

  static func ownExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
  }

  func run() async throws {
    var spec = LocalClusterSpec(directory: location.dir, nodes: nodes, tls: tls)
    spec.quotaBackendBytes = quotaBackendBytes
    spec.runtime = runtime
    spec.agentExecutable = noAgents ? nil : Self.ownExecutable()
    spec.s3 = try remote.backupConfig()
    spec.s3InsecureHTTP = remote.insecureHTTP
    spec.s3Proxy = remote.proxy
    let state = try await LocalCluster().up(spec)
    for member in state.members {
      print("\(member.memberName)  \(state.clientURL(member))  pid \(member.pid.map(String.init) ?? "-")  log \(member.logFile)")
      if let host = member.dockerHost {
        print("  container etcd in the Docker engine DOCKER_HOST=\(host) (pid \(member.enginePid.map(String.init) ?? "-"))")
      }
      if let agentPid = member.agentPid {
        print("  agent https://\(member.address):\(member.agentPort ?? 0)  pid \(agentPid)  log \(member.runDir)/agent.log")
      }
    }
    print("")
    if let configFile = state.configFile { print("cluster config: \(configFile) (state file next to it)") }
    print("flags for lifeboat snapshot save:")
    print("  " + state.connectionFlags.joined(separator: " "))
    print("for etcdctl: eval \"$(lifeboat local env --dir \(location.dir))\"")
  }
}

extension LocalRuntime: ExpressibleByArgument {}

struct LocalEnv: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "env", abstract: "Print ETCDCTL_* exports for the local cluster.")

  @OptionGroup var location: LocalDirectoryOptions

  func run() async throws {
    print(try LocalClusterState.load(from: location.dir).environmentExports)
  }
}

struct LocalDown: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "down", abstract: "Stop the local cluster's members (exactly the PIDs `up` recorded).")

  @OptionGroup var location: LocalDirectoryOptions

  @Flag(help: "Also delete the directory: data, logs and certificates.")
  var purge = false

  func run() async throws {
    let stopped = try await LocalCluster().down(directory: location.dir, purge: purge)
    print(stopped.isEmpty ? "no member was running" : "stopped \(stopped.joined(separator: ", "))")
  }
}
