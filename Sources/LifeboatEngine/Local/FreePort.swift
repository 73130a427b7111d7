#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import LifeboatCore

/// Asks the kernel for a free TCP port on `address` (bind to port 0, read it back, close).
public func freeTCPPort(on address: String) throws(LifeboatError) -> Int {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { throw .failure("socket: \(errnoDescription(errno))") }
  defer { close(fd) }
  var addr = sockaddr_in()
  addr.sin_family = sa_family_t(AF_INET)
  addr.sin_port = 0
  guard inet_pton(AF_INET, address, &addr.sin_addr) == 1 else { throw .usage("not an IPv4 address: \(address)") }
  let bound = withUnsafePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
  }
  guard bound == 0 else { throw .failure("cannot bind \(address): \(errnoDescription(errno))") }
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let named = withUnsafeMutablePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
  }
  guard named == 0 else { throw .failure("getsockname: \(errnoDescription(errno))") }
  return Int(UInt16(bigEndian: addr.sin_port))
}
