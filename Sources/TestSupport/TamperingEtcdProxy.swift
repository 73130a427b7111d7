import EtcdAPI
import EtcdClient
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// A plaintext gRPC front for one real etcd member that relays `Status`, `MemberList` and
/// `Snapshot`, flipping one bit of the snapshot stream at `flipOffset` (a stream altered in
/// transit, as a faulty network or middlebox would) and optionally pausing before each message
/// (a slow link, so a test can act while a save is under way). Started on 127.0.0.1 with a
/// free port.
public final class TamperingEtcdProxy: Sendable {
  public let endpoint: String
  private let task: Task<Void, any Error>
  private let server: GRPCServer<HTTP2ServerTransport.Posix>

  private init(endpoint: String, task: Task<Void, any Error>, server: GRPCServer<HTTP2ServerTransport.Posix>) {
    self.endpoint = endpoint
    self.task = task
    self.server = server
  }

  /// Starts relaying to `upstream` (an `http://` member URL).
  public static func start(
    upstream: String, flipOffset: UInt64 = .max, delayPerMessage: Duration = .zero
  ) async throws -> TamperingEtcdProxy {
    let upstreamEndpoint = try EtcdEndpoint(parsing: upstream)
    let service = Relay(upstream: upstreamEndpoint, flipOffset: flipOffset, delay: delayPerMessage)
    let transport = HTTP2ServerTransport.Posix(
      address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext)
    let server = GRPCServer(transport: transport, services: [service, service.cluster])
    let task = Task { try await server.serve() }
    guard let address = try await transport.listeningAddress.ipv4 else {
      server.beginGracefulShutdown()
      throw EtcdClientError(.unreachable, endpoint: "", "the proxy did not bind")
    }
    return TamperingEtcdProxy(endpoint: "http://127.0.0.1:\(address.port)", task: task, server: server)
  }

  public func stop() async {
    server.beginGracefulShutdown()
    task.cancel()
    _ = try? await task.value
  }

  private struct Relay: Etcdserverpb_Maintenance.SimpleServiceProtocol {
    let upstream: EtcdEndpoint
    let flipOffset: UInt64
    let delay: Duration
    var cluster: ClusterRelay { ClusterRelay(upstream: upstream) }

    func withUpstream<R: Sendable>(_ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> R) async throws -> R {
      try await withGRPCClient(
        transport: .http2NIOPosix(
          target: .ipv4(address: upstream.host, port: upstream.port), transportSecurity: .plaintext),
        handleClient: body)
    }

    func status(request: Etcdserverpb_StatusRequest, context: ServerContext) async throws -> Etcdserverpb_StatusResponse {
      try await withUpstream { try await Etcdserverpb_Maintenance.Client(wrapping: $0).status(request) }
    }

    func alarm(request: Etcdserverpb_AlarmRequest, context: ServerContext) async throws -> Etcdserverpb_AlarmResponse {
      try await withUpstream { try await Etcdserverpb_Maintenance.Client(wrapping: $0).alarm(request) }
    }

    func hashKV(request: Etcdserverpb_HashKVRequest, context: ServerContext) async throws -> Etcdserverpb_HashKVResponse {
      try await withUpstream { try await Etcdserverpb_Maintenance.Client(wrapping: $0).hashKV(request) }
    }

    func snapshot(
      request: Etcdserverpb_SnapshotRequest, response: RPCWriter<Etcdserverpb_SnapshotResponse>, context: ServerContext
    ) async throws {
      let flipOffset = self.flipOffset
      let delay = self.delay
      try await withUpstream { client in
        try await Etcdserverpb_Maintenance.Client(wrapping: client).snapshot(request) { upstream in
          var offset: UInt64 = 0
          for try await var message in upstream.messages {
            let count = UInt64(message.blob.count)
            if flipOffset >= offset && flipOffset < offset + count {
              var blob = message.blob
              let index = blob.startIndex + Int(flipOffset - offset)
              blob[index] ^= 0x01
              message.blob = blob
            }
            offset += count
            if delay > .zero { try await Task.sleep(for: delay) }
            try await response.write(message)
          }
        }
      }
    }
  }

  private struct ClusterRelay: Etcdserverpb_Cluster.SimpleServiceProtocol {
    let upstream: EtcdEndpoint

    func memberList(request: Etcdserverpb_MemberListRequest, context: ServerContext) async throws
      -> Etcdserverpb_MemberListResponse
    {
      try await withGRPCClient(
        transport: .http2NIOPosix(
          target: .ipv4(address: upstream.host, port: upstream.port), transportSecurity: .plaintext)
      ) { try await Etcdserverpb_Cluster.Client(wrapping: $0).memberList(request) }
    }
  }
}
