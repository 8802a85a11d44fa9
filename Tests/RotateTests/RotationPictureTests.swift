import Foundation
import KilnAWS
import KilnArtifacts
import KilnCore
import KilnTestSupport
import Testing

@testable import Rotate

/// The picture's polyline `points` back as (seconds, count), through the geometry's scales.
private func values(_ points: String, _ geometry: RotationPicture.Geometry) -> [(seconds: Double, count: Int)] {
    let width = RotationPicture.Geometry.right - RotationPicture.Geometry.left
    let height = RotationPicture.Geometry.bottom - RotationPicture.Geometry.top
    return points.split(separator: " ").compactMap { pair in
        let xy = pair.split(separator: ",").compactMap { Double($0) }
        guard xy.count == 2 else { return nil }
        let seconds = (xy[0] - RotationPicture.Geometry.left) / width * geometry.seconds
        let count = (RotationPicture.Geometry.bottom - xy[1]) / height * Double(geometry.count)
        return (seconds, Int(count.rounded()))
    }
}

/// A text element's box, from its position, anchor, size and length: the
/// renderer's own estimate of sans-serif text (0.6 em a character, a little
/// more than the average of DejaVu Sans, which rsvg-convert uses here), so
/// the test holds the layout to what it promises, not to a font's metrics.
struct TextBox: CustomStringConvertible {
    let text: String
    let minX, maxX, minY, maxY: Double

    init?(_ element: XMLElement) {
        guard let x = element.attributes["x"].flatMap(Double.init),
            let y = element.attributes["y"].flatMap(Double.init),
            let size = element.attributes["font-size"].flatMap(Double.init)
        else { return nil }
        text = element.text
        let width = Double(text.count) * size * 0.6
        // A vertical label (the y axis's) turns about its own point.
        if let turn = element.attributes["transform"], turn.hasPrefix("rotate(-90") {
            minX = x - size * 0.8
            maxX = x + size * 0.2
            switch element.attributes["text-anchor"] {
            case "middle": (minY, maxY) = (y - width / 2, y + width / 2)
            case "end": (minY, maxY) = (y, y + width)
            default: (minY, maxY) = (y - width, y)
            }
            return
        }
        switch element.attributes["text-anchor"] {
        case "middle": (minX, maxX) = (x - width / 2, x + width / 2)
        case "end": (minX, maxX) = (x - width, x)
        default: (minX, maxX) = (x, x + width)
        }
        (minY, maxY) = (y - size * 0.8, y + size * 0.2)
    }

    init(text: String, minX: Double, maxX: Double, minY: Double, maxY: Double) {
        (self.text, self.minX, self.maxX, self.minY, self.maxY) = (text, minX, maxX, minY, maxY)
    }

    func intersects(_ other: TextBox) -> Bool {
        minX < other.maxX && other.minX < maxX && minY < other.maxY && other.minY < maxY
    }

    func isInside(minX: Double, maxX: Double, minY: Double, maxY: Double) -> Bool {
        self.minX >= minX && self.maxX <= maxX && self.minY >= minY && self.maxY <= maxY
    }

    var description: String { "'\(text)' [\(Int(minX))...\(Int(maxX))] x [\(Int(minY))...\(Int(maxY))]" }
}

@Suite struct RotationPictureTests {
    static let timeline = RotationTimeline(
        samples: [
            .init(seconds: 0, healthy: 4, groupSize: 4, newRelease: 0),
            .init(seconds: 1.5, healthy: 4, groupSize: 6, newRelease: 2),
            .init(seconds: 3, healthy: 6, groupSize: 6, newRelease: 2),
            .init(seconds: 3.2, healthy: 4, groupSize: 4, newRelease: 2),
            .init(seconds: 6, healthy: 4, groupSize: 6, newRelease: 4),
            .init(seconds: 7.5, healthy: 4, groupSize: 4, newRelease: 0),
        ],
        events: [
            .init(seconds: 0.1, kind: .batchStarted, label: "rolling 1/2"),
            .init(seconds: 3.1, kind: .batchConfirmed, label: "rolling 1/2"),
            .init(seconds: 3.1, kind: .checkpoint, label: "checkpoint 50%"),
            .init(seconds: 5.2, kind: .batchStarted, label: "rolling 2/2"),
            .init(seconds: 6.1, kind: .failure, label: "CloudWatch alarm web-5xx: ALARM <&> \"x\""),
            .init(seconds: 6.2, kind: .rollback, label: "rolling back to version 1"),
        ])

    @Test func theSVGParsesAndEachLineHasOnePointPerSample() throws {
        let picture = RotationPicture(
            timeline: Self.timeline, title: "kiln-rotate test: rolled-back", subtitle: "demo-test, release abc")
        let root = try XMLReader.parse(picture.svg)
        #expect(root.name == "svg")
        #expect(root.attributes["xmlns"] == "http://www.w3.org/2000/svg")
        #expect(root.attributes["viewBox"] == "0 0 860 440")
        let geometry = RotationPicture.Geometry(Self.timeline)
        #expect(geometry.seconds == 7.5 && geometry.count == 6)
        let lines = Dictionary(
            uniqueKeysWithValues: root.all("polyline").map {
                ($0.attributes["id"] ?? "", $0.attributes["points"] ?? "")
            })
        #expect(Set(lines.keys) == ["healthy", "group-size", "new-release"])
        for series in RotationPicture.Series.allCases {
            let read = values(lines[series.rawValue] ?? "", geometry)
            #expect(read.count == Self.timeline.samples.count, "\(series)")
            for (point, sample) in zip(read, Self.timeline.samples) {
                #expect(abs(point.seconds - sample.seconds) < 0.02, "\(series) at \(sample.seconds)")
                #expect(point.count == series.value(sample), "\(series) at \(sample.seconds)")
            }
        }
    }

    @Test func itIsReadableTitleAxesLegendAndEveryEventMarked() throws {
        let picture = RotationPicture(
            timeline: Self.timeline, title: "kiln-rotate test: rolled-back", subtitle: "demo-test, release abc")
        let root = try XMLReader.parse(picture.svg)
        let texts = root.all("text").map(\.text)
        #expect(texts.contains("kiln-rotate test: rolled-back"))
        #expect(texts.contains("demo-test, release abc"))
        #expect(texts.contains("seconds since the rotation started"))
        #expect(texts.contains("instances"))
        for legend in ["healthy capacity", "group size", "on the new release", "failure", "rollback", "checkpoint"] {
            #expect(texts.contains(legend), "legend \(legend)")
        }
        // Axis ticks: counts 0...6, seconds 0...7.
        for tick in ["0", "2", "4", "6"] { #expect(texts.contains(tick)) }
        let events = root.all("g").compactMap { $0.attributes["class"] }
        #expect(
            events == [
                "event batch-started", "event batch-confirmed", "event checkpoint", "event batch-started",
                "event failure", "event rollback",
            ])
        // Text from outside (an alarm's reason) is escaped, not markup.
        let failure = root.all("g").first { $0.attributes["class"] == "event failure" }
        #expect(failure?.string("title")?.contains("ALARM <&> \"x\"") == true)
        #expect(picture.svg.contains("&lt;&amp;&gt;"))
    }

    /// The labels stay readable (issue 16): each event's label inside the
    /// plot, clear of the legend and of the other labels; the failure's line
    /// inside the picture and clear of the y axis's label. The timeline is
    /// docs/rotation-example.svg's: events crowded near the right edge, a
    /// long failure, a rollback on top of it.
    @Test func labelsStayInsideThePlotAndClearOfTheLegendAndEachOther() throws {
        let failure = "CloudWatch alarm web-5xx: ALARM: 'Threshold Crossed: 1 datapoint [12.0] > 10'"
        let timeline = RotationTimeline(
            samples: [
                .init(seconds: 0, healthy: 4, groupSize: 4, newRelease: 0),
                .init(seconds: 5.8, healthy: 4, groupSize: 4, newRelease: 0),
            ],
            events: [
                .init(seconds: 0.2, kind: .batchStarted, label: "rolling 1/2"),
                .init(seconds: 2.2, kind: .batchConfirmed, label: "rolling 1/2"),
                .init(seconds: 2.2, kind: .checkpoint, label: "checkpoint 50%"),
                .init(seconds: 4.3, kind: .batchStarted, label: "rolling 2/2"),
                .init(seconds: 5.0, kind: .failure, label: failure),
                .init(seconds: 5.0, kind: .rollback, label: "rolling back to version 1"),
                .init(seconds: 5.3, kind: .batchConfirmed, label: "rollback 1/1"),
                .init(seconds: 5.35, kind: .batchStarted, label: "rollback 2/2"),
                .init(seconds: 5.8, kind: .batchConfirmed, label: "rollback 2/2"),
            ])
        let picture = RotationPicture(
            timeline: timeline, title: "kiln-rotate test: rolled-back",
            subtitle: "demo-test, release ffdc999e31f8877c (demo v2.0.0), version 1 to 2",
            failure: "\(failure) (and what the gate saw before it, at length, to run past the picture's edge)")
        let root = try XMLReader.parse(picture.svg)
        typealias G = RotationPicture.Geometry
        let labels = root.all("g").filter { ($0.attributes["class"] ?? "").hasPrefix("event") }
            .flatMap { $0.all("text") }.compactMap(TextBox.init)
        #expect(labels.count == timeline.events.count)
        let eventTexts = Set(labels.map(\.text))
        let others = root.all("text").compactMap(TextBox.init).filter { !eventTexts.contains($0.text) }
        let legend = others.filter { $0.minX >= G.right }
        #expect(legend.count == RotationPicture.Series.allCases.count + RotationTimeline.EventKind.allCases.count)
        let legendBox = TextBox(
            text: "legend", minX: G.right + 20, maxX: legend.map(\.maxX).max() ?? 0,
            minY: (legend.map(\.minY).min() ?? 0) - 8, maxY: legend.map(\.maxY).max() ?? 0)
        for (index, label) in labels.enumerated() {
            #expect(label.isInside(minX: G.left, maxX: G.right, minY: G.top, maxY: G.bottom), "\(label)")
            #expect(!label.intersects(legendBox), "\(label) runs over the legend \(legendBox)")
            for other in labels[(index + 1)...] {
                #expect(!label.intersects(other), "\(label) overlaps \(other)")
            }
        }
        let failureLine = try #require(others.first { $0.text.hasPrefix("failed: ") })
        let axisLabel = try #require(others.first { $0.text == "instances" })
        #expect(!failureLine.intersects(axisLabel), "\(failureLine) touches \(axisLabel)")
        #expect(failureLine.isInside(minX: 0, maxX: G.width, minY: 0, maxY: G.top), "\(failureLine)")
        #expect(axisLabel.isInside(minX: 0, maxX: G.left, minY: 0, maxY: G.height), "\(axisLabel)")
    }

    @Test func anEmptyTimelineSaysNothingWasReplaced() throws {
        let root = try XMLReader.parse(RotationPicture(timeline: RotationTimeline(), title: "t", subtitle: "s").svg)
        #expect(root.all("polyline").isEmpty)
        #expect(root.all("text").contains { $0.text == "no instance was replaced" })
    }

    /// A resumed run's timeline follows the killed run's, shifted by the time between their starts.
    @Test func theRunsOfOneRotationMakeOneTimeline() {
        let start = Date(timeIntervalSince1970: 1_000)
        var first = RotationTimeline()
        first.record(.init(seconds: 0, healthy: 2, groupSize: 2, newRelease: 0))
        first.mark(.batchStarted, "rolling 1/2", at: 1)
        var second = RotationTimeline()
        second.record(.init(seconds: 0.5, healthy: 2, groupSize: 4, newRelease: 2))
        second.mark(.batchStarted, "rolling 2/2", at: 2)
        var record = RotationTimelineRecord(
            environment: "test", autoScalingGroup: "g", release: "r", toVersion: 2,
            runs: [.init(run: "7/70", startedAt: start, timeline: first)])
        record.update(.init(run: "7/71", startedAt: start.addingTimeInterval(30), timeline: second))
        record.update(.init(run: "7/71", startedAt: start.addingTimeInterval(30), timeline: second))
        #expect(record.runs.count == 2, "a run's own timeline is replaced, not added twice")
        #expect(record.whole.samples.map(\.seconds) == [0, 30.5])
        #expect(record.whole.events.map(\.seconds) == [1, 32])
        #expect(record.whole.events.map(\.label) == ["rolling 1/2", "rolling 2/2"])
        var other = record
        other.toVersion = 3
        #expect(!record.isSameRotation(as: other))
    }

    @Test func tickStepsAreOneTwoOrFiveTimesAPowerOfTen() {
        #expect(RotationPicture.step(for: 7.5, most: 10) == 1)
        #expect(RotationPicture.step(for: 95, most: 10) == 10)
        #expect(RotationPicture.step(for: 140, most: 10) == 20)
        #expect(RotationPicture.step(for: 400, most: 8) == 50)
        #expect(RotationPicture.step(for: 1, most: 8) == 0.2)
    }

    @Test func nothingToDoStillWritesThePictureBesideTheReport() throws {
        let world = try RotateWorld(desired: 1)
        let ami = try world.makeAMI(health: "healthy")
        try world.prepare(ami: ami)
        #expect(try world.rotate().code == 0)
        let deployed = try XMLReader.parse(try #require(world.read("kiln/rotation-test.svg")))
        #expect(deployed.all("text").contains { $0.text == "kiln-rotate test: deployed" })
        #expect(deployed.all("polyline").count == 3)
        try FileManager.default.removeItem(atPath: world.project.file("kiln/rotation-test.svg"))
        let (code, output) = try world.rotate()
        #expect(code == 0 && output.contains("nothing to do"), "\(output)")
        let again = try XMLReader.parse(try #require(world.read("kiln/rotation-test.svg")))
        #expect(again.all("text").contains { $0.text == "kiln-rotate test: nothing-to-do" })
    }

    /// A rolled-back run against moto: batch 1, a checkpoint, batch 2, an
    /// alarm, the rollback. `KILN_EXAMPLE_SVG=<path>` keeps its picture
    /// (docs/rotation-example.svg is one).
    @Test func aRolledBackRunDrawsItsBatchesCheckpointFailureAndRollback() throws {
        let world = try RotateWorld(desired: 4)
        try world.putAlarm("web-5xx")
        try world.setAlarm("web-5xx", .ok, reason: "fine")
        let ami = try world.makeAMI(health: "healthy", bootDelay: 1.5)
        try world.prepare(
            ami: ami, rotate: "        alarms: [web-5xx]\n      checkpoints: [50%]\n      checkpoint_soak: 2s")
        let wait = world.rotateInBackground()
        // Batch 2 launched: a third instance on the release (batch 1 made two).
        #expect(
            try eventually {
                let state = try world.groupState()
                let images = try world.client.describeInstances(instanceIDs: state.instances.map(\.id))
                return images.filter { $0.imageID == ami }.count >= 3
            })
        usleep(500_000)
        try world.setAlarm("web-5xx", .alarm, reason: "Threshold Crossed: 1 datapoint [12.0] > 10")
        let (code, output) = wait()
        #expect(code == 3, "\(output)")
        let svg = try #require(world.read("kiln/rotation-test.svg"))
        let root = try XMLReader.parse(svg)
        let kinds = root.all("g").compactMap { $0.attributes["class"] }
        #expect(kinds.filter { $0 == "event batch-started" }.count >= 3, "\(kinds)")
        #expect(root.all("text").contains { $0.text.hasPrefix("failed: CloudWatch alarm web-5xx: ALARM") })
        #expect(
            kinds.contains("event checkpoint") && kinds.contains("event failure") && kinds.contains("event rollback"))
        let points = root.all("polyline").first { $0.attributes["id"] == "healthy" }?.attributes["points"] ?? ""
        #expect(points.split(separator: " ").count >= 5, "one point a poll")
        if let keep = ProcessInfo.processInfo.environment["KILN_EXAMPLE_SVG"] {
            try svg.write(toFile: keep, atomically: true, encoding: .utf8)
        }
    }
}
