import AsyncHTTPClient
import Foundation
import LifeboatCore
import NIOCore
import NIOHTTP1
import NIOSSL

/// The real transport: HTTP/1.1 (or HTTP/2 when the server offers it) over AsyncHTTPClient,
/// HTTPS by default with the system's or a custom CA.
public final class AsyncHTTPTransport: S3Transport {
  public let endpoint: S3Endpoint
  public let proxy: S3Proxy?
  private let client: HTTPClient
  private let timeout: Duration

  /// Creates the client; call `shutdown()` when done (`S3Store.with` does).
  public init(endpoint: S3Endpoint, customCA: [UInt8]?, proxy: S3Proxy? = nil, timeout: Duration) throws(LifeboatError) {
    var tls = TLSConfiguration.makeClientConfiguration()
    if let customCA {
      do {
        let certificates = try NIOSSLCertificate.fromPEMBytes(customCA)
        guard !certificates.isEmpty else { throw LifeboatError.usage("the S3 custom CA holds no PEM certificate") }
        tls.trustRoots = .certificates(certificates)
      } catch let error as LifeboatError {
        throw error
      } catch {
        throw .usage("the S3 custom CA is not a PEM certificate: \(error)")
      }
    }
    var configuration = HTTPClient.Configuration(
      tlsConfiguration: tls, redirectConfiguration: .disallow,
      timeout: .init(connect: .seconds(10), read: .seconds(60)))
    configuration.httpVersion = .http1Only
    // A failed connection fails the request at once: RetryingTransport retries (with backoff
    // and a log line); AsyncHTTPClient's own retries would hold it until the connect timeout.
    configuration.connectionPool.retryConnectionEstablishment = false
    configuration.proxy = proxy?.clientProxy
    self.proxy = proxy
    self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    self.endpoint = endpoint
    self.timeout = timeout
  }

  public func shutdown() async {
    try? await client.shutdown()
  }

  func makeRequest(_ request: S3HTTPRequest) -> HTTPClientRequest {
    var url = "\(endpoint.secure ? "https" : "http")://\(request.host)\(request.path)"
    if !request.query.isEmpty {
      url += "?" + request.query.map { name, value in
        let n = S3Path.encode(name, keepSlash: false)
        return value.isEmpty && ["uploads", "delete"].contains(name) ? n : "\(n)=\(S3Path.encode(value, keepSlash: false))"
      }.joined(separator: "&")
    }
    var http = HTTPClientRequest(url: url)
    http.method = HTTPMethod(rawValue: request.method)
    for (name, value) in request.headers { http.headers.add(name: name, value: value) }
    if request.body.count > Self.bodyChunk {
      // A part goes out in small buffers, each written before the next is made: over TLS,
      // AsyncHTTPClient's 4 MiB buffers and their encrypted copies would otherwise be held for
      // every part in flight (measured: 293 MiB peak RSS for a 1 GiB save over HTTPS, 85 MiB
      // over HTTP).
      http.body = .stream(ChunkedBody(bytes: request.body, chunk: Self.bodyChunk), length: .known(Int64(request.body.count)))
    } else if !request.body.isEmpty || ["PUT", "POST"].contains(request.method) {
      http.body = .bytes(request.body)
    }
    return http
  }

  /// Size of the buffers a request body is sent in.
  static let bodyChunk = 256 * 1024

  private var deadline: NIODeadline {
    .now() + .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + Int64(timeout.components.attoseconds / 1_000_000_000))
  }

  /// A request without a body (list, HEAD, DELETE, start or complete an upload) gets 30 s: an
  /// endpoint that accepts connections and never answers fails in minutes, not in 25.
  static let smallRequestDeadline: TimeAmount = .seconds(30)

  public func send(_ request: S3HTTPRequest) async throws(S3TransportFailure) -> S3HTTPResponse {
    do {
      let limit = request.body.count <= Self.bodyChunk ? .now() + Self.smallRequestDeadline : deadline
      let response = try await client.execute(makeRequest(request), deadline: limit)
      let body = try await response.body.collect(upTo: 64 << 20)
      return S3HTTPResponse(
        status: Int(response.status.code), headers: response.headers.map { ($0.name.lowercased(), $0.value) },
        body: Array(body.readableBytesView))
    } catch {
      throw Self.failure(error, endpoint: endpoint, proxy: proxy)
    }
  }

  public func stream(
    _ request: S3HTTPRequest, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws -> S3HTTPResponse {
    let response: HTTPClientResponse
    do {
      // No overall deadline for a download (multi-GB archives take as long as they take): the
      // read timeout ends a stalled one.
      response = try await client.execute(makeRequest(request), deadline: .now() + .hours(24))
    } catch {
      throw Self.failure(error, endpoint: endpoint, proxy: proxy)
    }
    let head = S3HTTPResponse(
      status: Int(response.status.code), headers: response.headers.map { ($0.name.lowercased(), $0.value) })
    guard head.isSuccess else {
      var failed = head
      do { failed.body = Array(try await response.body.collect(upTo: 1 << 20).readableBytesView) } catch {}
      return failed
    }
    if let range = request.headers.first(where: { $0.0 == "range" })?.1 {
      // bytes=START-[END]: the answer must be 206 with a Content-Range from START, or the bytes
      // would be appended at the wrong place.
      let start = range.dropFirst("bytes=".count).split(separator: "-").first.map(String.init) ?? ""
      let contentRange = head.header("content-range") ?? ""
      guard head.status == 206, contentRange.hasPrefix("bytes \(start)-") else {
        throw S3TransportFailure(
          "\(endpoint) ignored the Range request (HTTP \(head.status), Content-Range \"\(contentRange)\")", transient: false)
      }
    }
    var iterator = response.body.makeAsyncIterator()
    while true {
      let buffer: ByteBuffer?
      do { buffer = try await iterator.next() } catch { throw Self.failure(error, endpoint: endpoint, proxy: proxy) }
      guard let buffer else { break }
      try await body(Array(buffer.readableBytesView))
    }
    return head
  }

  /// Turns a client error into one line, marking what is worth another attempt.
  static func failure(_ error: any Error, endpoint: S3Endpoint, proxy: S3Proxy? = nil) -> S3TransportFailure {
    if let failure = error as? S3TransportFailure { return failure }
    let text = "\(error)"
    let lowered = text.lowercased()
    if let proxy {
      if let error = error as? HTTPClientError, error == .invalidProxyResponse {
        return S3TransportFailure(
          "the proxy \(proxy) (\(proxy.origin)) refused the tunnel to \(endpoint): its rules, or a wrong user or password in the proxy URL",
          transient: false)
      }
      if let error = error as? HTTPClientError, error == .httpProxyHandshakeTimeout {
        return S3TransportFailure("the proxy \(proxy) (\(proxy.origin)) did not answer in time", transient: true)
      }
      if let error = error as? HTTPClientError, error == .proxyAuthenticationRequired {
        return S3TransportFailure("the proxy \(proxy) (\(proxy.origin)) wants a user and password (http://user:password@host:port)", transient: false)
      }
      if lowered.contains("connection refused") || lowered.contains("connectionrefused") {
        return S3TransportFailure("cannot connect to the proxy \(proxy) (\(proxy.origin)): connection refused", transient: true)
      }
    }
    // A TLS client hello answered with plain HTTP: BoringSSL reports the HTTP status line as a
    // record of an unknown version.
    if endpoint.secure, lowered.contains("wrong_version_number") || lowered.contains("http_request")
      || lowered.contains("packet_length_too_long") || lowered.contains("unknown_protocol")
    {
      var plain = endpoint
      plain.secure = false
      return S3TransportFailure(
        "\(endpoint) speaks plain HTTP, not HTTPS: use --s3-endpoint \(plain) with --s3-insecure-http (data and signatures then travel unencrypted)",
        transient: false)
    }
    if error is NIOSSLError || lowered.contains("ssl") || lowered.contains("certificate") || lowered.contains("handshake") {
      return S3TransportFailure("TLS with \(endpoint) failed: \(oneLine(text)) (check --s3-endpoint-ca)", transient: false)
    }
    if lowered.contains("connection refused") || lowered.contains("connectionrefused") {
      return S3TransportFailure("cannot connect to \(endpoint): connection refused", transient: true)
    }
    if let error = error as? HTTPClientError {
      switch error {
      case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout:
        return S3TransportFailure("\(endpoint) did not answer in time", transient: true)
      case .remoteConnectionClosed:
        return S3TransportFailure("\(endpoint) closed the connection", transient: true)
      default: break
      }
    }
    return S3TransportFailure("request to \(endpoint) failed: \(oneLine(text))", transient: true)
  }

  static func oneLine(_ text: String) -> String {
    let line = text.split(whereSeparator: \.isNewline).joined(separator: " ")
    return line.count > 240 ? String(line.prefix(240)) + "..." : line
  }
}

/// A request body handed to AsyncHTTPClient in `chunk`-sized buffers, made one at a time as the
/// connection takes them (backpressure), from bytes kept whole for retries.
struct ChunkedBody: AsyncSequence, Sendable {
  typealias Element = ByteBuffer
  let bytes: [UInt8]
  let chunk: Int

  struct AsyncIterator: AsyncIteratorProtocol {
    let bytes: [UInt8]
    let chunk: Int
    var offset = 0

    mutating func next() async -> ByteBuffer? {
      guard offset < bytes.count else { return nil }
      let end = Swift.min(bytes.count, offset + chunk)
      defer { offset = end }
      return ByteBuffer(bytes: bytes[offset..<end])
    }
  }

  func makeAsyncIterator() -> AsyncIterator { AsyncIterator(bytes: bytes, chunk: chunk) }
}

extension S3Proxy {
  /// The proxy as AsyncHTTPClient takes it (Basic authentication when the URL had a user).
  var clientProxy: HTTPClient.Configuration.Proxy {
    .server(host: host, port: port, authorization: user.map { .basic(username: $0, password: password?.value ?? "") })
  }
}
