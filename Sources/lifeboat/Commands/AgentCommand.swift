import ArgumentParser
import Foundation
import LifeboatAgent
import LifeboatCore
import LifeboatEngine
import Logging

struct AgentCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "agent",
    abstract: "Run the node agent of one etcd node (long-running; HTTPS with mutual TLS; stops on SIGTERM).",
    discussion: """
      Serves the node's snapshots to its peers and carries out the restore steps the operator's \
      `lifeboat snapshot restore` asks for. Only clients whose certificate (signed by kube-ca) has \
      the common name kube-etcd or kube-admin, or one listed in lifeboat.allowed_clients, are served.
      """)

  @OptionGroup var cluster: ClusterConfigOption

  @Option(help: "This node's address in cluster.yml.")
  var node: String

  func run() async throws {
    AgentMetrics.bootstrap()
    let logger = Logger(label: "lifeboat.agent")
    var config = try ClusterConfig.load(cluster.config)
    // An RKE node without the cluster's state file: the certificates are where the container
    // reads them (its --trusted-ca-file, through its binds), unless cluster.yml says.
    if config.lifeboat.runtime.kind == .docker, !FileManager.default.fileExists(atPath: config.stateFilePath),
      !config.lifeboat.certDirStated
    {
      let runtime = DockerRuntime(settings: config.lifeboat.runtime, node: try config.etcdNode(node), config: config)
      if let container = try? await runtime.inspect(), let ca = container.etcdFlags["trusted-ca-file"],
        let host = container.hostPath(of: ca)
      {
        config.lifeboat.certDir = parentDirectory(of: host)
        logger.info("certificates from \(config.lifeboat.certDir), where container \(config.lifeboat.runtime.container) reads them")
      }
    }
    var context = try ClusterContext.load(config: config)
    var own = try context.config.etcdNode(node)
    guard let state = context.state else { throw LifeboatError.usage("no state file") }
    // RKE's node: where the container really keeps its data, unless cluster.yml says.
    if context.config.lifeboat.runtime.kind == .docker, own.dataDirStated != true {
      let runtime = DockerRuntime(settings: context.config.lifeboat.runtime, node: own, config: context.config)
      do {
        if let dataDir = try await runtime.inspect().hostDataDir, dataDir != own.dataDir {
          logger.info("data dir \(dataDir), as container \(context.config.lifeboat.runtime.container) binds it")
          own.dataDir = dataDir
          var override = context.config.lifeboat.nodes[own.address] ?? .init()
          override.dataDir = dataDir
          context.config.lifeboat.nodes[own.address] = override
        }
      } catch {
        logger.warning("cannot read the data dir from the container (\(error.message)); using \(own.dataDir)")
      }
    }
    let peers = try AgentClient(state: state, certificate: own.certificateName)
    let local = LocalNode(context: context, node: own, peers: peers)
    let others = context.config.etcdNodes.filter { $0.address != own.address }.map { RemoteNode(node: $0, client: peers) }
    let schedule = RecurringSnapshots(context: context, local: local, peers: others)
    do {
      let server = try AgentServer(node: local, schedule: schedule)
      let state = await schedule.current
      logger.info("agent for \(own.memberName) on \(own.agentURL); runtime: \(local.runtime.summary); schedule: \(state.enabled ? state.schedule : "off")")
      // The schedule is a service of the agent's application: on SIGTERM the server stops
      // (after requests in flight) and the schedule with it (a run in progress is cancelled and
      // cleans up: no .part, no unfinished upload).
      try await server.run()
    } catch is CancellationError {
    } catch {
      await peers.shutdown()
      throw error
    }
    await peers.shutdown()
    logger.info("agent stopped")
  }
}
