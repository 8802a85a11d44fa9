import Foundation

/// A stage's output for the stages after it. Its JSON is the envelope's keys
/// (`schema`, `version`, `producer`, `createdAt`) with the payload's own keys
/// beside them, so a payload must not use those four names.
public protocol ArtifactPayload: Codable, Sendable {
    /// `checkout` gives schema `kiln.checkout` and, by default, `checkout.json`.
    static var schemaName: String { get }
    /// Bumped when a field changes meaning or goes away; readers refuse others.
    static var schemaVersion: Int { get }
    /// The first field whose value has the right type but not the right
    /// shape (a commit that is not 40 hex digits, an AMI id that is not
    /// `ami-...`), and what is wrong with it; checked on every read.
    func fieldProblem() -> (field: String, problem: String)?
}

extension ArtifactPayload {
    public func fieldProblem() -> (field: String, problem: String)? { nil }
}

/// Who wrote an artifact.
public struct Producer: Codable, Sendable, Equatable {
    public var name: String
    public var version: String
    public init(name: String, version: String = Kiln.version) {
        self.name = name
        self.version = version
    }
}

/// An artifact as read back: the envelope's facts and the payload.
public struct Artifact<Payload: ArtifactPayload>: Sendable {
    public let producer: Producer
    public let createdAt: Date
    public let payload: Payload
}

/// The artifacts folder (`kiln/` under `CI_PROJECT_DIR`): one place that
/// writes and reads every stage's JSON and dotenv files.
public struct ArtifactStore: Sendable {
    public let directory: String
    public let producer: Producer
    private let clock: Clock

    public init(directory: String, producer: Producer, clock: Clock = .system) {
        self.directory = directory
        self.producer = producer
        self.clock = clock
    }

    /// `--artifacts-dir`, else `KILN_ARTIFACTS_DIR`, else `kiln/` in the
    /// project folder (`CI_PROJECT_DIR`), else `kiln/` here.
    public static func directory(flag: String?, job: JobContext) -> String {
        if let flag, !flag.isEmpty { return flag }
        if let env = job["KILN_ARTIFACTS_DIR"] { return env }
        return ((job.projectDirectory ?? FileManager.default.currentDirectoryPath) as NSString)
            .appendingPathComponent("kiln")
    }

    public func path(_ fileName: String) -> String {
        (directory as NSString).appendingPathComponent(fileName)
    }

    public static func defaultFileName<P: ArtifactPayload>(for _: P.Type) -> String { "\(P.schemaName).json" }

    // MARK: writing

    @discardableResult
    public func write<P: ArtifactPayload>(_ payload: P, fileName: String? = nil) throws -> String {
        let target = path(fileName ?? Self.defaultFileName(for: P.self))
        try AtomicFile.write(try encoded(payload), to: target)
        return target
    }

    /// The artifact's file: the envelope beside the payload, sorted and pretty.
    private func encoded<P: ArtifactPayload>(_ payload: P) throws -> Data {
        try Self.checkNoEnvelopeKeys(payload)
        let envelope = Envelope(
            schema: "kiln.\(P.schemaName)", version: P.schemaVersion,
            producer: producer, createdAt: clock.now(), payload: payload)
        return try Self.encoder.encode(envelope) + Data("\n".utf8)
    }

    /// A stage's outputs as one set: the dotenv file is rendered (checked
    /// against GitLab's rules) and the payload encoded before either is
    /// written, so that a value GitLab would refuse leaves neither behind.
    @discardableResult
    public func write<P: ArtifactPayload>(
        _ payload: P, fileName: String? = nil, dotenv: Dotenv, dotenvFileName: String
    ) throws -> String {
        let text = try dotenv.rendered()
        let data = try encoded(payload)
        let target = path(fileName ?? Self.defaultFileName(for: P.self))
        try AtomicFile.write(data, to: target)
        try AtomicFile.write(Data(text.utf8), to: path(dotenvFileName))
        return target
    }

    public func writeDotenv(_ dotenv: Dotenv, fileName: String) throws {
        try AtomicFile.write(Data(try dotenv.rendered().utf8), to: path(fileName))
    }

    /// A payload key named like an envelope key would be overwritten
    /// without a word: refuse it (a bug in the stage, caught by its tests).
    static func checkNoEnvelopeKeys<P: ArtifactPayload>(_ payload: P) throws {
        let data = try encoder.encode(payload)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        let clashing = Set(object.keys).intersection(["schema", "version", "producer", "createdAt"])
        guard clashing.isEmpty else {
            throw KilnError.internalError(
                """
                kiln.\(P.schemaName): \
                payload field \(clashing.sorted().joined(separator: ", ")) is reserved for the envelope
                """
            )
        }
    }

    // MARK: reading, strictly

    /// The most Kiln reads of an artifact: far more than any stage writes
    /// (build.json, the largest, is kilobytes), little enough that a huge
    /// file in an artifact's place is refused before it fills memory.
    public static let maximumBytes = 4 << 20

    public func read<P: ArtifactPayload>(_ type: P.Type, fileName: String? = nil) throws -> Artifact<P> {
        let name = fileName ?? Self.defaultFileName(for: P.self)
        let file = path(name)
        try checkInsideFolder(file)
        let data: Data
        switch InputFile.read(file, limit: Self.maximumBytes) {
        case .success(let bytes):
            data = bytes
        case .failure(let failure) where failure.problem == .missing:
            throw KilnError.badArtifact(
                "\(file): missing; it is written by an earlier stage"
                    + " (did that job run, and does this job take its artifacts?)"
            )
        case .failure(let failure):
            throw KilnError.badArtifact(
                "\(file): \(failure.problem.description); expected the JSON of kiln.\(P.schemaName)")
        }
        try Self.checkEnvelope(data, file: file, schema: "kiln.\(P.schemaName)", version: P.schemaVersion)
        let envelope: Envelope<P>
        do {
            envelope = try Self.decoder.decode(Envelope<P>.self, from: data)
        } catch {
            throw KilnError.badArtifact("\(file): \(Self.describe(error))")
        }
        if let (field, problem) = envelope.payload.fieldProblem() {
            throw KilnError.badArtifact("\(file): field '\(field)' \(problem)")
        }
        return Artifact(producer: envelope.producer, createdAt: envelope.createdAt, payload: envelope.payload)
    }

    /// An artifact that is a symbolic link out of the artifacts folder is
    /// not an earlier stage's output.
    private func checkInsideFolder(_ file: String) throws {
        var status = stat()
        guard lstat(file, &status) == 0, status.st_mode & S_IFMT == S_IFLNK else { return }
        let folder = ContainedPath.realPath(directory)
        let target = ContainedPath.realPath(file)
        guard target.hasPrefix(folder + "/") else {
            throw KilnError.badArtifact(
                "\(file): is a symbolic link to \(target), outside the artifacts folder \(directory)")
        }
    }

    /// The envelope, checked field by field before any decoding, so that a
    /// wrong value is named as such (not as "not valid JSON"): a JSON object,
    /// no key twice, `schema` and `version` as this Kiln reads them, a
    /// `producer`, and `createdAt` as an ISO 8601 time.
    static func checkEnvelope(_ data: Data, file: String, schema: String, version: Int) throws {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw KilnError.badArtifact(
                "\(file): not valid JSON (\(data.isEmpty ? "the file is empty" : "cut short, or not JSON at all"));"
                    + " expected the JSON of \(schema)"
            )
        }
        guard let object = parsed as? [String: Any] else {
            throw KilnError.badArtifact("\(file): not a JSON object; expected the JSON of \(schema)")
        }
        if let duplicate = JSONShape.firstDuplicateKey(in: data) {
            throw KilnError.badArtifact("\(file):\(duplicate.line): field '\(duplicate.path)' appears twice")
        }
        guard let found = object["schema"] else { throw KilnError.badArtifact("\(file): missing field 'schema'") }
        guard let text = found as? String else {
            throw KilnError.badArtifact("\(file): field 'schema' is not a string")
        }
        guard text == schema else {
            throw KilnError.badArtifact("\(file): field 'schema' is \(Untrusted.quoted(text)), expected '\(schema)'")
        }
        guard let number = object["version"] else { throw KilnError.badArtifact("\(file): missing field 'version'") }
        guard let found = wholeNumber(number) else {
            throw KilnError.badArtifact(
                "\(file): field 'version' is not a whole number (\(Untrusted.quoted("\(number)")))")
        }
        guard found == version else {
            throw KilnError.badArtifact(
                "\(file): field 'version' is \(found), this Kiln reads version \(version) of \(schema)")
        }
        guard let producer = object["producer"] else {
            throw KilnError.badArtifact("\(file): missing field 'producer'")
        }
        guard let fields = producer as? [String: Any], fields["name"] is String, fields["version"] is String else {
            throw KilnError.badArtifact("\(file): field 'producer' is not an object with a name and a version")
        }
        guard let created = object["createdAt"] else {
            throw KilnError.badArtifact("\(file): missing field 'createdAt'")
        }
        guard let stamp = created as? String, ISO8601DateFormatter().date(from: stamp) != nil else {
            throw KilnError.badArtifact(
                "\(file): field 'createdAt' is not an ISO 8601 time such as 2026-01-01T00:00:00Z"
                    + " (\(Untrusted.quoted("\(created)")))"
            )
        }
    }

    /// A JSON number that is whole (not `true`, not `1.5`).
    private static func wholeNumber(_ value: Any) -> Int? {
        guard let number = value as? NSNumber, String(cString: number.objCType) != "c" else { return nil }
        let double = number.doubleValue
        guard double.isFinite, double.rounded() == double, abs(double) < 1e15 else { return nil }
        return Int(double)
    }

    static func describe(_ error: any Error) -> String {
        func dotted(_ path: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let keys = path + (last.map { [$0] } ?? [])
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : text
        }
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing field '\(dotted(context.codingPath, key))'"
        case DecodingError.valueNotFound(_, let context):
            return "field '\(dotted(context.codingPath))' is null"
        case DecodingError.typeMismatch(let type, let context):
            return "field '\(dotted(context.codingPath))' is not \(typeName(type))"
        case DecodingError.dataCorrupted(let context):
            if context.codingPath.isEmpty { return "not valid JSON" }
            return "field '\(dotted(context.codingPath))': \(context.debugDescription)"
        default:
            return String(describing: error)
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Double.Type: "a number"
        case is Bool.Type: "true or false"
        default: "of the expected type (\(type))"
        }
    }

    // Sorted keys and pretty, so that artifacts diff well and two runs with
    // the same inputs write the same text (but for `createdAt`).
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }()
}

/// The envelope's keys and the payload's, side by side in one JSON object.
private struct Envelope<P: ArtifactPayload>: Codable {
    let schema: String
    let version: Int
    let producer: Producer
    let createdAt: Date
    let payload: P

    enum CodingKeys: String, CodingKey {
        case schema, version, producer, createdAt
    }

    init(schema: String, version: Int, producer: Producer, createdAt: Date, payload: P) {
        self.schema = schema
        self.version = version
        self.producer = producer
        self.createdAt = createdAt
        self.payload = payload
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        schema = try container.decode(String.self, forKey: .schema)
        version = try container.decode(Int.self, forKey: .version)
        producer = try container.decode(Producer.self, forKey: .producer)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        payload = try P(from: decoder)
    }

    func encode(to encoder: any Encoder) throws {
        try payload.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schema, forKey: .schema)
        try container.encode(version, forKey: .version)
        try container.encode(producer, forKey: .producer)
        try container.encode(createdAt, forKey: .createdAt)
    }
}
