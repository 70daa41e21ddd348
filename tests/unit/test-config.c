/* test-config.c: the desired-state parser (daemon/config.c) against data
 * files. tests/data/config/good/ must parse with no problem (a few values
 * are checked precisely); every tests/data/config/bad/NAME.yaml must be
 * refused with exactly the lines of NAME.expected, as --check-config prints
 * them with FILE "NAME.yaml". Run from the repository root (the Makefile
 * does), or set CONNECT_NUMBERS_TEST_DATA to the tests/data directory. */

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <cmocka.h>

#include "config.h"

#define BAD_FILES_MIN 45

static const char *data_dir(void) {
        const char *d = getenv("CONNECT_NUMBERS_TEST_DATA");
        return d && *d ? d : "tests/data";
}

static char *data_path(const char *rel) {
        char *p = strprintf("%s/%s", data_dir(), rel);
        assert_non_null(p);
        return p;
}

static char *read_text(const char *path, size_t *ret_len) {
        char *t = NULL;
        size_t len = 0;
        int r = read_full_file(path, 4 * 1024 * 1024, &t, &len);
        if (r < 0)
                fail_msg("cannot read %s: %s", path, strerror(-r));
        if (ret_len)
                *ret_len = len;
        return t;
}

/* Parses a file that must be valid; fails with the problems otherwise. */
static struct config *load_good(const char *rel) {
        _cleanup_(freep) char *path = data_path(rel);
        struct config_problems p = {};
        struct config *c = NULL;
        int r = config_load(path, &c, &p);
        if (r < 0 || p.n > 0) {
                config_problems_print(&p, path, stderr);
                config_problems_clear(&p);
                fail_msg("%s: expected valid, got %d", rel, r);
        }
        assert_non_null(c);
        return c;
}

/* Parses text that must be valid. */
static struct config *parse_good(const char *text) {
        struct config_problems p = {};
        struct config *c = NULL;
        int r = config_parse(text, strlen(text), &c, &p);
        if (r < 0) {
                config_problems_print(&p, "<text>", stderr);
                config_problems_clear(&p);
                fail_msg("expected valid text, got %d", r);
        }
        assert_int_equal(p.n, 0);
        return c;
}

/* Problems of text that must be invalid, as printed lines. */
static char *parse_bad(const char *text, size_t len) {
        struct config_problems p = {};
        struct config *c = NULL;
        char *out = NULL;
        size_t out_len = 0;
        assert_int_equal(config_parse(text, len, &c, &p), -EINVAL);
        assert_null(c);
        assert_true(p.n > 0);
        FILE *f = open_memstream(&out, &out_len);
        assert_non_null(f);
        config_problems_print(&p, "x.yaml", f);
        fclose(f);
        config_problems_clear(&p);
        return out;
}

static bool is_hex64(const char *s) {
        return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && streq(s + a - b, suffix);
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sorted names of the files in dir ending with suffix. */
static char **list_files(const char *dir, const char *suffix) {
        _cleanup_(strv_freep) char **l = NULL;
        DIR *d = opendir(dir);
        if (!d)
                fail_msg("cannot open %s (run from the repository root or set CONNECT_NUMBERS_TEST_DATA)", dir);
        struct dirent *de;
        while ((de = readdir(d)))
                if (has_suffix(de->d_name, suffix))
                        assert_int_equal(strv_push(&l, de->d_name), 0);
        closedir(d);
        if (l)
                qsort(l, strv_length(l), sizeof *l, compare_strings);
        return TAKE_PTR(l);
}

/* ---- good files -------------------------------------------------------- */

static void test_good_files_all_parse(_unused_ void **state) {
        _cleanup_(freep) char *dir = data_path("config/good");
        _cleanup_(strv_freep) char **files = list_files(dir, ".yaml");
        size_t n = strv_length(files);
        assert_true(n >= 8);
        for (size_t i = 0; i < n; i++) {
                _cleanup_(freep) char *rel = strprintf("config/good/%s", files[i]);
                _cleanup_(config_freep) struct config *c = load_good(rel);
                assert_true(c->n_targets > 0);
                for (size_t t = 0; t < c->n_targets; t++) {
                        assert_true(is_hex64(c->targets[t].digest));
                        assert_true(c->targets[t].n_pools > 0);
                        for (size_t p = 0; p < c->targets[t].n_pools; p++)
                                assert_true(is_hex64(c->targets[t].pools[p].digest));
                }
        }
}

static void test_good_minimal_defaults(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/minimal.yaml");
        assert_int_equal(c->interval_usec, 5 * USEC_PER_MINUTE);
        assert_int_equal(c->quota_backoff_usec, 6 * USEC_PER_HOUR);
        assert_int_equal(c->max_numbers_per_target, 100000);
        assert_true(c->rate_default == 2.0);
        assert_true(c->rate_burst == 5.0);
        assert_int_equal(c->n_rates, 0);
        assert_null(c->region);
        assert_null(c->endpoint_url);
        assert_null(c->ca_file);
        assert_null(c->profile);
        assert_null(c->metrics_file);
        assert_int_equal(c->log_level, LOG_INFO);
        assert_int_equal(c->n_targets, 1);
        const struct target_config *t = &c->targets[0];
        assert_string_equal(t->name, "support-us");
        assert_int_equal(t->line, 3);
        assert_int_equal(t->kind, TARGET_INSTANCE);
        assert_string_equal(t->partition, "aws");
        assert_string_equal(t->region, "us-east-1");
        assert_string_equal(t->account, "111122223333");
        assert_string_equal(t->resource_id, "0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11");
        assert_int_equal(t->quota, 5);
        assert_false(t->release_excess);
        assert_int_equal(t->max_releases_per_pass, 1);
        assert_int_equal(t->n_pools, 1);
        const struct pool_config *p = &t->pools[0];
        assert_string_equal(p->name, "main");
        assert_int_equal(p->line, 6);
        assert_string_equal(p->country, "US");
        assert_string_equal(p->type, "DID");
        assert_int_equal(p->count, 3);
        assert_null(p->prefix);
        assert_null(p->description);
        assert_null(p->contact_flow);
        assert_int_equal(p->n_tags, 0);
        assert_false(p->adopt);
        assert_int_equal(config_total_wanted(c), 3);
}

static void test_good_full(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/full.yaml");
        assert_int_equal(c->interval_usec, 90 * USEC_PER_SEC);
        assert_int_equal(c->quota_backoff_usec, 12 * USEC_PER_HOUR);
        assert_string_equal(c->region, "eu-west-2");
        assert_string_equal(c->endpoint_url, "https://127.0.0.1:8443/");
        assert_string_equal(c->ca_file, "/etc/connect-numbers/ca.pem");
        assert_string_equal(c->profile, "connect.admin-1");
        assert_true(c->rate_default == 1.5);
        assert_true(c->rate_burst == 4.0);
        assert_int_equal(c->n_rates, 1);
        assert_string_equal(c->rates[0].operation, "ClaimPhoneNumber");
        assert_true(config_rate_for(c, "ClaimPhoneNumber") == 0.5);
        assert_true(config_rate_for(c, "DescribePhoneNumber") == 1.5);
        assert_int_equal(c->log_level, LOG_DEBUG);
        assert_string_equal(c->metrics_file, "/var/lib/prometheus/node-exporter/connect-numbers.prom");

        assert_int_equal(c->n_targets, 2);
        const struct target_config *t = config_find_target(c, "support-us");
        assert_non_null(t);
        assert_ptr_equal(t, &c->targets[0]);
        assert_int_equal(t->quota, 20);
        assert_true(t->release_excess);
        assert_int_equal(t->max_releases_per_pass, 3);
        assert_int_equal(t->n_pools, 2);
        const struct pool_config *p = target_find_pool(t, "main");
        assert_non_null(p);
        assert_string_equal(p->prefix, "+1206");
        assert_string_equal(p->description, "Support main line");
        assert_string_equal(p->contact_flow, "7c1a8bde-2f3a-4c55-9d1e-0a6b4c2d9e10");
        assert_true(p->adopt);
        assert_int_equal(p->n_tags, 2);
        assert_string_equal(p->tags[0].key, "team");
        assert_string_equal(p->tags[0].value, "support");
        assert_string_equal(p->tags[1].key, "cost-center");
        assert_string_equal(p->tags[1].value, "4200");
        p = target_find_pool(t, "toll-free");
        assert_non_null(p);
        assert_int_equal(p->count, 0);
        assert_string_equal(p->type, "TOLL_FREE");
        assert_null(target_find_pool(t, "london"));

        t = config_find_target(c, "sales_uk");
        assert_non_null(t);
        assert_string_equal(t->region, "eu-west-2");
        assert_false(t->release_excess);
        p = target_find_pool(t, "london");
        assert_non_null(p);
        assert_string_equal(p->prefix, "+4420");
        assert_string_equal(p->description, ""); /* explicitly empty is kept */
        assert_null(config_find_target(c, "nope"));
        assert_null(config_find_target(c, NULL));
        assert_null(target_find_pool(NULL, "main"));
        assert_int_equal(config_total_wanted(c), 5);
}

static void test_good_tdg(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/tdg.yaml");
        const struct target_config *t = config_find_target(c, "global");
        assert_non_null(t);
        assert_int_equal(t->kind, TARGET_TRAFFIC_DISTRIBUTION_GROUP);
        assert_string_equal(t->region, "us-west-2");
        assert_string_equal(t->resource_id, "5a6b7c8d-1234-4e5f-9a0b-c1d2e3f4a5b6");
        t = config_find_target(c, "gov");
        assert_non_null(t);
        assert_int_equal(t->kind, TARGET_INSTANCE);
        assert_string_equal(t->partition, "aws-us-gov");
        assert_string_equal(t->region, "us-gov-west-1");
        assert_string_equal(t->pools[0].contact_flow, "flow-1");
}

static void test_good_pins(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/pins.yaml");
        const struct target_config *t = config_find_target(c, "support");
        const struct pool_config *p = target_find_pool(t, "hotline");
        assert_non_null(p);
        /* count left out: the number of pins; quoted or not, file order */
        assert_int_equal(p->count, 2);
        assert_int_equal(p->n_numbers, 2);
        assert_string_equal(p->numbers[0], "+18005550100");
        assert_string_equal(p->numbers[1], "+18005550101");
        p = target_find_pool(t, "main");
        assert_int_equal(p->count, 3);
        assert_int_equal(p->n_numbers, 2);
        assert_string_equal(p->numbers[0], "+442071838750");
        assert_string_equal(p->prefix, "+1206");
        p = target_find_pool(t, "none");
        assert_int_equal(p->count, 0);
        assert_int_equal(p->n_numbers, 0);
        p = target_find_pool(t, "zero");
        assert_int_equal(p->count, 0);
        assert_null(p->numbers);
        p = target_find_pool(config_find_target(c, "other"), "longest");
        assert_string_equal(p->numbers[0], "+123456789012345");
        p = target_find_pool(config_find_target(c, "other"), "shortest");
        assert_int_equal(p->count, 1);
        assert_string_equal(p->numbers[0], "+1");
}

static void test_good_moves(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/moves.yaml");
        const struct target_config *t = config_find_target(c, "global");
        assert_int_equal(t->kind, TARGET_TRAFFIC_DISTRIBUTION_GROUP);
        assert_int_equal(t->n_previous_arns, 2);
        assert_string_equal(t->previous_arns[0],
                            "arn:aws:connect:us-east-1:111122223333:instance/0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11");
        assert_string_equal(t->previous_arns[1], "arn:aws:connect:us-east-1:111122223333:traffic-distribution-group/"
                                                 "00000000-1111-4222-8333-444444444444");
        const struct pool_config *p = target_find_pool(t, "primary");
        assert_int_equal(p->n_from, 2);
        assert_string_equal(p->from[0], "support/main");
        assert_string_equal(p->from[1], "old-support/hotline");
        /* a flow ARN: the flow id, and the instance it belongs to */
        assert_string_equal(p->contact_flow, "7c1a8bde-2f3a-4c55-9d1e-0a6b4c2d9e10");
        assert_string_equal(p->flow_instance_id, "0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11");

        t = config_find_target(c, "sales");
        assert_int_equal(t->n_previous_arns, 0);
        p = target_find_pool(t, "main");
        assert_string_equal(p->from[0], "global/sales_old");
        assert_string_equal(p->contact_flow, "flow-1");
        assert_string_equal(p->flow_instance_id, "22222222-3333-4444-8555-666666666666");

        t = config_find_target(c, "gov");
        assert_int_equal(t->n_previous_arns, 1);
        p = target_find_pool(t, "main");
        assert_string_equal(p->contact_flow, "flow-2");
        assert_null(p->flow_instance_id);
        assert_int_equal(p->n_from, 0);
}

static void test_good_prefix_forms(_unused_ void **state) {
        static const struct {
                const char *pool, *prefix;
        } want[] = {
                { "plain-digits", "+1206" }, { "plain-plus", "+1425" },        { "quoted-digits", "+44" },
                { "quoted-plus", "+4930" },  { "eleven", "+12065550100" }, { "leading-zero", "+01" },
        };
        _cleanup_(config_freep) struct config *c = load_good("config/good/prefix-forms.yaml");
        const struct target_config *t = config_find_target(c, "t");
        assert_non_null(t);
        assert_int_equal(t->n_pools, ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                const struct pool_config *p = target_find_pool(t, want[i].pool);
                assert_non_null(p);
                assert_string_equal(p->prefix, want[i].prefix);
        }
}

static void test_good_durations_and_rates(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/durations.yaml");
        assert_int_equal(c->interval_usec, 90 * USEC_PER_MINUTE);
        assert_int_equal(c->quota_backoff_usec, 7 * USEC_PER_DAY);

        _cleanup_(config_freep) struct config *r = load_good("config/good/api-rate.yaml");
        assert_int_equal(r->interval_usec, USEC_PER_DAY);
        assert_int_equal(r->quota_backoff_usec, USEC_PER_MINUTE);
        assert_true(r->rate_default == 2.0);
        assert_true(r->rate_burst == 10.0);
        assert_int_equal(r->n_rates, 3);
        assert_true(config_rate_for(r, "ClaimPhoneNumber") == 0.1);
        assert_true(config_rate_for(r, "DescribePhoneNumber") == 1000.0);
        assert_true(config_rate_for(r, "SearchAvailablePhoneNumbers") == 1.0);
        assert_true(config_rate_for(r, "ListPhoneNumbersV2") == 2.0);
        assert_true(config_rate_for(r, NULL) == 2.0);
}

static void test_good_quirks(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/quirks.yaml");
        assert_int_equal(c->interval_usec, USEC_PER_SEC);
        const struct target_config *t = config_find_target(c, "quoted-target");
        assert_non_null(t);
        assert_string_equal(t->resource_id, "abc-DEF-123");
        assert_int_equal(t->quota, 10000);
        assert_int_equal(t->max_releases_per_pass, 1000);
        const struct pool_config *p = target_find_pool(t, "norway");
        assert_non_null(p);
        assert_string_equal(p->country, "NO");
        assert_string_equal(p->type, "SHORT_CODE");
        assert_int_equal(p->count, 1000);
        assert_int_equal(p->n_tags, 4);
        assert_string_equal(p->tags[0].key, "équipe");
        assert_string_equal(p->tags[0].value, "données");
        assert_string_equal(p->tags[1].value, "");
        assert_string_equal(p->tags[2].value, "no");
        assert_string_equal(p->tags[3].key, "42");
        assert_string_equal(p->tags[3].value, "42");

        _cleanup_(config_freep) struct config *crlf = load_good("config/good/crlf.yaml");
        assert_string_equal(crlf->targets[0].name, "crlf");
        assert_int_equal(crlf->targets[0].pools[0].line, 5);
}

static void test_good_bounds(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/bounds.yaml");
        const struct target_config *t = &c->targets[0];
        assert_int_equal(strlen(t->name), 64);
        assert_int_equal(strlen(t->resource_id), 100);
        const struct pool_config *p = &t->pools[0];
        assert_int_equal(strlen(p->name), 64);
        assert_int_equal(strlen(p->description), 501); /* 500 characters, the last one two bytes */
        assert_int_equal(strlen(p->contact_flow), 500);
        assert_int_equal(p->n_tags, 49);
        assert_int_equal(strlen(p->tags[0].key), 128);
        assert_int_equal(strlen(p->tags[0].value), 256);
}

static void test_good_max_numbers(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/max-numbers.yaml");
        assert_int_equal(c->max_numbers_per_target, 1000000);
}

/* The top-level role settings reach every target that leaves them out,
 * key by key; a target's own win. */
static void test_good_roles(_unused_ void **state) {
        _cleanup_(config_freep) struct config *c = load_good("config/good/roles.yaml");
        assert_int_equal(c->n_targets, 2);
        const struct target_config *a = &c->targets[0], *b = &c->targets[1];
        assert_string_equal(a->role_arn, "arn:aws:iam::111122223333:role/connect-numbers");
        assert_string_equal(a->external_id, "ext-1234");
        assert_string_equal(a->role_session_name, "connect-numbers");
        assert_int_equal(a->role_duration_usec, 30 * 60 * USEC_PER_SEC);
        assert_string_equal(b->role_arn, "arn:aws:iam::444455556666:role/ops/connect-numbers");
        assert_string_equal(b->external_id, "ext-1234");
        assert_string_equal(b->role_session_name, "cn-b");
        assert_int_equal(b->role_duration_usec, 30 * 60 * USEC_PER_SEC);

        _cleanup_(config_freep) struct config *m = load_good("config/good/minimal.yaml");
        assert_null(m->targets[0].role_arn);
        assert_int_equal(m->targets[0].role_duration_usec, 3600 * USEC_PER_SEC);
}

/* Every optional key that the example shows commented out ("#key:") must
 * parse too once uncommented, so the example never teaches a broken line. */
static void test_example_file(_unused_ void **state) {
        _cleanup_(freep) char *path = strprintf("%s/../../config/numbers.example.yaml", data_dir());
        size_t len;
        _cleanup_(freep) char *text = read_text(path, &len);
        struct config_problems p = {};
        _cleanup_(config_freep) struct config *c = NULL;
        assert_int_equal(config_parse(text, len, &c, &p), 0);
        assert_int_equal(p.n, 0);
        assert_non_null(config_find_target(c, "support-us"));

        /* "^(\s*)#(\S)" -> "\1\2" */
        _cleanup_(freep) char *open = malloc(len + 1);
        assert_non_null(open);
        size_t o = 0;
        for (size_t i = 0; i < len;) {
                size_t ws = i;
                while (ws < len && (text[ws] == ' '))
                        ws++;
                memcpy(open + o, text + i, ws - i);
                o += ws - i;
                i = ws;
                if (i + 1 < len && text[i] == '#' && text[i + 1] != ' ' && text[i + 1] != '\n' && text[i + 1] != '#')
                        i++;
                while (i < len && text[i] != '\n')
                        open[o++] = text[i++];
                if (i < len)
                        open[o++] = text[i++];
        }
        open[o] = 0;
        _cleanup_(config_freep) struct config *all = parse_good(open);
        assert_non_null(all->region);
        assert_non_null(all->endpoint_url);
        assert_non_null(all->ca_file);
        assert_non_null(all->profile);
        assert_int_equal(all->n_rates, 1);
        assert_int_equal(all->n_targets, 2);
        assert_int_equal(all->targets[1].kind, TARGET_TRAFFIC_DISTRIBUTION_GROUP);
        assert_non_null(target_find_pool(&all->targets[0], "main")->contact_flow);
        assert_string_equal(all->targets[0].account, "111122223333");
}

/* ---- bad files --------------------------------------------------------- */

static void test_bad_files(_unused_ void **state) {
        _cleanup_(freep) char *dir = data_path("config/bad");
        _cleanup_(strv_freep) char **files = list_files(dir, ".yaml");
        _cleanup_(strv_freep) char **expected = list_files(dir, ".expected");
        size_t n = strv_length(files), failures = 0;

        assert_true(n >= BAD_FILES_MIN);
        assert_int_equal(strv_length(expected), n); /* one .expected per .yaml, none orphaned */

        for (size_t i = 0; i < n; i++) {
                _cleanup_(freep) char *path = strprintf("%s/%s", dir, files[i]);
                _cleanup_(freep) char *exp_path = strprintf("%s/%.*s.expected", dir, (int) (strlen(files[i]) - 5), files[i]);
                assert_non_null(path);
                assert_non_null(exp_path);
                _cleanup_(freep) char *want = read_text(exp_path, NULL);
                struct config_problems p = {};
                struct config *c = NULL;
                char *got = NULL;
                size_t got_len = 0;

                int r = config_load(path, &c, &p);
                FILE *f = open_memstream(&got, &got_len);
                assert_non_null(f);
                config_problems_print(&p, files[i], f);
                fclose(f);
                if (r != -EINVAL || c || p.n == 0 || !streq(got, want)) {
                        fprintf(stderr, "--- %s: r=%d\n--- expected:\n%s--- got:\n%s", files[i], r, want, got);
                        failures++;
                }
                /* sorted by line, then column */
                for (size_t k = 1; k < p.n; k++)
                        assert_true(p.items[k - 1].line < p.items[k].line ||
                                    (p.items[k - 1].line == p.items[k].line &&
                                     p.items[k - 1].column <= p.items[k].column));
                free(got);
                config_free(c);
                config_problems_clear(&p);
        }
        if (failures > 0)
                fail_msg("%zu of %zu bad files did not give their expected problems", failures, n);
}

/* ---- the API around the parser ----------------------------------------- */

static const char minimal[] =
        "targets:\n"
        "  t:\n"
        "    arn: arn:aws:connect:us-east-1:111122223333:instance/abc\n"
        "    pools:\n"
        "      p: {country: US, type: DID, count: 1}\n";

static void test_load_missing_file(_unused_ void **state) {
        struct config_problems p = {};
        struct config *c = NULL;
        assert_int_equal(config_load("/nonexistent/connect-numbers/numbers.yaml", &c, &p), -ENOENT);
        assert_null(c);
        assert_int_equal(p.n, 1);
        assert_int_equal(p.items[0].line, 0);
        assert_int_equal(p.items[0].column, 0);
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        config_problems_print(&p, "numbers.yaml", f);
        fclose(f);
        assert_string_equal(out, "numbers.yaml: cannot read the file: No such file or directory\n");
        free(out);
        config_problems_clear(&p);
        assert_int_equal(p.n, 0);
        assert_null(p.items);
        /* without a problem list */
        assert_int_equal(config_load("/nonexistent/numbers.yaml", &c, NULL), -ENOENT);
}

static void test_load_too_large(_unused_ void **state) {
        char path[] = "/tmp/test-config-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        _cleanup_(freep) char *big = malloc(1024 * 1024 + 10);
        assert_non_null(big);
        memset(big, '#', 1024 * 1024 + 10);
        assert_int_equal(write(fd, big, 1024 * 1024 + 10), 1024 * 1024 + 10);
        close(fd);
        struct config_problems p = {};
        struct config *c = NULL;
        assert_int_equal(config_load(path, &c, &p), -EFBIG);
        unlink(path);
        assert_int_equal(p.n, 1);
        assert_string_equal(p.items[0].message, "the file is larger than 1 MiB");
        config_problems_clear(&p);
}

/* A FIFO (or a device) is refused at once, never opened for a blocking
 * read that would wait for a writer; so is a directory. */
static void test_load_not_regular(_unused_ void **state) {
        char dir[] = "/tmp/test-config-XXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_(freep) char *fifo = strprintf("%s/fifo", dir);
        assert_non_null(fifo);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        struct config_problems p = {};
        struct config *c = NULL;
        assert_int_equal(config_load(fifo, &c, &p), -EBADFD);
        assert_null(c);
        assert_int_equal(p.n, 1);
        assert_non_null(strstr(p.items[0].message, "not a regular file"));
        config_problems_clear(&p);
        assert_int_equal(config_load("/dev/zero", &c, &p), -EBADFD);
        config_problems_clear(&p);
        assert_int_equal(config_load(dir, &c, &p), -EISDIR);
        config_problems_clear(&p);
        unlink(fifo);
        rmdir(dir);
}

static void test_parse_without_problem_list(_unused_ void **state) {
        struct config *c = NULL;
        assert_int_equal(config_parse("targets: {}\n", 12, &c, NULL), -EINVAL);
        assert_null(c);
        assert_int_equal(config_parse(minimal, strlen(minimal), &c, NULL), 0);
        assert_non_null(c);
        config_free(c);
        assert_null(config_free(NULL));
        config_problems_clear(NULL);
        assert_int_equal(config_parse(NULL, 0, &c, NULL), -EINVAL); /* empty: no targets */
        assert_int_equal(config_total_wanted(NULL), 0);
}

/* The problem list is replaced, not appended to, by each parse. */
static void test_problems_reused(_unused_ void **state) {
        struct config_problems p = {};
        struct config *c = NULL;
        assert_int_equal(config_parse("interval: 0s\n", 13, &c, &p), -EINVAL);
        assert_int_equal(p.n, 2); /* interval, missing targets */
        assert_int_equal(config_parse(minimal, strlen(minimal), &c, &p), 0);
        assert_int_equal(p.n, 0);
        config_free(c);
        config_problems_clear(&p);
}

/* The text is not NUL-terminated: the parser must stay inside len (ASan). */
static void test_parse_exact_buffer(_unused_ void **state) {
        size_t len = strlen(minimal);
        _cleanup_(freep) char *buf = malloc(len);
        assert_non_null(buf);
        memcpy(buf, minimal, len);
        _cleanup_(config_freep) struct config *c = NULL;
        assert_int_equal(config_parse(buf, len, &c, NULL), 0);
        /* cut in the middle of a line and a UTF-8 sequence */
        _cleanup_(freep) char *cut = malloc(3);
        assert_non_null(cut);
        memcpy(cut, "a\xc3", 2);
        _cleanup_(freep) char *out = parse_bad(cut, 2);
        assert_string_equal(out, "x.yaml:1:2: invalid UTF-8 (byte 0xc3): the file must be UTF-8 text\n");
}

static void test_problem_positions(_unused_ void **state) {
        /* a missing key at the start of its mapping, after the problems found
         * inside it, and a flow mapping's position is its '{' */
        const char text[] =
                "targets:\n"
                "  t:\n"
                "    quota: 0\n"
                "    pools: {p: {country: US, count: 1}}\n";
        _cleanup_(freep) char *out = parse_bad(text, strlen(text));
        assert_string_equal(out,
                            "x.yaml:3:5: missing required key \"arn\" in target \"t\"\n"
                            "x.yaml:3:12: \"quota\" must be between 1 and 10000, not 0\n"
                            "x.yaml:4:16: missing required key \"type\" in pool \"p\" of target \"t\"\n");
        /* columns count characters, not bytes */
        const char utf8[] = "# é\nintervalé: 5m\ntargets: {é: 1}\n";
        _cleanup_(freep) char *out2 = parse_bad(utf8, strlen(utf8));
        assert_string_equal(out2,
                            "x.yaml:2:1: unknown key \"intervalé\" in the top level (did you mean \"interval\"?)\n"
                            "x.yaml:3:11: target name \"é\" must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -\n"
                            "x.yaml:3:14: target \"é\" must be a mapping with arn and pools, not a scalar\n");
}

static void test_too_many_problems(_unused_ void **state) {
        /* 3000 unknown keys: the list stops at 1000 plus one notice */
        size_t cap = 3000 * 16 + 64, len = 0;
        _cleanup_(freep) char *text = malloc(cap);
        assert_non_null(text);
        for (int i = 0; i < 3000; i++)
                len += (size_t) snprintf(text + len, cap - len, "k%d: 1\n", i);
        struct config_problems p = {};
        struct config *c = NULL;
        assert_int_equal(config_parse(text, len, &c, &p), -EINVAL);
        assert_int_equal(p.n, 1001);
        assert_string_equal(p.items[1000].message, "too many problems: only the first 1000 are shown");
        config_problems_clear(&p);

        /* many duplicate keys stay fast (sorted, not compared pairwise) */
        len = 0;
        for (int i = 0; i < 3000; i++)
                len += (size_t) snprintf(text + len, cap - len, "interval: %ds\n", i + 1);
        assert_int_equal(config_parse(text, len, &c, &p), -EINVAL);
        assert_int_equal(p.n, 1001);
        assert_string_equal(p.items[0].message, "duplicate key \"interval\" (first at line 1)");
        config_problems_clear(&p);
}

/* Many targets and pools, and a huge list where a mapping belongs: both
 * complete (appends are amortised, nothing is quadratic). */
static void test_large_files(_unused_ void **state) {
        size_t cap = 4000 * 200, len = 0;
        _cleanup_(freep) char *text = malloc(cap);
        assert_non_null(text);
        len += (size_t) snprintf(text + len, cap - len, "targets:\n");
        for (int i = 0; i < 4000; i++)
                len += (size_t) snprintf(text + len, cap - len,
                                         "  t%d:\n    arn: arn:aws:connect:us-east-1:111122223333:instance/i%d\n"
                                         "    pools: {a: {country: US, type: DID, count: 1}, b: {country: GB, type: DID, count: 2}}\n",
                                         i, i);
        struct config *c = NULL;
        assert_int_equal(config_parse(text, len, &c, NULL), 0);
        assert_int_equal(c->n_targets, 4000);
        assert_int_equal(config_total_wanted(c), 12000);
        assert_string_equal(c->targets[3999].name, "t3999");
        assert_string_equal(c->targets[3999].pools[1].name, "b");
        config_free(c);

        len = 0;
        len += (size_t) snprintf(text + len, cap - len, "targets: [");
        while (len < cap - 8)
                len += (size_t) snprintf(text + len, cap - len, "1,");
        len += (size_t) snprintf(text + len, cap - len, "1]\n");
        _cleanup_(freep) char *out = parse_bad(text, len);
        assert_string_equal(out, "x.yaml:1:10: \"targets\" must be a mapping of target names to targets, not a list\n");
}

/* ---- digests ----------------------------------------------------------- */

static const char digest_base[] =
        "targets:\n"
        "  a:\n"
        "    arn: arn:aws:connect:us-east-1:111122223333:instance/aaa\n"
        "    pools:\n"
        "      p: {country: US, type: DID, count: 1, tags: {x: \"1\", y: \"2\"}}\n"
        "      q: {country: US, type: DID, count: 2}\n"
        "  b:\n"
        "    arn: arn:aws:connect:us-east-1:111122223333:instance/bbb\n"
        "    pools:\n"
        "      p: {country: US, type: DID, count: 1}\n";

static void test_digests(_unused_ void **state) {
        _cleanup_(config_freep) struct config *base = parse_good(digest_base);
        const struct target_config *a = &base->targets[0], *b = &base->targets[1];
        /* States on disk hold digests: a YAML that does not use a key added
         * later keeps the digests it always had (these are the values before
         * numbers:, from:, previous_arns: and flow ARNs existed). */
        assert_string_equal(a->digest, "1d3b008830edc8a34583d41f8679b42b756696d1484b8db87fdaaac09f2cce59");
        assert_string_equal(a->pools[0].digest, "eb832e5cabd6876b37328a0efdf3bdceb65c8d76808e3e7cdd5d52d717d035be");
        assert_string_equal(a->pools[1].digest, "f712c6152c484a52683340f44ba1584ddd01362fac4d1eff6e9415c76c7f7529");
        assert_string_equal(b->digest, "3e3e3a8110294ba91d12ae80749a481ad7ac0795f0ffcd00643f47da249733ab");
        assert_string_equal(b->pools[0].digest, "976f0b8b5538dcf38c3b59cfcd1276f31c1c08feb5c01c9cf576ba38cc894b1b");
        assert_string_not_equal(a->digest, b->digest);
        assert_string_not_equal(a->pools[0].digest, a->pools[1].digest);
        /* same name and settings in another target: same pool digest? no, different settings here */
        assert_string_not_equal(a->pools[0].digest, b->pools[0].digest);

        /* Formatting, comments, key and tag order, and prefix spelling mean nothing. */
        _cleanup_(config_freep) struct config *same = parse_good(
                "# comment\n"
                "interval: 10m\n"
                "targets:\n"
                "  a:\n"
                "    pools:\n"
                "      p:\n"
                "        tags: {y: \"2\", x: \"1\"}\n"
                "        count: 1\n"
                "        type: DID\n"
                "        country: US\n"
                "      q: {country: US, type: DID, count: 2}\n"
                "    arn: 'arn:aws:connect:us-east-1:111122223333:instance/aaa'\n"
                "  b:\n"
                "    arn: arn:aws:connect:us-east-1:111122223333:instance/bbb\n"
                "    pools: {p: {count: 1, country: US, type: DID}}\n");
        assert_string_equal(same->targets[0].digest, a->digest);
        assert_string_equal(same->targets[0].pools[0].digest, a->pools[0].digest);
        assert_string_equal(same->targets[1].digest, b->digest);

        /* A pool setting changes that pool's and its target's digests only. */
        static const struct {
                const char *from, *to;
        } changes[] = {
                { "count: 1, tags", "count: 3, tags" },
                { "y: \"2\"", "y: \"3\"" },
                { "tags: {x: \"1\", y: \"2\"}", "tags: {x: \"1\"}" },
                { "count: 1, tags", "count: 1, adopt: true, tags" },
                { "count: 1, tags", "count: 1, prefix: 1206, tags" },
                { "count: 1, tags", "count: 1, description: d, tags" },
                { "count: 1, tags", "count: 1, contact_flow: f, tags" },
                { "type: DID, count: 1, tags", "type: TOLL_FREE, count: 1, tags" },
                { "count: 1, tags", "count: 1, numbers: [\"+12065550100\"], tags" },
                { "count: 1, tags", "numbers: [\"+12065550100\"], tags" },
                { "count: 1, tags", "count: 1, from: [old/p], tags" },
                { "count: 1, tags",
                  "count: 1, contact_flow: \"arn:aws:connect:us-east-1:111122223333:instance/aaa/contact-flow/f\", tags" },
        };
        for (size_t i = 0; i < ELEMENTSOF(changes); i++) {
                const char *at = strstr(digest_base, changes[i].from);
                assert_non_null(at);
                _cleanup_(freep) char *text = strprintf("%.*s%s%s", (int) (at - digest_base), digest_base, changes[i].to,
                                                        at + strlen(changes[i].from));
                _cleanup_(config_freep) struct config *c = parse_good(text);
                assert_string_not_equal(c->targets[0].pools[0].digest, a->pools[0].digest);
                assert_string_equal(c->targets[0].pools[1].digest, a->pools[1].digest);
                assert_string_not_equal(c->targets[0].digest, a->digest);
                assert_string_equal(c->targets[1].digest, b->digest);
        }

        /* A target setting changes the target digest, not its pools'. */
        static const char *const target_changes[] = {
                "    quota: 9\n", "    release_excess: true\n", "    max_releases_per_pass: 2\n",
                "    previous_arns: [arn:aws:connect:us-east-1:111122223333:instance/old]\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(target_changes); i++) {
                const char *at = strstr(digest_base, "    pools:\n");
                _cleanup_(freep) char *text = strprintf("%.*s%s%s", (int) (at - digest_base), digest_base,
                                                        target_changes[i], at);
                _cleanup_(config_freep) struct config *c = parse_good(text);
                assert_string_not_equal(c->targets[0].digest, a->digest);
                assert_string_equal(c->targets[0].pools[0].digest, a->pools[0].digest);
                assert_string_equal(c->targets[1].digest, b->digest);
        }

        /* The order of pins, from: entries and previous_arns means nothing;
         * an empty list is the key left out. */
        static const char *const same_pairs[][2] = {
                { "count: 2, numbers: [\"+12065550100\", \"+12065550101\"], from: [x/a, x/b], tags",
                  "count: 2, numbers: [+12065550101, +12065550100], from: [x/b, x/a], tags" },
                { "count: 1, tags", "count: 1, numbers: [], from: [], tags" },
        };
        for (size_t i = 0; i < ELEMENTSOF(same_pairs); i++) {
                struct config *pair[2] = {};
                for (size_t k = 0; k < 2; k++) {
                        const char *at = strstr(digest_base, "count: 1, tags");
                        _cleanup_(freep) char *text = strprintf("%.*s%s%s", (int) (at - digest_base), digest_base,
                                                                same_pairs[i][k], at + strlen("count: 1, tags"));
                        pair[k] = parse_good(text);
                }
                if (i == 0)
                        assert_string_equal(pair[0]->targets[0].pools[0].digest, pair[1]->targets[0].pools[0].digest);
                else
                        assert_string_equal(pair[1]->targets[0].pools[0].digest, a->pools[0].digest);
                config_free(pair[0]);
                config_free(pair[1]);
        }
        {
                const char *at = strstr(digest_base, "    pools:\n");
                _cleanup_(freep) char *t1 = strprintf("%.*s    previous_arns: [arn:aws:connect:us-east-1:111122223333:instance/x, "
                                                      "arn:aws:connect:us-east-1:111122223333:instance/y]\n%s",
                                                      (int) (at - digest_base), digest_base, at);
                _cleanup_(freep) char *t2 = strprintf("%.*s    previous_arns: [arn:aws:connect:us-east-1:111122223333:instance/y, "
                                                      "arn:aws:connect:us-east-1:111122223333:instance/x]\n%s",
                                                      (int) (at - digest_base), digest_base, at);
                _cleanup_(freep) char *t3 = strprintf("%.*s    previous_arns: []\n%s", (int) (at - digest_base),
                                                      digest_base, at);
                _cleanup_(config_freep) struct config *c1 = parse_good(t1);
                _cleanup_(config_freep) struct config *c2 = parse_good(t2);
                _cleanup_(config_freep) struct config *c3 = parse_good(t3);
                assert_string_equal(c1->targets[0].digest, c2->targets[0].digest);
                assert_string_equal(c3->targets[0].digest, a->digest);
        }

        /* A setting outside the targets changes no digest. */
        _cleanup_(freep) char *text = strprintf("quota_backoff: 1h\napi_rate: {default: 1}\n%s", digest_base);
        _cleanup_(config_freep) struct config *c = parse_good(text);
        assert_string_equal(c->targets[0].digest, a->digest);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good_files_all_parse),
                cmocka_unit_test(test_good_minimal_defaults),
                cmocka_unit_test(test_good_full),
                cmocka_unit_test(test_good_tdg),
                cmocka_unit_test(test_good_pins),
                cmocka_unit_test(test_good_moves),
                cmocka_unit_test(test_good_prefix_forms),
                cmocka_unit_test(test_good_durations_and_rates),
                cmocka_unit_test(test_good_quirks),
                cmocka_unit_test(test_good_bounds),
                cmocka_unit_test(test_good_max_numbers),
                cmocka_unit_test(test_good_roles),
                cmocka_unit_test(test_example_file),
                cmocka_unit_test(test_bad_files),
                cmocka_unit_test(test_load_missing_file),
                cmocka_unit_test(test_load_too_large),
                cmocka_unit_test(test_load_not_regular),
                cmocka_unit_test(test_parse_without_problem_list),
                cmocka_unit_test(test_problems_reused),
                cmocka_unit_test(test_parse_exact_buffer),
                cmocka_unit_test(test_problem_positions),
                cmocka_unit_test(test_too_many_problems),
                cmocka_unit_test(test_large_files),
                cmocka_unit_test(test_digests),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
