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

/// A request context that keeps the connection, to read the client's verified certificate.
public struct AgentRequestContext: RequestContext {
  public var coreContext: CoreRequestContextStorage
  public let channel: any Channel

  public init(source: ApplicationRequestContextSource) {
    self.coreContext = .init(source: source)
    self.channel = source.channel
  }

  public var maxUploadSize: Int { 1 << 20 }
}

/// Authorizes every request by its client certificate's common name (DESIGN.md "Trust between
/// nodes"): `kube-etcd` (peers), `kube-admin` (the operator), and the config's `allowed_clients`.
/// TLS has already required a certificate signed by `kube-ca`; a worker's `kube-node`
/// certificate from that CA gets 403 here.
struct CommonNameAuthorization: RouterMiddleware {
  typealias Context = AgentRequestContext
  let allowed: Set<String>

  func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
    let certificate = try? await context.channel.nioSSL_peerCertificate().get()
    let name = certificate.flatMap(AgentTLS.commonName)
    guard let name, allowed.contains(name) else {
      context.logger.warning("refused \(request.method) \(request.uri.path) from a client certificate with common name \(name ?? "none")")
      return AgentErrorBody.response(LifeboatError(.usage, "forbidden: certificate common name \(name ?? "none") may not call this agent"), status: .forbidden)
    }
    // Peers (every etcd node holds every kube-etcd key) only read: health, listings, archives and
    // manifests. Changing anything, or reading a restore's state file, takes an admin.
    if name == "kube-etcd", !Self.peerMayCall(request) {
      context.logger.warning("refused \(request.method) \(request.uri.path) from a peer (kube-etcd)")
      return AgentErrorBody.response(LifeboatError(.usage, "forbidden: peers (kube-etcd) may only read snapshots"), status: .forbidden)
    }
    return try await next(request, context)
  }

  static func peerMayCall(_ request: Request) -> Bool {
    let path = request.uri.path
    // Peers also ask each other to copy a recurring snapshot (the copy is verified against its
    // manifest; the receiving node applies its own retention).
    if request.method == .post, path.hasPrefix("/v1/snapshots/"), path.hasSuffix("/copy") { return true }
    guard request.method == .get else { return false }
    return path == "/healthz" || path == "/metrics" || path == "/v1/snapshots" || path == "/v1/schedule"
      || path.hasSuffix("/archive") || path.hasSuffix("/manifest")
  }
}

/// The JSON of an error answer: RemoteNode turns it back into the same LifeboatError.
struct AgentErrorBody: Codable {
  var kind: String
  var message: String

  static func response(_ error: LifeboatError, status: HTTPResponse.Status? = nil) -> Response {
    let body = AgentErrorBody(kind: error.kind.rawValue, message: error.message)
    let data = (try? JSONEncoder().encode(body)) ?? Data()
    return Response(
      status: status ?? Self.status(error.kind), headers: [.contentType: "application/json"],
      body: .init(byteBuffer: ByteBuffer(bytes: data)))
  }

  static func status(_ kind: LifeboatError.Kind) -> HTTPResponse.Status {
    switch kind {
    case .usage: .badRequest
    case .notFound: .notFound
    case .verification: .unprocessableContent
    case .unavailable: .serviceUnavailable
    case .storage: .init(code: 507, reasonPhrase: "Insufficient Storage")
    default: .internalServerError
    }
  }
}

/// `lifeboat agent`: the node's HTTP API over a LocalNode, always mutual TLS.
public struct AgentServer: Sendable {
  public let node: LocalNode
  public let tls: TLSConfiguration
  public let allowed: Set<String>
  public let host: String
  public let port: Int
  public let schedule: RecurringSnapshots?
  public var logger: Logger

  public init(node: LocalNode, schedule: RecurringSnapshots? = nil, logger: Logger = Logger(label: "lifeboat.agent")) throws(LifeboatError) {
    self.schedule = schedule
    guard let state = node.context.state else { throw .usage("the agent needs the state file's certificates") }
    self.node = node
    self.tls = try AgentTLS.server(state: state, certificate: node.node.certificateName)
    self.allowed = AgentTLS.defaultAllowedNames.union(node.context.config.lifeboat.allowedClients)
    self.host = node.node.address
    self.port = node.node.agentPort
    self.logger = logger
  }

  /// Runs until SIGTERM or SIGINT, then stops gracefully (requests in flight finish).
  public func run(onRunning: @escaping @Sendable () async -> Void = {}) async throws {
    let router = Router(context: AgentRequestContext.self)
    router.add(middleware: CommonNameAuthorization(allowed: allowed))
    AgentRoutes(node: node, schedule: schedule).register(router)
    let app = Application(
      router: router, server: try .tls(.http1(), tlsConfiguration: tls),
      configuration: .init(address: .hostname(host, port: port), serverName: "lifeboat-agent"),
      onServerRunning: { _ in await onRunning() }, logger: logger)
    try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
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
