import Foundation

/// What `GET /containers/{name}/json` says about a container, as far as Lifeboat reads it.
public struct DockerContainer: Decodable, Sendable, Equatable {
  public var Id: String
  public var Name: String
  /// The executable (`/usr/local/bin/etcd`) and its arguments.
  public var Path: String
  public var Args: [String]
  public var State: State
  public var Config: Config
  public var HostConfig: HostConfig
  public var Mounts: [Mount]

  public struct State: Decodable, Sendable, Equatable {
    public var Running: Bool
    public var Pid: Int32
    public var Status: String
    public var ExitCode: Int
  }

  public struct Config: Decodable, Sendable, Equatable {
    public var Image: String
    public var Env: [String]?
    public var Labels: [String: String]?
  }

  public struct HostConfig: Decodable, Sendable, Equatable {
    public var NetworkMode: String?
    public var RestartPolicy: RestartPolicy?
    public var Binds: [String]?
  }

  public struct RestartPolicy: Decodable, Sendable, Equatable {
    public var Name: String
  }

  public struct Mount: Decodable, Sendable, Equatable {
    public var Source: String
    public var Destination: String
  }

  /// The host path behind `path` inside the container (through the bind with the longest
  /// matching destination); nil when no bind covers it.
  public func hostPath(of path: String) -> String? {
    let path = Self.trimmed(path)
    let matching = Mounts.filter { mount in
      let destination = Self.trimmed(mount.Destination)
      return path == destination || path.hasPrefix(destination == "/" ? "/" : destination + "/")
    }
    guard let mount = matching.max(by: { Self.trimmed($0.Destination).count < Self.trimmed($1.Destination).count }) else { return nil }
    let rest = path.dropFirst(Self.trimmed(mount.Destination).count)
    return Self.trimmed(mount.Source) + rest
  }

  static func trimmed(_ path: String) -> String {
    var path = path
    while path.count > 1, path.hasSuffix("/") { path.removeLast() }
    return path
  }

  /// Its etcd flags (`--name=x` and `--name x`), later ones winning as with etcd's own parser.
  public var etcdFlags: [String: String] {
    var flags: [String: String] = [:]
    var index = Args.startIndex
    while index < Args.endIndex {
      let argument = Args[index]
      index += 1
      guard argument.hasPrefix("--") else { continue }
      let body = argument.dropFirst(2)
      if let equals = body.firstIndex(of: "=") {
        flags[String(body[..<equals])] = String(body[body.index(after: equals)...])
      } else if index < Args.endIndex, !Args[index].hasPrefix("--") {
        flags[String(body)] = Args[index]
        index += 1
      } else {
        flags[String(body)] = "true"
      }
    }
    return flags
  }

  /// The member's data directory on the host: etcd's `--data-dir` (default `<name>.etcd` in its
  /// working directory, which no RKE node uses) through the container's binds.
  public var hostDataDir: String? {
    guard let dataDir = etcdFlags["data-dir"] else { return nil }
    return hostPath(of: dataDir)
  }
}

/// The body of `POST /containers/create`: a one-off container (the restore tool's).
public struct DockerContainerSpec: Encodable, Sendable {
  public var Image: String
  public var Cmd: [String]
  public var Env: [String]
  public var Labels: [String: String]
  public var HostConfig: HostConfig

  public struct HostConfig: Encodable, Sendable {
    public var Binds: [String]
    public var NetworkMode: String
    public var RestartPolicy: RestartPolicy?
    /// Relative CPU weight (the engine's default is 1024).
    public var CpuShares: Int?

    public init(Binds: [String], NetworkMode: String, RestartPolicy: RestartPolicy? = nil, CpuShares: Int? = nil) {
      self.Binds = Binds
      self.NetworkMode = NetworkMode
      self.RestartPolicy = RestartPolicy
      self.CpuShares = CpuShares
    }
  }

  public struct RestartPolicy: Encodable, Sendable {
    public var Name: String
  }
}
