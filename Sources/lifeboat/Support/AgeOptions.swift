import ArgumentParser
import Foundation
import LifeboatCore
import SnapshotStores

/// `--age-identity FILE` (repeatable): the key files (as `age-keygen` writes them) that open
/// encrypted archives (`<name>.zip.age`). Read by this command only; never logged.
struct AgeIdentityOptions: ParsableArguments {
  @Option(name: .customLong("age-identity"), help: "age identity file (age-keygen's) that opens encrypted archives (<name>.zip.age); repeatable.")
  var files: [String] = []

  /// The identities of every file, checked (a bad file is a usage error naming it, never its content).
  func identities() throws(LifeboatError) -> [AgeIdentity] {
    var all: [AgeIdentity] = []
    for file in files { all += try AgeIdentity.load(file: file) }
    return all
  }

  /// The files' text, checked, to hand to the node that downloads an encrypted archive.
  func secret() throws(LifeboatError) -> SecretBytes? {
    guard !files.isEmpty else { return nil }
    var text = ""
    for file in files {
      let content = try AgeIdentity.read(file: file)
      _ = try AgeIdentity.parse(content, origin: "--age-identity \(file)")
      text += AgeIdentity.keyLines(content)
    }
    return SecretBytes(Array(text.utf8))
  }
}

/// `--age-recipient age1…` (repeatable): the S3 copy is encrypted to these recipients.
struct AgeRecipientOptions: ParsableArguments {
  @Option(name: .customLong("age-recipient"), help: "Encrypt the S3 copy to this age recipient (age1…, from age-keygen), as <name>.zip.age; repeatable.")
  var recipients: [String] = []

  @Flag(name: .customLong("age-encrypt-local"), help: "Keep the local copy encrypted too (<name>.zip.age, the same bytes as the bucket's); needs --age-recipient.")
  var encryptLocal = false

  func parsed() throws(LifeboatError) -> [AgeRecipient] {
    var out: [AgeRecipient] = []
    for text in recipients { out.append(try AgeRecipient(parsing: text)) }
    return out
  }
}
