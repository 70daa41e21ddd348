/* test-http.c: http.c and connect.c over real TLS on loopback.
 *
 * Against tests/fake-connect/fake_connect.py (started here in a temporary
 * directory): every operation round-trips, pagination, session
 * credentials, the LIST known_digest shortcut, a wrong secret, an
 * untrusted certificate (no request reaches the server), throttling, dropped connections, truncated and 5xx
 * answers and how they are retried. Against a tiny TLS server in a thread
 * (the fake's certificate): the response cap on a chunked body, header
 * capture, timeouts, cancellation. Everything is skipped when the fake or
 * python3 is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "aws/http.h"
#include "connect.h"
#include "log.h"

#define TARGET "arn:aws:connect:us-east-1:111122223333:instance/0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11"
#define INSTANCE_ID "0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11"
#define REGION "us-east-1"
#define POOL_TAG "connect-numbers:pool"

static struct fake {
        pid_t pid;
        char dir[64];
        char *endpoint_url;
        char *admin_url;
        char *ca_file;
        char *access_key_id;
        char *secret_access_key;
        char *container_full_uri;
        bool available;
} fake = { .pid = -1 };

/* ---- the fake: start, stop, admin API ---- */

static char *source_relative(const char *rel) {
        const char *file = __FILE__; /* .../tests/unit/test-http.c */
        const char *slash = strrchr(file, '/');
        size_t dir = slash ? (size_t) (slash - file) : 0;
        return strprintf("%.*s%s%s", (int) dir, file, dir ? "/" : "", rel);
}

static int rm_one(const char *path, _unused_ const struct stat *st, _unused_ int flag, _unused_ struct FTW *ftw) {
        return remove(path) < 0 ? -errno : 0;
}

static char *json_dup_string(json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? strdup(s) : NULL;
}

static int fake_start(_unused_ void **state) {
        _cleanup_(freep) char *script = source_relative("../fake-connect/fake_connect.py");
        _cleanup_(freep) char *info_path = NULL;

        signal(SIGPIPE, SIG_IGN);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        log_setup(LOG_TARGET_CONSOLE, LOG_WARNING);

        if (!script || access(script, R_OK) < 0)
                return 0; /* tests skip */

        strcpy(fake.dir, "/tmp/test-http-XXXXXX");
        if (!mkdtemp(fake.dir))
                return -1;
        info_path = strprintf("%s/fake.json", fake.dir);

        fake.pid = fork();
        if (fake.pid < 0)
                return -1;
        if (fake.pid == 0) {
                int null = open("/dev/null", O_RDWR);
                /* never outlive the test, however it ends */
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        dup2(null, STDOUT_FILENO);
                }
                execlp("python3", "python3", script, "--dir", fake.dir, "--claim-delay", "0.2", "--metadata-delay",
                       "0.1", "--rate", "0", (char *) NULL);
                _exit(127);
        }

        /* Wait (bounded) for fake.json. */
        for (int i = 0; i < 600; i++) {
                _cleanup_(freep) char *text = NULL;
                size_t len;
                int status;
                if (read_full_file(info_path, 1 << 16, &text, &len) == 0 && len > 0 && text[len - 1] == '\n') {
                        json_t *j = json_loadb(text, len, 0, NULL);
                        if (!j)
                                return -1;
                        fake.endpoint_url = json_dup_string(j, "endpoint_url");
                        fake.admin_url = json_dup_string(j, "admin_url");
                        fake.ca_file = json_dup_string(j, "ca_file");
                        fake.access_key_id = json_dup_string(j, "access_key_id");
                        fake.secret_access_key = json_dup_string(j, "secret_access_key");
                        fake.container_full_uri = json_dup_string(j, "container_full_uri");
                        json_decref(j);
                        fake.available = fake.endpoint_url && fake.admin_url && fake.ca_file && fake.access_key_id &&
                                         fake.secret_access_key;
                        return fake.available ? 0 : -1;
                }
                if (waitpid(fake.pid, &status, WNOHANG) == fake.pid) {
                        fake.pid = -1;
                        /* python3 missing (127): skip; anything else: fail */
                        return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? 0 : -1;
                }
                usleep(50 * 1000);
        }
        return -1;
}

static int fake_stop(_unused_ void **state) {
        if (fake.pid > 0) {
                kill(fake.pid, SIGTERM);
                waitpid(fake.pid, NULL, 0);
                fake.pid = -1;
        }
        if (fake.dir[0])
                nftw(fake.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(fake.endpoint_url);
        free(fake.admin_url);
        free(fake.ca_file);
        free(fake.access_key_id);
        free(fake.secret_access_key);
        free(fake.container_full_uri);
        return 0;
}

#define REQUIRE_FAKE()                                                    \
        do {                                                              \
                if (!fake.available) {                                    \
                        print_message("fake_connect.py not available\n"); \
                        skip();                                           \
                }                                                         \
        } while (0)

struct buf {
        char *data;
        size_t len;
};

static size_t buf_write(char *p, size_t size, size_t n, void *userdata) {
        struct buf *b = userdata;
        char *d = realloc(b->data, b->len + size * n + 1);
        if (!d)
                return 0;
        memcpy(d + b->len, p, size * n);
        b->len += size * n;
        d[b->len] = 0;
        b->data = d;
        return size * n;
}

/* A blocking call to the fake's plain-HTTP admin API (test plumbing, not
 * the code under test). Returns the parsed JSON answer. */
static json_t *admin(const char *method, const char *path, const char *body) {
        _cleanup_(freep) char *url = strprintf("%s%s", fake.admin_url, path);
        struct buf b = {};
        struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
        CURL *e = curl_easy_init();
        long status = 0;
        json_t *j;

        assert_non_null(e);
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        if (body)
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 20L);
        assert_int_equal(curl_easy_perform(e), CURLE_OK);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        if (status != 200)
                fail_msg("admin %s %s: HTTP %ld: %s", method, path, status, b.data ?: "");
        j = json_loadb(b.data ?: "", b.len, 0, NULL);
        free(b.data);
        assert_non_null(j);
        return j;
}

static void admin_post(const char *path, const char *body) {
        json_decref(admin("POST", path, body));
}

/* Every test starts from a permissive fake and an environment that names
 * only the fake's credentials. */
static void env_for_fake(void) {
        setenv("AWS_ACCESS_KEY_ID", fake.access_key_id, 1);
        setenv("AWS_SECRET_ACCESS_KEY", fake.secret_access_key, 1);
        unsetenv("AWS_SESSION_TOKEN");
        unsetenv("AWS_PROFILE");
        unsetenv("CREDENTIALS_DIRECTORY");
        setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
        setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
        unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
        unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
        unsetenv("AWS_ENDPOINT_URL_CONNECT");
        unsetenv("AWS_ENDPOINT_URL");
        unsetenv("AWS_CA_BUNDLE");
        unsetenv("AWS_MAX_ATTEMPTS");
        unsetenv("CONNECT_NUMBERS_CLOCK_OFFSET");
        /* loopback only: no proxy may get in between */
        unsetenv("https_proxy");
        unsetenv("HTTPS_PROXY");
        unsetenv("all_proxy");
        unsetenv("ALL_PROXY");
        admin_post("/admin/config", "{\"rate\": 0, \"burst\": 5, \"faults\": {}, \"fault_next\": []}");
}

static struct connect_client_options fake_options(void) {
        return (struct connect_client_options){
                .endpoint_url = fake.endpoint_url,
                .ca_file = fake.ca_file,
                .rate_default = 50,
                .rate_burst = 50,
        };
}

/* ---- outcomes ---- */

struct outcome {
        bool done;
        int r;
        enum connect_error_kind kind;
        long http_status;
        char *code;
        char *message;
        unsigned attempts;
        char *id, *arn;                   /* CLAIM */
        char **ids;                       /* LIST: every PhoneNumberId, from every page */
        size_t n_numbers;                 /* LIST */
        unsigned pages_seen;              /* LIST: on_page calls */
        char **page_ids;                  /* LIST, while the call runs: what on_page got so far */
        size_t page_n;
        unsigned page_count;
        bool numbers_null;                /* LIST: no page was delivered */
        bool have_digest, unchanged;      /* LIST */
        uint8_t digest[CONNECT_LIST_DIGEST_LEN];
        char **available;                 /* SEARCH: phone numbers */
        enum connect_number_status status;/* DESCRIBE */
        char *description;
        char *phone_number;
        char **tags;                      /* DESCRIBE: "k=v" */
};

static void outcome_clear(struct outcome *o) {
        free(o->code);
        free(o->message);
        free(o->id);
        free(o->arn);
        strv_free(o->ids);
        strv_free(o->page_ids);
        strv_free(o->available);
        free(o->description);
        free(o->phone_number);
        strv_free(o->tags);
        *o = (struct outcome){};
}

/* LIST pages collect into the outcome until on_result. */
static int on_page(struct connect_number *numbers, size_t n, void *userdata) {
        struct outcome *o = userdata;
        o->page_count++;
        for (size_t i = 0; i < n; i++)
                assert_int_equal(strv_push(&o->page_ids, numbers[i].id), 0);
        o->page_n += n;
        return 0;
}

static struct connect_list_options list_options(const uint8_t *known) {
        return (struct connect_list_options){ .known_digest = known, .on_page = on_page };
}

static const struct connect_list_options plain_list = { .on_page = on_page };

static void on_result(const struct connect_result *res, void *userdata) {
        struct outcome *o = userdata;
        char **ids = TAKE_PTR(o->page_ids);
        size_t n_numbers = o->page_n;
        unsigned pages_seen = o->page_count;

        outcome_clear(o);
        o->done = true;
        o->r = res->r;
        o->kind = res->error.kind;
        o->http_status = res->error.http_status;
        o->code = strdup_or_null(res->error.code);
        o->message = strdup_or_null(res->error.message);
        o->attempts = res->attempts;
        o->id = strdup_or_null(res->phone_number_id);
        o->arn = strdup_or_null(res->phone_number_arn);
        for (size_t i = 0; i < res->n_available; i++)
                assert_int_equal(strv_push(&o->available, res->available[i].phone_number), 0);
        if (res->op == CONNECT_OP_LIST) {
                assert_null(res->numbers);
                o->ids = ids;
                o->n_numbers = n_numbers;
                o->pages_seen = pages_seen;
                o->numbers_null = pages_seen == 0;
                if (res->r == 0)
                        assert_int_equal(res->n_listed, n_numbers);
                ids = NULL;
                o->have_digest = res->have_digest;
                o->unchanged = res->unchanged;
                memcpy(o->digest, res->digest, sizeof(o->digest));
        }
        strv_free(ids);
        if (res->op == CONNECT_OP_DESCRIBE && res->n_numbers == 1) {
                const struct connect_number *n = &res->numbers[0];
                o->status = n->status;
                o->description = strdup_or_null(n->description);
                o->phone_number = strdup_or_null(n->phone_number);
                for (size_t i = 0; i < n->n_tags; i++) {
                        _cleanup_(freep) char *kv = strprintf("%s=%s", n->tags[i].key, n->tags[i].value);
                        assert_int_equal(strv_push(&o->tags, kv), 0);
                }
        }
}

/* Runs the loop until o's call has ended; consumes the "done" flag so
 * that the same outcome can serve the next call. */
static void wait_done(sd_event *e, struct outcome *o) {
        usec_t deadline = clock_boottime_usec() + 90 * USEC_PER_SEC;
        while (!o->done) {
                if (clock_boottime_usec() > deadline)
                        fail_msg("no outcome within 90 s");
                assert_true(sd_event_run(e, USEC_PER_SEC) >= 0);
        }
        o->done = false;
}

static void wait_all(sd_event *e, struct connect_client *c) {
        usec_t deadline = clock_boottime_usec() + 90 * USEC_PER_SEC;
        while (connect_client_in_flight(c) > 0) {
                if (clock_boottime_usec() > deadline)
                        fail_msg("calls still in flight after 90 s");
                assert_true(sd_event_run(e, USEC_PER_SEC) >= 0);
        }
}

static bool strv_contains(char **l, const char *s) {
        for (char **i = l; i && *i; i++)
                if (streq(*i, s))
                        return true;
        return false;
}

#define EXPECT_OK(o)                                                                                            \
        do {                                                                                                    \
                if ((o)->r != 0)                                                                                \
                        fail_msg("call failed: r=%d kind=%s code=%s message=%s", (o)->r,                        \
                                 connect_error_kind_name((o)->kind), (o)->code ?: "-", (o)->message ?: "-");    \
        } while (0)

/* Describes until the number is no longer IN_PROGRESS. */
static void describe_settled(sd_event *e, struct connect_client *c, const char *id, struct outcome *o) {
        for (int i = 0; i < 100; i++) {
                assert_int_equal(connect_describe_number(c, REGION, id, on_result, o), 0);
                wait_done(e, o);
                if (o->r < 0 || o->status != CONNECT_STATUS_IN_PROGRESS)
                        return;
                usleep(50 * 1000);
        }
        fail_msg("%s stayed IN_PROGRESS", id);
}

static size_t json_array_len(json_t *j, const char *key) {
        return json_array_size(json_object_get(j, key));
}

/* ---- the fake: every operation ---- */

static void test_round_trip(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};
        char token[37], token2[37], token3[37];
        _cleanup_(freep) char *id = NULL, *arn = NULL, *phone = NULL;
        struct connect_tag claim_tags[] = { { (char *) POOL_TAG, (char *) "rt/main" } };
        struct connect_tag more_tags[] = { { (char *) "team", (char *) "support" }, { (char *) "cost center", (char *) "a/b:c" } };
        char *untag_keys[] = { (char *) "team", (char *) "cost center", NULL };
        json_t *j;

        REQUIRE_FAKE();
        env_for_fake();
        admin_post("/admin/reset", "{}");
        /* Debug logging on, into a file we read at the end. */
        int log_fd = memfd_create("test-http-log", MFD_CLOEXEC);
        assert_true(log_fd >= 0);
        log_set_console_fd(log_fd);
        log_set_max_priority(LOG_DEBUG);
        opts = fake_options();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);

        /* search */
        assert_int_equal(connect_search_available(c, REGION, TARGET, "US", "DID", "+1206", 3, on_result, &o), 0);
        assert_false(o.done); /* never from inside the call */
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.attempts, 1);
        assert_true(strv_length(o.available) >= 1 && strv_length(o.available) <= 3);
        for (char **p = o.available; *p; p++)
                assert_true(strncmp(*p, "+1206", 5) == 0);
        phone = strdup(o.available[0]);

        /* claim */
        assert_int_equal(uuid_random(token), 0);
        assert_int_equal(connect_claim_number(c, REGION, TARGET, phone, "round trip", claim_tags, 1, token, on_result, &o),
                         0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_non_null(o.id);
        assert_non_null(o.arn);
        id = strdup(o.id);
        arn = strdup(o.arn);

        /* describe until CLAIMED */
        describe_settled(e, c, id, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.status, CONNECT_STATUS_CLAIMED);
        assert_string_equal(o.phone_number, phone);
        assert_string_equal(o.description, "round trip");
        assert_true(strv_contains(o.tags, POOL_TAG "=rt/main"));

        /* describe by ARN (double-encoded in the signature) */
        assert_int_equal(connect_describe_number(c, REGION, arn, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_string_equal(o.phone_number, phone);

        /* list */
        assert_int_equal(connect_list_numbers(c, REGION, TARGET, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_true(strv_contains(o.ids, id));

        /* tag, with a key that needs encoding in the untag query */
        assert_int_equal(connect_tag_resource(c, REGION, arn, more_tags, 2, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        describe_settled(e, c, id, &o);
        assert_true(strv_contains(o.tags, "team=support"));
        assert_true(strv_contains(o.tags, "cost center=a/b:c"));
        assert_true(strv_contains(o.tags, POOL_TAG "=rt/main"));

        /* untag */
        assert_int_equal(connect_untag_resource(c, REGION, arn, untag_keys, 2, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        describe_settled(e, c, id, &o);
        assert_false(strv_contains(o.tags, "team=support"));
        assert_false(strv_contains(o.tags, "cost center=a/b:c"));
        assert_true(strv_contains(o.tags, POOL_TAG "=rt/main"));

        /* update metadata */
        assert_int_equal(uuid_random(token2), 0);
        assert_int_equal(connect_update_metadata(c, REGION, id, "new description \xc3\xa9", token2, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        describe_settled(e, c, id, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.status, CONNECT_STATUS_CLAIMED);
        assert_string_equal(o.description, "new description \xc3\xa9");

        /* associate a flow (instance number) */
        assert_int_equal(connect_associate_flow(c, REGION, id, INSTANCE_ID, "7c1a8bde-1111-4222-8333-444455556666",
                                                on_result, &o),
                         0);
        wait_done(e, &o);
        EXPECT_OK(&o);

        j = admin("GET", "/admin/numbers", NULL);
        json_t *n;
        size_t i;
        bool seen = false;
        json_array_foreach(json_object_get(j, "numbers"), i, n) {
                if (!streq_ptr(json_string_value(json_object_get(n, "id")), id))
                        continue;
                seen = true;
                assert_string_equal(json_string_value(json_object_get(n, "contact_flow")),
                                    "7c1a8bde-1111-4222-8333-444455556666");
        }
        json_decref(j);
        assert_true(seen);

        /* release */
        assert_int_equal(uuid_random(token3), 0);
        assert_int_equal(connect_release_number(c, REGION, id, token3, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        describe_settled(e, c, id, &o);
        assert_int_equal(o.kind, CONNECT_ERROR_NOT_FOUND);
        assert_int_equal(o.r, -ENOENT);
        assert_int_equal(o.http_status, 404);
        assert_string_equal(o.code, "ResourceNotFoundException");

        /* The strict fake found nothing to complain about, and saw our
         * tokens. */
        j = admin("GET", "/admin/calls", NULL);
        assert_int_equal(json_integer_value(json_object_get(j, "validation_failures")), 0);
        json_decref(j);
        j = admin("GET", "/admin/requests", NULL);
        bool claim_seen = false, release_seen = false;
        json_array_foreach(json_object_get(j, "requests"), i, n) {
                const char *op = json_string_value(json_object_get(n, "op"));
                const char *tok = json_string_value(json_object_get(n, "client_token"));
                if (streq_ptr(op, "ClaimPhoneNumber"))
                        claim_seen = streq_ptr(tok, token);
                if (streq_ptr(op, "ReleasePhoneNumber"))
                        release_seen = streq_ptr(tok, token3);
                assert_true(json_integer_value(json_object_get(n, "status")) != 403);
        }
        json_decref(j);
        assert_true(claim_seen);
        assert_true(release_seen);
        outcome_clear(&o);

        /* One debug line per attempt, with operation and request id, and
         * nothing secret: no key, no signature, no Authorization. */
        log_set_max_priority(LOG_WARNING);
        log_set_console_fd(STDERR_FILENO);
        off_t size = lseek(log_fd, 0, SEEK_END);
        _cleanup_(freep) char *log = calloc(1, (size_t) size + 1);
        assert_non_null(log);
        assert_int_equal(pread(log_fd, log, (size_t) size, 0), size);
        close(log_fd);
        assert_non_null(strstr(log, "debug: ClaimPhoneNumber in us-east-1, attempt 1: HTTP 200 [op=ClaimPhoneNumber request-id="));
        assert_non_null(strstr(log, "debug: ReleasePhoneNumber in us-east-1, attempt 1: HTTP 200"));
        assert_non_null(strstr(log, "HTTP 404 ResourceNotFoundException [op=DescribePhoneNumber error=ResourceNotFoundException"));
        assert_null(strstr(log, fake.secret_access_key));
        assert_null(strstr(log, "Signature"));
        assert_null(strstr(log, "AWS4-HMAC-SHA256"));
        assert_null(strstr(log, "Authorization"));
}

static void test_list_pages(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};
        const char *target = "arn:aws:connect:us-west-2:111122223333:instance/aaaaaaaa-1111-4222-8333-444455556666";

        REQUIRE_FAKE();
        env_for_fake();
        admin_post("/admin/seed", "{\"generate\": {\"target_arn\": \"arn:aws:connect:us-west-2:111122223333:instance/"
                                  "aaaaaaaa-1111-4222-8333-444455556666\", \"country\": \"US\", \"type\": \"DID\","
                                  " \"count\": 2345}}");
        opts = fake_options();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        assert_int_equal(connect_list_numbers(c, "us-west-2", target, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        /* every page in one result, ids unique */
        assert_int_equal(strv_length(o.ids), 2345);
        assert_int_equal(o.attempts, 3); /* 1000 + 1000 + 345 */
        for (size_t i = 1; i < 2345; i += 97)
                for (size_t k = 0; k < i; k++)
                        assert_string_not_equal(o.ids[i], o.ids[k]);
        outcome_clear(&o);
}

/* Seeds numbers through the admin API; returns their ids. */
static char **seed_generate(const char *target_arn, unsigned count) {
        _cleanup_(freep) char *body = strprintf("{\"generate\": {\"target_arn\": \"%s\", \"country\": \"US\","
                                                " \"type\": \"DID\", \"count\": %u}}",
                                                target_arn, count);
        json_t *j = admin("POST", "/admin/seed", body), *id;
        char **ids = NULL;
        size_t i;

        json_array_foreach(json_object_get(j, "numbers"), i, id)
                assert_int_equal(strv_push(&ids, json_string_value(id)), 0);
        json_decref(j);
        assert_int_equal(strv_length(ids), count);
        return ids;
}

static size_t list_requests(void) {
        json_t *j = admin("GET", "/admin/calls", NULL);
        size_t n = (size_t) json_integer_value(json_object_get(json_object_get(j, "calls"), "ListPhoneNumbersV2"));
        json_decref(j);
        return n;
}

/* One list call of arn with known (or NULL), run to its end. */
static void list_wait(sd_event *e, struct connect_client *c, const char *arn, const uint8_t *known,
                      struct outcome *o) {
        struct connect_list_options lo = list_options(known);
        assert_int_equal(connect_list_numbers(c, REGION, arn, &lo, on_result, o), 0);
        wait_done(e, o);
}

/* known_digest: a single-page answer identical to the last one is reported
 * unchanged and not parsed; any change, a wrong digest or more than one
 * page parses as before. */
static void test_list_digest(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};
        const char *small = "arn:aws:connect:us-east-1:111122223333:instance/d1d1d1d1-1111-4222-8333-444455556666";
        const char *big = "arn:aws:connect:us-east-1:111122223333:instance/d2d2d2d2-1111-4222-8333-444455556666";
        _cleanup_(strv_freep) char **ids = NULL, **more = NULL, **big_ids = NULL;
        uint8_t first[CONNECT_LIST_DIGEST_LEN], second[CONNECT_LIST_DIGEST_LEN], zero[CONNECT_LIST_DIGEST_LEN] = {};

        REQUIRE_FAKE();
        env_for_fake();
        ids = seed_generate(small, 3);
        opts = fake_options();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);

        /* 1. no known digest: parsed, and a digest to keep */
        list_wait(e, c, small, NULL, &o);
        EXPECT_OK(&o);
        assert_true(o.have_digest);
        assert_false(o.unchanged);
        assert_int_equal(o.n_numbers, 3);
        for (char **i = ids; *i; i++)
                assert_true(strv_contains(o.ids, *i));
        memcpy(first, o.digest, sizeof(first));
        assert_memory_not_equal(first, zero, sizeof(first));

        /* 2. the same answer again: unchanged, nothing parsed, one request.
         * The caller's copy need not outlive the call. */
        {
                uint8_t *known = malloc(sizeof(first));
                assert_non_null(known);
                memcpy(known, first, sizeof(first));
                size_t before = list_requests();
                assert_int_equal(connect_list_numbers(c, REGION, small, &(struct connect_list_options){ .known_digest = known, .on_page = on_page },
                                                      on_result, &o), 0);
                memset(known, 0xa5, sizeof(first));
                free(known);
                wait_done(e, &o);
                EXPECT_OK(&o);
                assert_int_equal(list_requests(), before + 1);
        }
        assert_true(o.unchanged);
        assert_true(o.have_digest);
        assert_int_equal(o.n_numbers, 0);
        assert_true(o.numbers_null);
        assert_memory_equal(o.digest, first, sizeof(first));

        /* 3. one more number: the old digest no longer matches */
        more = seed_generate(small, 1);
        list_wait(e, c, small, first, &o);
        EXPECT_OK(&o);
        assert_false(o.unchanged);
        assert_true(o.have_digest);
        assert_int_equal(o.n_numbers, 4);
        assert_true(strv_contains(o.ids, more[0]));
        for (char **i = ids; *i; i++)
                assert_true(strv_contains(o.ids, *i));
        assert_memory_not_equal(o.digest, first, sizeof(first));
        memcpy(second, o.digest, sizeof(second));

        /* 5. a wrong digest on an unchanged single page: parsed as usual,
         * and the same digest as before */
        list_wait(e, c, small, zero, &o);
        EXPECT_OK(&o);
        assert_false(o.unchanged);
        assert_true(o.have_digest);
        assert_int_equal(o.n_numbers, 4);
        assert_false(o.numbers_null);
        assert_memory_equal(o.digest, second, sizeof(second));

        /* 4. more than one page: no digest, every number, and a digest
         * given does not make it unchanged */
        big_ids = seed_generate(big, 1001);
        list_wait(e, c, big, NULL, &o);
        EXPECT_OK(&o);
        assert_false(o.have_digest);
        assert_false(o.unchanged);
        assert_int_equal(o.n_numbers, 1001);
        assert_int_equal(o.attempts, 2);
        for (size_t i = 0; i < 1001; i += 50)
                assert_true(strv_contains(o.ids, big_ids[i]));
        assert_true(strv_contains(o.ids, big_ids[1000]));
        list_wait(e, c, big, second, &o);
        EXPECT_OK(&o);
        assert_false(o.have_digest);
        assert_false(o.unchanged);
        assert_int_equal(o.n_numbers, 1001);

        /* A failed list reports neither. */
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"error500\", \"op\": \"ListPhoneNumbersV2\","
                                    " \"count\": 10}]}");
        list_wait(e, c, small, second, &o);
        assert_true(o.r < 0);
        assert_false(o.have_digest);
        assert_false(o.unchanged);
        admin_post("/admin/config", "{\"fault_next\": []}");

        /* A retried attempt still ends unchanged: only the final body counts. */
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"error500\", \"op\": \"ListPhoneNumbersV2\"}]}");
        list_wait(e, c, small, second, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.attempts, 2);
        assert_true(o.unchanged);
        assert_true(o.have_digest);
        assert_true(o.numbers_null);
        outcome_clear(&o);
}

static void test_session_credentials(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};

        REQUIRE_FAKE();
        if (!fake.container_full_uri)
                skip();
        env_for_fake();
        /* Container credentials: an ASIA key with a session token, which
         * must be sent and signed as X-Amz-Security-Token. */
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake.container_full_uri, 1);
        opts = fake_options();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        assert_int_equal(connect_search_available(c, REGION, TARGET, "US", "TOLL_FREE", NULL, 2, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_int_equal(strv_length(o.available), 2);
        unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        outcome_clear(&o);
}

static void test_wrong_secret(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};

        REQUIRE_FAKE();
        env_for_fake();
        setenv("AWS_SECRET_ACCESS_KEY", "notTheSecret/0123456789abcdefEXAMPLE", 1);
        opts = fake_options();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        assert_int_equal(connect_describe_number(c, REGION, "11111111-2222-4333-8444-555555555555", on_result, &o), 0);
        wait_done(e, &o);
        assert_int_equal(o.kind, CONNECT_ERROR_AUTH);
        assert_int_equal(o.r, -EPERM);
        assert_int_equal(o.attempts, 1); /* never retried */
        assert_int_equal(o.http_status, 403);
        assert_non_null(o.message);
        assert_non_null(strcasestr(o.message, "signature"));
        assert_null(strstr(o.message, "notTheSecret"));
        outcome_clear(&o);
}

static void test_untrusted_certificate(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};
        json_t *j;

        REQUIRE_FAKE();
        env_for_fake();
        /* No CA given: the system store, which does not know the fake's CA. */
        unsetenv("SSL_CERT_FILE");
        unsetenv("SSL_CERT_DIR");
        unsetenv("CURL_CA_BUNDLE");
        admin_post("/admin/reset", "{}");
        opts = fake_options();
        opts.ca_file = NULL;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        assert_int_equal(connect_list_numbers(c, REGION, TARGET, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        assert_int_equal(o.r, -EPROTO);
        assert_int_equal(o.kind, CONNECT_ERROR_TLS);
        assert_int_equal(o.attempts, 1);
        assert_non_null(o.message);

        j = admin("GET", "/admin/requests", NULL);
        assert_int_equal(json_array_len(j, "requests"), 0); /* nothing reached the server */
        json_decref(j);

        /* AWS_CA_BUNDLE is honoured when no ca_file is given. */
        connect_client_free(TAKE_PTR(c));
        setenv("AWS_CA_BUNDLE", fake.ca_file, 1);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        assert_int_equal(connect_list_numbers(c, REGION, TARGET, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        unsetenv("AWS_CA_BUNDLE");

        /* ... and reconfigure can switch the CA back to nothing. */
        assert_int_equal(connect_client_reconfigure(c, &opts), 0);
        assert_int_equal(connect_list_numbers(c, REGION, TARGET, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        assert_int_equal(o.kind, CONNECT_ERROR_TLS);
        outcome_clear(&o);
}

static void test_throttling(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o[8] = {};
        struct connect_stats st;
        unsigned retried = 0, total_attempts = 0;
        json_t *j;

        REQUIRE_FAKE();
        env_for_fake();
        j = admin("POST", "/admin/seed",
                  "{\"numbers\": [{\"target_arn\": \"" TARGET "\", \"country\": \"US\", \"type\": \"DID\"}]}");
        const char *id = json_string_value(json_array_get(json_object_get(j, "numbers"), 0));
        assert_non_null(id);
        admin_post("/admin/config", "{\"rate\": 1, \"burst\": 1}");

        opts = fake_options(); /* paced at 50/s: far faster than the fake allows */
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        for (size_t i = 0; i < ELEMENTSOF(o); i++)
                assert_int_equal(connect_describe_number(c, REGION, id, on_result, &o[i]), 0);
        json_decref(j);
        wait_all(e, c);

        for (size_t i = 0; i < ELEMENTSOF(o); i++) {
                assert_true(o[i].done);
                assert_true(o[i].attempts >= 1);
                /* throttling alone never makes a call give up while its
                 * deadline (5 minutes by default) leaves time */
                EXPECT_OK(&o[i]);
                assert_int_equal(o[i].status, CONNECT_STATUS_CLAIMED);
                if (o[i].attempts > 1)
                        retried++;
                total_attempts += o[i].attempts;
                outcome_clear(&o[i]);
        }
        /* Eight at once against a bucket of one: some got 429s and were
         * retried (how many depends on how fast the fake accepts eight
         * TLS connections, so no exact count). */
        assert_true(retried >= 1);
        connect_client_stats(c, &st);
        assert_true(st.throttled[CONNECT_OP_DESCRIBE] >= 1);
        assert_int_equal(st.retries, total_attempts - ELEMENTSOF(o));
        assert_int_equal(st.calls[CONNECT_OP_DESCRIBE], total_attempts);
        assert_int_equal(st.throttled[CONNECT_OP_DESCRIBE], total_attempts - ELEMENTSOF(o));
        admin_post("/admin/config", "{\"rate\": 0, \"burst\": 5}");
}

/* Throttling never ends a call while its deadline leaves time: a call
 * throttled many more times than max_attempts still succeeds, throttled
 * retries do not drain the retry quota that 5xx retries need, and only
 * the deadline stops them. */
static void test_throttled_until_deadline(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};
        struct connect_stats st;
        usec_t start;

        REQUIRE_FAKE();
        env_for_fake();
        opts = fake_options();
        opts.max_backoff_usec = 2 * USEC_PER_MSEC; /* keeps 120 retries quick */
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);

        /* 1. six 429s, then the answer: one call, seven attempts */
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"throttle\", \"op\": \"SearchAvailablePhoneNumbers\","
                                    " \"count\": 6}]}");
        assert_int_equal(connect_search_available(c, REGION, TARGET, "US", "DID", NULL, 1, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.attempts, 7);
        connect_client_stats(c, &st);
        assert_int_equal(st.throttled[CONNECT_OP_SEARCH], 6);

        /* 2. 120 throttled retries (more than the retry quota could pay
         * for), then a 500: still retried, as the quota was not drained */
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"throttle\", \"op\": \"SearchAvailablePhoneNumbers\","
                                    " \"count\": 120}]}");
        assert_int_equal(connect_search_available(c, REGION, TARGET, "US", "DID", NULL, 1, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.attempts, 121);
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"error500\", \"op\": \"SearchAvailablePhoneNumbers\"}]}");
        assert_int_equal(connect_search_available(c, REGION, TARGET, "US", "DID", NULL, 1, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.attempts, 2);

        /* 3. throttled for good: the call ends at the deadline, not before */
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"throttle\", \"op\": \"SearchAvailablePhoneNumbers\","
                                    " \"count\": 100000}]}");
        start = clock_boottime_usec();
        connect_client_set_deadline(c, start + 700 * USEC_PER_MSEC);
        assert_int_equal(connect_search_available(c, REGION, TARGET, "US", "DID", NULL, 1, on_result, &o), 0);
        wait_done(e, &o);
        assert_true(clock_boottime_usec() >= start + 700 * USEC_PER_MSEC);
        assert_int_equal(o.r, -EAGAIN);
        assert_int_equal(o.kind, CONNECT_ERROR_THROTTLED);
        assert_true(o.attempts > 3);
        admin_post("/admin/config", "{\"fault_next\": []}");
        outcome_clear(&o);
}

static void test_pacing_avoids_throttling(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o[6] = {};
        struct connect_stats st;

        REQUIRE_FAKE();
        env_for_fake();
        /* The fake allows 10/s burst 2 per operation; paced at 4/s burst
         * 2 the client never sees a 429. */
        admin_post("/admin/config", "{\"rate\": 10, \"burst\": 2}");
        opts = fake_options();
        opts.rates[CONNECT_OP_SEARCH] = 4;
        opts.rate_burst = 2;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        for (size_t i = 0; i < ELEMENTSOF(o); i++)
                assert_int_equal(connect_search_available(c, REGION, TARGET, "US", "DID", NULL, 1, on_result, &o[i]), 0);
        assert_int_equal(connect_client_in_flight(c), ELEMENTSOF(o));
        wait_all(e, c);
        for (size_t i = 0; i < ELEMENTSOF(o); i++) {
                EXPECT_OK(&o[i]);
                assert_int_equal(o[i].attempts, 1);
                outcome_clear(&o[i]);
        }
        connect_client_stats(c, &st);
        assert_int_equal(st.throttled[CONNECT_OP_SEARCH], 0);
        assert_int_equal(st.calls[CONNECT_OP_SEARCH], ELEMENTSOF(o));
        admin_post("/admin/config", "{\"rate\": 0, \"burst\": 5}");
}

static void test_faults_retried(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};
        char token[37];
        json_t *j, *n;
        size_t i, claims = 0;
        _cleanup_(freep) char *phone = NULL;

        REQUIRE_FAKE();
        env_for_fake();
        opts = fake_options();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);

        /* a dropped connection */
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"drop\", \"op\": \"ListPhoneNumbersV2\"}]}");
        assert_int_equal(connect_list_numbers(c, REGION, TARGET, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.attempts, 2);

        /* a 500 */
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"error500\", \"op\": \"SearchAvailablePhoneNumbers\"}]}");
        assert_int_equal(connect_search_available(c, REGION, TARGET, "US", "DID", NULL, 1, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.attempts, 2);
        phone = strdup(o.available[0]);

        /* A claim whose 200 arrives truncated, then one whose connection
         * drops after the fake acted: both retried with the same token,
         * one number claimed. */
        admin_post("/admin/reset", "{}");
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"truncate\", \"op\": \"ClaimPhoneNumber\"},"
                                    " {\"fault\": \"drop_after\", \"op\": \"ClaimPhoneNumber\"}]}");
        assert_int_equal(uuid_random(token), 0);
        assert_int_equal(connect_claim_number(c, REGION, TARGET, phone, NULL, NULL, 0, token, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        /* The dropped request may have been on a reused connection,
         * which curl itself replays once on a fresh one: the fake sees
         * three claims either way, we count two or three attempts. */
        assert_true(o.attempts == 2 || o.attempts == 3);
        assert_non_null(o.id);

        j = admin("GET", "/admin/requests", NULL);
        json_array_foreach(json_object_get(j, "requests"), i, n) {
                if (!streq_ptr(json_string_value(json_object_get(n, "op")), "ClaimPhoneNumber"))
                        continue;
                claims++;
                assert_string_equal(json_string_value(json_object_get(n, "client_token")), token);
        }
        json_decref(j);
        assert_int_equal(claims, 3);
        j = admin("GET", "/admin/numbers", NULL);
        size_t held = 0;
        json_array_foreach(json_object_get(j, "numbers"), i, n)
                if (streq_ptr(json_string_value(json_object_get(n, "phone_number")), phone))
                        held++;
        json_decref(j);
        assert_int_equal(held, 1);

        /* 5xx past max attempts: transient, with AWS's code */
        admin_post("/admin/config",
                   "{\"fault_next\": [{\"fault\": \"error500\", \"op\": \"DescribePhoneNumber\", \"count\": 5}]}");
        assert_int_equal(connect_describe_number(c, REGION, o.id, on_result, &o), 0);
        wait_done(e, &o);
        assert_int_equal(o.kind, CONNECT_ERROR_TRANSIENT);
        assert_int_equal(o.r, -EIO);
        assert_int_equal(o.attempts, 3);
        assert_int_equal(o.http_status, 500);
        assert_string_equal(o.code, "InternalServiceException");
        admin_post("/admin/config", "{\"fault_next\": []}");
        outcome_clear(&o);
}

static void test_max_attempts_env(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct connect_client_options opts;
        struct outcome o = {};

        REQUIRE_FAKE();
        env_for_fake();
        setenv("AWS_MAX_ATTEMPTS", "1", 1);
        opts = fake_options();
        opts.max_attempts = 5; /* the environment overrides (connect.h) */
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        unsetenv("AWS_MAX_ATTEMPTS");
        admin_post("/admin/config", "{\"fault_next\": [{\"fault\": \"drop\", \"op\": \"ListPhoneNumbersV2\"}]}");
        assert_int_equal(connect_list_numbers(c, REGION, TARGET, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        assert_int_equal(o.kind, CONNECT_ERROR_TRANSIENT);
        assert_int_equal(o.r, -ECONNRESET);
        assert_int_equal(o.attempts, 1);
        outcome_clear(&o);
}

/* ---- http.c against a scripted TLS server ---- */

struct tls_server {
        int fd;
        int port;
        SSL_CTX *ctx;
        pthread_t thread;
        const char *response;
        size_t response_len;
        char request[4096];   /* head of the request received */
};

static void *tls_server_main(void *p) {
        struct tls_server *s = p;
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0)
                return NULL;
        SSL *ssl = SSL_new(s->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
                size_t got = 0;
                while (got < sizeof s->request - 1 && !strstr(s->request, "\r\n\r\n")) {
                        int k = SSL_read(ssl, s->request + got, (int) (sizeof s->request - 1 - got));
                        if (k <= 0)
                                break;
                        got += (size_t) k;
                        s->request[got] = 0;
                }
                for (size_t off = 0; off < s->response_len;) {
                        int k = SSL_write(ssl, s->response + off, (int) MIN(s->response_len - off, (size_t) 16384));
                        if (k <= 0)
                                break; /* the client gave up (cap reached) */
                        off += (size_t) k;
                }
                SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(fd);
        return NULL;
}

static int listen_loopback(int *ret_port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof sa;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(fd, 8), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

/* A server context with the fake's certificate. */
static SSL_CTX *server_ctx(void) {
        _cleanup_(freep) char *cert = strprintf("%s/server.pem", fake.dir);
        _cleanup_(freep) char *key = strprintf("%s/server.key", fake.dir);
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

        assert_non_null(ctx);
        assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
        return ctx;
}

/* Stops a server thread blocked in accept(): sets *stop, connects once. */
static void server_wake(volatile bool *stop, int port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                  .sin_port = htons((uint16_t) port) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        *stop = true;
        if (fd >= 0) {
                (void) connect(fd, (struct sockaddr *) &sa, sizeof sa);
                close(fd);
        }
}

static void tls_server_start(struct tls_server *s, const char *response, size_t len) {
        *s = (struct tls_server){ .response = response, .response_len = len };
        s->ctx = server_ctx();
        s->fd = listen_loopback(&s->port);
        assert_int_equal(pthread_create(&s->thread, NULL, tls_server_main, s), 0);
}

static void tls_server_stop(struct tls_server *s) {
        pthread_join(s->thread, NULL);
        close(s->fd);
        SSL_CTX_free(s->ctx);
}

/* A TLS server that answers every request (one per connection) with the
 * next of its bodies, round and round, until stopped. */
struct script_server {
        int fd, port;
        SSL_CTX *ctx;
        pthread_t thread;
        const char *const *bodies;
        size_t n_bodies;
        unsigned served;
        volatile bool stop;
};

static void *script_server_main(void *p) {
        struct script_server *s = p;
        for (;;) {
                int fd = accept(s->fd, NULL, NULL);
                if (fd < 0 || s->stop) {
                        if (fd >= 0)
                                close(fd);
                        return NULL;
                }
                SSL *ssl = SSL_new(s->ctx);
                SSL_set_fd(ssl, fd);
                if (SSL_accept(ssl) == 1) {
                        char req[8192] = "";
                        size_t got = 0, want = SIZE_MAX;
                        while (got < sizeof req - 1) {
                                char *end = strstr(req, "\r\n\r\n");
                                if (end && want == SIZE_MAX) {
                                        const char *cl = strcasestr(req, "content-length:");
                                        want = (size_t) (end + 4 - req) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
                                }
                                if (got >= want)
                                        break;
                                int k = SSL_read(ssl, req + got, (int) (sizeof req - 1 - got));
                                if (k <= 0)
                                        break;
                                got += (size_t) k;
                                req[got] = 0;
                        }
                        const char *body = s->bodies[s->served++ % s->n_bodies];
                        _cleanup_(freep) char *resp = strprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                                                "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                                                strlen(body), body);
                        SSL_write(ssl, resp, (int) strlen(resp));
                        SSL_shutdown(ssl);
                }
                SSL_free(ssl);
                close(fd);
        }
}

static void script_server_start(struct script_server *s, const char *const *bodies, size_t n) {
        *s = (struct script_server){ .bodies = bodies, .n_bodies = n };
        s->ctx = server_ctx();
        s->fd = listen_loopback(&s->port);
        assert_int_equal(pthread_create(&s->thread, NULL, script_server_main, s), 0);
}

static void script_server_stop(struct script_server *s) {
        server_wake(&s->stop, s->port);
        pthread_join(s->thread, NULL);
        close(s->fd);
        SSL_CTX_free(s->ctx);
}

#define LIST_PAGE(token, a, b)                                                                            \
        "{\"ListPhoneNumbersSummaryList\":[{\"PhoneNumberId\":\"" a "\",\"PhoneNumber\":\"+12065550101\"}," \
        "{\"PhoneNumberId\":\"" b "\",\"PhoneNumber\":\"+12065550102\"}],\"NextToken\":\"" token "\"}"

/* A NextToken cycle A -> B -> A (never an immediate repeat) ends the list
 * at the first token seen again, after the pages before it were handed
 * over one by one; a list longer than max_numbers ends before the page
 * that passes it. Either way the outcome says which bound it hit. */
static void test_list_bounds(_unused_ void **state) {
        static const char *const cycle[] = { LIST_PAGE("A", "n1", "n2"), LIST_PAGE("B", "n3", "n4") };
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        _cleanup_(freep) char *url = NULL;
        struct connect_client_options opts;
        struct script_server srv;
        struct outcome o = {};
        const char *big = "arn:aws:connect:us-east-1:111122223333:instance/b0b0b0b0-1111-4222-8333-444455556666";

        REQUIRE_FAKE();
        env_for_fake();
        script_server_start(&srv, cycle, ELEMENTSOF(cycle));
        url = strprintf("https://127.0.0.1:%d", srv.port);
        opts = fake_options();
        opts.endpoint_url = url;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        assert_int_equal(connect_list_numbers(c, REGION, TARGET, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        script_server_stop(&srv);
        assert_int_equal(o.r, -ELOOP);
        assert_int_equal(o.kind, CONNECT_ERROR_LIST_BOUND);
        assert_string_equal(o.message, "NextToken repeated after 3 pages");
        assert_int_equal(o.pages_seen, 2);
        assert_int_equal(o.attempts, 3);
        outcome_clear(&o);
        c = connect_client_free(c);

        /* 2345 numbers, a cap of 1500: the first page of 1000 is handed
         * over, the second would pass the cap */
        strv_free(seed_generate(big, 2345));
        opts = fake_options();
        assert_int_equal(connect_client_new(e, &opts, &c), 0);
        assert_int_equal(connect_list_numbers(c, REGION, big,
                                              &(struct connect_list_options){ .on_page = on_page, .max_numbers = 1500 },
                                              on_result, &o),
                         0);
        wait_done(e, &o);
        assert_int_equal(o.r, -EFBIG);
        assert_int_equal(o.kind, CONNECT_ERROR_LIST_BOUND);
        assert_string_equal(o.message, "more than 1500 numbers");
        assert_int_equal(o.pages_seen, 1);
        assert_int_equal(o.n_numbers, 1000);
        assert_false(o.have_digest);

        /* the same list under the default cap: every number */
        assert_int_equal(connect_list_numbers(c, REGION, big, &plain_list, on_result, &o), 0);
        wait_done(e, &o);
        EXPECT_OK(&o);
        assert_int_equal(o.n_numbers, 2345);
        assert_int_equal(o.pages_seen, 3);
        outcome_clear(&o);
}

struct http_outcome {
        unsigned calls;
        int r;
        long status;
        size_t body_len;
        char *request_id, *error_type, *retry_after, *error_text;
        bool body_ok;
};

static void http_outcome_clear(struct http_outcome *o) {
        free(o->request_id);
        free(o->error_type);
        free(o->retry_after);
        free(o->error_text);
        *o = (struct http_outcome){};
}

static void on_http(int r, const struct http_response *resp, const char *error_text, void *userdata) {
        struct http_outcome *o = userdata;
        o->calls++;
        o->r = r;
        assert_non_null(resp);
        assert_non_null(resp->body);
        o->status = resp->status;
        o->body_len = resp->body_len;
        o->body_ok = resp->body[resp->body_len] == 0;
        o->request_id = strdup_or_null(resp->request_id);
        o->error_type = strdup_or_null(resp->error_type);
        o->retry_after = strdup_or_null(resp->retry_after);
        o->error_text = strdup_or_null(error_text);
}

static void http_wait(sd_event *e, struct http_client *h) {
        usec_t deadline = clock_boottime_usec() + 30 * USEC_PER_SEC;
        while (http_client_in_flight(h) > 0) {
                if (clock_boottime_usec() > deadline)
                        fail_msg("http request still in flight after 30 s");
                assert_true(sd_event_run(e, USEC_PER_SEC) >= 0);
        }
}

/* A 64 KiB chunked body: its length is not announced, so only the write
 * callback can enforce the cap. */
static char *chunked_response(size_t *ret_len) {
        size_t chunks = 64, chunk = 1024;
        const char head[] = "HTTP/1.1 200 OK\r\n"
                            "Content-Type: application/json\r\n"
                            "Transfer-Encoding: chunked\r\n"
                            "X-AMZN-REQUESTID: req-123\r\n"
                            "x-amzn-errortype:   Foo:http://internal.example/  \r\n"
                            "X-Amz-Retry-After: 1500\r\n"
                            "Connection: close\r\n\r\n";
        size_t len = strlen(head) + chunks * (5 + chunk + 2) + 5;
        char *r = malloc(len + 1), *p;
        assert_non_null(r);
        p = r;
        memcpy(p, head, strlen(head));
        p += strlen(head);
        for (size_t i = 0; i < chunks; i++) {
                memcpy(p, "400\r\n", 5);
                p += 5;
                memset(p, 'x', chunk);
                p += chunk;
                memcpy(p, "\r\n", 2);
                p += 2;
        }
        memcpy(p, "0\r\n\r\n", 5);
        p += 5;
        *p = 0;
        *ret_len = (size_t) (p - r);
        return r;
}

static void test_http_cap_and_headers(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(http_client_freep) struct http_client *h = NULL;
        _cleanup_(freep) char *resp = NULL, *url = NULL;
        struct http_outcome o = {};
        struct tls_server s;
        char *headers[] = { (char *) "X-Test: 1", NULL };
        size_t len;

        REQUIRE_FAKE();
        resp = chunked_response(&len);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_client_new(e, fake.ca_file, &h), 0);

        /* Under the cap: whole body, headers captured case-insensitively. */
        tls_server_start(&s, resp, len);
        url = strprintf("https://127.0.0.1:%d/phone-number/x?y=1", s.port);
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url, .headers = headers }, on_http,
                                     &o),
                         0);
        assert_int_equal(o.calls, 0);
        http_wait(e, h);
        tls_server_stop(&s);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.r, 0);
        assert_int_equal(o.status, 200);
        assert_int_equal(o.body_len, 65536);
        assert_true(o.body_ok);
        assert_string_equal(o.request_id, "req-123");
        assert_string_equal(o.error_type, "Foo:http://internal.example/");
        assert_string_equal(o.retry_after, "1500");
        assert_non_null(strstr(s.request, "GET /phone-number/x?y=1 HTTP/1.1\r\n"));
        assert_non_null(strstr(s.request, "User-Agent: connect-numbersd/"));
        assert_non_null(strstr(s.request, "X-Test: 1\r\n"));
        assert_null(strstr(s.request, "Expect:"));
        http_outcome_clear(&o);

        /* Over the cap: -EFBIG from the write callback. */
        tls_server_start(&s, resp, len);
        free(url);
        url = strprintf("https://127.0.0.1:%d/", s.port);
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url, .max_response_bytes = 10000 },
                                     on_http, &o),
                         0);
        http_wait(e, h);
        tls_server_stop(&s);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.r, -EFBIG);
        assert_true(o.body_len <= 10000);
        assert_true(o.body_ok);
        http_outcome_clear(&o);
}

static void test_http_delete_and_body(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(http_client_freep) struct http_client *h = NULL;
        _cleanup_(freep) char *url = NULL;
        struct http_outcome o = {};
        struct tls_server s;
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

        REQUIRE_FAKE();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_client_new(e, fake.ca_file, &h), 0);

        /* DELETE without a body still says Content-Length: 0 and no
         * invented Content-Type. */
        tls_server_start(&s, ok, strlen(ok));
        url = strprintf("https://127.0.0.1:%d/tags/a%%3Ab", s.port);
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "DELETE", .url = url }, on_http, &o), 0);
        http_wait(e, h);
        tls_server_stop(&s);
        assert_int_equal(o.r, 0);
        assert_int_equal(o.body_len, 0);
        assert_non_null(strstr(s.request, "DELETE /tags/a%3Ab HTTP/1.1\r\n"));
        assert_non_null(strcasestr(s.request, "Content-Length: 0\r\n"));
        assert_null(strcasestr(s.request, "Content-Type"));
        http_outcome_clear(&o);

        /* PUT with a JSON body */
        char *hdrs[] = { (char *) "Content-Type: application/json", NULL };
        tls_server_start(&s, ok, strlen(ok));
        free(url);
        url = strprintf("https://127.0.0.1:%d/phone-number/x/metadata", s.port);
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "PUT", .url = url, .headers = hdrs,
                                                                .body = "{\"a\":1}", .body_len = 7 },
                                     on_http, &o),
                         0);
        http_wait(e, h);
        tls_server_stop(&s);
        assert_int_equal(o.r, 0);
        assert_non_null(strstr(s.request, "PUT /phone-number/x/metadata HTTP/1.1\r\n"));
        assert_non_null(strcasestr(s.request, "Content-Length: 7\r\n"));
        assert_non_null(strstr(s.request, "Content-Type: application/json\r\n"));
        http_outcome_clear(&o);
}

static void test_http_errors(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(http_client_freep) struct http_client *h = NULL;
        _cleanup_(freep) char *url = NULL;
        struct http_outcome o = {}, o2 = {};
        int port, fd;
        char *bad_headers[] = { (char *) "X-Evil: a\r\nX-Injected: b", NULL };

        REQUIRE_FAKE();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_client_new(e, fake.ca_file, &h), 0);

        /* argument errors come back from http_submit, no callback */
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET" }, on_http, &o), -EINVAL);
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "get", .url = "https://x/" }, on_http, &o),
                         -EINVAL);
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = "https://x/", .headers = bad_headers },
                                     on_http, &o),
                         -EINVAL);
        assert_int_equal(http_client_in_flight(h), 0);

        /* plain http is refused, from the loop */
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = "http://127.0.0.1:1/" }, on_http, &o),
                         0);
        assert_int_equal(o.calls, 0);
        http_wait(e, h);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.r, -EPROTONOSUPPORT);
        assert_non_null(o.error_text);
        http_outcome_clear(&o);

        /* A server that accepts TCP but never speaks: timeout. */
        fd = listen_loopback(&port);
        url = strprintf("https://127.0.0.1:%d/", port);
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url,
                                                                .timeout_usec = 300 * USEC_PER_MSEC },
                                     on_http, &o),
                         0);
        http_wait(e, h);
        assert_int_equal(o.r, -ETIMEDOUT);
        http_outcome_clear(&o);

        /* Cancel: callbacks run, with -ECANCELED, before cancel returns. */
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url }, on_http, &o), 0);
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url }, on_http, &o2), 0);
        assert_true(sd_event_run(e, 50 * USEC_PER_MSEC) >= 0);
        assert_int_equal(http_client_in_flight(h), 2);
        http_client_cancel_all(h);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.r, -ECANCELED);
        assert_int_equal(o2.calls, 1);
        assert_int_equal(o2.r, -ECANCELED);
        assert_int_equal(http_client_in_flight(h), 0);
        http_outcome_clear(&o);
        http_outcome_clear(&o2);

        /* Free with a request in flight: no callback, ever. */
        assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url }, on_http, &o), 0);
        assert_true(sd_event_run(e, 50 * USEC_PER_MSEC) >= 0);
        h = http_client_free(h);
        for (int i = 0; i < 3; i++)
                assert_true(sd_event_run(e, 20 * USEC_PER_MSEC) >= 0);
        assert_int_equal(o.calls, 0);
        close(fd);
}

/* A TLS server that takes delay_ms to answer each request, many
 * connections at once (one thread each). */
struct slow_server {
        int fd, port;
        SSL_CTX *ctx;
        unsigned delay_ms;
        pthread_t thread, workers[128];
        size_t n_workers;
        volatile bool stop;
};

struct slow_conn {
        struct slow_server *s;
        int fd;
};

static void *slow_conn_main(void *p) {
        struct slow_conn *sc = p;
        SSL *ssl = SSL_new(sc->s->ctx);
        SSL_set_fd(ssl, sc->fd);
        if (SSL_accept(ssl) == 1) {
                char req[4096] = "";
                size_t got = 0;
                while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
                        int k = SSL_read(ssl, req + got, (int) (sizeof req - 1 - got));
                        if (k <= 0)
                                break;
                        got += (size_t) k;
                        req[got] = 0;
                }
                usleep(sc->s->delay_ms * 1000);
                const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
                SSL_write(ssl, resp, (int) strlen(resp));
                SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(sc->fd);
        free(sc);
        return NULL;
}

static void *slow_server_main(void *p) {
        struct slow_server *s = p;
        for (;;) {
                int fd = accept(s->fd, NULL, NULL);
                if (fd < 0 || s->stop || s->n_workers >= ELEMENTSOF(s->workers)) {
                        if (fd >= 0)
                                close(fd);
                        return NULL;
                }
                struct slow_conn *sc = malloc(sizeof *sc);
                if (!sc) {
                        close(fd);
                        continue;
                }
                *sc = (struct slow_conn){ .s = s, .fd = fd };
                if (pthread_create(&s->workers[s->n_workers], NULL, slow_conn_main, sc) != 0) {
                        close(fd);
                        free(sc);
                        continue;
                }
                s->n_workers++;
        }
}

static void slow_server_start(struct slow_server *s, unsigned delay_ms) {
        *s = (struct slow_server){ .delay_ms = delay_ms };
        s->ctx = server_ctx();
        s->fd = listen_loopback(&s->port);
        assert_int_equal(pthread_create(&s->thread, NULL, slow_server_main, s), 0);
}

static void slow_server_stop(struct slow_server *s) {
        server_wake(&s->stop, s->port);
        pthread_join(s->thread, NULL);
        for (size_t i = 0; i < s->n_workers; i++)
                pthread_join(s->workers[i], NULL);
        close(s->fd);
        SSL_CTX_free(s->ctx);
}

/* A request's timeout runs from when it is sent, not from when it was
 * queued: 40 requests at once to a host that takes 600 ms each, through
 * at most 8 connections per host, take about 3 s in all; with a 2 s
 * timeout each, none may time out. (libcurl starts CURLOPT_TIMEOUT_MS when
 * a transfer is added to the multi handle, also while it waits for one of
 * the host's connections, then fails it as it leaves the queue: "Resolving
 * timed out after 0 milliseconds".) */
static void test_http_timeout_starts_when_sent(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(http_client_freep) struct http_client *h = NULL;
        _cleanup_(freep) char *url = NULL;
        struct http_outcome o[40] = {};
        struct slow_server srv;

        REQUIRE_FAKE();
        slow_server_start(&srv, 600);
        url = strprintf("https://127.0.0.1:%d/", srv.port);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_client_new(e, fake.ca_file, &h), 0);
        for (size_t i = 0; i < ELEMENTSOF(o); i++)
                assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url,
                                                                        .timeout_usec = 2 * USEC_PER_SEC },
                                             on_http, &o[i]),
                                 0);
        assert_int_equal(http_client_in_flight(h), ELEMENTSOF(o));
        http_wait(e, h);
        for (size_t i = 0; i < ELEMENTSOF(o); i++) {
                if (o[i].r != 0)
                        fail_msg("request %zu: %s (%s)", i, strerror(-o[i].r), o[i].error_text ?: "-");
                assert_int_equal(o[i].calls, 1);
                assert_int_equal(o[i].status, 200);
                http_outcome_clear(&o[i]);
        }

        /* Cancelling reaches the requests still waiting for a connection
         * too, and freeing with some waiting calls nobody back. */
        for (size_t i = 0; i < 20; i++)
                assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url }, on_http, &o[i]), 0);
        assert_true(sd_event_run(e, 50 * USEC_PER_MSEC) >= 0);
        http_client_cancel_all(h);
        assert_int_equal(http_client_in_flight(h), 0);
        for (size_t i = 0; i < 20; i++) {
                assert_int_equal(o[i].calls, 1);
                assert_int_equal(o[i].r, -ECANCELED);
                http_outcome_clear(&o[i]);
        }
        for (size_t i = 0; i < 20; i++)
                assert_int_equal(http_submit(h, &(struct http_request){ .method = "GET", .url = url }, on_http, &o[i]), 0);
        assert_true(sd_event_run(e, 50 * USEC_PER_MSEC) >= 0);
        h = http_client_free(h);
        for (size_t i = 0; i < 20; i++)
                assert_int_equal(o[i].calls, 0);
        slow_server_stop(&srv);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_list_pages),
                cmocka_unit_test(test_list_digest),
                cmocka_unit_test(test_session_credentials),
                cmocka_unit_test(test_wrong_secret),
                cmocka_unit_test(test_untrusted_certificate),
                cmocka_unit_test(test_throttling),
                cmocka_unit_test(test_throttled_until_deadline),
                cmocka_unit_test(test_pacing_avoids_throttling),
                cmocka_unit_test(test_faults_retried),
                cmocka_unit_test(test_max_attempts_env),
                cmocka_unit_test(test_list_bounds),
                cmocka_unit_test(test_http_cap_and_headers),
                cmocka_unit_test(test_http_delete_and_body),
                cmocka_unit_test(test_http_errors),
                cmocka_unit_test(test_http_timeout_starts_when_sent),
        };
        return cmocka_run_group_tests(tests, fake_start, fake_stop);
}
