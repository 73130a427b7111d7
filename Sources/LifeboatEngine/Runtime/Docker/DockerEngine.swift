import AsyncHTTPClient
import Foundation
import LifeboatCore
import NIOCore
import NIOHTTP1

/// The Docker Engine API of one node's engine, over its unix socket (`unix:///var/run/docker.sock`,
/// or a node's `docker_host`), through AsyncHTTPClient: only the calls the docker runtime and
/// `lifeboat local up --runtime docker` make. API version 1.41 (Docker 20.10), which every engine
/// from 20.10 to today's still serves. No `docker` CLI is needed on the node.
///
/// Errors are one line naming the engine and the call; the engine's own message (`{"message":
/// ...}`) is kept, its request bodies (which may carry environment variables) never are.
public struct DockerEngine: Sendable {
  /// `unix:///path/to/docker.sock` (what `DOCKER_HOST` holds).
  public let host: String
  let socketPath: String
  static let apiVersion = "v1.41"

  /// One client for every engine of the process (it lives as long as the process). A refused
  /// connection fails at once: AsyncHTTPClient's default retries it until the connect timeout,
  /// which turns every poll of an engine that is still starting into a ten-second wait.
  static let client: HTTPClient = {
    var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5)))
    configuration.connectionPool.retryConnectionEstablishment = false
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
  }()

  public init(host: String) throws(LifeboatError) {
    guard host.hasPrefix("unix://"), host.count > "unix://".count else {
      throw .usage("docker_host \(host) is not a unix socket (unix:///var/run/docker.sock)")
    }
    let path = String(host.dropFirst("unix://".count))
    guard path.hasPrefix("/") else { throw .usage("docker_host \(host) needs an absolute socket path") }
    // sockaddr_un holds 108 bytes, the terminating NUL included.
    guard path.utf8.count < 108 else { throw .usage("docker_host \(host): a socket path must be shorter than 108 bytes") }
    self.host = host
    self.socketPath = path
  }

  /// The engine's version (`20.10.24`), which also proves it answers.
  public func version() async throws(LifeboatError) -> String {
    struct Version: Decodable { var Version: String }
    let response = try await send(.GET, "/version", timeout: .seconds(10))
    return try decode(Version.self, response, "version").Version
  }

  /// `GET /containers/{name}/json`; nil when no such container exists.
  public func inspectContainer(_ name: String, timeout: Duration = .seconds(30)) async throws(LifeboatError) -> DockerContainer? {
    let response = try await send(.GET, "/containers/\(Self.escape(name))/json", timeout: timeout)
    if response.status == 404 { return nil }
    try expect(response, [200], "inspect container \(name)")
    return try decode(DockerContainer.self, response, "inspect container \(name)")
  }

  /// Every container, running or not: id and names (`/etcd`).
  public func listContainers() async throws(LifeboatError) -> [(id: String, names: [String])] {
    struct Listed: Decodable { var Id: String; var Names: [String]? }
    let response = try await send(.GET, "/containers/json?all=1", timeout: .seconds(30))
    try expect(response, [200], "list containers")
    return try decode([Listed].self, response, "list containers").map { ($0.Id, $0.Names ?? []) }
  }

  /// `POST /containers/{name}/stop`: SIGTERM, then SIGKILL after `grace` seconds. A container
  /// stopped this way is not restarted by its restart policy until it is started again.
  public func stopContainer(_ name: String, grace: Int = 30) async throws(LifeboatError) {
    let response = try await send(.POST, "/containers/\(Self.escape(name))/stop?t=\(grace)", timeout: .seconds(Int64(grace) + 30))
    try expect(response, [204, 304], "stop container \(name)")
  }

  /// `POST /containers/{name}/start` (the same container: same id, arguments and restart policy).
  public func startContainer(_ name: String) async throws(LifeboatError) {
    let response = try await send(.POST, "/containers/\(Self.escape(name))/start", timeout: .seconds(60))
    try expect(response, [204, 304], "start container \(name)")
  }

  /// `POST /containers/{name}/kill` with `signal`.
  public func killContainer(_ name: String, signal: String = "KILL") async throws(LifeboatError) {
    let response = try await send(.POST, "/containers/\(Self.escape(name))/kill?signal=\(signal)", timeout: .seconds(30))
    try expect(response, [204, 409], "kill container \(name)")
  }

  /// `POST /containers/create`; returns the new container's id.
  public func createContainer(name: String, _ spec: DockerContainerSpec) async throws(LifeboatError) -> String {
    struct Created: Decodable { var Id: String }
    let body: [UInt8]
    do { body = Array(try JSONEncoder().encode(spec)) } catch { throw .failure("cannot encode a container spec: \(error)") }
    let response = try await send(.POST, "/containers/create?name=\(Self.escape(name))", body: body, timeout: .seconds(60))
    try expect(response, [201], "create container \(name)")
    return try decode(Created.self, response, "create container \(name)").Id
  }

  /// `POST /containers/{id}/wait`: the container's exit code once it stops.
  public func waitContainer(_ id: String, timeout: Duration) async throws(LifeboatError) -> Int {
    struct Waited: Decodable { var StatusCode: Int }
    let response = try await send(.POST, "/containers/\(Self.escape(id))/wait", timeout: timeout)
    try expect(response, [200], "wait for container \(id.prefix(12))")
    return try decode(Waited.self, response, "wait for container \(id.prefix(12))").StatusCode
  }

  /// The last lines a container wrote (stdout and stderr, demultiplexed).
  public func logs(_ id: String, tail: Int = 20) async throws(LifeboatError) -> String {
    let response = try await send(.GET, "/containers/\(Self.escape(id))/logs?stdout=1&stderr=1&tail=\(tail)", timeout: .seconds(30))
    try expect(response, [200], "read the logs of container \(id.prefix(12))")
    return String(decoding: Self.demultiplex(response.body), as: UTF8.self)
  }

  /// `DELETE /containers/{id}?force=1`; a container already gone is not an error.
  public func removeContainer(_ id: String) async throws(LifeboatError) {
    let response = try await send(.DELETE, "/containers/\(Self.escape(id))?force=1&v=1", timeout: .seconds(60))
    try expect(response, [204, 404], "remove container \(id)")
  }

  /// Whether the engine holds image `reference`.
  public func hasImage(_ reference: String) async throws(LifeboatError) -> Bool {
    let response = try await send(.GET, "/images/\(Self.escape(reference))/json", timeout: .seconds(30))
    if response.status == 404 { return false }
    try expect(response, [200], "inspect image \(reference)")
    return true
  }

  /// `docker import`: makes image `repository:tag` from a root file system in a tar file.
  public func importImage(tarFile: String, repository: String, tag: String) async throws(LifeboatError) {
    guard let data = FileManager.default.contents(atPath: tarFile) else { throw .notFound("cannot read \(tarFile)") }
    let path = "/images/create?fromSrc=-&repo=\(Self.escape(repository))&tag=\(Self.escape(tag))"
    let response = try await send(.POST, path, body: Array(data), contentType: "application/x-tar", timeout: .seconds(300))
    try expect(response, [200], "import image \(repository):\(tag)")
    // Progress comes as JSON lines; a failure is a line with "error".
    struct Progress: Decodable { var error: String? }
    for line in response.body.split(separator: UInt8(ascii: "\n")) {
      if let progress = try? JSONDecoder().decode(Progress.self, from: Data(line)), let error = progress.error {
        throw .failure("\(host): import image \(repository):\(tag): \(error)")
      }
    }
  }

  // MARK: - HTTP

  struct Response {
    var status: Int
    var body: [UInt8]
  }

  func send(
    _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json", timeout: Duration
  ) async throws(LifeboatError) -> Response {
    guard let url = URL(httpURLWithSocketPath: socketPath, uri: "/\(Self.apiVersion)\(path)") else {
      throw .usage("docker_host \(host) cannot be used as a socket path")
    }
    var request = HTTPClientRequest(url: url.absoluteString)
    request.method = method
    request.headers.add(name: "Host", value: "docker")
    if let body {
      request.headers.add(name: "Content-Type", value: contentType)
      request.body = .bytes(body)
    }
    do {
      let seconds = timeout.components.seconds
      let response = try await Self.client.execute(request, deadline: .now() + .seconds(seconds))
      let bytes = try await response.body.collect(upTo: 16 << 20)
      return Response(status: Int(response.status.code), body: Array(bytes.readableBytesView))
    } catch {
      if !FileManager.default.fileExists(atPath: socketPath) {
        throw LifeboatError(.unavailable, "no Docker engine at \(host): the socket does not exist", underlying: .unreachable)
      }
      throw LifeboatError(.unavailable, "the Docker engine at \(host) did not answer \(method.rawValue) \(path.split(separator: "?")[0]): \(error)", underlying: .unreachable)
    }
  }

  func expect(_ response: Response, _ statuses: Set<Int>, _ what: String) throws(LifeboatError) {
    guard !statuses.contains(response.status) else { return }
    struct Message: Decodable { var message: String }
    let message = (try? JSONDecoder().decode(Message.self, from: Data(response.body)))?.message
      ?? String(decoding: response.body.prefix(200), as: UTF8.self)
    let kind: LifeboatError.Kind = response.status == 404 ? .notFound : .failure
    throw LifeboatError(kind, "\(host): \(what): \(message.trimmingCharacters(in: .whitespacesAndNewlines)) (HTTP \(response.status))", underlying: .remote)
  }

  func decode<T: Decodable>(_ type: T.Type, _ response: Response, _ what: String) throws(LifeboatError) -> T {
    do { return try JSONDecoder().decode(T.self, from: Data(response.body)) } catch {
      throw .failure("\(host): \(what): unexpected answer: \(error)")
    }
  }

  static func escape(_ component: String) -> String {
    component.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~:"))) ?? component
  }

  /// A container without a TTY sends its output in frames: 1 byte stream, 3 zero bytes, a
  /// big-endian 32-bit length, the payload.
  public static func demultiplex(_ bytes: [UInt8]) -> [UInt8] {
    var output: [UInt8] = []
    var index = 0
    while index + 8 <= bytes.count {
      let length = bytes[(index + 4)..<(index + 8)].reduce(0) { $0 << 8 | Int($1) }
      let start = index + 8
      let end = min(bytes.count, start + length)
      output += bytes[start..<end]
      index = end
    }
    return output
  }
}
