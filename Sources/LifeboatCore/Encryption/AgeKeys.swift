import Crypto
import Foundation

/// An age X25519 recipient: `age1…` (Bech32 of the 32-byte public key). Public: it may appear in
/// configs, manifests and logs.
public struct AgeRecipient: Sendable, Equatable, CustomStringConvertible {
  public let publicKey: [UInt8]

  public init(publicKey: [UInt8]) {
    self.publicKey = publicKey
  }

  public init(parsing text: String) throws(LifeboatError) {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard let (hrp, data) = Bech32.decode(trimmed), hrp == "age", data.count == 32, trimmed == trimmed.lowercased() else {
      throw .usage("age recipient \(trimmed.prefix(80)) is not an X25519 recipient (age1…, as age-keygen prints)")
    }
    self.publicKey = data
  }

  public var description: String { Bech32.encode(hrp: "age", publicKey) }
}

/// An age X25519 identity: `AGE-SECRET-KEY-1…`. Never printed, logged or written by Lifeboat.
public struct AgeIdentity: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
  let privateKey: Curve25519.KeyAgreement.PrivateKey

  public init(privateKey: Curve25519.KeyAgreement.PrivateKey) {
    self.privateKey = privateKey
  }

  /// A new identity (tests; operators use `age-keygen`).
  public static func generate() -> AgeIdentity { AgeIdentity(privateKey: .init()) }

  public var recipient: AgeRecipient { AgeRecipient(publicKey: Array(privateKey.publicKey.rawRepresentation)) }

  /// `AGE-SECRET-KEY-1…`, for writing a test's identity file.
  public var encoded: String { Bech32.encode(hrp: "AGE-SECRET-KEY-", Array(privateKey.rawRepresentation)).uppercased() }

  public var description: String { "age identity for \(recipient)" }
  public var debugDescription: String { description }

  /// The identities of an identity file as `age-keygen` writes it: one `AGE-SECRET-KEY-1…` per
  /// line, `#` comments and blank lines ignored. Nothing of the file's content reaches an error.
  public static func load(file path: String, what: String = "--age-identity") throws(LifeboatError) -> [AgeIdentity] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw .usage("\(what) \(path) does not exist or cannot be read")
    }
    return try parse(String(decoding: data, as: UTF8.self), origin: "\(what) \(path)")
  }

  /// Identities from the text of an identity file.
  public static func parse(_ text: String, origin: String) throws(LifeboatError) -> [AgeIdentity] {
    var identities: [AgeIdentity] = []
    for (number, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") { continue }
      guard let (hrp, data) = Bech32.decode(line), hrp == "age-secret-key-", data.count == 32, line == line.uppercased(),
        let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: data)
      else {
        throw .usage("\(origin): line \(number + 1) is not an age X25519 identity (AGE-SECRET-KEY-1…, as age-keygen writes)")
      }
      identities.append(AgeIdentity(privateKey: key))
    }
    guard !identities.isEmpty else { throw .usage("\(origin) holds no age identity (AGE-SECRET-KEY-1…)") }
    return identities
  }
}
