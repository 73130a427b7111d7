import Foundation
import LifeboatCore

/// The loop of every schedule on an agent (recurring snapshots, drills): sleep to each slot,
/// run it, and run it again when the attempt asks for a retry and the retry comes before the
/// next slot. Runs on the caller's actor until cancelled.
struct SlotLoop: Sendable {
  let schedule: Schedule
  /// When the schedule began (interval schedules count from it; the first slot is one interval later).
  let started: Date
  let clock: @Sendable () -> Date

  /// What an attempt at a slot asks for next.
  enum Next: Sendable, Equatable {
    case done
    case retry(after: TimeInterval)
  }

  /// `attempt(slot, n)` runs the slot's `n`-th attempt (0 first); `announce` is told each time
  /// the next planned run changes.
  func run(
    isolation: isolated (any Actor)? = #isolation, announce: (Date) -> Void, attempt: (Date, Int) async -> Next
  ) async {
    var after = started
    while !Task.isCancelled {
      let slot = schedule.nextRun(after: after, start: started)
      announce(slot)
      guard await sleep(until: slot) else { return }
      var tries = 0
      while case .retry(let delay) = await attempt(slot, tries) {
        let retry = clock().addingTimeInterval(delay)
        guard retry < schedule.nextRun(after: slot, start: started) else { break }
        announce(retry)
        guard await sleep(until: retry) else { return }
        tries += 1
      }
      after = max(slot, clock())
      announce(schedule.nextRun(after: after, start: started))
    }
  }

  /// 5 s, 10 s, 20 s ... at most 5 minutes: the wait before a failed run's `tries`-th retry.
  static func backoff(_ tries: Int) -> TimeInterval { min(5 * pow(2, Double(min(tries, 10))), 300) }

  private func sleep(until date: Date) async -> Bool {
    let wait = date.timeIntervalSince(clock())
    if wait > 0 { try? await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
    return !Task.isCancelled
  }
}
