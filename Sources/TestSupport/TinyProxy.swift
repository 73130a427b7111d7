import Foundation
import LifeboatCore
import LifeboatEngine

/// A real HTTP proxy for tests: Debian's `tinyproxy` in the foreground on 127.0.0.1 with a free
/// port, a config and a log of its own (one line per request: `GET http://...` for plain HTTP,
/// `CONNECT host:port` for HTTPS). Stopped by PID.
public final class TinyProxy: Sendable {
  public let port: Int
  public let directory: TemporaryDirectory
  private let pid: Int32

  private init(port: Int, directory: TemporaryDirectory, pid: Int32) {
    self.port = port
    self.directory = directory
    self.pid = pid
  }

  public var url: String { "http://127.0.0.1:\(port)" }

  /// The proxy's log so far.
  public var log: String { (try? String(contentsOfFile: directory.file("tinyproxy.log"), encoding: .utf8)) ?? "" }

  /// The requests the proxy handled so far: the `Request ...: <line>` entries of its log.
  public var requests: [String] {
    log.split(separator: "\n").compactMap { line in
      line.range(of: "): ").flatMap { range in line.contains("Request (file descriptor") ? String(line[range.upperBound...]) : nil }
    }
  }

  public static func start() async throws -> TinyProxy {
    let directory = try TemporaryDirectory(prefix: "lifeboat-tinyproxy")
    let port = try freeTCPPort(on: "127.0.0.1")
    try """
      Port \(port)
      Listen 127.0.0.1
      Timeout 120
      LogFile "\(directory.file("tinyproxy.log"))"
      LogLevel Info
      MaxClients 64
      Allow 127.0.0.1
      """.write(toFile: directory.file("tinyproxy.conf"), atomically: true, encoding: .utf8)
    let binary = ProcessRunner.which("tinyproxy") ?? "/usr/bin/tinyproxy"
    let pid = try DetachedProcess.spawn(
      executable: binary, arguments: ["-d", "-c", directory.file("tinyproxy.conf")], logFile: directory.file("stdout.log"))
    let proxy = TinyProxy(port: port, directory: directory, pid: pid)
    for _ in 0..<200 {
      if MotoServer.accepts(port: port) { return proxy }
      guard DetachedProcess.isRunning(pid) else { break }
      try await Task.sleep(for: .milliseconds(25))
    }
    let output = (try? String(contentsOfFile: directory.file("stdout.log"), encoding: .utf8)) ?? ""
    await proxy.stop()
    throw LifeboatError.failure("tinyproxy did not start on port \(port): \(output.suffix(400))")
  }

  public func stop() async {
    await DetachedProcess.stop(pid, timeout: .seconds(5))
    directory.remove()
  }
}

/// Runs `body` with a started tinyproxy, stopped afterwards whatever happens.
public func withTinyProxy<R>(_ body: (TinyProxy) async throws -> R) async throws -> R {
  let proxy = try await TinyProxy.start()
  return try await withCleanup({ try await body(proxy) }, cleanup: { await proxy.stop() })
}
