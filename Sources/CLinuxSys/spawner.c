// The spawn helper: a process forked from the shim before its seccomp filter is loaded,
// which execs the processes the filtered shim may not (execve is not on its allow-list).
//
// The helper creates each process with clone(CLONE_PARENT): the new process is the shim's
// child, not the helper's, so the shim's Supervisor opens its pidfd, reaps it and gets its
// exit status exactly as for a process it spawned itself. The helper never waits for
// anything. It runs only C from here (the shim was single-threaded when it forked, and the
// helper never touches the Swift runtime), and exits when the shim's end of the socket
// closes or the shim dies (PR_SET_PDEATHSIG).
#define _GNU_SOURCE
#include "clinuxsys.h"
#include "message.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

// glibc's sigaction refuses its two internal signals (32 and 33, SIGCANCEL and SIGSETXID),
// and an ignored disposition survives execve: the shim's image had them ignored, so every
// runsc started with them ignored where the runc shim's start with none. The raw syscall
// takes them; a zeroed kernel sigaction is SIG_DFL with no flags and an empty mask.
static void reset_internal_signals(void) {
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } defaults;
    memset(&defaults, 0, sizeof(defaults));
    for (int sig = 32; sig <= 33; sig++) syscall(SYS_rt_sigaction, sig, &defaults, NULL, sizeof(defaults.mask));
}

#ifdef WARDEN_TEST_HOOKS
int clinux_test_ignore_signal(int sig, int ignore) {
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } action;
    memset(&action, 0, sizeof(action));
    action.handler = ignore ? SIG_IGN : SIG_DFL;
    return (int)syscall(SYS_rt_sigaction, sig, &action, NULL, sizeof(action.mask));
}
#endif

#define SPAWNER_MAGIC 0x57535031u  // "WSP1"
#define SPAWNER_MAX_MESSAGE 65536
#define SPAWNER_MAX_FDS 16
#define SPAWNER_MAX_STRINGS 1024

struct spawner_header {
    uint32_t magic;
    uint32_t argc;  // strings after the path: argv[0..argc) then envp
    uint32_t envc;
    uint32_t new_session;
};

struct spawner_reply {
    int32_t pid;    // the new process, also when its execve failed (a zombie the shim reaps)
    int32_t error;  // 0, or the errno of clone/execve/a malformed request
};

static void spawner_child(const char *path, char **argv, char **envp, const int *fds, int count,
                          int new_session, int report) {
    // The report pipe, then the parked sources, go just above every source and target (not
    // at a fixed high number, which a low RLIMIT_NOFILE would forbid).
    int base = count;
    for (int i = 0; i < count; i++)
        if (fds[i] >= base) base = fds[i] + 1;
    if (report >= base) base = report + 1;
    int keep = fcntl(report, F_DUPFD_CLOEXEC, base);
    int error = 0;
    if (keep < 0) _exit(127);
    int park = keep + 1;
    for (int i = 0; i < count && error == 0; i++)
        if (dup2(fds[i], park + i) < 0) error = errno;
    for (int i = 0; i < count && error == 0; i++)
        if (dup2(park + i, i) < 0) error = errno;
    if (error == 0) {
        // Only descriptors 0..count-1 cross over (and the report pipe, close-on-exec).
        syscall(SYS_close_range, (unsigned)count, (unsigned)keep - 1, 0);
        syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0);
        sigset_t none;
        sigemptyset(&none);
        struct sigaction defaults;
        memset(&defaults, 0, sizeof(defaults));
        defaults.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &defaults, NULL);
        reset_internal_signals();
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (new_session && setsid() < 0) error = errno;
    }
    if (error == 0) {
        execve(path, argv, envp);
        error = errno;
    }
    ssize_t ignored = write(keep, &error, sizeof(error));
    (void)ignored;
    _exit(127);
}

static int spawner_handle(int sock, char *buffer, ssize_t length, const int *fds, int fdcount,
                          struct spawner_reply *reply) {
    static char *strings[SPAWNER_MAX_STRINGS + 2];
    struct spawner_header header;
    if ((size_t)length < sizeof(header)) return EBADMSG;
    memcpy(&header, buffer, sizeof(header));
    if (header.magic != SPAWNER_MAGIC) return EBADMSG;
    if (header.argc == 0 || header.argc + header.envc + 1 > SPAWNER_MAX_STRINGS) return E2BIG;
    if (fdcount < 3) return EBADMSG;
    // The path, then argc + envc NUL-terminated strings; each list ends in NULL.
    char *cursor = buffer + sizeof(header);
    char *end = buffer + length;
    uint32_t total = 1 + header.argc + header.envc;
    uint32_t slot = 0;
    for (uint32_t i = 0; i < total; i++) {
        char *nul = memchr(cursor, 0, (size_t)(end - cursor));
        if (nul == NULL) return EBADMSG;
        strings[slot++] = cursor;
        if (i == header.argc) strings[slot++] = NULL;  // argv ends after path + argc strings
        cursor = nul + 1;
    }
    strings[slot] = NULL;
    char *path = strings[0];
    char **argv = &strings[1];
    char **envp = &strings[header.argc + 2];
    int report[2];
    if (pipe2(report, O_CLOEXEC) < 0) return errno;
    long pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) spawner_child(path, argv, envp, fds, fdcount, (int)header.new_session, report[1]);
    int saved = errno;
    close(report[1]);
    if (pid < 0) {
        close(report[0]);
        return saved;
    }
    reply->pid = (int32_t)pid;
    int child_error = 0;
    ssize_t n;
    do {
        n = read(report[0], &child_error, sizeof(child_error));
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    (void)sock;
    return n == sizeof(child_error) ? child_error : 0;
}

static void spawner_loop(int sock) {
    static char buffer[SPAWNER_MAX_MESSAGE];
    for (;;) {
        CLINUX_FD_CONTROL(SPAWNER_MAX_FDS) control;
        struct iovec iov;
        struct msghdr msg;
        clinux_message_init(&msg, &iov, buffer, sizeof(buffer), control.buf, sizeof(control.buf));
        ssize_t n;
        do {
            n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) _exit(0);  // the shim closed its end or is gone
        int fds[SPAWNER_MAX_FDS];
        int fdcount = 0;
        for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
            if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
            int count = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < count && fdcount < SPAWNER_MAX_FDS; i++)
                memcpy(&fds[fdcount++], CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
        }
        struct spawner_reply reply = {.pid = 0, .error = 0};
        if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
            reply.error = E2BIG;
        else
            reply.error = spawner_handle(sock, buffer, n, fds, fdcount, &reply);
        for (int i = 0; i < fdcount; i++) close(fds[i]);
        do {
            n = send(sock, &reply, sizeof(reply), MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n < 0) _exit(1);
    }
}

int clinux_spawner_start(pid_t *helper) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) return -1;
    pid_t shim = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(pair[0]);
        close(pair[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != shim) _exit(0);
        prctl(PR_SET_NAME, "warden-spawner");
        int sock = pair[1];
        // Nothing of the shim's stays open here but stdio (its log) and this socket: a
        // listener or pipe held by the helper would never see its last close.
        syscall(SYS_close_range, 3u, (unsigned)sock - 1, 0);
        syscall(SYS_close_range, (unsigned)sock + 1, ~0u, 0);
        signal(SIGPIPE, SIG_IGN);
        spawner_loop(sock);
    }
    close(pair[1]);
    // A helper that stops answering (it never should) fails the spawn instead of the shim.
    struct timeval limit = {.tv_sec = 10, .tv_usec = 0};
    setsockopt(pair[0], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    *helper = pid;
    return pair[0];
}

int clinux_spawner_spawn(int sock, const char *path, char *const argv[], char *const envp[], const int *fds,
                         int count, int new_session, pid_t *pid) {
    static const int message_limit = SPAWNER_MAX_MESSAGE;
    *pid = 0;
    if (count < 3 || count > SPAWNER_MAX_FDS) {
        errno = EINVAL;
        return -1;
    }
    struct spawner_header header = {.magic = SPAWNER_MAGIC, .argc = 0, .envc = 0, .new_session = (uint32_t)new_session};
    size_t length = sizeof(header) + strlen(path) + 1;
    for (; argv[header.argc] != NULL; header.argc++) length += strlen(argv[header.argc]) + 1;
    for (; envp[header.envc] != NULL; header.envc++) length += strlen(envp[header.envc]) + 1;
    if (length > (size_t)message_limit || header.argc == 0) {
        errno = E2BIG;
        return -1;
    }
    char *message = malloc(length);
    if (message == NULL) return -1;
    memcpy(message, &header, sizeof(header));
    char *cursor = message + sizeof(header);
    size_t part = strlen(path) + 1;
    memcpy(cursor, path, part);
    cursor += part;
    for (uint32_t i = 0; i < header.argc; i++) {
        part = strlen(argv[i]) + 1;
        memcpy(cursor, argv[i], part);
        cursor += part;
    }
    for (uint32_t i = 0; i < header.envc; i++) {
        part = strlen(envp[i]) + 1;
        memcpy(cursor, envp[i], part);
        cursor += part;
    }
    CLINUX_FD_CONTROL(SPAWNER_MAX_FDS) control;
    struct iovec iov;
    struct msghdr msg;
    clinux_message_init(&msg, &iov, message, length, control.buf, CMSG_SPACE(sizeof(int) * (size_t)count));
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * (size_t)count);
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    free(message);
    if (n < 0) return -1;
    struct spawner_reply reply;
    do {
        n = recv(sock, &reply, sizeof(reply), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;  // EAGAIN: the helper did not answer within SO_RCVTIMEO
    if (n != sizeof(reply)) {
        errno = n == 0 ? EPIPE : EBADMSG;  // 0: the helper is gone
        return -1;
    }
    if (reply.error != 0) {
        // The helper made a process whose execve failed: it is our child and exits at once.
        if (reply.pid > 0) {
            siginfo_t info;
            while (waitid(P_PID, (id_t)reply.pid, &info, WEXITED) != 0 && errno == EINTR) {
            }
        }
        errno = reply.error;
        return -1;
    }
    *pid = reply.pid;
    return 0;
}
