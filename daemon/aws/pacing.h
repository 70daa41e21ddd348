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

/* Adaptive sending rate (docs/throttling.md): the SDKs' adaptive retry
 * mode, a CUBIC-like rate per (account, region, operation) that is cut on
 * a throttle and grows back as calls succeed, plus slower probing after
 * repeated throttles at the same level so that a client sharing the
 * account's bucket is not throttled every few seconds. Pure: the time is
 * an argument. The rate stays within [floor, ceiling]; the ceiling is the
 * operator's api_rate. */
#define ADAPTIVE_BETA 0.7            /* multiplicative decrease on a throttle */
#define ADAPTIVE_C 0.4               /* CUBIC scaling constant, (req/s) / s^3 */
#define ADAPTIVE_FLOOR_MIN 0.1       /* req/s: the floor never goes lower (unless the ceiling does) */
#define ADAPTIVE_FLOOR_FRACTION 0.25 /* floor = max(FLOOR_MIN, FRACTION x ceiling), <= ceiling */
#define ADAPTIVE_NEAR 0.8            /* a throttle at >= NEAR x the last throttled rate is a repeat */
#define ADAPTIVE_REPEAT_WINDOW 3.0   /* s (curve time) after the curve regains W_max: later is a new episode */
#define ADAPTIVE_STRETCH_BASE 2.0    /* the curve runs STRETCH_BASE^streak times slower */
#define ADAPTIVE_STREAK_MAX 5U       /* at most 32 x slower */
#define ADAPTIVE_MEASURE_SLOT_USEC (500 * USEC_PER_MSEC)
#define ADAPTIVE_MEASURE_SMOOTH 0.8

struct adaptive_rate {
        double ceiling;       /* req/s, > 0 */
        double floor;         /* req/s, 0 < floor <= ceiling */
        double rate;          /* allowed sending rate now */
        double w_max;         /* the rate in use at the last throttle */
        double k;             /* curve time (s) at which the curve is back at w_max */
        double stretch;       /* wall seconds per curve second: STRETCH_BASE^streak */
        unsigned streak;      /* repeated throttles near the same level */
        bool throttled;       /* a throttle was seen since init: the curve is active */
        usec_t last_throttle;
        /* The measured rate of answers: smoothed count per half-second slot. */
        double measured;
        unsigned slot_count;
        usec_t slot_start;
        bool measured_valid;
};

void adaptive_rate_init(struct adaptive_rate *a, double ceiling, usec_t now);
/* A new ceiling (configuration reload): the rate is clamped to it; an
 * unthrottled rate follows it. */
void adaptive_rate_set_ceiling(struct adaptive_rate *a, double ceiling);
/* One answer received at now: throttled or anything else. Returns the
 * allowed rate after it. */
double adaptive_rate_on_response(struct adaptive_rate *a, bool throttled, usec_t now);
/* The token bucket capacity to use with the current rate: the configured
 * burst while at the ceiling, else max(1, rate) (a throttled client must
 * not send a burst the moment tokens have piled up). */
double adaptive_rate_burst(const struct adaptive_rate *a, double configured_burst);
