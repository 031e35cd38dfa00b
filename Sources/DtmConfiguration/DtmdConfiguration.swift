import Foundation
public import LMDBStore
import Logging
import Modes
public import PostgresStore
import Yams

/// dtmd's configuration: dtm's YAML keys (WIRE §6), each overridable by an environment variable
/// named by the upper snake case of its path (`MicroService.EndPoint` → `MICRO_SERVICE_END_POINT`).
/// dtmd and dtmctl read the same file, so both find the same store.
public struct DtmdConfiguration: Sendable, Equatable {
    /// `lmdb` (the embedded log, the default) or `postgres` (shared by several nodes).
    public var storeDriver = "lmdb"
    /// dtm's SQL keys (Host, Port, User, Password, Db, Schema), for Driver postgres.
    public var postgresStore = PostgresStoreConfiguration()
    /// SwiftDTM's key: the LMDB directory.
    public var storePath = "./data"
    /// SwiftDTM's key: `sync` (fsync every commit, the default) or `nosync` (tests only).
    public var storeDurability = "sync"
    public var transCronInterval: Double = 3
    public var timeoutToFail: Int64 = 35
    public var retryInterval: Int64 = 10
    public var requestTimeout: Int64 = 3
    public var httpPort = 36789
    public var grpcPort = 36790
    /// SwiftDTM's key: the address both ports listen on.
    public var listenAddress = "0.0.0.0"
    public var microServiceDriver = "dtm-driver-gozero"
    public var microServiceTarget = ""
    public var microServiceEndPoint = ""
    /// SwiftDTM's `Etcd` block, with go-zero's `discov.EtcdConf` names, for every etcd dtmd
    /// talks to (its registration and `etcd://` branch targets): `CACertFile` turns TLS on
    /// (`https://`), `CertFile` and `CertKeyFile` are the client certificate for an etcd run with
    /// `--client-cert-auth`, `InsecureSkipVerify` accepts any server certificate; `User` and
    /// `Pass` are the account for targets whose URL names none.
    public var etcdCACertFile = ""
    public var etcdCertFile = ""
    public var etcdCertKeyFile = ""
    public var etcdInsecureSkipVerify = false
    public var etcdUser = ""
    public var etcdPass = ""
    public var logLevel = "info"
    public var alertRetryLimit: Int64 = 3
    public var alertWebHook = ""
    /// SwiftDTM's `Auth.Tokens` (and those of `Auth.TokensFile`, one per line): set, every
    /// request needs one of them. Empty: no authentication, as in dtm.
    public var authTokens: [String] = []
    /// A file of tokens, one per line (`#` comments), read at start so they stay out of the config.
    public var authTokensFile = ""
    /// SwiftDTM's `BranchTargets.Allow` and `Deny`: CIDRs and host patterns restricting where
    /// dtmd may call (dtmd itself is always refused).
    public var branchTargetsAllow: [String] = []
    public var branchTargetsDeny: [String] = []
    /// SwiftDTM's `BranchTLS.CAFile` (PEM): CA certificates `https://` branches may be signed by,
    /// besides the system's roots.
    public var branchTLSCAFile = ""
    /// `BranchTLS.Grpc`: CIDRs and host patterns of the gRPC branch servers called over TLS
    /// (their certificates checked against `BranchTLS.CAFile`, else the system's roots).
    public var branchTLSGrpc: [String] = []
    /// SwiftDTM's `TLS.CertFile` and `TLS.KeyFile` (PEM): set, both ports speak TLS only.
    public var tlsCertFile = ""
    public var tlsKeyFile = ""
    /// `TLS.ClientCAFile` (PEM): set, clients must present a certificate it signed (mutual TLS).
    public var tlsClientCAFile = ""

    public init() {}

    /// A configuration problem that stops startup.
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Every key: its path, and how to read it into the configuration.
    private static let keys: [(path: String, read: @Sendable (inout DtmdConfiguration, String, Any) throws -> Void)] = [
        ("Store.Driver", { $0.storeDriver = try text($1, $2) }),
        ("Store.Path", { $0.storePath = try text($1, $2) }),
        ("Store.Durability", { $0.storeDurability = try text($1, $2) }),
        ("Store.SslMode", { $0.postgresStore.sslMode = try sslMode($1, $2) }),
        ("Store.SslRootCert", { $0.postgresStore.sslRootCert = try text($1, $2) }),
        ("Store.Host", { $0.postgresStore.host = try text($1, $2) }),
        ("Store.Port", { $0.postgresStore.port = try port($1, $2) }),
        ("Store.User", { $0.postgresStore.user = try text($1, $2) }),
        ("Store.Password", { $0.postgresStore.password = try text($1, $2) }),
        ("Store.Db", { $0.postgresStore.database = try text($1, $2) }),
        ("Store.Schema", { $0.postgresStore.schema = try text($1, $2) }),
        ("TransCronInterval", { $0.transCronInterval = try positiveSeconds($1, $2) }),
        ("TimeoutToFail", { $0.timeoutToFail = try positiveInteger($1, $2) }),
        ("RetryInterval", { $0.retryInterval = try positiveInteger($1, $2) }),
        ("RequestTimeout", { $0.requestTimeout = try positiveInteger($1, $2) }),
        ("HttpPort", { $0.httpPort = try port($1, $2) }),
        ("GrpcPort", { $0.grpcPort = try port($1, $2) }),
        ("ListenAddress", { $0.listenAddress = try text($1, $2) }),
        ("MicroService.Driver", { $0.microServiceDriver = try text($1, $2) }),
        ("MicroService.Target", { $0.microServiceTarget = try text($1, $2) }),
        ("MicroService.EndPoint", { $0.microServiceEndPoint = try text($1, $2) }),
        ("Etcd.CACertFile", { $0.etcdCACertFile = try text($1, $2) }),
        ("Etcd.CertFile", { $0.etcdCertFile = try text($1, $2) }),
        ("Etcd.CertKeyFile", { $0.etcdCertKeyFile = try text($1, $2) }),
        ("Etcd.InsecureSkipVerify", { $0.etcdInsecureSkipVerify = try flag($1, $2) }),
        ("Etcd.User", { $0.etcdUser = try text($1, $2) }),
        ("Etcd.Pass", { $0.etcdPass = try text($1, $2) }),
        ("LogLevel", { $0.logLevel = try text($1, $2) }),
        ("AlertRetryLimit", { $0.alertRetryLimit = try positiveInteger($1, $2) }),
        ("AlertWebHook", { $0.alertWebHook = try text($1, $2) }),
        ("Auth.Tokens", { $0.authTokens = try list($1, $2) }),
        ("Auth.TokensFile", { $0.authTokensFile = try text($1, $2) }),
        ("BranchTargets.Allow", { $0.branchTargetsAllow = try list($1, $2) }),
        ("BranchTargets.Deny", { $0.branchTargetsDeny = try list($1, $2) }),
        ("BranchTLS.CAFile", { $0.branchTLSCAFile = try text($1, $2) }),
        ("BranchTLS.Grpc", { $0.branchTLSGrpc = try list($1, $2) }),
        ("TLS.CertFile", { $0.tlsCertFile = try text($1, $2) }),
        ("TLS.KeyFile", { $0.tlsKeyFile = try text($1, $2) }),
        ("TLS.ClientCAFile", { $0.tlsClientCAFile = try text($1, $2) }),
    ]

    /// Reads `yaml` (nil = the embedded default), then the environment. Unknown keys are reported
    /// in `warnings`; invalid values throw.
    public static func load(yaml: String?, environment: [String: String], warnings: inout [String]) throws -> DtmdConfiguration {
        var configuration = DtmdConfiguration()
        var values = [String: Any]()
        if let yaml {
            let document: Any?
            do {
                document = try Yams.load(yaml: yaml)
            } catch {
                throw Invalid(description: "the config file is not valid YAML: \(error)")
            }
            if let document, !(document is [String: Any]) {
                throw Invalid(description: "the config file must be a YAML mapping of dtm's keys")
            }
            flatten(document as? [String: Any] ?? [:], prefix: "", into: &values)
        }
        let known = Set(keys.map(\.path))
        for path in values.keys.sorted() where !known.contains(path) {
            warnings.append("unknown config key '\(path)' ignored")
        }
        for key in keys {
            let variable = environmentName(key.path)
            if let override = environment[variable] {
                try key.read(&configuration, "\(key.path) (from \(variable))", override)
            } else if let value = values[key.path] {
                try key.read(&configuration, key.path, value)
            }
        }
        try configuration.validate(warnings: &warnings)
        return configuration
    }

    private mutating func validate(warnings: inout [String]) throws {
        guard ["lmdb", "postgres"].contains(storeDriver) else {
            throw Invalid(description: "Store.Driver '\(storeDriver)' is not supported; use lmdb (the embedded log) or postgres (several nodes)")
        }
        guard ["sync", "nosync"].contains(storeDurability) else {
            throw Invalid(description: "Store.Durability must be sync or nosync, got '\(storeDurability)'")
        }
        guard Logger.Level(rawValue: logLevel.lowercased()) != nil else {
            throw Invalid(description: "LogLevel '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        if !microServiceTarget.isEmpty {
            guard microServiceDriver == "dtm-driver-gozero" else {
                throw Invalid(description: "MicroService.Driver '\(microServiceDriver)' is not supported; use dtm-driver-gozero")
            }
            guard !microServiceEndPoint.isEmpty else {
                throw Invalid(description: "MicroService.EndPoint is required with MicroService.Target (the host:port dtmd registers)")
            }
        }
        for (key, value, bounds) in [("TimeoutToFail", timeoutToFail, RequestBounds.timeoutToFail),
                                     ("RetryInterval", retryInterval, RequestBounds.retryInterval),
                                     ("RequestTimeout", requestTimeout, RequestBounds.requestTimeout)] where !bounds.contains(value) {
            throw Invalid(description: "\(key) must be between 1 and \(bounds.upperBound) seconds, got \(value)")
        }
        if transCronInterval > Double(RequestBounds.day) {
            throw Invalid(description: "TransCronInterval must be between 0 and \(RequestBounds.day) seconds, got \(transCronInterval)")
        }
        if !authTokensFile.isEmpty {
            guard let text = try? String(contentsOfFile: authTokensFile, encoding: .utf8) else {
                throw Invalid(description: "Auth.TokensFile '\(authTokensFile)' cannot be read")
            }
            authTokens += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        if tlsCertFile.isEmpty != tlsKeyFile.isEmpty {
            throw Invalid(description: "TLS.CertFile and TLS.KeyFile go together: set both, or neither for plaintext")
        }
        if !tlsClientCAFile.isEmpty && tlsCertFile.isEmpty {
            throw Invalid(description: "TLS.ClientCAFile needs TLS.CertFile and TLS.KeyFile (mutual TLS is TLS first)")
        }
        if etcdCertFile.isEmpty != etcdCertKeyFile.isEmpty {
            throw Invalid(description: "Etcd.CertFile and Etcd.CertKeyFile go together: set both, or neither")
        }
        for (key, path) in [("TLS.CertFile", tlsCertFile), ("TLS.KeyFile", tlsKeyFile), ("TLS.ClientCAFile", tlsClientCAFile),
                            ("BranchTLS.CAFile", branchTLSCAFile), ("Etcd.CACertFile", etcdCACertFile),
                            ("Etcd.CertFile", etcdCertFile), ("Etcd.CertKeyFile", etcdCertKeyFile)]
        where !path.isEmpty && !FileManager.default.isReadableFile(atPath: path) {
            throw Invalid(description: "\(key) '\(path)' cannot be read")
        }
        if authTokens.contains(where: \.isEmpty) { throw Invalid(description: "Auth.Tokens must not hold an empty token") }
        if retryInterval < 10 { warnings.append("RetryInterval \(retryInterval) is below dtm's minimum of 10 seconds") }
        if timeoutToFail < retryInterval { warnings.append("TimeoutToFail \(timeoutToFail) is below RetryInterval \(retryInterval)") }
        if storeDurability == "nosync" { warnings.append("Store.Durability is nosync: acknowledged transactions can be lost in a machine crash") }
    }

    /// `MicroService.EndPoint` → `MICRO_SERVICE_END_POINT`.
    public static func environmentName(_ path: String) -> String {
        var name = ""
        for component in path.split(separator: ".") {
            if !name.isEmpty { name += "_" }
            var previous: Character?
            for character in component {
                if character.isUppercase, let previous, previous.isLowercase || previous.isNumber { name += "_" }
                name += character.uppercased()
                previous = character
            }
        }
        return name
    }

    private static func flatten(_ mapping: [String: Any], prefix: String, into values: inout [String: Any]) {
        for (key, value) in mapping {
            let path = prefix.isEmpty ? key : "\(prefix).\(key)"
            if let nested = value as? [String: Any] {
                flatten(nested, prefix: path, into: &values)
            } else {
                values[path] = value
            }
        }
    }

    /// A list of strings: a YAML sequence, or (from the environment) text separated by commas.
    private static func list(_ path: String, _ value: Any) throws -> [String] {
        switch value {
        case let items as [Any]: return try items.map { try text(path, $0) }
        case let string as String: return string.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        case is NSNull: return []
        default: throw Invalid(description: "\(path) must be a list of strings, got \(value)")
        }
    }

    /// true or false: a YAML boolean, or (from the environment) `true`/`false`.
    private static func flag(_ path: String, _ value: Any) throws -> Bool {
        switch value {
        case let bool as Bool: return bool
        case let string as String where ["true", "false"].contains(string.lowercased()): return string.lowercased() == "true"
        default: throw Invalid(description: "\(path) must be true or false, got '\(value)'")
        }
    }

    private static func text(_ path: String, _ value: Any) throws -> String {
        switch value {
        case let string as String: return string
        case let number as Int: return String(number)
        case is NSNull: return ""
        default: throw Invalid(description: "\(path) must be a string, got \(value)")
        }
    }

    private static func sslMode(_ path: String, _ value: Any) throws -> PostgresStoreConfiguration.TLSMode {
        let name = try text(path, value)
        guard let mode = PostgresStoreConfiguration.TLSMode(rawValue: name) else {
            throw Invalid(description: "\(path) must be one of \(PostgresStoreConfiguration.TLSMode.allCases.map(\.rawValue).joined(separator: ", ")), got '\(name)'")
        }
        return mode
    }

    private static func positiveSeconds(_ path: String, _ value: Any) throws -> Double {
        let seconds: Double? = switch value {
        case let number as Int: Double(number)
        case let number as Double: number
        case let string as String: Double(string)
        default: nil
        }
        guard let seconds, seconds > 0, seconds.isFinite else {
            throw Invalid(description: "\(path) must be a positive number of seconds, got '\(value)'")
        }
        return seconds
    }

    private static func positiveInteger(_ path: String, _ value: Any) throws -> Int64 {
        let number: Int64? = switch value {
        case let number as Int: Int64(number)
        case let string as String: Int64(string)
        default: nil
        }
        guard let number, number > 0 else {
            throw Invalid(description: "\(path) must be a positive whole number, got '\(value)'")
        }
        return number
    }

    private static func port(_ path: String, _ value: Any) throws -> Int {
        let number = try positiveInteger(path, value)
        guard number <= 65535 else { throw Invalid(description: "\(path) must be a port number (1-65535), got \(number)") }
        return Int(number)
    }
}

extension DtmdConfiguration {
    /// Reads the file at `path` (nil: the embedded defaults), then the environment.
    public static func load(file path: String?, warnings: inout [String]) throws -> DtmdConfiguration {
        let yaml: String?
        do {
            yaml = try path.map { try String(contentsOfFile: $0, encoding: .utf8) }
        } catch {
            throw Invalid(description: "cannot read config file: \(error)")
        }
        return try load(yaml: yaml, environment: ProcessInfo.processInfo.environment, warnings: &warnings)
    }

    /// The embedded store these keys name (Driver lmdb).
    public var lmdbStore: LMDBStoreConfiguration {
        var store = LMDBStoreConfiguration(path: storePath)
        store.durability = storeDurability == "nosync" ? .noSync : .sync
        return store
    }
}
