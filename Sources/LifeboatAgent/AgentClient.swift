import AsyncHTTPClient
import Foundation
import LifeboatCore
import LifeboatEngine
import NIOCore
import NIOPosix
import NIOHTTP1
import NIOSSL

/// HTTPS client of the agents, with a client certificate from the state file (`kube-admin` for
/// the operator, the node's `kube-etcd-<ip>` between agents). Server certificates are verified
/// against `kube-ca`, host names included (RKE's peer download skips this; Lifeboat does not).
public final class AgentClient: PeerClient, Sendable {
  let http: HTTPClient

  public init(tls: TLSConfiguration) {
    var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
    configuration.timeout = .init(connect: .seconds(5))
    configuration.connectionPool.retryConnectionEstablishment = false
    self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
  }

  public convenience init(state: RKEState, certificate: String) throws(LifeboatError) {
    self.init(tls: try AgentTLS.client(state: state, certificate: certificate))
  }

  public func shutdown() async { try? await http.shutdown() }

  /// Runs `body` with a client, shut down afterwards.
  public static func with<R>(
    state: RKEState, certificate: String, _ body: (AgentClient) async throws(LifeboatError) -> R
  ) async throws(LifeboatError) -> R {
    let client = try AgentClient(state: state, certificate: certificate)
    do {
      let result = try await body(client)
      await client.shutdown()
      return result
    } catch {
      await client.shutdown()
      throw error
    }
  }

  // MARK: - JSON calls

  static let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.dateEncodingStrategy = .iso8601
    return e
  }()
  static let decoder: JSONDecoder = {
    let d = JSONDecoder()
    d.dateDecodingStrategy = .iso8601
    return d
  }()

  /// Calls `route` on the agent at `base` and decodes its JSON answer.
  func call<Response: Decodable>(
    _ route: AgentRoute, _ base: String, name: SnapshotName? = nil, id: String? = nil,
    body: (some Encodable)? = AgentBody.Empty?.none, timeout: Duration = .seconds(30)
  ) async throws(LifeboatError) -> Response {
    let url = route.url(base, name: name, id: id)
    let (status, bytes) = try await raw(HTTPMethod(rawValue: route.method.rawValue), url, body: body, timeout: timeout)
    guard (200..<300).contains(status) else { throw Self.error(status, bytes, url) }
    do { return try Self.decoder.decode(Response.self, from: Data(bytes)) } catch {
      throw .failure("\(url): unexpected answer: \(error)")
    }
  }

  func raw(
    _ method: HTTPMethod, _ url: String, body: (some Encodable)? = AgentBody.Empty?.none, timeout: Duration,
    headers: [(String, String)] = []
  ) async throws(LifeboatError) -> (Int, [UInt8]) {
    var request = HTTPClientRequest(url: url)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body {
      do { request.body = .bytes(try Self.encoder.encode(body)) } catch { throw .failure("cannot encode a request: \(error)") }
      request.headers.add(name: "Content-Type", value: "application/json")
    }
    do {
      let response = try await http.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000))
      let buffer = try await response.body.collect(upTo: 64 << 20)
      return (Int(response.status.code), Array(buffer.readableBytesView))
    } catch {
      throw Self.transportError(error, url)
    }
  }

  static func error(_ status: Int, _ bytes: [UInt8], _ url: String) -> LifeboatError {
    if let body = try? JSONDecoder().decode(AgentErrorBody.self, from: Data(bytes)), let error = body.error {
      return error
    }
    return LifeboatError(.failure, "\(url) answered HTTP \(status)", underlying: .remote)
  }

  static func transportError(_ error: any Error, _ url: String) -> LifeboatError {
    let host = URL(string: url).map { "\($0.host ?? ""):\($0.port ?? 0)" } ?? url
    if let ssl = error as? NIOSSLError { return LifeboatError(.unavailable, "agent \(host): TLS failed: \(ssl)", underlying: .tls) }
    if let ssl = error as? BoringSSLError { return LifeboatError(.unavailable, "agent \(host): TLS refused: \(ssl)", underlying: .tls) }
    if let http = error as? HTTPClientError, http == .deadlineExceeded || http == .connectTimeout {
      return LifeboatError(.unavailable, "agent \(host): timed out", underlying: .unreachable)
    }
    if let connect = error as? NIOConnectionError, connect.connectionErrors.contains(where: { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }) {
      return LifeboatError(.unavailable, "agent \(host) is not reachable (connection refused)", underlying: .unreachable)
    }
    if let io = error as? IOError, io.errnoCode == ECONNREFUSED {
      return LifeboatError(.unavailable, "agent \(host) is not reachable (connection refused)", underlying: .unreachable)
    }
    let text = String(describing: error)
    return LifeboatError(.unavailable, "agent \(host): \(text.split(whereSeparator: \.isNewline).first ?? "")", underlying: .unreachable)
  }

  /// The schedule of the agent at `url` (`lifeboat status`).
  public func scheduleState(at url: String) async throws(LifeboatError) -> ScheduleState {
    try await call(.schedule, url, timeout: .seconds(10))
  }

  /// Starts a recurring run on the agent at `url` now, and returns its schedule after it.
  public func runSchedule(at url: String) async throws(LifeboatError) -> ScheduleState {
    try await call(.runSchedule, url, timeout: .seconds(6 * 3600))
  }

  /// The agent's scheduled drills: the last attempt, the cluster's last drill, the next run.
  public func drillState(at url: String) async throws(LifeboatError) -> DrillState {
    try await call(.drill, url, timeout: .seconds(10))
  }

  /// Runs a drill on the agent at `url` now (under the cluster's lock), and returns its state after it.
  public func runDrill(at url: String) async throws(LifeboatError) -> DrillState {
    try await call(.runDrill, url, timeout: .seconds(6 * 3600))
  }

  // MARK: - PeerClient

  public func restoreArchive(at peer: String, id: String) async throws(LifeboatError) -> any ByteSource {
    try await AgentFileSource.open(client: self, url: AgentRoute.restoreArchive.url(peer, id: id))
  }

  public func snapshot(at peer: String, name: SnapshotName) async throws(LifeboatError) -> (archive: any ByteSource, manifest: [UInt8]?) {
    let archive = try await AgentFileSource.open(client: self, url: AgentRoute.snapshotArchive.url(peer, name: name))
    let (status, bytes) = try await raw(.GET, AgentRoute.snapshotManifest.url(peer, name: name), timeout: .seconds(30))
    if status == 404 { return (archive, nil) }
    guard status == 200 else { throw Self.error(status, bytes, peer) }
    return (archive, bytes)
  }

}

/// A file served by an agent, read with Range requests; a download cut off midway resumes
/// from the last byte received (up to 5 attempts without progress).
struct AgentFileSource: ByteSource {
  let client: AgentClient
  let url: String
  let name: String
  let size: UInt64

  static func open(client: AgentClient, url: String) async throws(LifeboatError) -> AgentFileSource {
    var request = HTTPClientRequest(url: url)
    request.headers.add(name: "Range", value: "bytes=0-0")
    do {
      let response = try await client.http.execute(request, timeout: .seconds(30))
      let body = try await response.body.collect(upTo: 1 << 20)
      if response.status.code == 416 {
        // An empty file.
        return AgentFileSource(client: client, url: url, name: response.headers.first(name: "X-Lifeboat-File") ?? url, size: 0)
      }
      guard response.status.code == 206, let range = response.headers.first(name: "Content-Range"),
        let total = range.split(separator: "/").last.flatMap({ UInt64($0) })
      else {
        throw AgentClient.error(Int(response.status.code), Array(body.readableBytesView), url)
      }
      return AgentFileSource(client: client, url: url, name: response.headers.first(name: "X-Lifeboat-File") ?? url, size: total)
    } catch let error as LifeboatError {
      throw error
    } catch {
      throw AgentClient.transportError(error, url)
    }
  }

  func read(at offset: UInt64, count: Int) async throws(LifeboatError) -> [UInt8] {
    var out: [UInt8] = []
    try await stream(from: offset, length: UInt64(count), chunkSize: count) { out += $0 }
    return out
  }

  func stream(
    from offset: UInt64, length: UInt64, chunkSize: Int, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws(LifeboatError) {
    guard length > 0 else { return }
    var position = offset
    let end = offset + length
    var attemptsWithoutProgress = 0
    var pending: [UInt8] = []
    while position < end {
      let before = position
      var request = HTTPClientRequest(url: url)
      request.headers.add(name: "Range", value: "bytes=\(position)-\(end - 1)")
      var failure: LifeboatError?
      do {
        let response = try await client.http.execute(request, timeout: .hours(6))
        guard response.status.code == 206 else {
          let bytes = try await response.body.collect(upTo: 1 << 20)
          throw AgentClient.error(Int(response.status.code), Array(bytes.readableBytesView), url)
        }
        // The part must start where we asked, of a file of the same size: never splice two files.
        let expected = "bytes \(position)-\(end - 1)/\(size)"
        guard response.headers.first(name: "Content-Range") == expected else {
          throw LifeboatError.verification(
            "\(url): the file changed during the download (Content-Range \(response.headers.first(name: "Content-Range") ?? "none"), expected \(expected))")
        }
        for try await buffer in response.body {
          pending += buffer.readableBytesView
          position += UInt64(buffer.readableBytes)
          while pending.count >= chunkSize {
            try await body(Array(pending.prefix(chunkSize)))
            pending.removeFirst(chunkSize)
          }
        }
      } catch let error as LifeboatError {
        if error.kind != .unavailable { throw error }
        failure = error
      } catch {
        failure = AgentClient.transportError(error, url)
      }
      if position >= end { break }
      attemptsWithoutProgress = position > before ? 0 : attemptsWithoutProgress + 1
      if attemptsWithoutProgress >= 5 {
        throw failure ?? .unavailable("\(url): the download stopped at byte \(position) of \(end)")
      }
      try? await Task.sleep(for: .milliseconds(200 * (1 << attemptsWithoutProgress)))
    }
    if !pending.isEmpty { try await body(pending) }
  }
}
