/* test-state.c: the state file: JSON round trip of every field, tolerant
 * load (damaged records under tests/data/state/ are skipped, a newer
 * version or a damaged header refused, the file untouched), atomic save (an interrupted write leaves the old file loadable),
 * the directory lock, and the lookups. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "state.h"

static const char *data_dir(void) {
        const char *d = getenv("CONNECT_NUMBERS_TEST_DATA");
        return d ? d : "tests/data";
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        return remove(path);
}

static void rm_rf(const char *dir) {
        (void) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_tmpdir(void) {
        const char *base = getenv("TMPDIR");
        char *d = strprintf("%s/test-state-XXXXXX", base ? base : "/tmp");
        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static void write_file(const char *path, const char *text, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, len), (ssize_t) len);
        assert_int_equal(close(fd), 0);
}

static char *read_file(const char *path, size_t *ret_len) {
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(path, 1 << 26, &text, &len), 0);
        if (ret_len)
                *ret_len = len;
        return text;
}

/* Files in dir whose name starts with prefix. */
static unsigned count_files(const char *dir, const char *prefix) {
        unsigned n = 0;
        DIR *d = opendir(dir);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

static void set_tags(struct state *s, struct state_tag **tags, size_t *n, const char *k1, const char *v1,
                     const char *k2, const char *v2) {
        *tags = calloc(2, sizeof **tags);
        assert_non_null(*tags);
        assert_int_equal(state_set(s, &(*tags)[0].key, k1), 0);
        assert_int_equal(state_set(s, &(*tags)[0].value, v1), 0);
        assert_int_equal(state_set(s, &(*tags)[1].key, k2), 0);
        assert_int_equal(state_set(s, &(*tags)[1].value, v2), 0);
        *n = 2;
}

/* A state where every member has a value different from its default. */
static struct state *full_state(void) {
        struct state *s = state_new();
        assert_non_null(s);
        s->last_pass_started_at = 1800000000;
        s->last_pass_finished_at = 1800000042;
        s->next_pass_at = 1800000300;
        s->last_pass_result = 75;
        s->last_error = strdup("ClaimPhoneNumber on support-us: throttled");
        s->claim_latency_sec = 3.25;

        struct state_target *t = state_get_target(s, "support-us", "arn:aws:connect:us-east-1:111122223333:instance/x");
        assert_non_null(t);
        t->quota_at = 1799990000;
        t->quota_until = 1800011600;
        t->quota_digest = strdup("0123abcd");
        t->quota_message = strdup("You've reached the limit of claimed numbers");
        t->quota_pool = strdup("main");
        t->quota_logged = true;
        t->quota_last_retry_at = 1799995000;
        assert_int_equal(state_churn_add(t, 1799000000, false, "+12065550100"), 0);
        assert_int_equal(state_churn_add(t, 1799500000, true, "+12065550101"), 0);
        assert_int_equal(strv_push(&t->no_numbers_pools, "tollfree"), 0);
        assert_int_equal(state_spend_token(t, "6c1f1a7e-8c6e-4f61-9d38-4c0f4a0f8f10"), 0);
        t->listed_ok = true;
        assert_non_null(state_get_target(s, "sales", NULL));

        struct state_number *n = state_add_number(s, "support-us", "+12065550100");
        assert_non_null(n);
        assert_int_equal(state_set(s, &n->target_arn, "arn:aws:connect:us-east-1:111122223333:instance/x"), 0);
        assert_int_equal(state_set(s, &n->pool, "main"), 0);
        assert_int_equal(state_set(s, &n->owner_tag, "support-us/main"), 0);
        n->id = strdup("11111111-2222-3333-4444-555555555555");
        n->arn = strdup("arn:aws:connect:us-east-1:111122223333:phone-number/1111");
        assert_int_equal(state_set(s, &n->country, "US"), 0);
        assert_int_equal(state_set(s, &n->type, "DID"), 0);
        assert_int_equal(state_set(s, &n->description, "Support \"main\" line \u00e9"), 0);
        set_tags(s, &n->tags, &n->n_tags, "connect-numbers:pool", "support-us/main", "team", "support");
        n->phase = PHASE_FAILED;
        n->listed = true;
        n->adopted = true;
        n->client_token = strdup("6c1f1a7e-8c6e-4f61-9d38-4c0f4a0f8f11");
        assert_int_equal(state_set(s, &n->claim_description, "Support main line"), 0);
        set_tags(s, &n->claim_tags, &n->n_claim_tags, "connect-numbers:pool", "support-us/main", "cost", "42");
        n->slot = 2;
        n->intent_at = 1799980000;
        n->claim_sent_at = 1799980001;
        n->claimed_at = 1799980100;
        n->first_failure_at = 1799980001;
        n->next_retry_at = 1799980301;
        n->attempts = 3;
        n->failure_message = strdup("Number is no longer available");
        n->quota_failure = true;
        assert_int_equal(state_set(s, &n->flow_applied, "7c1a8bde-0000-4000-8000-000000000001"), 0);
        assert_int_equal(strv_push(&n->tag_keys_applied, "team"), 0);
        assert_int_equal(strv_push(&n->tag_keys_applied, "cost"), 0);
        assert_int_equal(state_set(s, &n->pool_digest, "feedface"), 0);
        n->last_described_at = 1799999999;

        n = state_add_number(s, "support-us", "+12065550199");
        assert_non_null(n);
        n->phase = PHASE_GIVEN_UP;
        return s;
}

static void test_round_trip(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = full_state();
        _cleanup_(freep) char *a = NULL, *b = NULL;
        _cleanup_(state_freep) struct state *s2 = NULL;

        assert_int_equal(state_to_json(s, &a), 0);
        assert_int_equal(state_from_json(a, strlen(a), &s2), 0);
        assert_int_equal(state_to_json(s2, &b), 0);
        assert_string_equal(a, b);

        /* Spot checks that the members really came back, not just the text. */
        assert_int_equal(s2->version, STATE_VERSION);
        assert_int_equal(s2->last_pass_result, 75);
        assert_true(s2->claim_latency_sec > 3.24 && s2->claim_latency_sec < 3.26);
        assert_int_equal(s2->n_targets, 2);
        struct state_target *t = &s2->targets[0];
        assert_string_equal(t->name, "support-us");
        assert_int_equal(t->quota_until, 1800011600);
        assert_true(t->quota_logged);
        assert_int_equal(t->n_churn, 2);
        assert_true(t->churn[1].release);
        assert_false(t->churn[0].release);
        assert_string_equal(t->churn[1].phone_number, "+12065550101");
        assert_string_equal(t->no_numbers_pools[0], "tollfree");
        assert_true(t->listed_ok);
        assert_null(s2->targets[1].arn);
        assert_int_equal(s2->n_numbers, 2);
        struct state_number *n = state_find_number(s2, "support-us", "+12065550100");
        assert_non_null(n);
        assert_int_equal(n->phase, PHASE_FAILED);
        assert_string_equal(n->description, "Support \"main\" line \u00e9");
        assert_int_equal(n->n_tags, 2);
        assert_string_equal(n->tags[1].key, "team");
        assert_string_equal(n->claim_tags[1].value, "42");
        assert_int_equal(n->slot, 2);
        assert_int_equal(n->attempts, 3);
        assert_true(n->quota_failure && n->adopted && n->listed);
        assert_string_equal(n->tag_keys_applied[1], "cost");
        assert_null(n->tag_keys_applied[2]);
        assert_int_equal(n->last_described_at, 1799999999);
        assert_int_equal(state_find_number(s2, "support-us", "+12065550199")->phase, PHASE_GIVEN_UP);
}

static void test_empty_round_trip(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = state_new();
        _cleanup_(state_freep) struct state *s2 = NULL;
        _cleanup_(freep) char *a = NULL;
        assert_int_equal(state_to_json(s, &a), 0);
        assert_int_equal(state_from_json(a, strlen(a), &s2), 0);
        assert_int_equal(s2->n_numbers, 0);
        assert_int_equal(s2->n_targets, 0);
}

static void test_from_json_refuses(void **unused) {
        (void) unused;
        static const char *const bad[] = {
                "",
                "{}",
                "[]",
                "null",
                "{\"version\": 3}",
                "{\"version\": 2, \"numbers\": []}",
                "{\"version\": 2}\n{\"phone_number\": \"+1\"}\n",
                "{\"version\": 2}\n[]\n",
                "{\"version\": 2}\n{\"phone_number\": \"+1\", \"target\": \"t\"}\n{\"phone_number\": \"+1\", \"target\": \"t\"}\n",
                "{\"version\": 2}\n{\"phone_number\": \"+1\", \"target\": \"t\"} x\n",
                "{\"version\": 2, \"targets\": {}}\n",
                "{\"version\": \"1\"}",
                "{\"version\": 1, \"numbers\": {}}",
                "{\"version\": 1, \"numbers\": [1]}",
                "{\"version\": 1, \"numbers\": [{\"phone_number\": \"+1\"}]}",
                "{\"version\": 1, \"numbers\": [{\"phone_number\": \"+1\", \"target\": \"\"}]}",
                "{\"version\": 1, \"numbers\": [{\"phone_number\": \"+1\", \"target\": \"t\", \"slot\": 4294967296}]}",
                "{\"version\": 1, \"numbers\": [{\"phone_number\": \"+1\", \"target\": \"t\", \"tags\": {\"a\": 1}}]}",
                "{\"version\": 1, \"numbers\": [{\"phone_number\": \"+1\", \"target\": \"t\", \"listed\": 1}]}",
                "{\"version\": 1, \"targets\": [{\"name\": \"t\"}, {\"name\": \"t\"}]}",
                "{\"version\": 1, \"targets\": [{\"name\": \"t\", \"churn\": [{\"release\": true}]}]}",
                "{\"version\": 1, \"claim_latency_sec\": -1}",
                "{\"version\": 1, \"last_pass_result\": 99999999999}",
                "{\"version\": 1} trailing",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct state *s = NULL;
                int r = state_from_json(bad[i], strlen(bad[i]), &s);
                if (r != -EBADMSG)
                        fail_msg("accepted or wrong error %d for: %s", r, bad[i]);
                assert_null(s);
        }
        /* Embedded NUL: the length is what counts. */
        struct state *s = NULL;
        assert_int_equal(state_from_json("{\"version\": 1}\0garbage", 23, &s), -EBADMSG);
        assert_int_equal(state_from_json("{\"version\": 1}\0garbage", 14, &s), 0);
        state_free(s);
}

static void test_from_json_tolerates_unknown(void **unused) {
        (void) unused;
        _cleanup_(freep) char *path = strprintf("%s/state/good.json", data_dir());
        size_t len;
        _cleanup_(freep) char *text = read_file(path, &len);
        _cleanup_(state_freep) struct state *s = NULL;
        assert_int_equal(state_from_json(text, len, &s), 0);
        assert_int_equal(s->n_numbers, 1);
        assert_int_equal(s->numbers[0].phase, PHASE_CLAIMED);
        assert_string_equal(number_phase_name(s->numbers[0].phase), "claimed");
        assert_string_equal(state_number_tag(&s->numbers[0], "connect-numbers:pool")->value, "support-us/main");
        assert_true(s->targets[0].listed_ok);
}

/* Version 2 is a header line and one line per number; a version 1
 * document (0.1.0) still loads and is written back as version 2. */
static void test_lines_and_v1_upgrade(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = full_state();
        _cleanup_(freep) char *a = NULL;
        assert_int_equal(state_to_json(s, &a), 0);
        size_t lines = 0;
        for (const char *c = a; *c; c++)
                lines += *c == '\n';
        assert_int_equal(lines, 1 + s->n_numbers);
        assert_true(strncmp(a, "{\"version\":2,", 12) == 0);
        assert_non_null(strstr(a, "\n{\"phone_number\":\"+12065550100\","));

        _cleanup_(freep) char *path = strprintf("%s/state/good.json", data_dir());
        size_t len;
        _cleanup_(freep) char *v1 = read_file(path, &len);
        assert_non_null(strstr(v1, "\"version\": 1"));
        _cleanup_(state_freep) struct state *old = NULL;
        assert_int_equal(state_from_json(v1, len, &old), 0);
        assert_int_equal(old->version, STATE_VERSION);
        _cleanup_(freep) char *b = NULL;
        assert_int_equal(state_to_json(old, &b), 0);
        assert_true(strncmp(b, "{\"version\":2,", 12) == 0);
        _cleanup_(state_freep) struct state *back = NULL;
        assert_int_equal(state_from_json(b, strlen(b), &back), 0);
        assert_int_equal(back->n_numbers, old->n_numbers);
        assert_string_equal(back->numbers[0].phone_number, old->numbers[0].phone_number);
}

static void test_load_missing(void **unused) {
        (void) unused;
        _cleanup_(freep) char *dir = make_tmpdir();
        _cleanup_(state_freep) struct state *s = NULL;
        char *warning = (char *) "must be reset";
        assert_int_equal(state_load(dir, &s, &warning), 0);
        assert_non_null(s);
        assert_null(warning);
        assert_int_equal(s->n_numbers, 0);
        assert_int_equal(s->version, STATE_VERSION);
        rm_rf(dir);
}

static void copy_to_state_dir(const char *dir, const char *name, char **ret_text, size_t *ret_len) {
        _cleanup_(freep) char *src = strprintf("%s/state/%s", data_dir(), name);
        _cleanup_(freep) char *dst = strprintf("%s/%s", dir, STATE_FILE);
        *ret_text = read_file(src, ret_len);
        write_file(dst, *ret_text, *ret_len);
}

/* A newer version's file, or one whose header (churn ledger, quota
 * pauses) cannot be trusted, is refused and left exactly as it was: never
 * discarded, never moved. */
static void test_load_refuses_untouched(void **unused) {
        (void) unused;
        static const struct {
                const char *file;
                int error;
                const char *says;
        } cases[] = {
                {"unknown-version.json", -EPROTONOSUPPORT, "newer version of connect-numbersd (file version 99"},
                {"newer-v3.json", -EPROTONOSUPPORT, "newer version of connect-numbersd (file version 3"},
                {"damaged-header.json", -EBADMSG, "damaged header: a member of line 1"},
                {"damaged-header-truncated.json", -EBADMSG, "damaged header: line 1 is not valid JSON"},
                {"corrupt-truncated.json", -EBADMSG, "line 1 is not valid JSON"},
                {"corrupt-notjson.json", -EBADMSG, "line 1 is not valid JSON"},
                {"corrupt-noversion.json", -EBADMSG, "no valid \"version\""},
                {"corrupt-array.json", -EBADMSG, "no valid \"version\""},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(freep) char *dir = make_tmpdir();
                _cleanup_(freep) char *dst = strprintf("%s/%s", dir, STATE_FILE);
                _cleanup_(freep) char *text = NULL;
                size_t len;
                copy_to_state_dir(dir, cases[i].file, &text, &len);

                struct state *s = NULL;
                _cleanup_(freep) char *message = NULL;
                int r = state_load(dir, &s, &message);
                if (r != cases[i].error)
                        fail_msg("%s: %d, not %d", cases[i].file, r, cases[i].error);
                assert_null(s);
                assert_non_null(message);
                if (!strstr(message, cases[i].says) || !strstr(message, "left untouched") ||
                    !strstr(message, "churn ledger"))
                        fail_msg("%s: %s", cases[i].file, message);
                /* Byte for byte as it was, and nothing beside it. */
                size_t len2;
                _cleanup_(freep) char *text2 = read_file(dst, &len2);
                assert_int_equal(len2, len);
                assert_memory_equal(text2, text, len);
                assert_int_equal(count_files(dir, STATE_FILE), 1);
                rm_rf(dir);
        }
}

/* One damaged record costs that record only; the warning names each and
 * says what was wrong, and the file as it was stays beside. */
static void test_load_skips_damaged_records(void **unused) {
        (void) unused;
        static const struct {
                const char *file;
                size_t kept;
                const char *says;
        } cases[] = {
                {"damaged-line.json", 2, "skipped 3 damaged records (line 3: member \"attempts\" has the wrong type or "
                                         "value; line 5: not valid JSON; line 6: a second record for +12065550100 on "
                                         "target support-us (the first is kept))"},
                {"corrupt-wrongtype.json", 0, "numbers[0]: member \"attempts\" has the wrong type or value"},
                {"corrupt-badphase.json", 0, "numbers[0]: member \"phase\" has the wrong type or value"},
                {"corrupt-negative.json", 0, "numbers[0]: member \"claimed_at\" has the wrong type or value"},
                {"corrupt-nokey.json", 0, "numbers[0]: no phone_number or no target"},
                {"corrupt-duplicate.json", 1, "numbers[1]: a second record for +12065550100"},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(freep) char *dir = make_tmpdir();
                _cleanup_(freep) char *text = NULL;
                size_t len;
                copy_to_state_dir(dir, cases[i].file, &text, &len);

                _cleanup_(state_freep) struct state *s = NULL;
                _cleanup_(freep) char *warning = NULL;
                assert_int_equal(state_load(dir, &s, &warning), 0);
                assert_non_null(warning);
                if (!strstr(warning, cases[i].says) || !strstr(warning, "the other records are kept"))
                        fail_msg("%s: %s", cases[i].file, warning);
                assert_int_equal(s->n_numbers, cases[i].kept);
                assert_int_equal(count_files(dir, STATE_FILE ".damaged-"), 1);
                if (i == 0) {
                        /* The header is whole: churn and the pause survive. */
                        assert_int_equal(s->n_targets, 1);
                        assert_int_equal(s->targets[0].n_churn, 2);
                        assert_int_equal(s->targets[0].quota_until, 1800100000);
                        assert_non_null(state_find_number(s, "support-us", "+12065550100"));
                        assert_int_equal(state_find_number(s, "support-us", "+12065550100")->phase, PHASE_CLAIMED);
                        assert_non_null(state_find_number(s, "support-us", "+12065550102"));
                        assert_null(state_find_number(s, "support-us", "+12065550101"));
                        assert_null(state_find_number(s, "support-us", "+12065550103"));
                }
                /* Saved, the damage is gone and the next load is quiet. */
                assert_int_equal(state_save(dir, s), 0);
                _cleanup_(state_freep) struct state *s2 = NULL;
                _cleanup_(freep) char *warning2 = NULL;
                assert_int_equal(state_load(dir, &s2, &warning2), 0);
                assert_null(warning2);
                assert_int_equal(s2->n_numbers, cases[i].kept);
                rm_rf(dir);
        }
}

/* An empty file holds nothing to lose: it is moved aside and the state
 * starts over. */
static void test_load_empty_moves_aside(void **unused) {
        (void) unused;
        _cleanup_(freep) char *dir = make_tmpdir();
        _cleanup_(freep) char *text = NULL;
        size_t len;
        copy_to_state_dir(dir, "corrupt-empty.json", &text, &len);
        _cleanup_(state_freep) struct state *s = NULL;
        _cleanup_(freep) char *warning = NULL;
        assert_int_equal(state_load(dir, &s, &warning), 0);
        assert_non_null(warning);
        assert_non_null(strstr(warning, "was empty; moved it to"));
        assert_int_equal(s->n_numbers, 0);
        assert_int_equal(count_files(dir, STATE_FILE ".empty-"), 1);
        _cleanup_(freep) char *dst = strprintf("%s/%s", dir, STATE_FILE);
        assert_int_equal(access(dst, F_OK), -1);
        rm_rf(dir);
}

/* A FIFO as the state file is refused at once (opening it must not wait
 * for a writer), and left alone. */
static void test_load_fifo(void **unused) {
        (void) unused;
        _cleanup_(freep) char *dir = make_tmpdir();
        _cleanup_(freep) char *dst = strprintf("%s/%s", dir, STATE_FILE);
        assert_int_equal(mkfifo(dst, 0600), 0);
        struct state *s = NULL;
        _cleanup_(freep) char *message = NULL;
        assert_int_equal(state_load(dir, &s, &message), -EBADFD);
        assert_non_null(message);
        assert_non_null(strstr(message, "not a regular file"));
        struct stat st;
        assert_int_equal(stat(dst, &st), 0);
        assert_true(S_ISFIFO(st.st_mode));
        rm_rf(dir);
}

static void test_load_good(void **unused) {
        (void) unused;
        _cleanup_(freep) char *dir = make_tmpdir();
        _cleanup_(freep) char *src = strprintf("%s/state/good.json", data_dir());
        _cleanup_(freep) char *dst = strprintf("%s/%s", dir, STATE_FILE);
        size_t len;
        _cleanup_(freep) char *text = read_file(src, &len);
        write_file(dst, text, len);
        _cleanup_(state_freep) struct state *s = NULL;
        _cleanup_(freep) char *warning = NULL;
        assert_int_equal(state_load(dir, &s, &warning), 0);
        assert_null(warning);
        assert_int_equal(s->n_numbers, 1);
        assert_int_equal(access(dst, F_OK), 0);
        rm_rf(dir);
}

static void test_save_atomic(void **unused) {
        (void) unused;
        _cleanup_(freep) char *dir = make_tmpdir();
        _cleanup_(freep) char *path = strprintf("%s/%s", dir, STATE_FILE);
        _cleanup_(state_freep) struct state *s = full_state();

        assert_int_equal(state_save(dir, s), 0);
        assert_int_equal(count_files(dir, STATE_FILE ".tmp"), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);

        _cleanup_(state_freep) struct state *back = NULL;
        _cleanup_(freep) char *warning = NULL;
        assert_int_equal(state_load(dir, &back, &warning), 0);
        assert_null(warning);
        _cleanup_(freep) char *a = NULL, *b = NULL;
        assert_int_equal(state_to_json(s, &a), 0);
        assert_int_equal(state_to_json(back, &b), 0);
        assert_string_equal(a, b);

        /* Overwrite with a different state: the new one wins. */
        s->last_pass_result = 1;
        assert_int_equal(state_save(dir, s), 0);
        assert_int_equal(count_files(dir, STATE_FILE ".tmp"), 0);
        _cleanup_(state_freep) struct state *back2 = NULL;
        assert_int_equal(state_load(dir, &back2, NULL), 0);
        assert_int_equal(back2->last_pass_result, 1);
        rm_rf(dir);
}

static void test_save_missing_dir(void **unused) {
        (void) unused;
        _cleanup_(freep) char *dir = make_tmpdir();
        _cleanup_(freep) char *gone = strprintf("%s/does-not-exist", dir);
        _cleanup_(state_freep) struct state *s = full_state();
        assert_int_equal(state_save(gone, s), -ENOENT);
        assert_int_equal(access(gone, F_OK), -1);
        rm_rf(dir);
}

/* A write that fails half-way (the disk fills up: here the file size limit
 * makes write() fail with EFBIG, as ENOSPC would) must leave the old file
 * as it was, and no temp file behind. */
static void test_save_failure_keeps_old(void **unused) {
        (void) unused;
        _cleanup_(freep) char *dir = make_tmpdir();
        _cleanup_(freep) char *path = strprintf("%s/%s", dir, STATE_FILE);
        _cleanup_(state_freep) struct state *small = state_new();
        assert_non_null(state_get_target(small, "support-us", NULL));
        assert_int_equal(state_save(dir, small), 0);
        size_t old_len;
        _cleanup_(freep) char *old = read_file(path, &old_len);

        _cleanup_(state_freep) struct state *big = full_state();
        for (unsigned i = 0; i < 200; i++) {
                char num[32];
                snprintf(num, sizeof num, "+1206555%04u", i);
                assert_non_null(state_add_number(big, "support-us", num));
        }
        struct rlimit saved, lim;
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
        struct sigaction sa = {.sa_handler = SIG_IGN}, old_sa;
        assert_int_equal(sigaction(SIGXFSZ, &sa, &old_sa), 0);
        lim = saved;
        lim.rlim_cur = old_len + 100;
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        int r = state_save(dir, big);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
        assert_int_equal(sigaction(SIGXFSZ, &old_sa, NULL), 0);

        assert_int_equal(r, -EFBIG);
        assert_int_equal(count_files(dir, STATE_FILE ".tmp"), 0);
        size_t now_len;
        _cleanup_(freep) char *now_text = read_file(path, &now_len);
        assert_int_equal(now_len, old_len);
        assert_memory_equal(now_text, old, old_len);
        _cleanup_(state_freep) struct state *back = NULL;
        _cleanup_(freep) char *warning = NULL;
        assert_int_equal(state_load(dir, &back, &warning), 0);
        assert_null(warning);
        assert_int_equal(back->n_targets, 1);
        rm_rf(dir);
}

static void test_lock(void **unused) {
        (void) unused;
        _cleanup_(freep) char *dir = make_tmpdir();
        int fd1 = -1, fd2 = -1, fd3 = -1;
        assert_int_equal(state_lock(dir, &fd1), 0);
        assert_true(fd1 >= 0);
        assert_true(fcntl(fd1, F_GETFD) & FD_CLOEXEC);
        /* A second open file description, even in this process, conflicts. */
        assert_int_equal(state_lock(dir, &fd2), -EBUSY);
        assert_int_equal(fd2, -1);
        close(fd1);
        assert_int_equal(state_lock(dir, &fd3), 0);
        close(fd3);
        _cleanup_(freep) char *gone = strprintf("%s/nope", dir);
        assert_int_equal(state_lock(gone, &fd2), -ENOENT);
        rm_rf(dir);
}

/* Interning shares one copy per value; a collection drops exactly the
 * values no record or target refers to, and keeps the others readable. */
/* Interned strings are shared, copied, and freed exactly when the last
 * field holding one lets go: immediately, with no collection to run. */
static void test_strings(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = state_new();
        assert_non_null(s);
        const char *a = "not interned", *b = NULL, *c = NULL;
        assert_int_equal(state_set(s, &b, NULL), 0);
        assert_null(b);
        char buf[32] = "shared";
        a = NULL;
        assert_int_equal(state_set(s, &a, buf), 0);
        buf[0] = 'S';
        assert_string_equal(a, "shared"); /* a copy, not the caller's buffer */
        assert_int_equal(state_set(s, &b, "shared"), 0);
        assert_ptr_equal(b, a);
        assert_int_equal(state_set(s, &c, "Shared"), 0);
        assert_ptr_not_equal(c, a);
        assert_int_equal(state_strings_count(s), 2);
        /* Setting a field to its own value, or from another field's. */
        assert_int_equal(state_set(s, &a, a), 0);
        assert_int_equal(state_set(s, &c, b), 0);
        assert_int_equal(state_strings_count(s), 1);
        assert_int_equal(state_set(s, &a, NULL), 0);
        assert_int_equal(state_set(s, &b, NULL), 0);
        assert_string_equal(c, "shared"); /* c still holds it */
        assert_int_equal(state_set(s, &c, NULL), 0);
        assert_int_equal(state_strings_count(s), 0);

        /* 3000 records, each with its own description, then 2000 of them
         * moved to one common value: the 2000 old ones go at once. */
        for (unsigned i = 0; i < 3000; i++) {
                char num[32], desc[32];
                snprintf(num, sizeof num, "+1206555%04u", i);
                snprintf(desc, sizeof desc, "line %u", i);
                struct state_number *n = state_add_number(s, "support-us", num);
                assert_non_null(n);
                assert_int_equal(state_set(s, &n->description, desc), 0);
                assert_int_equal(state_set(s, &n->pool, "main"), 0);
        }
        /* target + "main" + 3000 descriptions */
        assert_int_equal(state_strings_count(s), 1 + 1 + 3000);
        for (unsigned i = 0; i < 2000; i++)
                assert_int_equal(state_set(s, &s->numbers[i].description, "common"), 0);
        assert_int_equal(state_strings_count(s), 1 + 1 + 1000 + 1);
        for (unsigned i = 0; i < 3000; i++) {
                char desc[32];
                snprintf(desc, sizeof desc, "line %u", i);
                assert_string_equal(s->numbers[i].description, i < 2000 ? "common" : desc);
                assert_string_equal(s->numbers[i].pool, "main");
                assert_string_equal(s->numbers[i].target, "support-us");
        }
        /* Removing records gives their strings back; the table still finds
         * the survivors after all that shifting. */
        while (s->n_numbers > 1000)
                state_remove_number(s, &s->numbers[0]);
        assert_int_equal(state_strings_count(s), 1 + 1 + 1000);
        const char *x = NULL;
        assert_int_equal(state_set(s, &x, "line 2999"), 0);
        assert_ptr_equal(x, s->numbers[999].description);
        assert_int_equal(state_set(s, &x, NULL), 0);
        while (s->n_numbers > 0)
                state_remove_number(s, &s->numbers[s->n_numbers - 1]);
        assert_int_equal(state_strings_count(s), 0);
}

/* The guard rail of the design: a field the state knows nothing about (a
 * new member nobody listed anywhere) keeps its string alive through any
 * churn of the others; and a record that gives every member back leaves
 * nothing behind (a member forgotten in state_number_done() would). Run
 * under ASan or valgrind, a freed string read here fails the test. */
static void test_strings_new_field_survives(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = state_new();
        assert_non_null(s);
        struct {
                const char *new_member;
        } future = {0};
        assert_int_equal(state_set(s, &future.new_member, "kept by an unlisted field"), 0);
        for (unsigned i = 0; i < 5000; i++) {
                char num[32], desc[32];
                snprintf(num, sizeof num, "+1206555%04u", i);
                snprintf(desc, sizeof desc, "kept by an unlisted field %u", i);
                struct state_number *n = state_add_number(s, "support-us", num);
                assert_non_null(n);
                assert_int_equal(state_set(s, &n->description, desc), 0);
                assert_int_equal(state_set(s, &n->description, "common"), 0);
        }
        while (s->n_numbers > 0)
                state_remove_number(s, &s->numbers[0]);
        assert_string_equal(future.new_member, "kept by an unlisted field");
        assert_int_equal(state_strings_count(s), 1);
        assert_int_equal(state_set(s, &future.new_member, NULL), 0);
        assert_int_equal(state_strings_count(s), 0);

        /* Every member set, the record removed: no reference left over. */
        _cleanup_(state_freep) struct state *f = full_state();
        while (f->n_numbers > 0)
                state_remove_number(f, &f->numbers[0]);
        assert_int_equal(state_strings_count(f), 0);
}

/* The desired counts are integers in memory; the file keeps the decimal
 * strings every version wrote (a downgrade reads them), and plain integers
 * are read too. */
static void test_desired_counts(void **unused) {
        (void) unused;
        static const char text[] = "{\"version\": 2, \"targets\": [{\"name\": \"t\", "
                                   "\"desired\": {\"main\": \"3000\", \"b\": 7, \"c\": \"0\"}}]}\n";
        _cleanup_(state_freep) struct state *s = NULL;
        assert_int_equal(state_from_json(text, strlen(text), &s), 0);
        assert_int_equal(s->n_targets, 1);
        const struct state_target *t = &s->targets[0];
        assert_int_equal(t->n_desired, 3);
        assert_string_equal(t->desired[0].pool, "main");
        assert_int_equal(t->desired[0].count, 3000);
        assert_string_equal(t->desired[1].pool, "b");
        assert_int_equal(t->desired[1].count, 7);
        assert_int_equal(t->desired[2].count, 0);
        _cleanup_(freep) char *out = NULL;
        assert_int_equal(state_to_json(s, &out), 0);
        assert_non_null(strstr(out, "\"desired\":{\"main\":\"3000\",\"b\":\"7\",\"c\":\"0\"}"));

        static const char *const bad[] = {"\"x\"", "-1", "\"-1\"", "\"12a\"", "\"\"", "5000000000", "\" 3\"", "true"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(freep) char *b = strprintf("{\"version\": 2, \"targets\": [{\"name\": \"t\", "
                                                     "\"desired\": {\"main\": %s}}]}\n",
                                                     bad[i]);
                _cleanup_(state_freep) struct state *s2 = NULL;
                if (state_from_json(b, strlen(b), &s2) != -EBADMSG)
                        fail_msg("accepted desired count %s", bad[i]);
        }
}

/* Only an ARN that cannot be derived from the target's ARN and the id is
 * kept (and saved); both kinds read back the same. */
static void test_number_arn(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = state_new();
        assert_non_null(s);
        struct state_number *n = state_add_number(s, "t", "+12065550100");
        assert_non_null(n);
        char buf[STATE_ARN_MAX];
        assert_null(state_number_arn(n, buf));
        assert_int_equal(state_set(s, &n->target_arn, "arn:aws-us-gov:connect:us-gov-west-1:111122223333:instance/abc"), 0);
        n->id = strdup("1111-2222");
        assert_int_equal(state_number_set_arn(n, "arn:aws-us-gov:connect:us-gov-west-1:111122223333:phone-number/1111-2222"), 0);
        assert_null(n->arn);
        assert_string_equal(state_number_arn(n, buf),
                            "arn:aws-us-gov:connect:us-gov-west-1:111122223333:phone-number/1111-2222");
        struct state_number *m = state_add_number(s, "t", "+12065550101");
        assert_non_null(m);
        m->target_arn = n->target_arn;
        m->id = strdup("3333");
        assert_int_equal(state_number_set_arn(m, "arn:aws:connect:eu-west-2:999999999999:phone-number/3333"), 0);
        assert_string_equal(m->arn, "arn:aws:connect:eu-west-2:999999999999:phone-number/3333");
        assert_string_equal(state_number_arn(m, buf), m->arn);

        _cleanup_(freep) char *text = NULL;
        assert_int_equal(state_to_json(s, &text), 0);
        assert_null(strstr(text, "phone-number/1111-2222")); /* derived: not saved */
        assert_non_null(strstr(text, "phone-number/3333"));
        _cleanup_(state_freep) struct state *back = NULL;
        assert_int_equal(state_from_json(text, strlen(text), &back), 0);
        assert_string_equal(state_number_arn(&back->numbers[0], buf),
                            "arn:aws-us-gov:connect:us-gov-west-1:111122223333:phone-number/1111-2222");
        assert_string_equal(state_number_arn(&back->numbers[1], buf),
                            "arn:aws:connect:eu-west-2:999999999999:phone-number/3333");

        /* A version 1 file saved every ARN: the derivable ones are dropped. */
        static const char v1[] =
                "{\"version\": 1, \"numbers\": [{\"phone_number\": \"+1\", \"target\": \"t\", \"id\": \"9\", "
                "\"target_arn\": \"arn:aws:connect:us-east-1:111122223333:instance/x\", "
                "\"arn\": \"arn:aws:connect:us-east-1:111122223333:phone-number/9\"}]}";
        _cleanup_(state_freep) struct state *old = NULL;
        assert_int_equal(state_from_json(v1, strlen(v1), &old), 0);
        assert_null(old->numbers[0].arn);
        assert_string_equal(state_number_arn(&old->numbers[0], buf),
                            "arn:aws:connect:us-east-1:111122223333:phone-number/9");
}

/* Spent tokens: remembered once each, the oldest dropped beyond the limit. */
static void test_spent_tokens(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = state_new();
        struct state_target *t = state_get_target(s, "t", NULL);
        assert_non_null(t);
        assert_false(state_token_spent(t, "tok-0"));
        assert_false(state_token_spent(NULL, "tok-0"));
        for (unsigned i = 0; i < STATE_SPENT_TOKENS_MAX + 6; i++) {
                char tok[32];
                snprintf(tok, sizeof tok, "tok-%u", i);
                assert_int_equal(state_spend_token(t, tok), 0);
                assert_int_equal(state_spend_token(t, tok), 0); /* once */
        }
        assert_int_equal(strv_length(t->spent_tokens), STATE_SPENT_TOKENS_MAX);
        assert_false(state_token_spent(t, "tok-5"));
        assert_true(state_token_spent(t, "tok-6"));
        char last[32];
        snprintf(last, sizeof last, "tok-%u", STATE_SPENT_TOKENS_MAX + 5);
        assert_true(state_token_spent(t, last));
        assert_int_equal(state_spend_token(t, ""), -EINVAL);
}

static void test_lookups(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = state_new();
        /* Enough records to make the array move several times. */
        for (unsigned i = 0; i < 100; i++) {
                char num[32], id[32];
                snprintf(num, sizeof num, "+1206555%04u", i);
                snprintf(id, sizeof id, "id-%u", i);
                struct state_number *n = state_add_number(s, i % 2 ? "a" : "b", num);
                assert_non_null(n);
                assert_int_equal(n->phase, PHASE_UNKNOWN);
                n->id = strdup(id);
        }
        assert_int_equal(s->n_numbers, 100);
        assert_null(state_find_number(s, "a", "+12065550000"));
        struct state_number *n = state_find_number(s, "b", "+12065550000");
        assert_non_null(n);
        assert_ptr_equal(state_find_number_by_id(s, "id-0"), n);
        state_remove_number(s, n);
        assert_int_equal(s->n_numbers, 99);
        assert_null(state_find_number_by_id(s, "id-0"));
        assert_string_equal(state_find_number_by_id(s, "id-99")->phone_number, "+12065550099");
        assert_null(state_find_number_by_id(s, NULL));

        struct state_target *t = state_get_target(s, "a", "arn:1");
        assert_non_null(t);
        assert_ptr_equal(state_get_target(s, "a", NULL), t);
        assert_string_equal(t->arn, "arn:1");
        assert_ptr_equal(state_get_target(s, "a", "arn:2"), t);
        assert_string_equal(t->arn, "arn:2");
        assert_int_equal(s->n_targets, 1);

        uint64_t now = 1800000000, day = 86400;
        assert_int_equal(state_churn_add(t, now - 200 * day, true, "+1"), 0);
        assert_int_equal(state_churn_add(t, now - 180 * day, false, "+2"), 0);
        assert_int_equal(state_churn_add(t, now - day, true, NULL), 0);
        assert_int_equal(state_churn_prune(t, now), 2);
        assert_string_equal(t->churn[0].phone_number, "+2");
        assert_int_equal(state_churn_prune(t, now + 365 * day), 0);
        assert_null(t->churn);

        for (int p = PHASE_UNKNOWN; p <= PHASE_GONE; p++)
                assert_int_equal(number_phase_from_name(number_phase_name(p)), p);
        assert_int_equal(number_phase_from_name("nope"), -EINVAL);
        assert_null(number_phase_name(99));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_empty_round_trip),
                cmocka_unit_test(test_from_json_refuses),
                cmocka_unit_test(test_from_json_tolerates_unknown),
                cmocka_unit_test(test_lines_and_v1_upgrade),
                cmocka_unit_test(test_load_missing),
                cmocka_unit_test(test_load_refuses_untouched),
                cmocka_unit_test(test_load_skips_damaged_records),
                cmocka_unit_test(test_load_empty_moves_aside),
                cmocka_unit_test(test_load_fifo),
                cmocka_unit_test(test_load_good),
                cmocka_unit_test(test_save_atomic),
                cmocka_unit_test(test_save_missing_dir),
                cmocka_unit_test(test_save_failure_keeps_old),
                cmocka_unit_test(test_lock),
                cmocka_unit_test(test_lookups),
                cmocka_unit_test(test_strings),
                cmocka_unit_test(test_strings_new_field_survives),
                cmocka_unit_test(test_desired_counts),
                cmocka_unit_test(test_number_arn),
                cmocka_unit_test(test_spent_tokens),
        };
        return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
