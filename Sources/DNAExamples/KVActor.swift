import DNA

/// The built-in example actor: a string key-value map. `dna-bench` and `dna kv` use it.
public final class KVActor: DurableActor {
    public static let kind: ActorKind = "kv"

    /// Stores `value` for `key`; answered once durable.
    public struct Put: ActorRequest {
        public typealias Response = Void
        public var key: String
        public var value: String
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// Reads `key`.
    public struct Get: ActorRequest {
        public typealias Response = String?
        public var key: String
        public init(key: String) { self.key = key }
    }

    /// Removes `key`; answered once durable.
    public struct Delete: ActorRequest {
        public typealias Response = Void
        public var key: String
        public init(key: String) { self.key = key }
    }

    /// Lists entries in key order.
    public struct List: ActorRequest {
        public typealias Response = [Entry]
        public var prefix: String
        public var after: String?
        public var limit: Int
        public init(prefix: String = "", after: String? = nil, limit: Int = 100) {
            self.prefix = prefix
            self.after = after
            self.limit = limit
        }
    }

    public struct Entry: Codable, Sendable, Equatable {
        public var key: String
        public var value: String
    }

    let kv: KV<String, String>

    public init(context: ActorContext) async throws {
        kv = try context.kv("kv")
    }

    public static func handlers(_ h: inout Handlers<KVActor>) {
        h.on(Put.self) { actor, put, _ in try actor.kv.write(put.value, for: put.key) }
        h.on(Get.self) { actor, get, _ in actor.kv.read(get.key) }
        h.on(Delete.self) { actor, delete, _ in try actor.kv.delete(delete.key) }
        h.on(List.self) { actor, list, _ in
            try actor.kv.list(prefix: list.prefix, after: list.after, limit: list.limit).map { Entry(key: $0.key, value: $0.value) }
        }
    }
}
