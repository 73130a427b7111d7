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
    if trimmed.uppercased().hasPrefix("AGE-SECRET-KEY-") {
      // Never echoed: a secret key given where its public key belongs.
      throw .usage("an age identity (a secret key) was given as a recipient: give its public key (age1…, `age-keygen -y KEYFILE` prints it)")
    }
    guard let (hrp, data) = Bech32.decode(trimmed), hrp == "age", data.count == 32, trimmed == trimmed.lowercased() else {
      let shown = trimmed.hasPrefix("age1") && trimmed.count <= 100 ? "\(trimmed) " : ""
      throw .usage("age recipient \(shown)is not an X25519 recipient (age1…, as age-keygen prints)")
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
    try parse(try read(file: path, what: what), origin: "\(what) \(path)")
  }

  /// The largest identity file read (age-keygen writes about 200 bytes per key).
  public static let maxFileSize = 1 << 20

  /// An identity file's text, at most `maxFileSize` bytes (a device or a FIFO is read like a file).
  public static func read(file path: String, what: String = "--age-identity") throws(LifeboatError) -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
      throw .usage("\(what) \(path) does not exist")
    }
    guard !isDirectory.boolValue, let handle = FileHandle(forReadingAtPath: path) else {
      throw .usage("\(what) \(path) cannot be read (a directory, or no permission)")
    }
    defer { try? handle.close() }
    let data: Data
    do { data = try handle.read(upToCount: maxFileSize + 1) ?? Data() } catch {
      throw .usage("\(what) \(path) cannot be read")
    }
    guard data.count <= maxFileSize else {
      throw .usage("\(what) \(path) is larger than 1 MiB: not an age identity file")
    }
    return String(decoding: data, as: UTF8.self)
  }

  /// The identity lines of an identity file's text (comments and blank lines left out): what a
  /// node is handed for a restore.
  public static func keyLines(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
      .filter { !$0.isEmpty && !$0.hasPrefix("#") }.joined(separator: "\n") + "\n"
  }

  /// Identities from an identity file's text handed over as a secret (a restore's, to a node).
  public static func parse(_ secret: SecretBytes, origin: String) throws(LifeboatError) -> [AgeIdentity] {
    try parse(String(decoding: secret.bytes, as: UTF8.self), origin: origin)
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
