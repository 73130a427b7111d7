import AsyncHTTPClient
import Foundation
import LifeboatCore
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An HTTP proxy on 127.0.0.1 in front of an S3 server (moto) that fails chosen requests: moto
/// has no fault hooks, so faults come from here. Each request is matched by a rule that sees the
/// method, the path with its query and how many times the same request was seen before.
public final class S3FaultProxy: Sendable {
  public enum Action: Sendable {
    case forward
    /// Answer with this status (and an S3 error body) without forwarding.
    case fail(status: Int)
    /// Close the connection without answering.
    case drop
    /// Wait, then forward (a slow link or a busy server).
    case delay(Duration)
  }

  public struct Request: Sendable {
    public var method: String
    public var uri: String
    /// 1 for the first time this method and URI are seen, 2 for the first retry...
    public var attempt: Int
    /// The access key the request was signed with (`Credential=` of its Authorization).
    public var accessKey: String?
    /// Whether it carried `X-Amz-Security-Token` (temporary keys).
    public var hasSessionToken: Bool = false
    /// Its headers (lowercase names; `authorization` left out), as sent.
    public var headers: [String: String] = [:]

    /// Its `x-amz-server-side-encryption*` headers.
    public var encryptionHeaders: [String: String] { headers.filter { $0.key.hasPrefix("x-amz-server-side-encryption") } }

    public var isPartUpload: Bool { method == "PUT" && uri.contains("partNumber=") }
  }

  public let port: Int
  private let channel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
  private let task: Task<Void, Never>
  private let client: HTTPClient
  private let state: ProxyState

  public var endpoint: String { "http://127.0.0.1:\(port)" }

  /// Every request seen, as "METHOD uri -> action", in order.
  public var log: [String] { state.log() }

  /// Every request seen, in order (the keys it was signed with included).
  public var requests: [Request] { state.requests() }

  private init(
    port: Int, channel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>,
    task: Task<Void, Never>, client: HTTPClient, state: ProxyState
  ) {
    self.port = port
    self.channel = channel
    self.task = task
    self.client = client
    self.state = state
  }

  public static func start(upstream: String, rule: @escaping @Sendable (Request) -> Action) async throws -> S3FaultProxy {
    let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .bind(host: "127.0.0.1", port: 0) { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.configureHTTPServerPipeline()
          return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
        }
      }
    let port = server.channel.localAddress?.port ?? 0
    let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
    let state = ProxyState()
    let task = Task<Void, Never> {
      _ = try? await server.executeThenClose { connections in
        try await withThrowingDiscardingTaskGroup { group in
          for try await connection in connections {
            group.addTask {
              await Self.serve(connection, upstream: upstream, client: client, rule: rule, state: state)
            }
          }
        }
      }
    }
    return S3FaultProxy(port: port, channel: server, task: task, client: client, state: state)
  }

  public func stop() async {
    try? await channel.channel.close()
    task.cancel()
    await task.value
    try? await client.shutdown()
  }

  private static func serve(
    _ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, upstream: String, client: HTTPClient,
    rule: @Sendable (Request) -> Action, state: ProxyState
  ) async {
    try? await connection.executeThenClose { inbound, outbound in
      var head: HTTPRequestHead?
      var body = ByteBuffer()
      for try await part in inbound {
        switch part {
        case .head(let h):
          head = h
          body.clear()
        case .body(var chunk):
          body.writeBuffer(&chunk)
        case .end:
          guard let head else { continue }
          let id = "\(head.method.rawValue) \(head.uri)"
          let attempt = state.count(id)
          let authorization = head.headers["authorization"].first ?? ""
          let accessKey = authorization.range(of: "Credential=").map {
            String(authorization[$0.upperBound...].prefix { $0 != "/" && $0 != "," })
          }
          let request = Request(
            method: head.method.rawValue, uri: head.uri, attempt: attempt, accessKey: accessKey,
            hasSessionToken: !head.headers["x-amz-security-token"].isEmpty,
            headers: Dictionary(
              head.headers.filter { $0.name.lowercased() != "authorization" }.map { ($0.name.lowercased(), $0.value) },
              uniquingKeysWith: { a, _ in a }))
          let action = rule(request)
          state.record("\(id) #\(attempt) -> \(action)", request)
          var forward = false
          switch action {
          case .drop:
            return
          case .delay(let duration):
            try await Task.sleep(for: duration)
            forward = true
          case .forward:
            forward = true
          case .fail(let status):
            let error = ByteBuffer(string: "<Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>")
            var headers = HTTPHeaders([("content-type", "application/xml"), ("content-length", "\(error.readableBytes)")])
            headers.add(name: "connection", value: "keep-alive")
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers)))
            try await outbound.write(.body(.byteBuffer(error)))
            try await outbound.write(.end(nil))
          }
          if forward {
            var request = HTTPClientRequest(url: upstream + head.uri)
            request.method = head.method
            for (name, value) in head.headers where !["host", "content-length", "connection"].contains(name.lowercased()) {
              request.headers.add(name: name, value: value)
            }
            if body.readableBytes > 0 || [.PUT, .POST].contains(head.method) { request.body = .bytes(body) }
            let response = try await client.execute(request, timeout: .seconds(120))
            let responseBody = try await response.body.collect(upTo: 256 << 20)
            var headers = HTTPHeaders()
            for (name, value) in response.headers where !["content-length", "transfer-encoding", "connection"].contains(name.lowercased()) {
              headers.add(name: name, value: value)
            }
            if head.method == .HEAD {
              // A HEAD answer has no body but the object's length.
              headers.add(name: "content-length", value: response.headers["content-length"].first ?? "0")
            } else {
              headers.add(name: "content-length", value: "\(responseBody.readableBytes)")
            }
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)))
            if responseBody.readableBytes > 0, head.method != .HEAD { try await outbound.write(.body(.byteBuffer(responseBody))) }
            try await outbound.write(.end(nil))
          }
        }
      }
    }
  }
}

/// What the proxy has seen: attempts per request and a log.
final class ProxyState: Sendable {
  private let counts = Mutex<[String: Int]>([:])
  private let seen = Mutex<[String]>([])
  private let all = Mutex<[S3FaultProxy.Request]>([])

  func count(_ id: String) -> Int {
    counts.withLock { counts in
      counts[id, default: 0] += 1
      return counts[id]!
    }
  }

  func record(_ line: String, _ request: S3FaultProxy.Request) {
    seen.withLock { $0.append(line) }
    all.withLock { $0.append(request) }
  }
  func log() -> [String] { seen.withLock { $0 } }
  func requests() -> [S3FaultProxy.Request] { all.withLock { $0 } }
}
