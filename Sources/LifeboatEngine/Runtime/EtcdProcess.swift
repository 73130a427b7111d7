import Foundation
import LifeboatCore

/// The etcd that really serves a node, found by what it is rather than by a PID file: the
/// process listening on the member's client port, and the data directory whose `member/snap/db`
/// it holds open (read from `/proc`; a directory renamed under a running etcd shows its new
/// name there, so an etcd left running on `data.lifeboat-old-<id>` is seen for what it is).
public struct EtcdProcess: Codable, Sendable, Equatable {
  public var pid: Int32
  /// The data directory it has open, as this host sees it (nil when /proc does not tell: another
  /// mount namespace, or no permission).
  public var dataDir: String?
  /// Its `--data-dir=` argument, when given.
  public var dataDirArgument: String?
  /// The device and inode of the `member/snap/db` it holds open: compared with a host path's,
  /// they tell which directory it serves even from inside a container, whose paths differ.
  public var database: FileIdentity?

  public init(pid: Int32, dataDir: String?, dataDirArgument: String?, database: FileIdentity? = nil) {
    self.pid = pid
    self.dataDir = dataDir
    self.dataDirArgument = dataDirArgument
    self.database = database
  }

  /// The process listening on TCP `port` at `host` (or on every address), if any.
  public static func listening(on port: Int, host: String, proc: String = "/proc") -> EtcdProcess? {
    let inodes = listeningSocketInodes(port: port, host: host, proc: proc)
    guard !inodes.isEmpty, let pid = owner(ofSocketInodes: inodes, proc: proc) else { return nil }
    let open = openDatabase(pid: pid, proc: proc)
    return EtcdProcess(
      pid: pid, dataDir: open?.dataDir, dataDirArgument: dataDirArgument(pid: pid, proc: proc), database: open?.identity)
  }

  /// Socket inodes in LISTEN state on `port` at `host` or a wildcard address (`/proc/net/tcp`, `tcp6`).
  static func listeningSocketInodes(port: Int, host: String, proc: String) -> Set<String> {
    let wanted = hexAddresses(host)
    var inodes = Set<String>()
    for table in ["net/tcp", "net/tcp6"] {
      guard let text = try? String(contentsOfFile: "\(proc)/\(table)", encoding: .utf8) else { continue }
      for line in text.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        guard fields.count > 9, fields[3] == "0A" else { continue }
        let local = fields[1].split(separator: ":")
        guard local.count == 2, Int(local[1], radix: 16) == port else { continue }
        let address = String(local[0])
        if wanted.contains(address) || address.allSatisfy({ $0 == "0" }) { inodes.insert(String(fields[9])) }
      }
    }
    return inodes
  }

  /// `/proc/net/tcp` writes an IPv4 address as the hex of its 32-bit value in host byte order
  /// (little endian here): 127.0.0.11 is `0B00007F`; IPv4-mapped in tcp6 as well.
  static func hexAddresses(_ host: String) -> Set<String> {
    let octets = host.split(separator: ".").compactMap { UInt8($0) }
    guard octets.count == 4 else { return [] }
    let v4 = octets.reversed().map { String(format: "%02X", $0) }.joined()
    return [v4, "0000000000000000FFFF0000" + v4]
  }

  /// The process holding one of the socket inodes.
  static func owner(ofSocketInodes inodes: Set<String>, proc: String) -> Int32? {
    let wanted = Set(inodes.map { "socket:[\($0)]" })
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: proc)) ?? []
    for entry in entries {
      guard let pid = Int32(entry) else { continue }
      let fdDir = "\(proc)/\(entry)/fd"
      for fd in (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? [] {
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\(fd)"), wanted.contains(target) {
          return pid
        }
      }
    }
    return nil
  }

  /// The directory whose `member/snap/db` the process holds open (as the process sees it),
  /// and that file's identity (`stat` through `/proc/<pid>/fd/<n>` reaches the file itself).
  static func openDatabase(pid: Int32, proc: String) -> (dataDir: String, identity: FileIdentity?)? {
    let fdDir = "\(proc)/\(pid)/fd"
    for fd in (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? [] {
      guard var target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\(fd)") else { continue }
      if target.hasSuffix(" (deleted)") { target.removeLast(" (deleted)".count) }
      if target.hasSuffix("/member/snap/db") {
        return (String(target.dropLast("/member/snap/db".count)), FileIdentity.of("\(fdDir)/\(fd)"))
      }
    }
    return nil
  }

  static func dataDirArgument(pid: Int32, proc: String) -> String? {
    guard let data = FileManager.default.contents(atPath: "\(proc)/\(pid)/cmdline") else { return nil }
    let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    for (i, argument) in arguments.enumerated() {
      if argument.hasPrefix("--data-dir=") { return String(argument.dropFirst("--data-dir=".count)) }
      if argument == "--data-dir", i + 1 < arguments.count { return arguments[i + 1] }
    }
    return nil
  }
}

/// A file's device and inode.
public struct FileIdentity: Codable, Sendable, Equatable {
  public var device: UInt64
  public var inode: UInt64

  /// The identity of the file at `path` (following symbolic links), nil when it cannot be read.
  public static func of(_ path: String) -> FileIdentity? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
  }
}

extension EtcdNode {
  /// The process listening on this member's client port, if any.
  public func listeningProcess() -> EtcdProcess? {
    guard let url = URL(string: clientURL), let host = url.host, let port = url.port else { return nil }
    return EtcdProcess.listening(on: port, host: host)
  }
}
