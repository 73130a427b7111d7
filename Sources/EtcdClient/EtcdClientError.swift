/// An error from talking to one etcd member. Says what failed and at which endpoint, in one
/// line; never includes key material.
public struct EtcdClientError: Error, CustomStringConvertible, Sendable {
  public enum Code: String, Sendable {
    /// The endpoint URL cannot be used.
    case invalidEndpoint
    /// TLS files are missing or unreadable, or not PEM.
    case invalidTLSFiles
    /// No connection could be made (refused, no route, DNS).
    case unreachable
    /// The TLS handshake failed (wrong CA, certificate refused, name mismatch).
    case tls
    /// The member did not answer within the timeout.
    case timeout
    /// The snapshot stream broke off before its end.
    case streamBroken
    /// The member refused the request or answered with an error.
    case rejected
  }

  public var code: Code
  /// The endpoint concerned (its URL as given), or empty.
  public var endpoint: String
  public var message: String

  public init(_ code: Code, endpoint: String, _ message: String) {
    self.code = code
    self.endpoint = endpoint
    self.message = message
  }

  public var description: String {
    endpoint.isEmpty ? message : "\(endpoint): \(message)"
  }
}
