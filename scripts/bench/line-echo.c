/* The floor for the socket benchmark: a line echo over a Unix socket, one
 * connection at a time, blocking reads and writes, nothing else. Every line
 * received is sent back as it came. Usage: line-echo PATH */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: line-echo PATH\n"); return 64; }
    int server = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    strncpy(address.sun_path, argv[1], sizeof address.sun_path - 1);
    unlink(argv[1]);
    if (bind(server, (struct sockaddr *)&address, sizeof address) != 0 || listen(server, 16) != 0) { perror("bind"); return 71; }
    static char buffer[65536];
    for (;;) {
        int client = accept(server, NULL, NULL);
        if (client < 0) continue;
        size_t held = 0;
        for (;;) {
            ssize_t got = read(client, buffer + held, sizeof buffer - held);
            if (got <= 0) break;
            held += (size_t)got;
            /* Send back every complete line; keep a partial one for the next read. */
            char *end = memrchr(buffer, '\n', held);
            if (end == NULL) continue;
            size_t whole = (size_t)(end - buffer) + 1;
            for (size_t sent = 0; sent < whole;) {
                ssize_t wrote = write(client, buffer + sent, whole - sent);
                if (wrote <= 0) goto done;
                sent += (size_t)wrote;
            }
            memmove(buffer, buffer + whole, held - whole);
            held -= whole;
        }
    done:
        close(client);
    }
}
