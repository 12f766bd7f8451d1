// C helpers for syscalls and structures that Glibc's Swift module hides or makes awkward
// (sockaddr_un, struct ucred behind _GNU_SOURCE, pthread start routines).
// Everything here is a thin wrapper: it returns -1 and leaves errno set on failure.
#ifndef CLINUXSYS_H
#define CLINUXSYS_H

#include <sys/types.h>

/// Binds `fd` to the filesystem Unix socket `path`. Fails with ENAMETOOLONG when the path
/// does not fit sun_path (108 bytes including the terminating NUL).
int clinux_bind_unix(int fd, const char *path);

/// Connects `fd` to the filesystem Unix socket `path` (same length rule as bind).
int clinux_connect_unix(int fd, const char *path);

/// accept4 with SOCK_CLOEXEC (accept4 is hidden behind _GNU_SOURCE).
int clinux_accept_cloexec(int fd);

/// SO_PEERCRED of a connected Unix socket.
int clinux_peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/// Starts a detached thread running `body(context)`.
int clinux_spawn_detached_thread(void (*body)(void *), void *context);

/// Names the calling thread (visible in /proc/<pid>/task/<tid>/comm); best effort.
void clinux_set_thread_name(const char *name);

/// pidfd_open(2): a descriptor that refers to process `pid` for as long as it is held, so a
/// recycled pid can never be confused with it. Close-on-exec.
int clinux_pidfd_open(pid_t pid);

/// pidfd_send_signal(2).
int clinux_pidfd_send_signal(int pidfd, int sig);

/// waitid(P_PIDFD, pidfd, WEXITED | extra_options). On success fills `code` (CLD_EXITED,
/// CLD_KILLED, CLD_DUMPED) and `status` (exit code or signal number); `*code` is 0 when
/// WNOHANG found nothing to reap.
int clinux_waitid_pidfd(int pidfd, int extra_options, int *code, int *status);

/// waitid(P_ALL, WEXITED|WNOHANG|WNOWAIT): the pid of a child zombie without reaping it, or 0.
int clinux_peek_exited_child(pid_t *pid);

/// waitid(P_PID, pid, WEXITED|WNOHANG): reaps that one child if it has exited.
int clinux_reap_pid(pid_t pid, int *code, int *status);

/// prctl(PR_SET_CHILD_SUBREAPER, 1).
int clinux_set_child_subreaper(void);

/// SIGCHLD through a descriptor instead of a handler: block it in the calling thread (before
/// any other thread exists, so that all inherit the mask), then a non-blocking signalfd that
/// is readable while a SIGCHLD is pending; drain empties it.
int clinux_block_sigchld(void);
int clinux_sigchld_fd(void);
void clinux_sigchld_drain(int fd);

/// posix_spawn of `path` with `argv`/`envp`, default signal dispositions and an empty signal
/// mask, optionally in a new session; `fds[i]` becomes descriptor i in the child for i < count
/// (count >= 3: stdio, then e.g. a listener as fd 3) and nothing else is inherited.
int clinux_spawn_fds(const char *path, char *const argv[], char *const envp[], const int *fds, int count,
                     int new_session, pid_t *pid);

// RLIMIT_NOFILE: soft raised to hard; returns the soft limit in force (0 on error).
unsigned long long clinux_raise_nofile_to_hard(void);

// The spawn helper (spawner.c): forks it and returns the shim's end of its socket, or -1.
// Call while the process is single-threaded.
int clinux_spawner_start(pid_t *helper);
// Asks the helper for a process whose fd i is fds[i]; 0, or -1 with errno (the helper's
// clone/execve error, or EPIPE/EAGAIN when the helper is gone or silent). *pid is the new
// process (the caller's child) whenever one was created, even if its execve failed.
int clinux_spawner_spawn(int sock, const char *path, char *const argv[], char *const envp[], const int *fds,
                         int count, int new_session, pid_t *pid);

// Tests only (debug builds): sets signal `sig`'s disposition to SIG_IGN (or SIG_DFL) through
// the raw syscall, which also takes glibc's internal signals 32 and 33.
int clinux_test_ignore_signal(int sig, int ignore);

/// Makes this process's Swift concurrency run on the shim's own executor (executor.c)
/// instead of libdispatch's pool: `base` workers, up to `max` when all are blocked. Call
/// before the first task is created. 0, or -1 with errno.
int clinux_executor_install(int base, int max);
/// Whether the executor is installed (the timers below need it).
int clinux_executor_installed(void);
/// Calls `callback(context)` on the executor's monitor thread after `delay_ns`; returns the
/// timer's id, or 0 when the executor is not installed (nothing scheduled).
unsigned long long clinux_timer_schedule(long long delay_ns, void (*callback)(void *), void *context);
/// Removes timer `id` before it fires: 1, or 0 when it already fired (or never existed).
int clinux_timer_cancel(unsigned long long id);
/// The executor's worker threads, how many are idle, and the timers pending.
void clinux_executor_counts(int *threads, int *idle, int *timers);

/// Receives one descriptor passed with SCM_RIGHTS on a connected Unix socket (runsc's
/// --console-socket sends the pty master this way). Returns the descriptor, close-on-exec.
int clinux_receive_fd(int sock);

/// Sends one descriptor with SCM_RIGHTS (fake-runsc's --console-socket, as runsc does).
int clinux_send_fd(int sock, int fd);

/// Opens a new pseudo-terminal pair (both close-on-exec).
int clinux_open_pty(int *master, int *slave);

/// TIOCSWINSZ on a terminal.
int clinux_set_window_size(int fd, unsigned short width, unsigned short height);

/// mount(2) and umount2(2).
int clinux_mount(const char *source, const char *target, const char *type, unsigned long flags, const char *data);
int clinux_unmount(const char *target, int flags);

/// pipe2(O_CLOEXEC).
int clinux_pipe(int fds[2]);

/// Clears O_NONBLOCK on a descriptor.
int clinux_set_blocking(int fd);

/// Ignores SIGPIPE process-wide, so a write to a pipe or fifo whose reader left fails with EPIPE.
void clinux_ignore_sigpipe(void);

/// epoll helpers: create (close-on-exec); add (op 0) or modify (op 1) a descriptor's interest
/// (an EPOLL* mask) with a 64-bit tag; remove it; wait for up to `max` events, writing their
/// tags and event masks.
int clinux_epoll_create(void);
int clinux_epoll_control(int epfd, int op, int fd, unsigned int events, unsigned long long tag);
int clinux_epoll_remove(int epfd, int fd);
int clinux_epoll_wait_events(int epfd, unsigned long long *tags, unsigned int *events, int max, int timeout_ms);

/// eventfd (close-on-exec, non-blocking) to wake an epoll loop; signal and drain.
int clinux_eventfd(void);
int clinux_eventfd_signal(int fd);
void clinux_eventfd_drain(int fd);

/// A NETLINK_ROUTE socket bound inside the network namespace at `netns_path` (e.g.
/// /var/run/netns/x or /proc/<pid>/ns/net). A short-lived thread enters the namespace, opens
/// the socket and exits, so no thread of the caller ever changes namespace and no namespace
/// descriptor outlives the call (the socket itself pins the namespace until it is closed).
/// Close-on-exec. Returns -1 with errno set on failure.
int clinux_netlink_route_socket_in_netns(const char *netns_path);

/// glibc malloc: at most `count` arenas (each thread that mallocs under contention would
/// otherwise get one, up to 8 per core); give free memory back to the kernel.
int clinux_limit_malloc_arenas(int count);
void clinux_malloc_trim(void);
long clinux_release_code_pages(void);

#endif
