import Foundation
import LifeboatCore
import Logging

/// Where the S3 keys came from, for `list`, `status` and error messages. It names the source
/// (a flag, a variable, a profile, a role, an endpoint), never a key.
public enum CredentialSource: Sendable, Equatable, CustomStringConvertible {
  /// `--access-key`/`--secret-key`.
  case flags
  /// `s3backupconfig`'s `access_key`/`secret_key` in this cluster.yml.
  case clusterConfig(String)
  /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
  case environment
  /// STS AssumeRoleWithWebIdentity for this role (IRSA, `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`,
  /// or a profile's `role_arn` + `web_identity_token_file`).
  case webIdentity(role: String)
  /// Static keys of a profile in the shared credentials or config file.
  case profile(name: String, file: String)
  /// The container credentials endpoint (ECS, EKS Pod Identity).
  case container(String)
  /// The instance role, through IMDSv2 at this endpoint.
  case instanceRole(endpoint: String)
  /// Keys handed to the API directly (tests, embedding programs).
  case given

  public var description: String {
    switch self {
    case .flags: "--access-key/--secret-key"
    case .clusterConfig(let path): "s3backupconfig of \(path)"
    case .environment: "environment (AWS_ACCESS_KEY_ID)"
    case .webIdentity(let role): "web identity (STS AssumeRoleWithWebIdentity, role \(role))"
    case .profile(let name, let file): "profile \(name) (\(file))"
    case .container(let url): "container credentials (\(url))"
    case .instanceRole(let endpoint): "instance role (IMDSv2 at \(endpoint))"
    case .given: "given keys"
    }
  }
}

/// Supplies the keys each S3 request is signed with. Static sources return the same keys;
/// temporary ones (STS, container, instance role) refresh them before they expire, so a
/// multi-hour upload or an agent that runs for months never signs with expired keys.
///
/// Contract: `credentials()` is called before every request (cheap once cached), may be called
/// concurrently, and throws a one-line `LifeboatError` naming the source, never a secret.
public protocol S3CredentialProvider: Sendable {
  var source: CredentialSource { get }
  func credentials() async throws(LifeboatError) -> S3Credentials
}

/// Keys that do not change, with where they came from.
public struct StaticCredentials: S3CredentialProvider {
  public let keys: S3Credentials
  public let source: CredentialSource

  public init(_ keys: S3Credentials, source: CredentialSource) {
    self.keys = keys
    self.source = source
  }

  public func credentials() async throws(LifeboatError) -> S3Credentials { keys }
}

extension S3Credentials: S3CredentialProvider {
  public var source: CredentialSource { .given }
  public func credentials() async throws(LifeboatError) -> S3Credentials { self }
}

/// Keys with the time they stop working (nil: they do not expire).
public struct IssuedCredentials: Sendable {
  public var keys: S3Credentials
  public var expiration: Date?

  public init(keys: S3Credentials, expiration: Date?) {
    self.keys = keys
    self.expiration = expiration
  }
}

/// Temporary credentials, fetched on first use and again before they expire.
///
/// Refresh rule: new keys are fetched once less than `min(refreshWindow, lifetime / 2)` remains
/// (lifetime as issued), so 1-hour STS keys refresh 5 minutes early and 10-second test keys after
/// 5 seconds. Concurrent callers share one fetch. When a refresh fails while the old keys are still
/// valid for at least `minimumValidity`, the old keys are used (logged as a warning) and the next
/// call tries again; expired keys are never returned.
public actor RefreshingCredentials: S3CredentialProvider {
  public nonisolated let source: CredentialSource
  private let fetch: @Sendable () async throws(LifeboatError) -> IssuedCredentials
  private let refreshWindow: TimeInterval
  private let minimumValidity: TimeInterval = 10
  private let now: @Sendable () -> Date
  private let logger: Logger
  private var current: IssuedCredentials?
  private var fetchedAt = Date.distantPast
  private var inFlight: Task<IssuedCredentials, any Error>?
  /// Fetches so far (tests and the refresh log line).
  public private(set) var fetches = 0

  public init(
    source: CredentialSource, refreshWindow: TimeInterval = 300, logger: Logger = Logger(label: "lifeboat.s3"),
    now: @escaping @Sendable () -> Date = { Date() },
    fetch: @escaping @Sendable () async throws(LifeboatError) -> IssuedCredentials
  ) {
    self.source = source
    self.fetch = fetch
    self.refreshWindow = refreshWindow
    self.logger = logger
    self.now = now
  }

  public func credentials() async throws(LifeboatError) -> S3Credentials {
    if let current, !needsRefresh(current) { return current.keys }
    let task: Task<IssuedCredentials, any Error>
    if let inFlight {
      task = inFlight
    } else {
      let fetch = self.fetch
      task = Task { () async throws -> IssuedCredentials in try await fetch() }
      inFlight = task
    }
    do {
      let fresh = try await task.value
      if inFlight == task {
        inFlight = nil
        fetches += 1
        current = fresh
        fetchedAt = now()
        if let expiration = fresh.expiration {
          logger.debug("S3 credentials from \(source): valid until \(expiration)")
        }
      }
      return fresh.keys
    } catch {
      if inFlight == task { inFlight = nil }
      let failure = (error as? LifeboatError) ?? .storage("S3 credentials from \(source): \(error)")
      if let current, let expiration = current.expiration, expiration.timeIntervalSince(now()) > minimumValidity {
        logger.warning("refreshing S3 credentials from \(source) failed (\(failure.message)); the current ones are valid until \(expiration)")
        return current.keys
      }
      throw failure
    }
  }

  private func needsRefresh(_ issued: IssuedCredentials) -> Bool {
    guard let expiration = issued.expiration else { return false }
    let lifetime = expiration.timeIntervalSince(fetchedAt)
    return now() >= expiration.addingTimeInterval(-min(refreshWindow, max(lifetime / 2, 0)))
  }
}
