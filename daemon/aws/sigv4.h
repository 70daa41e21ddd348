/* sigv4.h: AWS Signature Version 4 (pure: no I/O, no clock; the time is
 * an argument). OpenSSL does SHA-256 and HMAC. */
#pragma once

#include "../util.h"

struct aws_credentials {
        char *access_key_id;
        char *secret_access_key;    /* wiped with OPENSSL_cleanse when freed */
        char *session_token;        /* NULL for long-term keys; wiped when freed */
        uint64_t expiration;        /* wall seconds; 0 = does not expire */
        char *source;               /* "environment", "credentials-directory", "shared-file",
                                     * "container", "imds": never secret */
};

struct aws_credentials *aws_credentials_free(struct aws_credentials *c);
DEFINE_FREEP(struct aws_credentials, aws_credentials_free)
int aws_credentials_copy(const struct aws_credentials *c, struct aws_credentials **ret);

struct sigv4_header {
        const char *name;
        const char *value;
};

struct sigv4_request {
        const char *method;          /* "GET", "POST", ... */
        const char *path;            /* as sent on the wire (labels already percent-encoded) */
        const char *query;           /* raw query without '?', or NULL */
        const struct sigv4_header *headers; /* every header to sign, "host" included */
        size_t n_headers;
        const void *body;
        size_t body_len;
};

struct sigv4_signature {
        char *amz_date;              /* "20150830T123600Z" */
        char *authorization;         /* full Authorization header value */
        char *canonical_request;     /* for tests and debugging (never logged: harmless but long) */
        char *string_to_sign;
};

void sigv4_signature_clear(struct sigv4_signature *s);

/* Signs req. now: wall seconds. If req has an x-amz-date header its value
 * is used as is (test vectors); else amz_date is computed from now and
 * "x-amz-date" is signed. With a session token, x-amz-security-token is
 * signed too (the caller must then send it). double_encode_path: every
 * service but S3 (Connect included) encodes the path once more and
 * normalises "." and ".." segments. */
int sigv4_sign(const struct sigv4_request *req, const struct aws_credentials *creds, const char *region,
               const char *service, uint64_t now, bool double_encode_path, struct sigv4_signature *ret);

/* Percent-encodes s with only A-Za-z0-9-._~ unescaped (and '/' too when
 * keep_slash). Used for path labels such as ARNs. */
char *aws_uri_encode(const char *s, bool keep_slash);
