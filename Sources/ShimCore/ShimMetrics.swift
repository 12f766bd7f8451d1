import LinuxSys
import Prometheus
import ShimLayout
import Synchronization

/// One shim's metrics (issue 14), in Prometheus' exposition format through swift-prometheus,
/// written to `<metrics_dir>/<namespace>_<pod>.prom` (atomically replaced) for
/// node-exporter's textfile collector, and read by `warden metrics` and `warden status`.
/// Every series carries the shim's `namespace` and `pod`, so the files of all shims on a node
/// can be collected together. The file goes when the shim exits.
///
/// Writes are coalesced: a change schedules one write `coalescing` later, so a burst of
/// requests is one write and an idle shim writes nothing.
public final class ShimMetrics: Sendable {
    /// What a termination, a runsc call, an RPC ended as.
    public enum RunscOutcome: String, Sendable { case ok, failed, timedOut = "timed_out" }

    private let registry = PrometheusCollectorRegistry()
    private let labels: [(String, String)]
    private let path: String?
    /// Where crash records go (the metrics directory), with the pod they name.
    private let crashRecords: (directory: String, namespace: String, pod: String)?
    private let coalescing: Duration
    private let state = Mutex(State())
    /// Filled in before each write (tasks by state, containers), from the pod's actor.
    private let snapshot = Mutex<(@Sendable () async -> PodSnapshot)?>(nil)
    /// Run after each write: the end of a burst of changes (ShimServer's idle housekeeping).
    private let written = Mutex<(@Sendable () -> Void)?>(nil)

    private struct State {
        var writePending = false
        var closed = false
        /// Label sets of the per-container gauges last written, to drop the ones that went.
        var containerSeries: Set<[String]> = []
    }

    /// The pod's tasks as the metrics show them.
    public struct PodSnapshot: Sendable {
        /// state ("created", "running", "paused", "stopped") → number of tasks (containers and execs).
        public var tasksByState: [String: Int] = [:]
        /// container id → its init process's state.
        public var containers: [String: String] = [:]
        public init() {}
    }

    static let terminationBuckets: [Duration] = [
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2),
        .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120),
    ]
    static let runscBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
    ]
    static let taskStates = ["created", "running", "paused", "stopped"]

    /// `directory` nil: counted, never written (the `delete` command, tests).
    public init(directory: String?, namespace: String, pod: String, coalescing: Duration = .milliseconds(200)) {
        labels = [("namespace", namespace), ("pod", pod)]
        path = directory.map { "\($0)/\(Self.fileName(namespace: namespace, pod: pod))" }
        crashRecords = directory.map { ($0, namespace, pod) }
        self.coalescing = coalescing
        // Families that exist from the start, so a scrape sees zeros rather than nothing.
        gauge("warden_shim_start_time_seconds", "When this shim started (Unix time).", [("pid", "\(ProcessIdentity.pid)")])
            .set(to: Double(WallClock.now().seconds))
        for step in EscalationCounters.Step.allCases { escalationCounter(step) }
        exitsCounter()
        for state in Self.taskStates { gauge("warden_tasks", Self.tasksHelp, [("state", state)]).set(to: 0.0) }
    }

    public static func fileName(namespace: String, pod: String) -> String { ShimFiles.metrics(namespace: namespace, pod: pod) }

    /// Whether writes happen at all (a `[metrics] dir` is set).
    public var writes: Bool { path != nil }

    /// `body` runs after each write (writes are coalesced, so it marks a burst's end).
    public func afterEachWrite(_ body: @escaping @Sendable () -> Void) {
        written.withLock { $0 = body }
    }

    /// Where the pod's task states come from at each write.
    public func setSnapshot(_ body: @escaping @Sendable () async -> PodSnapshot) {
        snapshot.withLock { $0 = body }
    }

    // MARK: what is counted

    /// A termination ladder ended (`reason` as in its record: kill, wedged, …).
    func terminationEnded(sandbox: String, reason record: String, took: Duration, survived: Bool) {
        let reason = Self.reasonLabel(record)
        registry.makeDurationHistogram(
            descriptor: descriptor("warden_termination_seconds", "How long a pod sandbox's termination ladder took, by reason."),
            labels: labels + [("reason", reason)], buckets: Self.terminationBuckets
        ).record(took)
        gauge(
            "warden_last_termination_seconds", "The last termination of this shim's sandbox: its duration, reason and outcome.",
            [("sandbox", sandbox), ("reason", reason), ("outcome", survived ? "survived_sigkill" : "stopped")]
        ).set(to: Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18)
        changed()
    }

    /// The termination record's reason as a label of a few values: kill (a Kill of the pod),
    /// wedged (a container's runsc kill hung, or its exit never came), failed (a failed
    /// create or start torn down), created (Kill of a task never started).
    static func reasonLabel(_ reason: String) -> String {
        if reason.hasPrefix("runsc kill of") || reason.contains("not reported exited") { return "wedged" }
        if reason == "kill of a created task" { return "created" }
        return reason
    }

    /// A step of the escalation ladder taken (the counters of the termination record).
    func escalation(_ step: EscalationCounters.Step, _ amount: Int) {
        escalationCounter(step).increment(by: Int64(amount))
        changed()
    }

    /// A TaskExit published.
    func exitPublished() {
        exitsCounter().increment()
        changed()
    }

    /// A sandbox the kernel's OOM killer ended (TaskOOM published for its containers).
    func oomKilled() {
        counter("warden_sandbox_oom_kills_total", "Sandboxes killed by the kernel's OOM killer.", []).increment()
        changed()
    }

    /// A sandbox or gofer crashed: counted by reason, kept as the last crash (its time the
    /// value, what happened the labels, for `warden status`), and recorded for `warden doctor`.
    func sandboxCrashed(_ crash: SandboxCrash) {
        counter("warden_sandbox_crashes_total", "Sandboxes and gofers that died without being asked to, by reason.", [
            ("reason", crash.reason.rawValue)
        ]).increment()
        gauge(
            "warden_last_sandbox_crash_timestamp_seconds",
            "When this shim's sandbox last crashed (Unix time); the labels say which process, how and why.",
            [("sandbox", crash.sandbox), ("process", crash.process), ("pid", "\(crash.pid)"), ("reason", crash.reason.rawValue),
             ("status", crash.status), ("detail", crash.detail)]
        ).set(to: crash.at)
        if let crashRecords {
            try? CrashRecords.write(crash, directory: crashRecords.directory, namespace: crashRecords.namespace, pod: crashRecords.pod)
        }
        changed()
    }

    /// A runsc call ended.
    public func runscCall(verb: String, took: Duration, outcome: RunscOutcome) {
        registry.makeDurationHistogram(
            descriptor: descriptor("warden_runsc_call_seconds", "runsc calls by verb and outcome."),
            labels: labels + [("verb", verb), ("outcome", outcome.rawValue)], buckets: Self.runscBuckets
        ).record(took)
        if outcome == .timedOut { runscTimeoutsCounter(verb).increment() }
        changed()
    }

    /// Which way a sandbox's wait, kill, ps and stats go ("control": its control server;
    /// "cli": runsc's CLI): 1 for the path it is on, 0 for the other.
    func runtimePath(sandbox: String, _ path: String) {
        for candidate in ["control", "cli"] {
            gauge("warden_runtime_path", "Which way a sandbox's wait, kill, ps and stats go: its control server or runsc's CLI.", [
                ("sandbox", sandbox), ("path", candidate),
            ]).set(to: candidate == path ? 1.0 : 0.0)
        }
        changed()
    }

    /// A call to a sandbox's control server ended (`call`: wait, kill, ps, events, probe).
    func controlCall(_ call: String, took: Duration, outcome: RunscOutcome) {
        registry.makeDurationHistogram(
            descriptor: descriptor("warden_control_call_seconds", "Calls to sandboxes' control servers by call and outcome."),
            labels: labels + [("call", call), ("outcome", outcome.rawValue)], buckets: Self.runscBuckets
        ).record(took)
        if outcome == .timedOut { runscTimeoutsCounter(call).increment() }
        changed()
    }

    /// A ttrpc request answered (`code`: the gRPC status code number).
    public func requestAnswered(service: String, method: String, code: Int32) {
        counter(
            "warden_ttrpc_requests_total", "ttrpc requests answered, by service, method and status code.",
            [("service", service), ("method", method), ("code", "\(code)")]
        ).increment()
        changed()
    }

    // MARK: writing

    /// Schedules a write (coalesced).
    func changed() {
        guard path != nil else { return }
        let schedule = state.withLock { state -> Bool in
            guard !state.writePending, !state.closed else { return false }
            state.writePending = true
            return true
        }
        guard schedule else { return }
        Task { [self] in
            try? await Timers.sleep(for: coalescing)
            state.withLock { $0.writePending = false }
            await write()
        }
    }

    /// Writes the file now (after refreshing the task gauges).
    public func write() async {
        guard let path else { return }
        if let body = snapshot.withLock({ $0 }) { apply(await body()) }
        let bytes = registry.emitToBuffer()
        let closed = state.withLock { $0.closed }
        guard !closed else { return }
        do throws(Errno) {
            // 0644: node-exporter usually runs as another user.
            try Files.write(path, bytes, mode: 0o644)
        } catch {
            // Nowhere to report but the log; metrics never fail a request.
        }
        written.withLock { $0 }?()
    }

    /// The exposition text as it stands (tests, `delete`).
    public func text() -> String { registry.emitToString() }

    /// Removes the file (the shim is exiting) and its directory if that is now empty.
    public func close() {
        guard let path else { return }
        state.withLock { $0.closed = true }
        Files.remove(path)
        if let slash = path.lastIndex(of: "/") { Directories.removeIfEmpty(String(path[..<slash])) }
    }

    private func apply(_ pod: PodSnapshot) {
        for state in Self.taskStates {
            gauge("warden_tasks", Self.tasksHelp, [("state", state)]).set(to: Double(pod.tasksByState[state] ?? 0))
        }
        let current = Set(pod.containers.map { [$0.key, $0.value] })
        let gone = state.withLock { state -> Set<[String]> in
            defer { state.containerSeries = current }
            return state.containerSeries.subtracting(current)
        }
        for series in gone {
            registry.unregisterGauge(gauge("warden_container_state", Self.containerHelp, [("container", series[0]), ("state", series[1])]))
        }
        for series in current {
            gauge("warden_container_state", Self.containerHelp, [("container", series[0]), ("state", series[1])]).set(to: 1.0)
        }
    }

    static let tasksHelp = "Tasks (containers and execs) of this shim's pod, by state."
    static let containerHelp = "1 for each container of the pod, labelled with its state."

    @discardableResult
    private func escalationCounter(_ step: EscalationCounters.Step) -> Counter {
        counter("warden_escalation_steps_total", "Escalation-ladder steps taken, by step.", [("step", step.rawValue)])
    }

    @discardableResult
    private func exitsCounter() -> Counter {
        counter("warden_exits_published_total", "TaskExit events published.", [])
    }

    /// Timeouts of runsc's CLI and of the sandbox's control server alike: the alert on
    /// wedged sandboxes (shim-config/alerts.yaml) holds on either path.
    private func runscTimeoutsCounter(_ verb: String) -> Counter {
        counter("warden_runsc_call_timeouts_total", "runsc calls (its CLI or the sandbox's control server) that hit their deadline, by verb.", [("verb", verb)])
    }

    private func counter(_ name: String, _ help: String, _ extra: [(String, String)]) -> Counter {
        registry.makeCounter(descriptor: descriptor(name, help), labels: labels + extra)
    }

    private func gauge(_ name: String, _ help: String, _ extra: [(String, String)]) -> Gauge {
        registry.makeGauge(descriptor: descriptor(name, help), labels: labels + extra)
    }

    /// swift-prometheus builds a name from parts; ours are whole names.
    private func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
