/* test-metrics.c: the metrics file (daemon/metrics.c). A snapshot gives
 * exactly the expected exposition text whatever the order of its arrays;
 * label values are escaped; bad snapshots are refused without output; the
 * file is replaced atomically; and promtool, the reference checker, finds
 * nothing to complain about (required under CI=1, skipped elsewhere when
 * it is not installed). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "metrics.h"
#include "metrics-snapshot.h"

/* Given out of order on purpose: the text must not follow the caller. */
static const struct metrics_pool fixture_pools[] = {
        { .target = "support-us", .pool = "main", .desired = 3, .claimed = 3 },
        { .target = "sales", .pool = "london", .desired = 2, .claimed = 1, .in_progress = 1, .failed_pending = 1 },
};
static const struct metrics_orphans fixture_orphans[] = {
        { .target = "old", .pool = "main", .count = 2 },
};
static const struct metrics_target fixture_targets[] = {
        { .target = "support-us", .claims = { [METRICS_CLAIM_CLAIMED] = 3, [METRICS_CLAIM_FAILED] = 1,
                                              [METRICS_CLAIM_REFUSED] = 2 } },
        { .target = "sales", .quota_paused = true,
          .claims = { [METRICS_CLAIM_CLAIMED] = 1, [METRICS_CLAIM_GIVEN_UP] = 1 }, .releases = 1 },
};
static const struct metrics_api fixture_api[] = {
        { .operation = "ClaimPhoneNumber", .account = "111122223333", .region = "us-east-1",
          .calls = { [METRICS_API_OK] = 4, [METRICS_API_THROTTLED] = 2, [METRICS_API_ERROR] = 1 } },
};

static struct metrics_snapshot fixture(void) {
        return (struct metrics_snapshot) {
                .pools = fixture_pools, .n_pools = ELEMENTSOF(fixture_pools),
                .orphans = fixture_orphans, .n_orphans = ELEMENTSOF(fixture_orphans),
                .targets = fixture_targets, .n_targets = ELEMENTSOF(fixture_targets),
                .api = fixture_api, .n_api = ELEMENTSOF(fixture_api),
                .pass_duration_usec = 1500000,
                .last_pass_usec = 1767225600250000ULL,
                .last_success_usec = 1767225600250000ULL,
                .last_pass_exit_status = 75,
                .counters_since_usec = 1767225000000000ULL,
        };
}

static const char fixture_text[] =
        "# HELP connect_numbers_desired Numbers the pool should hold (its count).\n"
        "# TYPE connect_numbers_desired gauge\n"
        "connect_numbers_desired{target=\"sales\",pool=\"london\"} 2\n"
        "connect_numbers_desired{target=\"support-us\",pool=\"main\"} 3\n"
        "# HELP connect_numbers_claimed Numbers of the pool CLAIMED on its target, excess included.\n"
        "# TYPE connect_numbers_claimed gauge\n"
        "connect_numbers_claimed{target=\"sales\",pool=\"london\"} 1\n"
        "connect_numbers_claimed{target=\"support-us\",pool=\"main\"} 3\n"
        "# HELP connect_numbers_in_progress Claims of the pool still IN_PROGRESS.\n"
        "# TYPE connect_numbers_in_progress gauge\n"
        "connect_numbers_in_progress{target=\"sales\",pool=\"london\"} 1\n"
        "connect_numbers_in_progress{target=\"support-us\",pool=\"main\"} 0\n"
        "# HELP connect_numbers_failed_pending Failed claims of the pool waiting for their retry.\n"
        "# TYPE connect_numbers_failed_pending gauge\n"
        "connect_numbers_failed_pending{target=\"sales\",pool=\"london\"} 1\n"
        "connect_numbers_failed_pending{target=\"support-us\",pool=\"main\"} 0\n"
        "# HELP connect_numbers_excess Numbers of the pool beyond its count.\n"
        "# TYPE connect_numbers_excess gauge\n"
        "connect_numbers_excess{target=\"sales\",pool=\"london\"} 0\n"
        "connect_numbers_excess{target=\"support-us\",pool=\"main\"} 0\n"
        "# HELP connect_numbers_moving Numbers being moved to the pool's target.\n"
        "# TYPE connect_numbers_moving gauge\n"
        "connect_numbers_moving{target=\"sales\",pool=\"london\"} 0\n"
        "connect_numbers_moving{target=\"support-us\",pool=\"main\"} 0\n"
        "# HELP connect_numbers_pins_missing Pinned numbers of the pool not held by its target.\n"
        "# TYPE connect_numbers_pins_missing gauge\n"
        "connect_numbers_pins_missing{target=\"sales\",pool=\"london\"} 0\n"
        "connect_numbers_pins_missing{target=\"support-us\",pool=\"main\"} 0\n"
        "# HELP connect_numbers_orphans Numbers tagged for a target or pool that is no longer configured.\n"
        "# TYPE connect_numbers_orphans gauge\n"
        "connect_numbers_orphans{target=\"old\",pool=\"main\"} 2\n"
        "# HELP connect_numbers_quota_paused 1 while claiming for the target is paused after a quota refusal.\n"
        "# TYPE connect_numbers_quota_paused gauge\n"
        "connect_numbers_quota_paused{target=\"sales\"} 1\n"
        "connect_numbers_quota_paused{target=\"support-us\"} 0\n"
        "# HELP connect_numbers_claims_total Claims that ended, by outcome (claimed, failed, refused, given_up).\n"
        "# TYPE connect_numbers_claims_total counter\n"
        "connect_numbers_claims_total{target=\"sales\",outcome=\"claimed\"} 1\n"
        "connect_numbers_claims_total{target=\"sales\",outcome=\"failed\"} 0\n"
        "connect_numbers_claims_total{target=\"sales\",outcome=\"refused\"} 0\n"
        "connect_numbers_claims_total{target=\"sales\",outcome=\"given_up\"} 1\n"
        "connect_numbers_claims_total{target=\"support-us\",outcome=\"claimed\"} 3\n"
        "connect_numbers_claims_total{target=\"support-us\",outcome=\"failed\"} 1\n"
        "connect_numbers_claims_total{target=\"support-us\",outcome=\"refused\"} 2\n"
        "connect_numbers_claims_total{target=\"support-us\",outcome=\"given_up\"} 0\n"
        "# HELP connect_numbers_releases_total Numbers released.\n"
        "# TYPE connect_numbers_releases_total counter\n"
        "connect_numbers_releases_total{target=\"sales\"} 1\n"
        "connect_numbers_releases_total{target=\"support-us\"} 0\n"
        "# HELP connect_numbers_moves_total Numbers moved to the target.\n"
        "# TYPE connect_numbers_moves_total counter\n"
        "connect_numbers_moves_total{target=\"sales\"} 0\n"
        "connect_numbers_moves_total{target=\"support-us\"} 0\n"
        "# HELP connect_numbers_api_calls_total Amazon Connect API calls, by outcome (ok, throttled, error).\n"
        "# TYPE connect_numbers_api_calls_total counter\n"
        "connect_numbers_api_calls_total{operation=\"ClaimPhoneNumber\",outcome=\"ok\",account=\"111122223333\",region=\"us-east-1\"} 4\n"
        "connect_numbers_api_calls_total{operation=\"ClaimPhoneNumber\",outcome=\"throttled\",account=\"111122223333\",region=\"us-east-1\"} 2\n"
        "connect_numbers_api_calls_total{operation=\"ClaimPhoneNumber\",outcome=\"error\",account=\"111122223333\",region=\"us-east-1\"} 1\n"
        "# HELP connect_numbers_pass_duration_seconds How long the last pass took.\n"
        "# TYPE connect_numbers_pass_duration_seconds gauge\n"
        "connect_numbers_pass_duration_seconds 1.5\n"
        "# HELP connect_numbers_last_pass_timestamp_seconds When the last pass ended, in seconds since the epoch.\n"
        "# TYPE connect_numbers_last_pass_timestamp_seconds gauge\n"
        "connect_numbers_last_pass_timestamp_seconds 1767225600.25\n"
        "# HELP connect_numbers_last_success_timestamp_seconds When the last pass that exited 0 or 75 ended, in seconds since the epoch (0: none yet).\n"
        "# TYPE connect_numbers_last_success_timestamp_seconds gauge\n"
        "connect_numbers_last_success_timestamp_seconds 1767225600.25\n"
        "# HELP connect_numbers_last_pass_exit_status Exit status of the last pass (0, 75 or 1).\n"
        "# TYPE connect_numbers_last_pass_exit_status gauge\n"
        "connect_numbers_last_pass_exit_status 75\n"
        "# HELP connect_numbers_start_time_seconds Since when the counters count, in seconds since the epoch: they restart from 0 then.\n"
        "# TYPE connect_numbers_start_time_seconds gauge\n"
        "connect_numbers_start_time_seconds 1767225000\n";

static void test_format_exact(_unused_ void **state) {
        struct metrics_snapshot m = fixture();
        _cleanup_(freep) char *text = NULL;
        assert_int_equal(metrics_format(&m, &text), 0);
        assert_non_null(text);
        assert_string_equal(text, fixture_text);
}

/* The same series in the opposite order give the same bytes. */
static void test_format_order_independent(_unused_ void **state) {
        struct metrics_pool pools[] = { fixture_pools[1], fixture_pools[0] };
        struct metrics_target targets[] = { fixture_targets[1], fixture_targets[0] };
        struct metrics_snapshot m = fixture();
        m.pools = pools;
        m.targets = targets;
        _cleanup_(freep) char *text = NULL;
        assert_int_equal(metrics_format(&m, &text), 0);
        assert_string_equal(text, fixture_text);
}

static void test_format_escapes_labels(_unused_ void **state) {
        const struct metrics_pool pools[] = {
                { .target = "a\"b", .pool = "c\\d\ne", .desired = 1 },
        };
        const struct metrics_snapshot m = { .pools = pools, .n_pools = 1 };
        _cleanup_(freep) char *text = NULL;
        assert_int_equal(metrics_format(&m, &text), 0);
        assert_non_null(strstr(text, "connect_numbers_desired{target=\"a\\\"b\",pool=\"c\\\\d\\ne\"} 1\n"));
        /* the raw line feed must not reach the text inside a sample */
        assert_null(strstr(text, "d\ne"));
}

static void test_format_seconds(_unused_ void **state) {
        const struct metrics_snapshot m = { .pass_duration_usec = 1, .last_pass_usec = 12 * USEC_PER_SEC,
                                            .last_success_usec = 0, .last_pass_exit_status = 1 };
        _cleanup_(freep) char *text = NULL;
        assert_int_equal(metrics_format(&m, &text), 0);
        assert_non_null(strstr(text, "\nconnect_numbers_pass_duration_seconds 0.000001\n"));
        assert_non_null(strstr(text, "\nconnect_numbers_last_pass_timestamp_seconds 12\n"));
        assert_non_null(strstr(text, "\nconnect_numbers_last_success_timestamp_seconds 0\n"));
        assert_non_null(strstr(text, "\nconnect_numbers_last_pass_exit_status 1\n"));
        /* every family is declared even without a series */
        assert_non_null(strstr(text, "# TYPE connect_numbers_api_calls_total counter\n"));
        assert_non_null(strstr(text, "# HELP connect_numbers_orphans "));
}

static void test_format_refuses(_unused_ void **state) {
        char *text = (char *) "untouched";
        const struct metrics_pool null_label[] = { { .target = "t", .pool = NULL } };
        struct metrics_snapshot m = { .pools = null_label, .n_pools = 1 };
        assert_int_equal(metrics_format(&m, &text), -EINVAL);
        assert_string_equal(text, "untouched");

        /* a scraper refuses a whole file with a repeated series */
        const struct metrics_api twice[] = {
                { .operation = "TagResource", .account = "111122223333", .region = "us-east-1" },
                { .operation = "TagResource", .account = "111122223333", .region = "us-east-1" },
        };
        m = (struct metrics_snapshot) { .api = twice, .n_api = 2 };
        assert_int_equal(metrics_format(&m, &text), -EINVAL);
        assert_string_equal(text, "untouched");

        m = (struct metrics_snapshot) { .n_targets = 1 };
        assert_int_equal(metrics_format(&m, &text), -EINVAL);
        assert_int_equal(metrics_format(NULL, &text), -EINVAL);
        assert_string_equal(text, "untouched");
}

static char *make_temp_dir(void) {
        char *d = strdup("/tmp/test-metrics-XXXXXX");
        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static size_t dir_entries(const char *dir) {
        DIR *d = opendir(dir);
        size_t n = 0;
        assert_non_null(d);
        for (struct dirent *e; (e = readdir(d));)
                if (!streq(e->d_name, ".") && !streq(e->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void test_write_file(_unused_ void **state) {
        _cleanup_(freep) char *dir = make_temp_dir();
        _cleanup_(freep) char *path = strprintf("%s/metrics.prom", dir);
        _cleanup_(freep) char *text = NULL;
        size_t len;
        struct stat st;

        assert_int_equal(metrics_write_file(path, "first\n"), 0);
        assert_int_equal(metrics_write_file(path, fixture_text), 0);
        assert_int_equal(read_full_file(path, 1 << 20, &text, &len), 0);
        assert_string_equal(text, fixture_text);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        /* no temporary file left behind */
        assert_int_equal(dir_entries(dir), 1);

        /* a directory that does not exist: an error, nothing created */
        _cleanup_(freep) char *missing = strprintf("%s/nope/metrics.prom", dir);
        assert_int_equal(metrics_write_file(missing, "x\n"), -ENOENT);
        assert_int_equal(dir_entries(dir), 1);

        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* promtool reads the text from stdin; its verdict is the exit status. */
static int promtool_check(const char *text, bool quiet) {
        FILE *p = popen(quiet ? "promtool check metrics >/dev/null 2>&1" : "promtool check metrics", "w");
        assert_non_null(p);
        fputs(text, p);
        int status = pclose(p);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_promtool(_unused_ void **state) {
        if (system("command -v promtool >/dev/null 2>&1") != 0) {
                if (!isempty(getenv("CI")))
                        fail_msg("promtool is not installed (Debian package prometheus): required under CI");
                print_message("promtool not installed: skipped\n");
                skip();
        }
        struct metrics_snapshot m = fixture();
        _cleanup_(freep) char *text = NULL;
        assert_int_equal(metrics_format(&m, &text), 0);
        assert_int_equal(promtool_check(text, false), 0);

        /* and promtool does complain about a counter without _total, so
         * the check above means something */
        assert_int_not_equal(promtool_check("# HELP x_calls c\n# TYPE x_calls counter\nx_calls 1\n", true), 0);
}

static void test_counters(_unused_ void **state) {
        struct metrics_counters c = {};
        struct lifecycle_event claimed = {.kind = EVENT_CLAIMED, .target = (char *) "a"};
        struct lifecycle_event failed = {.kind = EVENT_CLAIM_FAILED, .target = (char *) "a"};
        struct lifecycle_event expired = {.kind = EVENT_WINDOW_EXPIRED, .target = (char *) "b"};
        struct lifecycle_event released = {.kind = EVENT_RELEASED, .target = (char *) "b"};
        struct lifecycle_event note = {.kind = EVENT_NOTE, .target = (char *) "c"};

        metrics_counters_event(NULL, &claimed); /* no counters: nothing, no crash */
        metrics_counters_event(&c, &claimed);
        metrics_counters_event(&c, &claimed);
        metrics_counters_event(&c, &failed);
        metrics_counters_event(&c, &expired);
        metrics_counters_event(&c, &released);
        metrics_counters_event(&c, &note);
        metrics_counters_refusal(&c, "a", false, CLAIM_NEXT_CANDIDATE);
        metrics_counters_refusal(&c, "a", true, CLAIM_NEXT_CANDIDATE);     /* a retry refused: given up */
        metrics_counters_refusal(&c, "a", false, CLAIM_NEXT_KEEP_INTENT);  /* throttled: no answer */
        metrics_counters_refusal(&c, "a", true, CLAIM_NEXT_STOP_TARGET);

        const struct metrics_target_counters *a = metrics_counters_get(&c, "a");
        const struct metrics_target_counters *b = metrics_counters_get(&c, "b");
        assert_int_equal(a->claims[METRICS_CLAIM_CLAIMED], 2);
        assert_int_equal(a->claims[METRICS_CLAIM_FAILED], 1);
        assert_int_equal(a->claims[METRICS_CLAIM_REFUSED], 3);
        assert_int_equal(a->claims[METRICS_CLAIM_GIVEN_UP], 1);
        assert_int_equal(b->claims[METRICS_CLAIM_GIVEN_UP], 1);
        assert_int_equal(b->releases, 1);
        assert_int_equal(metrics_counters_get(&c, "c")->releases, 0);
        assert_int_equal(c.n_targets, 3);
        metrics_counters_clear(&c);
        assert_int_equal(c.n_targets, 0);
}

static void test_path(_unused_ void **state) {
        struct config c = {};
        char *p = NULL;

        unsetenv("RUNTIME_DIRECTORY");
        assert_int_equal(metrics_path(&c, &p), 0);
        assert_null(p);
        setenv("RUNTIME_DIRECTORY", "/run/connect-numbersd:/run/other", 1);
        assert_int_equal(metrics_path(&c, &p), 0);
        assert_string_equal(p, "/run/connect-numbersd/metrics.prom");
        free(p);
        c.metrics_file = (char *) "/srv/textfile/cn.prom";
        assert_int_equal(metrics_path(&c, &p), 0);
        assert_string_equal(p, "/srv/textfile/cn.prom");
        free(p);
        unsetenv("RUNTIME_DIRECTORY");
}

/* Every pool and target of the configuration has its series from the
 * first file on (zeros), and counted targets since removed keep theirs. */
static void test_snapshot(_unused_ void **state) {
        static const char yaml[] =
                "targets:\n"
                "  t:\n"
                "    arn: arn:aws:connect:us-east-1:111122223333:instance/0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11\n"
                "    pools:\n"
                "      p: {country: US, type: DID, count: 2}\n";
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_(state_freep) struct state *s = state_new();
        struct metrics_counters counters = {};
        _cleanup_(freep) char *text = NULL;
        assert_int_equal(config_parse(yaml, strlen(yaml), &c, NULL), 0);
        assert_non_null(s);
        metrics_counters_get(&counters, "gone")->releases = 4;
        struct metrics_pass_info info = {.duration_usec = 1500000, .ended_usec = 2000000, .since_usec = 1000000,
                                         .exit_status = 1};
        assert_int_equal(metrics_snapshot_format(c, s, NULL, &counters, NULL, &info, 2, &text), 0);
        assert_non_null(strstr(text, "connect_numbers_desired{target=\"t\",pool=\"p\"} 2\n"));
        assert_non_null(strstr(text, "connect_numbers_claimed{target=\"t\",pool=\"p\"} 0\n"));
        assert_non_null(strstr(text, "connect_numbers_quota_paused{target=\"t\"} 0\n"));
        assert_non_null(strstr(text, "connect_numbers_claims_total{target=\"t\",outcome=\"claimed\"} 0\n"));
        assert_non_null(strstr(text, "connect_numbers_releases_total{target=\"gone\"} 4\n"));
        assert_non_null(strstr(text, "connect_numbers_last_pass_exit_status 1\n"));
        assert_non_null(strstr(text, "connect_numbers_last_success_timestamp_seconds 0\n"));
        assert_non_null(strstr(text, "connect_numbers_pass_duration_seconds 1.5\n"));
        metrics_counters_clear(&counters);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_exact),
                cmocka_unit_test(test_format_order_independent),
                cmocka_unit_test(test_format_escapes_labels),
                cmocka_unit_test(test_format_seconds),
                cmocka_unit_test(test_format_refuses),
                cmocka_unit_test(test_write_file),
                cmocka_unit_test(test_promtool),
                cmocka_unit_test(test_counters),
                cmocka_unit_test(test_path),
                cmocka_unit_test(test_snapshot),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
