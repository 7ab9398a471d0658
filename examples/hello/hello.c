/* hello: the example service's HTTP server, a static binary for a FROM-scratch image.
 *
 * Listens on every port named on the command line; with none, on $PORT and every
 * $PORT_<NAME>; with none of those, on 8080. Answers
 *   GET /     "hello from <component>: <GREETING>"
 *   GET /env  the process environment, one VAR=value per line
 *   GET /up   200 "up", or 503 "sick" once GET /break was asked (for health-check tests)
 * logs one line per request on stdout, and exits promptly on SIGTERM so that a
 * graceful stop is fast. For tests of restart policies: `hello --exit N` exits at once
 * with status N; `hello --exit-after-ms MS N` serves for MS milliseconds, then exits N. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PORTS 16

extern char **environ;
static volatile sig_atomic_t stopping;
static int sick;

static void on_term(int sig) { (void)sig; stopping = 1; }

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in addr;
    if (fd < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons((unsigned short)port);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 64) < 0) {
        fprintf(stderr, "hello: cannot listen on port %d: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

static void answer(int client, int port) {
    char req[2048], body[16384], head[256];
    size_t used = 0, got = 0;
    /* The request line may arrive in pieces; read until it is complete. */
    while (got < sizeof req - 1) {
        ssize_t n = read(client, req + got, sizeof req - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        req[got] = 0;
        if (strchr(req, '\n')) break;
    }
    if (got == 0) return;
    req[got] = 0;
    char *sp = strchr(req, ' ');
    char *path = sp ? sp + 1 : req;
    char *end = strchr(path, ' ');
    if (end) *end = 0;
    const char *status = "200 OK";
    if (strcmp(path, "/break") == 0) {
        sick = 1;
        used = (size_t)snprintf(body, sizeof body, "broken\n");
    } else if (strcmp(path, "/up") == 0) {
        if (sick) status = "503 Service Unavailable";
        used = (size_t)snprintf(body, sizeof body, sick ? "sick\n" : "up\n");
    } else if (strcmp(path, "/env") == 0) {
        for (char **e = environ; *e && used + strlen(*e) + 2 < sizeof body; e++)
            used += (size_t)snprintf(body + used, sizeof body - used, "%s\n", *e);
    } else {
        const char *greeting = getenv("GREETING");
        const char *who = getenv("HELLO_NAME");
        used = (size_t)snprintf(body, sizeof body, "hello from %s on port %d: %s\n",
                                who ? who : "mcp", port, greeting ? greeting : "hi");
    }
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, used);
    write_all(client, head, (size_t)hl);
    write_all(client, body, used);
    printf("hello: GET %s on port %d\n", path, port);
    fflush(stdout);
}

int main(int argc, char **argv) {
    int ports[MAX_PORTS], nports = 0, fds[MAX_PORTS], exit_code = 0;
    long exit_after_ms = -1;
    struct pollfd pfds[MAX_PORTS];
    struct sigaction sa;

    if (argc == 3 && strcmp(argv[1], "--exit") == 0) {
        printf("hello: exiting with status %s as asked\n", argv[2]);
        return atoi(argv[2]);
    }
    if (argc == 4 && strcmp(argv[1], "--exit-after-ms") == 0) {
        exit_after_ms = atol(argv[2]);
        exit_code = atoi(argv[3]);
        argc = 1;
    }
    for (int i = 1; i < argc && nports < MAX_PORTS; i++)
        if (atoi(argv[i]) > 0) ports[nports++] = atoi(argv[i]);
    if (nports == 0) {
        for (char **e = environ; *e && nports < MAX_PORTS; e++)
            if (strncmp(*e, "PORT=", 5) == 0 || strncmp(*e, "PORT_", 5) == 0) {
                char *eq = strchr(*e, '=');
                if (eq && atoi(eq + 1) > 0) ports[nports++] = atoi(eq + 1);
            }
    }
    if (nports == 0) ports[nports++] = 8080;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < nports; i++) {
        fds[i] = listen_on(ports[i]);
        if (fds[i] < 0) return 1;
        pfds[i].fd = fds[i];
        pfds[i].events = POLLIN;
        printf("hello: listening on port %d\n", ports[i]);
    }
    fflush(stdout);
    long waited_ms = 0;
    while (!stopping) {
        if (exit_after_ms >= 0 && waited_ms >= exit_after_ms) {
            printf("hello: exiting with status %d after %ld ms as asked\n", exit_code, waited_ms);
            fflush(stdout);
            return exit_code;
        }
        int slice = exit_after_ms >= 0 ? 50 : 1000;
        int ready = poll(pfds, (nfds_t)nports, slice);
        if (ready <= 0) {
            waited_ms += slice;
            continue;
        }
        for (int i = 0; i < nports; i++) {
            if (!(pfds[i].revents & POLLIN)) continue;
            int client = accept(fds[i], NULL, NULL);
            if (client < 0) continue;
            answer(client, ports[i]);
            close(client);
        }
    }
    printf("hello: stopping on signal\n");
    fflush(stdout);
    return 0;
}
