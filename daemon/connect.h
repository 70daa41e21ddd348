/* connect.h: one asynchronous function per Amazon Connect operation used:
 * the call scheduler. Requests and answers are built and parsed by
 * connect-wire.h (JSON never leaves it: callers get C structs). Signing,
 * the credential chain, client-side pacing (a token bucket per account,
 * region and operation whose rate adapts to throttling) and the SDK "standard" retry mode happen inside: a callback
 * sees only the final outcome of a call. Wire names, paths and encodings as
 * in the service model (connect-phone-numbers.service.json). */
#pragma once

#include <systemd/sd-event.h>

#include "connect-wire.h"
#include "util.h"

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
        /* DESCRIBE (one, described). LIST delivers its numbers page by
         * page (connect_list_options.on_page): NULL, 0 here. */
        struct connect_number *numbers;
        size_t n_numbers;
        /* LIST: numbers handed to on_page, and pages received. */
        size_t n_listed;
        unsigned pages;
        /* LIST: have_digest when the answer was one page (no NextToken):
         * digest (connect_list_digest(): independent of the order of the
         * entries) to pass as known_digest next time. unchanged: that
         * body's digest equalled known_digest; then it was not parsed and
         * on_page never ran. */
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

struct config;

struct connect_client_options {
        const char *endpoint_url;    /* YAML endpoint_url:, or NULL (then AWS_ENDPOINT_URL_CONNECT, AWS_ENDPOINT_URL,
                                      * else https://connect.REGION.amazonaws.com) */
        const char *ca_file;         /* YAML ca_file:, or NULL (then AWS_CA_BUNDLE, else system store) */
        const char *profile;         /* YAML profile:, or NULL */
        double rate_default;         /* req/s per (account, region, operation): the adaptive rate's ceiling; 0 = 2 */
        double rate_burst;           /* 0 = 5 */
        double rates[_CONNECT_OP_MAX]; /* per-operation override, 0 = rate_default */
        unsigned max_attempts;       /* 0 = 3 (AWS_MAX_ATTEMPTS overrides); throttled attempts do not count */
        usec_t max_backoff_usec;     /* cap on one retry delay; 0 = 20 s (tests shorten it) */
        bool read_only;              /* refuse mutating calls with -EROFS (--plan) */
        const struct config *config; /* the targets' role_arn settings (copied), or NULL: every call is
                                      * signed with the chain's credentials */
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
/* Throttled attempts (ThrottlingException, TooManyRequestsException,
 * LimitExceededException without a quota message, HTTP 429) are retried
 * with capped, jittered backoff until deadline (CLOCK_BOOTTIME, absolute):
 * throttling alone never ends a call while time remains. Set it to the end
 * of the pass, or of --once's --wait; it applies to calls already queued.
 * USEC_INFINITY (the default) means 5 minutes after each call was queued.
 * Other failures keep the standard max_attempts. */
void connect_client_set_deadline(struct connect_client *c, usec_t deadline);
size_t connect_client_in_flight(const struct connect_client *c);   /* queued or running calls */
void connect_client_cancel_all(struct connect_client *c);          /* callbacks get -ECANCELED */

/* Counters since the client was created (for logs, --once and bench). */
struct connect_stats {
        unsigned calls[_CONNECT_OP_MAX];     /* HTTP requests sent */
        unsigned throttled[_CONNECT_OP_MAX]; /* 429 answers received */
        unsigned retries;
};
void connect_client_stats(const struct connect_client *c, struct connect_stats *ret);

/* Every HTTP attempt's outcome since the client was created, counted apart
 * per operation, region and account, for the metrics file. A retried call
 * counts each attempt: that is what the API quota and its throttling see.
 * A cancelled attempt (no answer) is not counted. */
enum connect_outcome {
        CONNECT_OUTCOME_OK,          /* a 2xx answer */
        CONNECT_OUTCOME_THROTTLED,   /* HTTP 429 or an answer that means throttling */
        CONNECT_OUTCOME_ERROR,       /* any other answer, or none (transport failure) */
        _CONNECT_OUTCOME_MAX,
};
struct connect_api_count {
        enum connect_op op;
        char region[65];
        /* The account of the call's pacing bucket: of the ARN it names
         * (target, or the phone number's ARN), or "" when it names none (a
         * describe by id). */
        char account[64];
        uint64_t n[_CONNECT_OUTCOME_MAX];
};
/* A view into the client (valid until its next call completes): *ret, *ret_n. */
void connect_client_api_counts(const struct connect_client *c, const struct connect_api_count **ret, size_t *ret_n);

/* Each returns 0 when the call was queued (cb will run once, later, from
 * the event loop) or a negative errno (cb will not run). region: where the
 * call is signed and sent (a target's ARN region). */
/* One page of a LIST, as it arrives, in order. numbers (n of them, n may
 * be 0) belong to the client and are freed when this returns: a callback
 * that keeps some moves them out (copies the struct and zeroes the entry).
 * Returning a negative errno ends the call with it. userdata: the call's. */
typedef int (*connect_page_callback_t)(struct connect_number *numbers, size_t n, void *userdata);

#define CONNECT_LIST_DEFAULT_MAX_NUMBERS ((size_t) 100000)

struct connect_list_options {
        /* A digest from an earlier LIST result of the same target (copied,
         * need not outlive the call), or NULL. A steady pass gets the same
         * bytes as the last one; when the first page's body digests to it (in any order of its entries),
         * the call ends with unchanged set, without parsing: parsing is
         * most of a steady pass's CPU and transient heap (~1.7 MB per page
         * of 1000 numbers). CONNECT_LIST_DIGEST_LEN bytes. */
        const uint8_t *known_digest;
        /* More numbers than this end the call with -EFBIG (kind
         * LIST_BOUND, "more than N numbers"), before the page that passes
         * it is delivered. 0 = CONNECT_LIST_DEFAULT_MAX_NUMBERS. */
        size_t max_numbers;
        connect_page_callback_t on_page; /* required */
};

/* Lists a target's numbers page by page: memory does not grow with the
 * list. A NextToken seen before in the same listing (any cycle, not only an
 * immediate repeat) ends the call with -ELOOP (kind LIST_BOUND, "NextToken
 * repeated after N pages"). When cb reports a failure, pages delivered
 * before it are not the whole list: the caller must treat the target as
 * unknown, not as shorter. */
int connect_list_numbers(struct connect_client *c, const char *region, const char *target_arn,
                         const struct connect_list_options *o, connect_callback_t cb, void *userdata);
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
/* UpdatePhoneNumber: moves the number to target_arn (an instance or a
 * traffic distribution group of the same account and region). The move
 * runs IN_PROGRESS; follow it with connect_describe_number(). */
int connect_update_number(struct connect_client *c, const char *region, const char *phone_number_id,
                          const char *target_arn, const char *client_token, connect_callback_t cb, void *userdata);
int connect_associate_flow(struct connect_client *c, const char *region, const char *phone_number_id,
                           const char *instance_id, const char *contact_flow_id, connect_callback_t cb,
                           void *userdata);
int connect_tag_resource(struct connect_client *c, const char *region, const char *resource_arn,
                         const struct connect_tag *tags, size_t n_tags, connect_callback_t cb, void *userdata);
int connect_untag_resource(struct connect_client *c, const char *region, const char *resource_arn,
                           char *const *keys, size_t n_keys, connect_callback_t cb, void *userdata);

/* Outcome errno of a failed call, by kind (res->r): THROTTLED -EAGAIN,
 * TRANSIENT the transport errno (-ETIMEDOUT, -ECONNRESET...) or -EIO (5xx)
 * or -EBADMSG (unparsable 2xx body), NOT_FOUND -ENOENT, IN_USE -EBUSY,
 * IDEMPOTENCY -EEXIST, QUOTA -EDQUOT, INVALID -EINVAL, ACCESS_DENIED
 * -EACCES, AUTH -EPERM (AWS refused the signature or key) or the
 * credential chain's errno (-ENOKEY, -EOPNOTSUPP, -EIO), TLS -EPROTO,
 * OTHER -EIO or the transport errno, LIST_BOUND -ELOOP (NextToken cycle),
 * -EFBIG (max_numbers) or -E2BIG (too many pages), or what on_page
 * returned; -ECANCELED when cancelled. For LIST,
 * attempts counts every HTTP request of every page. */
