/* failio.c: an LD_PRELOAD shim that makes one kind of file I/O fail on
 * purpose, only for paths under one directory (the daemon's state
 * directory), so that tests can prove the state survives every failing
 * write path. Owns nothing else: calls on other paths (sockets, CA files,
 * the YAML) and every other function go straight to libc. Never used in
 * the product; built by tests/integration/test_disk.py (or by hand:
 * cc -shared -fPIC -O2 -o failio.so tests/shim/failio.c -ldl).
 *
 * Environment:
 *   FAILIO_DIR    directory whose paths (and the fds opened on them) are
 *                 affected; required, absolute; nothing fails without it.
 *   FAILIO_CALL   which call fails: open (open, openat, creat, fopen,
 *                 mkstemp and friends: every way a file is opened or
 *                 created), write (write, pwrite, writev), fsync (fsync,
 *                 fdatasync), fchmod, close, rename (rename, renameat,
 *                 renameat2). A comma-separated list is accepted.
 *   FAILIO_AFTER  number of matching calls that succeed first (default 0).
 *   FAILIO_COUNT  number of failures to inject, then succeed again
 *                 (default: fail every later matching call).
 *   FAILIO_ERRNO  EIO (default), ENOSPC, EDQUOT, EROFS or a number.
 *   FAILIO_LOG    optional file: one line appended per injected failure
 *                 ("fail CALL PATH errno"), so a test can tell the fault
 *                 fired. Written with raw syscalls, never through the shim.
 *   FAILIO_TRACE  with FAILIO_LOG: also one line per matching call that
 *                 succeeds ("pass CALL PATH"), to count a run's calls.
 *
 * A failing close still closes the descriptor (Linux semantics); every
 * other failing call does nothing and returns -1 (NULL for fopen). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

enum failio_call {
        CALL_OPEN = 1 << 0,
        CALL_WRITE = 1 << 1,
        CALL_FSYNC = 1 << 2,
        CALL_FCHMOD = 1 << 3,
        CALL_CLOSE = 1 << 4,
        CALL_RENAME = 1 << 5,
};

static const struct {
        const char *name;
        unsigned bit;
} call_names[] = {
        {"open", CALL_OPEN},     {"write", CALL_WRITE}, {"fsync", CALL_FSYNC},
        {"fchmod", CALL_FCHMOD}, {"close", CALL_CLOSE}, {"rename", CALL_RENAME},
};

static struct {
        int inited;            /* 0 not yet, 1 done */
        unsigned calls;        /* bit set of enum failio_call */
        char dir[PATH_MAX];
        size_t dir_len;
        long after;            /* successes before the first failure */
        long count;            /* failures to inject; < 0 unlimited */
        int err;
        char log[PATH_MAX];
        bool trace;
        long seen;             /* matching calls so far */
        long failed;           /* failures injected so far */
} cfg;

static void failio_init(void) {
        if (__atomic_load_n(&cfg.inited, __ATOMIC_ACQUIRE))
                return;
        const char *d = getenv("FAILIO_DIR");
        const char *c = getenv("FAILIO_CALL");
        if (d && *d == '/' && strlen(d) < sizeof cfg.dir && c) {
                /* Without a trailing slash so that "DIR" and "DIR/x" match. */
                size_t n = strlen(d);
                while (n > 1 && d[n - 1] == '/')
                        n--;
                memcpy(cfg.dir, d, n);
                cfg.dir[n] = 0;
                cfg.dir_len = n;
                for (size_t i = 0; i < sizeof call_names / sizeof call_names[0]; i++) {
                        const char *p = c;
                        size_t l = strlen(call_names[i].name);
                        while ((p = strstr(p, call_names[i].name))) {
                                bool start = p == c || p[-1] == ',';
                                bool end = p[l] == 0 || p[l] == ',';
                                if (start && end)
                                        cfg.calls |= call_names[i].bit;
                                p += l;
                        }
                }
        }
        const char *a = getenv("FAILIO_AFTER");
        cfg.after = a ? strtol(a, NULL, 10) : 0;
        const char *k = getenv("FAILIO_COUNT");
        cfg.count = k ? strtol(k, NULL, 10) : -1;
        const char *e = getenv("FAILIO_ERRNO");
        cfg.err = EIO;
        if (e) {
                if (!strcmp(e, "ENOSPC"))
                        cfg.err = ENOSPC;
                else if (!strcmp(e, "EDQUOT"))
                        cfg.err = EDQUOT;
                else if (!strcmp(e, "EROFS"))
                        cfg.err = EROFS;
                else if (!strcmp(e, "EIO"))
                        cfg.err = EIO;
                else if (strtol(e, NULL, 10) > 0)
                        cfg.err = (int) strtol(e, NULL, 10);
        }
        const char *l = getenv("FAILIO_LOG");
        if (l && strlen(l) < sizeof cfg.log)
                memcpy(cfg.log, l, strlen(l) + 1);
        const char *t = getenv("FAILIO_TRACE");
        cfg.trace = t && *t && strcmp(t, "0") != 0;
        __atomic_store_n(&cfg.inited, 1, __ATOMIC_RELEASE);
}

static bool path_in_dir(const char *path) {
        if (!path || cfg.dir_len == 0)
                return false;
        return strncmp(path, cfg.dir, cfg.dir_len) == 0 && (path[cfg.dir_len] == 0 || path[cfg.dir_len] == '/');
}

/* The path an fd was opened on, from /proc (no libc state touched). */
static bool fd_in_dir(int fd, char *target, size_t size) {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, size - 1);
        if (n <= 0)
                return false;
        target[n] = 0;
        return path_in_dir(target);
}

/* A path relative to dirfd, made absolute for the prefix test. */
static bool at_path_in_dir(int dirfd, const char *path) {
        if (!path)
                return false;
        if (path[0] == '/' || dirfd == AT_FDCWD) {
                if (path[0] == '/')
                        return path_in_dir(path);
                char cwd[PATH_MAX], full[2 * PATH_MAX + 2];
                if (!getcwd(cwd, sizeof cwd))
                        return false;
                snprintf(full, sizeof full, "%s/%s", cwd, path);
                return path_in_dir(full);
        }
        char link[64], base[PATH_MAX], full[2 * PATH_MAX + 2];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        if (n <= 0)
                return false;
        base[n] = 0;
        snprintf(full, sizeof full, "%s/%s", base, path);
        return path_in_dir(full);
}

static void log_line(bool failed, const char *call, const char *what) {
        if (!cfg.log[0])
                return;
        char line[PATH_MAX + 128];
        int n = failed ? snprintf(line, sizeof line, "fail %s %s %d\n", call, what ? what : "-", cfg.err)
                       : snprintf(line, sizeof line, "pass %s %s\n", call, what ? what : "-");
        if (n <= 0)
                return;
        if (n >= (int) sizeof line)
                n = (int) sizeof line - 1;
        long fd = syscall(SYS_openat, AT_FDCWD, cfg.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        (void) syscall(SYS_write, (int) fd, line, (size_t) n);
        (void) syscall(SYS_close, (int) fd);
}

/* Whether this matching call is the one to fail (counts it either way). */
static bool should_fail(unsigned bit, const char *call, const char *what) {
        failio_init();
        if (!(cfg.calls & bit))
                return false;
        long seen = __atomic_fetch_add(&cfg.seen, 1, __ATOMIC_SEQ_CST);
        bool fail = seen >= cfg.after;
        if (fail) {
                long failed = __atomic_fetch_add(&cfg.failed, 1, __ATOMIC_SEQ_CST);
                fail = cfg.count < 0 || failed < cfg.count;
        }
        if (fail || cfg.trace)
                log_line(fail, call, what);
        return fail;
}

static bool enabled(unsigned bit) {
        failio_init();
        return (cfg.calls & bit) != 0;
}

#define REAL(name)                                                      \
        static __typeof__(name) *real_##name;                           \
        if (!real_##name)                                               \
                real_##name = (__typeof__(name) *) dlsym(RTLD_NEXT, #name)

static int fail_errno(void) {
        errno = cfg.err;
        return -1;
}

/* ---- opening and creating ------------------------------------------- */

static bool open_fails(int dirfd, const char *path, const char *call) {
        return enabled(CALL_OPEN) && at_path_in_dir(dirfd, path) && should_fail(CALL_OPEN, call, path);
}

static mode_t open_mode(int flags, va_list ap) {
        if (flags & (O_CREAT | __O_TMPFILE))
                return (mode_t) va_arg(ap, int);
        return 0;
}

int open(const char *path, int flags, ...) {
        va_list ap;
        va_start(ap, flags);
        mode_t mode = open_mode(flags, ap);
        va_end(ap);
        REAL(open);
        if (open_fails(AT_FDCWD, path, "open"))
                return fail_errno();
        return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
        va_list ap;
        va_start(ap, flags);
        mode_t mode = open_mode(flags, ap);
        va_end(ap);
        REAL(open64);
        if (open_fails(AT_FDCWD, path, "open"))
                return fail_errno();
        return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
        va_list ap;
        va_start(ap, flags);
        mode_t mode = open_mode(flags, ap);
        va_end(ap);
        REAL(openat);
        if (open_fails(dirfd, path, "open"))
                return fail_errno();
        return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
        va_list ap;
        va_start(ap, flags);
        mode_t mode = open_mode(flags, ap);
        va_end(ap);
        REAL(openat64);
        if (open_fails(dirfd, path, "open"))
                return fail_errno();
        return real_openat64(dirfd, path, flags, mode);
}

int creat(const char *path, mode_t mode) {
        REAL(creat);
        if (open_fails(AT_FDCWD, path, "open"))
                return fail_errno();
        return real_creat(path, mode);
}

FILE *fopen(const char *path, const char *mode) {
        REAL(fopen);
        if (open_fails(AT_FDCWD, path, "open")) {
                errno = cfg.err;
                return NULL;
        }
        return real_fopen(path, mode);
}

FILE *fopen64(const char *path, const char *mode) {
        REAL(fopen64);
        if (open_fails(AT_FDCWD, path, "open")) {
                errno = cfg.err;
                return NULL;
        }
        return real_fopen64(path, mode);
}

/* glibc's mkstemp family opens with an internal call no shim can see. */
int mkostemp(char *tmpl, int flags) {
        REAL(mkostemp);
        if (open_fails(AT_FDCWD, tmpl, "open"))
                return fail_errno();
        return real_mkostemp(tmpl, flags);
}

int mkostemp64(char *tmpl, int flags) {
        REAL(mkostemp64);
        if (open_fails(AT_FDCWD, tmpl, "open"))
                return fail_errno();
        return real_mkostemp64(tmpl, flags);
}

int mkstemp(char *tmpl) {
        REAL(mkstemp);
        if (open_fails(AT_FDCWD, tmpl, "open"))
                return fail_errno();
        return real_mkstemp(tmpl);
}

int mkstemp64(char *tmpl) {
        REAL(mkstemp64);
        if (open_fails(AT_FDCWD, tmpl, "open"))
                return fail_errno();
        return real_mkstemp64(tmpl);
}

int mkostemps(char *tmpl, int suffixlen, int flags) {
        REAL(mkostemps);
        if (open_fails(AT_FDCWD, tmpl, "open"))
                return fail_errno();
        return real_mkostemps(tmpl, suffixlen, flags);
}

/* ---- descriptors ------------------------------------------------------ */

static bool fd_fails(unsigned bit, int fd, const char *call) {
        char path[PATH_MAX];
        if (!enabled(bit) || !fd_in_dir(fd, path, sizeof path))
                return false;
        return should_fail(bit, call, path);
}

ssize_t write(int fd, const void *buf, size_t n) {
        REAL(write);
        if (fd_fails(CALL_WRITE, fd, "write"))
                return fail_errno();
        return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
        REAL(pwrite);
        if (fd_fails(CALL_WRITE, fd, "write"))
                return fail_errno();
        return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
        REAL(pwrite64);
        if (fd_fails(CALL_WRITE, fd, "write"))
                return fail_errno();
        return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
        REAL(writev);
        if (fd_fails(CALL_WRITE, fd, "write"))
                return fail_errno();
        return real_writev(fd, iov, cnt);
}

int fsync(int fd) {
        REAL(fsync);
        if (fd_fails(CALL_FSYNC, fd, "fsync"))
                return fail_errno();
        return real_fsync(fd);
}

int fdatasync(int fd) {
        REAL(fdatasync);
        if (fd_fails(CALL_FSYNC, fd, "fsync"))
                return fail_errno();
        return real_fdatasync(fd);
}

int fchmod(int fd, mode_t mode) {
        REAL(fchmod);
        if (fd_fails(CALL_FCHMOD, fd, "fchmod"))
                return fail_errno();
        return real_fchmod(fd, mode);
}

int close(int fd) {
        REAL(close);
        /* Decided before the fd goes away; the fd is closed regardless. */
        bool fail = fd_fails(CALL_CLOSE, fd, "close");
        int r = real_close(fd);
        if (fail)
                return fail_errno();
        return r;
}

/* ---- renames ---------------------------------------------------------- */

static bool rename_fails(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
        return enabled(CALL_RENAME) && (at_path_in_dir(olddirfd, oldpath) || at_path_in_dir(newdirfd, newpath)) &&
               should_fail(CALL_RENAME, "rename", newpath);
}

int rename(const char *oldpath, const char *newpath) {
        REAL(rename);
        if (rename_fails(AT_FDCWD, oldpath, AT_FDCWD, newpath))
                return fail_errno();
        return real_rename(oldpath, newpath);
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
        REAL(renameat);
        if (rename_fails(olddirfd, oldpath, newdirfd, newpath))
                return fail_errno();
        return real_renameat(olddirfd, oldpath, newdirfd, newpath);
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned flags) {
        REAL(renameat2);
        if (rename_fails(olddirfd, oldpath, newdirfd, newpath))
                return fail_errno();
        return real_renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}
