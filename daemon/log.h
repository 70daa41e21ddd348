/* log.h: journald records with our fields and MESSAGE_IDs, or readable
 * console lines. Pure modules never log; the code that handles an error
 * logs it once and returns. Secrets never reach these functions. */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "util.h"

/* Catalogued events (connect-numbersd(8), LOGGING); entries live in
 * systemd/connect-numbers.catalog. */
#define MESSAGE_ID_CLAIMED "fe516c5d203b4ef48e29b6edb103ba96"
#define MESSAGE_ID_CLAIM_FAILED "726fdf2a6b18422a90734a9771ee61ae"
#define MESSAGE_ID_WINDOW_EXPIRED "fd0cb8acf5ee4275a5c6ac2fae166dd4"
#define MESSAGE_ID_QUOTA "3397924d2cd44439856474d51b94ceda"
#define MESSAGE_ID_NO_NUMBERS "b1fdd874a64c4dc696b4d4d00a08fe87"
#define MESSAGE_ID_RELEASED "b56b327dab6448f7b61dd61fe1dd0e4d"
#define MESSAGE_ID_PASS "6ae6cd9d9ba346269c909e0a010f7801"
#define MESSAGE_ID_CONFIG_REJECTED "74a9b527b5114d6c936bc5e72a541aa2"
#define MESSAGE_ID_MOVED "c8f7426e7d32423ba00b32c03464e7a7"
#define MESSAGE_ID_PIN "869c57ce438f44c88e13d31666e19092"
#define MESSAGE_ID_PASS_FAILED "83071d3e0988490ea9d40509493000f0"
#define MESSAGE_ID_CREDENTIALS_FAILED "a55259bd69e142f1826a5fee9b97dacd"

enum log_target {
        LOG_TARGET_AUTO,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_CONSOLE,
};

/* The structured fields a record may carry; NULL members are omitted.
 * extra: NULL-terminated list of further "FIELD=value" strings. */
struct log_fields {
        const char *message_id;
        const char *target;
        const char *target_arn;
        const char *pool;
        const char *phone_number;
        const char *phone_number_id;
        const char *aws_operation;
        const char *aws_request_id;
        const char *aws_error_code;
        const char *const *extra;
};

int log_target_from_string(const char *s, enum log_target *ret);
/* The names of log_level: (err, warning, notice, info, debug) to syslog
 * priorities and back: -EINVAL / NULL for anything else. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int priority);
void log_setup(enum log_target target, int max_priority);
void log_set_max_priority(int max_priority);
int log_get_max_priority(void);
/* The command line (-v) chose the level: log_set_config_priority() leaves
 * it alone from then on. */
void log_force_max_priority(int max_priority);
/* The configuration's log_level:, unless the command line chose a level.
 * Returns true when it was applied. */
bool log_set_config_priority(int max_priority);
/* Sends console output to this fd instead of stderr (tests). */
void log_set_console_fd(int fd);
/* Hands journal records to sink instead of sd_journal_sendv() (tests);
 * NULL restores journald. The iovec holds "FIELD=value" items. */
struct iovec;
typedef int (*log_journal_sink_t)(const struct iovec *iov, int n);
void log_set_journal_sink(log_journal_sink_t sink);

/* Logs and returns -abs(error) (or 0 when error is 0), so that callers can
 * write `return log_error_errno(r, ...)`.
 *
 * file, line and func are the caller's: journald records carry them as
 * CODE_FILE, CODE_LINE and CODE_FUNC, so that a record leads to the code
 * that logged it and not to this wrapper. Call these through the macros
 * below, which fill them in. */
int log_fieldsv_at(const char *file, int line, const char *func, int priority, int error, const struct log_fields *f,
                   const char *fmt, va_list ap) _printf_(7, 0);
int log_fields_at(const char *file, int line, const char *func, int priority, int error, const struct log_fields *f,
                  const char *fmt, ...) _printf_(7, 8);

/* log_fields(priority, error, fields, fmt, ...) and
 * log_fieldsv(priority, error, fields, fmt, ap). Fully variadic so that a
 * compound literal with commas can be passed as fields. */
#define log_fields(...) log_fields_at(__FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_fieldsv(...) log_fieldsv_at(__FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_full_errno(prio, err, ...) log_fields((prio), (err), NULL, __VA_ARGS__)
#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)

/* Repeat suppression (OpenNTPD's client_log_error): returns the priority
 * to log at for a condition identified by key whose current text is msg:
 * `priority` the first time or when msg changed, LOG_DEBUG while it
 * repeats. log_repeat_clear() returns true if key was set (so the caller
 * can log that the condition cleared). */
int log_repeat_priority(const char *key, const char *msg, int priority);
bool log_repeat_clear(const char *key);
void log_repeat_reset(void);
