import Foundation

/// A stage's output for the stages after it. Its JSON is the envelope's keys
/// (`schema`, `version`, `producer`, `createdAt`) with the payload's own keys
/// beside them, so a payload must not use those four names.
public protocol ArtifactPayload: Codable, Sendable {
    /// `checkout` gives schema `kiln.checkout` and, by default, `checkout.json`.
    static var schemaName: String { get }
    /// Bumped when a field changes meaning or goes away; readers refuse others.
    static var schemaVersion: Int { get }
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
        try Self.checkNoEnvelopeKeys(payload)
        let envelope = Envelope(
            schema: "kiln.\(P.schemaName)", version: P.schemaVersion,
            producer: producer, createdAt: clock.now(), payload: payload)
        try AtomicFile.write(try Self.encoder.encode(envelope) + Data("\n".utf8), to: target)
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

    public func read<P: ArtifactPayload>(_ type: P.Type, fileName: String? = nil) throws -> Artifact<P> {
        let name = fileName ?? Self.defaultFileName(for: P.self)
        let file = path(name)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw KilnError.badArtifact(
                """
                \(file): missing; it is written by an earlier stage (did that job run, \
                and does this job take its artifacts?)
                """
            )
        }
        let header: Header
        do {
            header = try Self.decoder.decode(Header.self, from: data)
        } catch {
            throw KilnError.badArtifact("\(file): \(Self.describe(error))")
        }
        guard header.schema == "kiln.\(P.schemaName)" else {
            throw KilnError.badArtifact(
                "\(file): field 'schema' is '\(header.schema)', expected 'kiln.\(P.schemaName)'")
        }
        guard header.version == P.schemaVersion else {
            throw KilnError.badArtifact(
                """
                \(file): field 'version' is \(header.version), \
                this Kiln reads version \(P.schemaVersion) of kiln.\(P.schemaName)
                """
            )
        }
        do {
            let envelope = try Self.decoder.decode(Envelope<P>.self, from: data)
            return Artifact(producer: envelope.producer, createdAt: envelope.createdAt, payload: envelope.payload)
        } catch {
            throw KilnError.badArtifact("\(file): \(Self.describe(error))")
        }
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

private struct Header: Decodable {
    let schema: String
    let version: Int
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
