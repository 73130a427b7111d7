import Foundation
import LifeboatCore
import LifeboatEngine
import NIOHTTP1

/// A node reached through its agent: every `Node` operation is one HTTPS call.
public struct RemoteNode: Node {
  public let address: String
  public let url: String
  let client: AgentClient

  public init(node: EtcdNode, client: AgentClient) {
    self.address = node.address
    self.url = node.agentURL
    self.client = client
  }

  struct PreflightBody: Codable { var dbSize: UInt64; var archiveSize: UInt64 }
  struct CopyBody: Codable { var peer: String; var applyRetention: Bool }
  struct StartBody: Codable { var quotaBackendBytes: Int64? }
  struct Empty: Codable {}

  /// Long steps (downloads, restores of large databases) may take this long.
  static let long: Duration = .seconds(6 * 3600)

  public func health() async throws(LifeboatError) -> NodeHealth {
    try await client.call(.GET, "\(url)/healthz", timeout: .seconds(10))
  }

  public func preflight(dbSize: UInt64, archiveSize: UInt64) async throws(LifeboatError) -> NodePreflight {
    try await client.call(.POST, "\(url)/v1/preflight", body: PreflightBody(dbSize: dbSize, archiveSize: archiveSize))
  }

  public func listSnapshots() async throws(LifeboatError) -> [NodeSnapshot] {
    try await client.call(.GET, "\(url)/v1/snapshots")
  }

  public func deleteSnapshot(_ name: SnapshotName) async throws(LifeboatError) {
    let _: Empty = try await client.call(.DELETE, "\(url)/v1/snapshots/\(AgentClient.pathComponent(name.value))")
  }

  public func saveSnapshot(_ request: NodeSaveRequest) async throws(LifeboatError) -> NodeSaveReport {
    try await client.call(.POST, "\(url)/v1/snapshots", body: request, timeout: Self.long)
  }

  public func copySnapshot(_ name: SnapshotName, from peer: String, applyRetention: Bool) async throws(LifeboatError) -> NodeSnapshot {
    try await client.call(
      .POST, "\(url)/v1/snapshots/\(AgentClient.pathComponent(name.value))/copy", body: CopyBody(peer: peer, applyRetention: applyRetention), timeout: Self.long)
  }

  public func fetch(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport {
    try LocalNode.validate(id: request.id)
    return try await client.call(.POST, "\(url)/v1/restore/\(request.id)/fetch", body: request, timeout: Self.long)
  }

  public func fetchedStateFile(_ id: String) async throws(LifeboatError) -> [UInt8]? {
    try LocalNode.validate(id: id)
    let (status, bytes) = try await client.raw(.GET, "\(url)/v1/restore/\(id)/state-file", timeout: .seconds(60))
    if status == 204 { return nil }
    guard status == 200 else { throw AgentClient.error(status, bytes, url) }
    return bytes
  }

  public func stage(_ request: StageRequest) async throws(LifeboatError) {
    try LocalNode.validate(id: request.id)
    let _: Empty = try await client.call(.POST, "\(url)/v1/restore/\(request.id)/stage", body: request, timeout: Self.long)
  }

  public func stopEtcd() async throws(LifeboatError) {
    let _: Empty = try await client.call(.POST, "\(url)/v1/etcd/stop", timeout: .seconds(120))
  }

  public func swap(_ id: String) async throws(LifeboatError) -> SwapReport {
    try LocalNode.validate(id: id)
    return try await client.call(.POST, "\(url)/v1/restore/\(id)/swap", timeout: .seconds(120))
  }

  public func startEtcd(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    let _: Empty = try await client.call(
      .POST, "\(url)/v1/etcd/start", body: StartBody(quotaBackendBytes: quotaBackendBytes), timeout: .seconds(120))
  }

  public func rollback(_ id: String) async throws(LifeboatError) -> RollbackReport {
    try LocalNode.validate(id: id)
    return try await client.call(.POST, "\(url)/v1/restore/\(id)/rollback", timeout: .seconds(300))
  }

  public func finish(_ id: String) async throws(LifeboatError) {
    try LocalNode.validate(id: id)
    let _: Empty = try await client.call(.POST, "\(url)/v1/restore/\(id)/finish", timeout: .seconds(300))
  }
}
