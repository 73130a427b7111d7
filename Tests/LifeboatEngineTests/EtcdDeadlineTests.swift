import EtcdClient
import Foundation
import LifeboatCore
import LifeboatEngine
import Testing

/// A member whose port accepts connections but never answers (etcd 3.4 before it has joined its
/// cluster: a lone restored member waiting for quorum): every call fails within its deadline,
/// never hangs, and closing the client does not hang either.
@Suite struct EtcdDeadlineTests {
  /// A socket on 127.0.0.1 that listens and never accepts: the kernel completes the TCP
  /// handshake, nobody reads.
  static func silentListener() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    guard bound == 0, listen(fd, 16) == 0 else { throw LifeboatError.failure("cannot listen") }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
  }

  @Test(arguments: ["http", "https"])
  func aMemberThatNeverAnswersTimesOut(scheme: String) async throws {
    let (fd, port) = try Self.silentListener()
    defer { close(fd) }
    let endpoint = try EtcdEndpoint(parsing: "\(scheme)://127.0.0.1:\(port)")
    let started = ContinuousClock.now
    do {
      _ = try await EtcdClient.with(endpoint: endpoint, configuration: .init(requestTimeout: .seconds(1))) { try await $0.status() }
      Issue.record("a silent member answered")
    } catch {
      #expect(error is EtcdClientError, "\(error)")
    }
    #expect(ContinuousClock.now - started < .seconds(15), "the call and the client's shutdown end, near the deadline")
  }

  /// Found by a review: a Ctrl-C while the members were probed said "no healthy etcd member to
  /// snapshot: ...: CancellationError()" for each of them (exit 5), not that it was interrupted.
  @Test func anInterruptWhileProbingIsAnInterruptNotSickMembers() async throws {
    let (fd, port) = try Self.silentListener()
    defer { close(fd) }
    let selector = MemberSelector(connection: EtcdConnection(endpoints: [try EtcdEndpoint(parsing: "http://127.0.0.1:\(port)")]))
    let probing = Task { () async throws(LifeboatError) -> SelectedMember in try await selector.select() }
    try await Task.sleep(for: .milliseconds(200))
    probing.cancel()
    do {
      _ = try await probing.value
      Issue.record("a silent member was chosen")
    } catch let error as LifeboatError {
      #expect(error.underlying == .cancelled && error.message.hasPrefix("interrupted"), "\(error.message)")
    }
  }
}
