/* pacing.h: client-side pacing and the AWS SDK "standard" retry mode as
 * pure arithmetic (docs/connect-api.md §8): a token bucket per (region,
 * operation), the per-client retry quota, full-jitter backoff and the list
 * of retryable codes and statuses. No clock, no randomness, no I/O: time
 * and random numbers are arguments, so every rule is unit-testable. */
#pragma once

#include "../util.h"

/* A token bucket: `rate` tokens per second refill it up to `burst`. It
 * starts full. */
struct token_bucket {
        double rate;        /* tokens per second, > 0 */
        double burst;       /* capacity in tokens, >= 1 */
        double tokens;      /* tokens available at last_usec */
        usec_t last_usec;   /* time of the last refill */
};

/* rate <= 0 and burst < 1 are raised to the smallest sane values (a bucket
 * that never yields a token would stall its queue forever). */
void token_bucket_init(struct token_bucket *b, double rate, double burst, usec_t now);
/* New rate and burst (configuration reload); tokens already earned are
 * kept, clamped to the new burst. */
void token_bucket_set_rate(struct token_bucket *b, double rate, double burst, usec_t now);
/* Takes one token if one is available at now; returns whether it did. */
bool token_bucket_take(struct token_bucket *b, usec_t now);
/* Time from now until a token is available: 0 when one is available now.
 * A token is guaranteed to be available at now + the returned value. */
usec_t token_bucket_wait_usec(struct token_bucket *b, usec_t now);

/* The SDK standard retry quota (botocore retries/quota.py). */
#define RETRY_QUOTA_CAPACITY 500U
#define RETRY_QUOTA_RETRY_COST 5U
#define RETRY_QUOTA_TIMEOUT_COST 10U
#define RETRY_QUOTA_NO_RETRY_INCREMENT 1U

struct retry_quota {
        unsigned available;  /* tokens left, <= RETRY_QUOTA_CAPACITY */
};

void retry_quota_init(struct retry_quota *q);
/* Pays for one retry: RETRY_QUOTA_TIMEOUT_COST when the failure was a
 * timeout, else RETRY_QUOTA_RETRY_COST. Returns the amount paid, or 0 when
 * the quota cannot pay (then the error is returned without a retry). */
unsigned retry_quota_acquire(struct retry_quota *q, bool is_timeout);
/* After a successful response: last_retry_cost is what the last retry of
 * that request paid (0 when it needed no retry, then
 * RETRY_QUOTA_NO_RETRY_INCREMENT is refunded). Never exceeds capacity. */
void retry_quota_success(struct retry_quota *q, unsigned last_retry_cost);

/* Full-jitter exponential backoff: random_unit * min(2^(attempt-1), 20 s).
 * attempt: 1-based number of the attempt that just failed. random_unit in
 * [0, 1) (values outside are clamped). */
#define RETRY_BACKOFF_MAX_USEC (20 * USEC_PER_SEC)
usec_t retry_backoff_usec(unsigned attempt, double random_unit);
/* The same with another cap (max, 0 = RETRY_BACKOFF_MAX_USEC). */
usec_t retry_backoff_capped_usec(unsigned attempt, double random_unit, usec_t max);

/* The standard mode's retryable conditions (docs/connect-api.md §8). */
bool retry_is_throttling_code(const char *code);  /* ThrottlingException, LimitExceededException, ... */
bool retry_is_transient_code(const char *code);   /* RequestTimeout, RequestTimeoutException, PriorRequestNotComplete */
bool retry_is_transient_status(long http_status); /* 500, 502, 503, 504 */
/* Transport failures (negative errno from http.h) that the SDK retries as
 * connection errors or timeouts. */
bool retry_is_transient_errno(int r);
