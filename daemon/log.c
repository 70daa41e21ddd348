/* log.c: writes records natively to journald (sd_journal_send) or as
 * console lines with the "<N>" priority prefix that journald understands
 * when it captures stderr. Owns the repeat-suppression table. */
#include "log.h"

#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
/* Without this, sd-journal.h turns sd_journal_sendv() into a macro that
 * adds this file's own CODE_FILE/CODE_LINE/CODE_FUNC; we send the
 * caller's instead. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>

static enum log_target log_target_current = LOG_TARGET_CONSOLE;
static int log_max_priority = LOG_INFO;
static int log_console_fd = STDERR_FILENO;
static bool log_console_prefix = false;
static log_journal_sink_t log_journal_sink = NULL;
static bool log_max_priority_forced = false;

/* Indexed by syslog priority; emerg, alert and crit are not levels one
 * can ask for (the daemon never logs them). */
static const char *const log_level_names[] = {
        [LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info",
        [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(log_level_names); i++)
                if (log_level_names[i] && streq(s, log_level_names[i]))
                        return (int) i;
        return -EINVAL;
}

const char *log_level_to_string(int priority) {
        if (priority < 0 || (size_t) priority >= ELEMENTSOF(log_level_names))
                return NULL;
        return log_level_names[priority];
}

int log_target_from_string(const char *s, enum log_target *ret) {
        if (streq(s, "auto"))
                *ret = LOG_TARGET_AUTO;
        else if (streq(s, "journal"))
                *ret = LOG_TARGET_JOURNAL;
        else if (streq(s, "console"))
                *ret = LOG_TARGET_CONSOLE;
        else
                return -EINVAL;
        return 0;
}

/* JOURNAL_STREAM holds "DEV:INODE" of the stream journald gave us; it
 * counts only if stderr still is that stream (systemd.exec(5)). */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(enum log_target target, int max_priority) {
        if (target == LOG_TARGET_AUTO)
                target = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_CONSOLE;
        log_target_current = target;
        log_max_priority = max_priority;
        /* Under systemd without native logging (forced console), keep the
         * priority visible to journald through the "<N>" prefix. */
        log_console_prefix = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_max_priority(int max_priority) {
        log_max_priority = max_priority;
}

int log_get_max_priority(void) {
        return log_max_priority;
}

void log_force_max_priority(int max_priority) {
        log_max_priority = max_priority;
        log_max_priority_forced = true;
}

bool log_set_config_priority(int max_priority) {
        if (log_max_priority_forced)
                return false;
        log_max_priority = max_priority;
        return true;
}

void log_set_console_fd(int fd) {
        log_console_fd = fd;
}

void log_set_journal_sink(log_journal_sink_t sink) {
        log_journal_sink = sink;
}

static const char *priority_name(int p) {
        static const char *const names[] = {"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"};
        return p >= 0 && p <= 7 ? names[p] : "info";
}

#define MAX_FIELDS 32

int log_fieldsv_at(const char *file, int line, const char *func, int priority, int error, const struct log_fields *f,
                   const char *fmt, va_list ap) {
        int ret = error > 0 ? -error : error;
        if (priority > log_max_priority)
                return ret;

        int saved_errno = errno;
        _cleanup_(freep) char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0) {
                errno = saved_errno;
                return ret;
        }
        if (error != 0) {
                char *m = strprintf("%s: %s", msg, strerror(error > 0 ? error : -error));
                if (m) {
                        free(msg);
                        msg = m;
                }
        }

        if (log_target_current == LOG_TARGET_JOURNAL) {
                char *items[MAX_FIELDS] = {0};
                struct iovec iov[MAX_FIELDS];
                size_t n = 0;
#define ADD(fmtstr, val)                                                         \
        do {                                                                     \
                if ((val) && n < MAX_FIELDS && (items[n] = strprintf(fmtstr, val))) \
                        n++;                                                     \
        } while (0)
                ADD("MESSAGE=%s", msg);
                ADD("PRIORITY=%i", priority);
                ADD("SYSLOG_IDENTIFIER=%s", "connect-numbersd");
                ADD("CODE_FILE=%s", file);
                if (line > 0)
                        ADD("CODE_LINE=%i", line);
                ADD("CODE_FUNC=%s", func);
                if (error != 0)
                        ADD("ERRNO=%i", error > 0 ? error : -error);
                if (f) {
                        ADD("MESSAGE_ID=%s", f->message_id);
                        ADD("TARGET=%s", f->target);
                        ADD("TARGET_ARN=%s", f->target_arn);
                        ADD("POOL=%s", f->pool);
                        ADD("PHONE_NUMBER=%s", f->phone_number);
                        ADD("PHONE_NUMBER_ID=%s", f->phone_number_id);
                        ADD("AWS_OPERATION=%s", f->aws_operation);
                        ADD("AWS_REQUEST_ID=%s", f->aws_request_id);
                        ADD("AWS_ERROR_CODE=%s", f->aws_error_code);
                        if (f->extra)
                                for (const char *const *x = f->extra; *x; x++)
                                        ADD("%s", *x);
                }
#undef ADD
                for (size_t i = 0; i < n; i++)
                        iov[i] = (struct iovec){.iov_base = items[i], .iov_len = strlen(items[i])};
                if (log_journal_sink)
                        log_journal_sink(iov, (int) n);
                else
                        sd_journal_sendv(iov, (int) n);
                for (size_t i = 0; i < n; i++)
                        free(items[i]);
        } else {
                /* One readable line: "<3>error: message [TARGET=x POOL=y ...]". */
                char ctx[1024] = "";
                size_t off = 0;
#define CTX(name, val)                                                                           \
        do {                                                                                     \
                if ((val) && off < sizeof ctx)                                                   \
                        off += (size_t) snprintf(ctx + off, sizeof ctx - off, "%s%s=%s",         \
                                                 off ? " " : "", name, (const char *) (val));    \
        } while (0)
                if (f) {
                        CTX("target", f->target);
                        CTX("pool", f->pool);
                        CTX("number", f->phone_number);
                        CTX("op", f->aws_operation);
                        CTX("error", f->aws_error_code);
                        CTX("request-id", f->aws_request_id);
                }
#undef CTX
                if (off >= sizeof ctx)
                        off = sizeof ctx - 1;
                if (log_console_prefix)
                        dprintf(log_console_fd, "<%i>%s%s%s%s\n", priority, msg, off ? " [" : "", ctx, off ? "]" : "");
                else
                        dprintf(log_console_fd, "%s: %s%s%s%s\n", priority_name(priority), msg, off ? " [" : "", ctx,
                                off ? "]" : "");
        }
        errno = saved_errno;
        return ret;
}

int log_fields_at(const char *file, int line, const char *func, int priority, int error, const struct log_fields *f,
                  const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = log_fieldsv_at(file, line, func, priority, error, f, fmt, ap);
        va_end(ap);
        return r;
}

struct repeat_entry {
        char *key;
        char *msg;
        struct repeat_entry *next;
};
static struct repeat_entry *repeat_head = NULL;

int log_repeat_priority(const char *key, const char *msg, int priority) {
        for (struct repeat_entry *e = repeat_head; e; e = e->next)
                if (streq(e->key, key)) {
                        if (streq_ptr(e->msg, msg))
                                return LOG_DEBUG;
                        free_and_strdup(&e->msg, msg);
                        return priority;
                }
        struct repeat_entry *e = calloc(1, sizeof *e);
        if (e) {
                e->key = strdup(key);
                e->msg = strdup_or_null(msg);
                if (!e->key) {
                        free(e->msg);
                        free(e);
                } else {
                        e->next = repeat_head;
                        repeat_head = e;
                }
        }
        return priority;
}

bool log_repeat_clear(const char *key) {
        for (struct repeat_entry **p = &repeat_head; *p; p = &(*p)->next)
                if (streq((*p)->key, key)) {
                        struct repeat_entry *e = *p;
                        *p = e->next;
                        free(e->key);
                        free(e->msg);
                        free(e);
                        return true;
                }
        return false;
}

void log_repeat_reset(void) {
        while (repeat_head) {
                struct repeat_entry *e = repeat_head;
                repeat_head = e->next;
                free(e->key);
                free(e->msg);
                free(e);
        }
}
