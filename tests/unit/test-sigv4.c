/* test-sigv4.c: SigV4 against the AWS test suite (tests/data/sigv4-testsuite,
 * the botocore-vendored copy: raw .req in, .creq/.sts/.authz compared byte
 * for byte) and against signed Connect requests computed with botocore
 * (tests/data/connect-sigv4-vectors.json: double-encoded ARN paths, query
 * lists, a session token). Paths are relative to the repository root, the
 * working directory of `make check-unit`. */
#include <dirent.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "aws/sigv4.h"

#define SUITE_DIR "tests/data/sigv4-testsuite"
#define VECTORS_FILE "tests/data/connect-sigv4-vectors.json"
#define SUITE_AKID "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_NOW 1440938160ULL /* 2015-08-30T12:36:00Z */
#define STS_TOKEN                                                                                           \
        "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRq" \
        "TflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9H" \
        "FvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr" \
        "4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

/* Every case of the suite. None is skipped: the normalize-path cases apply
 * to Connect (every service but S3 normalises the path, README of the
 * suite copy), and both post-sts-token cases are signed as their readme
 * describes. token: the credentials' session token. */
static const struct suite_case {
        const char *dir; /* relative to SUITE_DIR */
        const char *name;
        const char *token;
} suite_cases[] = {
        { "get-header-key-duplicate", "get-header-key-duplicate", NULL },
        { "get-header-value-multiline", "get-header-value-multiline", NULL },
        { "get-header-value-order", "get-header-value-order", NULL },
        { "get-header-value-trim", "get-header-value-trim", NULL },
        { "get-unreserved", "get-unreserved", NULL },
        { "get-utf8", "get-utf8", NULL },
        { "get-vanilla", "get-vanilla", NULL },
        { "get-vanilla-empty-query-key", "get-vanilla-empty-query-key", NULL },
        { "get-vanilla-query", "get-vanilla-query", NULL },
        { "get-vanilla-query-order-encoded", "get-vanilla-query-order-encoded", NULL },
        { "get-vanilla-query-order-key", "get-vanilla-query-order-key", NULL },
        { "get-vanilla-query-order-key-case", "get-vanilla-query-order-key-case", NULL },
        { "get-vanilla-query-order-value", "get-vanilla-query-order-value", NULL },
        { "get-vanilla-query-unreserved", "get-vanilla-query-unreserved", NULL },
        { "get-vanilla-utf8-query", "get-vanilla-utf8-query", NULL },
        /* the .req has no token header: the signer must add and sign it */
        { "get-vanilla-with-session-token", "get-vanilla-with-session-token",
          "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267" },
        { "post-header-key-case", "post-header-key-case", NULL },
        { "post-header-key-sort", "post-header-key-sort", NULL },
        { "post-header-value-case", "post-header-value-case", NULL },
        { "post-vanilla", "post-vanilla", NULL },
        { "post-vanilla-empty-query-value", "post-vanilla-empty-query-value", NULL },
        { "post-vanilla-query", "post-vanilla-query", NULL },
        { "post-x-www-form-urlencoded", "post-x-www-form-urlencoded", NULL },
        { "post-x-www-form-urlencoded-parameters", "post-x-www-form-urlencoded-parameters", NULL },
        { "normalize-path/get-relative", "get-relative", NULL },
        { "normalize-path/get-relative-relative", "get-relative-relative", NULL },
        { "normalize-path/get-slash", "get-slash", NULL },
        { "normalize-path/get-slash-dot-slash", "get-slash-dot-slash", NULL },
        { "normalize-path/get-slash-pointless-dot", "get-slash-pointless-dot", NULL },
        { "normalize-path/get-slashes", "get-slashes", NULL },
        { "normalize-path/get-space", "get-space", NULL },
        { "normalize-path/get-special-character", "get-special-character", NULL },
        /* the token header is in the .req and signed as given */
        { "post-sts-token/post-sts-header-before", "post-sts-header-before", STS_TOKEN },
        /* the token is added to the request after signing (readme.txt), so
         * the request is signed with credentials that have none */
        { "post-sts-token/post-sts-header-after", "post-sts-header-after", NULL },
};
#define SUITE_EXPECTED_CASES 34
#define CONNECT_EXPECTED_CASES 8

static char *read_text(const char *path, size_t *ret_len) {
        char *s = NULL;
        int r = read_full_file(path, 1 << 20, &s, ret_len);
        if (r < 0)
                fail_msg("cannot read %s: %s", path, strerror(-r));
        return s;
}

static char *read_case_file(const struct suite_case *c, const char *ext) {
        _cleanup_(freep) char *path = strprintf("%s/%s/%s.%s", SUITE_DIR, c->dir, c->name, ext);
        assert_non_null(path);
        return read_text(path, NULL);
}

/* A raw request of the suite: "METHOD target HTTP/1.1", header lines
 * ("Name:value", folded lines start with whitespace), a blank line, the
 * body. The target may contain spaces (normalize-path/get-space). */
struct raw_request {
        char *method, *path, *query;
        char *names[32], *values[32];
        struct sigv4_header headers[32];
        size_t n_headers;
        char *body;
        size_t body_len;
};

static void raw_request_done(struct raw_request *r) {
        free(r->method);
        free(r->path);
        free(r->query);
        for (size_t i = 0; i < r->n_headers; i++) {
                free(r->names[i]);
                free(r->values[i]);
        }
        free(r->body);
        memset(r, 0, sizeof *r);
}

static void raw_request_parse(const char *text, struct raw_request *ret) {
        struct raw_request r = {};
        const char *end_head = strstr(text, "\n\n");
        size_t head_len = end_head ? (size_t) (end_head - text) : strlen(text);
        const char *body = end_head ? end_head + 2 : "";

        const char *eol = memchr(text, '\n', head_len);
        size_t first_len = eol ? (size_t) (eol - text) : head_len;
        const char *sp1 = memchr(text, ' ', first_len);
        const char *sp2 = memrchr(text, ' ', first_len);
        assert_non_null(sp1);
        assert_true(sp2 > sp1);
        r.method = strndup(text, (size_t) (sp1 - text));
        _cleanup_(freep) char *target = strndup(sp1 + 1, (size_t) (sp2 - sp1 - 1));
        char *q = strchr(target, '?');
        if (q) {
                r.query = strdup(q + 1);
                *q = 0;
        }
        r.path = strdup(target);

        const char *p = eol ? eol + 1 : text + head_len;
        while (p < text + head_len) {
                const char *le = memchr(p, '\n', (size_t) (text + head_len - p));
                size_t ll = le ? (size_t) (le - p) : (size_t) (text + head_len - p);
                if (*p == ' ' || *p == '\t') {
                        /* folded value: keep the line break, the signer collapses it */
                        assert_true(r.n_headers > 0);
                        char *v = r.values[r.n_headers - 1];
                        char *nv = strprintf("%s\n%.*s", v, (int) ll, p);
                        assert_non_null(nv);
                        free(v);
                        r.values[r.n_headers - 1] = nv;
                } else {
                        const char *colon = memchr(p, ':', ll);
                        assert_non_null(colon);
                        assert_true(r.n_headers < ELEMENTSOF(r.names));
                        r.names[r.n_headers] = strndup(p, (size_t) (colon - p));
                        r.values[r.n_headers] = strndup(colon + 1, ll - (size_t) (colon - p) - 1);
                        r.n_headers++;
                }
                p += ll + 1;
        }
        for (size_t i = 0; i < r.n_headers; i++)
                r.headers[i] = (struct sigv4_header) { r.names[i], r.values[i] };
        r.body = strdup(body);
        r.body_len = strlen(body);
        *ret = r;
}

static void sigv4_request_from_raw(const struct raw_request *raw, struct sigv4_request *ret) {
        *ret = (struct sigv4_request) {
                .method = raw->method,
                .path = raw->path,
                .query = raw->query,
                .headers = raw->headers,
                .n_headers = raw->n_headers,
                .body = raw->body,
                .body_len = raw->body_len,
        };
}

/* Drops the headers named name (case-insensitively) from raw. */
static void raw_request_drop_header(struct raw_request *raw, const char *name) {
        size_t j = 0;
        for (size_t i = 0; i < raw->n_headers; i++) {
                if (strcasecmp(raw->names[i], name) == 0) {
                        free(raw->names[i]);
                        free(raw->values[i]);
                        continue;
                }
                raw->names[j] = raw->names[i];
                raw->values[j] = raw->values[i];
                raw->headers[j] = (struct sigv4_header) { raw->names[j], raw->values[j] };
                j++;
        }
        raw->n_headers = j;
}

static void run_suite_case(const struct suite_case *c) {
        _cleanup_(freep) char *req_text = read_case_file(c, "req");
        _cleanup_(freep) char *creq = read_case_file(c, "creq");
        _cleanup_(freep) char *sts = read_case_file(c, "sts");
        _cleanup_(freep) char *authz = read_case_file(c, "authz");
        struct raw_request raw;
        struct sigv4_request req;
        struct sigv4_signature sig = {};
        struct aws_credentials creds = {
                .access_key_id = (char *) SUITE_AKID,
                .secret_access_key = (char *) SUITE_SECRET,
                .session_token = (char *) c->token,
        };

        raw_request_parse(req_text, &raw);
        sigv4_request_from_raw(&raw, &req);
        int r = sigv4_sign(&req, &creds, "us-east-1", "service", SUITE_NOW, true, &sig);
        if (r < 0)
                fail_msg("%s: sigv4_sign: %s", c->dir, strerror(-r));
        if (!streq(sig.canonical_request, creq))
                fail_msg("%s: canonical request\n--- got\n%s\n--- expected\n%s", c->dir, sig.canonical_request, creq);
        if (!streq(sig.string_to_sign, sts))
                fail_msg("%s: string to sign\n--- got\n%s\n--- expected\n%s", c->dir, sig.string_to_sign, sts);
        if (!streq(sig.authorization, authz))
                fail_msg("%s: authorization\n--- got\n%s\n--- expected\n%s", c->dir, sig.authorization, authz);
        assert_string_equal(sig.amz_date, "20150830T123600Z");
        sigv4_signature_clear(&sig);
        assert_null(sig.authorization);
        raw_request_done(&raw);
}

/* Counts the .req files under dir and checks that each one is in the table:
 * a case added to (or lost from) the data directory fails the test. */
static size_t count_req_files(const char *dir, const char *rel) {
        _cleanup_(freep) char *path = rel ? strprintf("%s/%s", dir, rel) : strdup(dir);
        assert_non_null(path);
        DIR *d = opendir(path);
        if (!d)
                fail_msg("cannot open %s", path);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                _cleanup_(freep) char *sub = rel ? strprintf("%s/%s", rel, de->d_name) : strdup(de->d_name);
                _cleanup_(freep) char *full = strprintf("%s/%s", dir, sub);
                struct stat st;
                assert_non_null(sub);
                assert_non_null(full);
                assert_int_equal(stat(full, &st), 0);
                if (S_ISDIR(st.st_mode)) {
                        n += count_req_files(dir, sub);
                        continue;
                }
                size_t l = strlen(de->d_name);
                if (l < 4 || !streq(de->d_name + l - 4, ".req"))
                        continue;
                bool listed = false;
                for (size_t i = 0; i < ELEMENTSOF(suite_cases); i++) {
                        _cleanup_(freep) char *want =
                                strprintf("%s/%s.req", suite_cases[i].dir, suite_cases[i].name);
                        if (streq(want, sub))
                                listed = true;
                }
                if (!listed)
                        fail_msg("%s is not in the case table", sub);
                n++;
        }
        closedir(d);
        return n;
}

static void test_suite(_unused_ void **state) {
        size_t ran = 0;
        for (size_t i = 0; i < ELEMENTSOF(suite_cases); i++) {
                run_suite_case(&suite_cases[i]);
                ran++;
        }
        assert_int_equal(ran, SUITE_EXPECTED_CASES);
        assert_int_equal(count_req_files(SUITE_DIR, NULL), SUITE_EXPECTED_CASES);
}

/* post-sts-header-before with the token header taken out of the request:
 * the signer adds x-amz-security-token from the credentials. */
static void test_session_token_added_by_signer(_unused_ void **state) {
        const struct suite_case c = { "post-sts-token/post-sts-header-before", "post-sts-header-before", STS_TOKEN };
        _cleanup_(freep) char *req_text = read_case_file(&c, "req");
        _cleanup_(freep) char *creq = read_case_file(&c, "creq");
        _cleanup_(freep) char *authz = read_case_file(&c, "authz");
        struct raw_request raw;
        struct sigv4_request req;
        struct sigv4_signature sig = {};
        struct aws_credentials creds = { (char *) SUITE_AKID, (char *) SUITE_SECRET, (char *) STS_TOKEN, 0, NULL };

        raw_request_parse(req_text, &raw);
        size_t before = raw.n_headers;
        raw_request_drop_header(&raw, "X-Amz-Security-Token");
        assert_int_equal(raw.n_headers, before - 1);
        sigv4_request_from_raw(&raw, &req);
        assert_int_equal(sigv4_sign(&req, &creds, "us-east-1", "service", SUITE_NOW, true, &sig), 0);
        assert_string_equal(sig.canonical_request, creq);
        assert_string_equal(sig.authorization, authz);
        sigv4_signature_clear(&sig);
        raw_request_done(&raw);
}

/* Without an X-Amz-Date header the date comes from `now` and is signed. */
static void test_date_from_now(_unused_ void **state) {
        const struct suite_case c = { "get-vanilla", "get-vanilla", NULL };
        _cleanup_(freep) char *req_text = read_case_file(&c, "req");
        _cleanup_(freep) char *creq = read_case_file(&c, "creq");
        _cleanup_(freep) char *authz = read_case_file(&c, "authz");
        struct raw_request raw;
        struct sigv4_request req;
        struct sigv4_signature sig = {};
        struct aws_credentials creds = { (char *) SUITE_AKID, (char *) SUITE_SECRET, NULL, 0, NULL };

        raw_request_parse(req_text, &raw);
        raw_request_drop_header(&raw, "X-Amz-Date");
        sigv4_request_from_raw(&raw, &req);
        assert_int_equal(sigv4_sign(&req, &creds, "us-east-1", "service", SUITE_NOW, true, &sig), 0);
        assert_string_equal(sig.amz_date, "20150830T123600Z");
        assert_string_equal(sig.canonical_request, creq);
        assert_string_equal(sig.authorization, authz);
        sigv4_signature_clear(&sig);

        /* one day later: another date, another scope, another signature */
        assert_int_equal(sigv4_sign(&req, &creds, "us-east-1", "service", SUITE_NOW + 86400, true, &sig), 0);
        assert_string_equal(sig.amz_date, "20150831T123600Z");
        assert_non_null(strstr(sig.authorization, "Credential=AKIDEXAMPLE/20150831/us-east-1/service/aws4_request"));
        assert_string_not_equal(sig.authorization, authz);
        sigv4_signature_clear(&sig);
        raw_request_done(&raw);
}

static const char *json_str(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        if (!json_is_string(v))
                fail_msg("vector field %s is not a string", key);
        return json_string_value(v);
}

static void test_connect_vectors(_unused_ void **state) {
        json_error_t err;
        json_t *root = json_load_file(VECTORS_FILE, 0, &err);
        if (!root)
                fail_msg("%s:%d: %s", VECTORS_FILE, err.line, err.text);
        const char *akid = json_str(root, "access_key_id"), *secret = json_str(root, "secret_access_key");
        const char *region = json_str(root, "region"), *service = json_str(root, "service");
        json_t *cases = json_object_get(root, "cases");
        size_t ran = 0, i;
        json_t *c;

        assert_true(json_is_array(cases));
        _cleanup_(freep) char *host = strprintf("connect.%s.amazonaws.com", region);
        json_array_foreach(cases, i, c) {
                const char *name = json_str(c, "name");
                json_t *hdrs = json_object_get(c, "headers"), *tok = json_object_get(c, "session_token");
                struct sigv4_header headers[16];
                size_t n = 0;
                const char *k;
                json_t *v;

                assert_true(json_is_object(hdrs));
                headers[n++] = (struct sigv4_header) { "Host", host };
                json_object_foreach(hdrs, k, v) {
                        assert_true(n < ELEMENTSOF(headers));
                        headers[n++] = (struct sigv4_header) { k, json_string_value(v) };
                }
                const char *body = json_str(c, "body"), *query = json_str(c, "query");
                struct sigv4_request req = {
                        .method = json_str(c, "method"),
                        .path = json_str(c, "path"),
                        .query = *query ? query : NULL,
                        .headers = headers,
                        .n_headers = n,
                        .body = body,
                        .body_len = strlen(body),
                };
                struct aws_credentials creds = {
                        .access_key_id = (char *) akid,
                        .secret_access_key = (char *) secret,
                        .session_token = json_is_string(tok) ? (char *) json_string_value(tok) : NULL,
                };
                struct sigv4_signature sig = {};
                int r = sigv4_sign(&req, &creds, region, service, 0, true, &sig);
                if (r < 0)
                        fail_msg("%s: %s", name, strerror(-r));
                if (!streq(sig.canonical_request, json_str(c, "canonical_request")))
                        fail_msg("%s: canonical request\n--- got\n%s\n--- expected\n%s", name, sig.canonical_request,
                                 json_str(c, "canonical_request"));
                assert_string_equal(sig.string_to_sign, json_str(c, "string_to_sign"));
                assert_string_equal(sig.authorization, json_str(c, "authorization"));
                assert_non_null(strstr(sig.authorization, json_str(c, "signature")));
                assert_string_equal(sig.amz_date, json_str(root, "x_amz_date"));
                sigv4_signature_clear(&sig);

                /* With a session token, leaving the header to the signer
                 * gives the same signature. */
                if (creds.session_token) {
                        size_t m = 0;
                        for (size_t j = 0; j < n; j++)
                                if (strcasecmp(headers[j].name, "X-Amz-Security-Token") != 0)
                                        headers[m++] = headers[j];
                        assert_int_equal(m, n - 1);
                        req.n_headers = m;
                        assert_int_equal(sigv4_sign(&req, &creds, region, service, 0, true, &sig), 0);
                        assert_string_equal(sig.authorization, json_str(c, "authorization"));
                        sigv4_signature_clear(&sig);
                }
                ran++;
        }
        assert_int_equal(ran, CONNECT_EXPECTED_CASES);
        json_decref(root);
}

static void test_uri_encode(_unused_ void **state) {
        static const struct {
                const char *in;
                bool keep_slash;
                const char *out;
        } cases[] = {
                { "arn:aws:connect:us-east-1:111122223333:phone-number/5f0c6b7e-2d1a-4c53-9a8e-1b2c3d4e5f60", false,
                  "arn%3Aaws%3Aconnect%3Aus-east-1%3A111122223333%3Aphone-number%2F5f0c6b7e-2d1a-4c53-9a8e-1b2c3d4e5f60" },
                { "/a b/c", true, "/a%20b/c" },
                { "/a b/c", false, "%2Fa%20b%2Fc" },
                { "-._~AZaz09", false, "-._~AZaz09" },
                { "+=&%", false, "%2B%3D%26%25" },
                { "\xe1\x88\xb4", false, "%E1%88%B4" },
                { "", false, "" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(freep) char *e = aws_uri_encode(cases[i].in, cases[i].keep_slash);
                assert_non_null(e);
                assert_string_equal(e, cases[i].out);
        }
}

/* Canonical URI and query of requests that the suite does not cover. */
static void test_canonical_edges(_unused_ void **state) {
        static const struct {
                const char *path, *query;
                bool double_encode;
                const char *creq_prefix;
        } cases[] = {
                /* S3 mode: the wire path as it is */
                { "/a%3Ab/./c//", NULL, false, "GET\n/a%3Ab/./c//\n\n" },
                { "/a%3Ab/./c//", NULL, true, "GET\n/a%253Ab/c/\n\n" },
                { "", NULL, true, "GET\n/\n\n" },
                { "/a/b/../../..", NULL, true, "GET\n/\n\n" },
                { "/", "b=2&&a", true, "GET\n/\na=&b=2\n" },
                { "/", "k=a+b c", true, "GET\n/\nk=a%2Bb%20c\n" },
                { "/", "%zz=%4", true, "GET\n/\n%25zz=%254\n" },
                { "/", "tagKeys=team&tagKeys=connect-numbers%3apool", true,
                  "GET\n/\ntagKeys=connect-numbers%3Apool&tagKeys=team\n" },
        };
        struct aws_credentials creds = { (char *) SUITE_AKID, (char *) SUITE_SECRET, NULL, 0, NULL };
        struct sigv4_header h[] = { { "Host", "example.amazonaws.com" } };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct sigv4_request req = { "GET", cases[i].path, cases[i].query, h, 1, NULL, 0 };
                struct sigv4_signature sig = {};
                assert_int_equal(sigv4_sign(&req, &creds, "us-east-1", "connect", SUITE_NOW, cases[i].double_encode,
                                            &sig),
                                 0);
                if (strncmp(sig.canonical_request, cases[i].creq_prefix, strlen(cases[i].creq_prefix)) != 0)
                        fail_msg("case %zu: got\n%s", i, sig.canonical_request);
                sigv4_signature_clear(&sig);
        }
}

static void test_invalid(_unused_ void **state) {
        struct sigv4_header h[] = { { "Host", "example.amazonaws.com" }, { "X-Amz-Date", "2015-08-30" } };
        struct aws_credentials creds = { (char *) SUITE_AKID, (char *) SUITE_SECRET, NULL, 0, NULL };
        struct aws_credentials no_secret = { (char *) SUITE_AKID, NULL, NULL, 0, NULL };
        struct sigv4_request req = { "GET", "/", NULL, h, 1, NULL, 0 };
        struct sigv4_signature sig = {};

        assert_int_equal(sigv4_sign(&req, &no_secret, "us-east-1", "connect", SUITE_NOW, true, &sig), -EINVAL);
        assert_int_equal(sigv4_sign(&req, &creds, "", "connect", SUITE_NOW, true, &sig), -EINVAL);
        req.n_headers = 2; /* malformed X-Amz-Date */
        assert_int_equal(sigv4_sign(&req, &creds, "us-east-1", "connect", SUITE_NOW, true, &sig), -EINVAL);
        struct sigv4_header bad[] = { { "Bad:Name", "x" } };
        req.headers = bad;
        req.n_headers = 1;
        assert_int_equal(sigv4_sign(&req, &creds, "us-east-1", "connect", SUITE_NOW, true, &sig), -EINVAL);
        /* outputs are written only on success */
        assert_null(sig.authorization);
        assert_null(sig.canonical_request);
        sigv4_signature_clear(&sig);
        sigv4_signature_clear(NULL);
}

static void test_credentials_copy(_unused_ void **state) {
        struct aws_credentials *c = calloc(1, sizeof *c), *d = NULL;
        assert_non_null(c);
        c->access_key_id = strdup("ASIAEXAMPLE");
        c->secret_access_key = strdup("secret");
        c->session_token = strdup("token");
        c->source = strdup("imds");
        c->expiration = 1234;
        assert_int_equal(aws_credentials_copy(c, &d), 0);
        assert_string_equal(d->access_key_id, "ASIAEXAMPLE");
        assert_string_equal(d->secret_access_key, "secret");
        assert_string_equal(d->session_token, "token");
        assert_string_equal(d->source, "imds");
        assert_int_equal(d->expiration, 1234);
        assert_ptr_not_equal(d->secret_access_key, c->secret_access_key);
        assert_null(aws_credentials_free(c));
        assert_null(aws_credentials_free(d));
        assert_null(aws_credentials_free(NULL));
}

/* The one hex encoder, and what is built on it: the digests signed here,
 * and the UUIDs made from digests. */
static void test_hex(_unused_ void **state) {
        const uint8_t bytes[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
        char buf[2 * sizeof bytes + 1], digest[65], uuid[37];

        assert_string_equal(hex_encode(bytes, sizeof bytes, buf), "00017f80abff");
        assert_string_equal(hex_encode(bytes, 0, buf), "");
        sha256_hex("abc", 3, digest);
        assert_string_equal(digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        uuid_from_digest("connect-numbers", strlen("connect-numbers"), uuid);
        assert_string_equal(uuid, "0bfdf2a8-83f4-4666-afa6-b13001991a71");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_suite),
                cmocka_unit_test(test_session_token_added_by_signer),
                cmocka_unit_test(test_date_from_now),
                cmocka_unit_test(test_connect_vectors),
                cmocka_unit_test(test_uri_encode),
                cmocka_unit_test(test_canonical_edges),
                cmocka_unit_test(test_invalid),
                cmocka_unit_test(test_credentials_copy),
                cmocka_unit_test(test_hex),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
