import ArgumentParser
import LifeboatCore
import Testing

@testable import lifeboat

/// Parses `arguments` the way `lifeboat` does (`Lifeboat.parseAsRoot`, validation included) and
/// returns the command, which must be a `C`.
func parse<C: ParsableCommand>(
  _ arguments: [String], as type: C.Type, sourceLocation: SourceLocation = #_sourceLocation
) throws -> C {
  let command = try Lifeboat.parseAsRoot(arguments)
  return try #require(command as? C, "\(arguments) parsed as \(Swift.type(of: command))", sourceLocation: sourceLocation)
}

/// What the user gets for arguments that do not parse: the exit code `CommandRunner` returns for
/// the error and ArgumentParser's one-line message.
struct ParseFailure {
  var exitCode: Int32
  var message: String
}

/// The failure of parsing `arguments`, or nil (and a recorded issue) if they parse.
func parseFailure(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) -> ParseFailure? {
  do {
    let command = try Lifeboat.parseAsRoot(arguments)
    Issue.record("\(arguments) parsed as \(type(of: command)), expected an error", sourceLocation: sourceLocation)
    return nil
  } catch {
    return ParseFailure(exitCode: CommandRunner.report(error), message: Lifeboat.message(for: error))
  }
}

/// Expects `arguments` to be refused as a usage error (exit code 2 through `CommandRunner.report`)
/// whose message contains every string of `messageContains`.
func expectUsageError(
  _ arguments: [String], messageContains: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
) {
  guard let failure = parseFailure(arguments, sourceLocation: sourceLocation) else { return }
  #expect(failure.exitCode == 2, "\(arguments): \(failure.message)", sourceLocation: sourceLocation)
  for part in messageContains {
    #expect(failure.message.contains(part), "\(arguments): \(failure.message)", sourceLocation: sourceLocation)
  }
}

/// Runs a check a command makes after parsing (`connection()`, `configuration()`, `snapshotName`)
/// and expects a usage error: exit code 2 through `CommandRunner.report`, a message containing
/// every string of `messageContains`.
func expectLifeboatUsageError<R>(
  messageContains: [String] = [], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> R
) {
  do {
    let value = try body()
    Issue.record("expected a usage error, got \(value)", sourceLocation: sourceLocation)
  } catch let error as LifeboatError {
    #expect(error.kind == .usage, "\(error)", sourceLocation: sourceLocation)
    #expect(CommandRunner.report(error) == 2, sourceLocation: sourceLocation)
    for part in messageContains {
      #expect(error.message.contains(part), "\(error.message)", sourceLocation: sourceLocation)
    }
  } catch {
    Issue.record("expected a LifeboatError, got \(error)", sourceLocation: sourceLocation)
  }
}
