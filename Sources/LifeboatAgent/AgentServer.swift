import Foundation
import Hummingbird
import HummingbirdTLS
import LifeboatCore
import LifeboatEngine
import Logging
import Metrics
import Prometheus
import NIOCore
import NIOSSL
import ServiceLifecycle
import Synchronization

/// A request context that keeps the connection, to read the client's verified certificate.
public struct AgentRequestContext: RequestContext {
  public var coreContext: CoreRequestContextStorage
  public let channel: any Channel

  public init(source: ApplicationRequestContextSource) {
    self.coreContext = .init(source: source)
    self.channel = source.channel
  }

  public var maxUploadSize: Int { 1 << 20 }
  /// Set by `CommonNameAuthorization` from the client certificate.
  public var role: AgentRole?
}

/// Authenticates every request by its client certificate's common name and records the
/// caller's `AgentRole` in the context; each route then requires the role the `AgentRoute`
/// table gives it. Names with no role (a worker's `kube-node` certificate from the same CA) get
/// 403 here, for every path.
struct CommonNameAuthorization: RouterMiddleware {
  typealias Context = AgentRequestContext
  let allowedClients: Set<String>

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
    let certificate = try? await context.channel.nioSSL_peerCertificate().get()
    let name = certificate.flatMap(AgentTLS.commonName)
    guard let name, let role = AgentRole.of(commonName: name, allowedClients: allowedClients) else {
      context.logger.warning("refused \(request.method) \(request.uri.path) from a client certificate with common name \(name ?? "none")")
      throw AgentHTTPError(
        LifeboatError(.usage, "forbidden: certificate common name \(name ?? "none") may not call this agent"), status: .forbidden)
    }
    var context = context
    context.role = role
    return try await next(request, context)
  }
}

/// Set once the agent begins to stop.
final class StopFlag: Sendable {
  private let value = Atomic<Bool>(false)
  func set() { value.store(true, ordering: .relaxed) }
  var isSet: Bool { value.load(ordering: .relaxed) }
}

/// While the agent stops, a request that would start work (POST, PUT: a save, a copy, a restore
/// step, a run) gets 503 at once, instead of starting what the end of the drain would cut off.
/// Reads and deletes (quick, and a restore's cleanup) are still served.
struct RefuseWorkWhileStopping: RouterMiddleware {
  typealias Context = AgentRequestContext
  let stopping: StopFlag

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
    if stopping.isSet, request.method == .post || request.method == .put {
      throw AgentHTTPError(
        LifeboatError(.unavailable, "the agent is stopping: \(request.method) \(request.uri.path) refused", underlying: .stopping))
    }
    return try await next(request, context)
  }
}

/// `lifeboat agent`: the node's HTTP API over a LocalNode, always mutual TLS.
public struct AgentServer: Sendable {
  public let node: LocalNode
  public let tls: TLSConfiguration
  public let allowedClients: Set<String>
  public let host: String
  public let port: Int
  public let schedule: RecurringSnapshots?
  public let drills: ScheduledDrills?
  public var logger: Logger

  public init(
    node: LocalNode, schedule: RecurringSnapshots? = nil, drills: ScheduledDrills? = nil, logger: Logger = Logger(label: "lifeboat.agent")
  ) throws(LifeboatError) {
    self.schedule = schedule
    self.drills = drills
    guard let state = node.context.state else { throw .usage("the agent needs the state file's certificates") }
    self.node = node
    self.tls = try AgentTLS.server(state: state, certificate: node.node.certificateName)
    self.allowedClients = Set(node.context.config.lifeboat.allowedClients)
    self.host = node.node.address
    self.port = node.node.agentPort
    self.logger = logger
  }

  /// How long SIGTERM's graceful shutdown waits for the server's requests in flight before it
  /// cancels them (they clean up as any cancelled command does).
  public static let drainLimit: Duration = .seconds(30)

  /// Runs until cancelled (the CLI cancels it on SIGTERM or SIGINT), then stops gracefully:
  /// first the schedules (no run starts any more; one in progress is cancelled and cleans up),
  /// then the server (requests in flight finish, for `drainLimit` at most). The schedules go
  /// first so that no run starts while the server drains, only to be cut off when it ends.
  public func run(onRunning: @escaping @Sendable () async -> Void = {}) async throws {
    let stopping = StopFlag()
    let router = Router(context: AgentRequestContext.self)
    router.add(middleware: CommonNameAuthorization(allowedClients: allowedClients))
    router.add(middleware: RefuseWorkWhileStopping(stopping: stopping))
    AgentRoutes(node: node, schedule: schedule, drills: drills).register(router)
    let app = Application(
      router: router, server: try .tls(.http1(), tlsConfiguration: tls),
      configuration: .init(address: .hostname(host, port: port), serverName: "lifeboat-agent"),
      onServerRunning: { _ in await onRunning() }, logger: logger)
    let schedules: [any Service] = [
      schedule.map { s in ScheduleService(loop: { await s.loop() }, stop: { await s.stop() }) },
      drills.map { d in ScheduleService(loop: { await d.loop() }, stop: { await d.stop() }) },
    ].compactMap { $0 }
    // A service group stops its services in reverse order, each after the one before has ended.
    var configuration = ServiceGroupConfiguration(services: [app] + schedules, logger: logger)
    configuration.maximumGracefulShutdownDuration = Self.drainLimit
    let group = ServiceGroup(configuration: configuration)
    // The group runs in a task of its own, so that cancelling this one becomes its graceful
    // shutdown: cancelled itself, it would cancel the server while it drains (which Hummingbird
    // logs as errors) and the schedules in no order.
    let running = Task { try await group.run() }
    do {
      try await withTaskCancellationHandler {
        try await running.value
      } onCancel: {
        stopping.set()
        Task { await group.triggerGracefulShutdown() }
      }
    } catch let error as IOError {
      // NIO's words for a port in use: "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)".
      let reason = error.errnoCode == EADDRINUSE ? "the port is in use (another agent?)" : String(cString: strerror(error.errnoCode))
      throw LifeboatError.unavailable("cannot listen on \(host):\(port): \(reason)")
    }
  }
}

/// The agent's metrics (swift-metrics, exported in Prometheus' text format at `/metrics`).
public enum AgentMetrics {
  public static let registry = PrometheusCollectorRegistry()
  nonisolated(unsafe) private static var bootstrapped = false
  private static let lock = NSLock()

  /// Makes swift-metrics report into `registry` (once per process).
  public static func bootstrap() {
    lock.lock()
    defer { lock.unlock() }
    guard !bootstrapped else { return }
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    bootstrapped = true
  }
}

/// A schedule's loop (recurring snapshots, drills) as a service of the agent's service group
/// (swift-service-lifecycle): it runs beside the server; at graceful shutdown the loop is
/// cancelled and `stop` refuses new runs and waits for one in progress to clean up.
struct ScheduleService: Service {
  let loop: @Sendable () async -> Void
  let stop: @Sendable () async -> Void

  func run() async throws {
    await cancelWhenGracefulShutdown { await loop() }
    // A disabled schedule returns at once; the service stays until shutdown (a service that
    // returns would stop the whole group).
    try? await gracefulShutdown()
    await stop()
  }
}
