package import DNA

/// The example pipeline: device readings → totals per device → totals per city.
///
/// A reading is a record of the stream `readings`, keyed by its device, valued
/// `"<city>:<amount>"`. ``DeviceTotals`` keeps each device's count and sum and forwards the
/// amount to the stream `city-readings`, keyed by the city; ``CityTotals`` keeps each
/// city's count and sum. Each stage's state, its output and its checkpoint commit
/// together, so the totals are exact across node failures. `dna-bench pipeline-demo` runs it.
package enum ExamplePipeline {
    package static let readings = StreamName(name: "readings")
    package static let cityReadings = StreamName(name: "city-readings")
    package static let readingPartitions = 8
    package static let cityPartitions = 4

    /// A reading's record value.
    package static func reading(city: String, amount: Int64) -> [UInt8] { Array("\(city):\(amount)".utf8) }

    static func parse(_ value: [UInt8]) -> (city: String, amount: Int64)? {
        let text = String(decoding: value, as: UTF8.self)
        guard let colon = text.lastIndex(of: ":"), let amount = Int64(text[text.index(after: colon)...]) else { return nil }
        return (String(text[..<colon]), amount)
    }

    /// A count and a sum.
    package struct Total: Codable, Sendable, Equatable {
        package var count: Int64
        package var sum: Int64
        package init(count: Int64 = 0, sum: Int64 = 0) {
            self.count = count
            self.sum = sum
        }
    }

    /// The totals a stage consumer holds (ask each partition's consumer and add them up).
    package struct Totals: ActorRequest {
        package typealias Response = [String: Total]
        package init() {}
    }

    /// A reading that cannot be parsed.
    package struct BadReading: Error, CustomStringConvertible {
        package var value: String
        package var description: String { "not a reading '<city>:<amount>': \(value)" }
    }
}

/// Stage one: totals per device, forwarding each amount to its city's partition.
package final class DeviceTotals: StreamStage {
    package static let kind: ActorKind = "device-totals"
    package static let input = ExamplePipeline.readings
    let totals: KV<String, ExamplePipeline.Total>

    package init(context: ActorContext) async throws { totals = try context.kv("totals") }

    package static func handlers(_ h: inout Handlers<DeviceTotals>) {
        h.on(ExamplePipeline.Totals.self) { stage, _, _ in try stage.totals.allEntries() }
    }

    package func process(_ records: [StreamRecord], context: ActorContext) async throws {
        for record in records {
            guard let reading = ExamplePipeline.parse(record.value) else {
                throw ExamplePipeline.BadReading(value: String(decoding: record.value, as: UTF8.self))
            }
            let device = String(decoding: record.key, as: UTF8.self)
            var total = totals.read(device) ?? ExamplePipeline.Total()
            total.count += 1
            total.sum += reading.amount
            try totals.write(total, for: device)
            try context.append(to: ExamplePipeline.cityReadings, key: reading.city, value: Array(String(reading.amount).utf8))
        }
    }
}

/// Stage two: totals per city.
package final class CityTotals: StreamStage {
    package static let kind: ActorKind = "city-totals"
    package static let input = ExamplePipeline.cityReadings
    let totals: KV<String, ExamplePipeline.Total>

    package init(context: ActorContext) async throws { totals = try context.kv("totals") }

    package static func handlers(_ h: inout Handlers<CityTotals>) {
        h.on(ExamplePipeline.Totals.self) { stage, _, _ in try stage.totals.allEntries() }
    }

    package func process(_ records: [StreamRecord], context: ActorContext) async throws {
        for record in records {
            let city = String(decoding: record.key, as: UTF8.self)
            guard let amount = Int64(String(decoding: record.value, as: UTF8.self)) else {
                throw ExamplePipeline.BadReading(value: String(decoding: record.value, as: UTF8.self))
            }
            var total = totals.read(city) ?? ExamplePipeline.Total()
            total.count += 1
            total.sum += amount
            try totals.write(total, for: city)
        }
    }
}

extension KV where Key == String {
    /// Every entry, as a dictionary.
    func allEntries() throws(DNAError) -> [String: Value] {
        var result: [String: Value] = [:]
        var after: String?
        while true {
            let page = try list(after: after, limit: 1000)
            for (key, value) in page { result[key] = value }
            guard page.count == 1000 else { return result }
            after = page.last?.key
        }
    }
}
