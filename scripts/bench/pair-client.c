/* The socket benchmark's client: sequential acquire+report pairs over a Unix
 * socket, one line out and one line back at a time, timed per pair with the
 * monotonic clock. Against an echo the "permit" is the echoed line's, so the
 * same bytes travel. Prints: pairs p50_us p99_us
 * Usage: pair-client PATH PAIRS */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fd;
static char buffer[65536];
static size_t held;

static void send_line(const char *line, size_t length) {
    for (size_t sent = 0; sent < length;) {
        ssize_t wrote = write(fd, line + sent, length - sent);
        if (wrote <= 0) { perror("write"); exit(74); }
        sent += (size_t)wrote;
    }
}

/* Reads one answer line into `out` (without its newline). */
static void read_line(char *out, size_t capacity) {
    for (;;) {
        char *end = memchr(buffer, '\n', held);
        if (end != NULL) {
            size_t length = (size_t)(end - buffer);
            size_t copy = length < capacity - 1 ? length : capacity - 1;
            memcpy(out, buffer, copy);
            out[copy] = 0;
            memmove(buffer, end + 1, held - length - 1);
            held -= length + 1;
            return;
        }
        ssize_t got = read(fd, buffer + held, sizeof buffer - held);
        if (got <= 0) { fprintf(stderr, "pair-client: connection closed\n"); exit(74); }
        held += (size_t)got;
    }
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: pair-client PATH PAIRS\n"); return 64; }
    int pairs = atoi(argv[2]);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    strncpy(address.sun_path, argv[1], sizeof address.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { perror("connect"); return 69; }
    const char *breakers[] = { "openai", "anthropic", "ollama" };
    double *samples = malloc(sizeof(double) * (size_t)pairs);
    char answer[4096], line[512];
    int warmup = 1000;
    for (int i = 0; i < pairs + warmup; i++) {
        int length = snprintf(line, sizeof line, "{\"op\":\"acquire\",\"breaker\":\"%s\"}\n", breakers[i % 3]);
        double start = now_us();
        send_line(line, (size_t)length);
        read_line(answer, sizeof answer);
        /* The permit id, or a fixed one from an echo (same length as a real id). */
        char permit[32] = "0f1b4d8983000000";
        char *found = strstr(answer, "\"permit\":\"");
        if (found != NULL) {
            found += 10;
            size_t n = strcspn(found, "\"");
            if (n < sizeof permit) { memcpy(permit, found, n); permit[n] = 0; }
        }
        length = snprintf(line, sizeof line, "{\"op\":\"report\",\"permit\":\"%s\",\"outcome\":\"success\",\"latency_ms\":120}\n", permit);
        send_line(line, (size_t)length);
        read_line(answer, sizeof answer);
        double elapsed = now_us() - start;
        if (i >= warmup) samples[i - warmup] = elapsed;
    }
    qsort(samples, (size_t)pairs, sizeof(double), by_value);
    printf("%d %.1f %.1f\n", pairs, samples[pairs / 2], samples[(size_t)pairs * 99 / 100]);
    return 0;
}
