import Foundation
import LifeboatCore

/// One HTTP request to S3: where (host and the encoded path), what, and a name for logs.
public struct S3HTTPRequest: Sendable {
  public var method: String
  /// The `Host` header (with the port when it is not the default).
  public var host: String
  /// Canonical, URI-encoded path (`/bucket/key` or `/key`).
  public var path: String
  /// Unencoded query parameters.
  public var query: [(String, String)]
  /// Headers to send and sign (lowercase names), `host` excluded.
  public var headers: [(String, String)]
  public var body: [UInt8]
  /// What the request does, for logs and errors, e.g. "upload part 3 of x.zip".
  public var operation: String

  public init(
    method: String, host: String, path: String, query: [(String, String)] = [], headers: [(String, String)] = [],
    body: [UInt8] = [], operation: String
  ) {
    self.method = method
    self.host = host
    self.path = path
    self.query = query
    self.headers = headers
    self.body = body
    self.operation = operation
  }
}

/// A response: status, headers (lowercase names) and, for `send`, the whole body.
public struct S3HTTPResponse: Sendable {
  public var status: Int
  public var headers: [(String, String)]
  public var body: [UInt8]

  public init(status: Int, headers: [(String, String)], body: [UInt8] = []) {
    self.status = status
    self.headers = headers
    self.body = body
  }

  public func header(_ name: String) -> String? {
    headers.first { $0.0.lowercased() == name }?.1
  }

  public var isSuccess: Bool { (200..<300).contains(status) }
  /// Statuses worth another attempt: throttling and server errors.
  public var isTransient: Bool { status == 429 || status >= 500 }
}

/// A request that did not get a response: the connection failed, broke or timed out.
public struct S3TransportFailure: Error, Sendable, CustomStringConvertible {
  public var message: String
  /// Whether trying again may help (connection refused, reset, timeout: yes; TLS refused: no).
  public var transient: Bool

  public init(_ message: String, transient: Bool) {
    self.message = message
    self.transient = transient
  }

  public var description: String { message }
}

/// How requests reach S3. The real one speaks HTTP through AsyncHTTPClient; decorators add
/// signing, retries and logging around it (stacked in `S3Store.make`).
public protocol S3Transport: Sendable {
  /// Sends `request` and returns the response with its whole body, whatever the status.
  func send(_ request: S3HTTPRequest) async throws(S3TransportFailure) -> S3HTTPResponse

  /// Sends `request`; a 2xx body is handed to `body` as it arrives and the response returned
  /// without it; any other status is returned with its whole (small) body. Errors thrown by
  /// `body` are rethrown as they are.
  func stream(
    _ request: S3HTTPRequest, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws -> S3HTTPResponse
}
