public import DNA
import DNAStore

extension Node.StoreChoice {
    /// A PostgreSQL database, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`: the store
    /// for clusters of several machines (see ``PostgresStore``). A malformed URL is
    /// `StoreError.Code.invalidArgument` when the node opens its store.
    public static func postgres(url: String) -> Node.StoreChoice {
        Node.StoreChoice(description: PostgresStore.Configuration.redacted(url)) { _ throws(StoreError) in
            Made(store: try PostgresStore(configuration: try .init(url: url)), ownedByNode: true, exclusive: false)
        }
    }

    /// A PostgreSQL database with every setting spelled out.
    public static func postgres(_ configuration: PostgresStore.Configuration) -> Node.StoreChoice {
        Node.StoreChoice(description: configuration.redactedURL) { _ throws(StoreError) in
            Made(store: try PostgresStore(configuration: configuration), ownedByNode: true, exclusive: false)
        }
    }
}
