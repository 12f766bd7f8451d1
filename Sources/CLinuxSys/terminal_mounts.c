// Terminals (pty pairs, window size) and mount/umount2.
#define _GNU_SOURCE
#include "clinuxsys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

int clinux_open_pty(int *master, int *slave) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -1;
    char name[128];
    if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, sizeof(name)) != 0) {
        int saved = errno;
        close(m);
        errno = saved;
        return -1;
    }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        int saved = errno;
        close(m);
        errno = saved;
        return -1;
    }
    *master = m;
    *slave = s;
    return 0;
}

int clinux_set_window_size(int fd, unsigned short width, unsigned short height) {
    struct winsize ws;
    memset(&ws, 0, sizeof(ws));
    ws.ws_col = width;
    ws.ws_row = height;
    return ioctl(fd, TIOCSWINSZ, &ws);
}

int clinux_mount(const char *source, const char *target, const char *type, unsigned long flags, const char *data) {
    return mount(source, target, type, flags, data);
}

int clinux_unmount(const char *target, int flags) {
    return umount2(target, flags);
}
