/* util.c: string vectors, clocks with the test offset, durations, random
 * numbers and digests. No logging. */
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

int strv_push(char ***l, const char *s) {
        size_t n = strv_length(*l);
        char *c = strdup(s);
        if (!c)
                return -ENOMEM;
        char **nl = realloc(*l, sizeof(char *) * (n + 2));
        if (!nl) {
                free(c);
                return -ENOMEM;
        }
        nl[n] = c;
        nl[n + 1] = NULL;
        *l = nl;
        return 0;
}

char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

int free_and_strdup(char **p, const char *s) {
        char *c = NULL;
        if (s) {
                c = strdup(s);
                if (!c)
                        return -ENOMEM;
        }
        free(*p);
        *p = c;
        return 0;
}

char *strvprintf(const char *fmt, va_list ap) {
        char *s = NULL;
        return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

void set_message(char **ret, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = strvprintf(fmt, ap);
        va_end(ap);
        free(*ret);
        *ret = s;
}

void free_cleanse(void *p, size_t n) {
        if (!p)
                return;
        OPENSSL_cleanse(p, n);
        free(p);
}

void free_cleanse_str(char *s) {
        if (s)
                free_cleanse(s, strlen(s));
}

char *strprintf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = strvprintf(fmt, ap);
        va_end(ap);
        return s;
}

static int64_t clock_offset = 0;

usec_t clock_boottime_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

int clock_set_offset_sec(int64_t offset) {
        clock_offset = offset;
        return 0;
}

int64_t clock_offset_sec(void) {
        return clock_offset;
}

usec_t clock_wall_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t us = (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + clock_offset * 1000000;
        return us < 0 ? 0 : (usec_t) us;
}

uint64_t clock_wall_sec(void) {
        return clock_wall_usec() / USEC_PER_SEC;
}

int parse_duration_sec(const char *s, bool allow_sign, int64_t *ret) {
        int sign = 1;
        uint64_t total = 0;

        if (!s)
                return -EINVAL;
        if (allow_sign && (*s == '+' || *s == '-')) {
                sign = *s == '-' ? -1 : 1;
                s++;
        }
        if (!*s)
                return -EINVAL;
        while (*s) {
                uint64_t v = 0, mult;
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                while (*s >= '0' && *s <= '9') {
                        if (v > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        v = v * 10 + (uint64_t) (*s - '0');
                        s++;
                }
                switch (*s) {
                case 's': mult = 1; break;
                case 'm': mult = 60; break;
                case 'h': mult = 3600; break;
                default: return -EINVAL;
                }
                s++;
                if (v > (uint64_t) INT64_MAX / mult || total > (uint64_t) INT64_MAX - v * mult)
                        return -ERANGE;
                total += v * mult;
        }
        *ret = sign * (int64_t) total;
        return 0;
}

const char *format_duration_sec(uint64_t sec, char *buf, size_t n) {
        uint64_t h = sec / 3600, m = (sec % 3600) / 60, s = sec % 60;
        size_t off = 0;
        buf[0] = 0;
        if (h)
                off += (size_t) snprintf(buf + off, n - off, "%" PRIu64 "h", h);
        if (m && off < n)
                off += (size_t) snprintf(buf + off, n - off, "%" PRIu64 "m", m);
        if ((s || off == 0) && off < n)
                snprintf(buf + off, n - off, "%" PRIu64 "s", s);
        return buf;
}

const char *format_timestamp_sec(uint64_t sec, char *buf, size_t n) {
        time_t t = (time_t) sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, n, "@%" PRIu64, sec);
        return buf;
}

int random_bytes(void *p, size_t n) {
        if (n > INT_MAX || RAND_bytes(p, (int) n) != 1)
                return -EIO;
        return 0;
}

double random_unit(void) {
        uint64_t v = 0;
        if (random_bytes(&v, sizeof v) < 0)
                v = (uint64_t) clock_boottime_usec() * 6364136223846793005ULL;
        return (double) (v >> 11) / (double) (1ULL << 53);
}

char *hex_encode(const void *p, size_t n, char *ret) {
        static const char hex[] = "0123456789abcdef";
        const uint8_t *b = p;
        for (size_t i = 0; i < n; i++) {
                ret[2 * i] = hex[b[i] >> 4];
                ret[2 * i + 1] = hex[b[i] & 15];
        }
        ret[2 * n] = 0;
        return ret;
}

static void uuid_format(uint8_t b[16], char ret[static 37]) {
        /* 8-4-4-4-12 groups of hex digits */
        static const uint8_t groups[] = { 4, 2, 2, 2, 6 };
        b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40);
        b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);
        size_t in = 0, out = 0;
        for (size_t g = 0; g < ELEMENTSOF(groups); g++) {
                if (g > 0)
                        ret[out++] = '-';
                hex_encode(b + in, groups[g], ret + out);
                in += groups[g];
                out += 2 * groups[g];
        }
}

int uuid_random(char ret[static 37]) {
        uint8_t b[16];
        int r = random_bytes(b, sizeof b);
        if (r < 0)
                return r;
        uuid_format(b, ret);
        return 0;
}

void sha256(const void *data, size_t n, uint8_t ret[static 32]) {
        SHA256(n > 0 ? data : (const void *) "", n, ret);
}

void uuid_from_digest(const void *data, size_t n, char ret[static 37]) {
        uint8_t md[SHA256_DIGEST_LENGTH];
        sha256(data, n, md);
        uuid_format(md, ret);
}

void sha256_hex(const void *data, size_t n, char ret[static 65]) {
        uint8_t md[SHA256_DIGEST_LENGTH];
        sha256(data, n, md);
        hex_encode(md, sizeof md, ret);
}

int open_regular_file(const char *path, int *ret_fd) {
        /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
         * writer, forever, and a device may block too; neither is read. */
        _cleanup_(closep) int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        /* A regular file never blocks; blocking reads keep callers simple
         * (stdio included). */
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

const char *file_error_string(int r) {
        switch (r) {
        case -EBADFD: return "not a regular file (a FIFO, device or socket is never read)";
        case -EISDIR: return "a directory, not a regular file";
        case -EFBIG: return "larger than the limit for this file";
        default: return strerror(r < 0 ? -r : r);
        }
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_(closep) int fd = -1;
        int r = open_regular_file(path, &fd);
        if (r < 0)
                return r;
        size_t cap = MIN((size_t) 4096, max), len = 0;
        _cleanup_(freep) char *buf = malloc(cap + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                if (len == cap) {
                        if (cap >= max) {
                                /* Full at the cap: only the end of the file is fine. */
                                char c;
                                ssize_t k = read(fd, &c, 1);
                                if (k < 0 && errno == EINTR)
                                        continue;
                                if (k < 0)
                                        return -errno;
                                if (k > 0)
                                        return -EFBIG;
                                break;
                        }
                        size_t ncap = MIN(cap * 2, max);
                        char *nb = realloc(buf, ncap + 1);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        cap = ncap;
                }
                ssize_t k = read(fd, buf + len, cap - len);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                len += (size_t) k;
        }
        buf[len] = 0;
        if (ret_size)
                *ret_size = len;
        *ret = TAKE_PTR(buf);
        return 0;
}

int write_all(int fd, const void *data, size_t n) {
        const char *p = data;
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int atomic_file_open(const char *path, int *ret_fd, char **ret_tmp) {
        if (isempty(path) || !ret_fd || !ret_tmp)
                return -EINVAL;
        char *tmp = strprintf("%s.tmp-XXXXXX", path);
        if (!tmp)
                return -ENOMEM;
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                free(tmp);
                return r;
        }
        *ret_fd = fd;
        *ret_tmp = tmp;
        return 0;
}

int atomic_file_finish(int fd, const char *tmp, const char *path, mode_t mode, int r) {
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r >= 0 && errno != EINTR)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        /* the rename is durable only once the directory is */
        const char *slash = strrchr(path, '/');
        _cleanup_(freep) char *dir = slash ? strndup(path, slash == path ? 1 : (size_t) (slash - path)) : strdup(".");
        if (!dir)
                return -ENOMEM;
        _cleanup_(closep) int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (fsync(dfd) < 0)
                return -errno;
        return 0;
}
