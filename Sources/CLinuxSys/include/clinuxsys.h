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

#endif
