import Foundation
import LifeboatCore

/// Everything needed to reach one S3-compatible bucket. Flag names follow RKE's
/// (`--s3-endpoint`, `--bucket-name`, `--region`, `--folder`, `--access-key`, `--secret-key`,
/// `--s3-endpoint-ca`); documented defaults below.
public struct S3Configuration: Sendable {
  public var endpoint: S3Endpoint
  public var bucket: String
  /// Key prefix without leading or trailing `/`; objects are `[folder/]<name>.zip`.
  public var folder: String
  /// Signing region; empty signs as `us-east-1` (what S3 and most compatible stores expect).
  public var region: String
  /// Where each request's keys come from (`CredentialChain` picks it; refreshed when temporary).
  public var credentials: any S3CredentialProvider
  /// The HTTP proxy requests go through (`S3Proxy.resolve`); nil: direct.
  public var proxy: S3Proxy?
  /// Server-side encryption of written objects; nil: the bucket's default.
  public var serverSideEncryption: S3ServerSideEncryption?
  /// Object Lock on every object written; nil: none (the bucket's default retention, if any).
  public var objectLock: S3ObjectLock?
  /// The checksum sent with objects and parts. Default CRC-32C.
  public var checksum: S3Checksum = .crc32c
  /// Path-style (`https://host/bucket/key`) or virtual-host (`https://bucket.host/key`) requests.
  /// Default: virtual-host for AWS endpoints (`*.amazonaws.com`), path-style for the rest.
  public var pathStyle: Bool
  /// PEM certificates to trust instead of the system's CAs (`--s3-endpoint-ca`).
  public var customCA: [UInt8]?
  /// Size of each multipart part. Default 8 MiB (S3's minimum is 5 MiB; 10,000 parts of 8 MiB
  /// allow archives up to 78 GiB).
  public var partSize: Int
  /// Parts uploaded at once while later parts are written. Default 4 (memory: about
  /// (partsInFlight + 1) × partSize).
  public var partsInFlight: Int
  /// Retries of transient failures. Default: 5 attempts, backoff from 200 ms to 5 s, with jitter.
  public var retry: RetryPolicy
  /// Deadline of one request (a part upload included). Default 5 minutes.
  public var requestTimeout: Duration

  public init(
    endpoint: S3Endpoint, bucket: String, folder: String = "", region: String = "", credentials: any S3CredentialProvider,
    pathStyle: Bool? = nil, customCA: [UInt8]? = nil, proxy: S3Proxy? = nil
  ) {
    self.endpoint = endpoint
    self.bucket = bucket
    self.folder = folder.split(separator: "/").joined(separator: "/")
    self.region = region
    self.credentials = credentials
    self.pathStyle = pathStyle ?? !endpoint.isAWS
    self.customCA = customCA
    self.proxy = proxy
    self.partSize = 8 << 20
    self.partsInFlight = 4
    self.retry = RetryPolicy()
    self.requestTimeout = .seconds(300)
  }

  /// The region requests are signed for.
  public var signingRegion: String { region.isEmpty ? "us-east-1" : region }

  /// `s3://bucket[/folder]`, for messages.
  public var location: String { "s3://\(bucket)" + (folder.isEmpty ? "" : "/\(folder)") }

  /// The full object key of a store key.
  public func objectKey(_ key: String) -> String { folder.isEmpty ? key : folder + "/" + key }

  /// Checks the bucket name the way S3 does, so a typo is a usage error before any request.
  public static func validate(bucket: String) throws(LifeboatError) {
    let allowed = Set("abcdefghijklmnopqrstuvwxyz0123456789.-_")
    guard (3...255).contains(bucket.count), bucket.allSatisfy({ allowed.contains($0) || $0.isUppercase }),
      !bucket.hasPrefix("-"), !bucket.hasPrefix(".")
    else {
      throw .usage("invalid --bucket-name \"\(bucket)\": 3 to 255 letters, digits, '.', '-' or '_'")
    }
  }
}

/// Access keys. The secret and the session token are `Secret`s: they never print.
public struct S3Credentials: Sendable, CustomStringConvertible {
  public var accessKey: String
  public var secretKey: Secret
  public var sessionToken: Secret?

  public init(accessKey: String, secretKey: Secret, sessionToken: Secret? = nil) {
    self.accessKey = accessKey
    self.secretKey = secretKey
    self.sessionToken = sessionToken
  }

  public var description: String { "S3Credentials(accessKey: \(accessKey), secretKey: **redacted**)" }
}

/// An S3 endpoint: `host[:port]` means HTTPS; a full `https://` or `http://` URL may be given.
/// Plain HTTP only when explicitly allowed (`--s3-insecure-http`).
public struct S3Endpoint: Sendable, Equatable, CustomStringConvertible {
  public var secure: Bool
  public var host: String
  public var port: Int?

  public init(secure: Bool, host: String, port: Int? = nil) {
    self.secure = secure
    self.host = host
    self.port = port
  }

  public init(parsing raw: String, allowInsecureHTTP: Bool) throws(LifeboatError) {
    var text = Substring(raw.trimmingCharacters(in: .whitespaces))
    var secure = true
    if text.lowercased().hasPrefix("https://") {
      text = text.dropFirst(8)
    } else if text.lowercased().hasPrefix("http://") {
      guard allowInsecureHTTP else {
        throw .usage("S3 endpoint \(raw) is plain HTTP: add --s3-insecure-http to allow it (credentials and data then travel unencrypted)")
      }
      secure = false
      text = text.dropFirst(7)
    } else if text.contains("://") {
      throw .usage("S3 endpoint \(raw): only https:// (or http:// with --s3-insecure-http) is supported")
    }
    while text.hasSuffix("/") { text = text.dropLast() }
    guard !text.isEmpty, !text.contains("/"), !text.contains("@"), !text.contains("?") else {
      throw .usage("S3 endpoint \(raw): expected host[:port] or a URL without a path")
    }
    var port: Int?
    var host = text
    if let colon = text.lastIndex(of: ":"), !text.hasSuffix("]") {
      guard let p = Int(text[text.index(after: colon)...]), (1...65535).contains(p) else {
        throw .usage("S3 endpoint \(raw): the port must be a number from 1 to 65535")
      }
      port = p
      host = text[..<colon]
    }
    self.init(secure: secure, host: String(host), port: port)
  }

  /// Whether this is Amazon's own S3 (virtual-host addressing by default).
  public var isAWS: Bool { host == "amazonaws.com" || host.hasSuffix(".amazonaws.com") }

  /// The `Host` header for `host` (the port only when it is not the scheme's default).
  func hostHeader(_ host: String) -> String {
    guard let port, port != (secure ? 443 : 80) else { return host }
    return "\(host):\(port)"
  }

  public var description: String { "\(secure ? "https" : "http")://\(hostHeader(host))" }
}

/// Exponential backoff with full jitter, for transient failures only.
public struct RetryPolicy: Sendable {
  /// Attempts in all, the first included. Default 5.
  public var attempts: Int = 5
  /// Delay before the second attempt. Default 200 ms; doubles each time.
  public var baseDelay: Duration = .milliseconds(200)
  /// Cap of one delay. Default 5 s.
  public var maxDelay: Duration = .seconds(5)

  public init(attempts: Int = 5, baseDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(5)) {
    self.attempts = attempts
    self.baseDelay = baseDelay
    self.maxDelay = maxDelay
  }

  /// The delay before attempt `attempt + 1` (attempt counts from 1): random in [0, min(max, base·2^(attempt-1))].
  public func delay(after attempt: Int) -> Duration {
    let ceiling = min(maxDelay, baseDelay * (1 << min(attempt - 1, 20)))
    let nanoseconds = Double(ceiling.components.seconds) * 1e9 + Double(ceiling.components.attoseconds) / 1e9
    return .nanoseconds(Int64(Double.random(in: 0...nanoseconds)))
  }
}
