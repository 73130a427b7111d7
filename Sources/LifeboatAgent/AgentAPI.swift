import Foundation
import HTTPTypes
import LifeboatCore
import LifeboatEngine

/// Who may call a route, by the client certificate's common name (DESIGN.md "Trust between
/// nodes"). TLS has already required a certificate signed by `kube-ca`.
public enum AgentRole: String, Sendable, Comparable {
  /// Prometheus scrapers and everyone below: `/metrics`, `/healthz`.
  case metrics
  /// Peers (`kube-etcd`, held by every etcd node): read snapshots and restore archives, and
  /// ask for a verified copy of a recurring snapshot. Nothing else changes through a peer.
  case peer
  /// The operator (`kube-admin`) and `lifeboat.allowed_clients`: everything.
  case `operator`

  public static func < (a: AgentRole, b: AgentRole) -> Bool { a.rank < b.rank }
  private var rank: Int {
    switch self {
    case .metrics: 0
    case .peer: 1
    case .operator: 2
    }
  }

  /// The role of a common name: nil for names that may not call at all.
  public static func of(commonName: String, allowedClients: Set<String>) -> AgentRole? {
    if commonName == "kube-admin" || allowedClients.contains(commonName) { return .operator }
    if commonName == "kube-etcd" { return .peer }
    return nil
  }
}

/// The agent's API, declared once: every route with its method, path and the role it needs.
/// `AgentRoutes` (server), `RemoteNode`/`AgentClient` (client) and the authorization use this
/// table; the request and response bodies below are the only declarations of them.
public enum AgentRoute: String, CaseIterable, Sendable {
  case health, metrics, schedule, runSchedule, drill, runDrill
  case preflight, listSnapshots, saveSnapshot, deleteSnapshot, copySnapshot, snapshotArchive, snapshotManifest, verifySnapshot
  case fetch, restoreArchive, stage, swap, rollback, finish, confirm
  case takeLease, releaseLease, restoreStatus
  case stopEtcd, startEtcd

  public var method: HTTPRequest.Method {
    switch self {
    case .health, .metrics, .schedule, .drill, .listSnapshots, .snapshotArchive, .snapshotManifest, .restoreArchive, .restoreStatus: .get
    case .deleteSnapshot, .releaseLease: .delete
    default: .post
    }
  }

  /// Hummingbird's path pattern (`:name` a percent-encoded snapshot name, `:id` a restore id).
  public var pattern: String {
    switch self {
    case .health: "/healthz"
    case .metrics: "/metrics"
    case .schedule: "/v1/schedule"
    case .runSchedule: "/v1/schedule/run"
    case .drill: "/v1/drill"
    case .runDrill: "/v1/drill/run"
    case .preflight: "/v1/preflight"
    case .listSnapshots, .saveSnapshot: "/v1/snapshots"
    case .deleteSnapshot: "/v1/snapshots/:name"
    case .copySnapshot: "/v1/snapshots/:name/copy"
    case .snapshotArchive: "/v1/snapshots/:name/archive"
    case .snapshotManifest: "/v1/snapshots/:name/manifest"
    case .verifySnapshot: "/v1/snapshots/:name/verify"
    case .fetch: "/v1/restore/:id/fetch"
    case .restoreArchive: "/v1/restore/:id/archive"
    case .stage: "/v1/restore/:id/stage"
    case .swap: "/v1/restore/:id/swap"
    case .rollback: "/v1/restore/:id/rollback"
    case .finish: "/v1/restore/:id/finish"
    case .confirm: "/v1/restore/:id/confirm"
    case .takeLease, .releaseLease: "/v1/lease/:id"
    case .restoreStatus: "/v1/restore-status"
    case .stopEtcd: "/v1/etcd/stop"
    case .startEtcd: "/v1/etcd/start"
    }
  }

  public var role: AgentRole {
    switch self {
    case .health, .metrics: .metrics
    case .schedule, .drill, .listSnapshots, .snapshotArchive, .snapshotManifest, .restoreArchive, .copySnapshot, .restoreStatus, .verifySnapshot: .peer
    default: .operator
    }
  }

  /// The URL of this route on the agent at `base` (`https://10.0.0.1:2382`).
  public func url(_ base: String, name: SnapshotName? = nil, id: String? = nil) -> String {
    var path = pattern
    if let name { path = path.replacingOccurrences(of: ":name", with: Self.pathComponent(name.value)) }
    if let id { path = path.replacingOccurrences(of: ":id", with: id) }
    return base + path
  }

  static func pathComponent(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? s
  }
}

/// Request bodies.
enum AgentBody {
  struct Preflight: Codable { var dbSize: UInt64; var archiveSize: UInt64 }
  struct Copy: Codable { var peer: String; var pruneAfter: Bool }
  struct Start: Codable { var quotaBackendBytes: Int64? }
  struct Empty: Codable {}
}

/// The JSON of an error answer: the client turns it back into the same `LifeboatError`, cause
/// included.
struct AgentErrorBody: Codable {
  var kind: String
  var message: String
  var node: String?
  var step: String?
  var underlying: LifeboatError.Underlying?

  init(_ error: LifeboatError) {
    kind = error.kind.rawValue
    message = error.message
    node = error.node
    step = error.step
    underlying = error.underlying
  }

  init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    kind = try container.decode(String.self, forKey: .kind)
    message = try container.decode(String.self, forKey: .message)
    node = try container.decodeIfPresent(String.self, forKey: .node)
    step = try container.decodeIfPresent(String.self, forKey: .step)
    // A newer agent's reason this client does not know is still an error with its message.
    underlying = try? container.decodeIfPresent(LifeboatError.Underlying.self, forKey: .underlying)
  }

  var error: LifeboatError? {
    guard let kind = LifeboatError.Kind(rawValue: kind) else { return nil }
    return LifeboatError(kind, message, node: node, step: step, underlying: underlying ?? .remote)
  }

  static func status(_ kind: LifeboatError.Kind) -> HTTPResponse.Status {
    switch kind {
    case .usage: .badRequest
    case .notFound: .notFound
    case .verification: .unprocessableContent
    case .unavailable: .serviceUnavailable
    case .storage: .init(code: 507, reasonPhrase: "Insufficient Storage")
    case .restoreInProgress: .conflict
    default: .internalServerError
    }
  }
}
