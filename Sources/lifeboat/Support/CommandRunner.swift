import ArgumentParser
import Dispatch
import Foundation
import LifeboatCore

/// Parses and runs a command; turns every error into one line on stderr and the documented
/// exit code. SIGINT and SIGTERM cancel the running command, which cleans up (no `.part` file
/// is left behind); a second signal exits at once.
enum CommandRunner {
  static func run(arguments: [String]) async -> Int32 {
    let command: any ParsableCommand
    do {
      command = try Lifeboat.parseAsRoot(arguments)
    } catch {
      return report(error)
    }
    let task = Task<Int32, Never> {
      do {
        if var asyncCommand = command as? any AsyncParsableCommand {
          try await asyncCommand.run()
        } else {
          var syncCommand = command
          try syncCommand.run()
        }
        return 0
      } catch {
        return report(error)
      }
    }
    let signals = SignalCanceller(task: task)
    let code = await task.value
    signals.stop()
    return code
  }

  static func report(_ error: any Error) -> Int32 {
    switch error {
    case let error as LifeboatError:
      printError("lifeboat: error: \(error.message)")
      return error.exitCode
    case let error as ExitCode:
      return error.rawValue
    case is CancellationError:
      printError("lifeboat: error: interrupted")
      return LifeboatError.Kind.failure.exitCode
    default:
      let code = Lifeboat.exitCode(for: error)
      if code == .success {
        print(Lifeboat.fullMessage(for: error))
        return 0
      }
      // ArgumentParser's validation errors (EX_USAGE, 64) are usage errors: exit code 2, one line.
      if code == .validationFailure {
        printError("lifeboat: error: \(usageLine(error))")
        return LifeboatError.Kind.usage.exitCode
      }
      let message = Lifeboat.fullMessage(for: error)
      if !message.isEmpty { printError(message) }
      return code.rawValue
    }
  }

  /// An ArgumentParser usage error in one line: what is wrong, and which `--help` to read
  /// (ArgumentParser prints three: the error, the usage line and where help is).
  static func usageLine(_ error: any Error) -> String {
    let first = Lifeboat.message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
    let message = first.hasPrefix("Error: ") ? String(first.dropFirst("Error: ".count)) : first
    let help = Lifeboat.fullMessage(for: error).split(separator: "\n").lazy.compactMap { line -> String? in
      guard let start = line.range(of: "See '"), let end = line[start.upperBound...].firstIndex(of: "'") else { return nil }
      return String(line[start.upperBound..<end])
    }.first ?? "lifeboat --help"
    return "\(message) (see `\(help)`)"
  }
}

func printError(_ line: String) {
  // What went to stdout first (a plan) stays before the error, also when both are redirected.
  fflush(nil)
  FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// What each interrupt signal means: the first cancels the command (which cleans up), a later
/// one quits at once. `timeout` and a kill of the process group send a second signal right
/// behind the first: within half a second it is the same interrupt.
struct InterruptCounter {
  enum Action: Equatable { case cancel, ignore, quit }
  private var first: ContinuousClock.Instant?

  mutating func register(at now: ContinuousClock.Instant) -> Action {
    guard let first else {
      self.first = now
      return .cancel
    }
    return now - first < .milliseconds(500) ? .ignore : .quit
  }
}

/// Cancels a task on SIGINT/SIGTERM.
///
/// The signals reach a handler that writes their number to a pipe, and a dispatch source reads
/// the pipe: a signal that comes before the source is registered (which libdispatch does later,
/// on its own thread) waits in the pipe. With a signal source and `SIG_IGN`, such a signal was
/// dropped: an agent told to stop 10-20 ms after its start kept running.
final class SignalCanceller: @unchecked Sendable {
  private var interrupts = InterruptCounter()
  private let reader: any DispatchSourceRead
  private let queue = DispatchQueue(label: "lifeboat.signals")
  /// Set by `stop()`, on `queue`: later signals are ignored.
  private var stopped = false

  init(task: Task<Int32, Never>) {
    var ends: [Int32] = [-1, -1]
    if pipe(&ends) == 0 {
      // Not inherited by child processes; a full pipe drops a signal instead of blocking.
      for end in ends {
        _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
      }
    }
    let readEnd = ends[0]
    reader = DispatchSource.makeReadSource(fileDescriptor: readEnd, queue: queue)
    reader.setEventHandler { [weak self] in
      guard let self else { return }
      var numbers = [UInt8](repeating: 0, count: 16)
      let count = read(readEnd, &numbers, numbers.count)
      for number in numbers.prefix(max(0, count)) where !self.stopped { self.received(Int32(number), task: task) }
    }
    reader.resume()
    SignalPipe.writeEnd = ends[1]
    for signalNumber in [SIGINT, SIGTERM] { signal(signalNumber, SignalPipe.handler) }
  }

  private func received(_ signalNumber: Int32, task: Task<Int32, Never>) {
    switch interrupts.register(at: .now) {
    case .ignore: return
    case .cancel: break
    case .quit:
      if Interruption.deferredReason != nil {
        printError("lifeboat: quit during a restore: run `lifeboat snapshot restore --recover --config ...` to finish or undo it")
      }
      // The cleanup did not get to run: at least no half-written file stays behind.
      AtomicFile.removeUnfinished()
      exit(130)
    }
    // SIGTERM comes from a service manager or `kill`, not a keyboard.
    let again = signalNumber == SIGTERM ? "a second signal quits at once" : "press Ctrl-C again to quit at once"
    if let reason = Interruption.deferredReason {
      printError("lifeboat: interrupt noted: \(reason) (\(again), then run --recover)")
    } else if signalNumber == SIGTERM {
      printError("lifeboat: stopping on SIGTERM, cleaning up (\(again))")
    } else {
      printError("lifeboat: interrupted, cleaning up (\(again))")
    }
    task.cancel()
  }

  /// The command has ended: a signal from now until the process exits is ignored (as the exit
  /// code is already decided). The handler and the pipe stay: a handler running at this moment
  /// must not write into a closed or reused descriptor.
  func stop() {
    queue.sync { stopped = true }
  }
}

/// The write end of `SignalCanceller`'s pipe, for the signal handler (which may use nothing else).
enum SignalPipe {
  nonisolated(unsafe) static var writeEnd: Int32 = -1

  /// Writes the signal's number to the pipe: `write` is async-signal-safe, and errno is kept.
  static let handler: @convention(c) (Int32) -> Void = { signalNumber in
    let saved = errno
    var byte = UInt8(truncatingIfNeeded: signalNumber)
    _ = write(SignalPipe.writeEnd, &byte, 1)
    errno = saved
  }
}
