// The web servers critest's specs start (nginx:1.14-2, httpd:2.4.39-4, hostnet-nginx), as a
// stand-in built here: the machines cannot pull the real images. What the specs check, and
// nothing more: an HTTP 200 on the port (80, or WEB_PORT), the pid in WEB_PID_FILE, a command
// line reading "<name>: master process ..." as nginx's does (the PID-namespace specs grep
// /proc/1/cmdline for it), and a line naming the server on stdout (the log specs look for it).
// Static, so the images need no libc.
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char body[] = "<html><body><h1>Welcome to nginx!</h1></body></html>\n";

int main(int argc, char **argv) {
    const char *name = getenv("WEB_NAME") ? getenv("WEB_NAME") : "nginx";
    // nginx renames its master process; re-exec under that name so /proc/1/cmdline reads it.
    if (strstr(argv[0], "master process") == NULL) {
        char title[128];
        snprintf(title, sizeof title, "%s: master process %s -g daemon off;", name, name);
        // The binary's own path, so the new image keeps its name (comm) for `pidof nginx`.
        char path[4096];
        ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
        if (length > 0) {
            path[length] = 0;
            argv[0] = title;
            execv(path, argv);
        }
        perror("re-exec");
    }
    (void)argc;
    signal(SIGPIPE, SIG_IGN);
    int port = getenv("WEB_PORT") ? atoi(getenv("WEB_PORT")) : 80;
    const char *pid_file = getenv("WEB_PID_FILE");
    if (pid_file) {
        FILE *file = fopen(pid_file, "w");
        if (file) {
            fprintf(file, "%d\n", (int)getpid());
            fclose(file);
        }
    }
    int listener = socket(AF_INET6, SOCK_STREAM, 0);
    int no = 0, yes = 1;
    setsockopt(listener, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in6 address = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = in6addr_any};
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 64) != 0) {
        // No IPv6 in the sandbox: IPv4 only.
        if (listener >= 0) close(listener);
        listener = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        struct sockaddr_in address4 = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = {INADDR_ANY}};
        if (bind(listener, (struct sockaddr *)&address4, sizeof address4) != 0 || listen(listener, 64) != 0) {
            perror("listen");
            return 1;
        }
    }
    printf("%s: serving on port %d\n", name, port);
    fflush(stdout);
    for (;;) {
        int connection = accept(listener, NULL, NULL);
        if (connection < 0) continue;
        char request[4096];
        ssize_t got = read(connection, request, sizeof request);
        (void)got;
        char response[512];
        int length = snprintf(response, sizeof response,
                              "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n"
                              "Connection: close\r\n\r\n%s", strlen(body), body);
        if (write(connection, response, length) < 0) perror("write");
        close(connection);
    }
}
