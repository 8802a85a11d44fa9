import KilnCore

/// nil when `body` throws an error whose exit code is `status`; else what it
/// threw instead (or that it threw nothing), for `#expect(... == nil)`.
public func expectExit(_ status: KilnExit, _ body: () throws -> Void) -> (any Error)? {
    do {
        try body()
    } catch {
        return KilnExit.for(error) == status.rawValue ? nil : error
    }
    return KilnError.internalError("no error thrown")
}
