import Foundation
import Logging

/// Log level from `LIFEBOAT_LOG_LEVEL` (trace, debug, info, notice, warning, error); default info.
enum LogSettings {
  static var level: Logger.Level {
    ProcessInfo.processInfo.environment["LIFEBOAT_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
  }
}
