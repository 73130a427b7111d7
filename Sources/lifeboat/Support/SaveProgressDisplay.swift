import Foundation
import LifeboatEngine
import Synchronization

/// Shows a save's progress: a live line on a terminal, a log line every 10 seconds otherwise.
final class SaveProgressDisplay: Sendable {
  private struct State {
    var started = ContinuousClock.now
    var lastDraw = ContinuousClock.now - .seconds(60)
    var member = ""
    var drewLine = false
  }

  private let state = Mutex(State())
  private let interactive = isatty(STDERR_FILENO) == 1

  func handle(_ event: SaveEvent) {
    switch event {
    case .memberSelected(let member, let name):
      let others = member.probes.filter { !$0.isHealthy }.map { "\($0.endpoint): \($0.problem ?? "")" }
      var line = "lifeboat: saving \(name) from \(member.name) (\(member.endpoint))"
      if !others.isEmpty { line += "; skipped: " + others.joined(separator: "; ") }
      printError(line)
      state.withLock {
        $0.member = member.name
        $0.started = .now
      }
    case .progress(let received, let expected):
      let now = ContinuousClock.now
      let line: String? = state.withLock { s in
        let interval: Duration = interactive ? .milliseconds(200) : .seconds(10)
        guard now - s.lastDraw >= interval else { return nil }
        s.lastDraw = now
        s.drewLine = interactive
        let elapsed = now - s.started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = seconds > 0 ? UInt64(Double(received) / seconds) : 0
        let total = expected > 0 ? " of ~\(formatBytes(expected))" : ""
        return "\(s.member): \(formatBytes(received))\(total), \(formatBytes(rate))/s"
      }
      if let line {
        if interactive {
          FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
        } else {
          printError("lifeboat: " + line)
        }
      }
    case .archived:
      finish()
    case .uploaded:
      break
    }
  }

  /// Ends the live line, if one is shown.
  func finish() {
    let drew = state.withLock { s in
      defer { s.drewLine = false }
      return s.drewLine
    }
    if drew { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
  }
}
