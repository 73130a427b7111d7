import Foundation
import HTTPTypes
import Hummingbird
import LifeboatCore
import LifeboatEngine
import NIOCore

/// A `LifeboatError` as Hummingbird's `HTTPResponseError`: the status from its kind, the body an
/// `AgentErrorBody` the client turns back into the same error.
struct AgentHTTPError: HTTPResponseError {
  let error: LifeboatError
  var statusOverride: HTTPResponse.Status?

  init(_ error: LifeboatError, status: HTTPResponse.Status? = nil) {
    self.error = error
    self.statusOverride = status
  }

  var status: HTTPResponse.Status { statusOverride ?? AgentErrorBody.status(error.kind) }

  func response(from request: Request, context: some RequestContext) throws -> Response {
    let data = (try? JSONEncoder().encode(AgentErrorBody(error))) ?? Data()
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
  }
}

/// The server side of `AgentRoute`: one handler per route of the table, each behind the role
/// the table gives it. JSON in and out; files streamed with Range support (an interrupted
/// download resumes where it stopped).
struct AgentRoutes: Sendable {
  let node: LocalNode
  let schedule: RecurringSnapshots?
  let drills: ScheduledDrills?

  func register(_ router: Router<AgentRequestContext>) {
    for route in AgentRoute.allCases {
      router.on(RouterPath(route.pattern), method: route.method) { request, context in
        guard let role = context.role, role >= route.role else {
          context.logger.warning("refused \(request.method) \(request.uri.path) from a \(context.role?.rawValue ?? "unknown") client")
          throw AgentHTTPError(
            .usage("forbidden: \(route.pattern) needs the \(route.role.rawValue) role; peers (kube-etcd) may only read snapshots"),
            status: .forbidden)
        }
        do {
          return try await handle(route, request, context)
        } catch let error as LifeboatError {
          throw AgentHTTPError(error)
        }
      }
    }
  }

  private func handle(_ route: AgentRoute, _ request: Request, _ context: AgentRequestContext) async throws -> Response {
    switch route {
    case .health:
      var health = try await node.health()
      health.schedule = await schedule?.current
      health.drill = await drills?.current
      return try json(health)
    case .metrics:
      return Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
        body: .init(byteBuffer: ByteBuffer(bytes: AgentMetrics.registry.emitToBuffer())))
    case .schedule:
      guard let schedule else { throw LifeboatError.notFound("this agent runs no schedule") }
      return try json(await schedule.current)
    case .runSchedule:
      guard let schedule else { throw LifeboatError.notFound("this agent runs no schedule") }
      return try json(try await schedule.runNow())
    case .drill:
      guard let drills else { throw LifeboatError.notFound("this agent runs no drills") }
      return try json(await drills.current)
    case .runDrill:
      guard let drills else { throw LifeboatError.notFound("this agent runs no drills") }
      return try json(try await drills.runNow())
    case .preflight:
      let body = try await decode(AgentBody.Preflight.self, request, context)
      return try json(try await node.preflight(dbSize: body.dbSize, archiveSize: body.archiveSize))
    case .listSnapshots:
      return try json(try await node.listSnapshots())
    case .saveSnapshot:
      return try json(try await node.saveSnapshot(try await decode(NodeSaveRequest.self, request, context)))
    case .deleteSnapshot:
      try await node.deleteSnapshot(try name(context))
      return try json(AgentBody.Empty())
    case .copySnapshot:
      let body = try await decode(AgentBody.Copy.self, request, context)
      return try json(try await node.receiveSnapshot(try name(context), from: body.peer, pruneAfter: body.pruneAfter))
    case .verifySnapshot:
      return try json(try await node.verifySnapshot(try name(context)))
    case .snapshotArchive:
      return try await serveFile(try await node.snapshotFiles(try name(context)).archive, request, context)
    case .snapshotManifest:
      guard let manifest = try await node.snapshotFiles(try name(context)).manifest else {
        throw LifeboatError.notFound("no manifest")
      }
      return try await serveFile(manifest, request, context)
    case .fetch:
      let body = try await decode(FetchRequest.self, request, context)
      guard body.id == (try id(context)) else { throw LifeboatError.usage("the restore id in the body differs from the URL's") }
      return try json(try await node.fetch(body))
    case .restoreArchive:
      return try await serveFile(try node.restoreArchivePath(try id(context)), request, context)
    case .stage:
      let body = try await decode(StageRequest.self, request, context)
      guard body.id == (try id(context)) else { throw LifeboatError.usage("the restore id in the body differs from the URL's") }
      try await node.stage(body)
      return try json(AgentBody.Empty())
    case .swap:
      return try json(try await node.swap(try id(context)))
    case .rollback:
      return try json(try await node.rollback(try id(context)))
    case .finish:
      try await node.finish(try id(context))
      return try json(AgentBody.Empty())
    case .confirm:
      try await node.confirmRestored(try id(context))
      return try json(AgentBody.Empty())
    case .takeLease:
      let lease = try await decode(RestoreLease.self, request, context)
      guard lease.id == (try id(context)) else { throw LifeboatError.usage("the restore id in the body differs from the URL's") }
      try await node.takeLease(lease)
      return try json(AgentBody.Empty())
    case .releaseLease:
      try await node.releaseLease(try id(context))
      return try json(AgentBody.Empty())
    case .restoreStatus:
      return try json(try await node.restoreStatus())
    case .stopEtcd:
      try await node.stopEtcd()
      return try json(AgentBody.Empty())
    case .startEtcd:
      let body = try await decode(AgentBody.Start.self, request, context)
      try await node.startEtcd(quotaBackendBytes: body.quotaBackendBytes)
      return try json(AgentBody.Empty())
    }
  }

  // MARK: - Helpers

  private func name(_ context: AgentRequestContext) throws(LifeboatError) -> SnapshotName {
    // Path parameters arrive percent-encoded (RKE names hold `:` and `+`); decode once, then
    // check the name like any other (no `/`, no `..`).
    let raw = context.parameters.get("name") ?? ""
    guard let decoded = raw.removingPercentEncoding else { throw .usage("invalid snapshot name \(raw)") }
    return try SnapshotName(decoded)
  }

  private func id(_ context: AgentRequestContext) throws(LifeboatError) -> String {
    let id = context.parameters.get("id") ?? ""
    try RestoreID.validate(id)
    return id
  }

  private func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: AgentRequestContext) async throws(LifeboatError) -> T {
    do {
      let buffer = try await request.body.collect(upTo: context.maxUploadSize)
      return try AgentClient.decoder.decode(type, from: Data(buffer.readableBytesView))
    } catch {
      throw .usage("bad request body: \(error)")
    }
  }

  private func json<T: Encodable>(_ value: T) throws -> Response {
    let data = try AgentClient.encoder.encode(value)
    return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
  }

  /// Streams a file with Hummingbird's file I/O; honours `Range: bytes=a-`, `bytes=a-b` and the
  /// suffix `bytes=-n` with 206 and Content-Range (several ranges: a 200 with everything).
  private func serveFile(_ path: String, _ request: Request, _ context: AgentRequestContext) async throws -> Response {
    guard let size = regularFileInfo(path)?.size else { throw LifeboatError.notFound("\(path) is gone") }
    var range: ClosedRange<UInt64>? = size == 0 ? nil : 0...(size - 1)
    var partial = false
    if let header = request.headers[.range], header.hasPrefix("bytes="), !header.contains(",") {
      guard let asked = ByteRange.parse(String(header.dropFirst(6)), size: size) else {
        return Response(status: .rangeNotSatisfiable, headers: [.contentRange: "bytes */\(size)"])
      }
      range = asked
      partial = true
    }
    var headers: HTTPFields = [
      .contentType: path.hasSuffix(".zip") ? "application/zip" : "application/octet-stream",
      .acceptRanges: "bytes",
    ]
    headers[HTTPField.Name("X-Lifeboat-File")!] = (path as NSString).lastPathComponent
    guard let range else { return Response(status: .ok, headers: headers, body: .init()) }
    if partial { headers[.contentRange] = "bytes \(range.lowerBound)-\(range.upperBound)/\(size)" }
    headers[.contentLength] = String(range.upperBound - range.lowerBound + 1)
    let body = try await FileIO().loadFile(
      path: path, range: Int(range.lowerBound)...Int(range.upperBound), context: context, chunkLength: 1 << 20)
    return Response(status: partial ? .partialContent : .ok, headers: headers, body: body)
  }
}
