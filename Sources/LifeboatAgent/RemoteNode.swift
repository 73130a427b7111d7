import Foundation
import LifeboatCore
import LifeboatEngine
import NIOHTTP1

/// A node reached through its agent: every `Node` operation is one HTTPS call of the
/// `AgentRoute` table.
public struct RemoteNode: Node {
  public let address: String
  public let url: String
  let client: AgentClient

  public init(node: EtcdNode, client: AgentClient) {
    self.address = node.address
    self.url = node.agentURL
    self.client = client
  }

  /// Long steps (downloads, restores of large databases) may take this long.
  static let long: Duration = .seconds(6 * 3600)

  func call<R: Decodable>(
    _ route: AgentRoute, name: SnapshotName? = nil, id: String? = nil, body: (some Encodable)? = AgentBody.Empty?.none,
    timeout: Duration = .seconds(30)
  ) async throws(LifeboatError) -> R {
    if let id { try RestoreID.validate(id) }
    do {
      return try await client.call(route, url, name: name, id: id, body: body, timeout: timeout)
    } catch {
      throw error.on(address)
    }
  }

  public func health() async throws(LifeboatError) -> NodeHealth {
    try await call(.health, timeout: .seconds(10))
  }

  public func preflight(dbSize: UInt64, archiveSize: UInt64) async throws(LifeboatError) -> NodePreflight {
    try await call(.preflight, body: AgentBody.Preflight(dbSize: dbSize, archiveSize: archiveSize))
  }

  public func listSnapshots() async throws(LifeboatError) -> [NodeSnapshot] {
    try await call(.listSnapshots)
  }

  public func openSnapshot(_ name: SnapshotName) async throws(LifeboatError) -> (archive: any ByteSource, manifest: [UInt8]?) {
    do { return try await client.snapshot(at: url, name: name) } catch { throw error.on(address) }
  }

  public func deleteSnapshot(_ name: SnapshotName) async throws(LifeboatError) {
    let _: AgentBody.Empty = try await call(.deleteSnapshot, name: name)
  }

  public func verifySnapshot(_ name: SnapshotName) async throws(LifeboatError) -> VerifyReport {
    try await call(.verifySnapshot, name: name, timeout: Self.long)
  }

  public func saveSnapshot(_ request: NodeSaveRequest) async throws(LifeboatError) -> NodeSaveReport {
    try await call(.saveSnapshot, body: request, timeout: Self.long)
  }

  public func receiveSnapshot(_ name: SnapshotName, from peer: String, pruneAfter: Bool) async throws(LifeboatError) -> NodeSnapshot {
    try await call(.copySnapshot, name: name, body: AgentBody.Copy(peer: peer, pruneAfter: pruneAfter), timeout: Self.long)
  }

  public func fetch(_ request: FetchRequest) async throws(LifeboatError) -> FetchReport {
    try await call(.fetch, id: request.id, body: request, timeout: Self.long)
  }

  public func stage(_ request: StageRequest) async throws(LifeboatError) {
    let _: AgentBody.Empty = try await call(.stage, id: request.id, body: request, timeout: Self.long)
  }

  public func stopEtcd() async throws(LifeboatError) {
    let _: AgentBody.Empty = try await call(.stopEtcd, timeout: .seconds(120))
  }

  public func swap(_ id: String) async throws(LifeboatError) -> SwapReport {
    try await call(.swap, id: id, timeout: .seconds(120))
  }

  public func startEtcd(quotaBackendBytes: Int64?) async throws(LifeboatError) {
    let _: AgentBody.Empty = try await call(.startEtcd, body: AgentBody.Start(quotaBackendBytes: quotaBackendBytes), timeout: .seconds(120))
  }

  public func rollback(_ id: String) async throws(LifeboatError) -> RollbackReport {
    try await call(.rollback, id: id, timeout: .seconds(300))
  }

  public func finish(_ id: String) async throws(LifeboatError) {
    let _: AgentBody.Empty = try await call(.finish, id: id, timeout: .seconds(300))
  }

  public func confirmRestored(_ id: String) async throws(LifeboatError) {
    let _: AgentBody.Empty = try await call(.confirm, id: id, timeout: .seconds(60))
  }

  public func takeLease(_ lease: RestoreLease) async throws(LifeboatError) {
    let _: AgentBody.Empty = try await call(.takeLease, id: lease.id, body: lease)
  }

  public func releaseLease(_ id: String) async throws(LifeboatError) {
    let _: AgentBody.Empty = try await call(.releaseLease, id: id)
  }

  public func restoreStatus() async throws(LifeboatError) -> NodeRestoreStatus {
    try await call(.restoreStatus)
  }
}
