// Unix sockets, descriptor passing (SCM_RIGHTS) and pipes: the calls Glibc's Swift module
// hides (sockaddr_un, struct ucred, cmsg macros) or makes awkward.
#define _GNU_SOURCE
#include "clinuxsys.h"
#include "message.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_sockaddr(struct sockaddr_un *addr, const char *path) {
    size_t len = strlen(path);
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    if (len == 0 || len >= sizeof(addr->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(addr->sun_path, path, len);
    return 0;
}

/* A path longer than sun_path (runsc's control socket under a pod's root often is) is
 * reached through its directory: "/proc/self/fd/<dir fd>/<name>", as runsc itself does. */
static int with_unix_address(int fd, const char *path, int connecting) {
    struct sockaddr_un addr;
    int dirfd = -1;
    if (strlen(path) >= sizeof(addr.sun_path)) {
        const char *slash = strrchr(path, '/');
        if (slash == NULL || slash == path) {
            errno = ENAMETOOLONG;
            return -1;
        }
        char directory[4096];
        size_t length = (size_t)(slash - path);
        if (length >= sizeof(directory)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(directory, path, length);
        directory[length] = 0;
        dirfd = open(directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) return -1;
        char shortened[sizeof(addr.sun_path)];
        int written = snprintf(shortened, sizeof(shortened), "/proc/self/fd/%d/%s", dirfd, slash + 1);
        if (written < 0 || (size_t)written >= sizeof(shortened)) {
            close(dirfd);
            errno = ENAMETOOLONG;
            return -1;
        }
        if (fill_sockaddr(&addr, shortened) != 0) {
            close(dirfd);
            return -1;
        }
    } else if (fill_sockaddr(&addr, path) != 0) {
        return -1;
    }
    int rc;
    do {
        rc = connecting ? connect(fd, (struct sockaddr *)&addr, sizeof(addr)) : bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    } while (rc != 0 && errno == EINTR);
    if (dirfd >= 0) {
        int saved = errno;
        close(dirfd);
        errno = saved;
    }
    return rc;
}

int clinux_bind_unix(int fd, const char *path) { return with_unix_address(fd, path, 0); }

int clinux_connect_unix(int fd, const char *path) { return with_unix_address(fd, path, 1); }

int clinux_accept_cloexec(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
}

int clinux_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int clinux_receive_fd(int sock) {
    char data[256];
    struct iovec iov;
    CLINUX_FD_CONTROL(1) control;
    struct msghdr msg;
    clinux_message_init(&msg, &iov, data, sizeof(data), control.buf, sizeof(control.buf));
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg == NULL || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
        errno = EBADMSG;
        return -1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
    return fd;
}

int clinux_send_fd(int sock, int fd) {
    char byte = 0;
    struct iovec iov;
    CLINUX_FD_CONTROL(1) control;
    struct msghdr msg;
    clinux_message_init(&msg, &iov, &byte, 1, control.buf, sizeof(control.buf));
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : 0;
}

int clinux_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int clinux_set_blocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

void clinux_ignore_sigpipe(void) {
    signal(SIGPIPE, SIG_IGN);
}
