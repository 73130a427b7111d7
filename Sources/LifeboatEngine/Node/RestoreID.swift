import Foundation
import LifeboatCore

/// A restore's id, the same on every node: the UTC time it started (`20261125T230102Z`) and a
/// random suffix, so two restores started in the same second never share one.
public enum RestoreID {
  public static func new(_ date: Date = Date()) -> String {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
    let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    return formatter.string(from: date) + "-" + String(repeating: "0", count: 8 - suffix.count) + suffix
  }

  /// Letters, digits and `-` only, at most 64: never a path.
  public static func validate(_ id: String) throws(LifeboatError) {
    guard !id.isEmpty, id.count <= 64, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
      throw .usage("invalid restore id \(id)")
    }
  }
}
