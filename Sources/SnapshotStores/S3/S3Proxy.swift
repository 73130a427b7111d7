import Foundation
import LifeboatCore

/// The HTTP proxy S3 requests go through, if any: `--s3-proxy URL|none` (or `lifeboat.s3.proxy`)
/// first, else the environment as curl and the AWS SDKs read it: `HTTPS_PROXY` for an https://
/// endpoint, `HTTP_PROXY` for http:// (either spelling case), unless the host matches `NO_PROXY`.
/// `none` ignores the environment. Requests go through the proxy in a CONNECT tunnel (AsyncHTTPClient
/// tunnels plain HTTP too), so the proxy sees host and port, never the requests or keys.
public struct S3Proxy: Sendable, Equatable, CustomStringConvertible {
  public var host: String
  public var port: Int
  /// `user:password` of the proxy URL (Basic authentication), never printed.
  public var user: String?
  public var password: Secret?
  /// Where the setting came from (`--s3-proxy`, `HTTPS_PROXY`, ...), for messages.
  public var origin: String

  public init(host: String, port: Int, user: String? = nil, password: Secret? = nil, origin: String) {
    self.host = host
    self.port = port
    self.user = user
    self.password = password
    self.origin = origin
  }

  /// `http://host:port` (credentials left out), for messages.
  public var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

  /// Parses a proxy URL: `http://[user:password@]host[:port]` (default port 80), or `host:port`.
  public init(parsing raw: String, origin: String) throws(LifeboatError) {
    var text = Substring(raw.trimmingCharacters(in: .whitespaces))
    if text.lowercased().hasPrefix("http://") {
      text = text.dropFirst(7)
    } else if text.contains("://") {
      throw .usage("\(origin) \(Self.redacted(raw)): only http:// proxies are supported (HTTPS still travels encrypted through them)")
    }
    while text.hasSuffix("/") { text = text.dropLast() }
    var user: String?
    var password: Secret?
    if let at = text.lastIndex(of: "@") {
      let userInfo = text[..<at]
      text = text[text.index(after: at)...]
      let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
      user = parts[0].removingPercentEncoding ?? String(parts[0])
      if parts.count > 1 { password = Secret(parts[1].removingPercentEncoding ?? String(parts[1])) }
    }
    if text.contains(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
      throw .usage("\(origin) \(Self.redacted(raw)): a proxy URL has no path or query: http://[user:password@]host:port")
    }
    var host = text
    var port = 80
    if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
      let rest = host[host.index(after: close)...]
      if rest.hasPrefix(":") {
        guard let p = Int(rest.dropFirst()), (1...65535).contains(p) else {
          throw .usage("\(origin) \(Self.redacted(raw)): the port must be a number from 1 to 65535")
        }
        port = p
      }
      host = host[host.index(after: host.startIndex)..<close]
    } else if let colon = host.lastIndex(of: ":") {
      guard let p = Int(host[host.index(after: colon)...]), (1...65535).contains(p) else {
        throw .usage("\(origin) \(Self.redacted(raw)): the port must be a number from 1 to 65535")
      }
      port = p
      host = host[..<colon]
    }
    guard !host.isEmpty, !host.contains("/"), !host.contains(" ") else {
      throw .usage("\(origin) \(Self.redacted(raw)): expected http://host:port")
    }
    self.init(host: String(host), port: port, user: user, password: password, origin: origin)
  }

  /// The proxy for requests to `endpoint`: `setting` (`none` for no proxy) when given, else the
  /// environment. Returns nil when requests go direct.
  public static func resolve(
    setting: String?, settingName: String = "--s3-proxy", endpoint: S3Endpoint, environment: [String: String]
  ) throws(LifeboatError) -> S3Proxy? {
    if let setting {
      if setting.lowercased() == "none" { return nil }
      return try S3Proxy(parsing: setting, origin: settingName)
    }
    return try fromEnvironment(host: endpoint.host, secure: endpoint.secure, environment: environment)
  }

  /// The environment's proxy for `host` (curl's rules).
  public static func fromEnvironment(host: String, secure: Bool, environment: [String: String]) throws(LifeboatError) -> S3Proxy? {
    let names = secure ? ["HTTPS_PROXY", "https_proxy"] : ["HTTP_PROXY", "http_proxy"]
    guard let name = names.first(where: { !(environment[$0] ?? "").isEmpty }), let value = environment[name] else { return nil }
    let noProxy = environment["NO_PROXY"] ?? environment["no_proxy"] ?? ""
    if bypasses(host: host, noProxy: noProxy) { return nil }
    return try S3Proxy(parsing: value, origin: name)
  }

  /// Whether `NO_PROXY` exempts `host`: `*`; a name that equals the host or is a dot-separated
  /// suffix of it (`example.com` and `.example.com` both match `s3.example.com`); an IP address;
  /// an IPv4 CIDR block (`10.0.0.0/8`). A `:port` on an entry is ignored (one endpoint, one port).
  public static func bypasses(host: String, noProxy: String) -> Bool {
    let host = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    for raw in noProxy.split(whereSeparator: { $0 == "," || $0 == " " }) {
      var entry = raw.lowercased().trimmingCharacters(in: .whitespaces)
      if entry == "*" { return true }
      if entry.hasPrefix("["), let close = entry.firstIndex(of: "]") {
        entry = String(entry[entry.index(after: entry.startIndex)..<close])
      } else if entry.filter({ $0 == ":" }).count == 1, let colon = entry.firstIndex(of: ":") {
        entry = String(entry[..<colon])
      }
      while entry.hasPrefix(".") || entry.hasPrefix("*.") { entry = String(entry.drop(while: { $0 == "*" || $0 == "." })) }
      guard !entry.isEmpty else { continue }
      if host == entry || host.hasSuffix("." + entry) { return true }
      if entry.contains("/"), let block = IPv4Block(entry), let address = IPv4Block.address(host), block.contains(address) {
        return true
      }
    }
    return false
  }

  static func redacted(_ url: String) -> String {
    guard let at = url.lastIndex(of: "@") else { return url }
    let scheme = url.range(of: "://").map { String(url[..<$0.upperBound]) } ?? ""
    return scheme + "***@" + url[url.index(after: at)...]
  }
}

/// An IPv4 CIDR block of `NO_PROXY`.
struct IPv4Block {
  var network: UInt32
  var mask: UInt32

  init?(_ text: String) {
    let parts = text.split(separator: "/")
    guard parts.count == 2, let address = Self.address(String(parts[0])), let bits = Int(parts[1]), (0...32).contains(bits)
    else { return nil }
    mask = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
    network = address & mask
  }

  func contains(_ address: UInt32) -> Bool { address & mask == network }

  static func address(_ text: String) -> UInt32? {
    let octets = text.split(separator: ".", omittingEmptySubsequences: false)
    guard octets.count == 4 else { return nil }
    var value: UInt32 = 0
    for octet in octets {
      guard let byte = UInt8(octet) else { return nil }
      value = value << 8 | UInt32(byte)
    }
    return value
  }
}
