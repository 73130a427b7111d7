import Foundation

/// The target libFuzzer runs is named by `LIFEBOAT_FUZZ_TARGET` (fuzz/run picks one per run).
let selectedTarget: @Sendable ([UInt8]) -> Void = {
  let name = ProcessInfo.processInfo.environment["LIFEBOAT_FUZZ_TARGET"] ?? ""
  guard let target = FuzzTargets.all[name] else {
    FileHandle.standardError.write(Data("LIFEBOAT_FUZZ_TARGET must be one of \(FuzzTargets.all.keys.sorted())\n".utf8))
    exit(2)
  }
  return target
}()

#if FUZZING
  /// libFuzzer's entry point (built with `-sanitize=fuzzer,address -DFUZZING`).
  @_cdecl("LLVMFuzzerTestOneInput")
  public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selectedTarget(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
  }

  @_silgen_name("LLVMFuzzerRunDriver")
  func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
  ) -> CInt

  /// SwiftPM links an executable's entry as `<target>_main` (and points `main` at it), so
  /// libFuzzer's own `main` is not used: this one hands libFuzzer its driver and the callback.
  @_cdecl("lifeboat_fuzz_main")
  public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
  }
#else
  /// Without libFuzzer: `lifeboat-fuzz TARGET FILE...` runs each file through a target (the
  /// seed corpus and every crash found, replayed by the tests).
  @main
  struct Replay {
    static func main() {
      let arguments = CommandLine.arguments.dropFirst()
      guard let name = arguments.first, let target = FuzzTargets.all[name] else {
        print("usage: lifeboat-fuzz \(FuzzTargets.all.keys.sorted().joined(separator: "|")) FILE...")
        exit(2)
      }
      for path in arguments.dropFirst() {
        guard let data = FileManager.default.contents(atPath: path) else { print("cannot read \(path)"); exit(1) }
        target([UInt8](data))
      }
      print("\(name): \(arguments.count - 1) inputs, no crash")
    }
  }
#endif
