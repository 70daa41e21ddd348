/* sigv4.c: AWS Signature Version 4 (docs/connect-api.md §7), the credentials
 * object and AWS's percent-encoding.
 * Pure: no I/O, no clock (the time is an argument), no logging. OpenSSL
 * does SHA-256 and HMAC; derived keys are wiped before they go out of
 * scope, and so are secrets when credentials are freed. */
#include "sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

static void free_secret(char *s) {
        if (!s)
                return;
        OPENSSL_cleanse(s, strlen(s));
        free(s);
}

struct aws_credentials *aws_credentials_free(struct aws_credentials *c) {
        if (!c)
                return NULL;
        free(c->access_key_id);
        free_secret(c->secret_access_key);
        free_secret(c->session_token);
        free(c->source);
        OPENSSL_cleanse(c, sizeof *c);
        free(c);
        return NULL;
}

int aws_credentials_copy(const struct aws_credentials *c, struct aws_credentials **ret) {
        if (!c || !ret)
                return -EINVAL;
        _cleanup_(aws_credentials_freep) struct aws_credentials *n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        if ((c->access_key_id && !(n->access_key_id = strdup(c->access_key_id))) ||
            (c->secret_access_key && !(n->secret_access_key = strdup(c->secret_access_key))) ||
            (c->session_token && !(n->session_token = strdup(c->session_token))) ||
            (c->source && !(n->source = strdup(c->source))))
                return -ENOMEM;
        n->expiration = c->expiration;
        *ret = TAKE_PTR(n);
        return 0;
}

void sigv4_signature_clear(struct sigv4_signature *s) {
        if (!s)
                return;
        s->amz_date = mfree(s->amz_date);
        s->authorization = mfree(s->authorization);
        s->canonical_request = mfree(s->canonical_request);
        s->string_to_sign = mfree(s->string_to_sign);
}

/* A growable string. Appends after an allocation failure are no-ops and
 * the failure is reported once by strbuf_finish(), which keeps the
 * building code free of error checks on every line. */
struct strbuf {
        char *s;
        size_t len, cap;
        bool oom;
};

static void strbuf_append_n(struct strbuf *b, const char *s, size_t n) {
        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t ncap = MAX(b->cap * 2, b->len + n + 1);
                ncap = MAX(ncap, (size_t) 128);
                char *ns = realloc(b->s, ncap);
                if (!ns) {
                        b->oom = true;
                        return;
                }
                b->s = ns;
                b->cap = ncap;
        }
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = 0;
}

static void strbuf_append(struct strbuf *b, const char *s) {
        strbuf_append_n(b, s, strlen(s));
}

static void strbuf_append_c(struct strbuf *b, char c) {
        strbuf_append_n(b, &c, 1);
}

static void strbuf_done(struct strbuf *b) {
        b->s = mfree(b->s);
        b->len = b->cap = 0;
}

/* Returns the string (never NULL on success: "" for nothing appended). */
static char *strbuf_finish(struct strbuf *b) {
        if (!b->oom && !b->s)
                strbuf_append_n(b, "", 0);
        if (b->oom) {
                strbuf_done(b);
                return NULL;
        }
        b->len = b->cap = 0;
        return TAKE_PTR(b->s);
}

static bool is_unreserved(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '_' || c == '.' || c == '~';
}

static void uri_encode_append(struct strbuf *b, const char *s, size_t n, bool keep_slash) {
        static const char hex[] = "0123456789ABCDEF";
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (is_unreserved(c) || (keep_slash && c == '/'))
                        strbuf_append_c(b, (char) c);
                else {
                        char e[3] = { '%', hex[c >> 4], hex[c & 15] };
                        strbuf_append_n(b, e, 3);
                }
        }
}

char *aws_uri_encode(const char *s, bool keep_slash) {
        struct strbuf b = {};
        if (!s) {
                errno = EINVAL;
                return NULL;
        }
        uri_encode_append(&b, s, strlen(s), keep_slash);
        char *r = strbuf_finish(&b);
        if (!r)
                errno = ENOMEM;
        return r;
}

static int unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Query keys and values are decoded before they are encoded, so that the
 * canonical form does not depend on how the caller escaped them: the
 * suite's get-vanilla-query-order-encoded sends "%E1%88%B4" and
 * get-vanilla-utf8-query the raw bytes, and both sign "%E1%88%B4", as
 * Connect's "connect-numbers%3Apool" tag key stays "%3A". A '%' that does
 * not start an escape is taken literally; '+' stays '+' (AWS does not read
 * it as a space). */
static void query_component_append(struct strbuf *b, const char *s, size_t n) {
        struct strbuf raw = {};
        for (size_t i = 0; i < n; i++) {
                int hi, lo;
                if (s[i] == '%' && i + 2 < n && (hi = unhex(s[i + 1])) >= 0 && (lo = unhex(s[i + 2])) >= 0) {
                        strbuf_append_c(&raw, (char) (hi << 4 | lo));
                        i += 2;
                } else
                        strbuf_append_c(&raw, s[i]);
        }
        if (raw.oom) {
                b->oom = true;
                strbuf_done(&raw);
                return;
        }
        uri_encode_append(b, raw.s ? raw.s : "", raw.len, false);
        strbuf_done(&raw);
}

struct query_param {
        char *key;
        char *value;
};

static int query_param_cmp(const void *a, const void *b) {
        const struct query_param *x = a, *y = b;
        int c = strcmp(x->key, y->key);
        return c ? c : strcmp(x->value, y->value);
}

static int canonical_query(const char *query, char **ret) {
        struct query_param *params = NULL;
        size_t n = 0, cap = 0;
        struct strbuf out = {};
        int r = 0;

        for (const char *p = query ? query : ""; *p;) {
                size_t seg = strcspn(p, "&");
                if (seg > 0) {
                        const char *eq = memchr(p, '=', seg);
                        size_t klen = eq ? (size_t) (eq - p) : seg;
                        struct strbuf k = {}, v = {};
                        query_component_append(&k, p, klen);
                        if (eq)
                                query_component_append(&v, eq + 1, seg - klen - 1);
                        char *ks = strbuf_finish(&k), *vs = strbuf_finish(&v);
                        if (!ks || !vs) {
                                free(ks);
                                free(vs);
                                r = -ENOMEM;
                                goto finish;
                        }
                        if (n == cap) {
                                size_t ncap = cap ? cap * 2 : 8;
                                struct query_param *np = realloc(params, ncap * sizeof *np);
                                if (!np) {
                                        free(ks);
                                        free(vs);
                                        r = -ENOMEM;
                                        goto finish;
                                }
                                params = np;
                                cap = ncap;
                        }
                        params[n++] = (struct query_param) { ks, vs };
                }
                p += seg;
                if (*p == '&')
                        p++;
        }

        if (n > 0)
                qsort(params, n, sizeof *params, query_param_cmp);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        strbuf_append_c(&out, '&');
                strbuf_append(&out, params[i].key);
                strbuf_append_c(&out, '=');
                strbuf_append(&out, params[i].value);
        }
        *ret = strbuf_finish(&out);
        if (!*ret)
                r = -ENOMEM;
finish:
        for (size_t i = 0; i < n; i++) {
                free(params[i].key);
                free(params[i].value);
        }
        free(params);
        strbuf_done(&out);
        return r;
}

/* botocore's remove_dot_segments() (RFC 3986 5.2.4, plus the removal of
 * empty segments that AWS services expect): "/a/./b/../c" -> "/a/c",
 * "//example//" -> "/example/", "/example/.." -> "/". A trailing slash
 * survives only if some segment does. */
static int normalize_path(const char *path, char **ret) {
        size_t len = strlen(path), n = 0;
        _cleanup_(freep) const char **seg = NULL;
        _cleanup_(freep) size_t *seglen = NULL;
        struct strbuf out = {};

        /* at most len/2+1 segments */
        seg = calloc(len / 2 + 2, sizeof *seg);
        seglen = calloc(len / 2 + 2, sizeof *seglen);
        if (!seg || !seglen)
                return -ENOMEM;
        for (const char *p = path; *p;) {
                size_t l = strcspn(p, "/");
                if (l == 2 && p[0] == '.' && p[1] == '.') {
                        if (n > 0)
                                n--;
                } else if (l > 0 && !(l == 1 && p[0] == '.')) {
                        seg[n] = p;
                        seglen[n++] = l;
                }
                p += l;
                if (*p == '/')
                        p++;
        }
        if (path[0] == '/')
                strbuf_append_c(&out, '/');
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        strbuf_append_c(&out, '/');
                strbuf_append_n(&out, seg[i], seglen[i]);
        }
        if (len > 0 && path[len - 1] == '/' && n > 0)
                strbuf_append_c(&out, '/');
        *ret = strbuf_finish(&out);
        return *ret ? 0 : -ENOMEM;
}

static int canonical_uri(const char *path, bool double_encode_path, char **ret) {
        if (isempty(path))
                path = "/";
        if (!double_encode_path) {
                /* S3: the wire path as it is. */
                *ret = strdup(path);
                return *ret ? 0 : -ENOMEM;
        }
        _cleanup_(freep) char *norm = NULL;
        int r = normalize_path(path, &norm);
        if (r < 0)
                return r;
        /* A relative path ("a/b") normalises to itself; AWS paths start
         * with '/', and "" after normalising means the root. */
        char *enc = aws_uri_encode(*norm ? norm : "/", true);
        if (!enc)
                return -ENOMEM;
        *ret = enc;
        return 0;
}

struct header_entry {
        char *name;  /* lower-case */
        char *value; /* trimmed, whitespace runs collapsed */
        size_t index;
};

static int header_entry_cmp(const void *a, const void *b) {
        const struct header_entry *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        if (c)
                return c;
        /* repeated headers keep their order (get-header-key-duplicate) */
        return x->index < y->index ? -1 : x->index > y->index;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static char *header_name_lower(const char *s) {
        while (is_space(*s))
                s++;
        size_t n = strlen(s);
        while (n > 0 && is_space(s[n - 1]))
                n--;
        char *r = strndup(s, n);
        if (!r)
                return NULL;
        for (char *p = r; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char) (*p - 'A' + 'a');
        return r;
}

/* Trims and collapses runs of whitespace (including the line breaks of a
 * folded header, get-header-value-multiline) to one space. */
static char *header_value_normalize(const char *s) {
        struct strbuf b = {};
        bool pending_space = false;
        for (const char *p = s; *p; p++) {
                if (is_space(*p)) {
                        pending_space = b.len > 0;
                        continue;
                }
                if (pending_space)
                        strbuf_append_c(&b, ' ');
                pending_space = false;
                strbuf_append_c(&b, *p);
        }
        return strbuf_finish(&b);
}

struct header_list {
        struct header_entry *h;
        size_t n;
};

static void header_list_done(struct header_list *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->h[i].name);
                /* a session token may be among the values */
                free_secret(l->h[i].value);
        }
        l->h = mfree(l->h);
        l->n = 0;
}

/* Adds a header (name lower-cased, value normalised) to l, whose array
 * has room for it. */
static int header_list_add(struct header_list *l, const char *name, const char *value) {
        struct header_entry *e = &l->h[l->n];
        *e = (struct header_entry) { header_name_lower(name), header_value_normalize(value), l->n };
        l->n++; /* counted even when half-built, so that header_list_done frees it */
        if (!e->name || !e->value)
                return -ENOMEM;
        if (!*e->name || strpbrk(e->name, ":\r\n"))
                return -EINVAL;
        return 0;
}

static bool amz_date_valid(const char *d) {
        if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
                return false;
        for (size_t i = 0; i < 15; i++)
                if (i != 8 && (d[i] < '0' || d[i] > '9'))
                        return false;
        return true;
}

static int format_amz_date(uint64_t now, char ret[static 17]) {
        time_t t = (time_t) now;
        struct tm tm;
        if ((uint64_t) t != now || !gmtime_r(&t, &tm) || strftime(ret, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
                return -ERANGE;
        return 0;
}

static int hmac_sha256(const void *key, size_t keylen, const void *data, size_t n, unsigned char ret[static 32]) {
        unsigned int outlen = 0;
        if (keylen > INT32_MAX || !HMAC(EVP_sha256(), key, (int) keylen, data, n, ret, &outlen) || outlen != 32)
                return -EIO;
        return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static int signing_key(const char *secret, const char *date8, const char *region, const char *service,
                       unsigned char ret[static 32]) {
        size_t slen = strlen(secret);
        unsigned char k1[32], k2[32];
        char *ksecret = malloc(slen + 5);
        int r;

        if (!ksecret)
                return -ENOMEM;
        memcpy(ksecret, "AWS4", 4);
        memcpy(ksecret + 4, secret, slen + 1);
        r = hmac_sha256(ksecret, slen + 4, date8, 8, k1);
        OPENSSL_cleanse(ksecret, slen + 4);
        free(ksecret);
        if (r >= 0)
                r = hmac_sha256(k1, 32, region, strlen(region), k2);
        if (r >= 0)
                r = hmac_sha256(k2, 32, service, strlen(service), k1);
        if (r >= 0)
                r = hmac_sha256(k1, 32, "aws4_request", strlen("aws4_request"), ret);
        OPENSSL_cleanse(k1, sizeof k1);
        OPENSSL_cleanse(k2, sizeof k2);
        return r;
}

static char *build_canonical_request(const struct sigv4_request *req, const struct header_list *l, const char *curi,
                                     const char *cquery, char **ret_signed_headers) {
        struct strbuf creq = {}, signed_headers = {};
        char payload_hash[65];

        sha256_hex(req->body, req->body_len, payload_hash);
        strbuf_append(&creq, req->method);
        strbuf_append_c(&creq, '\n');
        strbuf_append(&creq, curi);
        strbuf_append_c(&creq, '\n');
        strbuf_append(&creq, cquery);
        strbuf_append_c(&creq, '\n');
        for (size_t i = 0; i < l->n; i++) {
                if (i > 0 && streq(l->h[i].name, l->h[i - 1].name)) {
                        strbuf_append_c(&creq, ',');
                        strbuf_append(&creq, l->h[i].value);
                        continue;
                }
                if (i > 0) {
                        strbuf_append_c(&creq, '\n');
                        strbuf_append_c(&signed_headers, ';');
                }
                strbuf_append(&creq, l->h[i].name);
                strbuf_append_c(&creq, ':');
                strbuf_append(&creq, l->h[i].value);
                strbuf_append(&signed_headers, l->h[i].name);
        }
        strbuf_append(&creq, "\n\n");
        if (signed_headers.s)
                strbuf_append(&creq, signed_headers.s);
        strbuf_append_c(&creq, '\n');
        strbuf_append(&creq, payload_hash);

        char *sh = strbuf_finish(&signed_headers);
        char *c = strbuf_finish(&creq);
        if (!sh || !c) {
                free(sh);
                free(c);
                return NULL;
        }
        *ret_signed_headers = sh;
        return c;
}

int sigv4_sign(const struct sigv4_request *req, const struct aws_credentials *creds, const char *region,
               const char *service, uint64_t now, bool double_encode_path, struct sigv4_signature *ret) {
        _cleanup_(header_list_done) struct header_list l = {};
        _cleanup_(freep) char *curi = NULL, *cquery = NULL, *creq = NULL, *signed_headers = NULL, *scope = NULL,
                             *sts = NULL, *authz = NULL, *date_s = NULL;
        const char *amz_date = NULL;
        bool have_token_header = false;
        char computed_date[17], date[17], scope_date[9], creq_hash[65], sig_hex[65];
        unsigned char key[32], sig[32];
        int r;

        if (!req || !creds || !ret || isempty(req->method) || !req->path || isempty(region) || isempty(service) ||
            isempty(creds->access_key_id) || isempty(creds->secret_access_key) ||
            (req->n_headers > 0 && !req->headers) || (req->body_len > 0 && !req->body))
                return -EINVAL;

        /* +2: x-amz-date and x-amz-security-token may be added */
        l.h = calloc(req->n_headers + 2, sizeof *l.h);
        if (!l.h)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_headers; i++) {
                if (!req->headers[i].name || !req->headers[i].value)
                        return -EINVAL;
                r = header_list_add(&l, req->headers[i].name, req->headers[i].value);
                if (r < 0)
                        return r;
                if (streq(l.h[l.n - 1].name, "x-amz-date"))
                        amz_date = l.h[l.n - 1].value;
                else if (streq(l.h[l.n - 1].name, "x-amz-security-token"))
                        have_token_header = true;
        }
        if (!amz_date) {
                r = format_amz_date(now, computed_date);
                if (r < 0)
                        return r;
                r = header_list_add(&l, "x-amz-date", computed_date);
                if (r < 0)
                        return r;
                amz_date = l.h[l.n - 1].value;
        }
        if (!amz_date_valid(amz_date))
                return -EINVAL;
        /* amz_date points into l.h[], which qsort moves: copy it first. */
        memcpy(date, amz_date, sizeof date);

        /* The token is signed (botocore auth.py, docs/connect-api.md §7); if the
         * caller already put it among the headers it is signed as given. */
        if (!isempty(creds->session_token) && !have_token_header) {
                r = header_list_add(&l, "x-amz-security-token", creds->session_token);
                if (r < 0)
                        return r;
        }
        qsort(l.h, l.n, sizeof *l.h, header_entry_cmp);

        r = canonical_uri(req->path, double_encode_path, &curi);
        if (r < 0)
                return r;
        r = canonical_query(req->query, &cquery);
        if (r < 0)
                return r;
        creq = build_canonical_request(req, &l, curi, cquery, &signed_headers);
        if (!creq)
                return -ENOMEM;

        sha256_hex(creq, strlen(creq), creq_hash);
        memcpy(scope_date, date, 8);
        scope_date[8] = 0;
        scope = strprintf("%s/%s/%s/aws4_request", scope_date, region, service);
        if (!scope)
                return -ENOMEM;
        sts = strprintf(SIGV4_ALGORITHM "\n%s\n%s\n%s", date, scope, creq_hash);
        if (!sts)
                return -ENOMEM;

        r = signing_key(creds->secret_access_key, scope_date, region, service, key);
        if (r >= 0)
                r = hmac_sha256(key, sizeof key, sts, strlen(sts), sig);
        OPENSSL_cleanse(key, sizeof key);
        if (r < 0)
                return r;
        hex_encode(sig, sizeof sig, sig_hex);

        authz = strprintf(SIGV4_ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s", creds->access_key_id,
                          scope, signed_headers, sig_hex);
        date_s = strdup(date);
        if (!authz || !date_s)
                return -ENOMEM;

        *ret = (struct sigv4_signature) {
                .amz_date = TAKE_PTR(date_s),
                .authorization = TAKE_PTR(authz),
                .canonical_request = TAKE_PTR(creq),
                .string_to_sign = TAKE_PTR(sts),
        };
        return 0;
}
