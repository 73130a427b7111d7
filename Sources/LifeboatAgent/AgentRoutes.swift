import Foundation
import HTTPTypes
import Hummingbird
import LifeboatCore
import LifeboatEngine
import NIOCore

/// The agent's API: one route per `Node` operation, JSON in and out, archives streamed with
/// Range support (an interrupted download resumes where it stopped).
struct AgentRoutes: Sendable {
  let node: LocalNode
  let schedule: RecurringSnapshots?

  struct PreflightBody: Codable { var dbSize: UInt64; var archiveSize: UInt64 }
  struct CopyBody: Codable { var peer: String; var applyRetention: Bool? }
  struct StartBody: Codable { var quotaBackendBytes: Int64? }
  struct Empty: Codable {}

  func register(_ router: Router<AgentRequestContext>) {
    router.get("/healthz") { _, _ in
      try await json { () async throws(LifeboatError) in
        var health = try await node.health()
        health.schedule = await schedule?.current
        return health
      }
    }
    router.get("/metrics") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
        body: .init(byteBuffer: ByteBuffer(bytes: AgentMetrics.registry.emitToBuffer())))
    }
    router.get("/v1/schedule") { _, _ in
      try await json { () async throws(LifeboatError) in
        guard let schedule else { throw LifeboatError.notFound("this agent runs no schedule") }
        return await schedule.current
      }
    }
    router.post("/v1/schedule/run") { _, _ in
      try await json { () async throws(LifeboatError) in
        guard let schedule else { throw LifeboatError.notFound("this agent runs no schedule") }
        return await schedule.runNow()
      }
    }
    router.post("/v1/preflight") { request, context in
      try await json { () async throws(LifeboatError) in
        let body = try await decode(PreflightBody.self, request, context)
        return try await node.preflight(dbSize: body.dbSize, archiveSize: body.archiveSize)
      }
    }
    router.get("/v1/snapshots") { _, _ in try await json { () async throws(LifeboatError) in try await node.listSnapshots() } }
    router.post("/v1/snapshots") { request, context in
      try await json { () async throws(LifeboatError) in
        try await node.saveSnapshot(try await decode(NodeSaveRequest.self, request, context))
      }
    }
    router.delete("/v1/snapshots/:name") { _, context in
      try await json { () async throws(LifeboatError) in
        try await node.deleteSnapshot(try name(context))
        return Empty()
      }
    }
    router.post("/v1/snapshots/:name/copy") { request, context in
      try await json { () async throws(LifeboatError) in
        let body = try await decode(CopyBody.self, request, context)
        return try await node.copySnapshot(try name(context), from: body.peer, applyRetention: body.applyRetention ?? false)
      }
    }
    router.get("/v1/snapshots/:name/archive") { request, context in
      do throws(LifeboatError) {
        let files = try await node.snapshotFiles(try name(context))
        return try serveFile(files.archive, request)
      } catch { return AgentErrorBody.response(error) }
    }
    router.get("/v1/snapshots/:name/manifest") { request, context in
      do throws(LifeboatError) {
        guard let manifest = try await node.snapshotFiles(try name(context)).manifest else {
          throw LifeboatError.notFound("no manifest")
        }
        return try serveFile(manifest, request)
      } catch { return AgentErrorBody.response(error) }
    }
    router.post("/v1/restore/:id/fetch") { request, context in
      try await json { () async throws(LifeboatError) in
        let body = try await decode(FetchRequest.self, request, context)
        guard body.id == (try id(context)) else { throw LifeboatError.usage("the restore id in the body differs from the URL's") }
        return try await node.fetch(body)
      }
    }
    router.get("/v1/restore/:id/archive") { request, context in
      do throws(LifeboatError) { return try serveFile(try node.restoreArchivePath(try id(context)), request) } catch {
        return AgentErrorBody.response(error)
      }
    }
    router.get("/v1/restore/:id/state-file") { _, context in
      do throws(LifeboatError) {
        guard let bytes = try await node.fetchedStateFile(try id(context)) else { return Response(status: .noContent) }
        return Response(
          status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
      } catch { return AgentErrorBody.response(error) }
    }
    router.post("/v1/restore/:id/stage") { request, context in
      try await json { () async throws(LifeboatError) in
        let body = try await decode(StageRequest.self, request, context)
        guard body.id == (try id(context)) else { throw LifeboatError.usage("the restore id in the body differs from the URL's") }
        try await node.stage(body)
        return Empty()
      }
    }
    router.post("/v1/restore/:id/swap") { _, context in
      try await json { () async throws(LifeboatError) in try await node.swap(try id(context)) }
    }
    router.post("/v1/restore/:id/rollback") { _, context in
      try await json { () async throws(LifeboatError) in try await node.rollback(try id(context)) }
    }
    router.post("/v1/restore/:id/finish") { _, context in
      try await json { () async throws(LifeboatError) in
        try await node.finish(try id(context))
        return Empty()
      }
    }
    router.post("/v1/etcd/stop") { _, _ in
      try await json { () async throws(LifeboatError) in
        try await node.stopEtcd()
        return Empty()
      }
    }
    router.post("/v1/etcd/start") { request, context in
      try await json { () async throws(LifeboatError) in
        let body = try await decode(StartBody.self, request, context)
        try await node.startEtcd(quotaBackendBytes: body.quotaBackendBytes)
        return Empty()
      }
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
    try LocalNode.validate(id: id)
    return id
  }

  private func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: AgentRequestContext) async throws(LifeboatError) -> T {
    do { return try await request.decode(as: type, context: context) } catch {
      throw .usage("bad request body: \(error)")
    }
  }

  private func json<T: Encodable>(_ body: () async throws(LifeboatError) -> T) async throws -> Response {
    do {
      let value = try await body()
      let encoder = JSONEncoder()
      encoder.dateEncodingStrategy = .iso8601
      let data = try encoder.encode(value)
      return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    } catch let error as LifeboatError {
      return AgentErrorBody.response(error)
    }
  }

  /// Streams a file; honours `Range: bytes=a-` and `bytes=a-b` with 206 and Content-Range.
  private func serveFile(_ path: String, _ request: Request) throws(LifeboatError) -> Response {
    let file = try ReadOnlyFile(path: path)
    var start: UInt64 = 0
    var end: UInt64 = file.size == 0 ? 0 : file.size - 1
    var partial = false
    // One range (`a-`, `a-b` or the suffix `-n`); several ranges are ignored (a 200 with all).
    if let range = request.headers[.range], range.hasPrefix("bytes="), !range.contains(",") {
      let unsatisfiable = Response(status: .rangeNotSatisfiable, headers: [.contentRange: "bytes */\(file.size)"])
      let parts = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
      guard parts.count == 2, file.size > 0 else { return unsatisfiable }
      if parts[0].isEmpty {
        guard let suffix = UInt64(parts[1]), suffix > 0 else { return unsatisfiable }
        start = file.size - min(suffix, file.size)
      } else {
        guard let first = UInt64(parts[0]), first < file.size else { return unsatisfiable }
        start = first
        if !parts[1].isEmpty {
          guard let last = UInt64(parts[1]), last >= first else { return unsatisfiable }
          end = min(last, file.size - 1)
        }
      }
      partial = true
    }
    let length = file.size == 0 ? 0 : end - start + 1
    var headers: HTTPFields = [
      .contentType: path.hasSuffix(".zip") ? "application/zip" : "application/octet-stream",
      .acceptRanges: "bytes",
    ]
    headers[HTTPField.Name("X-Lifeboat-File")!] = (path as NSString).lastPathComponent
    if partial { headers[.contentRange] = "bytes \(start)-\(end)/\(file.size)" }
    let from = start
    let body = ResponseBody(contentLength: Int(length)) { writer in
      var position = from
      let stop = from + length
      while position < stop {
        let count = Int(min(UInt64(1 << 20), stop - position))
        let bytes = try file.read(at: position, count: count)
        try await writer.write(ByteBuffer(bytes: bytes))
        position += UInt64(count)
      }
      try await writer.finish(nil)
    }
    return Response(status: partial ? .partialContent : .ok, headers: headers, body: body)
  }
}
