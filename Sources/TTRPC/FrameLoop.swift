import LinuxSys

/// The loop every ttrpc socket of a process is served on: the server's listener, each
/// connection containerd opens (one per task it loads, so a pod of ten containers has ten),
/// and the client connection events go out on, on one thread (LinuxSys `EventLoop`). A shim's
/// thread count is then the same for one container or fifty. Handlers run on the loop thread
/// and must not block: sockets are non-blocking, decoded requests are handed to tasks.
public typealias FrameLoop = EventLoop

extension EventLoop {
    /// A loop for ttrpc sockets.
    public static func frames() throws(Errno) -> EventLoop { try EventLoop(name: "ttrpc") }
}
