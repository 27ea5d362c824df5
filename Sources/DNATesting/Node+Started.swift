public import DNA

extension Node {
    /// Makes a node and starts its `Node.run()` in a task of its own; returns once the
    /// node is ready. For tests and tools: `Node.shutdown()` ends it. Programs run a node
    /// in a `ServiceGroup` or with `Node.withRunning(_:)` instead.
    public static func started(configuration: Configuration, actors: [any DurableActor.Type]) async throws -> Node {
        let node = try Node(configuration: configuration, actors: actors)
        let running = Task { try await node.run() }
        do {
            try await node.waitUntilReady()
        } catch {
            _ = await running.result
            throw error
        }
        return node
    }
}
