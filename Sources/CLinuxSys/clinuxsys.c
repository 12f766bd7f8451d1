#define _GNU_SOURCE
#include "clinuxsys.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sched.h>
#include <malloc.h>
#include <stdio.h>
#include <linux/netlink.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

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

int clinux_bind_unix(int fd, const char *path) {
    struct sockaddr_un addr;
    if (fill_sockaddr(&addr, path) != 0) return -1;
    return bind(fd, (struct sockaddr *)&addr, sizeof(addr));
}

int clinux_connect_unix(int fd, const char *path) {
    struct sockaddr_un addr;
    if (fill_sockaddr(&addr, path) != 0) return -1;
    int rc;
    do {
        rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    } while (rc != 0 && errno == EINTR);
    return rc;
}

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

struct thread_start {
    void (*body)(void *);
    void *context;
};

static void *thread_trampoline(void *arg) {
    struct thread_start start = *(struct thread_start *)arg;
    free(arg);
    start.body(start.context);
    return NULL;
}

int clinux_spawn_detached_thread(void (*body)(void *), void *context) {
    struct thread_start *start = malloc(sizeof(*start));
    if (start == NULL) {
        errno = ENOMEM;
        return -1;
    }
    start->body = body;
    start->context = context;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    // The threads only shuttle bytes; a small stack keeps the shim's footprint down.
    pthread_attr_setstacksize(&attr, 512 * 1024);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, thread_trampoline, start);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(start);
        errno = rc;
        return -1;
    }
    return 0;
}

void clinux_set_thread_name(const char *name) {
    char buf[16];
    strncpy(buf, name, sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = 0;
    pthread_setname_np(pthread_self(), buf);
}

int clinux_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int clinux_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int clinux_waitid_pidfd(int pidfd, int extra_options, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int rc;
    do {
        rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED | extra_options);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return -1;
    *code = info.si_pid == 0 ? 0 : info.si_code;
    *status = info.si_status;
    return 0;
}

int clinux_peek_exited_child(pid_t *pid) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int rc;
    do {
        rc = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return -1;
    *pid = info.si_pid;
    return 0;
}

int clinux_reap_pid(pid_t pid, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    int rc;
    do {
        rc = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) return -1;
    *code = info.si_pid == 0 ? 0 : info.si_code;
    *status = info.si_status;
    return 0;
}

int clinux_set_child_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

int clinux_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int clinux_epoll_control(int epfd, int op, int fd, unsigned int events, unsigned long long tag) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.u64 = tag;
    return epoll_ctl(epfd, op == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

int clinux_epoll_wait_events(int epfd, unsigned long long *tags, unsigned int *events, int max, int timeout_ms) {
    struct epoll_event ready[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, ready, max, timeout_ms);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        tags[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return n;
}

int clinux_epoll_remove(int epfd, int fd) {
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

int clinux_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int clinux_eventfd_signal(int fd) {
    uint64_t one = 1;
    return write(fd, &one, sizeof(one)) == sizeof(one) ? 0 : -1;
}

void clinux_eventfd_drain(int fd) {
    uint64_t value;
    while (read(fd, &value, sizeof(value)) == sizeof(value)) {
    }
}

int clinux_spawn_fds(const char *path, char *const argv[], char *const envp[], const int *fds, int count,
                     int new_session, pid_t *pid) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    // Park every source above the target range and above every source first, so a source
    // that is also a target number (fd 3 handed over as fd 4, say) is not overwritten before
    // it is copied. Just above them, not at a fixed high number: a soft RLIMIT_NOFILE of 256
    // makes dup2 to fd 1000 fail (and adddup2 refuses such a target up front).
    int park = count;
    for (int i = 0; i < count; i++)
        if (fds[i] >= park) park = fds[i] + 1;
    int rc = 0;
    for (int i = 0; i < count && rc == 0; i++) rc = posix_spawn_file_actions_adddup2(&actions, fds[i], park + i);
    for (int i = 0; i < count && rc == 0; i++) {
        rc = posix_spawn_file_actions_adddup2(&actions, park + i, i);
        if (rc == 0) rc = posix_spawn_file_actions_addclose(&actions, park + i);
    }
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
        errno = rc;
        return -1;
    }
    // Nothing else crosses over, even a descriptor the parent inherited without
    // close-on-exec (a parent's pipe held by a long-lived child would never see EOF).
    posix_spawn_file_actions_addclosefrom_np(&actions, count);
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_session) flags |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&attr, flags);
    rc = posix_spawn(pid, path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int clinux_receive_fd(int sock) {
    char data[256];
    struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
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

int clinux_send_fd(int sock, int fd) {
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
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

struct netns_socket_request {
    const char *path;
    int result;
    int error;
};

static void *netns_socket_thread(void *argument) {
    struct netns_socket_request *request = argument;
    request->result = -1;
    int ns = open(request->path, O_RDONLY | O_CLOEXEC);
    if (ns < 0) {
        request->error = errno;
        return NULL;
    }
    // This thread alone enters the namespace and ends right after: nothing else runs in it.
    if (setns(ns, CLONE_NEWNET) != 0) {
        request->error = errno;
        close(ns);
        return NULL;
    }
    close(ns);
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        request->error = errno;
        return NULL;
    }
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0) {
        request->error = errno;
        close(fd);
        return NULL;
    }
    request->result = fd;
    return NULL;
}

int clinux_netlink_route_socket_in_netns(const char *netns_path) {
    struct netns_socket_request request = {.path = netns_path, .result = -1, .error = 0};
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, netns_socket_thread, &request);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_join(thread, NULL);
    if (request.result < 0) errno = request.error;
    return request.result;
}

unsigned long long clinux_process_start_time(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buffer[1024];
    ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
    close(fd);
    if (n <= 0) return 0;
    buffer[n] = 0;
    // comm may hold spaces and parentheses: fields are counted after the last ')'.
    char *cursor = strrchr(buffer, ')');
    if (!cursor) return 0;
    cursor++;
    // After ')': field 3 (state) … field 22 (starttime) is the 20th token.
    for (int field = 3; field < 22; field++) {
        cursor = strchr(cursor + 1, ' ');
        if (!cursor) return 0;
    }
    return strtoull(cursor + 1, NULL, 10);
}

int clinux_limit_malloc_arenas(int count) {
    return mallopt(M_ARENA_MAX, count) == 1 ? 0 : -1;
}

void clinux_malloc_trim(void) {
    malloc_trim(0);
}

unsigned long long clinux_raise_nofile_to_hard(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    if (limit.rlim_cur < limit.rlim_max) {
        struct rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return (unsigned long long)raised.rlim_cur;
    }
    return (unsigned long long)limit.rlim_cur;
}
