/// Which partitions of a stream a stage may consume, decided from the stream's status
/// alone (so a second or a stale leader decides the same, and a consumer checks it again
/// itself): KCL's parent-before-child rule, without its hole — a parent with no checkpoint
/// row has not been consumed (unless it never held a record).
public enum StageOrder {
    /// The consumer's checkpoint on `partition`: the next sequence it reads. Without one
    /// (not registered yet) it has read nothing, whatever retention deleted.
    public static func checkpoint(of consumer: String, on partition: StreamPartitionStatus, in status: StreamStatus) -> Int64 {
        status.consumers[consumer]?[partition.partition] ?? 1
    }

    /// Closed, and consumed to its end.
    public static func isFinished(_ partition: StreamPartitionStatus, in status: StreamStatus, consumer: String) -> Bool {
        !partition.isOpen && checkpoint(of: consumer, on: partition, in: status) >= partition.nextSequence
    }

    /// The parents of `partition` the consumer has not consumed to their end.
    public static func unfinishedParents(of partition: StreamPartitionStatus, in status: StreamStatus, consumer: String) -> [Int] {
        partition.parents.filter { parent in
            guard let info = status.partitions.first(where: { $0.partition == parent }) else { return true }
            return !isFinished(info, in: status, consumer: consumer)
        }
    }

    /// The partitions whose consumer should run now: not parked, with records it has not
    /// read, and (if it waits for parents) every parent finished.
    public static func runnable(_ status: StreamStatus, consumer: String, waitsForParents: Bool) -> [Int] {
        status.partitions.compactMap { partition in
            guard status.parked[consumer]?[partition.partition] == nil,
                checkpoint(of: consumer, on: partition, in: status) < partition.nextSequence
            else { return nil }
            if waitsForParents, !unfinishedParents(of: partition, in: status, consumer: consumer).isEmpty { return nil }
            return partition.partition
        }
    }
}
