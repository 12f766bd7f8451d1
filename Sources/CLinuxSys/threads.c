// Threads outside Swift's executors (detached, named), the netns-bound netlink socket made on
// a throwaway thread, and glibc malloc tuning.
#define _GNU_SOURCE
#include "clinuxsys.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>

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

int clinux_limit_malloc_arenas(int count) {
    return mallopt(M_ARENA_MAX, count) == 1 ? 0 : -1;
}

void clinux_malloc_trim(void) {
    malloc_trim(0);
}

// Drops this process's page-table entries for its own executable's code (the r-xp mappings
// of /proc/self/exe): the pages stay in the page cache, shared with every other shim, and
// come back on the next touch (a minor fault). Only code, never written, is dropped: data and
// RELRO pages hold relocated or written contents that MADV_DONTNEED would lose.
long clinux_release_code_pages(void) {
    char self[4096];
    ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (length <= 0) return -1;
    self[length] = 0;
    FILE *maps = fopen("/proc/self/maps", "re");
    if (maps == NULL) return -1;
    char line[4096 + 256];
    long released = 0;
    while (fgets(line, sizeof(line), maps)) {
        unsigned long start = 0, end = 0;
        char perms[5] = {0};
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &path_at) < 3 || path_at == 0) continue;
        char *path = line + path_at;
        path[strcspn(path, "\n")] = 0;
        if (strcmp(perms, "r-xp") != 0 || strcmp(path, self) != 0) continue;
        if (madvise((void *)start, end - start, MADV_DONTNEED) == 0) released += (long)(end - start);
    }
    fclose(maps);
    return released;
}
