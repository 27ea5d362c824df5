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

    /// Closed, consumed to its end, and so are its parents, theirs, and so on: a partition
    /// that never held a record (a merge split again at once) is consumed "to its end"
    /// before anything of its parents was read, and a child must not start before them.
    public static func isFinished(_ partition: StreamPartitionStatus, in status: StreamStatus, consumer: String) -> Bool {
        guard !partition.isOpen, checkpoint(of: consumer, on: partition, in: status) >= partition.nextSequence else { return false }
        return partition.parents.isEmpty || partition.parents.allSatisfy(finished(in: status, consumer: consumer).contains)
    }

    /// The partitions finished for `consumer` (see ``isFinished(_:in:consumer:)``).
    static func finished(in status: StreamStatus, consumer: String) -> Set<Int> {
        var finished: Set<Int> = []
        var changed = true
        // Until nothing more is finished: a partition's parents are decided before it.
        while changed {
            changed = false
            for partition in status.partitions where !finished.contains(partition.partition) && !partition.isOpen {
                guard checkpoint(of: consumer, on: partition, in: status) >= partition.nextSequence,
                    partition.parents.allSatisfy(finished.contains)
                else { continue }
                finished.insert(partition.partition)
                changed = true
            }
        }
        return finished
    }

    /// The parents of `partition` the consumer has not consumed to their end.
    public static func unfinishedParents(of partition: StreamPartitionStatus, in status: StreamStatus, consumer: String) -> [Int] {
        let finished = finished(in: status, consumer: consumer)
        return partition.parents.filter { !finished.contains($0) }
    }

    /// The partitions whose consumer should run now: not parked, with records it has not
    /// read, and (if it waits for parents) every parent finished.
    public static func runnable(_ status: StreamStatus, consumer: String, waitsForParents: Bool) -> [Int] {
        let finished = finished(in: status, consumer: consumer)
        return status.partitions.compactMap { partition in
            guard status.parked[consumer]?[partition.partition] == nil,
                checkpoint(of: consumer, on: partition, in: status) < partition.nextSequence
            else { return nil }
            if waitsForParents, !partition.parents.allSatisfy(finished.contains) { return nil }
            return partition.partition
        }
    }
}
