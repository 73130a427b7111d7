import EtcdAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// An async client of one etcd member, over gRPC (plaintext or mutual TLS). gRPC types stay
/// inside: callers see `EtcdClientError` and the plain models of `EtcdModels.swift`.
///
/// Use it scoped: `try await EtcdClient.with(endpoint:configuration:) { client in ... }` opens
/// the connection lazily and always closes it.
public final class EtcdClient: Sendable {
  public let endpoint: EtcdEndpoint
  public let configuration: EtcdClientConfiguration
  let grpc: GRPCClient<HTTP2ClientTransport.Posix>

  private init(endpoint: EtcdEndpoint, configuration: EtcdClientConfiguration, grpc: GRPCClient<HTTP2ClientTransport.Posix>) {
    self.endpoint = endpoint
    self.configuration = configuration
    self.grpc = grpc
  }

  /// Runs `body` with a client of `endpoint`; the connection is closed when `body` returns.
  ///
  /// Not `withGRPCClient`: its graceful shutdown waits for the server, and etcd 3.4 that has not
  /// joined its cluster (a lone restored member waiting for quorum) accepts connections and
  /// never answers, so the shutdown never ended. Here it gets `shutdownGrace`, then the
  /// connection is closed.
  public static func with<Result: Sendable>(
    endpoint: EtcdEndpoint, configuration: EtcdClientConfiguration = .init(),
    _ body: (EtcdClient) async throws -> Result
  ) async throws -> Result {
    let transport = try makeTransport(endpoint: endpoint, configuration: configuration)
    let grpc = GRPCClient(transport: transport)
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await grpc.runConnections() }
      let outcome: Swift.Result<Result, any Error>
      do {
        outcome = .success(try await body(EtcdClient(endpoint: endpoint, configuration: configuration, grpc: grpc)))
      } catch {
        outcome = .failure(error)
      }
      grpc.beginGracefulShutdown()
      group.addTask { try? await Task.sleep(for: shutdownGrace) }
      // Whichever ends first: the connections (shut down), or the grace period.
      _ = try? await group.next()
      group.cancelAll()
      while true {
        do { if try await group.next() == nil { break } } catch {}
      }
      return try outcome.get()
    }
  }

  /// How long a client waits for a graceful shutdown before it closes the connection.
  static let shutdownGrace: Duration = .seconds(2)

  /// Runs `body` with one client per endpoint, in order, all open for the whole of `body` (an
  /// operation that polls reuses them; each reconnects by itself when its member comes back);
  /// every connection is closed when `body` returns.
  public static func withAll<Result: Sendable>(
    endpoints: [EtcdEndpoint], configuration: EtcdClientConfiguration = .init(),
    _ body: ([EtcdClient]) async throws -> Result
  ) async throws -> Result {
    func open(_ index: Int, _ opened: [EtcdClient]) async throws -> Result {
      guard index < endpoints.count else { return try await body(opened) }
      return try await with(endpoint: endpoints[index], configuration: configuration) { client in
        try await open(index + 1, opened + [client])
      }
    }
    return try await open(0, [])
  }

  private static func makeTransport(
    endpoint: EtcdEndpoint, configuration: EtcdClientConfiguration
  ) throws(EtcdClientError) -> HTTP2ClientTransport.Posix {
    let target: any ResolvableTarget =
      if endpoint.isIPv4 {
        .ipv4(address: endpoint.host, port: endpoint.port)
      } else if endpoint.isIPv6 {
        .ipv6(address: endpoint.host, port: endpoint.port)
      } else {
        .dns(host: endpoint.host, port: endpoint.port)
      }
    let security: HTTP2ClientTransport.Posix.TransportSecurity
    switch (endpoint.scheme, configuration.tls) {
    case (.http, _):
      security = .plaintext
    case (.https, nil):
      security = .tls
    case (.https, let tls?):
      var config = HTTP2ClientTransport.Posix.TransportSecurity.TLS.defaults
      config.trustRoots = .certificates([.bytes(tls.caPEM, format: .pem)])
      if let cert = tls.certificatePEM, let key = tls.keyPEM {
        config.certificateChain = [.bytes(cert, format: .pem)]
        config.privateKey = .bytes(key, format: .pem)
      }
      security = .tls(config)
    }
    do {
      return try HTTP2ClientTransport.Posix(
        target: target, transportSecurity: security,
        config: .defaults { config in
          config.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
          config.http2.targetWindowSize = configuration.windowSize
        })
    } catch {
      throw EtcdClientError(.invalidEndpoint, endpoint: endpoint.description, "\(error)")
    }
  }

  func options(timeout: Duration?) -> CallOptions {
    var options = CallOptions.defaults
    options.timeout = timeout
    options.waitForReady = false
    options.maxRequestMessageBytes = configuration.maxMessageBytes
    options.maxResponseMessageBytes = configuration.maxMessageBytes
    return options
  }

  // MARK: - Maintenance and cluster

  /// `Maintenance.Status` of this member.
  public func status() async throws(EtcdClientError) -> EtcdMemberStatus {
    let maintenance = Etcdserverpb_Maintenance.Client(wrapping: grpc)
    let r = try await call { try await maintenance.status(.init(), options: self.options(timeout: self.configuration.requestTimeout)) }
    return EtcdMemberStatus(
      memberID: r.header.memberID, clusterID: r.header.clusterID, version: r.version, dbSize: r.dbSize,
      dbSizeInUse: r.dbSizeInUse, leader: r.leader, raftIndex: r.raftIndex, raftTerm: r.raftTerm,
      raftAppliedIndex: r.raftAppliedIndex, errors: r.errors, isLearner: r.isLearner, revision: r.header.revision)
  }

  /// `Cluster.MemberList` as this member sees it (served locally in etcd 3.4: works without quorum).
  public func memberList() async throws(EtcdClientError) -> [EtcdMember] {
    let cluster = Etcdserverpb_Cluster.Client(wrapping: grpc)
    let r = try await call { try await cluster.memberList(.init(), options: self.options(timeout: self.configuration.requestTimeout)) }
    return r.members.map {
      EtcdMember(id: $0.id, name: $0.name, peerURLs: $0.peerUrls, clientURLs: $0.clientUrls, isLearner: $0.isLearner)
    }
  }

  /// Active alarms of the whole cluster (`Maintenance.Alarm` GET; needs quorum).
  public func alarms() async throws(EtcdClientError) -> [(memberID: UInt64, alarm: String)] {
    let maintenance = Etcdserverpb_Maintenance.Client(wrapping: grpc)
    var request = Etcdserverpb_AlarmRequest()
    request.action = .get
    let r = try await call { try await maintenance.alarm(request, options: self.options(timeout: self.configuration.requestTimeout)) }
    return r.alarms.map { ($0.memberID, "\($0.alarm)".uppercased()) }
  }

  /// `Maintenance.HashKV` at `revision` (0: the current one).
  public func hashKV(revision: Int64 = 0) async throws(EtcdClientError) -> (hash: UInt32, revision: Int64, compactRevision: Int64) {
    let maintenance = Etcdserverpb_Maintenance.Client(wrapping: grpc)
    var request = Etcdserverpb_HashKVRequest()
    request.revision = revision
    let r = try await call { try await maintenance.hashKV(request, options: self.options(timeout: self.configuration.hashTimeout)) }
    return (r.hash, r.header.revision, r.compactRevision)
  }

  /// Streams `Maintenance.Snapshot`, handing the bytes to `onBatch` in batches of about
  /// `batchSize` bytes (etcd sends 32 KiB messages). gRPC flow control holds etcd back while
  /// `onBatch` is busy, so memory stays bounded. Errors thrown by `onBatch` end the stream and are
  /// rethrown unchanged; a stream silent for longer than `snapshotIdleTimeout` fails with
  /// `.timeout`; there is no limit on the total duration. `nextBatch` gives the buffer each
  /// batch after the first is gathered in (a pool of buffers a later stage is done with; by
  /// default a new one).
  public func snapshot(
    batchSize: Int = 1 << 20, nextBatch: @escaping @Sendable () -> [UInt8] = { [] },
    onBatch: @escaping @Sendable ([UInt8]) async throws -> Void
  ) async throws -> EtcdSnapshotStreamSummary {
    let maintenance = Etcdserverpb_Maintenance.Client(wrapping: grpc)
    let lastActivity = ActivityClock()
    let idle = configuration.snapshotIdleTimeout
    let endpoint = self.endpoint.description
    let options = self.options(timeout: nil)
    do {
      return try await withThrowingTaskGroup(of: EtcdSnapshotStreamSummary?.self) { group in
        group.addTask {
          try await maintenance.snapshot(.init(), options: options) { response in
            var bytes: UInt64 = 0
            var headerRevision: Int64 = 0
            var first = true
            var remaining: UInt64 = 1
            func emptyBatch() -> [UInt8] {
              var batch = nextBatch()
              batch.removeAll(keepingCapacity: true)
              batch.reserveCapacity(batchSize + (64 << 10))
              return batch
            }
            var batch = emptyBatch()
            for try await message in response.messages {
              lastActivity.touch()
              if first {
                headerRevision = message.header.revision
                first = false
              }
              remaining = message.remainingBytes
              bytes += UInt64(message.blob.count)
              batch.append(contentsOf: message.blob)
              if batch.count >= batchSize {
                // Time spent in onBatch (a slow disk or upload) is not etcd being silent.
                lastActivity.pause()
                try await onBatch(batch)
                batch = emptyBatch()
                lastActivity.resume()
              }
            }
            lastActivity.pause()
            if !batch.isEmpty { try await onBatch(batch) }
            return EtcdSnapshotStreamSummary(bytes: bytes, headerRevision: headerRevision, complete: remaining == 0)
          }
        }
        group.addTask {
          while true {
            try await Task.sleep(for: .milliseconds(250))
            if lastActivity.sinceLast() > idle {
              throw EtcdClientError(.timeout, endpoint: endpoint, "the snapshot stream stalled for \(idle)")
            }
          }
        }
        defer { group.cancelAll() }
        while let result = try await group.next() {
          if let summary = result { return summary }
        }
        throw EtcdClientError(.streamBroken, endpoint: endpoint, "the snapshot stream ended without a result")
      }
    } catch let error as RPCError {
      throw Self.map(error, endpoint: endpoint, streaming: true)
    }
  }

  // MARK: - Errors

  func call<R: Sendable>(_ body: () async throws -> R) async throws(EtcdClientError) -> R {
    do {
      return try await body()
    } catch let error as RPCError {
      throw Self.map(error, endpoint: endpoint.description, streaming: false)
    } catch let error as EtcdClientError {
      throw error
    } catch {
      throw EtcdClientError(.rejected, endpoint: endpoint.description, "\(error)")
    }
  }

  static func map(_ error: RPCError, endpoint: String, streaming: Bool) -> EtcdClientError {
    let detail = "\(error.message) \(error.cause.map { String(describing: $0) } ?? "")"
    let lowered = detail.lowercased()
    if let reason = tlsReason(lowered) {
      return EtcdClientError(.tls, endpoint: endpoint, "TLS handshake failed: \(reason)")
    }
    switch error.code {
    case .unavailable where lowered.contains("connection refused"):
      return EtcdClientError(.unreachable, endpoint: endpoint, "unreachable: connection refused")
    case .unavailable where lowered.contains("connection preface") && endpoint.hasPrefix("http://"):
      return EtcdClientError(
        .unreachable, endpoint: endpoint, "the member closed the connection at once (does it expect https://?)")
    case .unavailable where streaming && !lowered.contains("connect"):
      return EtcdClientError(.streamBroken, endpoint: endpoint, "the snapshot stream broke off: \(summarize(detail))")
    case .unavailable:
      return EtcdClientError(.unreachable, endpoint: endpoint, "unreachable: \(summarize(detail))")
    case .deadlineExceeded:
      return EtcdClientError(.timeout, endpoint: endpoint, "no answer in time")
    case .cancelled where streaming, .internalError where streaming, .unknown where streaming:
      return EtcdClientError(.streamBroken, endpoint: endpoint, "the snapshot stream broke off: \(summarize(detail))")
    default:
      return EtcdClientError(.rejected, endpoint: endpoint, "\(error.code): \(summarize(detail))")
    }
  }

  /// A plain-words reason for a TLS failure, or nil when `detail` is not one.
  static func tlsReason(_ detail: String) -> String? {
    if detail.contains("certificate_verify_failed") || detail.contains("unable to get local issuer") {
      return "the member's certificate is not signed by a trusted CA (check --cacert)"
    }
    if detail.contains("certificate required") || detail.contains("certificate_required")
      || detail.contains("bad_certificate") || detail.contains("bad certificate")
    {
      return "the member refused the client certificate (check --cert and --key)"
    }
    if detail.contains("unknown_ca") || detail.contains("unknown ca") {
      return "the member does not trust the CA of the client certificate (check --cert)"
    }
    if detail.contains("hostname") || detail.contains("ip address") && detail.contains("mismatch") {
      return "the member's certificate does not name this address"
    }
    if detail.contains("handshakefailed") || detail.contains("ssl") || detail.contains("tls") {
      return summarize(detail)
    }
    return nil
  }

  private static func summarize(_ text: String) -> String {
    let oneLine = text.split(whereSeparator: \.isNewline).joined(separator: " ")
      .trimmingCharacters(in: .whitespaces)
    return oneLine.count > 300 ? String(oneLine.prefix(300)) + "..." : oneLine
  }
}

/// How long the stream has been waiting for etcd, shared between the stream and its watchdog.
/// While paused (the consumer is busy), the clock does not run.
private final class ActivityClock: Sendable {
  private struct State {
    var last = ContinuousClock.now
    var paused = false
  }
  private let state = Mutex(State())
  func touch() { state.withLock { $0.last = .now } }
  func pause() { state.withLock { $0.paused = true } }
  func resume() {
    state.withLock {
      $0.paused = false
      $0.last = .now
    }
  }
  func sinceLast() -> Duration {
    state.withLock { $0.paused ? .zero : ContinuousClock.now - $0.last }
  }
}
