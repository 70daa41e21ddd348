/* connect.c: the call scheduler for the Amazon Connect operations, on
 * sd-event. A call is built once by connect-wire.c (method, path, query,
 * JSON body), waits in the FIFO of its (account, region, operation) token
 * bucket, whose rate adapts to the throttling it sees (docs/throttling.md), is
 * signed with SigV4 at every attempt and sent through http.c; throttling
 * and transient failures are retried as the SDK "standard" retry mode
 * does, each retry going back through the pacing queue with the same bytes
 * (same ClientToken). The callback sees only the final outcome.
 *
 * Owns: pacing, retries, the calls in flight, LIST pagination. Must not:
 * know the wire format (connect-wire.c does), log headers, bodies or
 * anything secret (one debug line per HTTP attempt with operation, request
 * id, error code, status and attempt), block (except inside
 * credentials_get(), which is bounded), or decide what an error means for a
 * pass. */
#include "connect.h"

#include <stdio.h>

#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/pacing.h"
#include "aws/roles.h"
#include "aws/sigv4.h"
#include "config.h"
#include "connect-roles.h"
#include "dispatch.h"
#include "log.h"

#define CONNECT_DEFAULT_RATE 2.0
#define CONNECT_DEFAULT_BURST 5.0
#define CONNECT_DEFAULT_MAX_ATTEMPTS 3U
#define CONNECT_MAX_ATTEMPTS_LIMIT 100U
#define CONNECT_MAX_PAGES 10000U
/* ---- The client ---- */

struct connect_call;

/* Pacing for one (account, region, operation), as Connect counts its
 * limits: FIFO of calls waiting for a token, and the adaptive rate that
 * sets the token bucket's rate from the throttling this bucket sees. */
struct connect_bucket {
        struct connect_client *client;
        char *account;                     /* "" when the call names no ARN to take it from */
        char *region;
        enum connect_op op;
        struct token_bucket tb;
        struct adaptive_rate ar;
        struct connect_call *head, *tail;  /* waiting calls, FIFO */
        sd_event_source *timer;            /* CLOCK_BOOTTIME; on only while calls wait */
        struct connect_bucket *next;
};

/* The NextTokens of one listing, as SHA-256 digests in an open-addressing
 * table: a cycle of any length (A -> B -> A) is caught at its first
 * repeat, where comparing with the last token only catches A -> A. The
 * all-zero digest marks a free slot (no token hashes to it in practice). */
struct token_set {
        uint8_t (*slots)[32];
        size_t n, size;                    /* used slots; size a power of two, or 0 */
};

static void token_set_clear(struct token_set *t) {
        free(t->slots);
        *t = (struct token_set){};
}

static size_t token_slot(const struct token_set *t, const uint8_t d[static 32]) {
        uint64_t h;
        memcpy(&h, d, sizeof h);
        size_t i = (size_t) h & (t->size - 1);
        static const uint8_t zero[32];
        while (memcmp(t->slots[i], zero, 32) != 0 && memcmp(t->slots[i], d, 32) != 0)
                i = (i + 1) & (t->size - 1);
        return i;
}

/* Adds token: 1 when it was new, 0 when it was seen before, -ENOMEM. */
static int token_set_add(struct token_set *t, const char *token) {
        uint8_t d[32];

        sha256(token, strlen(token), d);
        if (2 * (t->n + 1) > t->size) {
                struct token_set bigger = { .size = t->size ? 2 * t->size : 64 };
                bigger.slots = calloc(bigger.size, sizeof(*bigger.slots));
                if (!bigger.slots)
                        return -ENOMEM;
                for (size_t i = 0; i < t->size; i++) {
                        static const uint8_t zero[32];
                        if (memcmp(t->slots[i], zero, 32) != 0)
                                memcpy(bigger.slots[token_slot(&bigger, t->slots[i])], t->slots[i], 32);
                }
                bigger.n = t->n;
                free(t->slots);
                *t = bigger;
        }
        size_t i = token_slot(t, d);
        if (memcmp(t->slots[i], d, 32) == 0)
                return 0;
        memcpy(t->slots[i], d, 32);
        t->n++;
        return 1;
}

enum call_state {
        CALL_QUEUED,   /* in its bucket's FIFO */
        CALL_BACKOFF,  /* waiting out a retry delay */
        CALL_RUNNING,  /* an HTTP request is in flight (or being submitted) */
        CALL_ACTIVE,   /* its response is being handled: in no queue */
};

struct connect_call {
        struct connect_client *client;
        enum connect_op op;
        char *region;
        struct connect_request req;        /* the bytes of the current request; retries reuse them */
        char *target_arn;                  /* LIST: for the next pages */
        char *cred_arn;                    /* the target's or number's ARN that picks the role, or NULL */
        char *cred_id;                     /* the number's id when no ARN is given, or NULL */
        char *next_token;                  /* LIST: the NextToken the current request sends, or NULL */
        unsigned pages;                    /* LIST: pages received */
        size_t max_numbers;                /* LIST: more than this many ends the call */
        connect_page_callback_t on_page;   /* LIST */
        struct token_set tokens;           /* LIST: every NextToken sent so far */
        bool have_known_digest;            /* LIST: known_digest given */
        uint8_t known_digest[CONNECT_LIST_DIGEST_LEN]; /* LIST: SHA-256 of the last single-page answer */
        unsigned request_attempts;         /* attempts of the current request (page) */
        unsigned request_failures;         /* of them, failed other than by throttling: max_attempts bounds these */
        unsigned request_throttled;        /* of them, throttled: only the deadline bounds these */
        unsigned last_retry_cost;          /* retry quota paid by the last retry of the current request */
        usec_t submitted;                  /* CLOCK_BOOTTIME, when connect_*() queued it */
        enum call_state state;
        struct connect_bucket *bucket;
        struct connect_call *q_prev, *q_next; /* bucket FIFO */
        struct connect_call *prev, *next;  /* client's list of live calls */
        sd_event_source *backoff;          /* CALL_BACKOFF */
        connect_callback_t cb;
        void *userdata;
        struct connect_result result;      /* accumulates (LIST pages), then handed to cb */
};

struct connect_client {
        sd_event *event;
        struct http_client *http;
        struct credentials_provider *creds;
        struct connect_roles *roles;       /* which targets' calls use an assumed role */
        struct role_cache *role_cache;     /* assumed-role credentials; kept across reloads */
        char *endpoint;                    /* resolved base URL, or NULL: per-region default */
        double rate_default;               /* req/s */
        double rate_burst;                 /* tokens */
        double rates[_CONNECT_OP_MAX];     /* per-operation req/s, 0 = rate_default */
        unsigned max_attempts;             /* per request, first try included; throttling aside */
        usec_t deadline;                   /* CLOCK_BOOTTIME, or USEC_INFINITY: see connect_client_set_deadline() */
        usec_t max_backoff;                /* cap on one retry delay */
        bool read_only;
        struct retry_quota quota;          /* SDK retry quota, per client */
        struct connect_bucket *buckets;
        struct connect_call *calls;        /* queued, backing off or running */
        size_t n_calls;
        struct connect_stats stats;
        struct connect_api_count *api_counts; /* connect_client_api_counts() */
        size_t n_api_counts;
        unsigned cancel_generation;        /* counts connect_client_cancel_all() calls */
        struct dispatch dispatch;          /* callbacks may free the client: see dispatch.h */
};

static void connect_client_destroy(void *object);


static void connect_result_clear(struct connect_result *res) {
        connect_error_clear(&res->error);
        free(res->request_id);
        connect_numbers_free(res->numbers, res->n_numbers);
        connect_available_free(res->available, res->n_available);
        free(res->phone_number_id);
        free(res->phone_number_arn);
        *res = (struct connect_result){};
}

static void call_free(struct connect_call *call) {
        if (!call)
                return;
        sd_event_source_disable_unref(call->backoff);
        connect_request_clear(&call->req);
        free(call->region);
        free(call->target_arn);
        free(call->cred_arn);
        free(call->cred_id);
        free(call->next_token);
        token_set_clear(&call->tokens);
        connect_result_clear(&call->result);
        free(call);
}

static void bucket_queue_remove(struct connect_bucket *b, struct connect_call *call) {
        if (call->q_prev)
                call->q_prev->q_next = call->q_next;
        else
                b->head = call->q_next;
        if (call->q_next)
                call->q_next->q_prev = call->q_prev;
        else
                b->tail = call->q_prev;
        call->q_prev = call->q_next = NULL;
}

/* Removes call from every list and timer of the client. */
static void call_unlink(struct connect_call *call) {
        struct connect_client *c = call->client;

        if (call->state == CALL_QUEUED && call->bucket)
                bucket_queue_remove(call->bucket, call);
        call->backoff = sd_event_source_disable_unref(call->backoff);
        if (call->prev)
                call->prev->next = call->next;
        else if (c->calls == call)
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        call->prev = call->next = NULL;
        if (c->n_calls > 0)
                c->n_calls--;
}

/* Puts call on the client's list of live calls. */
static void call_link(struct connect_call *call) {
        struct connect_client *c = call->client;

        call->prev = NULL;
        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        c->n_calls++;
}

/* Hands the outcome of an unlinked call to its callback, then frees it. */
static void call_deliver(struct connect_call *call) {
        struct connect_result *res = &call->result;

        res->op = call->op;
        if (res->r < 0) {
                /* A failed LIST must not look like a shorter list: no
                 * partial pages reach the caller. */
                connect_numbers_free(res->numbers, res->n_numbers);
                res->numbers = NULL;
                res->n_numbers = 0;
                connect_available_free(res->available, res->n_available);
                res->available = NULL;
                res->n_available = 0;
                res->phone_number_id = mfree(res->phone_number_id);
                res->phone_number_arn = mfree(res->phone_number_arn);
                res->have_digest = false;
                res->unchanged = false;
        }
        call->cb(&call->result, call->userdata);
        call_free(call);
}

/* Unlinks the call, hands the outcome to the callback, frees the call. */
static void call_finish(struct connect_call *call) {
        call_unlink(call);
        call_deliver(call);
}

static void call_fail(struct connect_call *call, int r, enum connect_error_kind kind, const char *message) {
        connect_error_clear(&call->result.error);
        call->result.r = r < 0 ? r : -EIO;
        call->result.error.kind = kind;
        call->result.error.message = message ? connect_message_sanitize(message, strlen(message)) : NULL;
        call_finish(call);
}

/* ---- Counting, for the metrics (apart from pacing: it only reads the call and its bucket) ---- */

/* One attempt's outcome, on the account of the call's bucket. On ENOMEM
 * the count is lost, never the call. */
static void call_count(struct connect_call *call, enum connect_outcome outcome) {
        struct connect_client *c = call->client;
        const char *account = call->bucket && call->bucket->account ? call->bucket->account : "";
        struct connect_api_count *e = NULL;
        for (size_t i = 0; i < c->n_api_counts && !e; i++)
                if (c->api_counts[i].op == call->op && streq(c->api_counts[i].region, call->region) &&
                    streq(c->api_counts[i].account, account))
                        e = &c->api_counts[i];
        if (!e) {
                struct connect_api_count *a = realloc(c->api_counts, (c->n_api_counts + 1) * sizeof *a);
                if (!a)
                        return;
                c->api_counts = a;
                e = &a[c->n_api_counts++];
                *e = (struct connect_api_count){.op = call->op};
                snprintf(e->region, sizeof e->region, "%s", call->region);
                snprintf(e->account, sizeof e->account, "%s", account);
        }
        e->n[outcome]++;
}

void connect_client_api_counts(const struct connect_client *c, const struct connect_api_count **ret, size_t *ret_n) {
        *ret = c ? c->api_counts : NULL;
        *ret_n = c ? c->n_api_counts : 0;
}

/* Paced a little under the configured rate: AWS's own bucket and ours are
 * not in phase, and network jitter bunches requests up, so pacing at the
 * exact limit still earns a 429 now and then (the bench saw 1 list call in
 * 10). 5 % below it, a healthy run sees none. */
#define PACING_MARGIN 0.95

static double bucket_rate(const struct connect_client *c, enum connect_op op) {
        return (c->rates[op] > 0 ? c->rates[op] : c->rate_default) * PACING_MARGIN;
}

static int bucket_timer_cb(sd_event_source *s, uint64_t usec, void *userdata);

/* Arms the bucket's timer for when its first waiting call may go, or
 * turns it off when nobody waits (no timers while idle). */
static void bucket_schedule(struct connect_bucket *b) {
        usec_t now, wait;
        int r;

        if (!b->head) {
                (void) sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
                return;
        }
        now = clock_boottime_usec();
        wait = token_bucket_wait_usec(&b->tb, now);
        r = sd_event_source_set_time(b->timer, now + wait);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Cannot arm the pacing timer for %s in %s", connect_op_name(b->op), b->region);
}

static struct connect_bucket *bucket_get(struct connect_client *c, const char *account, const char *region,
                                         enum connect_op op, int *ret_r) {
        struct connect_bucket *b;
        usec_t now;
        int r;

        for (b = c->buckets; b; b = b->next)
                if (b->op == op && streq(b->region, region) && streq(b->account, account))
                        return b;

        b = calloc(1, sizeof(*b));
        if (!b) {
                *ret_r = -ENOMEM;
                return NULL;
        }
        b->client = c;
        b->op = op;
        b->region = strdup(region);
        b->account = strdup(account);
        if (!b->region || !b->account) {
                free(b->region);
                free(b->account);
                free(b);
                *ret_r = -ENOMEM;
                return NULL;
        }
        now = clock_boottime_usec();
        adaptive_rate_init(&b->ar, bucket_rate(c, op), now);
        token_bucket_init(&b->tb, b->ar.rate, adaptive_rate_burst(&b->ar, c->rate_burst), now);
        r = sd_event_add_time(c->event, &b->timer, CLOCK_BOOTTIME, USEC_INFINITY, USEC_PER_MSEC, bucket_timer_cb, b);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
        if (r < 0) {
                sd_event_source_disable_unref(b->timer);
                free(b->region);
                free(b->account);
                free(b);
                *ret_r = r;
                return NULL;
        }
        (void) sd_event_source_set_description(b->timer, "connect-pacing");
        b->next = c->buckets;
        c->buckets = b;
        return b;
}

static void bucket_free(struct connect_bucket *b) {
        sd_event_source_disable_unref(b->timer);
        free(b->region);
        free(b->account);
        free(b);
}

/* An HTTP answer for this bucket: its adaptive rate moves, and the token
 * bucket (rate and burst) with it. */
static void bucket_on_answer(struct connect_bucket *b, bool throttled) {
        struct connect_client *c = b->client;
        usec_t now = clock_boottime_usec();
        double before = b->ar.rate, rate;

        rate = adaptive_rate_on_response(&b->ar, throttled, now);
        token_bucket_set_rate(&b->tb, rate, adaptive_rate_burst(&b->ar, c->rate_burst), now);
        if (throttled && rate != before)
                log_debug("%s in %s for account %s throttled: sending at %.3f req/s (was %.3f)",
                          connect_op_name(b->op), b->region, isempty(b->account) ? "-" : b->account, rate, before);
        if (b->head)
                bucket_schedule(b);
}

/* The account whose limits a call draws on: the account field of the ARN
 * the call names (target, resource, or a number given by ARN). A number
 * given by bare id: the account it was claimed in when the client saw
 * that (with roles configured, connect_roles_account_of()), else none:
 * those calls share the bucket of account "" in their region. */
static void call_account(const struct connect_client *c, const struct connect_args *a, char *ret, size_t size) {
        const char *arn = a->target_arn ?: a->resource_arn;

        if (!arn && a->phone_number_id && strncmp(a->phone_number_id, "arn:", 4) == 0)
                arn = a->phone_number_id;
        ret[0] = '\0';
        if (!arn && a->phone_number_id && size >= 13) {
                char acct[13];
                if (connect_roles_account_of(c->roles, a->phone_number_id, acct))
                        memcpy(ret, acct, 13);
                return;
        }
        if (!arn || strncmp(arn, "arn:", 4) != 0)
                return;
        /* arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE */
        const char *p = arn;
        for (int field = 0; field < 4; field++) {
                p = strchr(p, ':');
                if (!p)
                        return;
                p++;
        }
        const char *end = strchr(p, ':');
        if (!end || (size_t) (end - p) >= size)
                return;
        memcpy(ret, p, (size_t) (end - p));
        ret[end - p] = '\0';
}

/* Appends call to its bucket's FIFO. Never runs a callback. */
static void call_enqueue(struct connect_call *call) {
        struct connect_bucket *b = call->bucket;

        call->state = CALL_QUEUED;
        call->q_next = NULL;
        call->q_prev = b->tail;
        if (b->tail)
                b->tail->q_next = call;
        else
                b->head = call;
        b->tail = call;
        /* Even with a token at hand the call starts from the timer, in
         * the event loop: connect_*() never runs a callback itself. */
        if (b->head == call)
                bucket_schedule(b);
}

static void call_start_attempt(struct connect_call *call);

static int bucket_timer_cb(_unused_ sd_event_source *s, _unused_ uint64_t usec, void *userdata) {
        struct connect_bucket *b = userdata;
        struct connect_client *c = b->client;

        dispatch_begin(&c->dispatch);
        while (b->head && !c->dispatch.freeing) {
                struct connect_call *call;
                if (!token_bucket_take(&b->tb, clock_boottime_usec()))
                        break;
                call = b->head;
                bucket_queue_remove(b, call);
                call->state = CALL_RUNNING;
                call_start_attempt(call); /* may finish the call, and run user code */
        }
        if (!c->dispatch.freeing)
                bucket_schedule(b);
        dispatch_end(&c->dispatch);
        return 0;
}

static int backoff_cb(_unused_ sd_event_source *s, _unused_ uint64_t usec, void *userdata) {
        struct connect_call *call = userdata;
        struct connect_client *c = call->client;

        dispatch_begin(&c->dispatch);
        call->backoff = sd_event_source_disable_unref(call->backoff);
        call_enqueue(call); /* a retry waits for a token like anyone else */
        dispatch_end(&c->dispatch);
        return 0;
}

static char *header_line(const char *name, const char *value) {
        return strprintf("%s: %s", name, value);
}

static void header_lines_free(char **l) {
        if (!l)
                return;
        /* Authorization and the session token leave no copy behind. */
        for (char **i = l; *i; i++)
                explicit_bzero(*i, strlen(*i));
        strv_free(l);
}
static void header_lines_freep(char ***l) {
        header_lines_free(*l);
}

static void http_done(int r, const struct http_response *resp, const char *error_text, void *userdata);

/* Builds URL and headers, signs, submits. On failure the call ends here. */
static void call_start_attempt(struct connect_call *call) {
        struct connect_client *c = call->client;
        _cleanup_(header_lines_freep) char **headers = NULL;
        _cleanup_(freep) char *base = NULL, *host = NULL, *base_path = NULL, *path = NULL, *url = NULL;
        _cleanup_(sigv4_signature_clear) struct sigv4_signature sig = {};
        const struct aws_credentials *creds = NULL;
        uint64_t now = clock_wall_sec();
        int r;

        const char *why = NULL;
        bool assumed = false;
        r = connect_roles_credentials(c->roles, c->role_cache, c->creds, call->region, call->cred_arn,
                                      call->cred_id, now, &creds, &why, &assumed);
        if (r < 0) {
                /* A role that cannot be assumed fails its targets only; the
                 * chain's own credentials failing fails every call. */
                call_fail(call, r, assumed ? CONNECT_ERROR_CREDENTIALS : CONNECT_ERROR_AUTH,
                          why ? why : "no AWS credentials found");
                return;
        }

        base = c->endpoint ? strdup(c->endpoint) : strprintf("https://connect.%s.amazonaws.com", call->region);
        if (!base) {
                call_fail(call, -ENOMEM, CONNECT_ERROR_OTHER, "out of memory");
                return;
        }
        r = connect_endpoint_split(base, &host, &base_path);
        if (r < 0) {
                call_fail(call, r, CONNECT_ERROR_OTHER, "invalid endpoint URL");
                return;
        }
        path = strprintf("%s%s", base_path, call->req.path);
        url = path ? strprintf("https://%s%s%s%s", host, path, call->req.query ? "?" : "",
                               call->req.query ?: "")
                   : NULL;
        if (!url) {
                call_fail(call, -ENOMEM, CONNECT_ERROR_OTHER, "out of memory");
                return;
        }

        struct sigv4_header sh[2] = {
                { "host", host },
                { "content-type", "application/json" },
        };
        struct sigv4_request sreq = {
                .method = call->req.method,
                .path = path,
                .query = call->req.query,
                .headers = sh,
                .n_headers = call->req.body ? 2 : 1,
                .body = call->req.body,
                .body_len = call->req.body_len,
        };
        r = sigv4_sign(&sreq, creds, call->region, "connect", now, true, &sig);
        if (r < 0) {
                call_fail(call, r, r == -ENOMEM ? CONNECT_ERROR_OTHER : CONNECT_ERROR_AUTH,
                          "cannot sign the request");
                return;
        }

        char *lines[6] = {};
        size_t n = 0;
        lines[n++] = header_line("Host", host);
        if (call->req.body)
                lines[n++] = header_line("Content-Type", "application/json");
        lines[n++] = header_line("X-Amz-Date", sig.amz_date);
        if (creds->session_token)
                lines[n++] = header_line("X-Amz-Security-Token", creds->session_token);
        lines[n++] = header_line("Authorization", sig.authorization);
        headers = calloc(n + 1, sizeof(char *));
        bool oom = !headers;
        for (size_t i = 0; i < n; i++) {
                if (!lines[i])
                        oom = true;
                if (headers)
                        headers[i] = lines[i];
                else if (lines[i]) {
                        explicit_bzero(lines[i], strlen(lines[i]));
                        free(lines[i]);
                }
        }
        if (oom) {
                call_fail(call, -ENOMEM, CONNECT_ERROR_OTHER, "out of memory");
                return;
        }

        struct http_request hreq = {
                .method = call->req.method,
                .url = url,
                .headers = headers,
                .body = call->req.body,
                .body_len = call->req.body_len,
        };
        r = http_submit(c->http, &hreq, http_done, call);
        if (r < 0) {
                call_fail(call, r, CONNECT_ERROR_OTHER, "cannot submit the HTTP request");
                return;
        }
        call->state = CALL_RUNNING;
        call->request_attempts++;
        call->result.attempts++;
        c->stats.calls[call->op]++;
}

static void log_attempt(const struct connect_call *call, long status, const char *request_id, const char *code,
                        int r) {
        char status_field[32], attempt_field[32];

        if (log_get_max_priority() < LOG_DEBUG)
                return;
        snprintf(status_field, sizeof status_field, "HTTP_STATUS=%ld", status);
        snprintf(attempt_field, sizeof attempt_field, "ATTEMPT=%u", call->request_attempts);
        const char *extra[] = { status_field, attempt_field, NULL };
        struct log_fields f = {
                .aws_operation = connect_op_name(call->op),
                .aws_request_id = request_id,
                .aws_error_code = code,
                .extra = extra,
        };
        if (r < 0)
                log_fields(LOG_DEBUG, r, &f, "%s in %s, attempt %u", connect_op_name(call->op), call->region,
                           call->request_attempts); /* log_fields() appends strerror(r) */
        else
                log_fields(LOG_DEBUG, 0, &f, "%s in %s, attempt %u: HTTP %ld%s%s", connect_op_name(call->op),
                           call->region, call->request_attempts, status, code ? " " : "", code ?: "");
}

/* Parses a 2xx body (not LIST's) into the result. */
static int call_parse_success(struct connect_call *call, const struct http_response *resp) {
        struct connect_result *res = &call->result;
        int r;

        switch (call->op) {
        case CONNECT_OP_DESCRIBE: {
                struct connect_number *num = calloc(1, sizeof(*num));
                if (!num)
                        return -ENOMEM;
                r = connect_parse_describe(resp->body, resp->body_len, num);
                if (r < 0) {
                        free(num);
                        return r;
                }
                connect_numbers_free(res->numbers, res->n_numbers);
                res->numbers = num;
                res->n_numbers = 1;
                return 0;
        }
        case CONNECT_OP_SEARCH: {
                struct connect_available *a = NULL;
                size_t n = 0;
                r = connect_parse_search(resp->body, resp->body_len, &a, &n);
                if (r < 0)
                        return r;
                connect_available_free(res->available, res->n_available);
                res->available = a;
                res->n_available = n;
                return 0;
        }
        case CONNECT_OP_CLAIM: {
                char *id = NULL, *arn = NULL;
                r = connect_parse_claim(resp->body, resp->body_len, &id, &arn);
                if (r < 0)
                        return r;
                free(res->phone_number_id);
                free(res->phone_number_arn);
                res->phone_number_id = id;
                res->phone_number_arn = arn;
                connect_roles_remember(call->client->roles, id, arn);
                return 0;
        }
        default:
                /* No output shape: 200 with an empty (or ignorable) body. */
                return 0;
        }
}

/* When a call whose caller set no deadline stops retrying throttled
 * attempts: as long as --once waits by default, so that a client nobody
 * configured behaves as the common case expects. */
#define CONNECT_DEFAULT_THROTTLE_BUDGET (5 * USEC_PER_MINUTE)

/* Retries if allowed. Throttling is Connect saying "slower", not "no":
 * a throttled attempt is retried with capped, jittered backoff for as long
 * as the caller's deadline leaves time, outside max_attempts and without
 * paying the retry quota (throttling from other clients of the same
 * account must not starve our retries of real failures). Other retryable
 * failures (5xx, dropped connections, timeouts) get the SDK standard mode:
 * max_attempts per request and the quota. Returns true when a retry was
 * scheduled. */
static bool call_maybe_retry(struct connect_call *call, bool retryable, bool throttled, bool is_timeout) {
        struct connect_client *c = call->client;
        unsigned cost = 0;
        usec_t delay, now;
        int r;

        if (!retryable || c->dispatch.freeing)
                return false;
        if (throttled) {
                usec_t deadline = c->deadline != USEC_INFINITY ? c->deadline
                                                               : call->submitted + CONNECT_DEFAULT_THROTTLE_BUDGET;
                call->request_throttled++;
                now = clock_boottime_usec();
                if (now >= deadline)
                        return false;
                delay = retry_backoff_capped_usec(call->request_throttled, random_unit(), c->max_backoff);
                delay = MIN(delay, deadline - now);
        } else {
                call->request_failures++;
                if (call->request_failures >= c->max_attempts)
                        return false;
                cost = retry_quota_acquire(&c->quota, is_timeout);
                if (cost == 0)
                        return false;
                delay = retry_backoff_capped_usec(call->request_failures, random_unit(), c->max_backoff);
        }

        r = sd_event_add_time_relative(c->event, &call->backoff, CLOCK_BOOTTIME, delay, USEC_PER_MSEC, backoff_cb,
                                       call);
        if (r < 0) {
                if (cost > 0)
                        retry_quota_success(&c->quota, cost); /* give back what was not used */
                return false;
        }
        (void) sd_event_source_set_description(call->backoff, "connect-backoff");
        if (cost > 0)
                call->last_retry_cost = cost;
        call->state = CALL_BACKOFF;
        c->stats.retries++;
        return true;
}

static int error_kind_errno(enum connect_error_kind kind) {
        switch (kind) {
        case CONNECT_ERROR_THROTTLED:
                return -EAGAIN;
        case CONNECT_ERROR_NOT_FOUND:
                return -ENOENT;
        case CONNECT_ERROR_IN_USE:
                return -EBUSY;
        case CONNECT_ERROR_IDEMPOTENCY:
                return -EEXIST;
        case CONNECT_ERROR_QUOTA:
                return -EDQUOT;
        case CONNECT_ERROR_INVALID:
                return -EINVAL;
        case CONNECT_ERROR_ACCESS_DENIED:
                return -EACCES;
        case CONNECT_ERROR_AUTH:
        case CONNECT_ERROR_CREDENTIALS:
                return -EPERM;
        case CONNECT_ERROR_TLS:
                return -EPROTO;
        default:
                return -EIO;
        }
}

/* LIST: the next page is a new request (new body, fresh attempts), as the
 * SDK paginators make it. */
static int call_next_page(struct connect_call *call, const char *token) {
        struct connect_request req = {};
        char *t;
        int r;

        t = strdup(token);
        if (!t)
                return -ENOMEM;
        r = connect_build_request(CONNECT_OP_LIST,
                                  &(struct connect_args){ .target_arn = call->target_arn, .next_token = token }, &req);
        if (r < 0) {
                free(t);
                return r;
        }
        connect_request_clear(&call->req);
        call->req = req;
        free(call->next_token);
        call->next_token = t;
        call->request_attempts = 0;
        call->request_failures = 0;
        call->request_throttled = 0;
        call->last_retry_cost = 0;
        return 0;
}

/* Runs on_page with the call off the client's list, so that a callback
 * that frees the client or cancels every call cannot free it under us.
 * Returns false when the call is gone (freed silently, the client being
 * freed) or has ended (cancelled). */
static bool call_run_on_page(struct connect_call *call, struct connect_number *page, size_t n, int *ret) {
        struct connect_client *c = call->client;
        unsigned generation = c->cancel_generation;

        call_unlink(call);
        *ret = call->on_page(page, n, call->userdata);
        if (c->dispatch.freeing) {
                call_free(call); /* dropped without a callback, as connect_client_free() promises */
                return false;
        }
        call_link(call);
        if (generation != c->cancel_generation) {
                call_fail(call, -ECANCELED, CONNECT_ERROR_OTHER, "cancelled");
                return false;
        }
        return true;
}

/* Takes in one 2xx LIST answer: the unchanged shortcut, the bounds (a
 * NextToken seen before, max_numbers, the page cap), the page handed to
 * on_page and freed, then the next page queued or the call ended. Returns
 * 0 when it did all that (the call may be gone), or -EBADMSG / -ENOMEM
 * when the body did not parse (nothing delivered; the caller retries). */
static int call_list_page(struct connect_call *call, const struct http_response *resp) {
        struct connect_client *c = call->client;
        struct connect_result *res = &call->result;
        struct connect_number *page = NULL;
        _cleanup_(freep) char *next = NULL;
        uint8_t digest[CONNECT_LIST_DIGEST_LEN];
        bool first = call->pages == 0;
        char why[96];
        size_t n = 0;
        int r, page_r = 0;

        /* Only a first page without NextToken stands for the whole list,
         * and only such answers get a digest: a body whose digest equals
         * known_digest has no NextToken either. The digest ignores the
         * order of the entries. */
        _Static_assert(CONNECT_LIST_DIGEST_LEN == 32, "a list digest is a SHA-256");
        if (first && connect_list_digest(resp->body, resp->body_len, digest) < 0)
                sha256(resp->body, resp->body_len, digest); /* not an object: parsed and refused below */
        if (first && call->have_known_digest && memcmp(digest, call->known_digest, sizeof(digest)) == 0) {
                retry_quota_success(&c->quota, call->last_retry_cost);
                res->unchanged = true;
                res->have_digest = true;
                memcpy(res->digest, digest, sizeof(digest));
                res->pages = 1;
                res->r = 0;
                call_finish(call);
                return 0;
        }

        r = connect_parse_list(resp->body, resp->body_len, &page, &n, &next);
        if (r < 0)
                return r;
        retry_quota_success(&c->quota, call->last_retry_cost);
        call->last_retry_cost = 0;
        res->pages = ++call->pages;

        if (n > call->max_numbers - res->n_listed) {
                connect_numbers_free(page, n);
                snprintf(why, sizeof why, "more than %zu numbers", call->max_numbers);
                call_fail(call, -EFBIG, CONNECT_ERROR_LIST_BOUND, why);
                return 0;
        }
        if (next) {
                r = token_set_add(&call->tokens, next);
                if (r <= 0 || call->pages >= CONNECT_MAX_PAGES) {
                        connect_numbers_free(page, n);
                        if (r < 0)
                                call_fail(call, r, CONNECT_ERROR_OTHER, "out of memory");
                        else if (r == 0) {
                                snprintf(why, sizeof why, "NextToken repeated after %u pages", call->pages);
                                call_fail(call, -ELOOP, CONNECT_ERROR_LIST_BOUND, why);
                        } else {
                                snprintf(why, sizeof why, "more than %u pages", CONNECT_MAX_PAGES);
                                call_fail(call, -E2BIG, CONNECT_ERROR_LIST_BOUND, why);
                        }
                        return 0;
                }
        }

        bool alive = call_run_on_page(call, page, n, &page_r);
        connect_numbers_free(page, n); /* what the callback did not move out */
        if (!alive)
                return 0;
        res->n_listed += n;
        if (page_r < 0) {
                call_fail(call, page_r, CONNECT_ERROR_OTHER, "the page was refused");
                return 0;
        }

        if (!next) {
                if (first) {
                        res->have_digest = true;
                        memcpy(res->digest, digest, sizeof(digest));
                }
                res->r = 0;
                call_finish(call);
                return 0;
        }
        r = call_next_page(call, next);
        if (r < 0) {
                call_fail(call, r, CONNECT_ERROR_OTHER, "cannot build the next page request");
                return 0;
        }
        call_enqueue(call);
        return 0;
}

static void http_done(int r, const struct http_response *resp, const char *error_text, void *userdata) {
        struct connect_call *call = userdata;
        struct connect_client *c = call->client;
        struct connect_result *res = &call->result;
        enum connect_error_kind kind;
        bool retryable = false, is_timeout = false;
        int rr;

        dispatch_begin(&c->dispatch);
        call->state = CALL_ACTIVE;

        free(res->request_id);
        res->request_id = resp && resp->request_id ? strdup(resp->request_id) : NULL;
        connect_error_clear(&res->error);

        if (r == -ECANCELED) {
                log_attempt(call, 0, NULL, NULL, r);
                call_fail(call, -ECANCELED, CONNECT_ERROR_OTHER, "cancelled");
                goto out;
        }

        if (r < 0) {
                /* Transport: no HTTP answer. */
                log_attempt(call, 0, NULL, NULL, r);
                call_count(call, CONNECT_OUTCOME_ERROR);
                if (r == -EPROTO)
                        kind = CONNECT_ERROR_TLS;
                else if (retry_is_transient_errno(r))
                        kind = CONNECT_ERROR_TRANSIENT;
                else
                        kind = CONNECT_ERROR_OTHER;
                retryable = kind == CONNECT_ERROR_TRANSIENT;
                is_timeout = r == -ETIMEDOUT;
                rr = r;
                res->error.kind = kind;
                res->error.message = error_text ? connect_message_sanitize(error_text, strlen(error_text)) : NULL;
        } else if (resp->status >= 200 && resp->status <= 299) {
                log_attempt(call, resp->status, resp->request_id, NULL, 0);
                bucket_on_answer(call->bucket, false);
                call_count(call, CONNECT_OUTCOME_OK);
                if (call->op == CONNECT_OP_LIST) {
                        rr = call_list_page(call, resp);
                        if (rr >= 0)
                                goto out; /* the call ended or its next page is queued */
                } else
                        rr = call_parse_success(call, resp);
                if (rr >= 0) {
                        retry_quota_success(&c->quota, call->last_retry_cost);
                        call->last_retry_cost = 0;
                        res->r = 0;
                        call_finish(call);
                        goto out;
                }
                /* A 2xx that does not parse (truncated by a proxy, a
                 * half-written reply): transient. A retried claim sends
                 * the same ClientToken, so it is safe. */
                kind = CONNECT_ERROR_TRANSIENT;
                retryable = rr == -EBADMSG;
                res->error.kind = rr == -EBADMSG ? kind : CONNECT_ERROR_OTHER;
                res->error.http_status = resp->status;
                res->error.message = strdup(rr == -EBADMSG ? "malformed response body" : "out of memory");
        } else {
                rr = connect_parse_error(resp->status, resp->error_type, resp->body, resp->body_len, &res->error);
                if (rr < 0) {
                        log_attempt(call, resp->status, resp->request_id, NULL, 0);
                        call_count(call, resp->status == 429 ? CONNECT_OUTCOME_THROTTLED : CONNECT_OUTCOME_ERROR);
                        call_fail(call, rr, CONNECT_ERROR_OTHER, "out of memory");
                        goto out;
                }
                log_attempt(call, resp->status, resp->request_id, res->error.code, 0);
                kind = res->error.kind;
                call_count(call, resp->status == 429 || kind == CONNECT_ERROR_THROTTLED ? CONNECT_OUTCOME_THROTTLED
                                                                                        : CONNECT_OUTCOME_ERROR);
                if (resp->status == 429)
                        c->stats.throttled[call->op]++;
                bucket_on_answer(call->bucket, kind == CONNECT_ERROR_THROTTLED);
                retryable = kind == CONNECT_ERROR_THROTTLED || retry_is_transient_status(resp->status) ||
                            retry_is_transient_code(res->error.code);
                if (kind == CONNECT_ERROR_QUOTA)
                        retryable = false;
                rr = error_kind_errno(kind);
        }

        if (call_maybe_retry(call, retryable, kind == CONNECT_ERROR_THROTTLED, is_timeout))
                goto out;

        if (resp && resp->request_id && !res->error.request_id)
                res->error.request_id = strdup(resp->request_id);
        res->r = rr < 0 ? rr : -EIO;
        call_finish(call);
out:
        dispatch_end(&c->dispatch);
}

/* ---- Client lifetime and configuration ---- */

static int max_attempts_from(unsigned option, unsigned *ret) {
        const char *e = getenv("AWS_MAX_ATTEMPTS");
        unsigned v = option > 0 ? option : CONNECT_DEFAULT_MAX_ATTEMPTS;

        if (!isempty(e)) {
                char *end = NULL;
                errno = 0;
                unsigned long l = strtoul(e, &end, 10);
                if (errno != 0 || !end || *end || l < 1 || l > CONNECT_MAX_ATTEMPTS_LIMIT || *e == '-' || *e == '+')
                        return -EINVAL;
                v = (unsigned) l;
        }
        *ret = MIN(v, CONNECT_MAX_ATTEMPTS_LIMIT);
        return 0;
}

static double rate_or(double v, double def) {
        return v > 0 ? v : def;
}

/* Everything an options struct decides, validated before anything
 * changes (a reload either applies fully or not at all). */
struct client_settings {
        char *endpoint;
        char *ca_file;
        unsigned max_attempts;
};

static void client_settings_clear(struct client_settings *s) {
        free(s->endpoint);
        free(s->ca_file);
}

/* Where the chain's own STS calls go (role profiles, web identity):
 * region:, else AWS_REGION / AWS_DEFAULT_REGION, else the first target's. */
static const char *chain_region(const struct config *config) {
        const char *e = getenv("AWS_REGION");
        if (config && config->region)
                return config->region;
        if (isempty(e))
                e = getenv("AWS_DEFAULT_REGION");
        if (!isempty(e))
                return e;
        return config && config->n_targets > 0 ? config->targets[0].region : NULL;
}

static int client_settings_from(const struct connect_client_options *o, struct client_settings *ret) {
        struct client_settings s = {};
        const char *ca;
        int r;

        r = connect_resolve_endpoint(o->endpoint_url, &s.endpoint);
        if (r < 0)
                return r;
        ca = !isempty(o->ca_file) ? o->ca_file : getenv("AWS_CA_BUNDLE");
        if (!isempty(ca)) {
                s.ca_file = strdup(ca);
                if (!s.ca_file) {
                        client_settings_clear(&s);
                        return -ENOMEM;
                }
        }
        r = max_attempts_from(o->max_attempts, &s.max_attempts);
        if (r < 0) {
                log_warning("Ignoring invalid AWS_MAX_ATTEMPTS=%s (want 1..%u)", getenv("AWS_MAX_ATTEMPTS"),
                            CONNECT_MAX_ATTEMPTS_LIMIT);
                s.max_attempts = o->max_attempts > 0 ? MIN(o->max_attempts, CONNECT_MAX_ATTEMPTS_LIMIT)
                                                     : CONNECT_DEFAULT_MAX_ATTEMPTS;
        }
        *ret = s;
        return 0;
}

static void client_apply_rates(struct connect_client *c, const struct connect_client_options *o) {
        usec_t now = clock_boottime_usec();

        c->max_backoff = o->max_backoff_usec > 0 ? MIN(o->max_backoff_usec, RETRY_BACKOFF_MAX_USEC)
                                                 : RETRY_BACKOFF_MAX_USEC;
        c->rate_default = rate_or(o->rate_default, CONNECT_DEFAULT_RATE);
        c->rate_burst = rate_or(o->rate_burst, CONNECT_DEFAULT_BURST);
        for (size_t i = 0; i < _CONNECT_OP_MAX; i++)
                c->rates[i] = o->rates[i] > 0 ? o->rates[i] : 0;
        c->read_only = o->read_only;
        for (struct connect_bucket *b = c->buckets; b; b = b->next) {
                adaptive_rate_set_ceiling(&b->ar, bucket_rate(c, b->op));
                token_bucket_set_rate(&b->tb, b->ar.rate, adaptive_rate_burst(&b->ar, c->rate_burst), now);
                if (b->head)
                        bucket_schedule(b);
        }
}

int connect_client_new(sd_event *event, const struct connect_client_options *o, struct connect_client **ret) {
        _cleanup_(client_settings_clear) struct client_settings s = {};
        struct connect_client *c;
        int r;

        if (!event || !o || !ret)
                return -EINVAL;

        r = client_settings_from(o, &s);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        dispatch_init(&c->dispatch, connect_client_destroy, c);
        c->deadline = USEC_INFINITY;
        retry_quota_init(&c->quota);
        c->endpoint = TAKE_PTR(s.endpoint);
        c->max_attempts = s.max_attempts;
        client_apply_rates(c, o);

        r = http_client_new(event, s.ca_file, &c->http);
        if (r >= 0)
                r = http_set_default_ca_file(o->ca_file);
        if (r < 0)
                goto fail;
        r = credentials_provider_new(o->profile, &c->creds);
        if (r >= 0)
                r = credentials_provider_set_region(c->creds, chain_region(o->config));
        if (r < 0)
                goto fail;
        r = role_cache_new(&c->role_cache);
        if (r < 0)
                goto fail;
        r = connect_roles_new(o->config, &c->roles);
        if (r < 0)
                goto fail;

        *ret = c;
        return 0;

fail:
        connect_client_destroy(c);
        return r;
}

int connect_client_reconfigure(struct connect_client *c, const struct connect_client_options *o) {
        _cleanup_(client_settings_clear) struct client_settings s = {};
        _cleanup_(credentials_provider_freep) struct credentials_provider *creds = NULL;
        _cleanup_(connect_roles_freep) struct connect_roles *roles = NULL;
        int r;

        if (!c || !o)
                return -EINVAL;
        r = client_settings_from(o, &s);
        if (r < 0)
                return r;
        r = credentials_provider_new(o->profile, &creds);
        if (r >= 0)
                r = credentials_provider_set_region(creds, chain_region(o->config));
        if (r < 0)
                return r;
        r = connect_roles_new(o->config, &roles);
        if (r < 0)
                return r;
        r = http_client_set_ca_file(c->http, s.ca_file);
        if (r >= 0)
                r = http_set_default_ca_file(o->ca_file);
        if (r < 0)
                return r;

        /* Calls in flight keep going; their next attempts use the new
         * endpoint, credentials and pacing. */
        free(c->endpoint);
        c->endpoint = TAKE_PTR(s.endpoint);
        c->max_attempts = s.max_attempts;
        credentials_provider_free(c->creds);
        c->creds = TAKE_PTR(creds);
        connect_roles_free(c->roles);
        c->roles = TAKE_PTR(roles);
        client_apply_rates(c, o);
        return 0;
}

void connect_client_set_deadline(struct connect_client *c, usec_t deadline) {
        if (c)
                c->deadline = deadline;
}

size_t connect_client_in_flight(const struct connect_client *c) {
        return c ? c->n_calls : 0;
}

void connect_client_stats(const struct connect_client *c, struct connect_stats *ret) {
        if (!ret)
                return;
        if (!c) {
                *ret = (struct connect_stats){};
                return;
        }
        *ret = c->stats;
}

void connect_client_cancel_all(struct connect_client *c) {
        struct connect_call *waiting = NULL, *call, *next;

        if (!c)
                return;
        dispatch_begin(&c->dispatch);
        c->cancel_generation++; /* a LIST inside its on_page sees it */

        /* Calls not on the wire: take them out first, so that nothing a
         * callback does below can start them. */
        for (call = c->calls; call; call = next) {
                next = call->next;
                if (call->state == CALL_RUNNING)
                        continue;
                call_unlink(call);
                call->next = waiting;
                waiting = call;
        }
        for (struct connect_bucket *b = c->buckets; b; b = b->next)
                bucket_schedule(b);

        /* Calls on the wire end through http_done() with -ECANCELED. */
        http_client_cancel_all(c->http);

        while ((call = waiting)) {
                waiting = call->next;
                call->next = NULL;
                if (c->dispatch.freeing) {
                        /* A callback freed the client: the rest go without
                         * callbacks, as connect_client_free() promises. */
                        call_free(call);
                        continue;
                }
                connect_error_clear(&call->result.error);
                call->result.r = -ECANCELED;
                call->result.error.kind = CONNECT_ERROR_OTHER;
                call->result.error.message = strdup("cancelled");
                call_deliver(call); /* already unlinked above */
        }
        dispatch_end(&c->dispatch);
}

static void connect_client_destroy(void *object) {
        struct connect_client *c = object;
        struct connect_call *call;

        while ((call = c->calls)) {
                call_unlink(call);
                call_free(call);
        }
        while (c->buckets) {
                struct connect_bucket *b = c->buckets;
                c->buckets = b->next;
                bucket_free(b);
        }
        http_client_free(c->http);
        credentials_provider_free(c->creds);
        connect_roles_free(c->roles);
        role_cache_free(c->role_cache);
        free(c->endpoint);
        free(c->api_counts);
        sd_event_unref(c->event);
        free(c);
}

struct connect_client *connect_client_free(struct connect_client *c) {
        struct connect_call *call;

        if (!c || !dispatch_mark_freeing(&c->dispatch))
                return NULL;

        /* Dropped without callbacks (connect.h). The HTTP client goes now
         * too, so that no request in flight can call back. */
        while ((call = c->calls)) {
                call_unlink(call);
                call_free(call);
        }
        for (struct connect_bucket *b = c->buckets; b; b = b->next)
                (void) sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
        c->http = http_client_free(c->http);

        if (dispatch_idle(&c->dispatch))
                connect_client_destroy(c);
        return NULL;
}

/* ---- The operations ---- */

/* What picks the call's credentials: the target's or the number's ARN,
 * else the number's id (connect-roles.h). */
static int call_set_credential_key(struct connect_call *call, const struct connect_args *a) {
        const char *arn = a->target_arn ?: a->resource_arn;
        if (arn && !(call->cred_arn = strdup(arn)))
                return -ENOMEM;
        if (!arn && a->phone_number_id && !(call->cred_id = strdup(a->phone_number_id)))
                return -ENOMEM;
        return 0;
}

/* lo: LIST only, else NULL. */
static int call_submit_full(struct connect_client *c, enum connect_op op, const char *region,
                            const struct connect_args *a, const struct connect_list_options *lo, connect_callback_t cb,
                            void *userdata) {
        struct connect_call *call;
        int r;

        if (!c || !cb || !a)
                return -EINVAL;
        if (c->dispatch.freeing)
                return -ESHUTDOWN;
        if (!connect_region_is_valid(region))
                return -EINVAL;
        if (c->read_only && connect_op_is_mutating(op))
                return -EROFS;
        if (op == CONNECT_OP_LIST && (!lo || !lo->on_page))
                return -EINVAL;

        call = calloc(1, sizeof(*call));
        if (!call)
                return -ENOMEM;
        call->client = c;
        call->op = op;
        call->submitted = clock_boottime_usec();
        call->cb = cb;
        call->userdata = userdata;
        call->result.op = op;
        call->region = strdup(region);
        if (!call->region) {
                call_free(call);
                return -ENOMEM;
        }
        if (op == CONNECT_OP_LIST) {
                call->target_arn = strdup(a->target_arn ?: "");
                if (!call->target_arn) {
                        call_free(call);
                        return -ENOMEM;
                }
                if (lo->known_digest) {
                        memcpy(call->known_digest, lo->known_digest, CONNECT_LIST_DIGEST_LEN);
                        call->have_known_digest = true;
                }
                call->max_numbers = lo->max_numbers > 0 ? lo->max_numbers : CONNECT_LIST_DEFAULT_MAX_NUMBERS;
                call->on_page = lo->on_page;
        }
        r = call_set_credential_key(call, a);
        if (r >= 0)
                r = connect_build_request(op, a, &call->req);
        if (r < 0) {
                call_free(call);
                return r;
        }
        char account[64];
        call_account(c, a, account, sizeof account);
        call->bucket = bucket_get(c, account, region, op, &r);
        if (!call->bucket) {
                call_free(call);
                return r;
        }

        call_link(call);
        call_enqueue(call);
        return 0;
}

static int call_submit(struct connect_client *c, enum connect_op op, const char *region, const struct connect_args *a,
                       connect_callback_t cb, void *userdata) {
        return call_submit_full(c, op, region, a, NULL, cb, userdata);
}

int connect_list_numbers(struct connect_client *c, const char *region, const char *target_arn,
                         const struct connect_list_options *o, connect_callback_t cb, void *userdata) {
        return call_submit_full(c, CONNECT_OP_LIST, region, &(struct connect_args){ .target_arn = target_arn }, o,
                                cb, userdata);
}

int connect_describe_number(struct connect_client *c, const char *region, const char *phone_number_id,
                            connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_DESCRIBE, region, &(struct connect_args){ .phone_number_id = phone_number_id },
                           cb, userdata);
}

int connect_search_available(struct connect_client *c, const char *region, const char *target_arn,
                             const char *country, const char *type, const char *prefix, unsigned max_results,
                             connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_SEARCH, region,
                           &(struct connect_args){
                                   .target_arn = target_arn,
                                   .country = country,
                                   .type = type,
                                   .prefix = prefix,
                                   .max_results = max_results,
                           },
                           cb, userdata);
}

int connect_claim_number(struct connect_client *c, const char *region, const char *target_arn,
                         const char *phone_number, const char *description, const struct connect_tag *tags,
                         size_t n_tags, const char *client_token, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_CLAIM, region,
                           &(struct connect_args){
                                   .target_arn = target_arn,
                                   .phone_number = phone_number,
                                   .description = description,
                                   .tags = tags,
                                   .n_tags = n_tags,
                                   .client_token = client_token,
                           },
                           cb, userdata);
}

int connect_release_number(struct connect_client *c, const char *region, const char *phone_number_id,
                           const char *client_token, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_RELEASE, region,
                           &(struct connect_args){ .phone_number_id = phone_number_id, .client_token = client_token },
                           cb, userdata);
}

int connect_update_metadata(struct connect_client *c, const char *region, const char *phone_number_id,
                            const char *description, const char *client_token, connect_callback_t cb,
                            void *userdata) {
        return call_submit(c, CONNECT_OP_UPDATE_METADATA, region,
                           &(struct connect_args){
                                   .phone_number_id = phone_number_id,
                                   .description = description,
                                   .client_token = client_token,
                           },
                           cb, userdata);
}

int connect_update_number(struct connect_client *c, const char *region, const char *phone_number_id,
                          const char *target_arn, const char *client_token, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_UPDATE_NUMBER, region,
                           &(struct connect_args){
                                   .phone_number_id = phone_number_id,
                                   .target_arn = target_arn,
                                   .client_token = client_token,
                           },
                           cb, userdata);
}

int connect_associate_flow(struct connect_client *c, const char *region, const char *phone_number_id,
                           const char *instance_id, const char *contact_flow_id, connect_callback_t cb,
                           void *userdata) {
        return call_submit(c, CONNECT_OP_ASSOCIATE_FLOW, region,
                           &(struct connect_args){
                                   .phone_number_id = phone_number_id,
                                   .instance_id = instance_id,
                                   .contact_flow_id = contact_flow_id,
                           },
                           cb, userdata);
}

int connect_tag_resource(struct connect_client *c, const char *region, const char *resource_arn,
                         const struct connect_tag *tags, size_t n_tags, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_TAG, region,
                           &(struct connect_args){ .resource_arn = resource_arn, .tags = tags, .n_tags = n_tags }, cb,
                           userdata);
}

int connect_untag_resource(struct connect_client *c, const char *region, const char *resource_arn,
                           char *const *keys, size_t n_keys, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_UNTAG, region,
                           &(struct connect_args){ .resource_arn = resource_arn, .tag_keys = keys, .n_tag_keys = n_keys },
                           cb, userdata);
}
