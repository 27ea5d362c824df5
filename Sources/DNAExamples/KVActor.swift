package import DNA

/// The built-in example actor: a string key-value map. `dna-bench` and `dna kv` use it.
package final class KVActor: DurableActor {
    package static let kind: ActorKind = "kv"

    /// Stores `value` for `key`; answered once durable.
    package struct Put: ActorRequest {
        package typealias Response = Void
        package var key: String
        package var value: String
        package init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// Reads `key`.
    package struct Get: ActorRequest {
        package typealias Response = String?
        package var key: String
        package init(key: String) { self.key = key }
    }

    /// Removes `key`; answered once durable.
    package struct Delete: ActorRequest {
        package typealias Response = Void
        package var key: String
        package init(key: String) { self.key = key }
    }

    /// Lists entries in key order.
    package struct List: ActorRequest {
        package typealias Response = [Entry]
        package var prefix: String
        package var after: String?
        package var limit: Int
        package init(prefix: String = "", after: String? = nil, limit: Int = 100) {
            self.prefix = prefix
            self.after = after
            self.limit = limit
        }
    }

    package struct Entry: Codable, Sendable, Equatable {
        package var key: String
        package var value: String
    }

    let kv: KV<String, String>

    package init(context: ActorContext) async throws {
        kv = try context.kv("kv")
    }

    package static func handlers(_ h: inout Handlers<KVActor>) {
        h.on(Put.self) { actor, put, _ in try actor.kv.write(put.value, for: put.key) }
        h.on(Get.self) { actor, get, _ in actor.kv.read(get.key) }
        h.on(Delete.self) { actor, delete, _ in try actor.kv.delete(delete.key) }
        h.on(List.self) { actor, list, _ in
            try actor.kv.list(prefix: list.prefix, after: list.after, limit: list.limit).map { Entry(key: $0.key, value: $0.value) }
        }
    }
}
