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
    // An RKE node: what cluster.yml leaves unsaid (certificates, data dir) is read from the container.
    let (config, facts, warning) = try await DockerRuntime.adoptContainerFacts(try ClusterConfig.load(cluster.config), node: node)
    // Stopped while starting (a SIGTERM during a slow docker inspect): nothing runs yet, and what
    // the cancelled inspect could not tell would only make a misleading error.
    if Task.isCancelled {
      logger.info("agent stopped before it started")
      return
    }
    for fact in facts { logger.info("\(fact)") }
    if let warning { logger.warning("\(warning)") }
    let context = try ClusterContext.load(config: config)
    let own = try context.config.etcdNode(node)
    guard let state = context.state else { throw LifeboatError.usage("no state file") }
    let peers = try AgentClient(state: state, certificate: own.certificateName)
    let local = LocalNode(context: context, node: own, peers: peers)
    let others = context.config.etcdNodes.filter { $0.address != own.address }.map { RemoteNode(node: $0, client: peers) }
    let schedule = RecurringSnapshots(context: context, local: local, peers: others)
    let drills = ScheduledDrills(context: context, local: local)
    do {
      let server = try AgentServer(node: local, schedule: schedule, drills: drills)
      let state = await schedule.current
      let drilling = await drills.current.schedule
      logger.info(
        "agent for \(own.memberName) on \(own.agentURL); runtime: \(local.runtime.summary); schedule: \(state.enabled ? state.schedule : "off"); drills: \(drilling)")
      // On SIGTERM the schedules stop first (a run in progress is cancelled and cleans up: no
      // .part, no unfinished upload), then the server (after requests in flight).
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
