import Foundation
import LifeboatCore
import Testing

@Suite struct SnapshotNameTests {
  @Test(arguments: ["../x", "a/b", "", ".", "..", "x\\y", "bad\u{0}name", "line\nbreak", "-flag", "x.zip", "x.part"])
  func rejectsNamesThatAreNotOneFileName(_ raw: String) {
    #expect(throws: LifeboatError.self) { try SnapshotName(raw) }
    do {
      _ = try SnapshotName(raw)
    } catch {
      #expect(error.kind == .usage)
      #expect(!error.message.contains("\n"), "the error is one line")
    }
  }

  @Test(arguments: ["rke_etcd_snapshot_2020-10-15T16:47:24+02:00", "2020-10-15T14:53:26Z_etcd", "before-upgrade", "myname1"])
  func acceptsRKENames(_ raw: String) throws {
    let name = try SnapshotName(raw)
    #expect(name.archiveFileName == raw + ".zip")
    #expect(name.manifestFileName == raw + ".manifest.json")
    #expect(name.snapshotEntryPath == "/backup/" + raw)
    #expect(name.stateEntryPath == "/etc/kubernetes/" + raw + ".rkestate")
  }

  /// `café` composed (NFC) is a name; the same letters decomposed (NFD) would be equal in Swift
  /// and a different file on disk: refused, naming the composed form.
  @Test func namesMustBeComposed() throws {
    let composed = "caf\u{E9}-backup"
    let decomposed = "cafe\u{301}-backup"
    #expect(composed == decomposed, "Swift calls them equal")
    #expect(!composed.utf8.elementsEqual(decomposed.utf8), "their bytes differ")
    #expect(try SnapshotName(composed).value == composed)
    do {
      _ = try SnapshotName(decomposed)
      Issue.record("a decomposed name was accepted")
    } catch {
      #expect(error.kind == .usage)
      #expect(error.message.contains("NFC"))
    }
  }

  @Test func rejectsOverlongNames() {
    #expect(throws: LifeboatError.self) { try SnapshotName(String(repeating: "a", count: 201)) }
    #expect(throws: Never.self) { try SnapshotName(String(repeating: "a", count: 200)) }
  }

  @Test func lookupDropsZipExtension() throws {
    #expect(try SnapshotName.lookup("snap.zip").value == "snap")
    #expect(try SnapshotName.lookup("snap").value == "snap")
  }

  @Test func archiveKeysGiveTheirNameOtherKeysNone() throws {
    #expect(SnapshotName.archiveStem(of: "snap.zip") == "snap")
    #expect(SnapshotName.archiveStem(of: "snap.zip.age") == "snap")
    #expect(SnapshotName.archiveStem(of: "snap.manifest.json") == nil)
    #expect(SnapshotName.archiveStem(of: "snap") == nil)
    #expect(try SnapshotName("snap").archiveFileNames == ["snap.zip", "snap.zip.age"])
  }

  @Test func oneTimeNameIsRFC3339LocalTimeWithOffset() {
    let date = Date(timeIntervalSince1970: 1_602_773_244)  // 2020-10-15T14:47:24Z
    let berlin = SnapshotNaming(timeZone: TimeZone(identifier: "Europe/Berlin")!)
    #expect(berlin.oneTimeName(at: date).value == "rke_etcd_snapshot_2020-10-15T16:47:24+02:00")
    let utc = SnapshotNaming(timeZone: TimeZone(identifier: "UTC")!)
    #expect(utc.oneTimeName(at: date).value == "rke_etcd_snapshot_2020-10-15T14:47:24Z")
    let newYork = SnapshotNaming(timeZone: TimeZone(identifier: "America/New_York")!)
    #expect(newYork.oneTimeName(at: date).value == "rke_etcd_snapshot_2020-10-15T10:47:24-04:00")
  }

  @Test func safeTimestampReplacesColons() {
    let date = Date(timeIntervalSince1970: 1_602_773_606)  // 2020-10-15T14:53:26Z
    let safe = SnapshotNaming(safeTimestamp: true, timeZone: TimeZone(identifier: "Europe/Berlin")!)
    #expect(safe.recurringName(at: date).value == "2020-10-15T14-53-26Z_etcd")
    #expect(safe.oneTimeName(at: date).value == "rke_etcd_snapshot_2020-10-15T16-53-26+02-00")
    #expect(SnapshotNaming().recurringName(at: date).value == "2020-10-15T14:53:26Z_etcd")
  }
}
