/* test-log.c: the journal records that log.c builds. Each record must name
 * the code that logged it (CODE_FILE, CODE_LINE, CODE_FUNC of the caller,
 * exactly once each), never the logging wrapper in daemon/log.c; the
 * structured fields and the errno text are checked on the way. Records go
 * to a test sink instead of journald. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "log.h"

#define MAX_ITEMS 64

static char *items[MAX_ITEMS];
static int n_items;

static int sink(const struct iovec *iov, int n) {
        for (int i = 0; i < n && n_items < MAX_ITEMS; i++)
                items[n_items++] = strndup(iov[i].iov_base, iov[i].iov_len);
        return 0;
}

static void reset(void) {
        for (int i = 0; i < n_items; i++)
                free(items[i]);
        n_items = 0;
}

/* The value of the only item named field, or NULL; fails on a repeat. */
static const char *field(const char *name) {
        size_t len = strlen(name);
        const char *found = NULL;
        for (int i = 0; i < n_items; i++)
                if (strncmp(items[i], name, len) == 0 && items[i][len] == '=') {
                        assert_null(found);
                        found = items[i] + len + 1;
                }
        return found;
}

static void assert_location(int line, const char *func) {
        char buf[16];
        assert_non_null(field("CODE_FILE"));
        assert_string_equal(field("CODE_FILE"), __FILE__);
        assert_string_not_equal(field("CODE_FILE"), "daemon/log.c");
        snprintf(buf, sizeof buf, "%d", line);
        assert_non_null(field("CODE_LINE"));
        assert_string_equal(field("CODE_LINE"), buf);
        assert_non_null(field("CODE_FUNC"));
        assert_string_equal(field("CODE_FUNC"), func);
        assert_null(strstr(field("CODE_FUNC"), "log_fields"));
}

static int setup(void **state) {
        (void) state;
        log_setup(LOG_TARGET_JOURNAL, LOG_DEBUG);
        log_set_journal_sink(sink);
        return 0;
}

static int teardown(void **state) {
        (void) state;
        reset();
        log_set_journal_sink(NULL);
        return 0;
}

static void test_plain_macros(void **state) {
        (void) state;
        int line;

        reset();
        line = __LINE__ + 1;
        log_info("hello %d", 42);
        assert_location(line, __func__);
        assert_string_equal(field("MESSAGE"), "hello 42");
        assert_string_equal(field("PRIORITY"), "6");
        assert_string_equal(field("SYSLOG_IDENTIFIER"), "connect-numbersd");

        reset();
        line = __LINE__ + 1;
        log_warning("careful");
        assert_location(line, __func__);
        assert_string_equal(field("PRIORITY"), "4");
}

static int fails_with_errno(void) {
        return log_error_errno(-ENOENT, "open %s", "x");
}

static void test_errno_macro_returns_and_locates(void **state) {
        (void) state;
        reset();
        assert_int_equal(fails_with_errno(), -ENOENT);
        assert_string_equal(field("CODE_FUNC"), "fails_with_errno");
        assert_string_equal(field("CODE_FILE"), __FILE__);
        assert_string_equal(field("ERRNO"), "2");
        assert_non_null(strstr(field("MESSAGE"), "open x: "));
}

static void test_fields_with_compound_literal(void **state) {
        (void) state;
        const char *const extra[] = {"PASS_EXIT_STATUS=75", NULL};
        int line;

        reset();
        /* A compound literal with commas inside, as pass.c writes it. */
        line = __LINE__ + 1;
        log_fields(LOG_NOTICE, 0, &(struct log_fields){.target = "t", .pool = "p", .extra = extra}, "pool %s", "p");
        assert_location(line, __func__);
        assert_string_equal(field("TARGET"), "t");
        assert_string_equal(field("POOL"), "p");
        assert_string_equal(field("PASS_EXIT_STATUS"), "75");
        assert_string_equal(field("MESSAGE"), "pool p");
        assert_null(field("TARGET_ARN"));
}

static void test_below_max_priority_sends_nothing(void **state) {
        (void) state;
        reset();
        log_set_max_priority(LOG_INFO);
        log_debug("quiet");
        assert_int_equal(n_items, 0);
        log_set_max_priority(LOG_DEBUG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain_macros),
                cmocka_unit_test(test_errno_macro_returns_and_locates),
                cmocka_unit_test(test_fields_with_compound_literal),
                cmocka_unit_test(test_below_max_priority_sends_nothing),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
