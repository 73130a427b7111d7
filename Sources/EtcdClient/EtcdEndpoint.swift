import Foundation

/// An etcd client URL: `http://host:port` or `https://host:port` (port defaults to 2379).
public struct EtcdEndpoint: Hashable, Sendable, CustomStringConvertible {
  public enum Scheme: String, Sendable { case http, https }

  public var scheme: Scheme
  public var host: String
  public var port: Int

  public init(scheme: Scheme, host: String, port: Int) {
    self.scheme = scheme
    self.host = host
    self.port = port
  }

  /// Parses `http://h:p` or `https://h:p`; IPv6 hosts in brackets. Anything else is refused.
  public init(parsing raw: String) throws(EtcdClientError) {
    let text = raw.trimmingCharacters(in: .whitespaces)
    let scheme: Scheme
    let rest: Substring
    if text.hasPrefix("http://") {
      scheme = .http
      rest = text.dropFirst(7)
    } else if text.hasPrefix("https://") {
      scheme = .https
      rest = text.dropFirst(8)
    } else {
      throw EtcdClientError(.invalidEndpoint, endpoint: raw, "the URL must start with http:// or https://")
    }
    let authority = rest.hasSuffix("/") ? rest.dropLast() : rest
    guard !authority.isEmpty, !authority.contains("/"), !authority.contains("@") else {
      throw EtcdClientError(.invalidEndpoint, endpoint: raw, "expected scheme://host[:port] and nothing else")
    }
    var host: Substring
    var portText: Substring?
    if authority.hasPrefix("[") {
      guard let close = authority.firstIndex(of: "]") else {
        throw EtcdClientError(.invalidEndpoint, endpoint: raw, "unclosed [ in an IPv6 address")
      }
      host = authority[authority.index(after: authority.startIndex)..<close]
      let after = authority[authority.index(after: close)...]
      if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
        throw EtcdClientError(.invalidEndpoint, endpoint: raw, "unexpected text after the IPv6 address")
      }
    } else if let colon = authority.lastIndex(of: ":") {
      host = authority[..<colon]
      portText = authority[authority.index(after: colon)...]
    } else {
      host = authority
    }
    var port = 2379
    if let portText {
      guard let p = Int(portText), (1...65535).contains(p) else {
        throw EtcdClientError(.invalidEndpoint, endpoint: raw, "the port must be a number from 1 to 65535")
      }
      port = p
    }
    guard !host.isEmpty else { throw EtcdClientError(.invalidEndpoint, endpoint: raw, "the host is empty") }
    self.init(scheme: scheme, host: String(host), port: port)
  }

  public var description: String {
    let h = host.contains(":") ? "[\(host)]" : host
    return "\(scheme.rawValue)://\(h):\(port)"
  }

  /// Whether `host` is an IPv4 literal (such endpoints are dialled as addresses, not names).
  var isIPv4: Bool {
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
  }

  var isIPv6: Bool { host.contains(":") }
}
