#define _GNU_SOURCE
#include "clinuxsys.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

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
