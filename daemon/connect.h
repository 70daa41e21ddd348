/* connect.h: one asynchronous function per Amazon Connect operation used.
 * JSON (jansson) never leaves connect.c: callers get C structs. Signing,
 * the credential chain, client-side pacing (token bucket per region and
 * operation) and the SDK "standard" retry mode happen inside: a callback
 * sees only the final outcome of a call. Wire names, paths and encodings as
 * in the service model (connect-phone-numbers.service.json). */
#pragma once

#include <systemd/sd-event.h>

#include "util.h"

enum connect_op {
        CONNECT_OP_CLAIM,            /* ClaimPhoneNumber */
        CONNECT_OP_DESCRIBE,         /* DescribePhoneNumber */
        CONNECT_OP_LIST,             /* ListPhoneNumbersV2 */
        CONNECT_OP_SEARCH,           /* SearchAvailablePhoneNumbers */
        CONNECT_OP_RELEASE,          /* ReleasePhoneNumber */
        CONNECT_OP_UPDATE_METADATA,  /* UpdatePhoneNumberMetadata */
        CONNECT_OP_ASSOCIATE_FLOW,   /* AssociatePhoneNumberContactFlow */
        CONNECT_OP_TAG,              /* TagResource */
        CONNECT_OP_UNTAG,            /* UntagResource */
        _CONNECT_OP_MAX,
};
const char *connect_op_name(enum connect_op op); /* "ClaimPhoneNumber", ... */
int connect_op_from_name(const char *name);      /* -EINVAL if unknown */
bool connect_op_is_mutating(enum connect_op op);

enum connect_error_kind {
        CONNECT_ERROR_NONE,
        CONNECT_ERROR_THROTTLED,     /* ThrottlingException, 429, LimitExceededException w/o quota text */
        CONNECT_ERROR_TRANSIENT,     /* 5xx, timeouts, dropped connections, truncated bodies */
        CONNECT_ERROR_NOT_FOUND,     /* ResourceNotFoundException */
        CONNECT_ERROR_IN_USE,        /* ResourceInUseException */
        CONNECT_ERROR_IDEMPOTENCY,   /* IdempotencyException */
        CONNECT_ERROR_QUOTA,         /* SPEC "What a pass does" 6 */
        CONNECT_ERROR_INVALID,       /* InvalidParameterException, InvalidRequestException */
        CONNECT_ERROR_ACCESS_DENIED, /* AccessDeniedException */
        CONNECT_ERROR_AUTH,          /* no/bad credentials, signature mismatch, unknown key */
        CONNECT_ERROR_TLS,           /* certificate verification and other TLS failures */
        CONNECT_ERROR_OTHER,
};
const char *connect_error_kind_name(enum connect_error_kind k);
/* Retryable at the pass level (SPEC exit 75): throttled, transient. */
bool connect_error_kind_is_retryable(enum connect_error_kind k);

struct connect_error {
        enum connect_error_kind kind;
        long http_status;            /* 0 when no response */
        char *code;                  /* AWS error code, cleaned ("ThrottlingException"), or NULL */
        char *message;               /* AWS or transport message, or NULL */
        char *request_id;            /* x-amzn-RequestId, or NULL */
};
void connect_error_clear(struct connect_error *e);

/* SPEC "What a pass does" 6: code ServiceQuotaExceededException, or a
 * message containing (ignoring case) "limit" with "phone number" or
 * "claimed numbers". Pure; also used on FAILED status messages. */
bool connect_is_quota_refusal(const char *code, const char *message);
/* Classifies an error response (pure). */
enum connect_error_kind connect_classify_error(long http_status, const char *code, const char *message);

enum connect_number_status {
        CONNECT_STATUS_UNKNOWN,
        CONNECT_STATUS_CLAIMED,
        CONNECT_STATUS_IN_PROGRESS,
        CONNECT_STATUS_FAILED,
};
const char *connect_status_name(enum connect_number_status s);

struct connect_tag {
        char *key;
        char *value;
};

/* A number from ListPhoneNumbersV2 (summary) or DescribePhoneNumber
 * (described == true: tags and status filled). */
struct connect_number {
        char *id;                    /* PhoneNumberId */
        char *arn;                   /* PhoneNumberArn */
        char *phone_number;          /* E.164 */
        char *country;               /* PhoneNumberCountryCode */
        char *type;                  /* PhoneNumberType */
        char *target_arn;
        char *instance_id;
        char *description;           /* PhoneNumberDescription, or NULL */
        bool described;
        struct connect_tag *tags;
        size_t n_tags;
        enum connect_number_status status;
        char *status_message;
};
void connect_number_clear(struct connect_number *n);
const char *connect_number_tag(const struct connect_number *n, const char *key); /* value or NULL */

struct connect_available {
        char *phone_number;
        char *country;
        char *type;
};

/* SHA-256, the size of struct connect_result's digest. */
#define CONNECT_LIST_DIGEST_LEN 32

/* What a callback receives. Owned by the client; valid only during the
 * callback (copy what you keep). */
struct connect_result {
        enum connect_op op;
        int r;                       /* 0 success; negative errno otherwise (error filled) */
        struct connect_error error;
        char *request_id;            /* of the final attempt, or NULL */
        unsigned attempts;           /* HTTP attempts made (retries + 1) */
        /* LIST (every page), DESCRIBE (one, described) */
        struct connect_number *numbers;
        size_t n_numbers;
        /* LIST: have_digest when the answer was one page (no NextToken):
         * digest is the SHA-256 of that page's body, to pass as known_digest
         * next time. unchanged: that body was identical to known_digest;
         * then it was not parsed and numbers is NULL, n_numbers 0. */
        bool have_digest;
        bool unchanged;
        uint8_t digest[CONNECT_LIST_DIGEST_LEN];
        /* SEARCH */
        struct connect_available *available;
        size_t n_available;
        /* CLAIM */
        char *phone_number_id;
        char *phone_number_arn;
};

typedef void (*connect_callback_t)(const struct connect_result *res, void *userdata);

struct connect_client_options {
        const char *endpoint_url;    /* YAML endpoint_url:, or NULL (then AWS_ENDPOINT_URL_CONNECT, AWS_ENDPOINT_URL,
                                      * else https://connect.REGION.amazonaws.com) */
        const char *ca_file;         /* YAML ca_file:, or NULL (then AWS_CA_BUNDLE, else system store) */
        const char *profile;         /* YAML profile:, or NULL */
        double rate_default;         /* req/s per (region, operation); 0 = 2 */
        double rate_burst;           /* 0 = 5 */
        double rates[_CONNECT_OP_MAX]; /* per-operation override, 0 = rate_default */
        unsigned max_attempts;       /* 0 = 3 (AWS_MAX_ATTEMPTS overrides) */
        bool read_only;              /* refuse mutating calls with -EROFS (--plan) */
};

struct connect_client;
int connect_client_new(sd_event *event, const struct connect_client_options *o, struct connect_client **ret);
/* Pending calls are dropped WITHOUT their callbacks (their userdata may be
 * gone already); use connect_client_cancel_all() first to have them called
 * with -ECANCELED. Safe to call from inside a callback. */
struct connect_client *connect_client_free(struct connect_client *c);
DEFINE_FREEP(struct connect_client, connect_client_free)
/* After a configuration reload: new endpoint, CA, profile, rates. */
int connect_client_reconfigure(struct connect_client *c, const struct connect_client_options *o);
size_t connect_client_in_flight(const struct connect_client *c);   /* queued or running calls */
void connect_client_cancel_all(struct connect_client *c);          /* callbacks get -ECANCELED */

/* Counters since the client was created (for logs, --once and bench). */
struct connect_stats {
        unsigned calls[_CONNECT_OP_MAX];     /* HTTP requests sent */
        unsigned throttled[_CONNECT_OP_MAX]; /* 429 answers received */
        unsigned retries;
};
void connect_client_stats(const struct connect_client *c, struct connect_stats *ret);

/* Each returns 0 when the call was queued (cb will run once, later, from
 * the event loop) or a negative errno (cb will not run). region: where the
 * call is signed and sent (a target's ARN region). */
/* known_digest: a digest from an earlier LIST result of the same target
 * (copied, need not outlive the call), or NULL. A steady pass gets the same
 * bytes as the last one; when the first page's body hashes to it, the call
 * ends with unchanged set, without parsing: parsing is most of a steady
 * pass's CPU and transient heap (~1.7 MB per page of 1000 numbers). */
int connect_list_numbers(struct connect_client *c, const char *region, const char *target_arn,
                         const uint8_t *known_digest /* CONNECT_LIST_DIGEST_LEN bytes, or NULL */,
                         connect_callback_t cb, void *userdata);
int connect_describe_number(struct connect_client *c, const char *region, const char *phone_number_id,
                            connect_callback_t cb, void *userdata);
int connect_search_available(struct connect_client *c, const char *region, const char *target_arn,
                             const char *country, const char *type, const char *prefix /* with '+', or NULL */,
                             unsigned max_results, connect_callback_t cb, void *userdata);
int connect_claim_number(struct connect_client *c, const char *region, const char *target_arn,
                         const char *phone_number, const char *description /* or NULL */,
                         const struct connect_tag *tags, size_t n_tags, const char *client_token,
                         connect_callback_t cb, void *userdata);
int connect_release_number(struct connect_client *c, const char *region, const char *phone_number_id,
                           const char *client_token, connect_callback_t cb, void *userdata);
int connect_update_metadata(struct connect_client *c, const char *region, const char *phone_number_id,
                            const char *description, const char *client_token, connect_callback_t cb,
                            void *userdata);
int connect_associate_flow(struct connect_client *c, const char *region, const char *phone_number_id,
                           const char *instance_id, const char *contact_flow_id, connect_callback_t cb,
                           void *userdata);
int connect_tag_resource(struct connect_client *c, const char *region, const char *resource_arn,
                         const struct connect_tag *tags, size_t n_tags, connect_callback_t cb, void *userdata);
int connect_untag_resource(struct connect_client *c, const char *region, const char *resource_arn,
                           char *const *keys, size_t n_keys, connect_callback_t cb, void *userdata);

/* Pure parsers (tests and fuzzing). Each returns 0 or -EBADMSG. */
int connect_parse_error(long http_status, const char *error_type_header, const char *body, size_t len,
                        struct connect_error *ret);
int connect_parse_list(const char *body, size_t len, struct connect_number **numbers, size_t *n,
                       char **ret_next_token);
int connect_parse_describe(const char *body, size_t len, struct connect_number *ret);
int connect_parse_search(const char *body, size_t len, struct connect_available **ret, size_t *n);
int connect_parse_claim(const char *body, size_t len, char **ret_id, char **ret_arn);

/* ---- Request building, endpoints (pure; for the client, tests and logs) ---- */

/* The arguments of one operation; members an operation does not use are
 * ignored. */
struct connect_args {
        const char *target_arn;           /* CLAIM, LIST, SEARCH */
        const char *phone_number_id;      /* DESCRIBE, RELEASE, UPDATE_METADATA, ASSOCIATE_FLOW */
        const char *resource_arn;         /* TAG, UNTAG */
        const char *phone_number;         /* CLAIM */
        const char *description;          /* CLAIM (omitted when NULL), UPDATE_METADATA */
        const struct connect_tag *tags;   /* CLAIM "Tags" (omitted when none), TAG "tags" (1..50) */
        size_t n_tags;
        char *const *tag_keys;            /* UNTAG (1..50) */
        size_t n_tag_keys;
        const char *client_token;         /* CLAIM, RELEASE, UPDATE_METADATA (omitted when NULL) */
        const char *country;              /* SEARCH */
        const char *type;                 /* SEARCH */
        const char *prefix;               /* SEARCH, or NULL; a missing leading '+' is added */
        unsigned max_results;             /* SEARCH: 1..10, 0 or larger = 10 */
        const char *next_token;           /* LIST, or NULL */
        const char *instance_id;          /* ASSOCIATE_FLOW */
        const char *contact_flow_id;      /* ASSOCIATE_FLOW */
};

/* One operation's HTTP request exactly as sent (before signing). */
struct connect_request {
        const char *method;               /* static string */
        char *path;                       /* path labels percent-encoded (aws_uri_encode) */
        char *query;                      /* without '?', or NULL */
        char *body;                       /* compact JSON, or NULL when no body is sent */
        size_t body_len;
};
void connect_request_clear(struct connect_request *r);
/* -EINVAL when a required argument is missing or a string is not UTF-8. */
int connect_build_request(enum connect_op op, const struct connect_args *a, struct connect_request *ret);

/* The endpoint: endpoint_url (the option), else $AWS_ENDPOINT_URL_CONNECT,
 * else $AWS_ENDPOINT_URL (each without trailing '/'), else NULL meaning
 * https://connect.REGION.amazonaws.com. Only https:// is accepted
 * (-EPROTONOSUPPORT), a malformed URL gives -EINVAL. */
int connect_resolve_endpoint(const char *endpoint_url, char **ret);
/* Splits a base URL into what goes into the Host header (":port" kept
 * unless it is 443) and the base path ("" or "/prefix"). */
int connect_endpoint_split(const char *base_url, char **ret_host, char **ret_base_path);

/* Outcome errno of a failed call, by kind (res->r): THROTTLED -EAGAIN,
 * TRANSIENT the transport errno (-ETIMEDOUT, -ECONNRESET...) or -EIO (5xx)
 * or -EBADMSG (unparsable 2xx body), NOT_FOUND -ENOENT, IN_USE -EBUSY,
 * IDEMPOTENCY -EEXIST, QUOTA -EDQUOT, INVALID -EINVAL, ACCESS_DENIED
 * -EACCES, AUTH -EPERM (AWS refused the signature or key) or the
 * credential chain's errno (-ENOKEY, -EOPNOTSUPP, -EIO), TLS -EPROTO,
 * OTHER -EIO or the transport errno; -ECANCELED when cancelled. For LIST,
 * attempts counts every HTTP request of every page. */
