import CLMDB
public import Foundation

/// An error reported by LMDB, with the return code and LMDB's own description.
public struct LMDBError: Error, CustomStringConvertible, Equatable {
    /// LMDB's return code (`MDB_MAP_FULL`, `ENOENT`, …).
    public let code: Int32
    /// What was being done when LMDB failed.
    public let operation: String

    public var description: String {
        let text = mdb_strerror(code).map { String(cString: $0) } ?? "error \(code)"
        return "LMDB \(operation) failed: \(text) (\(code))"
    }

    /// True when the write transaction ran out of map space and can be retried after growing the map.
    public var isMapFull: Bool { code == MDB_MAP_FULL }

    /// True when the file system refused to store more: disk full (ENOSPC), quota (EDQUOT) or
    /// file size limit (EFBIG).
    public var isOutOfSpace: Bool { code == ENOSPC || code == EDQUOT || code == EFBIG }
}

/// A data file that cannot be an intact LMDB environment.
public enum DataFileError: Error, Equatable, CustomStringConvertible {
    /// The file is shorter than the pages its own header says are in use.
    case truncated(path: String, bytes: Int, needed: Int)
    /// The file exists but holds nothing.
    case empty(path: String)

    public var description: String {
        switch self {
        case let .truncated(path, bytes, needed):
            return "\(path) is \(bytes) bytes, shorter than the \(needed) bytes of the log it holds: the file was truncated or is damaged"
        case let .empty(path):
            return "\(path) exists but is empty (0 bytes): that is damage, not a new log; restore it from a backup, or remove it to start a new log"
        }
    }
}

/// The size of the file at `path` in bytes; nil when there is none.
func fileSize(_ path: String) -> Int? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return Int(info.st_size)
}

@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
    if code != MDB_SUCCESS { throw LMDBError(code: code, operation: operation()) }
}

/// A named database inside an LMDB environment. The handle stays valid for the environment's lifetime.
public struct LMDBDatabase: Sendable, Hashable {
    let handle: MDB_dbi
    /// The database's name inside the environment.
    public let name: String
}

/// Options for opening an LMDB environment.
public struct LMDBOptions: Sendable {
    /// Open read-only: another process (the writer) may be using the environment at the same time.
    public var readOnly = false
    /// Skip fsync on commit. Acknowledged writes can be lost on power failure; for tests and benchmarks.
    public var noSync = false
    /// The starting map size in bytes; the map grows when it is full.
    public var initialMapSize = 64 << 20
    /// How many named databases the environment may hold.
    public var maxDatabases: UInt32 = 16
    /// How many concurrent readers (threads or processes) the lock table holds.
    public var maxReaders: UInt32 = 126
    /// Open an existing `data.mdb` of 0 bytes as a new, empty environment. Off by default: an
    /// existing but empty data file is damage (a failed copy, a truncation), not a new log.
    public var acceptEmptyDataFile = false

    public init() {}
}

/// An LMDB environment (one directory with `data.mdb` and `lock.mdb`).
///
/// Read transactions may run on any thread (`MDB_NOTLS`). Write transactions are only ever run by one
/// thread at a time — the `EventLog` writer thread — and never across an `await`.
/// Growing the map needs every read transaction of this process closed, so reads take a shared lock
/// and growth takes it exclusively.
public final class LMDBEnvironment: @unchecked Sendable {
    let env: OpaquePointer
    /// The directory holding the environment.
    public let path: String
    /// The options the environment was opened with.
    public let options: LMDBOptions
    private var mapLock = pthread_rwlock_t()

    /// Opens (or creates, unless read-only) the environment in the directory `path`.
    public init(path: String, options: LMDBOptions = LMDBOptions()) throws {
        self.path = path
        self.options = options
        let dataFile = path + "/data.mdb"
        if !options.readOnly {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } else if !FileManager.default.fileExists(atPath: dataFile) {
            throw LMDBError(code: ENOENT, operation: "open of \(dataFile) (no event log there)")
        }
        if fileSize(dataFile) == 0, !(options.acceptEmptyDataFile && !options.readOnly) {
            throw DataFileError.empty(path: dataFile)
        }
        var envPointer: OpaquePointer?
        try check(mdb_env_create(&envPointer), "env create")
        guard let envPointer else { throw LMDBError(code: ENOMEM, operation: "env create") }
        env = envPointer
        pthread_rwlock_init(&mapLock, nil)
        // Fully initialized from here: when a step below throws, deinit closes the environment.
        try check(mdb_env_set_maxdbs(env, MDB_dbi(options.maxDatabases)), "set maxdbs")
        try check(mdb_env_set_maxreaders(env, options.maxReaders), "set maxreaders")
        try check(mdb_env_set_mapsize(env, options.initialMapSize), "set mapsize")
        var flags = UInt32(MDB_NOTLS)
        if options.readOnly { flags |= UInt32(MDB_RDONLY) }
        if options.noSync { flags |= UInt32(MDB_NOSYNC) }
        try check(mdb_env_open(env, path, flags, 0o644), "open of \(path)")
        try checkFileHoldsMap(dataFile)
    }

    /// LMDB maps the data file and reads pages through the map: a page past the end of a
    /// truncated file kills the process with SIGBUS. Refuse such a file before reading anything.
    private func checkFileHoldsMap(_ dataFile: String) throws {
        var info = MDB_envinfo()
        var stat = MDB_stat()
        try check(mdb_env_info(env, &info), "info of \(path)")
        try check(mdb_env_stat(env, &stat), "stat of \(path)")
        let pages = Int(clamping: info.me_last_pgno).addingReportingOverflow(1)
        let needed = pages.partialValue.multipliedReportingOverflow(by: Int(stat.ms_psize))
        guard let size = fileSize(dataFile) else { return }  // created by mdb_env_open only on first write
        if pages.overflow || needed.overflow || size < needed.partialValue {
            throw DataFileError.truncated(path: dataFile, bytes: size, needed: needed.overflow ? .max : needed.partialValue)
        }
    }
    deinit {
        mdb_env_close(env)
        pthread_rwlock_destroy(&mapLock)
    }

    /// The current map size in bytes.
    public var mapSize: Int {
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        return info.me_mapsize
    }

    /// Flushes written data to disk (needed in no-sync mode before a clean shutdown).
    public func sync() throws {
        try check(mdb_env_sync(env, 1), "sync")
    }

    /// Opens a named database, creating it when the environment is writable.
    /// Call before the environment's writer starts (it runs a short write transaction on this thread).
    public func openDatabase(_ name: String, duplicateSortedFixed: Bool = false) throws -> LMDBDatabase {
        var flags: UInt32 = 0
        if duplicateSortedFixed { flags |= UInt32(MDB_DUPSORT | MDB_DUPFIXED) }
        if options.readOnly {
            // A handle opened in a read transaction is shared only once that transaction commits.
            var txnPointer: OpaquePointer?
            try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txnPointer), "begin of read transaction")
            guard let txnPointer else { throw LMDBError(code: EINVAL, operation: "begin of read transaction") }
            var dbi: MDB_dbi = 0
            let code = mdb_dbi_open(txnPointer, name, flags, &dbi)
            guard code == MDB_SUCCESS else {
                mdb_txn_abort(txnPointer)
                throw LMDBError(code: code, operation: "open of database \(name)")
            }
            try check(mdb_txn_commit(txnPointer), "commit of read transaction")
            return LMDBDatabase(handle: dbi, name: name)
        }
        flags |= UInt32(MDB_CREATE)
        return try withWriteTransaction { txn in
            var dbi: MDB_dbi = 0
            try check(mdb_dbi_open(txn.txn, name, flags, &dbi), "open of database \(name)")
            return LMDBDatabase(handle: dbi, name: name)
        }
    }

    /// Runs `body` in a read transaction that sees a consistent snapshot.
    public func withReadTransaction<T>(_ body: (borrowing LMDBReadTransaction) throws -> T) throws -> T {
        pthread_rwlock_rdlock(&mapLock)
        defer { pthread_rwlock_unlock(&mapLock) }
        var txnPointer: OpaquePointer?
        var code = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txnPointer)
        if code == MDB_MAP_RESIZED {
            // Another process grew the map: adopt its size, then retry.
            mdb_env_set_mapsize(env, 0)
            code = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txnPointer)
        }
        try check(code, "begin of read transaction")
        guard let txnPointer else { throw LMDBError(code: EINVAL, operation: "begin of read transaction") }
        defer { mdb_txn_abort(txnPointer) }
        return try body(LMDBReadTransaction(txn: txnPointer))
    }

    /// Runs `body` in a write transaction and commits it. The caller must be the only writer;
    /// the transaction begins and commits on the calling thread. Aborts when `body` throws.
    public func withWriteTransaction<T>(_ body: (borrowing LMDBWriteTransaction) throws -> T) throws -> T {
        var txnPointer: OpaquePointer?
        var code = mdb_txn_begin(env, nil, 0, &txnPointer)
        if code == MDB_MAP_RESIZED {
            growMap(to: 0)
            code = mdb_txn_begin(env, nil, 0, &txnPointer)
        }
        try check(code, "begin of write transaction")
        guard let txnPointer else { throw LMDBError(code: EINVAL, operation: "begin of write transaction") }
        let result: T
        do {
            result = try body(LMDBWriteTransaction(txn: txnPointer))
        } catch {
            mdb_txn_abort(txnPointer)
            throw error
        }
        try check(mdb_txn_commit(txnPointer), "commit")
        return result
    }

    /// Grows the map (0 = adopt the size another process set). Waits until no read transaction of
    /// this process is open. Call only from the writer, outside a write transaction.
    func growMap(to size: Int) {
        pthread_rwlock_wrlock(&mapLock)
        defer { pthread_rwlock_unlock(&mapLock) }
        mdb_env_set_mapsize(env, size)
    }
}

/// A read-only view of the environment, valid inside `withReadTransaction`.
public struct LMDBReadTransaction: ~Copyable {
    let txn: OpaquePointer

    /// The value stored under `key`, handed to `body` without copying; nil when absent.
    public func withValue<T>(
        _ database: LMDBDatabase, key: some ContiguousBytes,
        _ body: (UnsafeRawBufferPointer?) throws -> T
    ) throws -> T {
        try lookup(txn, database, key: key, body)
    }

    /// The value stored under `key`, copied; nil when absent.
    public func value(_ database: LMDBDatabase, key: some ContiguousBytes) throws -> [UInt8]? {
        try withValue(database, key: key) { $0.map { Array($0) } }
    }

    /// Visits entries with keys ≥ `start` (or from the first key) in key order until `body` returns false.
    /// Duplicate values of a key are visited one by one.
    public func scan(
        _ database: LMDBDatabase, from start: [UInt8]? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try scanEntries(txn, database, from: start, reverse: false, body)
    }

    /// Visits entries in descending key order, starting at the last key ≤ `start` (or the last key).
    public func scanBackward(
        _ database: LMDBDatabase, from start: [UInt8]? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try scanEntries(txn, database, from: start, reverse: true, body)
    }

    /// The number of entries in the database.
    public func count(_ database: LMDBDatabase) throws -> Int {
        try entryCount(txn, database)
    }
}

/// A write transaction, valid inside `withWriteTransaction` on the writer thread.
public struct LMDBWriteTransaction: ~Copyable {
    let txn: OpaquePointer

    /// See `LMDBReadTransaction.withValue`.
    public func withValue<T>(
        _ database: LMDBDatabase, key: some ContiguousBytes,
        _ body: (UnsafeRawBufferPointer?) throws -> T
    ) throws -> T {
        try lookup(txn, database, key: key, body)
    }

    /// See `LMDBReadTransaction.value`.
    public func value(_ database: LMDBDatabase, key: some ContiguousBytes) throws -> [UInt8]? {
        try withValue(database, key: key) { $0.map { Array($0) } }
    }

    /// See `LMDBReadTransaction.scan`.
    public func scan(
        _ database: LMDBDatabase, from start: [UInt8]? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try scanEntries(txn, database, from: start, reverse: false, body)
    }

    /// See `LMDBReadTransaction.scanBackward`.
    public func scanBackward(
        _ database: LMDBDatabase, from start: [UInt8]? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try scanEntries(txn, database, from: start, reverse: true, body)
    }

    /// Stores `value` under `key`. With `append`, the key must sort after every existing key.
    public func put(
        _ database: LMDBDatabase, key: some ContiguousBytes, value: some ContiguousBytes,
        append: Bool = false
    ) throws {
        try key.withUnsafeBytes { keyBytes in
            try value.withUnsafeBytes { valueBytes in
                var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
                var v = MDB_val(mv_size: valueBytes.count, mv_data: UnsafeMutableRawPointer(mutating: valueBytes.baseAddress))
                let flags = append ? UInt32(MDB_APPEND) : 0
                try check(mdb_put(txn, database.handle, &k, &v, flags), "put into \(database.name)")
            }
        }
    }

    /// Removes `key` (and all its duplicate values). Returns false when it was absent.
    @discardableResult
    public func delete(_ database: LMDBDatabase, key: some ContiguousBytes) throws -> Bool {
        try key.withUnsafeBytes { keyBytes in
            var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
            let code = mdb_del(txn, database.handle, &k, nil)
            if code == MDB_NOTFOUND { return false }
            try check(code, "delete from \(database.name)")
            return true
        }
    }

    /// Removes every entry of the database, keeping the database itself.
    public func empty(_ database: LMDBDatabase) throws {
        try check(mdb_drop(txn, database.handle, 0), "emptying of \(database.name)")
    }

    /// See `LMDBReadTransaction.count`.
    public func count(_ database: LMDBDatabase) throws -> Int {
        try entryCount(txn, database)
    }
}

private func lookup<T>(
    _ txn: OpaquePointer, _ database: LMDBDatabase, key: some ContiguousBytes,
    _ body: (UnsafeRawBufferPointer?) throws -> T
) throws -> T {
    try key.withUnsafeBytes { keyBytes in
        var k = MDB_val(mv_size: keyBytes.count, mv_data: UnsafeMutableRawPointer(mutating: keyBytes.baseAddress))
        var v = MDB_val()
        let code = mdb_get(txn, database.handle, &k, &v)
        if code == MDB_NOTFOUND { return try body(nil) }
        try check(code, "get from \(database.name)")
        return try body(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }
}

private func entryCount(_ txn: OpaquePointer, _ database: LMDBDatabase) throws -> Int {
    var stat = MDB_stat()
    try check(mdb_stat(txn, database.handle, &stat), "stat of \(database.name)")
    return stat.ms_entries
}

private func scanEntries(
    _ txn: OpaquePointer, _ database: LMDBDatabase, from start: [UInt8]?, reverse: Bool,
    _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
) throws {
    var cursor: OpaquePointer?
    try check(mdb_cursor_open(txn, database.handle, &cursor), "cursor on \(database.name)")
    guard let cursor else { return }
    defer { mdb_cursor_close(cursor) }
    var key = MDB_val()
    var value = MDB_val()
    var code: Int32
    if let start {
        code = start.withUnsafeBytes { startBytes in
            key = MDB_val(mv_size: startBytes.count, mv_data: UnsafeMutableRawPointer(mutating: startBytes.baseAddress))
            return mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
        }
        if reverse {
            if code == MDB_NOTFOUND {
                code = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
            } else if code == MDB_SUCCESS {
                let exact = start.withUnsafeBytes { $0.elementsEqual(UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size)) }
                if !exact { code = mdb_cursor_get(cursor, &key, &value, MDB_PREV) }
            }
        }
    } else {
        code = mdb_cursor_get(cursor, &key, &value, reverse ? MDB_LAST : MDB_FIRST)
    }
    let step = reverse ? MDB_PREV : MDB_NEXT
    while code == MDB_SUCCESS {
        let keepGoing = try body(
            UnsafeRawBufferPointer(start: key.mv_data, count: key.mv_size),
            UnsafeRawBufferPointer(start: value.mv_data, count: value.mv_size))
        if !keepGoing { return }
        code = mdb_cursor_get(cursor, &key, &value, step)
    }
    if code != MDB_NOTFOUND { try check(code, "cursor step on \(database.name)") }
}
