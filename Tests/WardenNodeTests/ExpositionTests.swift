import Testing

@testable import WardenNode

/// Reading and merging the shims' metrics files.
@Suite struct ExpositionTests {
    static let first = """
        # HELP warden_tasks Tasks.
        # TYPE warden_tasks gauge
        warden_tasks{namespace="k8s.io",pod="p1",state="running"} 2
        # HELP warden_termination_seconds Terminations.
        # TYPE warden_termination_seconds histogram
        warden_termination_seconds_bucket{namespace="k8s.io",pod="p1",reason="kill",le="1.0"} 1
        warden_termination_seconds_count{namespace="k8s.io",pod="p1",reason="kill"} 1
        """
    static let second = """
        # HELP warden_tasks Tasks.
        # TYPE warden_tasks gauge
        warden_tasks{namespace="k8s.io",pod="p2",state="running"} 1
        warden_container_state{namespace="k8s.io",pod="p2",container="a \\"b\\"",state="running"} 1
        """

    @Test func samplesAndLabelsAreRead() {
        let samples = Exposition.samples(Self.second)
        #expect(samples.count == 2)
        #expect(samples[0] == .init(name: "warden_tasks", labels: ["namespace": "k8s.io", "pod": "p2", "state": "running"], value: 1))
        #expect(samples[1].labels["container"] == "a \"b\"")
    }

    @Test func mergingKeepsEachFamilyOnceWithEverySample() {
        let merged = Exposition.merge([Self.first, Self.second])
        #expect(merged.components(separatedBy: "# TYPE warden_tasks gauge").count == 2, "TYPE once:\n\(merged)")
        #expect(merged.contains("pod=\"p1\",state=\"running\"} 2") && merged.contains("pod=\"p2\",state=\"running\"} 1"))
        #expect(merged.contains("warden_termination_seconds_count{"))
        // Families in name order, histogram samples under their family.
        let tasks = merged.range(of: "# TYPE warden_tasks")!.lowerBound
        let termination = merged.range(of: "# TYPE warden_termination_seconds")!.lowerBound
        #expect(tasks < termination)
    }
}
