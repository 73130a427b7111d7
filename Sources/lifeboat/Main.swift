import ArgumentParser
import Foundation
import LifeboatCore
import Logging

@main
struct Main {
  static func main() async {
    MemorySettings.apply()
    LoggingSystem.bootstrap { label in
      var handler = StreamLogHandler.standardError(label: label)
      handler.logLevel = LogSettings.level
      return handler
    }
    let code = await CommandRunner.run(arguments: Array(CommandLine.arguments.dropFirst()))
    exit(code)
  }
}
