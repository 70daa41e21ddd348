/* test-credentials.c: the credential chain. Files come from
 * tests/data/credentials (copied into a temporary HOME or
 * $CREDENTIALS_DIRECTORY where the test needs it); the container and IMDS
 * endpoints are a small HTTP server on 127.0.0.1 in a thread of this
 * process (the "stub"), which records every request so that tests can
 * check the IMDSv2 token flow and the headers sent. Every test starts from
 * an environment without any AWS_*, CREDENTIALS_DIRECTORY or HOME variable
 * and with IMDS disabled, so nothing ever goes to 169.254.169.254. */
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "aws/credentials.h"
#include "aws/process.h"
#include "log.h"

#define DATA "tests/data/credentials"
#define EXPIRY_1000Z 1795773600ULL /* 2026-11-27T10:00:00Z */
#define EXPIRY_1100Z 1795777200ULL /* 2026-11-27T11:00:00Z */
#define STUB_TOKEN "STUBIMDSTOKEN-e3f1c2a9"
#define STUB_SECRET_PREFIX "stubSecret"
#define STUB_TOKEN_PREFIX "stubSessionToken"
#define ENV_SECRET "envSecretKey/0123456789abcdefEXAMPLE"
#define ENV_TOKEN "envSessionToken0123456789EXAMPLE=="
#define CONTAINER_AUTH "containerAuthToken-5a7b"

/* ---------------------------------------------------------------- stub */

struct stub_request {
        char method[8];
        char path[256];
        char token[128];  /* x-aws-ec2-metadata-token */
        char ttl[32];     /* x-aws-ec2-metadata-token-ttl-seconds */
        char auth[128];   /* authorization */
        char accept[64];
};

static struct stub {
        int listen_fd;
        int port;
        int wake[2];
        pthread_t thread;
        pthread_mutex_t lock;
        /* behaviour, set by tests (under lock) */
        int token_status;     /* answer to PUT /latest/api/token */
        int role_status;      /* answer to GET .../security-credentials/ */
        int creds_status;     /* answer to GET .../security-credentials/ROLE and /container */
        bool huge;            /* answer the credentials with 100 KiB */
        char expiration[64];  /* Expiration served */
        char container_auth[128]; /* Authorization the container path requires, "" = none */
        unsigned serial;      /* credentials served so far */
        /* what was asked */
        struct stub_request log[64];
        size_t n_log;
} stub;

static void stub_reset(void) {
        pthread_mutex_lock(&stub.lock);
        stub.token_status = 200;
        stub.role_status = 200;
        stub.creds_status = 200;
        stub.huge = false;
        snprintf(stub.expiration, sizeof stub.expiration, "2026-11-27T10:00:00Z");
        stub.container_auth[0] = 0;
        stub.serial = 0;
        stub.n_log = 0;
        pthread_mutex_unlock(&stub.lock);
}

static void stub_set_status(int *field, int status) {
        pthread_mutex_lock(&stub.lock);
        *field = status;
        pthread_mutex_unlock(&stub.lock);
}

static size_t stub_count(void) {
        pthread_mutex_lock(&stub.lock);
        size_t n = stub.n_log;
        pthread_mutex_unlock(&stub.lock);
        return n;
}

static struct stub_request stub_get(size_t i) {
        struct stub_request r = {};
        pthread_mutex_lock(&stub.lock);
        if (i < stub.n_log)
                r = stub.log[i];
        pthread_mutex_unlock(&stub.lock);
        return r;
}

static void copy_field(char *dst, size_t n, const char *src, size_t len) {
        len = MIN(len, n - 1);
        memcpy(dst, src, len);
        dst[len] = 0;
}

static void send_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k <= 0)
                        return;
                p += k;
                n -= (size_t) k;
        }
}

static void stub_reply(int fd, int status, const char *body, size_t len) {
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 %d Stub\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                         status, len);
        send_all(fd, head, (size_t) n);
        send_all(fd, body, len);
}

static char *stub_credentials_json(unsigned serial, const char *expiration) {
        return strprintf("{\"Code\":\"Success\",\"LastUpdated\":\"2026-11-27T08:00:00Z\",\"Type\":\"AWS-HMAC\","
                         "\"AccessKeyId\":\"ASIASTUB%012u\",\"SecretAccessKey\":\"" STUB_SECRET_PREFIX
                         "%04u/AbCdEfGhIjKlMnOpQrStUvWxYz\",\"Token\":\"" STUB_TOKEN_PREFIX
                         "%04u//////////EXAMPLE==\",\"Expiration\":\"%s\"}",
                         serial, serial, serial, expiration);
}

static void stub_handle(int fd) {
        char buf[8192];
        size_t len = 0;
        struct timeval tv = { .tv_sec = 2 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (len < sizeof buf - 1) {
                ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
                if (k <= 0)
                        return;
                len += (size_t) k;
                buf[len] = 0;
                if (strstr(buf, "\r\n\r\n"))
                        break;
        }

        struct stub_request req = {};
        char *sp1 = strchr(buf, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!sp1 || !sp2)
                return;
        copy_field(req.method, sizeof req.method, buf, (size_t) (sp1 - buf));
        copy_field(req.path, sizeof req.path, sp1 + 1, (size_t) (sp2 - sp1 - 1));
        for (char *line = strstr(buf, "\r\n"); line && line[2] && !(line[2] == '\r');) {
                line += 2;
                char *end = strstr(line, "\r\n"), *colon = memchr(line, ':', end ? (size_t) (end - line) : 0);
                if (!end)
                        break;
                if (colon) {
                        size_t nl = (size_t) (colon - line);
                        char *v = colon + 1;
                        while (*v == ' ')
                                v++;
                        size_t vl = (size_t) (end - v);
                        if (nl == 24 && strncasecmp(line, "x-aws-ec2-metadata-token", nl) == 0)
                                copy_field(req.token, sizeof req.token, v, vl);
                        else if (nl == 36 && strncasecmp(line, "x-aws-ec2-metadata-token-ttl-seconds", nl) == 0)
                                copy_field(req.ttl, sizeof req.ttl, v, vl);
                        else if (nl == 13 && strncasecmp(line, "authorization", nl) == 0)
                                copy_field(req.auth, sizeof req.auth, v, vl);
                        else if (nl == 6 && strncasecmp(line, "accept", nl) == 0)
                                copy_field(req.accept, sizeof req.accept, v, vl);
                }
                line = end;
        }

        int status = 404;
        _cleanup_(freep) char *body = NULL;
        const char *role_prefix = "/latest/meta-data/iam/security-credentials/";
        pthread_mutex_lock(&stub.lock);
        if (stub.n_log < ELEMENTSOF(stub.log))
                stub.log[stub.n_log++] = req;
        /* IMDSv2 once a token was handed out: the GETs must carry it */
        bool v2 = stub.token_status == 200;
        if (streq(req.method, "PUT") && streq(req.path, "/latest/api/token")) {
                status = !streq(req.ttl, "21600") ? 400 : stub.token_status;
                if (status == 200)
                        body = strdup(STUB_TOKEN);
        } else if (streq(req.method, "GET") && strncmp(req.path, role_prefix, strlen(role_prefix)) == 0) {
                const char *role = req.path + strlen(role_prefix);
                if (v2 && !streq(req.token, STUB_TOKEN))
                        status = 401;
                else if (!*role) {
                        status = stub.role_status;
                        body = strdup("stub-role\n");
                } else if (streq(role, "stub-role")) {
                        status = stub.creds_status;
                        body = stub_credentials_json(++stub.serial, stub.expiration);
                }
        } else if (streq(req.method, "GET") && streq(req.path, "/container/credentials")) {
                if (stub.container_auth[0] && !streq(req.auth, stub.container_auth))
                        status = 401;
                else if (!streq(req.accept, "application/json"))
                        status = 406;
                else {
                        status = stub.creds_status;
                        body = stub_credentials_json(++stub.serial, stub.expiration);
                }
        }
        if (status == 200 && stub.huge && body && body[0] == '{') {
                free(body);
                body = malloc(100 * 1024 + 1);
                if (body) {
                        memset(body, ' ', 100 * 1024);
                        body[100 * 1024] = 0;
                }
        }
        pthread_mutex_unlock(&stub.lock);
        if (status != 200)
                body = mfree(body);
        stub_reply(fd, status, body ? body : "", body ? strlen(body) : 0);
}

static void *stub_main(_unused_ void *arg) {
        for (;;) {
                struct pollfd p[2] = { { stub.listen_fd, POLLIN, 0 }, { stub.wake[0], POLLIN, 0 } };
                if (poll(p, 2, -1) < 0)
                        continue;
                if (p[1].revents)
                        return NULL;
                int fd = accept4(stub.listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        continue;
                stub_handle(fd);
                close(fd);
        }
}

static void stub_start(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof sa;
        pthread_mutex_init(&stub.lock, NULL);
        stub.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(stub.listen_fd >= 0);
        assert_int_equal(bind(stub.listen_fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(stub.listen_fd, 16), 0);
        assert_int_equal(getsockname(stub.listen_fd, (struct sockaddr *) &sa, &sl), 0);
        stub.port = ntohs(sa.sin_port);
        assert_int_equal(pipe2(stub.wake, O_CLOEXEC), 0);
        stub_reset();
        assert_int_equal(pthread_create(&stub.thread, NULL, stub_main, NULL), 0);
}

static void stub_stop(void) {
        assert_int_equal(write(stub.wake[1], "x", 1), 1);
        pthread_join(stub.thread, NULL);
        close(stub.listen_fd);
        close(stub.wake[0]);
        close(stub.wake[1]);
        pthread_mutex_destroy(&stub.lock);
}

/* ------------------------------------------------------------- helpers */

static char tmpdir[64];
static int log_fd = -1;

static void set_env(const char *name, const char *value) {
        assert_int_equal(setenv(name, value, 1), 0);
}

static void set_envf(const char *name, const char *fmt, ...) _printf_(2, 3);
static void set_envf(const char *name, const char *fmt, ...) {
        va_list ap;
        char *v = NULL;
        va_start(ap, fmt);
        assert_true(vasprintf(&v, fmt, ap) >= 0);
        va_end(ap);
        set_env(name, v);
        free(v);
}

static int rm_one(const char *path, _unused_ const struct stat *st, _unused_ int flag, _unused_ struct FTW *ftw) {
        return remove(path);
}

static void write_file(const char *rel, const char *content) {
        _cleanup_(freep) char *path = strprintf("%s/%s", tmpdir, rel);
        assert_non_null(path);
        for (char *s = strchr(path + strlen(tmpdir) + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = 0;
                mkdir(path, 0700);
                *s = '/';
        }
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static void copy_data_file(const char *data_name, const char *rel) {
        _cleanup_(freep) char *src = strprintf(DATA "/%s", data_name), *text = NULL;
        assert_int_equal(read_full_file(src, 1 << 20, &text, NULL), 0);
        write_file(rel, text);
}

static char *tmp_path(const char *rel) {
        char *p = strprintf("%s/%s", tmpdir, rel);
        assert_non_null(p);
        return p;
}

static void imds_enable(void) {
        assert_int_equal(unsetenv("AWS_EC2_METADATA_DISABLED"), 0);
        set_envf("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:%d/", stub.port);
}

static void container_enable(void) {
        set_envf("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:%d/container/credentials", stub.port);
}

static char *log_take(void) {
        off_t n = lseek(log_fd, 0, SEEK_END);
        assert_true(n >= 0);
        char *s = calloc(1, (size_t) n + 1);
        assert_non_null(s);
        assert_int_equal(pread(log_fd, s, (size_t) n, 0), n);
        assert_int_equal(ftruncate(log_fd, 0), 0);
        assert_int_equal(lseek(log_fd, 0, SEEK_SET), 0);
        return s;
}

static size_t count_substr(const char *hay, const char *needle) {
        size_t n = 0;
        for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

/* Clears every variable the chain reads, with IMDS off, a fresh temporary
 * directory, a reset stub and an empty log. */
static int setup(_unused_ void **state) {
        extern char **environ;
        bool again = true;
        while (again) {
                again = false;
                for (char **e = environ; e && *e; e++) {
                        size_t n = strcspn(*e, "=");
                        if (strncmp(*e, "AWS_", 4) == 0 || (n == 21 && strncmp(*e, "CREDENTIALS_DIRECTORY", n) == 0) ||
                            (n == 4 && strncmp(*e, "HOME", n) == 0)) {
                                char name[256];
                                copy_field(name, sizeof name, *e, n);
                                unsetenv(name);
                                again = true; /* environ changed under us */
                                break;
                        }
                }
        }
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
        snprintf(tmpdir, sizeof tmpdir, "/tmp/test-credentials-XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        stub_reset();
        if (ftruncate(log_fd, 0) < 0 || lseek(log_fd, 0, SEEK_SET) != 0)
                return -1;
        log_repeat_reset();
        return 0;
}

static int teardown(_unused_ void **state) {
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}

static int group_setup(_unused_ void **state) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        stub_start();
        log_fd = memfd_create("test-credentials-log", MFD_CLOEXEC);
        if (log_fd < 0)
                return -1;
        log_set_console_fd(log_fd);
        log_setup(LOG_TARGET_CONSOLE, LOG_DEBUG);
        return 0;
}

static int group_teardown(_unused_ void **state) {
        stub_stop();
        log_set_console_fd(STDERR_FILENO);
        close(log_fd);
        curl_global_cleanup();
        return 0;
}

/* Runs the chain once with a fresh provider. */
static int get_once(const char *profile, uint64_t now, struct aws_credentials **ret, char **ret_error) {
        _cleanup_(credentials_provider_freep) struct credentials_provider *p = NULL;
        const struct aws_credentials *c = NULL;
        assert_int_equal(credentials_provider_new(profile, &p), 0);
        int r = credentials_get(p, now, &c);
        if (ret_error)
                *ret_error = strdup(credentials_provider_error(p));
        if (r >= 0) {
                assert_non_null(c);
                assert_int_equal(aws_credentials_copy(c, ret), 0);
        }
        return r;
}

static void expect_key(const char *profile, const char *source, const char *akid) {
        struct aws_credentials *c = NULL;
        _cleanup_(freep) char *err = NULL;
        int r = get_once(profile, EXPIRY_1000Z - 3600, &c, &err);
        if (r < 0)
                fail_msg("expected %s from %s, got %s: %s", akid, source, strerror(-r), err);
        if (!streq(c->source, source) || !streq(c->access_key_id, akid))
                fail_msg("expected %s from %s, got %s from %s", akid, source, c->access_key_id, c->source);
        aws_credentials_free(c);
}

static void expect_error(const char *profile, int code, const char *message_part) {
        struct aws_credentials *c = NULL;
        _cleanup_(freep) char *err = NULL;
        int r = get_once(profile, EXPIRY_1000Z - 3600, &c, &err);
        if (r != code)
                fail_msg("expected %s (\"%s\"), got %s (%s)", strerror(-code), message_part,
                         r < 0 ? strerror(-r) : "credentials", r < 0 ? err : c->source);
        if (!strstr(err, message_part))
                fail_msg("error \"%s\" lacks \"%s\"", err, message_part);
        assert_null(strchr(err, '\n'));
}

/* --------------------------------------------------------------- tests */

static void test_parse_iso8601(_unused_ void **state) {
        static const struct {
                const char *s;
                int r;
                uint64_t v;
        } cases[] = {
                { "2026-11-27T10:00:00Z", 0, EXPIRY_1000Z },
                { "2026-11-27T10:00:00.999Z", 0, EXPIRY_1000Z },
                { "2026-11-27T10:00:00+00:00", 0, EXPIRY_1000Z },
                { "2026-11-27T10:00:00.123456+00:00", 0, EXPIRY_1000Z },
                { "2026-11-27T11:00:00+01:00", 0, EXPIRY_1000Z },
                { "2026-11-27T09:00:00-0100", 0, EXPIRY_1000Z },
                { "2026-11-27 10:00:00Z", 0, EXPIRY_1000Z },
                { "2024-02-29T23:59:59Z", 0, 1709251199ULL },
                { "2023-02-29T00:00:00Z", -EINVAL, 0 },
                { "2026-11-27T10:00:00", -EINVAL, 0 },
                { "2026-11-27T10:00Z", -EINVAL, 0 },
                { "2026-13-01T00:00:00Z", -EINVAL, 0 },
                { "2026-11-27T24:00:00Z", -EINVAL, 0 },
                { "2026-11-27T10:00:00.Z", -EINVAL, 0 },
                { "2026-11-27T10:00:00Zjunk", -EINVAL, 0 },
                { "1969-12-31T23:59:59Z", -EINVAL, 0 },
                { "", -EINVAL, 0 },
                { "tomorrow", -EINVAL, 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t v = 42;
                int r = credentials_parse_iso8601(cases[i].s, &v);
                if (r != cases[i].r)
                        fail_msg("%s: got %d, expected %d", cases[i].s, r, cases[i].r);
                assert_int_equal(v, r == 0 ? cases[i].v : 42); /* untouched on failure */
        }
        assert_int_equal(credentials_parse_iso8601(NULL, &(uint64_t) { 0 }), -EINVAL);
}

static void test_parse_ini(_unused_ void **state) {
        static const struct {
                const char *file, *profile;
                bool is_config;
                int r;
                const char *akid, *token, *error;
        } cases[] = {
                { "credentials", "default", false, 0, "AKIDDEFAULTCREDS0001", NULL, NULL },
                { "credentials", "yamlprof", false, 0, "AKIDYAMLPROFILE00002", NULL, NULL },
                { "credentials", "envprof", false, 0, "AKIDENVPROFILE000003", "envProfileToken0003", NULL },
                { "credentials", "assume", false, -ENOKEY, NULL, NULL, "profile assume has no aws_access_key_id" },
                { "credentials", "half", false, -EINVAL, NULL, NULL, "has aws_access_key_id but no aws_secret" },
                { "credentials", "empty", false, -ENOKEY, NULL, NULL, "profile empty has no" },
                { "credentials", "nosuch", false, -ENOENT, NULL, NULL, "profile nosuch not found" },
                /* a credentials file has no "profile " prefix */
                { "credentials", "profile default", false, -ENOENT, NULL, NULL, "not found" },
                { "config", "cfgonly", true, 0, "AKIDCONFIGONLY000006", NULL, NULL },
                { "config", "spaced", true, 0, "AKIDSPACEDPROFILE011", NULL, NULL },
                { "config", "default", true, -ENOKEY, NULL, NULL, "has no" },
                { "config", "regiononly", true, -ENOKEY, NULL, NULL, "has no" },
                { "config", "notaprofile", true, -ENOENT, NULL, NULL, "not found" },
                /* keys of other providers: no static keys here */
                { "config", "process", true, -ENOKEY, NULL, NULL, "profile process has no aws_access_key_id" },
                { "config", "sso", true, -EOPNOTSUPP, NULL, NULL, "profile sso uses sso_start_url: AWS IAM Identity" },
                { "config", "ssosession", true, -EOPNOTSUPP, NULL, NULL, "uses sso_session: AWS IAM Identity" },
                { "config", "webid", true, -ENOKEY, NULL, NULL, "profile webid has no aws_access_key_id" },
                { "creddir-aws", "yamlprof", false, 0, "AKIDCREDDIRYAMLPRF10", "credDirYamlToken0010", NULL },
                { "crlf-bom", "default", false, 0, "AKIDCRLFBOM000000012", NULL, NULL },
                { "malformed-orphan", "default", false, -EINVAL, NULL, NULL, "line 2: setting outside" },
                { "malformed-section", "default", false, -EINVAL, NULL, NULL, "line 3: section header" },
                { "malformed-line", "default", false, -EINVAL, NULL, NULL, "line 3: expected" },
                { "malformed-key", "default", false, -EINVAL, NULL, NULL, "spaces or control characters" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(freep) char *path = strprintf(DATA "/%s", cases[i].file), *text = NULL, *err = NULL;
                size_t len;
                struct aws_credentials *c = NULL;
                assert_int_equal(read_full_file(path, 1 << 20, &text, &len), 0);
                int r = credentials_parse_ini(text, len, cases[i].profile, cases[i].is_config, &c, &err);
                if (r != cases[i].r)
                        fail_msg("%s [%s]: got %d (%s), expected %d", cases[i].file, cases[i].profile, r,
                                 err ? err : "-", cases[i].r);
                if (r == 0) {
                        assert_null(err);
                        assert_string_equal(c->access_key_id, cases[i].akid);
                        assert_non_null(c->secret_access_key);
                        if (cases[i].token)
                                assert_string_equal(c->session_token, cases[i].token);
                        else
                                assert_null(c->session_token);
                        assert_int_equal(c->expiration, 0);
                        aws_credentials_free(c);
                } else {
                        assert_null(c);
                        assert_non_null(err);
                        if (!strstr(err, cases[i].error))
                                fail_msg("%s [%s]: error \"%s\" lacks \"%s\"", cases[i].file, cases[i].profile, err,
                                         cases[i].error);
                }
        }

        /* length-bounded: the text need not be NUL-terminated */
        const char text[] = "[default]\naws_access_key_id=AKIDBOUNDED000000001\naws_secret_access_key=s1XXXX";
        struct aws_credentials *c = NULL;
        assert_int_equal(credentials_parse_ini(text, sizeof text - 1 - 4, "default", false, &c, NULL), 0);
        assert_string_equal(c->secret_access_key, "s1");
        aws_credentials_free(c);
        assert_int_equal(credentials_parse_ini("[default]\n\0x", 12, "default", false, &c, NULL), -EINVAL);
        assert_int_equal(credentials_parse_ini(NULL, 0, "default", false, &c, NULL), -ENOENT);
}

static void test_parse_json(_unused_ void **state) {
        static const struct {
                const char *file;
                int r;
                const char *akid;
                bool token;
                uint64_t expiration;
        } cases[] = {
                { "imds.json", 0, "ASIAIMDSEXAMPLE00001", true, EXPIRY_1000Z },
                { "container.json", 0, "ASIACONTAINEREX00002", true, EXPIRY_1000Z },
                { "long-term.json", 0, "AKIALONGTERMEX000003", false, 0 },
                { "failed-code.json", -EINVAL, NULL, false, 0 },
                { "missing-secret.json", -EINVAL, NULL, false, 0 },
                { "bad-expiration.json", -EINVAL, NULL, false, 0 },
                { "not-an-object.json", -EINVAL, NULL, false, 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(freep) char *path = strprintf(DATA "/json/%s", cases[i].file), *text = NULL;
                size_t len;
                struct aws_credentials *c = NULL;
                assert_int_equal(read_full_file(path, 1 << 20, &text, &len), 0);
                int r = credentials_parse_json(text, len, &c);
                if (r != cases[i].r)
                        fail_msg("%s: got %d, expected %d", cases[i].file, r, cases[i].r);
                if (r < 0) {
                        assert_null(c);
                        continue;
                }
                assert_string_equal(c->access_key_id, cases[i].akid);
                assert_true(!!c->session_token == cases[i].token);
                assert_int_equal(c->expiration, cases[i].expiration);
                aws_credentials_free(c);
        }
        struct aws_credentials *c = NULL;
        /* a line break in the token would end the header it goes into */
        const char *crlf = "{\"AccessKeyId\":\"ASIA0000000000000001\",\"SecretAccessKey\":\"s\",\"Token\":\"a\\r\\nX: y\"}";
        assert_int_equal(credentials_parse_json(crlf, strlen(crlf), &c), -EINVAL);
        assert_int_equal(credentials_parse_json("{", 1, &c), -EINVAL);
        assert_null(c);
}

/* env > $CREDENTIALS_DIRECTORY/aws > shared files > container > IMDS, each
 * source taken away in turn. The stub counts show that a source further
 * down was not even asked. */
static void test_chain_order(_unused_ void **state) {
        _cleanup_(freep) char *home = tmp_path("home"), *creddir = tmp_path("creds");
        copy_data_file("credentials", "home/.aws/credentials");
        copy_data_file("creddir-aws", "creds/aws");
        set_env("HOME", home);
        set_env("CREDENTIALS_DIRECTORY", creddir);
        set_env("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001");
        set_env("AWS_SECRET_ACCESS_KEY", ENV_SECRET);
        container_enable();
        imds_enable();

        expect_key(NULL, "environment", "AKIDENVIRONMENT00001");
        /* half of the pair is not enough */
        assert_int_equal(unsetenv("AWS_SECRET_ACCESS_KEY"), 0);
        expect_key(NULL, "credentials-directory", "AKIDCREDDIRDEFAULT09");
        assert_int_equal(unsetenv("AWS_ACCESS_KEY_ID"), 0);
        expect_key(NULL, "credentials-directory", "AKIDCREDDIRDEFAULT09");
        assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
        expect_key(NULL, "shared-file", "AKIDDEFAULTCREDS0001");
        assert_int_equal(stub_count(), 0);
        assert_int_equal(unsetenv("HOME"), 0);
        expect_key(NULL, "container", "ASIASTUB000000000001");
        assert_int_equal(stub_count(), 1);
        assert_int_equal(unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), 0);
        expect_key(NULL, "imds", "ASIASTUB000000000002");
        assert_int_equal(stub_count(), 4);
        set_env("AWS_EC2_METADATA_DISABLED", "true");
        expect_error(NULL, -ENOKEY, "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
        assert_int_equal(stub_count(), 4);

        /* the environment with a session token */
        set_env("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001");
        set_env("AWS_SECRET_ACCESS_KEY", ENV_SECRET);
        set_env("AWS_SESSION_TOKEN", ENV_TOKEN);
        struct aws_credentials *c = NULL;
        assert_int_equal(get_once(NULL, 0, &c, NULL), 0);
        assert_string_equal(c->session_token, ENV_TOKEN);
        assert_string_equal(c->secret_access_key, ENV_SECRET);
        assert_int_equal(c->expiration, 0);
        aws_credentials_free(c);
}

/* profile: (YAML) > AWS_PROFILE > "default", in every file. */
static void test_profile_selection(_unused_ void **state) {
        _cleanup_(freep) char *home = tmp_path("home"), *creddir = tmp_path("creds");
        copy_data_file("credentials", "home/.aws/credentials");
        copy_data_file("config", "home/.aws/config");
        set_env("HOME", home);

        expect_key(NULL, "shared-file", "AKIDDEFAULTCREDS0001");
        set_env("AWS_PROFILE", "envprof");
        expect_key(NULL, "shared-file", "AKIDENVPROFILE000003");
        expect_key("yamlprof", "shared-file", "AKIDYAMLPROFILE00002");
        /* [profile cfgonly] of the config file */
        expect_key("cfgonly", "shared-file", "AKIDCONFIGONLY000006");
        /* in both files: the credentials file wins, as in botocore */
        expect_key("both", "shared-file", "AKIDBOTHINCREDSFILE4");
        /* a profile named only in the environment */
        set_env("AWS_PROFILE", "spaced");
        expect_key(NULL, "shared-file", "AKIDSPACEDPROFILE011");

        /* $CREDENTIALS_DIRECTORY/aws is read by the same name */
        copy_data_file("creddir-aws", "creds/aws");
        set_env("CREDENTIALS_DIRECTORY", creddir);
        expect_key("yamlprof", "credentials-directory", "AKIDCREDDIRYAMLPRF10");
        /* a profile it lacks comes from the shared files */
        expect_key("cfgonly", "shared-file", "AKIDCONFIGONLY000006");
        assert_int_equal(unsetenv("AWS_PROFILE"), 0);
        expect_key(NULL, "credentials-directory", "AKIDCREDDIRDEFAULT09");

        /* AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE instead of HOME */
        assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
        assert_int_equal(unsetenv("HOME"), 0);
        set_env("AWS_SHARED_CREDENTIALS_FILE", DATA "/credentials");
        expect_key("envprof", "shared-file", "AKIDENVPROFILE000003");
        set_env("AWS_CONFIG_FILE", DATA "/config");
        set_env("AWS_SHARED_CREDENTIALS_FILE", DATA "/does-not-exist");
        expect_key("both", "shared-file", "AKIDBOTHINCONFIG0007");

        /* a profile named but found nowhere is an error, not a fallback */
        expect_error("nosuch", -ENOKEY, "profile nosuch not found");
        /* a profile that exists without keys lets the chain go on */
        expect_error("regiononly", -ENOKEY, "no AWS credentials found");
}

static void test_profile_refused(_unused_ void **state) {
        static const struct {
                const char *profile, *key;
        } cases[] = {
                { "sso", "sso_start_url" },
                { "ssosession", "sso_session" },
        };
        set_env("AWS_SHARED_CREDENTIALS_FILE", DATA "/credentials");
        set_env("AWS_CONFIG_FILE", DATA "/config");
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(freep) char *want =
                        strprintf("profile %s uses %s: AWS IAM Identity Center (SSO) profiles are not supported",
                                  cases[i].profile, cases[i].key);
                expect_error(cases[i].profile, -EOPNOTSUPP, want);
                set_env("AWS_PROFILE", cases[i].profile);
                expect_error(NULL, -EOPNOTSUPP, want);
                assert_int_equal(unsetenv("AWS_PROFILE"), 0);
        }
        /* a refused key in the config file spoils the credentials file's keys */
        write_file("config", "[profile yamlprof]\nsso_start_url = https://example.awsapps.com/start\n");
        _cleanup_(freep) char *config = tmp_path("config");
        set_env("AWS_CONFIG_FILE", config);
        expect_error("yamlprof", -EOPNOTSUPP, "profile yamlprof uses sso_start_url");

        /* web identity from the environment comes right after the
         * environment's keys, before any profile */
        set_env("AWS_CONFIG_FILE", DATA "/config");
        set_env("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token");
        expect_error("yamlprof", -EINVAL, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
        set_env("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/web");
        expect_error("yamlprof", -EIO, "cannot read the web identity token file /nonexistent/token");
        assert_int_equal(unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE"), 0);
        assert_int_equal(unsetenv("AWS_ROLE_ARN"), 0);
        expect_key("yamlprof", "shared-file", "AKIDYAMLPROFILE00002");

        /* malformed files are reported with their name and line */
        set_env("AWS_SHARED_CREDENTIALS_FILE", DATA "/malformed-line");
        expect_error(NULL, -EINVAL, DATA "/malformed-line: line 3:");
}

static void test_imds_v2(_unused_ void **state) {
        imds_enable();
        struct aws_credentials *c = NULL;
        assert_int_equal(get_once(NULL, EXPIRY_1000Z - 3600, &c, NULL), 0);
        assert_string_equal(c->source, "imds");
        assert_string_equal(c->access_key_id, "ASIASTUB000000000001");
        assert_string_equal(c->secret_access_key, STUB_SECRET_PREFIX "0001/AbCdEfGhIjKlMnOpQrStUvWxYz");
        assert_string_equal(c->session_token, STUB_TOKEN_PREFIX "0001//////////EXAMPLE==");
        assert_int_equal(c->expiration, EXPIRY_1000Z);
        aws_credentials_free(c);

        /* PUT token (TTL 21600), GET role with token, GET creds with token */
        assert_int_equal(stub_count(), 3);
        struct stub_request r0 = stub_get(0), r1 = stub_get(1), r2 = stub_get(2);
        assert_string_equal(r0.method, "PUT");
        assert_string_equal(r0.path, "/latest/api/token");
        assert_string_equal(r0.ttl, "21600");
        assert_string_equal(r0.token, "");
        assert_string_equal(r1.method, "GET");
        assert_string_equal(r1.path, "/latest/meta-data/iam/security-credentials/");
        assert_string_equal(r1.token, STUB_TOKEN);
        assert_string_equal(r2.path, "/latest/meta-data/iam/security-credentials/stub-role");
        assert_string_equal(r2.token, STUB_TOKEN);

        /* case-insensitive "true" turns it off: nothing is asked */
        stub_reset();
        set_env("AWS_EC2_METADATA_DISABLED", "TRUE");
        expect_error(NULL, -ENOKEY, "AWS_EC2_METADATA_DISABLED");
        assert_int_equal(stub_count(), 0);
        set_env("AWS_EC2_METADATA_DISABLED", "false");
        expect_key(NULL, "imds", "ASIASTUB000000000001");

        /* an instance without a role */
        stub_reset();
        stub_set_status(&stub.role_status, 404);
        expect_error(NULL, -ENOKEY, "no instance role attached");
        /* a broken service is an error, not "nothing found" */
        stub_reset();
        stub_set_status(&stub.creds_status, 500);
        expect_error(NULL, -EIO, "HTTP 500");
        stub_reset();
        stub_set_status(&stub.token_status, 400);
        expect_error(NULL, -EIO, "HTTP 400");
        assert_int_equal(stub_count(), 1);
        /* the 64 KiB cap */
        stub_reset();
        pthread_mutex_lock(&stub.lock);
        stub.huge = true;
        pthread_mutex_unlock(&stub.lock);
        expect_error(NULL, -EIO, "reply larger than");

        /* nobody listening */
        stub_reset();
        set_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1");
        expect_error(NULL, -ENOKEY, "instance metadata service not reachable");
        /* plain http only to loopback / link-local: refused before any traffic */
        set_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://metadata.example.com");
        expect_error(NULL, -EINVAL, "AWS_EC2_METADATA_SERVICE_ENDPOINT must use https");
}

static void test_imds_v1_fallback(_unused_ void **state) {
        static const int statuses[] = { 403, 404, 405 };
        imds_enable();
        for (size_t i = 0; i < ELEMENTSOF(statuses); i++) {
                stub_reset();
                stub_set_status(&stub.token_status, statuses[i]);
                expect_key(NULL, "imds", "ASIASTUB000000000001");
                assert_int_equal(stub_count(), 3);
                assert_string_equal(stub_get(1).token, "");
                assert_string_equal(stub_get(2).path, "/latest/meta-data/iam/security-credentials/stub-role");
                assert_string_equal(stub_get(2).token, "");
        }

        /* no fallback when IMDSv1 is disabled: only the PUT was sent */
        stub_reset();
        stub_set_status(&stub.token_status, 405);
        set_env("AWS_EC2_METADATA_V1_DISABLED", "true");
        expect_error(NULL, -ENOKEY, "AWS_EC2_METADATA_V1_DISABLED");
        assert_int_equal(stub_count(), 1);
        assert_string_equal(stub_get(0).method, "PUT");
}

static void test_container(_unused_ void **state) {
        container_enable();
        imds_enable();
        /* AWS_CONTAINER_AUTHORIZATION_TOKEN */
        pthread_mutex_lock(&stub.lock);
        snprintf(stub.container_auth, sizeof stub.container_auth, CONTAINER_AUTH);
        pthread_mutex_unlock(&stub.lock);
        set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_AUTH);
        struct aws_credentials *c = NULL;
        assert_int_equal(get_once(NULL, EXPIRY_1000Z - 3600, &c, NULL), 0);
        assert_string_equal(c->source, "container");
        assert_string_equal(c->access_key_id, "ASIASTUB000000000001");
        assert_int_equal(c->expiration, EXPIRY_1000Z);
        aws_credentials_free(c);
        assert_int_equal(stub_count(), 1);
        struct stub_request r0 = stub_get(0);
        assert_string_equal(r0.method, "GET");
        assert_string_equal(r0.auth, CONTAINER_AUTH);
        assert_string_equal(r0.accept, "application/json");

        /* the token file is preferred over the variable (whose value the
         * stub would refuse); its trailing newline is not part of it */
        stub_reset();
        pthread_mutex_lock(&stub.lock);
        snprintf(stub.container_auth, sizeof stub.container_auth, CONTAINER_AUTH);
        pthread_mutex_unlock(&stub.lock);
        write_file("token", CONTAINER_AUTH "\n");
        _cleanup_(freep) char *token_file = tmp_path("token");
        set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file);
        set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong-token");
        expect_key(NULL, "container", "ASIASTUB000000000001");
        assert_string_equal(stub_get(0).auth, CONTAINER_AUTH);

        /* a wrong token: the endpoint's 401 is an error; IMDS is not tried */
        assert_int_equal(unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), 0);
        stub_reset();
        pthread_mutex_lock(&stub.lock);
        snprintf(stub.container_auth, sizeof stub.container_auth, CONTAINER_AUTH);
        pthread_mutex_unlock(&stub.lock);
        expect_error(NULL, -EIO, "HTTP 401");
        assert_int_equal(stub_count(), 1);

        /* CR/LF in the token: refused before any request */
        stub_reset();
        set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "abc\r\nX-Injected: 1");
        expect_error(NULL, -EINVAL, "line break");
        write_file("token2", "abc\nX-Injected: 1\n");
        _cleanup_(freep) char *token_file2 = tmp_path("token2");
        set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file2);
        expect_error(NULL, -EINVAL, "line break");
        assert_int_equal(stub_count(), 0);
        assert_int_equal(unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), 0);
        assert_int_equal(unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN"), 0);

        /* server errors are retried, 3 attempts in all */
        stub_set_status(&stub.creds_status, 500);
        expect_error(NULL, -EIO, "HTTP 500");
        assert_int_equal(stub_count(), 3);

        /* FULL_URI: https, or http to loopback / 169.254.170.23 / fd00:ec2::23 only */
        static const char *const refused[] = {
                "http://example.com/creds",
                "http://169.254.169.254/creds",
                "http://10.0.0.1/creds",
                "ftp://127.0.0.1/creds",
        };
        stub_reset();
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                set_env("AWS_CONTAINER_CREDENTIALS_FULL_URI", refused[i]);
                expect_error(NULL, -EINVAL, "AWS_CONTAINER_CREDENTIALS_FULL_URI must use https");
        }
        set_envf("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://localhost:%d/container/credentials", stub.port);
        expect_key(NULL, "container", "ASIASTUB000000000001");
        /* RELATIVE_URI must be a path */
        set_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/credentials");
        expect_error(NULL, -EINVAL, "must start with '/'");
}

/* Temporary credentials: kept while more than 5 min remain, refreshed
 * after; a failed refresh keeps the old ones until they expire. */
static void test_refresh(_unused_ void **state) {
        _cleanup_(credentials_provider_freep) struct credentials_provider *p = NULL;
        const struct aws_credentials *c = NULL;
        imds_enable();
        assert_int_equal(credentials_provider_new(NULL, &p), 0);

        assert_int_equal(credentials_get(p, EXPIRY_1000Z - 3600, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000001");
        assert_int_equal(stub_count(), 3);
        assert_int_equal(credentials_get(p, EXPIRY_1000Z - 301, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000001");
        assert_int_equal(stub_count(), 3);

        /* 5 min before expiry: new ones */
        pthread_mutex_lock(&stub.lock);
        snprintf(stub.expiration, sizeof stub.expiration, "2026-11-27T11:00:00Z");
        pthread_mutex_unlock(&stub.lock);
        assert_int_equal(credentials_get(p, EXPIRY_1000Z - 300, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000002");
        assert_string_equal(c->session_token, STUB_TOKEN_PREFIX "0002//////////EXAMPLE==");
        assert_int_equal(c->expiration, EXPIRY_1100Z);
        assert_int_equal(stub_count(), 6);

        /* the refresh fails: the old ones stay until they really expire,
         * with one warning */
        free(log_take()); /* start the log afresh */
        stub_set_status(&stub.creds_status, 500);
        assert_int_equal(credentials_get(p, EXPIRY_1100Z - 200, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000002");
        assert_int_equal(stub_count(), 9);
        /* asked again only after a minute */
        assert_int_equal(credentials_get(p, EXPIRY_1100Z - 170, &c), 0);
        assert_int_equal(stub_count(), 9);
        assert_int_equal(credentials_get(p, EXPIRY_1100Z - 100, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000002");
        assert_int_equal(stub_count(), 12);
        _cleanup_(freep) char *log = log_take();
        assert_int_equal(count_substr(log, "warning: refreshing AWS credentials from imds failed"), 1);
        assert_int_equal(count_substr(log, "debug: refreshing AWS credentials from imds failed"), 1);
        assert_non_null(strstr(log, "(access key id ...0002)"));

        /* expired and still failing: an error that says so */
        assert_true(credentials_get(p, EXPIRY_1100Z, &c) < 0);
        assert_non_null(strstr(credentials_provider_error(p), "expired at 2026-11-27T11:00:00Z"));
        assert_non_null(strstr(credentials_provider_error(p), "HTTP 500"));
        /* the source recovers */
        stub_set_status(&stub.creds_status, 200);
        pthread_mutex_lock(&stub.lock);
        snprintf(stub.expiration, sizeof stub.expiration, "2026-11-27T12:00:00Z");
        pthread_mutex_unlock(&stub.lock);
        /* with nothing valid left, asked again after a minute (not at
         * every call: a source that hangs would stall every call) */
        assert_true(credentials_get(p, EXPIRY_1100Z + 10, &c) < 0);
        assert_int_equal(credentials_get(p, EXPIRY_1100Z + 60, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000006");
        assert_string_equal(credentials_provider_error(p), "");

        /* a source whose credentials are always within the window (it
         * keeps serving 12:00 while the clock nears it) is asked again
         * when half of what was left is gone (299 s left: after 150 s),
         * and what it gave is used meanwhile */
        assert_int_equal(credentials_get(p, EXPIRY_1100Z + 3600 - 299, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000007");
        size_t n = stub_count();
        assert_int_equal(credentials_get(p, EXPIRY_1100Z + 3600 - 299 + 149, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000007");
        assert_int_equal(stub_count(), n);
        assert_int_equal(credentials_get(p, EXPIRY_1100Z + 3600 - 299 + 150, &c), 0);
        assert_string_equal(c->access_key_id, "ASIASTUB000000000008");

        /* long-term credentials are never refreshed */
        _cleanup_(credentials_provider_freep) struct credentials_provider *q = NULL;
        set_env("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001");
        set_env("AWS_SECRET_ACCESS_KEY", ENV_SECRET);
        assert_int_equal(credentials_provider_new(NULL, &q), 0);
        assert_int_equal(credentials_get(q, 1, &c), 0);
        assert_int_equal(unsetenv("AWS_ACCESS_KEY_ID"), 0);
        assert_int_equal(credentials_get(q, UINT64_MAX / 2, &c), 0);
        assert_string_equal(c->access_key_id, "AKIDENVIRONMENT00001");
}

/* At debug verbosity, across every source and the failure paths, no
 * secret key, session token or authorization token reaches the log or the
 * error text; what is logged names the source and the key's last four. */
static void test_log_has_no_secrets(_unused_ void **state) {
        _cleanup_(credentials_provider_freep) struct credentials_provider *p = NULL;
        const struct aws_credentials *c = NULL;
        _cleanup_(freep) char *errors = NULL;
        assert_int_equal(log_get_max_priority(), LOG_DEBUG);

        set_env("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT00001");
        set_env("AWS_SECRET_ACCESS_KEY", ENV_SECRET);
        set_env("AWS_SESSION_TOKEN", ENV_TOKEN);
        assert_int_equal(credentials_provider_new(NULL, &p), 0);
        assert_int_equal(credentials_get(p, EXPIRY_1000Z - 3600, &c), 0);
        p = credentials_provider_free(p);
        assert_int_equal(unsetenv("AWS_ACCESS_KEY_ID"), 0);

        set_env("AWS_SHARED_CREDENTIALS_FILE", DATA "/credentials");
        assert_int_equal(credentials_provider_new("envprof", &p), 0);
        assert_int_equal(credentials_get(p, EXPIRY_1000Z - 3600, &c), 0);
        p = credentials_provider_free(p);
        assert_int_equal(unsetenv("AWS_SHARED_CREDENTIALS_FILE"), 0);

        container_enable();
        set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN", CONTAINER_AUTH);
        assert_int_equal(credentials_provider_new(NULL, &p), 0);
        assert_int_equal(credentials_get(p, EXPIRY_1000Z - 3600, &c), 0);
        stub_set_status(&stub.creds_status, 500);
        assert_int_equal(credentials_get(p, EXPIRY_1000Z - 100, &c), 0); /* warning */
        assert_true(credentials_get(p, EXPIRY_1000Z + 100, &c) < 0);
        errors = strdup(credentials_provider_error(p));
        p = credentials_provider_free(p);
        assert_int_equal(unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), 0);

        stub_set_status(&stub.creds_status, 200);
        imds_enable();
        assert_int_equal(credentials_provider_new(NULL, &p), 0);
        assert_int_equal(credentials_get(p, EXPIRY_1000Z - 3600, &c), 0);
        assert_string_equal(c->source, "imds");
        p = credentials_provider_free(p);

        _cleanup_(freep) char *log = log_take();
        static const char *const secrets[] = {
                ENV_SECRET, ENV_TOKEN, "envProfileSecret", "envProfileToken", STUB_SECRET_PREFIX, STUB_TOKEN_PREFIX,
                STUB_TOKEN, CONTAINER_AUTH,
        };
        for (size_t i = 0; i < ELEMENTSOF(secrets); i++) {
                if (strstr(log, secrets[i]))
                        fail_msg("the log contains \"%s\":\n%s", secrets[i], log);
                if (strstr(errors, secrets[i]))
                        fail_msg("the error contains \"%s\": %s", secrets[i], errors);
        }
        /* the log is not empty: it names each source and a key's tail */
        assert_non_null(strstr(log, "debug: using AWS credentials from environment (access key id ...0001)"));
        assert_non_null(strstr(log, "debug: using AWS credentials from shared-file (access key id ...0003)"));
        assert_non_null(strstr(log, "debug: using AWS credentials from container"));
        assert_non_null(strstr(log, "warning: refreshing AWS credentials from container failed"));
        assert_non_null(strstr(log, "debug: using AWS credentials from imds (access key id ..."));
        assert_non_null(strstr(log, ", expiring at 2026-11-27T10:00:00Z)"));
        /* and never a whole access key id either */
        assert_null(strstr(log, "AKIDENVIRONMENT00001"));
}

/* Role, web identity, process and SSO profiles that fail before any STS
 * call: each with its errno and the words the operator reads. */
static void test_profile_chains(_unused_ void **state) {
        static const struct {
                const char *profile;
                int r;
                const char *message;
        } cases[] = {
                { "loop-a", -ELOOP, "source_profile profiles form a loop: loop-a -> loop-b -> loop-c -> loop-a" },
                { "loop-b", -ELOOP, "loop-b -> loop-c -> loop-a -> loop-b" },
                { "both-sources", -EINVAL, "profile both-sources has both source_profile and credential_source" },
                { "no-source", -EINVAL,
                  "profile no-source has role_arn but no source_profile, credential_source or web_identity_token_file" },
                { "bad-source", -EINVAL, "credential_source must be Environment, Ec2InstanceMetadata or EcsContainer" },
                { "self-no-keys", -EINVAL, "profile self-no-keys names itself as source_profile but has no keys" },
                { "missing-source", -ENOKEY, "source_profile nowhere of profile missing-source does not exist" },
                { "bad-duration", -EINVAL, "duration_seconds must be a number from 900 to 43200" },
                { "webid-no-role", -EINVAL, "profile webid-no-role has web_identity_token_file but no role_arn" },
                { "webid-no-file", -EIO, "profile webid-no-file: cannot read the web identity token file /nonexistent/token" },
                { "env-source-empty", -ENOKEY, "profile env-source-empty: credential_source Environment has no credentials" },
                { "chained-sso", -EOPNOTSUPP, "profile sso-login uses sso_session: AWS IAM Identity Center (SSO)" },
                { "sso-login", -EOPNOTSUPP, "profile sso-login uses sso_session" },
                { "process-missing", -EIO, "cannot run credential_process /nonexistent/bin/print-credentials" },
                { "process-quote", -EIO, "credential_process is not a command line" },
        };
        set_env("AWS_CONFIG_FILE", DATA "/profiles");
        set_env("AWS_SHARED_CREDENTIALS_FILE", DATA "/does-not-exist");
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                expect_error(cases[i].profile, cases[i].r, cases[i].message);
        /* the same profiles from $CREDENTIALS_DIRECTORY/aws (credentials
         * file format: no "profile " prefix) */
        write_file("creds/aws", "[a]\nrole_arn = arn:aws:iam::111122223333:role/a\nsource_profile = b\n"
                                "[b]\nrole_arn = arn:aws:iam::111122223333:role/b\nsource_profile = a\n");
        _cleanup_(freep) char *creddir = tmp_path("creds");
        set_env("CREDENTIALS_DIRECTORY", creddir);
        expect_error("a", -ELOOP, "profiles form a loop: a -> b -> a");
        /* none of it was an HTTP call */
        assert_int_equal(stub_count(), 0);
}

static void test_process_split(_unused_ void **state) {
        static const struct {
                const char *cmd;
                int r;
                const char *words[6];
        } cases[] = {
                { "/usr/bin/helper", 0, { "/usr/bin/helper" } },
                { "  helper  --profile   prod ", 0, { "helper", "--profile", "prod" } },
                { "helper 'two words' \"and three words\"", 0, { "helper", "two words", "and three words" } },
                { "helper '$HOME;rm -rf /' `x` $(y) a|b", 0, { "helper", "$HOME;rm -rf /", "`x`", "$(y)", "a|b" } },
                { "helper \"a \\\"q\\\" \\$x \\n\"", 0, { "helper", "a \"q\" $x \\n" } },
                { "helper a\\ b c'd'e", 0, { "helper", "a b", "cde" } },
                { "helper 'unterminated", -EINVAL, { NULL } },
                { "helper \"unterminated", -EINVAL, { NULL } },
                { "helper trailing\\", -EINVAL, { NULL } },
                { "   ", -EINVAL, { NULL } },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(strv_freep) char **v = NULL;
                int r = process_split_command(cases[i].cmd, &v);
                if (r != cases[i].r)
                        fail_msg("[%s]: got %d, expected %d", cases[i].cmd, r, cases[i].r);
                if (r < 0)
                        continue;
                size_t n = 0;
                for (; cases[i].words[n]; n++) {
                        assert_non_null(v[n]);
                        if (!streq(v[n], cases[i].words[n]))
                                fail_msg("[%s] word %zu: got [%s], expected [%s]", cases[i].cmd, n, v[n],
                                         cases[i].words[n]);
                }
                assert_null(v[n]);
        }
}

static void test_process_output(_unused_ void **state) {
        static const struct {
                const char *file;
                int r;
                const char *akid, *token;
                uint64_t expiration;
                const char *message;
        } cases[] = {
                { "long-term.json", 0, "AKIDPROCESS000000001", NULL, 0, NULL },
                { "temporary.json", 0, "ASIAPROCESS000000002", "processToken0002", EXPIRY_1000Z, NULL },
                { "version-2.json", -EINVAL, NULL, NULL, 0, "no \"Version\": 1" },
                { "version-string.json", -EINVAL, NULL, NULL, 0, "no \"Version\": 1" },
                { "no-version.json", -EINVAL, NULL, NULL, 0, "no \"Version\": 1" },
                { "missing-secret.json", -EINVAL, NULL, NULL, 0, "lacks AccessKeyId or SecretAccessKey" },
                { "bad-expiration.json", -EINVAL, NULL, NULL, 0, "Expiration is not an ISO-8601 time" },
                { "not-json.txt", -EINVAL, NULL, NULL, 0, "not a JSON object" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(freep) char *path = strprintf(DATA "/process/%s", cases[i].file), *text = NULL,
                                      *err = NULL;
                _cleanup_(aws_credentials_freep) struct aws_credentials *c = NULL;
                size_t len;
                assert_int_equal(read_full_file(path, 1 << 20, &text, &len), 0);
                int r = process_parse_output(text, len, &c, &err);
                if (r != cases[i].r)
                        fail_msg("%s: got %d (%s), expected %d", cases[i].file, r, err ? err : "-", cases[i].r);
                if (r < 0) {
                        assert_non_null(err);
                        assert_non_null(strstr(err, cases[i].message));
                        /* the message never quotes the output */
                        assert_null(strstr(err, "processSecret"));
                        assert_null(strstr(err, "AKIDPROCESS"));
                        continue;
                }
                assert_string_equal(c->access_key_id, cases[i].akid);
                if (cases[i].token)
                        assert_string_equal(c->session_token, cases[i].token);
                else
                        assert_null(c->session_token);
                assert_int_equal(c->expiration, cases[i].expiration);
                assert_string_equal(c->source, "process");
        }
}

/* Real processes: no shell, the limits, the environment. */
static void test_process_run(_unused_ void **state) {
        _cleanup_(aws_credentials_freep) struct aws_credentials *c = NULL;
        _cleanup_(freep) char *cmd = strprintf("/bin/cat %s/process/temporary.json", DATA);
        char *err = NULL;

        assert_int_equal(process_credentials(cmd, 0, &c, &err), 0);
        assert_string_equal(c->access_key_id, "ASIAPROCESS000000002");
        assert_null(err);

        /* exit status, timeout, output bound, a missing program */
        assert_int_equal(process_credentials("/bin/false", 0, &c, &err), -ECHILD);
        assert_non_null(strstr(err, "credential_process /bin/false exited with status 1"));
        usec_t t0 = clock_boottime_usec();
        assert_int_equal(process_credentials("/bin/sleep 30", 300 * USEC_PER_MSEC, &c, &err), -ETIME);
        assert_true(clock_boottime_usec() - t0 < 5 * USEC_PER_SEC);
        assert_non_null(strstr(err, "did not finish within"));
        assert_int_equal(process_credentials("/usr/bin/head -c 10000000 /dev/zero", 0, &c, &err), -EFBIG);
        assert_non_null(strstr(err, "printed more than 65536 bytes and was killed"));
        assert_int_equal(process_credentials("/nonexistent/helper", 0, &c, &err), -ENOENT);
        /* no shell: ';' and '$' are words */
        assert_int_equal(process_credentials("/bin/echo '{}' ; /bin/false $HOME", 0, &c, &err), -EINVAL);
        assert_non_null(strstr(err, "not a JSON object")); /* it printed "{} ; /bin/false $HOME" */

        /* no secret of the environment reaches the process */
        set_env("AWS_SECRET_ACCESS_KEY", ENV_SECRET);
        set_env("AWS_SESSION_TOKEN", ENV_TOKEN);
        set_env("AWS_REGION", "eu-west-2");
        _cleanup_(freep) char *envfile = tmp_path("env.txt");
        _cleanup_(freep) char *envcmd = strprintf("/bin/sh -c '/usr/bin/env > %s; /bin/cat %s/process/long-term.json'",
                                                  envfile, DATA);
        aws_credentials_free(c);
        c = NULL;
        assert_int_equal(process_credentials(envcmd, 0, &c, &err), 0);
        _cleanup_(freep) char *envtext = NULL;
        size_t n;
        assert_int_equal(read_full_file(envfile, 1 << 20, &envtext, &n), 0);
        assert_null(strstr(envtext, ENV_SECRET));
        assert_null(strstr(envtext, ENV_TOKEN));
        assert_non_null(strstr(envtext, "AWS_REGION=eu-west-2"));
        free(err);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_parse_iso8601, setup, teardown),
                cmocka_unit_test_setup_teardown(test_parse_ini, setup, teardown),
                cmocka_unit_test_setup_teardown(test_parse_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_chain_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_profile_selection, setup, teardown),
                cmocka_unit_test_setup_teardown(test_profile_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_imds_v2, setup, teardown),
                cmocka_unit_test_setup_teardown(test_imds_v1_fallback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_container, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_has_no_secrets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_profile_chains, setup, teardown),
                cmocka_unit_test_setup_teardown(test_process_split, setup, teardown),
                cmocka_unit_test_setup_teardown(test_process_output, setup, teardown),
                cmocka_unit_test_setup_teardown(test_process_run, setup, teardown),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
