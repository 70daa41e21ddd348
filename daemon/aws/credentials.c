/* credentials.c: the AWS credential chain (connect-numbersd(8),
 * CREDENTIALS; docs/connect-api.md §9): environment, $CREDENTIALS_DIRECTORY/aws
 * (for root outside the service, /etc/connect-numbers/aws-credentials),
 * the shared credentials and config files, container credentials, EC2
 * IMDSv2; and the refresh of temporary credentials.
 * This is an I/O edge: it reads the environment and files and makes short
 * blocking HTTP calls (libcurl easy handles, 1-2 s timeouts, 64 KiB
 * replies, plain HTTP only to loopback and link-local hosts, no proxies).
 * It never reads the clock (now is an argument) and never logs or returns
 * a secret: messages name the source and at most the access key id's last
 * four characters. Secrets are wiped from every buffer that held them. */
#include "credentials.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "../log.h"
#include "http.h"
#include "process.h"
#include "sts.h"

#ifndef VERSION
#define VERSION "0"
#endif

/* Refresh temporary credentials this long before they expire (connect-numbersd(8):
 * "refreshed before they expire"; botocore's mandatory window is 10 min,
 * its advisory one 15; 5 min leaves room for a slow pass). */
#define REFRESH_BEFORE_SEC 300
/* While the current credentials are still usable, walk the chain again
 * at most this often: a source that hands out credentials that expire in
 * less than REFRESH_BEFORE_SEC, or that fails, is not asked on every call. */
#define REFRESH_RETRY_SEC 60
#define RESPONSE_MAX_BYTES (64 * 1024)
#define FILE_MAX_BYTES (1024 * 1024)
#define TOKEN_FILE_MAX_BYTES (16 * 1024)
/* STS takes web identity tokens of up to 20000 characters. */
#define WEB_IDENTITY_TOKEN_MAX_BYTES (32 * 1024)
/* source_profile chains longer than this are refused as a loop would be. */
#define PROFILE_CHAIN_MAX 16
#define DEFAULT_SESSION_NAME "connect-numbers"

#define CONTAINER_HOST_RELATIVE "http://169.254.170.2"
#define CONTAINER_TIMEOUT_MS 2000L
#define CONTAINER_ATTEMPTS 3
#define IMDS_ENDPOINT_IPV4 "http://169.254.169.254"
#define IMDS_ENDPOINT_IPV6 "http://[fd00:ec2::254]"
#define IMDS_TOKEN_TTL_SEC "21600"
#define IMDS_TIMEOUT_MS 1000L
#define IMDS_ATTEMPTS 1

#define NO_CREDENTIALS_MESSAGE                                                                            \
        "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, use LoadCredential=aws:..., " \
        "a profile in ~/.aws/credentials, or an instance role"
#define UNSUPPORTED_HINT                                                                                   \
        "use aws_access_key_id/aws_secret_access_key, role_arn, web identity, credential_process, "        \
        "LoadCredential=aws:..., container credentials or an instance role"

struct credentials_provider {
        char *profile;                 /* the YAML's profile:, or NULL */
        char *region;                  /* where the chain's own STS calls go, or NULL (then AWS_REGION...) */
        uint64_t obtained;             /* wall seconds when creds arrived */
        char *error_aws_code;          /* the STS code of the last failure, or NULL */
        const char *error_operation;   /* "AssumeRole", "AssumeRoleWithWebIdentity", "credential_process" or NULL */
        bool failure_logged;           /* this failure episode is in the log */
        struct aws_credentials *creds; /* what credentials_get() hands out, or NULL */
        char *error;                   /* one line: why the last walk of the chain failed */
        int error_code;                /* its negative errno */
        bool attempted;                /* the chain was walked at least once */
        uint64_t last_attempt_sec;     /* wall seconds of the last walk */
        bool last_attempt_ok;          /* that walk produced creds */
        bool refresh_failure_logged;   /* the warning for a failed refresh was given */
};

/* Step results inside the chain: a source either has credentials (FOUND),
 * has none and the walk goes on (NOT_FOUND, maybe with a note), or fails
 * (a negative errno, which ends the walk). */
enum {
        NOT_FOUND = 0,
        FOUND = 1,
};

_printf_(3, 4) static int set_error(char **ret_error, int r, const char *fmt, ...) {
        if (ret_error) {
                va_list ap;
                va_start(ap, fmt);
                char *s = strvprintf(fmt, ap);
                va_end(ap);
                free(*ret_error);
                *ret_error = s;
        }
        return r;
}

static const char *env(const char *name) {
        const char *v = getenv(name);
        return isempty(v) ? NULL : v;
}

static bool env_true(const char *name) {
        const char *v = env(name);
        return v && strcasecmp(v, "true") == 0;
}

/* The last four characters of an access key id, the most that messages
 * show of it. */
static const char *key_tail(const struct aws_credentials *c) {
        size_t n = c && c->access_key_id ? strlen(c->access_key_id) : 0;
        return n >= 8 ? c->access_key_id + n - 4 : "????";
}

/* Characters that can go into an HTTP header or the Credential= field
 * unchanged: printable ASCII, no space. A value from a file or an
 * endpoint with a line break would otherwise smuggle headers in. */
static bool token_chars_ok(const char *s, const char *also_reject) {
        if (isempty(s))
                return false;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if (*p <= 0x20 || *p >= 0x7f || (also_reject && strchr(also_reject, *p)))
                        return false;
        return true;
}

int credentials_new(const char *access_key_id, const char *secret, const char *token, uint64_t expiration,
                           const char *source, struct aws_credentials **ret) {
        if (!token_chars_ok(access_key_id, "/,=") || !token_chars_ok(secret, NULL) ||
            (token && !token_chars_ok(token, NULL)))
                return -EINVAL;
        _cleanup_(aws_credentials_freep) struct aws_credentials *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->access_key_id = strdup(access_key_id);
        c->secret_access_key = strdup(secret);
        c->session_token = strdup_or_null(token);
        c->source = strdup_or_null(source);
        if (!c->access_key_id || !c->secret_access_key || (token && !c->session_token) ||
            (source && !c->source))
                return -ENOMEM;
        c->expiration = expiration;
        *ret = TAKE_PTR(c);
        return 0;
}

static int parse_digits(const char **p, size_t n, int *ret) {
        int v = 0;
        for (size_t i = 0; i < n; i++) {
                if ((*p)[i] < '0' || (*p)[i] > '9')
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

static int expect_char(const char **p, const char *chars) {
        if (!**p || !strchr(chars, **p))
                return -EINVAL;
        (*p)++;
        return 0;
}

int credentials_parse_iso8601(const char *s, uint64_t *ret) {
        static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int year, mon, day, hour, min, sec, off = 0;
        const char *p = s;

        if (!s)
                return -EINVAL;
        if (parse_digits(&p, 4, &year) < 0 || expect_char(&p, "-") < 0 || parse_digits(&p, 2, &mon) < 0 ||
            expect_char(&p, "-") < 0 || parse_digits(&p, 2, &day) < 0 || expect_char(&p, "Tt ") < 0 ||
            parse_digits(&p, 2, &hour) < 0 || expect_char(&p, ":") < 0 || parse_digits(&p, 2, &min) < 0 ||
            expect_char(&p, ":") < 0 || parse_digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (*p == '.' || *p == ',') {
                /* fractional seconds: dropped (an expiry rounds down) */
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        if (*p == 'Z' || *p == 'z')
                p++;
        else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1, oh, om;
                p++;
                if (parse_digits(&p, 2, &oh) < 0)
                        return -EINVAL;
                if (*p == ':')
                        p++;
                if (parse_digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
                        return -EINVAL;
                off = sign * (oh * 3600 + om * 60);
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;
        if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hour > 23 || min > 59 ||
            sec > 60)
                return -EINVAL;
        if (mon == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
                return -EINVAL;

        struct tm tm = {
                .tm_year = year - 1900,
                .tm_mon = mon - 1,
                .tm_mday = day,
                .tm_hour = hour,
                .tm_min = min,
                .tm_sec = sec,
        };
        time_t t = timegm(&tm);
        if (t == (time_t) -1)
                return -ERANGE;
        int64_t v = (int64_t) t - off;
        if (v < 0)
                return -ERANGE;
        *ret = (uint64_t) v;
        return 0;
}

/* ---- shared credentials / config files ---- */

/* Profile keys of a provider this version refuses: AWS IAM Identity
 * Center (SSO), whose tokens come from an interactive login. */
static bool key_unsupported(const char *key) {
        return strncmp(key, "sso_", 4) == 0;
}

/* The settings of a profile that pick and configure its provider. */
#define PROFILE_SETTINGS(X)                                                                               \
        X(role_arn) X(source_profile) X(credential_source) X(external_id) X(role_session_name)              \
        X(duration_seconds) X(web_identity_token_file) X(credential_process)

struct ini_profile {
        bool found;              /* the section exists */
        char *access_key_id;
        char *secret_access_key; /* wiped when freed */
        char *session_token;     /* wiped when freed */
        char *unsupported;       /* the first key this version refuses, e.g. "sso_start_url" */
#define X(name) char *name;
        PROFILE_SETTINGS(X)
#undef X
};

static void ini_profile_done(struct ini_profile *p) {
        free(p->access_key_id);
        free_cleanse_str(p->secret_access_key);
        free_cleanse_str(p->session_token);
        free(p->unsupported);
#define X(name) free(p->name);
        PROFILE_SETTINGS(X)
#undef X
        *p = (struct ini_profile) {};
}

/* Merges from into into, keys of into winning (the credentials file
 * over the config file, as botocore merges them). from is emptied. */
static void ini_profile_merge(struct ini_profile *into, struct ini_profile *from) {
        into->found = into->found || from->found;
#define TAKE(name)                                         \
        if (!into->name)                                   \
                into->name = TAKE_PTR(from->name);
        TAKE(access_key_id)
        TAKE(secret_access_key)
        TAKE(session_token)
        TAKE(unsupported)
#define X(name) TAKE(name)
        PROFILE_SETTINGS(X)
#undef X
#undef TAKE
        ini_profile_done(from);
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

static void trim(const char **s, size_t *n) {
        while (*n > 0 && is_blank(**s)) {
                (*s)++;
                (*n)--;
        }
        while (*n > 0 && is_blank((*s)[*n - 1]))
                (*n)--;
}

/* Does section header text (between the brackets, trimmed) name profile?
 * Credentials files: "[NAME]". Config files: "[default]" or
 * "[profile NAME]" (botocore also takes "[profile default]"). */
static bool section_matches(const char *s, size_t n, const char *profile, bool is_config) {
        size_t pl = strlen(profile);
        if (!is_config || (n == 7 && memcmp(s, "default", 7) == 0 && streq(profile, "default")))
                return n == pl && memcmp(s, profile, pl) == 0;
        if (n < 8 || memcmp(s, "profile", 7) != 0 || !is_blank(s[7]))
                return false;
        s += 8;
        n -= 8;
        trim(&s, &n);
        return n == pl && memcmp(s, profile, pl) == 0;
}

/* Parses the INI dialect of botocore (configparser): "[section]" lines,
 * "key = value" or "key: value" lines (keys case-insensitive, values
 * trimmed, no inline comments), full-line comments with '#' or ';',
 * indented continuation lines (nested settings such as "s3 =") ignored.
 * Repeated sections or keys: the last value wins. Collects the named
 * profile's keys into ret. */
static int ini_parse(const char *text, size_t len, const char *profile, bool is_config, struct ini_profile *ret,
                     char **ret_error) {
        _cleanup_(ini_profile_done) struct ini_profile prof = {};
        bool in_section = false, seen_section = false, in_value = false;
        size_t value_indent = 0;
        unsigned line = 0;

        if (!text && len > 0)
                return -EINVAL;
        if (!text)
                text = "";
        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
                text += 3;
                len -= 3;
        }
        if (memchr(text, 0, len))
                return set_error(ret_error, -EINVAL, "the file contains a NUL byte");

        for (const char *p = text, *end = text + len; p < end;) {
                const char *eol = memchr(p, '\n', (size_t) (end - p));
                size_t n = eol ? (size_t) (eol - p) : (size_t) (end - p);
                const char *s = p;
                size_t indent = 0;

                p = eol ? eol + 1 : end;
                line++;
                if (n > 0 && s[n - 1] == '\r')
                        n--;
                while (indent < n && is_blank(s[indent]))
                        indent++;
                s += indent;
                n -= indent;
                trim(&s, &n);
                if (n == 0 || s[0] == '#' || s[0] == ';')
                        continue;
                if (in_value && indent > value_indent)
                        continue; /* continuation of the previous value */
                in_value = false;

                if (s[0] == '[') {
                        const char *close = memrchr(s, ']', n);
                        if (!close)
                                return set_error(ret_error, -EINVAL, "line %u: section header without ']'", line);
                        const char *name = s + 1;
                        size_t nl = (size_t) (close - name);
                        trim(&name, &nl);
                        if (nl == 0)
                                return set_error(ret_error, -EINVAL, "line %u: empty section name", line);
                        seen_section = true;
                        in_section = section_matches(name, nl, profile, is_config);
                        if (in_section)
                                prof.found = true;
                        continue;
                }

                /* the text is length-bounded, not NUL-terminated: no strcspn */
                size_t kl = 0;
                while (kl < n && s[kl] != '=' && s[kl] != ':')
                        kl++;
                if (kl >= n)
                        return set_error(ret_error, -EINVAL, "line %u: expected \"key = value\" or \"[section]\"",
                                         line);
                if (!seen_section)
                        return set_error(ret_error, -EINVAL, "line %u: setting outside of any [section]", line);
                const char *k = s, *v = s + kl + 1;
                size_t vl = n - kl - 1;
                trim(&k, &kl);
                trim(&v, &vl);
                if (kl == 0)
                        return set_error(ret_error, -EINVAL, "line %u: empty key", line);
                in_value = true;
                value_indent = indent;
                if (!in_section)
                        continue;

                _cleanup_(freep) char *key = strndup(k, kl);
                if (!key)
                        return -ENOMEM;
                for (char *c = key; *c; c++)
                        if (*c >= 'A' && *c <= 'Z')
                                *c = (char) (*c - 'A' + 'a');
                char **dest = NULL;
                bool secret = false;
                if (streq(key, "aws_access_key_id"))
                        dest = &prof.access_key_id;
                else if (streq(key, "aws_secret_access_key")) {
                        dest = &prof.secret_access_key;
                        secret = true;
                } else if (streq(key, "aws_session_token") || streq(key, "aws_security_token")) {
                        dest = &prof.session_token;
                        secret = true;
                } else if (key_unsupported(key)) {
                        if (!prof.unsupported)
                                prof.unsupported = TAKE_PTR(key);
                }
#define X(name) else if (streq(key, #name)) dest = &prof.name;
                PROFILE_SETTINGS(X)
#undef X
                if (dest) {
                        char *val = vl > 0 ? strndup(v, vl) : NULL;
                        if (vl > 0 && !val)
                                return -ENOMEM;
                        if (secret)
                                free_cleanse_str(*dest);
                        else
                                free(*dest);
                        *dest = val;
                }
        }
        *ret = prof;
        prof = (struct ini_profile) {};
        return 0;
}

/* Turns a parsed profile into credentials: FOUND, NOT_FOUND (no section,
 * or a section without keys), or an error for refused or half-given keys.
 * where: the file's name in messages. */
static int ini_profile_credentials(const struct ini_profile *prof, const char *profile, const char *where,
                                   const char *source, struct aws_credentials **ret, char **ret_error) {
        if (!prof->found)
                return NOT_FOUND;
        if (prof->unsupported)
                return set_error(ret_error, -EOPNOTSUPP,
                                 "profile %s uses %s: AWS IAM Identity Center (SSO) profiles are not supported "
                                 "(their tokens come from an interactive login); " UNSUPPORTED_HINT " (%s)",
                                 profile, prof->unsupported, where);
        if (!prof->access_key_id && !prof->secret_access_key)
                return NOT_FOUND;
        if (!prof->access_key_id || !prof->secret_access_key)
                return set_error(ret_error, -EINVAL, "profile %s in %s has %s but no %s", profile, where,
                                 prof->access_key_id ? "aws_access_key_id" : "aws_secret_access_key",
                                 prof->access_key_id ? "aws_secret_access_key" : "aws_access_key_id");
        int r = credentials_new(prof->access_key_id, prof->secret_access_key, prof->session_token, 0, source, ret);
        if (r == -EINVAL)
                return set_error(ret_error, r, "profile %s in %s: a key contains spaces or control characters",
                                 profile, where);
        if (r < 0)
                return set_error(ret_error, r, "out of memory");
        return FOUND;
}

int credentials_parse_ini(const char *text, size_t len, const char *profile, bool is_config,
                          struct aws_credentials **ret, char **ret_error) {
        _cleanup_(ini_profile_done) struct ini_profile prof = {};
        _cleanup_(freep) char *error = NULL;
        struct aws_credentials *c = NULL;
        int r;

        if (!profile || !ret)
                return -EINVAL;
        r = ini_parse(text, len, profile, is_config, &prof, &error);
        if (r >= 0) {
                r = ini_profile_credentials(&prof, profile, is_config ? "the config file" : "the credentials file",
                                            NULL, &c, &error);
                if (r == NOT_FOUND)
                        r = set_error(&error, prof.found ? -ENOKEY : -ENOENT,
                                      prof.found ? "profile %s has no aws_access_key_id/aws_secret_access_key"
                                                 : "profile %s not found",
                                      profile);
        }
        if (r < 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(error);
                return r;
        }
        if (ret_error)
                *ret_error = NULL;
        *ret = c;
        return 0;
}

/* Reads a file whose absence is normal: 0 with *ret NULL when it does not
 * exist. */
static int read_optional_file(const char *path, size_t max, char **ret, size_t *ret_len, char **ret_error) {
        char *s = NULL;
        size_t n = 0;
        int r = read_full_file(path, max, &s, &n);
        if (r == -ENOENT || r == -ENOTDIR) {
                *ret = NULL;
                *ret_len = 0;
                return 0;
        }
        if (r < 0)
                return set_error(ret_error, -EIO, "cannot read %s: %s", path, file_error_string(r));
        *ret = s;
        *ret_len = n;
        return 0;
}

/* Reads path (if it exists) and collects profile from it. */
static int ini_load(const char *path, const char *profile, bool is_config, struct ini_profile *ret,
                    char **ret_error) {
        char *text = NULL;
        size_t len = 0;
        _cleanup_(freep) char *error = NULL;
        int r = read_optional_file(path, FILE_MAX_BYTES, &text, &len, ret_error);
        if (r < 0)
                return r;
        if (!text) {
                *ret = (struct ini_profile) {};
                return 0;
        }
        r = ini_parse(text, len, profile, is_config, ret, &error);
        free_cleanse(text, len);
        if (r < 0)
                return set_error(ret_error, r, "%s: %s", path, error ? error : strerror(-r));
        return 0;
}

/* "~/x" -> "$HOME/x"; NULL if that needs an unset HOME. */
static char *expand_home(const char *path) {
        if (path[0] != '~')
                return strdup(path);
        const char *home = env("HOME");
        if (!home || (path[1] && path[1] != '/'))
                return NULL;
        return strprintf("%s%s", home, path + 1);
}

static char *shared_file_path(const char *env_name, const char *default_rel) {
        const char *e = env(env_name);
        if (e)
                return expand_home(e);
        const char *home = env("HOME");
        return home ? strprintf("%s/%s", home, default_rel) : NULL;
}

/* LoadCredential= feeds the service only: root at a shell (--plan, --once)
 * reads the file the unit hands over instead, so that both use the same
 * keys. CONNECT_NUMBERS_TEST_ROOT_CREDENTIALS moves it, for tests only. */
#define ROOT_CREDENTIALS_FILE "/etc/connect-numbers/aws-credentials"

/* ---- HTTP (container credentials, IMDS) ---- */

static bool host_is_loopback(const char *host) {
        struct in_addr a4;
        struct in6_addr a6;
        if (strcasecmp(host, "localhost") == 0)
                return true;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, host, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6);
        return false;
}

static bool host_equals_addr6(const char *host, const char *addr) {
        struct in6_addr a, b;
        return inet_pton(AF_INET6, host, &a) == 1 && inet_pton(AF_INET6, addr, &b) == 1 &&
               memcmp(&a, &b, sizeof a) == 0;
}

/* Hosts that plain HTTP may reach: loopback and the link-local
 * addresses the metadata services live on. */
static bool host_plain_http_ok(const char *host) {
        struct in_addr a4;
        struct in6_addr a6;
        if (host_is_loopback(host))
                return true;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 16) == 0xa9fe; /* 169.254.0.0/16 */
        if (inet_pton(AF_INET6, host, &a6) == 1)
                return IN6_IS_ADDR_LINKLOCAL(&a6) || host_equals_addr6(host, "fd00:ec2::23") ||
                       host_equals_addr6(host, "fd00:ec2::254");
        return false;
}

/* Splits url into scheme and host (IPv6 without brackets). */
static int url_scheme_host(const char *url, char **ret_scheme, char **ret_host) {
        CURLU *u = curl_url();
        char *scheme = NULL, *host = NULL;
        int r = 0;
        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                r = -EINVAL;
        curl_url_cleanup(u);
        if (r < 0) {
                curl_free(scheme);
                curl_free(host);
                return r;
        }
        size_t hl = strlen(host);
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
                memmove(host, host + 1, hl - 2);
                host[hl - 2] = 0;
        }
        char *pct = strchr(host, '%');
        if (pct)
                *pct = 0; /* IPv6 zone id */
        *ret_scheme = strdup(scheme);
        *ret_host = strdup(host);
        curl_free(scheme);
        curl_free(host);
        if (!*ret_scheme || !*ret_host) {
                free(*ret_scheme);
                free(*ret_host);
                return -ENOMEM;
        }
        return 0;
}

/* 1: https; 0: http to a host that allow() accepts; -EINVAL otherwise. */
static int url_check(const char *url, bool (*allow)(const char *host)) {
        _cleanup_(freep) char *scheme = NULL, *host = NULL;
        int r = url_scheme_host(url, &scheme, &host);
        if (r < 0)
                return r;
        if (strcasecmp(scheme, "https") == 0)
                return 1;
        if (strcasecmp(scheme, "http") == 0 && allow(host))
                return 0;
        return -EINVAL;
}

struct http_reply {
        long status; /* 0: no HTTP answer */
        char *body;  /* NUL-terminated; wiped when freed (it may hold a secret) */
        size_t len;
};

static void http_reply_done(struct http_reply *r) {
        free_cleanse(r->body, r->len);
        *r = (struct http_reply) {};
}

/* One bounded request, through http.c like every other request (its TLS
 * verification, timeouts, size cap, no redirects), never through a proxy.
 * 0 when an HTTP answer arrived (any status), else a negative errno with
 * *ret_error saying why. headers: NULL-terminated. */
static int cred_http(const char *method, const char *url, const char *const *headers, long timeout_ms,
                     struct http_reply *ret, char **ret_error) {
        _cleanup_(freep) char *error_text = NULL;
        _cleanup_(http_response_clear_sensitive) struct http_response resp = {};
        int https, r;

        https = url_check(url, host_plain_http_ok);
        if (https < 0)
                return set_error(ret_error, -EINVAL, "%s: plain http is allowed only to loopback or link-local hosts",
                                 url);
        struct http_request req = {
                .method = method,
                .url = url,
                .headers = (char *const *) headers,
                .connect_timeout_usec = (usec_t) timeout_ms * USEC_PER_MSEC,
                .timeout_usec = (usec_t) timeout_ms * USEC_PER_MSEC,
                .max_response_bytes = RESPONSE_MAX_BYTES,
                .allow_plain_http = https == 0,
                .no_proxy = true,
                .sensitive = true,
        };
        r = http_perform(&req, http_default_ca_file(), &resp, &error_text);
        if (r == -ENOMEM)
                return set_error(ret_error, r, "out of memory");
        if (r == -EINVAL)
                return set_error(ret_error, r, "%s: %s", url, error_text ?: "invalid request");
        if (r == -EFBIG)
                return set_error(ret_error, r, "%s: reply larger than %u bytes", url, (unsigned) RESPONSE_MAX_BYTES);
        if (r < 0)
                return set_error(ret_error, r == -ETIMEDOUT ? -ETIMEDOUT : -EIO, "%s: %s", url,
                                 error_text ?: "request failed");
        ret->status = resp.status;
        ret->len = resp.body_len;
        ret->body = TAKE_PTR(resp.body);
        return 0;
}

static void json_string_cleanse(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        if (json_is_string(v))
                OPENSSL_cleanse((char *) json_string_value(v), json_string_length(v));
}

int credentials_parse_json(const char *text, size_t len, struct aws_credentials **ret) {
        json_error_t err;
        int r;

        if ((!text && len > 0) || !ret)
                return -EINVAL;
        json_t *root = json_loadb(text ? text : "", len, 0, &err);
        if (!root)
                return -EINVAL;
        const char *code = json_string_value(json_object_get(root, "Code"));
        const char *akid = json_string_value(json_object_get(root, "AccessKeyId"));
        const char *secret = json_string_value(json_object_get(root, "SecretAccessKey"));
        json_t *tok = json_object_get(root, "Token"), *exp = json_object_get(root, "Expiration");
        uint64_t expiration = 0;

        if (!json_is_object(root) || (json_object_get(root, "Code") && (!code || !streq(code, "Success"))) ||
            !akid || !secret || (tok && !json_is_string(tok) && !json_is_null(tok)) ||
            (exp && !json_is_string(exp) && !json_is_null(exp)))
                r = -EINVAL;
        else if (json_is_string(exp) && credentials_parse_iso8601(json_string_value(exp), &expiration) < 0)
                r = -EINVAL;
        else {
                const char *token = json_string_value(tok);
                r = credentials_new(akid, secret, isempty(token) ? NULL : token, expiration, NULL, ret);
        }
        json_string_cleanse(root, "SecretAccessKey");
        json_string_cleanse(root, "Token");
        json_decref(root);
        return r;
}

/* Reads the container authorization token: the file (preferred) or the
 * variable. One trailing line break of the file is dropped; any other CR
 * or LF is refused, as botocore does, since it would end the header. */
static int container_auth_token(char **ret, char **ret_error) {
        const char *file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        char *tok = NULL;
        size_t n = 0;

        if (file) {
                int r = read_full_file(file, TOKEN_FILE_MAX_BYTES, &tok, &n);
                if (r < 0)
                        return set_error(ret_error, -EIO, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
                                         file, strerror(-r));
                if (n > 0 && tok[n - 1] == '\n')
                        tok[--n] = 0;
                if (n > 0 && tok[n - 1] == '\r')
                        tok[--n] = 0;
        } else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
                tok = strdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
                if (!tok)
                        return set_error(ret_error, -ENOMEM, "out of memory");
                n = strlen(tok);
        } else {
                *ret = NULL;
                return 0;
        }
        if (strpbrk(tok, "\r\n") || strlen(tok) != n) {
                free_cleanse(tok, n);
                return set_error(ret_error, -EINVAL, "the container authorization token contains a line break");
        }
        *ret = tok;
        return 0;
}

static bool host_container_ok(const char *host) {
        struct in_addr a4;
        if (host_is_loopback(host) || host_equals_addr6(host, "fd00:ec2::23"))
                return true;
        return inet_pton(AF_INET, host, &a4) == 1 && ntohl(a4.s_addr) == 0xa9feaa17; /* 169.254.170.23 */
}

static int from_container(struct aws_credentials **ret, char **ret_error) {
        const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        _cleanup_(freep) char *url = NULL;
        _cleanup_(free_cleanse_strp) char *token = NULL, *auth_header = NULL;
        _cleanup_(http_reply_done) struct http_reply reply = {};
        int r = -EIO;

        if (rel) {
                if (rel[0] != '/')
                        return set_error(ret_error, -EINVAL,
                                         "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'");
                url = strprintf(CONTAINER_HOST_RELATIVE "%s", rel);
        } else if (full) {
                if (url_check(full, host_container_ok) < 0)
                        return set_error(ret_error, -EINVAL,
                                         "AWS_CONTAINER_CREDENTIALS_FULL_URI must use https, or http to a loopback "
                                         "address, 169.254.170.23 or fd00:ec2::23");
                url = strdup(full);
        } else
                return NOT_FOUND;
        if (!url)
                return set_error(ret_error, -ENOMEM, "out of memory");

        r = container_auth_token(&token, ret_error);
        if (r < 0)
                return r;
        if (token) {
                auth_header = strprintf("Authorization: %s", token);
                if (!auth_header)
                        return set_error(ret_error, -ENOMEM, "out of memory");
        }
        const char *headers[] = { "Accept: application/json", auth_header, NULL };

        for (int attempt = 1; attempt <= CONTAINER_ATTEMPTS; attempt++) {
                http_reply_done(&reply);
                r = cred_http("GET", url, headers, CONTAINER_TIMEOUT_MS, &reply, ret_error);
                if (r == -EINVAL || r == -ENOMEM)
                        return r;
                if (r >= 0 && reply.status < 500)
                        break;
                log_debug("container credentials from %s, attempt %d of %d: %s", url, attempt, CONTAINER_ATTEMPTS,
                          r < 0 ? "no answer" : "server error");
        }
        if (r < 0)
                return set_error(ret_error, -EIO, "container credentials endpoint failed: %s",
                                 *ret_error ? *ret_error : strerror(-r));
        if (reply.status != 200)
                return set_error(ret_error, -EIO, "container credentials endpoint %s answered HTTP %ld", url,
                                 reply.status);
        r = credentials_parse_json(reply.body, reply.len, ret);
        if (r < 0)
                return set_error(ret_error, r == -ENOMEM ? r : -EIO,
                                 "container credentials endpoint %s sent a malformed credentials document", url);
        r = free_and_strdup(&(*ret)->source, "container");
        if (r < 0) {
                *ret = aws_credentials_free(*ret);
                return set_error(ret_error, r, "out of memory");
        }
        return FOUND;
}

static long env_long(const char *name, long def, long min, long max) {
        const char *v = env(name);
        char *end;
        if (!v)
                return def;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || end == v || *end || n < min || n > max)
                return def;
        return n;
}

/* AWS_METADATA_SERVICE_TIMEOUT: seconds, a decimal number as botocore
 * takes it. */
static long imds_timeout_ms(void) {
        const char *v = env("AWS_METADATA_SERVICE_TIMEOUT");
        char *end;
        if (!v)
                return IMDS_TIMEOUT_MS;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d > 0) || d > 60)
                return IMDS_TIMEOUT_MS;
        return MAX((long) (d * 1000), 1L);
}

struct imds {
        const char *base;
        long timeout_ms;
        long attempts;
        char *token_header; /* "x-aws-ec2-metadata-token: ..." or NULL (IMDSv1) */
};

/* GET base+path with the token when there is one; retries answers of 5xx
 * and transport errors. */
static int imds_get(const struct imds *m, const char *path, struct http_reply *ret, char **ret_error) {
        _cleanup_(freep) char *url = strprintf("%s%s", m->base, path);
        const char *headers[] = { m->token_header, NULL };
        int r = -EIO;
        if (!url)
                return set_error(ret_error, -ENOMEM, "out of memory");
        for (long attempt = 1; attempt <= m->attempts; attempt++) {
                http_reply_done(ret);
                r = cred_http("GET", url, headers, m->timeout_ms, ret, ret_error);
                if (r == -EINVAL || r == -ENOMEM || (r >= 0 && ret->status < 500))
                        break;
        }
        return r;
}

static bool role_name_ok(const char *s) {
        /* IAM role names: [\w+=,.@-]+ */
        if (isempty(s))
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      strchr("_+=,.@-", *p)))
                        return false;
        return true;
}

static int from_imds(struct aws_credentials **ret, char **ret_error) {
        _cleanup_(http_reply_done) struct http_reply reply = {};
        _cleanup_(freep) char *base = NULL, *role = NULL, *role_path = NULL;
        struct imds m = {
                .timeout_ms = imds_timeout_ms(),
                .attempts = env_long("AWS_METADATA_SERVICE_NUM_ATTEMPTS", IMDS_ATTEMPTS, 1, 10),
        };
        int r = -EIO;

        if (env_true("AWS_EC2_METADATA_DISABLED"))
                return set_error(ret_error, NOT_FOUND, "instance metadata disabled by AWS_EC2_METADATA_DISABLED");

        const char *e = env("AWS_EC2_METADATA_SERVICE_ENDPOINT"), *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        base = strdup(e ? e : mode && strcasecmp(mode, "IPv6") == 0 ? IMDS_ENDPOINT_IPV6 : IMDS_ENDPOINT_IPV4);
        if (!base)
                return set_error(ret_error, -ENOMEM, "out of memory");
        for (size_t n = strlen(base); n > 0 && base[n - 1] == '/'; n--)
                base[n - 1] = 0;
        if (url_check(base, host_plain_http_ok) < 0)
                return set_error(ret_error, -EINVAL,
                                 "AWS_EC2_METADATA_SERVICE_ENDPOINT must use https, or http to a loopback or "
                                 "link-local address");
        m.base = base;

        /* 1. IMDSv2 session token */
        _cleanup_(freep) char *token_url = strprintf("%s/latest/api/token", base);
        if (!token_url)
                return set_error(ret_error, -ENOMEM, "out of memory");
        const char *token_headers[] = { "x-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL_SEC, NULL };
        for (long attempt = 1; attempt <= m.attempts; attempt++) {
                http_reply_done(&reply);
                r = cred_http("PUT", token_url, token_headers, m.timeout_ms, &reply, ret_error);
                if (r == -EINVAL || r == -ENOMEM || (r >= 0 && reply.status < 500))
                        break;
        }
        if (r < 0) {
                /* no answer at all: not on EC2 (or IMDS is off) */
                if (r == -EINVAL || r == -ENOMEM)
                        return r;
                return set_error(ret_error, NOT_FOUND, "instance metadata service not reachable");
        }
        if (reply.status == 200) {
                /* the token: printable, no line breaks (it goes into a header) */
                while (reply.len > 0 && reply.body[reply.len - 1] && strchr("\r\n \t", reply.body[reply.len - 1]))
                        reply.body[--reply.len] = 0;
                if (!token_chars_ok(reply.body, NULL))
                        return set_error(ret_error, -EIO, "instance metadata service sent a malformed token");
                m.token_header = strprintf("x-aws-ec2-metadata-token: %s", reply.body);
                if (!m.token_header)
                        return set_error(ret_error, -ENOMEM, "out of memory");
        } else if (reply.status == 403 || reply.status == 404 || reply.status == 405) {
                if (env_true("AWS_EC2_METADATA_V1_DISABLED"))
                        return set_error(ret_error, NOT_FOUND,
                                         "instance metadata service refused an IMDSv2 token (HTTP %ld) and "
                                         "AWS_EC2_METADATA_V1_DISABLED forbids IMDSv1",
                                         reply.status);
                log_debug("instance metadata service refused an IMDSv2 token (HTTP %ld), using IMDSv1", reply.status);
        } else
                return set_error(ret_error, -EIO, "instance metadata service answered HTTP %ld to the token request",
                                 reply.status);

        /* 2. the role name */
        r = imds_get(&m, "/latest/meta-data/iam/security-credentials/", &reply, ret_error);
        if (r < 0)
                goto fail;
        if (reply.status == 404) {
                r = set_error(ret_error, NOT_FOUND, "no instance role attached (instance metadata answered HTTP 404)");
                goto fail;
        }
        if (reply.status != 200) {
                r = set_error(ret_error, -EIO, "instance metadata service answered HTTP %ld to the role request",
                              reply.status);
                goto fail;
        }
        role = strndup(reply.body, strcspn(reply.body, "\r\n"));
        if (!role) {
                r = set_error(ret_error, -ENOMEM, "out of memory");
                goto fail;
        }
        if (!role_name_ok(role)) {
                r = set_error(ret_error, -EIO, "instance metadata service sent a malformed role name");
                goto fail;
        }

        /* 3. the role's credentials */
        role_path = strprintf("/latest/meta-data/iam/security-credentials/%s", role);
        if (!role_path) {
                r = set_error(ret_error, -ENOMEM, "out of memory");
                goto fail;
        }
        r = imds_get(&m, role_path, &reply, ret_error);
        if (r < 0)
                goto fail;
        if (reply.status != 200) {
                r = set_error(ret_error, -EIO,
                              "instance metadata service answered HTTP %ld to the credentials request for role %s",
                              reply.status, role);
                goto fail;
        }
        r = credentials_parse_json(reply.body, reply.len, ret);
        if (r < 0) {
                r = set_error(ret_error, r == -ENOMEM ? r : -EIO,
                              "instance metadata service sent a malformed credentials document for role %s", role);
                goto fail;
        }
        r = free_and_strdup(&(*ret)->source, "imds");
        if (r < 0) {
                *ret = aws_credentials_free(*ret);
                r = set_error(ret_error, r, "out of memory");
                goto fail;
        }
        r = FOUND;
fail:
        free_cleanse_str(m.token_header);
        if (r < 0 && r != -ENOMEM && r != -EIO)
                r = set_error(ret_error, -EIO, "instance metadata service: %s", *ret_error ? *ret_error : strerror(-r));
        return r;
}

/* ---- profiles: role_arn, web identity, credential_process ---- */

/* One walk of the chain: the time (for signing STS calls) and, when a
 * step fails, what failed, for the catalogued record. */
struct walk {
        const struct credentials_provider *p;
        uint64_t now;
        char *code;            /* the STS error code, or NULL */
        const char *operation; /* "AssumeRole", "AssumeRoleWithWebIdentity", "credential_process" */
};

static void walk_done(struct walk *w) {
        w->code = mfree(w->code);
}

/* Where the chain's own STS calls go: region:, else AWS_REGION,
 * AWS_DEFAULT_REGION, else us-east-1 (every regional endpoint serves
 * every account). */
static const char *walk_region(const struct walk *w) {
        if (w->p && w->p->region)
                return w->p->region;
        return env("AWS_REGION") ?: env("AWS_DEFAULT_REGION") ?: "us-east-1";
}

static int walk_sts(struct walk *w, const struct sts_assume_role *a, const struct aws_credentials *caller,
                    const char *what, const char *source, struct aws_credentials **ret, char **ret_error) {
        _cleanup_(freep) char *endpoint = NULL, *code = NULL, *why = NULL;
        const char *region = walk_region(w);
        const char *op = a->web_identity_token ? "AssumeRoleWithWebIdentity" : "AssumeRole";
        int r = sts_endpoint(region, &endpoint);
        if (r < 0)
                return set_error(ret_error, r == -ENOMEM ? r : -EINVAL,
                                 "%s: no usable STS endpoint for region %s (check AWS_ENDPOINT_URL_STS and "
                                 "AWS_ENDPOINT_URL)",
                                 what, region);
        r = sts_call(endpoint, region, a, caller, w->now, ret, &code, &why);
        if (r < 0) {
                w->operation = op;
                free(w->code);
                w->code = TAKE_PTR(code);
                return set_error(ret_error, r == -ENOMEM ? r : r == -EACCES ? r : -EIO, "%s: %s for role %s failed: %s",
                                 what, op, a->role_arn, why ? why : strerror(-r));
        }
        r = free_and_strdup(&(*ret)->source, source);
        if (r < 0) {
                *ret = aws_credentials_free(*ret);
                return set_error(ret_error, r, "out of memory");
        }
        return FOUND;
}

/* AssumeRoleWithWebIdentity with the token read from token_file now: the
 * file is read at every refresh, as Kubernetes rotates it. */
static int from_web_identity(struct walk *w, const char *token_file, const char *role_arn, const char *session,
                             unsigned duration, const char *what, struct aws_credentials **ret, char **ret_error) {
        char *tok = NULL;
        size_t n = 0;
        int r = read_full_file(token_file, WEB_IDENTITY_TOKEN_MAX_BYTES, &tok, &n);
        if (r < 0)
                return set_error(ret_error, r == -ENOMEM ? r : -EIO, "%s: cannot read the web identity token file %s: %s",
                                 what, token_file, file_error_string(r));
        size_t cap = n;
        while (n > 0 && strchr(" \t\r\n", tok[n - 1]))
                tok[--n] = 0;
        if (n == 0 || strlen(tok) != n) {
                free_cleanse(tok, cap);
                return set_error(ret_error, -EINVAL, "%s: the web identity token file %s is empty or holds a NUL byte",
                                 what, token_file);
        }
        struct sts_assume_role a = {
                .role_arn = role_arn,
                .role_session_name = session ? session : DEFAULT_SESSION_NAME,
                .duration_sec = duration,
                .web_identity_token = tok,
        };
        _cleanup_(freep) char *source = strprintf("web identity (role %s)", role_arn);
        r = source ? walk_sts(w, &a, NULL, what, source, ret, ret_error) : set_error(ret_error, -ENOMEM, "out of memory");
        free_cleanse(tok, cap);
        return r;
}

static int from_process(struct walk *w, const char *cmd, const char *what, struct aws_credentials **ret,
                        char **ret_error) {
        _cleanup_(freep) char *why = NULL;
        int r = process_credentials(cmd, 0, ret, &why);
        if (r < 0) {
                w->operation = "credential_process";
                return set_error(ret_error, r == -ENOMEM ? r : -EIO, "%s: %s", what, why ? why : strerror(-r));
        }
        return FOUND;
}

/* Where profiles are read from: the credentials directory's file (in the
 * credentials file format) or the shared credentials and config files. */
struct profile_files {
        const char *cred_path; /* or NULL */
        const char *conf_path; /* or NULL */
        const char *where;     /* both, for messages */
        const char *source;    /* the source of static keys */
};

/* The named profile from both files, merged: the credentials file's keys
 * win over the config file's, as botocore merges them. */
static int profile_load(const struct profile_files *f, const char *name, struct ini_profile *ret, char **ret_error) {
        _cleanup_(ini_profile_done) struct ini_profile cred = {}, conf = {};
        int r;
        if (f->cred_path) {
                r = ini_load(f->cred_path, name, false, &cred, ret_error);
                if (r < 0)
                        return r;
        }
        if (f->conf_path) {
                r = ini_load(f->conf_path, name, true, &conf, ret_error);
                if (r < 0)
                        return r;
        }
        ini_profile_merge(&cred, &conf);
        *ret = cred;
        cred = (struct ini_profile) {};
        return 0;
}

static int profile_resolve(struct walk *w, const struct profile_files *f, const char *name, const char **chain,
                           size_t depth, bool *ret_found, struct aws_credentials **ret, char **ret_error);

static int parse_duration_seconds(const char *s, unsigned *ret) {
        char *end;
        if (!s) {
                *ret = 0;
                return 0;
        }
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v < 900 || v > 43200)
                return -EINVAL;
        *ret = (unsigned) v;
        return 0;
}

/* A profile with role_arn: its source credentials (source_profile,
 * credential_source), then AssumeRole; or web identity. */
static int profile_assume(struct walk *w, const struct profile_files *f, const char *name,
                          const struct ini_profile *prof, const char **chain, size_t depth,
                          struct aws_credentials **ret, char **ret_error) {
        _cleanup_(aws_credentials_freep) struct aws_credentials *base = NULL;
        _cleanup_(freep) char *what = strprintf("profile %s", name), *source = NULL;
        unsigned duration;
        int r;

        if (!what)
                return set_error(ret_error, -ENOMEM, "out of memory");
        if (parse_duration_seconds(prof->duration_seconds, &duration) < 0)
                return set_error(ret_error, -EINVAL, "profile %s: duration_seconds must be a number from 900 to 43200 (%s)",
                                 name, f->where);
        if (prof->web_identity_token_file)
                return from_web_identity(w, prof->web_identity_token_file, prof->role_arn, prof->role_session_name,
                                         duration, what, ret, ret_error);
        if (prof->source_profile && prof->credential_source)
                return set_error(ret_error, -EINVAL, "profile %s has both source_profile and credential_source (%s)",
                                 name, f->where);
        if (prof->source_profile && streq(prof->source_profile, name)) {
                /* its own keys assume its role, as botocore allows */
                r = ini_profile_credentials(prof, name, f->where, f->source, &base, ret_error);
                if (r == NOT_FOUND)
                        return set_error(ret_error, -EINVAL,
                                         "profile %s names itself as source_profile but has no keys (%s)", name,
                                         f->where);
                if (r < 0)
                        return r;
        } else if (prof->source_profile) {
                bool found = false;
                chain[depth] = name;
                r = profile_resolve(w, f, prof->source_profile, chain, depth + 1, &found, &base, ret_error);
                if (r < 0)
                        return r;
                if (r == NOT_FOUND)
                        return set_error(ret_error, -ENOKEY, "source_profile %s of profile %s %s (%s)",
                                         prof->source_profile, name,
                                         found ? "has no credentials" : "does not exist", f->where);
        } else if (prof->credential_source) {
                const char *cs = prof->credential_source;
                if (streq(cs, "Environment")) {
                        const char *akid = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
                        r = akid && secret ? credentials_new(akid, secret, env("AWS_SESSION_TOKEN"), 0, "environment",
                                                             &base)
                                           : NOT_FOUND;
                        if (r == 0 && base)
                                r = FOUND;
                        if (r == -EINVAL)
                                return set_error(ret_error, r,
                                                 "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN "
                                                 "contains spaces or control characters");
                } else if (streq(cs, "Ec2InstanceMetadata"))
                        r = from_imds(&base, ret_error);
                else if (streq(cs, "EcsContainer"))
                        r = from_container(&base, ret_error);
                else
                        return set_error(ret_error, -EINVAL,
                                         "profile %s: credential_source must be Environment, Ec2InstanceMetadata or "
                                         "EcsContainer, not \"%s\" (%s)",
                                         name, cs, f->where);
                if (r < 0)
                        return r;
                if (r == NOT_FOUND)
                        return set_error(ret_error, -ENOKEY, "profile %s: credential_source %s has no credentials",
                                         name, cs);
        } else
                return set_error(ret_error, -EINVAL,
                                 "profile %s has role_arn but no source_profile, credential_source or "
                                 "web_identity_token_file (%s)",
                                 name, f->where);

        struct sts_assume_role a = {
                .role_arn = prof->role_arn,
                .role_session_name = prof->role_session_name ? prof->role_session_name : DEFAULT_SESSION_NAME,
                .external_id = prof->external_id,
                .duration_sec = duration,
        };
        source = strprintf("profile %s (role %s)", name, prof->role_arn);
        if (!source)
                return set_error(ret_error, -ENOMEM, "out of memory");
        return walk_sts(w, &a, base, what, source, ret, ret_error);
}

/* FOUND, NOT_FOUND (*ret_found: whether the section exists) or an error.
 * chain: the profiles that led here (depth of them), for loops. */
static int profile_resolve(struct walk *w, const struct profile_files *f, const char *name, const char **chain,
                           size_t depth, bool *ret_found, struct aws_credentials **ret, char **ret_error) {
        _cleanup_(ini_profile_done) struct ini_profile prof = {};
        int r;

        for (size_t i = 0; i < depth; i++)
                if (streq(chain[i], name) || depth >= PROFILE_CHAIN_MAX) {
                        char path[512] = "";
                        for (size_t k = 0; k < depth; k++) {
                                strncat(path, chain[k], sizeof path - strlen(path) - 1);
                                strncat(path, " -> ", sizeof path - strlen(path) - 1);
                        }
                        strncat(path, name, sizeof path - strlen(path) - 1);
                        return set_error(ret_error, -ELOOP, "source_profile %s: %s (%s)",
                                         depth >= PROFILE_CHAIN_MAX ? "chain too long" : "profiles form a loop", path,
                                         f->where);
                }
        r = profile_load(f, name, &prof, ret_error);
        if (r < 0)
                return r;
        *ret_found = prof.found;
        if (!prof.found)
                return NOT_FOUND;
        if (prof.unsupported)
                return ini_profile_credentials(&prof, name, f->where, f->source, ret, ret_error);
        if (prof.role_arn)
                return profile_assume(w, f, name, &prof, chain, depth, ret, ret_error);
        if (prof.web_identity_token_file)
                return set_error(ret_error, -EINVAL, "profile %s has web_identity_token_file but no role_arn (%s)", name,
                                 f->where);
        if (prof.credential_process && !prof.access_key_id && !prof.secret_access_key) {
                _cleanup_(freep) char *what = strprintf("profile %s", name);
                if (!what)
                        return set_error(ret_error, -ENOMEM, "out of memory");
                return from_process(w, prof.credential_process, what, ret, ret_error);
        }
        return ini_profile_credentials(&prof, name, f->where, f->source, ret, ret_error);
}

/* LoadCredential= feeds the service only: root at a shell (--plan, --once)
 * reads the file the unit hands over instead, so that both use the same
 * keys. CONNECT_NUMBERS_TEST_ROOT_CREDENTIALS moves it, for tests only. */
#define ROOT_CREDENTIALS_FILE "/etc/connect-numbers/aws-credentials"

static int from_credentials_directory(struct walk *w, const char *profile, bool *found_section,
                                      struct aws_credentials **ret, char **ret_error) {
        const char *dir = env("CREDENTIALS_DIRECTORY"), *root_file = NULL;
        const char *chain[PROFILE_CHAIN_MAX];
        bool found = false;
        if (!dir) {
                if (geteuid() != 0)
                        return NOT_FOUND;
                root_file = env("CONNECT_NUMBERS_TEST_ROOT_CREDENTIALS") ?: ROOT_CREDENTIALS_FILE;
        }
        _cleanup_(freep) char *path = dir ? strprintf("%s/aws", dir) : strdup(root_file);
        if (!path)
                return set_error(ret_error, -ENOMEM, "out of memory");
        struct profile_files f = { .cred_path = path, .where = path, .source = dir ? "credentials-directory" : path };
        int r = profile_resolve(w, &f, profile, chain, 0, &found, ret, ret_error);
        *found_section = *found_section || found;
        return r;
}

static int from_shared_files(struct walk *w, const char *profile, bool *found_section, char **ret_paths,
                             struct aws_credentials **ret, char **ret_error) {
        _cleanup_(freep) char *cred_path = shared_file_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
        _cleanup_(freep) char *conf_path = shared_file_path("AWS_CONFIG_FILE", ".aws/config");
        const char *chain[PROFILE_CHAIN_MAX];
        bool found = false;

        *ret_paths = strprintf("%s or %s", cred_path ? cred_path : "~/.aws/credentials",
                               conf_path ? conf_path : "~/.aws/config");
        if (!*ret_paths)
                return set_error(ret_error, -ENOMEM, "out of memory");
        struct profile_files f = { .cred_path = cred_path, .conf_path = conf_path, .where = *ret_paths,
                                   .source = "shared-file" };
        int r = profile_resolve(w, &f, profile, chain, 0, &found, ret, ret_error);
        *found_section = *found_section || found;
        return r;
}

/* Walks the chain once. 0 with *ret, or a negative errno with *ret_error. */
static int chain_resolve(struct walk *w, struct aws_credentials **ret, char **ret_error) {
        const struct credentials_provider *p = w->p;
        _cleanup_(aws_credentials_freep) struct aws_credentials *c = NULL;
        _cleanup_(freep) char *note = NULL, *paths = NULL;
        bool found_section = false;
        int r;

        /* (a) environment; both halves or nothing. A profile named in the
         * YAML is an explicit choice, as the CLI's --profile: the
         * environment's keys then serve only through credential_source =
         * Environment (botocore drops its environment provider likewise). */
        const char *akid = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
        if (akid && secret && !p->profile) {
                const char *token = env("AWS_SESSION_TOKEN");
                if (!token)
                        token = env("AWS_SECURITY_TOKEN"); /* legacy name botocore still reads */
                r = credentials_new(akid, secret, token, 0, "environment", ret);
                if (r == -EINVAL)
                        return set_error(ret_error, r,
                                         "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN contains "
                                         "spaces or control characters");
                if (r < 0)
                        return set_error(ret_error, r, "out of memory");
                return 0;
        }

        /* (a2) web identity from the environment (EKS service-account
         * roles): a token file without a role is refused rather than
         * skipped, since the chain would go on to another identity */
        const char *token_file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
        if (token_file) {
                const char *role = env("AWS_ROLE_ARN");
                if (!role)
                        return set_error(ret_error, -EINVAL,
                                         "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not");
                r = from_web_identity(w, token_file, role, env("AWS_ROLE_SESSION_NAME"), 0,
                                      "AWS_WEB_IDENTITY_TOKEN_FILE", &c, ret_error);
                if (r < 0)
                        return r;
                goto found;
        }

        /* profile: YAML profile: > AWS_PROFILE > "default" */
        const char *profile = p->profile;
        if (!profile)
                profile = env("AWS_PROFILE");
        if (!profile)
                profile = env("AWS_DEFAULT_PROFILE");
        bool explicit_profile = profile != NULL;
        if (!profile)
                profile = "default";

        /* (b) systemd LoadCredential=aws:... */
        r = from_credentials_directory(w, profile, &found_section, &c, ret_error);
        if (r < 0)
                return r;
        if (r == FOUND)
                goto found;

        /* (c) shared credentials and config files */
        r = from_shared_files(w, profile, &found_section, &paths, &c, ret_error);
        if (r < 0)
                return r;
        if (r == FOUND)
                goto found;
        if (explicit_profile && !found_section)
                return set_error(ret_error, -ENOKEY, "profile %s not found in %s%s", profile,
                                 env("CREDENTIALS_DIRECTORY") ? "$CREDENTIALS_DIRECTORY/aws, "
                                 : geteuid() == 0             ? ROOT_CREDENTIALS_FILE ", "
                                                              : "",
                                 paths ? paths : "the shared credentials files");

        /* (d) container credentials */
        r = from_container(&c, ret_error);
        if (r < 0)
                return r;
        if (r == FOUND)
                goto found;

        /* (e) EC2 instance metadata */
        r = from_imds(&c, &note);
        if (r < 0) {
                if (ret_error) {
                        free(*ret_error);
                        *ret_error = TAKE_PTR(note);
                }
                return r;
        }
        if (r == FOUND)
                goto found;
        return set_error(ret_error, -ENOKEY, NO_CREDENTIALS_MESSAGE "%s%s%s", note ? " (" : "", note ? note : "",
                         note ? ")" : "");
found:
        *ret = TAKE_PTR(c);
        return 0;
}

int credentials_provider_new(const char *profile, struct credentials_provider **ret) {
        if (!ret)
                return -EINVAL;
        struct credentials_provider *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        if (!isempty(profile) && !(p->profile = strdup(profile))) {
                free(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

struct credentials_provider *credentials_provider_free(struct credentials_provider *p) {
        if (!p)
                return NULL;
        free(p->profile);
        free(p->region);
        aws_credentials_free(p->creds);
        free(p->error);
        free(p->error_aws_code);
        free(p);
        return NULL;
}

const char *credentials_provider_error(const struct credentials_provider *p) {
        return p && p->error ? p->error : "";
}

int credentials_provider_set_region(struct credentials_provider *p, const char *region) {
        if (!p)
                return -EINVAL;
        return free_and_strdup(&p->region, isempty(region) ? NULL : region);
}

/* Renew min(REFRESH_BEFORE_SEC, half the lifetime) before they expire:
 * long-lived sets 5 minutes before, short-lived ones (a role that gives
 * 15 minutes, a test's 60 s) halfway. */
static bool needs_refresh(const struct credentials_provider *p, uint64_t now) {
        const struct aws_credentials *c = p->creds;
        if (c->expiration == 0)
                return false;
        uint64_t life = c->expiration > p->obtained ? c->expiration - p->obtained : 0;
        return now + MIN((uint64_t) REFRESH_BEFORE_SEC, life / 2) >= c->expiration;
}

int credentials_get(struct credentials_provider *p, uint64_t now, const struct aws_credentials **ret) {
        _cleanup_(aws_credentials_freep) struct aws_credentials *c = NULL;
        _cleanup_(freep) char *error = NULL;
        char when[32];
        int r;

        if (!p || !ret)
                return -EINVAL;
        if (p->creds && !needs_refresh(p, now)) {
                *ret = p->creds;
                return 0;
        }
        if (p->creds && p->attempted && now >= p->last_attempt_sec && p->creds->expiration > now &&
            now - p->last_attempt_sec < (p->last_attempt_ok ? 1 : REFRESH_RETRY_SEC)) {
                /* The renewal failed a moment ago (asked again once a
                 * minute), or the source just gave these: the old ones are
                 * still good. A renewal that worked is due again at half
                 * of what is left (needs_refresh()), which also paces a
                 * source that keeps serving a set near its expiry. */
                *ret = p->creds;
                return 0;
        }

        if (!p->creds && p->attempted && !p->last_attempt_ok && now >= p->last_attempt_sec &&
            now - p->last_attempt_sec < REFRESH_RETRY_SEC)
                /* failed a moment ago: a process that hangs, or STS refusing,
                 * is not asked again for every call */
                return p->error_code < 0 ? p->error_code : -EIO;

        _cleanup_(walk_done) struct walk w = { .p = p, .now = now };
        r = chain_resolve(&w, &c, &error);
        p->attempted = true;
        p->last_attempt_sec = now;
        if (r >= 0) {
                if (c->expiration)
                        log_debug("using AWS credentials from %s (access key id ...%s, expiring at %s)", c->source,
                                  key_tail(c), format_timestamp_sec(c->expiration, when, sizeof when));
                else
                        log_debug("using AWS credentials from %s (access key id ...%s)", c->source, key_tail(c));
                aws_credentials_free(p->creds);
                p->creds = TAKE_PTR(c);
                p->obtained = now;
                p->error = mfree(p->error);
                p->error_code = 0;
                p->last_attempt_ok = true;
                p->refresh_failure_logged = false;
                if (p->failure_logged)
                        log_notice("AWS credentials from %s work again", p->creds->source ? p->creds->source : "?");
                p->failure_logged = false;
                *ret = p->creds;
                return 0;
        }

        p->last_attempt_ok = false;
        p->error_code = r;
        free(p->error);
        p->error = TAKE_PTR(error);
        free(p->error_aws_code);
        p->error_aws_code = TAKE_PTR(w.code);
        p->error_operation = w.operation;
        if (!p->error)
                p->error = strdup(r == -ENOKEY ? NO_CREDENTIALS_MESSAGE : strerror(-r));

        if (p->creds && p->creds->expiration > now) {
                /* keep what still works; say so once */
                log_full_errno(p->refresh_failure_logged ? LOG_DEBUG : LOG_WARNING, 0,
                               "refreshing AWS credentials from %s failed: %s; keeping the current ones (access key "
                               "id ...%s) until they expire at %s",
                               p->creds->source ? p->creds->source : "?", p->error ? p->error : "?",
                               key_tail(p->creds), format_timestamp_sec(p->creds->expiration, when, sizeof when));
                p->refresh_failure_logged = true;
                *ret = p->creds;
                return 0;
        }
        if (p->creds) {
                char *e = strprintf("AWS credentials from %s expired at %s and refreshing them failed: %s",
                                    p->creds->source ? p->creds->source : "?",
                                    format_timestamp_sec(p->creds->expiration, when, sizeof when),
                                    p->error ? p->error : "?");
                if (e) {
                        free(p->error);
                        p->error = e;
                }
                p->creds = aws_credentials_free(p->creds);
        }
        if (!p->failure_logged && p->error_operation) {
                /* a role, web identity or process of the chain failed:
                 * once per episode, with the catalogued id */
                log_fields(LOG_ERR, 0,
                           &(struct log_fields){ .message_id = MESSAGE_ID_CREDENTIALS_FAILED,
                                                 .aws_operation = p->error_operation,
                                                 .aws_error_code = p->error_aws_code },
                           "Credentials of the AWS credential chain failed: %s", p->error ? p->error : "?");
                p->failure_logged = true;
        }
        return r;
}
