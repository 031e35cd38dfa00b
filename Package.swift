// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "SwiftDTM",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "EventLog", targets: ["EventLog"]),
        .library(name: "Projections", targets: ["Projections"]),
        .executable(name: "dtm-bench", targets: ["DTMBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            path: "Sources/CLMDB",
            providers: [.apt(["liblmdb-dev"])]
        ),
        .target(
            name: "EventLog",
            dependencies: [
                "CLMDB",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Projections",
            dependencies: [
                "EventLog",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "DTMBench",
            dependencies: [
                "EventLog",
                "Projections",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/dtm-bench"
        ),
        .executableTarget(
            name: "CrashWriter",
            dependencies: ["EventLog"],
            path: "Tests/Support/CrashWriter"
        ),
        .testTarget(
            name: "EventLogTests",
            dependencies: ["EventLog", "CrashWriter"]
        ),
        .testTarget(
            name: "ProjectionsTests",
            dependencies: ["Projections", "EventLog"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
