import Foundation
import KilnArtifacts
import KilnCore

/// `rotation-<env>.svg`: a rotation drawn from its `RotationTimeline`, so
/// that someone looking at a deploy (a failed one above all) sees what
/// happened without reading the log: healthy capacity, group size and the
/// release's instances over time, the batches and checkpoints, the failure
/// and the rollback. Pure (timeline in, SVG text out); the SVG is built as
/// an `XMLElement` tree and serialized by KilnCore's XML writer, so every
/// label is escaped in one place.
public struct RotationPicture: Sendable {
    public var timeline: RotationTimeline
    /// `rotation test: release 4f1c... (demo v2.0.0), rolled-back`.
    public var title: String
    public var subtitle: String
    /// Why it failed, in red under the subtitle (cut to fit; whole in the SVG's title).
    public var failure: String?

    /// `rotation-<env>.svg`, beside `rotation-<env>.json`.
    public static func fileName(environment: String) -> String { "rotation-\(environment).svg" }

    public init(timeline: RotationTimeline, title: String, subtitle: String, failure: String? = nil) {
        self.timeline = timeline
        self.title = title
        self.subtitle = subtitle
        self.failure = failure
    }

    /// The three lines drawn from the samples, with their colours.
    public enum Series: String, Sendable, CaseIterable {
        case groupSize = "group-size"
        case healthy
        case newRelease = "new-release"

        var colour: String {
            switch self {
            case .groupSize: "#7f7f7f"
            case .healthy: "#2ca02c"
            case .newRelease: "#1f77b4"
            }
        }

        var legend: String {
            switch self {
            case .groupSize: "group size"
            case .healthy: "healthy capacity"
            case .newRelease: "on the new release"
            }
        }

        func value(_ sample: RotationTimeline.Sample) -> Int {
            switch self {
            case .groupSize: sample.groupSize
            case .healthy: sample.healthy
            case .newRelease: sample.newRelease
            }
        }
    }

    /// Where the plot lies and how time and counts map onto it.
    public struct Geometry: Sendable, Equatable {
        public static let width = 860.0
        public static let height = 440.0
        public static let left = 60.0
        public static let right = 660.0
        public static let top = 70.0
        public static let bottom = 380.0

        /// The last second and the largest count the axes reach.
        public var seconds: Double
        public var count: Int

        public init(_ timeline: RotationTimeline) {
            let lastSample = timeline.samples.map(\.seconds).max() ?? 0
            let lastEvent = timeline.events.map(\.seconds).max() ?? 0
            seconds = max(1, lastSample, lastEvent)
            count = max(1, timeline.samples.map { max($0.groupSize, $0.healthy, $0.newRelease) }.max() ?? 1)
        }

        public func x(_ seconds: Double) -> Double {
            Self.left + (Self.right - Self.left) * min(max(0, seconds), self.seconds) / self.seconds
        }

        public func y(_ count: Int) -> Double {
            Self.bottom - (Self.bottom - Self.top) * Double(count) / Double(self.count)
        }
    }

    /// Coordinates with one decimal: enough for a picture, and the same text every time.
    public static func coordinate(_ value: Double) -> String { String(format: "%.1f", value) }

    /// The `points` of a series' polyline: one point per sample.
    public static func points(_ series: Series, _ timeline: RotationTimeline, _ geometry: Geometry) -> String {
        timeline.samples.map { "\(coordinate(geometry.x($0.seconds))),\(coordinate(geometry.y(series.value($0))))" }
            .joined(separator: " ")
    }

    public var svg: String {
        let geometry = Geometry(timeline)
        var children: [XMLElement] = [
            XMLElement(name: "title", text: "\(title): \(subtitle)\(failure.map { "; failed: \($0)" } ?? "")"),
            XMLElement(
                name: "rect",
                attributes: ["width": "100%", "height": "100%", "fill": "#ffffff"]),
            text(title, x: Geometry.left, y: 28, size: 16, weight: "bold"),
            text(subtitle, x: Geometry.left, y: 46, size: 12, fill: "#444444"),
        ]
        if let failure {
            // Cut to the picture's width (the whole text is in the SVG's title).
            let room = Self.characters(fitting: Geometry.width - Geometry.left - 10, size: 11) - "failed: ".count
            let shown = failure.count > room ? "\(failure.prefix(room - 1))…" : failure
            children.append(text("failed: \(shown)", x: Geometry.left, y: 61, size: 11, fill: Self.colour(.failure)))
        }
        children += axes(geometry)
        children += events(geometry)
        for series in Series.allCases where !timeline.samples.isEmpty {
            children.append(
                XMLElement(
                    name: "polyline",
                    attributes: [
                        "id": series.rawValue, "fill": "none", "stroke": series.colour,
                        "stroke-width": series == .healthy ? "2.5" : "1.5",
                        "points": Self.points(series, timeline, geometry),
                    ]))
        }
        if timeline.samples.isEmpty {
            children.append(
                text(
                    "no instance was replaced", x: (Geometry.left + Geometry.right) / 2,
                    y: (Geometry.top + Geometry.bottom) / 2, size: 14, anchor: "middle", fill: "#444444"))
        }
        children += legend()
        let root = XMLElement(
            name: "svg",
            attributes: [
                "xmlns": "http://www.w3.org/2000/svg", "version": "1.1",
                "width": Self.coordinate(Geometry.width), "height": Self.coordinate(Geometry.height),
                "viewBox": "0 0 \(Int(Geometry.width)) \(Int(Geometry.height))",
                "font-family": "sans-serif",
            ],
            children: children)
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + root.serialized()
    }

    // MARK: parts

    private func text(
        _ content: String, x: Double, y: Double, size: Int = 11, weight: String? = nil, anchor: String? = nil,
        fill: String = "#000000", id: String? = nil, transform: String? = nil
    ) -> XMLElement {
        var attributes = [
            "x": Self.coordinate(x), "y": Self.coordinate(y), "font-size": "\(size)", "fill": fill,
        ]
        attributes["font-weight"] = weight
        attributes["text-anchor"] = anchor
        attributes["id"] = id
        attributes["transform"] = transform
        return XMLElement(name: "text", attributes: attributes, text: content)
    }

    /// How wide sans-serif text is taken to be: 0.6 em a character, a
    /// little more than DejaVu Sans's average, so an estimate errs wide.
    static func width(of text: String, size: Double) -> Double { Double(text.count) * size * 0.6 }

    static func characters(fitting width: Double, size: Double) -> Int { max(1, Int(width / (size * 0.6))) }

    /// Where an event's label goes: beside its line, inside the plot (left of
    /// the line near the right edge, cut to the room there is), on the first
    /// row where it meets no label placed before it.
    struct EventLabel: Equatable {
        var text: String
        var x: Double
        var y: Double
        var anchor: String?
        var minX: Double
        var maxX: Double
    }

    static let labelSize = 9.0
    static let labelRows = 8

    static func eventLabels(_ timeline: RotationTimeline, _ geometry: Geometry) -> [EventLabel] {
        var rowsEnd: [[(Double, Double)]] = Array(repeating: [], count: labelRows)
        var labels: [EventLabel] = []
        for event in timeline.events {
            let x = geometry.x(event.seconds)
            var content = event.kind == .batchConfirmed ? "ok" : String(event.label.prefix(60))
            let right = Geometry.right - (x + 3)
            let left = (x - 3) - Geometry.left
            let room = max(right, left)
            let fit = characters(fitting: room, size: labelSize)
            if content.count > fit { content = "\(content.prefix(max(1, fit - 1)))…" }
            let width = Self.width(of: content, size: labelSize)
            let onRight = width <= right
            let (minX, maxX) = onRight ? (x + 3, x + 3 + width) : (x - 3 - width, x - 3)
            // The first row free of this label's span; the last row if none is.
            let row =
                rowsEnd.firstIndex { spans in spans.allSatisfy { $0.1 + 2 <= minX || maxX + 2 <= $0.0 } }
                ?? labelRows - 1
            rowsEnd[row].append((minX, maxX))
            labels.append(
                EventLabel(
                    text: content, x: onRight ? x + 3 : x - 3, y: Geometry.top + 10 + Double(row) * 11,
                    anchor: onRight ? nil : "end", minX: minX, maxX: maxX))
        }
        return labels
    }

    private func line(
        _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, width: String = "1",
        dash: String? = nil
    ) -> XMLElement {
        var attributes = [
            "x1": Self.coordinate(x1), "y1": Self.coordinate(y1), "x2": Self.coordinate(x2),
            "y2": Self.coordinate(y2), "stroke": stroke, "stroke-width": width,
        ]
        attributes["stroke-dasharray"] = dash
        return XMLElement(name: "line", attributes: attributes)
    }

    /// A step of 1, 2 or 5 times a power of ten that gives at most `most` ticks.
    static func step(for span: Double, most: Int) -> Double {
        let rough = span / Double(max(1, most))
        let magnitude = pow(10, floor(log10(max(rough, 1e-9))))
        for factor in [1.0, 2, 5, 10] where factor * magnitude >= rough { return factor * magnitude }
        return 10 * magnitude
    }

    private func axes(_ geometry: Geometry) -> [XMLElement] {
        var parts = [
            line(Geometry.left, Geometry.bottom, Geometry.right, Geometry.bottom, stroke: "#000000"),
            line(Geometry.left, Geometry.top, Geometry.left, Geometry.bottom, stroke: "#000000"),
            text(
                "seconds since the rotation started", x: (Geometry.left + Geometry.right) / 2,
                y: Geometry.bottom + 36, anchor: "middle"),
            // Along the axis, left of its ticks: clear of the title's lines above the plot.
            text(
                "instances", x: 16, y: (Geometry.top + Geometry.bottom) / 2, anchor: "middle",
                transform: "rotate(-90 16 \(Self.coordinate((Geometry.top + Geometry.bottom) / 2)))"),
        ]
        let countStep = max(1, Int(Self.step(for: Double(geometry.count), most: 8)))
        for count in stride(from: 0, through: geometry.count, by: countStep) {
            let y = geometry.y(count)
            parts.append(line(Geometry.left - 4, y, Geometry.left, y, stroke: "#000000"))
            if count > 0 { parts.append(line(Geometry.left, y, Geometry.right, y, stroke: "#eeeeee")) }
            parts.append(text("\(count)", x: Geometry.left - 8, y: y + 4, anchor: "end"))
        }
        let secondStep = Self.step(for: geometry.seconds, most: 10)
        for second in stride(from: 0.0, through: geometry.seconds + 1e-9, by: secondStep) {
            let x = geometry.x(second)
            parts.append(line(x, Geometry.bottom, x, Geometry.bottom + 4, stroke: "#000000"))
            let label = secondStep < 1 ? String(format: "%.1f", second) : "\(Int(second.rounded()))"
            parts.append(text(label, x: x, y: Geometry.bottom + 16, anchor: "middle"))
        }
        return parts
    }

    static func colour(_ kind: RotationTimeline.EventKind) -> String {
        switch kind {
        case .batchStarted: "#9467bd"
        case .batchConfirmed: "#2ca02c"
        case .checkpoint: "#17becf"
        case .failure: "#d62728"
        case .rollback: "#ff7f0e"
        }
    }

    /// Each event a vertical line, labelled at the top (`eventLabels`):
    /// labels of events close together go on rows of their own, so they stay
    /// readable, and every label stays inside the plot, clear of the legend.
    private func events(_ geometry: Geometry) -> [XMLElement] {
        var parts: [XMLElement] = []
        for (event, label) in zip(timeline.events, Self.eventLabels(timeline, geometry)) {
            let x = geometry.x(event.seconds)
            let strong = event.kind == .failure || event.kind == .rollback
            parts.append(
                XMLElement(
                    name: "g",
                    attributes: ["class": "event \(event.kind.rawValue.replacingOccurrences(of: " ", with: "-"))"],
                    children: [
                        XMLElement(
                            name: "title",
                            text: "\(event.kind.rawValue) at \(Self.coordinate(event.seconds))s: \(event.label)"),
                        line(
                            x, Geometry.top, x, Geometry.bottom, stroke: Self.colour(event.kind),
                            width: strong ? "2" : "1", dash: event.kind == .batchStarted ? "4 3" : nil),
                        text(
                            label.text, x: label.x, y: label.y, size: Int(Self.labelSize), anchor: label.anchor,
                            fill: Self.colour(event.kind)),
                    ]))
        }
        return parts
    }

    private func legend() -> [XMLElement] {
        var parts: [XMLElement] = []
        var y = Geometry.top + 4
        let x = Geometry.right + 20
        for series in Series.allCases {
            parts.append(line(x, y, x + 24, y, stroke: series.colour, width: series == .healthy ? "2.5" : "1.5"))
            parts.append(text(series.legend, x: x + 30, y: y + 4))
            y += 18
        }
        y += 8
        for kind in RotationTimeline.EventKind.allCases {
            parts.append(
                line(
                    x + 12, y - 7, x + 12, y + 7, stroke: Self.colour(kind),
                    width: kind == .failure || kind == .rollback ? "2" : "1",
                    dash: kind == .batchStarted ? "4 3" : nil))
            parts.append(text(kind.rawValue, x: x + 30, y: y + 4))
            y += 18
        }
        return parts
    }
}
