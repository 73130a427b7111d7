// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
  .enableUpcomingFeature("ExistentialAny"),
  // Named failpoints (LifeboatCore/Support/Failpoints.swift) exist in debug builds only.
  .define("LIFEBOAT_FAILPOINTS", .when(configuration: .debug)),
]

let package = Package(
  name: "Lifeboat",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "lifeboat", targets: ["lifeboat"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
    .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
    .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    .package(url: "https://github.com/CoreOffice/XMLCoder", from: "0.18.2"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
    .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
  ],
  targets: [
    // Generated protobuf + gRPC code for the subset of etcd's v3 API that Lifeboat uses.
    .target(
      name: "EtcdAPI",
      dependencies: [
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
      ]
    ),
    .target(
      name: "EtcdClient",
      dependencies: [
        "EtcdAPI",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    // ISA-L (Debian libisal-dev): Deflate and the CRC32 of zip.
    .systemLibrary(name: "CISAL", pkgConfig: "libisal", providers: [.apt(["libisal-dev"])]),
    // libdeflate (Debian libdeflate-dev): `--compression best`, chunk by chunk on every core.
    .systemLibrary(name: "CLibdeflate", pkgConfig: "libdeflate", providers: [.apt(["libdeflate-dev"])]),
    // zlib (Debian zlib1g-dev): the tests' independent Deflate and CRC-32 reference.
    .systemLibrary(name: "SystemZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    .target(
      name: "LifeboatCore",
      dependencies: [
        "CISAL", "CLibdeflate",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Yams", package: "Yams"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "SnapshotStores",
      dependencies: [
        "LifeboatCore",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "XMLCoder", package: "XMLCoder"),
      ],
      swiftSettings: strict
    ),
    .target(
      name: "LifeboatEngine",
      dependencies: [
        "LifeboatCore", "EtcdClient", "SnapshotStores",
        .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
        .product(name: "Subprocess", package: "swift-subprocess"),
        .product(name: "SystemPackage", package: "swift-system"),
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "SwiftASN1", package: "swift-asn1"),
        .product(name: "Logging", package: "swift-log"),
        // The Docker Engine API over its unix socket (the docker runtime).
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      swiftSettings: strict
    ),
    // The node agent's HTTP API (Hummingbird, mutual TLS) over a LocalNode, and its client, RemoteNode.
    .target(
      name: "LifeboatAgent",
      dependencies: [
        "LifeboatEngine", "LifeboatCore", "SnapshotStores",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HummingbirdTLS", package: "hummingbird"),
        .product(name: "HTTPTypes", package: "swift-http-types"),
        .product(name: "Metrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
        .product(name: "X509", package: "swift-certificates"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    .executableTarget(
      name: "lifeboat",
      dependencies: [
        "LifeboatEngine", "LifeboatCore", "EtcdClient", "SnapshotStores", "LifeboatAgent",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    // Fuzz targets over everything that reads untrusted bytes: a corpus replay tool in normal
    // builds, libFuzzer's entry point with `-DFUZZING -sanitize=fuzzer,address` (fuzz/run).
    .executableTarget(
      name: "lifeboat-fuzz",
      dependencies: ["LifeboatCore", "LifeboatEngine", "SnapshotStores"],
      swiftSettings: strict
    ),
    .target(
      name: "TestSupport",
      dependencies: [
        "LifeboatEngine", "LifeboatCore", "EtcdClient", "EtcdAPI", "SnapshotStores", "LifeboatAgent",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
        .product(name: "Logging", package: "swift-log"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "LifeboatCoreTests",
      dependencies: [
        "LifeboatCore", "LifeboatEngine", "SnapshotStores", "TestSupport", "SystemZlib",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "ZIPFoundation", package: "ZIPFoundation"),
      ],
      swiftSettings: strict
    ),
    // The cluster workflows over FakeNodes: no etcd, no agents.
    .testTarget(
      name: "LifeboatEngineTests",
      dependencies: [
        "LifeboatEngine", "LifeboatCore", "TestSupport", "lifeboat-fuzz",
        // mvccpb.KeyValue as SwiftProtobuf writes it: the oracle of SnapshotObjects.keyField.
        "EtcdAPI", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "SnapshotStoresTests",
      dependencies: [
        "SnapshotStores", "LifeboatCore", "LifeboatEngine", "TestSupport",
        .product(name: "Crypto", package: "swift-crypto"),
      ],
      swiftSettings: strict
    ),
    .testTarget(
      name: "LifeboatIntegrationTests",
      dependencies: [
        "LifeboatEngine", "LifeboatCore", "EtcdClient", "SnapshotStores", "TestSupport", "LifeboatAgent", "lifeboat",
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "NIOSSL", package: "swift-nio-ssl"),
      ],
      swiftSettings: strict
    ),
    .testTarget(name: "LifeboatCLITests", dependencies: ["lifeboat", "LifeboatCore", .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: strict),
  ]
)
