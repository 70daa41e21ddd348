/* connect-wire.h: the wire format of the Amazon Connect operations used,
 * as pure functions (no event loop, no I/O): operation names, each
 * operation's request bytes, the parsers of each answer, error parsing and
 * classification, endpoint resolution. The scheduler that sends them is
 * connect.h. Wire names, paths and encodings as in the service model
 * (connect-phone-numbers.service.json). */
#pragma once

#include "observe.h"
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
        CONNECT_OP_UPDATE_NUMBER,    /* UpdatePhoneNumber: moves a number to another target */
        _CONNECT_OP_MAX,
};
const char *connect_op_name(enum connect_op op); /* "ClaimPhoneNumber", ... */
int connect_op_from_name(const char *name);      /* -EINVAL if unknown */
bool connect_op_is_mutating(enum connect_op op);

/* Classifies an error response (pure). */
enum connect_error_kind connect_classify_error(long http_status, const char *code, const char *message);
/* First line of s (len bytes), at most 512 bytes, never cut inside a UTF-8
 * sequence, trimmed; NULL when that leaves nothing (or on OOM). For text
 * that came from the network and may reach a log. */
char *connect_message_sanitize(const char *s, size_t len);
/* A region name as it goes into a host name and the signing scope. */
bool connect_region_is_valid(const char *region);

/* Pure parsers (tests and fuzzing). Each returns 0 or -EBADMSG. */
int connect_parse_error(long http_status, const char *error_type_header, const char *body, size_t len,
                        struct connect_error *ret);
/* A digest of a ListPhoneNumbersV2 answer that does not depend on the
 * order of its entries (nothing documents that Connect keeps it): a
 * commutative sum of the SHA-256 of each entry's text and of each other
 * member, found by a light scanner that only follows strings and nesting,
 * so that a steady pass skips jansson's parse. -EBADMSG when the body is
 * not a JSON object (then it is parsed and refused as usual). */
int connect_list_digest(const char *body, size_t len, uint8_t ret[static 32]);
int connect_parse_list(const char *body, size_t len, struct connect_number **numbers, size_t *n,
                       char **ret_next_token);
int connect_parse_describe(const char *body, size_t len, struct connect_number *ret);
int connect_parse_search(const char *body, size_t len, struct connect_available **ret, size_t *n);
int connect_parse_claim(const char *body, size_t len, char **ret_id, char **ret_arn);

/* ---- Request building, endpoints (pure; for the client, tests and logs) ---- */

/* The arguments of one operation; members an operation does not use are
 * ignored. */
struct connect_args {
        const char *target_arn;           /* CLAIM, LIST, SEARCH, UPDATE_NUMBER (the new target) */
        const char *phone_number_id;      /* DESCRIBE, RELEASE, UPDATE_METADATA, UPDATE_NUMBER, ASSOCIATE_FLOW */
        const char *resource_arn;         /* TAG, UNTAG */
        const char *phone_number;         /* CLAIM */
        const char *description;          /* CLAIM (omitted when NULL), UPDATE_METADATA */
        const struct connect_tag *tags;   /* CLAIM "Tags" (omitted when none), TAG "tags" (1..50) */
        size_t n_tags;
        char *const *tag_keys;            /* UNTAG (1..50) */
        size_t n_tag_keys;
        const char *client_token;         /* CLAIM, RELEASE, UPDATE_METADATA, UPDATE_NUMBER (omitted when NULL) */
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
