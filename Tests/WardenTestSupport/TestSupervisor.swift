import Supervisor

/// A supervisor for a test process. The test process also runs Foundation.Process children,
/// which Foundation reaps itself, so it never sweeps unknown children (that path needs a
/// process of its own: Tests/Tools/supervisor-sweep-probe).
public func testSupervisor() throws -> Supervisor {
    var options = Supervisor.Options()
    options.reapsUnknownChildren = false
    return try Supervisor(options: options)
}
