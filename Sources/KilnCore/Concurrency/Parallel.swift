import Foundation
import Synchronization

/// Work done for several items at once (image copies to other regions,
/// a batch's terminations), each item's outcome kept in order, so that one
/// failure neither stops the others nor hides which item failed.
public enum Parallel {
    /// `body` for every item, as many at once as Dispatch runs (the cores);
    /// the results in the items' order.
    public static func map<Item: Sendable, Value: Sendable>(
        _ items: [Item], _ body: @Sendable (Item) throws -> Value
    ) -> [Result<Value, any Error>] {
        let results = Mutex<[Result<Value, any Error>?]>(Array(repeating: nil, count: items.count))
        DispatchQueue.concurrentPerform(iterations: items.count) { index in
            let result = Result { try body(items[index]) }
            results.withLock { $0[index] = result }
        }
        return results.withLock { slots in
            slots.map { $0 ?? .failure(KilnError.internalError("parallel work did not run an item")) }
        }
    }
}
