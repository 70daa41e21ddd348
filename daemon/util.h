/* util.h: small helpers shared by every module (cleanup attributes, time,
 * string vectors). Header-only where possible; no logging, no I/O. */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _pure_ __attribute__((pure))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Take ownership of a pointer: return it and set the variable to NULL so
 * that its cleanup handler does nothing. */
#define TAKE_PTR(p)                      \
        ({                               \
                __typeof__(p) _p_ = (p); \
                (p) = NULL;              \
                _p_;                     \
        })
#define TAKE_FD(fd)              \
        ({                       \
                int _fd_ = (fd); \
                (fd) = -1;       \
                _fd_;            \
        })

typedef uint64_t usec_t;
#define USEC_INFINITY ((usec_t) UINT64_MAX)
#define USEC_PER_SEC ((usec_t) 1000000ULL)
#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define USEC_PER_MINUTE (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MINUTE)
#define USEC_PER_DAY (24 * USEC_PER_HOUR)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}
static inline void freep(void *p) {
        free(*(void **) p);
}
static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

/* Declares foo_freep(struct foo **p) calling foo_free(*p). */
#define DEFINE_FREEP(type, func)                    \
        static inline void func##p(type **p) {      \
                if (*p)                             \
                        func(*p);                   \
        }

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}
#define streq(a, b) (strcmp((a), (b)) == 0)
#define isempty(s) (!(s) || !*(s))

/* NULL-terminated string vectors. */
char **strv_free(char **l);
static inline void strv_freep(char ***l) {
        strv_free(*l);
}
size_t strv_length(char *const *l);
int strv_push(char ***l, const char *s); /* appends a copy */

char *strdup_or_null(const char *s); /* NULL in, NULL out; sets errno on OOM */
int free_and_strdup(char **p, const char *s);
/* asprintf that returns NULL on failure */
char *strprintf(const char *fmt, ...) _printf_(1, 2);
char *strvprintf(const char *fmt, va_list ap) _printf_(1, 0);
/* *ret = the formatted text (its old value freed; NULL when out of memory). */
void set_message(char **ret, const char *fmt, ...) _printf_(2, 3);
/* Frees memory that may hold a secret (keys, tokens, STS answers), wiped
 * first; the _str form wipes up to the string's terminator. NULL is fine. */
void free_cleanse(void *p, size_t n);
void free_cleanse_str(char *s);
static inline void free_cleanse_strp(char **s) {
        free_cleanse_str(*s);
}

/* Clocks. Wall-clock readings go through clock_wall_sec()/clock_wall_usec()
 * so that CONNECT_NUMBERS_CLOCK_OFFSET (connect-numbersd(8), CREDENTIALS,
 * testing hook) shifts every one of them. Timers use CLOCK_BOOTTIME. */
usec_t clock_boottime_usec(void);
int clock_set_offset_sec(int64_t offset); /* called once by main() */
int64_t clock_offset_sec(void);
usec_t clock_wall_usec(void);
uint64_t clock_wall_sec(void);

/* "90s", "1h30m", "5m": one or more <integer><s|m|h> parts. With
 * allow_sign, a leading '+' or '-' (for CONNECT_NUMBERS_CLOCK_OFFSET).
 * Returns -EINVAL on syntax errors, -ERANGE on overflow. Pure. */
int parse_duration_sec(const char *s, bool allow_sign, int64_t *ret);
/* Formats seconds as "1h30m", "5m", "0s". buf >= 32 bytes. */
const char *format_duration_sec(uint64_t sec, char *buf, size_t n);
/* Formats wall seconds as "2026-11-27T08:30:00Z". buf >= 32 bytes. */
const char *format_timestamp_sec(uint64_t sec, char *buf, size_t n);

/* Random bytes from OpenSSL; -EIO on failure. */
int random_bytes(void *p, size_t n);
/* Uniform double in [0,1). */
double random_unit(void);
/* A fresh lower-case UUID v4 string (37 bytes with NUL). */
int uuid_random(char ret[static 37]);
/* A lower-case UUID (v4 layout, bits set) derived from SHA-256 of data. */
void uuid_from_digest(const void *data, size_t n, char ret[static 37]);
/* Lower-case hex of n bytes into ret (2n + 1 bytes with the NUL); returns
 * ret. The one hex encoder (digests, UUIDs, escapes). */
char *hex_encode(const void *p, size_t n, char *ret);
/* SHA-256 of data (32 bytes), and the same in hex (65 bytes with NUL). */
void sha256(const void *data, size_t n, uint8_t ret[static 32]);
void sha256_hex(const void *data, size_t n, char ret[static 65]);

/* Every file the daemon reads goes through these two. open_regular_file
 * opens without blocking (a FIFO as the YAML or the credentials file would
 * otherwise hang the open until a writer comes) and refuses anything but a
 * regular file: -EISDIR for a directory, -EBADFD for a FIFO, device or
 * socket. The fd returned is blocking again. read_full_file reads a whole
 * regular file, NUL-terminated, up to max bytes (-EFBIG past it). */
int open_regular_file(const char *path, int *ret_fd);
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);
/* strerror() with a clear phrase for the codes above, for messages that
 * name the file: "FILE: not a regular file (...)". */
const char *file_error_string(int r);

/* write(2) until all n bytes are written (EINTR retried); -errno, -EIO when
 * nothing more can be written. */
int write_all(int fd, const void *data, size_t n);

/* Atomic replacement of a file, old or new content and never half of it:
 * atomic_file_open() creates PATH.tmp-XXXXXX (same directory, so that the
 * rename is atomic; the name ends in neither .json nor .prom, which readers
 * of the directory skip); the caller writes to *ret_fd; atomic_file_finish()
 * takes the outcome r of that writing and, when it is >= 0, gives the file
 * mode, fsyncs it, renames it to path and fsyncs the directory. It always
 * closes fd and removes the temporary file on failure. -errno. */
int atomic_file_open(const char *path, int *ret_fd, char **ret_tmp);
int atomic_file_finish(int fd, const char *tmp, const char *path, mode_t mode, int r);
