import Crypto
import Foundation
import LifeboatCore
import Logging

/// Signs every request (Signature V4) just before it is sent, so each retry has a fresh date
/// and, with temporary credentials, the keys valid at that moment.
public struct SigningTransport: S3Transport {
  public let base: any S3Transport
  public let credentials: any S3CredentialProvider
  public let region: String
  /// Sign bodies that carry an `x-amz-checksum-crc32c` with `UNSIGNED-PAYLOAD` instead of their
  /// SHA-256 (HTTPS endpoints: TLS protects the bytes in transit, the CRC their integrity at S3).
  public let unsignedChecksummedPayloads: Bool
  /// The clock; tests fix it.
  public var now: @Sendable () -> Date = { Date() }

  public init(base: any S3Transport, credentials: any S3CredentialProvider, region: String, unsignedChecksummedPayloads: Bool = false) {
    self.base = base
    self.credentials = credentials
    self.region = region
    self.unsignedChecksummedPayloads = unsignedChecksummedPayloads
  }

  func signed(_ request: S3HTTPRequest) async throws(S3TransportFailure) -> S3HTTPRequest {
    let keys: S3Credentials
    do { keys = try await credentials.credentials() } catch {
      throw S3TransportFailure(error.message, transient: false)
    }
    var request = request
    let payloadHash: String
    if request.body.isEmpty {
      payloadHash = SigV4Signer.emptyPayloadHash
    } else if unsignedChecksummedPayloads, request.headers.contains(where: { $0.0 == "x-amz-checksum-crc32c" }) {
      payloadHash = "UNSIGNED-PAYLOAD"
    } else {
      payloadHash = SHA256.hash(data: request.body).hexString
    }
    let added = SigV4Signer(credentials: keys, region: region).sign(
      method: request.method, path: request.path, query: request.query,
      headers: [("host", request.host)] + request.headers, payloadHash: payloadHash, date: now())
    request.headers += added
    return request
  }

  public func send(_ request: S3HTTPRequest) async throws(S3TransportFailure) -> S3HTTPResponse {
    try await base.send(signed(request))
  }

  public func stream(
    _ request: S3HTTPRequest, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws -> S3HTTPResponse {
    try await base.stream(signed(request), body)
  }
}

/// Retries transient failures (connection refused or reset, timeouts, 429 and 5xx answers) with
/// exponential backoff and jitter; never 4xx. A stream is retried only while no byte of its body
/// has been delivered (the store resumes broken downloads itself, with a Range).
public struct RetryingTransport: S3Transport {
  public let base: any S3Transport
  public let policy: RetryPolicy
  public let logger: Logger

  public init(base: any S3Transport, policy: RetryPolicy, logger: Logger) {
    self.base = base
    self.policy = policy
    self.logger = logger
  }

  public func send(_ request: S3HTTPRequest) async throws(S3TransportFailure) -> S3HTTPResponse {
    var attempt = 1
    while true {
      do {
        let response = try await base.send(request)
        if response.isTransient && attempt < policy.attempts {
          try await pause(after: attempt, request, reason: "HTTP \(response.status)")
          attempt += 1
          continue
        }
        return response
      } catch {
        guard error.transient, attempt < policy.attempts else { throw error }
        try await pause(after: attempt, request, reason: error.message)
        attempt += 1
      }
    }
  }

  public func stream(
    _ request: S3HTTPRequest, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws -> S3HTTPResponse {
    var attempt = 1
    while true {
      var delivered = false
      do {
        let response = try await base.stream(request) { (chunk) async throws(LifeboatError) in
          delivered = true
          try await body(chunk)
        }
        if response.isTransient && attempt < policy.attempts {
          try await pause(after: attempt, request, reason: "HTTP \(response.status)")
          attempt += 1
          continue
        }
        return response
      } catch let error as S3TransportFailure {
        guard error.transient, !delivered, attempt < policy.attempts else { throw error }
        try await pause(after: attempt, request, reason: error.message)
        attempt += 1
      }
    }
  }

  private func pause(after attempt: Int, _ request: S3HTTPRequest, reason: String) async throws(S3TransportFailure) {
    let delay = policy.delay(after: attempt)
    logger.debug("S3 \(request.operation): \(reason); attempt \(attempt + 1) of \(policy.attempts) in \(delay)")
    do { try await Task.sleep(for: delay) } catch { throw S3TransportFailure("cancelled", transient: false) }
  }
}

/// Logs each request: operation, status and duration, at debug level. Never headers or bodies
/// (they hold the signature and data).
public struct LoggingTransport: S3Transport {
  public let base: any S3Transport
  public let logger: Logger

  public init(base: any S3Transport, logger: Logger) {
    self.base = base
    self.logger = logger
  }

  public func send(_ request: S3HTTPRequest) async throws(S3TransportFailure) -> S3HTTPResponse {
    let start = ContinuousClock.now
    do {
      let response = try await base.send(request)
      logger.debug("S3 \(request.operation): HTTP \(response.status) in \(ContinuousClock.now - start)")
      return response
    } catch {
      logger.debug("S3 \(request.operation): \(error.message) after \(ContinuousClock.now - start)")
      throw error
    }
  }

  public func stream(
    _ request: S3HTTPRequest, _ body: ([UInt8]) async throws(LifeboatError) -> Void
  ) async throws -> S3HTTPResponse {
    let start = ContinuousClock.now
    let response = try await base.stream(request, body)
    logger.debug("S3 \(request.operation): HTTP \(response.status) in \(ContinuousClock.now - start)")
    return response
  }
}
