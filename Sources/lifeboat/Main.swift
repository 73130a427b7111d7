import ArgumentParser
import Foundation
import LifeboatCore
import Logging

@main
struct Main {
  static func main() async {
    _ = ProgressClock.start
    MemorySettings.apply()
    // A file-size limit (ulimit -f) then fails the write with EFBIG, reported and cleaned up
    // like a full disk, instead of killing the process with a .part file left behind.
    signal(SIGXFSZ, SIG_IGN)
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = LogSettings.level
      return handler
    }
    let code = await CommandRunner.run(arguments: Array(CommandLine.arguments.dropFirst()))
    exit(code)
  }
}
