import CLinuxSys

/// Dedicated OS threads for blocking loops (socket readers, accept), which must never run on
/// Swift's cooperative pool: on a 2-core node that pool has two threads, and one blocked
/// read would stall every RPC.
public enum DetachedThread {
    private final class Start {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Starts `body` on a new detached thread named `name`.
    public static func spawn(name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        let rc = clinux_spawn_detached_thread({ context in
            guard let context else { return }
            let start = Unmanaged<Start>.fromOpaque(context).takeRetainedValue()
            clinux_set_thread_name(start.name)
            start.body()
        }, start)
        if rc != 0 {
            Unmanaged<Start>.fromOpaque(start).release()
            throw Errno.current("pthread_create")
        }
    }
}

/// The process's malloc (glibc), tuned for a long-lived, mostly idle shim.
public enum MallocTuning {
    /// Caps malloc arenas: glibc gives a thread that allocates under contention its own
    /// arena (64 MiB reserved, 132 KiB+ touched each), up to 8 per core; a shim's threads
    /// mostly wait, so one shared arena costs nothing in speed.
    public static func limitArenas(_ count: Int32) {
        _ = clinux_limit_malloc_arenas(count)
    }

    /// Returns free heap memory to the kernel (after a large frame was handled).
    public static func trim() {
        clinux_malloc_trim()
    }

    /// Drops this process's mappings of its own code pages (they stay in the page cache,
    /// shared; a later touch maps them again). Returns the bytes released, or -1.
    @discardableResult
    public static func releaseCodePages() -> Int {
        Int(clinux_release_code_pages())
    }
}

/// The process's descriptor limit.
public enum OpenFileLimit {
    /// Raises the soft RLIMIT_NOFILE to the hard one (as Go's runtime does for containerd's
    /// own shims): the shim holds a descriptor per connection, stream, pidfd and pipe, and
    /// a soft limit of 1024 is what a peer opening connections runs it out of. Processes
    /// the shim starts keep the original limit: the spawn helper was forked before this.
    /// Returns the soft limit now in force.
    @discardableResult
    public static func raiseToHard() -> UInt64 {
        UInt64(clinux_raise_nofile_to_hard())
    }
}

/// The process's executor for Swift concurrency (CLinuxSys/executor.c): libdispatch's pool
/// wakes every second for the life of the process once it has run anything; this one sleeps
/// while nothing happens. For the shim server only; install before the first task.
public enum GlobalExecutor {
    /// `base` workers (at least one), more up to `max` only while every worker is blocked.
    public static func install(base: Int, max: Int) throws(Errno) {
        if clinux_executor_install(Int32(base), Int32(max)) != 0 { throw Errno.current("executor") }
    }

    /// Worker threads, how many of them are idle, and the timers pending.
    public static var counts: (threads: Int, idle: Int, timers: Int) {
        var threads: Int32 = 0
        var idle: Int32 = 0
        var timers: Int32 = 0
        clinux_executor_counts(&threads, &idle, &timers)
        return (Int(threads), Int(idle), Int(timers))
    }
}
