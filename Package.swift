// swift-tools-version:6.1
import PackageDescription

/// Every target: existentials spelled `any`, imports internal unless a type leaks into a public API.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "SwiftDTM",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "EventLog", targets: ["EventLog"]),
        .library(name: "Projections", targets: ["Projections"]),
        .library(name: "Modes", targets: ["Modes"]),
        .library(name: "TransactionStore", targets: ["TransactionStore"]),
        .library(name: "LMDBStore", targets: ["LMDBStore"]),
        .library(name: "MemoryStore", targets: ["MemoryStore"]),
        .library(name: "PostgresStore", targets: ["PostgresStore"]),
        .library(name: "Coordinator", targets: ["Coordinator"]),
        .library(name: "GrpcGateway", targets: ["GrpcGateway"]),
        .library(name: "HttpGateway", targets: ["HttpGateway"]),
        .library(name: "DTMWire", targets: ["DTMWire"]),
        .library(name: "DTMDiscovery", targets: ["DTMDiscovery"]),
        .executable(name: "dtmd", targets: ["dtmd"]),
        .executable(name: "dtm-bench", targets: ["DTMBench"]),
        .executable(name: "dtmctl", targets: ["DTMCtl"]),
        .library(name: "DTMClient", targets: ["DTMClient"]),
        .library(name: "DTMClientTesting", targets: ["DTMClientTesting"]),
        .library(name: "DTMClientHummingbird", targets: ["DTMClientHummingbird"]),
        .library(name: "DTMBarrier", targets: ["DTMBarrier"]),
        .library(name: "DTMBarrierPostgres", targets: ["DTMBarrierPostgres"]),
        .library(name: "DTMBarrierSQLite", targets: ["DTMBarrierSQLite"]),
        .executable(name: "trans-service", targets: ["TransService"]),
        .executable(name: "trans-app", targets: ["TransApp"]),
        .executable(name: "barrier-transfer", targets: ["BarrierTransfer"]),
        .executable(name: "workflow-transfer", targets: ["WorkflowTransfer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // ── The wire and the SDK: nothing here links the server ──────────────────────────────
        .target(
            name: "DTMWire",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DTMDiscovery",
            dependencies: [
                "DTMWire",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DTMClient",
            dependencies: [
                "DTMWire",
                "DTMDiscovery",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DTMClientHummingbird",
            dependencies: [
                "DTMClient", "DTMWire",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: strictSettings
        ),
        // The barrier: the protocol and rules, then one module per database, so a service links
        // only the database driver it uses.
        .target(
            name: "DTMBarrier",
            dependencies: ["DTMClient", "DTMWire"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DTMBarrierPostgres",
            dependencies: [
                "DTMBarrier",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DTMBarrierSQLite",
            dependencies: ["DTMBarrier", .product(name: "SQLiteNIO", package: "sqlite-nio")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DTMClientTesting",
            dependencies: [
                "DTMClient", "DTMWire", "Coordinator", "Modes", "Invokers", "MemoryStore", "TransactionStore", "GrpcGateway",
                "Projections",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
            ],
            swiftSettings: strictSettings
        ),
        // ── The server ─────────────────────────────────────────────────────────────────────
        .systemLibrary(
            name: "CLMDB",
            path: "Sources/CLMDB",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .target(name: "ByteIdentity", swiftSettings: strictSettings),
        .target(
            name: "EventLog",
            dependencies: [
                "ByteIdentity",
                "CLMDB",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Projections",
            dependencies: [
                "ByteIdentity",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TransactionStore",
            dependencies: ["Projections", .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "PostgresStore",
            dependencies: [
                "ByteIdentity", "DTMWire", "Projections", "TransactionStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "MemoryStore",
            dependencies: ["ByteIdentity", "Projections", "TransactionStore"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "LMDBStore",
            dependencies: [
                "ByteIdentity", "DTMWire", "EventLog", "Projections", "TransactionStore",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Modes",
            dependencies: ["ByteIdentity", "DTMWire", "Projections", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Invokers",
            dependencies: [
                "DTMWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Coordinator",
            dependencies: [
                "ByteIdentity",
                "DTMWire",
                "Modes",
                "Projections",
                "TransactionStore",
                "Invokers",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "GrpcGateway",
            dependencies: [
                "ByteIdentity",
                "DTMWire",
                "Modes",
                "Coordinator",
                "Projections",
                "TransactionStore",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HttpGateway",
            dependencies: [
                "DTMWire",
                "Modes",
                "Coordinator",
                "Projections",
                "TransactionStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "AdminWeb",
            dependencies: [
                "Coordinator", "DTMWire", "Projections", "TransactionStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "DtmConfiguration",
            dependencies: [
                "Modes",
                "LMDBStore",
                "PostgresStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "dtmd",
            dependencies: [
                "DtmConfiguration",
                "DTMWire",
                "DTMDiscovery",
                "LMDBStore",
                "PostgresStore",
                "TransactionStore",
                "Projections",
                "Modes",
                "Invokers",
                "Coordinator",
                "GrpcGateway",
                "HttpGateway",
                "AdminWeb",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCertificateReloading", package: "swift-nio-extras"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        // ── Tools ──────────────────────────────────────────────────────────────────────────
        .executableTarget(
            name: "DTMBench",
            dependencies: [
                "DTMWire",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                "Invokers",
                "EventLog",
                "LMDBStore",
                "Projections",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            path: "tools/dtm-bench",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "DTMCtl",
            dependencies: [
                "ByteIdentity",
                "DtmConfiguration",
                "PostgresStore",
                "TransactionStore",
                "EventLog",
                "LMDBStore",
                "Projections",
                "Modes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "tools/dtmctl",
            swiftSettings: strictSettings
        ),
        // ── The go-zero example: a Swift service and app that only link the SDK ───────────────
        .target(
            name: "TransProtocol",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Examples/gozero/TransProtocol",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "TransService",
            dependencies: [
                "TransProtocol", "DTMClient", "DTMDiscovery", "DTMWire",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/gozero/TransService",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "TransApp",
            dependencies: [
                "TransProtocol", "DTMClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/gozero/TransApp",
            swiftSettings: strictSettings
        ),
        // ── The SDK's examples (run by the test command) ───────────────────────────────────────
        .executableTarget(
            name: "BarrierTransfer",
            dependencies: [
                "DTMClient", "DTMClientHummingbird", "DTMBarrier", "DTMBarrierSQLite", "DTMDiscovery", "DTMWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ],
            path: "Examples/barrier-transfer",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "WorkflowTransfer",
            dependencies: [
                "DTMClient", "DTMClientHummingbird", "DTMWire",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ],
            path: "Examples/workflow-transfer",
            swiftSettings: strictSettings
        ),
        // ── Tests ──────────────────────────────────────────────────────────────────────────
        .executableTarget(
            name: "CrashWriter",
            dependencies: ["EventLog"],
            path: "Tests/Support/CrashWriter",
            swiftSettings: strictSettings
        ),
        .target(
            name: "TransactionFixtures",
            dependencies: ["Projections"],
            path: "Tests/Support/TransactionFixtures",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "EventLogTests",
            dependencies: ["EventLog", "CrashWriter"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ProjectionsTests",
            dependencies: ["Projections", "TransactionFixtures"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LMDBStoreTests",
            dependencies: [
                "TransactionFixtures", "LMDBStore", "MemoryStore", "PostgresStore", "TransactionStore", "Projections", "EventLog", "ByteIdentity",
                "DTMWire",
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DTMClientHummingbirdTests",
            dependencies: [
                "DTMClientHummingbird", "DTMClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DTMBarrierTests",
            dependencies: [
                "DTMBarrier", "DTMBarrierPostgres", "DTMBarrierSQLite", "DTMClient", "DTMClientTesting", "DTMWire",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "AdminWebTests",
            dependencies: ["AdminWeb", "Projections", "TransactionStore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PostgresStoreTests",
            dependencies: ["PostgresStore", "DTMWire", "Projections"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "DTMClientTests",
            dependencies: [
                "DTMClient", "DTMClientTesting", "DTMWire", "DTMDiscovery",
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "CoordinatorTests",
            dependencies: [
                "Coordinator", "Modes", "Invokers", "DTMWire", "Projections", "EventLog", "LMDBStore", "MemoryStore", "TransactionStore", "ByteIdentity", "GrpcGateway",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
