import Synchronization
import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Runs read-only store work on every core: each worker gets its own
/// connections (a GRDB queue serializes its reads), results keep their order.
enum Parallel {
    static func map<Item: Sendable, Result: Sendable>(
        _ items: [Item], sources: [Lane: StoreSource], _ work: @escaping @Sendable (Item, [Lane: StoreSource]) throws -> Result
    ) throws -> [Result] {
        let workers = min(max(1, System.cores), items.count)
        guard workers > 1 else { return try items.map { try work($0, sources) } }
        var connections: [[Lane: StoreSource]] = [sources]
        for _ in 1..<workers {
            var clones: [ObjectIdentifier: StoreSource] = [:]
            var copy: [Lane: StoreSource] = [:]
            for (lane, source) in sources {
                let id = ObjectIdentifier(source)
                if clones[id] == nil { clones[id] = try source.clone() }
                copy[lane] = clones[id]
            }
            connections.append(copy)
        }
        let results = ResultSlots<Result>(count: items.count)
        let perWorker = connections
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var index = worker
            while index < items.count {
                results.set(index, Swift.Result { try work(items[index], perWorker[worker]) })
                index += workers
            }
        }
        return try results.values()
    }

    /// The same over one store: each worker reads through its own connection to it.
    static func map<Item: Sendable, Result: Sendable>(
        _ items: [Item], source: StoreSource, _ work: @escaping @Sendable (Item, StoreSource) throws -> Result
    ) throws -> [Result] {
        let key = Lane(instance: "", breaker: "", label: "")
        return try map(items, sources: [key: source]) { item, connections in try work(item, connections[key]!) }
    }
}

enum System {
    static var cores: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

/// One slot per item, each written by exactly one worker.
final class ResultSlots<Value: Sendable>: Sendable {
    private let slots: Mutex<[Swift.Result<Value, Error>?]>

    init(count: Int) { slots = Mutex(Array(repeating: nil, count: count)) }

    func set(_ index: Int, _ value: Swift.Result<Value, Error>) { slots.withLock { $0[index] = value } }

    func values() throws -> [Value] { try slots.withLock { $0 }.map { try $0!.get() } }
}

