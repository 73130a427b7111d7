import Foundation
import Yams

/// A YAML value with the path of keys that led to it and its line, so that a wrong type is
/// reported as `cluster.yml:12: services.etcd.backup_config.interval_hours: expected an integer`.
///
/// Readers ask for the keys they use and ignore the rest (real RKE files carry many more keys),
/// except in sections declared strict, where an unknown key is an error (a typo must not be
/// silently ignored in Lifeboat's own settings).
public struct YAMLValue {
  let node: Yams.Node
  let path: String
  let file: String

  public static func parse(_ text: String, file: String) throws(LifeboatError) -> YAMLValue {
    do {
      let node = try Yams.compose(yaml: text) ?? Yams.Node.mapping(.init([]))
      return YAMLValue(node: node, path: "", file: file)
    } catch let error as YamlError {
      throw .usage("\(file): not valid YAML: \(Self.describe(error))")
    } catch {
      throw .usage("\(file): not valid YAML: \(error)")
    }
  }

  static func describe(_ error: YamlError) -> String {
    String(describing: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "parse error"
  }

  var line: Int { (node.mark?.line ?? 0) }
  var location: String { line > 0 ? "\(file):\(line)" : file }
  var isNull: Bool { if case .scalar(let s) = node { return s.style == .plain && (s.string == "" || s.string == "~" || s.string == "null" || s.string == "Null" || s.string == "NULL") } else { return false } }

  public func error(_ message: String) -> LifeboatError {
    .usage("\(location): \(path.isEmpty ? "" : path + ": ")\(message)")
  }

  private func child(_ node: Yams.Node, _ key: String) -> YAMLValue {
    YAMLValue(node: node, path: path.isEmpty ? key : "\(path).\(key)", file: file)
  }

  /// The value under `key` of a mapping, nil when absent or null.
  public subscript(key: String) -> YAMLValue? {
    get throws(LifeboatError) {
      guard case .mapping(let mapping) = node else { throw error("expected a mapping") }
      for (k, v) in mapping where k.string == key {
        let value = child(v, key)
        return value.isNull ? nil : value
      }
      return nil
    }
  }

  /// The keys of a mapping, in file order.
  public func keys() throws(LifeboatError) -> [String] {
    guard case .mapping(let mapping) = node else { throw error("expected a mapping") }
    return mapping.map { $0.key.string ?? "" }
  }

  /// Entries of a mapping, in file order.
  public func entries() throws(LifeboatError) -> [(String, YAMLValue)] {
    guard case .mapping(let mapping) = node else { throw error("expected a mapping") }
    return mapping.map { ($0.key.string ?? "", child($0.value, $0.key.string ?? "")) }
  }

  /// Rejects keys outside `allowed` (strict sections).
  public func onlyKeys(_ allowed: Set<String>) throws(LifeboatError) {
    guard case .mapping(let mapping) = node else { throw error("expected a mapping") }
    for (k, v) in mapping {
      let key = k.string ?? ""
      if !allowed.contains(key) {
        throw child(v, key).error("unknown key (known: \(allowed.sorted().joined(separator: ", ")))")
      }
    }
  }

  public func items() throws(LifeboatError) -> [YAMLValue] {
    guard case .sequence(let sequence) = node else { throw error("expected a list") }
    return sequence.enumerated().map { index, node in
      YAMLValue(node: node, path: "\(path)[\(index)]", file: file)
    }
  }

  public func string() throws(LifeboatError) -> String {
    guard case .scalar(let scalar) = node else { throw error("expected a string") }
    return scalar.string
  }

  public func int() throws(LifeboatError) -> Int {
    guard case .scalar(let scalar) = node, let value = Int(scalar.string.trimmingCharacters(in: .whitespaces)) else {
      throw error("expected an integer, found \(found)")
    }
    return value
  }

  public func bool() throws(LifeboatError) -> Bool {
    guard case .scalar = node, let value = node.bool else { throw error("expected true or false, found \(found)") }
    return value
  }

  public func strings() throws(LifeboatError) -> [String] {
    if case .scalar = node { return [try string()] }
    var result: [String] = []
    for item in try items() { result.append(try item.string()) }
    return result
  }

  private var found: String {
    switch node {
    case .scalar(let s): "'\(s.string.prefix(40))'"
    case .mapping: "a mapping"
    case .sequence: "a list"
    case .alias: "an alias"
    }
  }
}
