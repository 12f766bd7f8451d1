import CLinuxSys
import Glibc

/// Terminals.
public enum Terminal {
    public static func setWindowSize(_ fd: Int32, width: UInt16, height: UInt16) throws(Errno) {
        if clinux_set_window_size(fd, width, height) != 0 { throw Errno.current("ioctl(TIOCSWINSZ)") }
    }
}

extension Terminal {
    /// A new pty pair (fake-runsc's terminal, handed to the shim like runsc does).
    public static func openPair() throws(Errno) -> (master: Int32, slave: Int32) {
        var master: Int32 = -1
        var slave: Int32 = -1
        if clinux_open_pty(&master, &slave) != 0 { throw Errno.current("openpty") }
        return (master, slave)
    }
}
