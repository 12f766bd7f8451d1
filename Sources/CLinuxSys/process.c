// Processes: pidfds, waitid, the subreaper, posix_spawn with an exact descriptor table, and
// the descriptor limit children inherit.
#define _GNU_SOURCE
#include "clinuxsys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

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

int clinux_block_sigchld(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

int clinux_sigchld_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

void clinux_sigchld_drain(int fd) {
    struct signalfd_siginfo info[16];
    while (read(fd, info, sizeof(info)) > 0) {
    }
}
