/* pacing.c: token buckets, the retry quota, backoff and the retryable
 * code lists of the SDK standard retry mode. Pure: no clock (time is an
 * argument), no randomness (the random number is an argument), no logging,
 * no I/O. */
#include "pacing.h"

#include <math.h>

/* Refills computed with doubles can land a hair under a whole token at the
 * very microsecond a wait said it would be there; this slack keeps the
 * promise of token_bucket_wait_usec(). */
#define TOKEN_EPSILON 1e-9

static void token_bucket_refill(struct token_bucket *b, usec_t now) {
        if (now <= b->last_usec)
                return; /* the same instant, or a clock that went back: earn nothing */
        b->tokens += (double) (now - b->last_usec) * b->rate / (double) USEC_PER_SEC;
        if (b->tokens > b->burst)
                b->tokens = b->burst;
        b->last_usec = now;
}

static void token_bucket_sanitize(double *rate, double *burst) {
        if (!(*rate > 0.0) || !isfinite(*rate))
                *rate = 0.001;
        if (!(*burst >= 1.0) || !isfinite(*burst))
                *burst = 1.0;
}

void token_bucket_init(struct token_bucket *b, double rate, double burst, usec_t now) {
        token_bucket_sanitize(&rate, &burst);
        *b = (struct token_bucket){
                .rate = rate,
                .burst = burst,
                .tokens = burst,
                .last_usec = now,
        };
}

void token_bucket_set_rate(struct token_bucket *b, double rate, double burst, usec_t now) {
        token_bucket_refill(b, now);
        token_bucket_sanitize(&rate, &burst);
        b->rate = rate;
        b->burst = burst;
        if (b->tokens > burst)
                b->tokens = burst;
}

bool token_bucket_take(struct token_bucket *b, usec_t now) {
        token_bucket_refill(b, now);
        if (b->tokens < 1.0 - TOKEN_EPSILON)
                return false;
        b->tokens -= 1.0;
        if (b->tokens < 0.0)
                b->tokens = 0.0;
        return true;
}

usec_t token_bucket_wait_usec(struct token_bucket *b, usec_t now) {
        token_bucket_refill(b, now);
        if (b->tokens >= 1.0 - TOKEN_EPSILON)
                return 0;
        double usec = ceil((1.0 - b->tokens) * (double) USEC_PER_SEC / b->rate);
        if (usec < 1.0)
                usec = 1.0;
        return (usec_t) usec;
}

void retry_quota_init(struct retry_quota *q) {
        q->available = RETRY_QUOTA_CAPACITY;
}

unsigned retry_quota_acquire(struct retry_quota *q, bool is_timeout) {
        unsigned cost = is_timeout ? RETRY_QUOTA_TIMEOUT_COST : RETRY_QUOTA_RETRY_COST;
        if (q->available < cost)
                return 0;
        q->available -= cost;
        return cost;
}

void retry_quota_success(struct retry_quota *q, unsigned last_retry_cost) {
        unsigned refund = last_retry_cost > 0 ? last_retry_cost : RETRY_QUOTA_NO_RETRY_INCREMENT;
        q->available = MIN(RETRY_QUOTA_CAPACITY, q->available + refund);
}

usec_t retry_backoff_capped_usec(unsigned attempt, double random_unit, usec_t max) {
        if (!(random_unit >= 0.0)) /* also NaN */
                random_unit = 0.0;
        if (random_unit >= 1.0)
                random_unit = nextafter(1.0, 0.0);
        if (attempt < 1)
                attempt = 1;
        if (max == 0)
                max = RETRY_BACKOFF_MAX_USEC;
        /* 2^(attempt-1) s, capped: past 2^15 s every sane cap is reached,
         * so larger exponents (and their overflow) never need computing. */
        usec_t cap = attempt - 1 >= 15 ? max : MIN(max, (USEC_PER_SEC << (attempt - 1)));
        return (usec_t) (random_unit * (double) cap);
}

usec_t retry_backoff_usec(unsigned attempt, double random_unit) {
        return retry_backoff_capped_usec(attempt, random_unit, RETRY_BACKOFF_MAX_USEC);
}

static bool str_in(const char *s, const char *const *list, size_t n) {
        if (!s)
                return false;
        for (size_t i = 0; i < n; i++)
                if (streq(s, list[i]))
                        return true;
        return false;
}

bool retry_is_throttling_code(const char *code) {
        static const char *const codes[] = {
                "Throttling",
                "ThrottlingException",
                "ThrottledException",
                "RequestThrottledException",
                "TooManyRequestsException",
                "ProvisionedThroughputExceededException",
                "TransactionInProgressException",
                "RequestLimitExceeded",
                "BandwidthLimitExceeded",
                "LimitExceededException",
                "RequestThrottled",
                "SlowDown",
                "PriorRequestNotComplete",
                "EC2ThrottledException",
        };
        return str_in(code, codes, ELEMENTSOF(codes));
}

bool retry_is_transient_code(const char *code) {
        static const char *const codes[] = {
                "RequestTimeout",
                "RequestTimeoutException",
                "PriorRequestNotComplete",
        };
        return str_in(code, codes, ELEMENTSOF(codes));
}

bool retry_is_transient_status(long http_status) {
        return http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504;
}

bool retry_is_transient_errno(int r) {
        switch (r) {
        case -ETIMEDOUT:
        case -ECONNREFUSED:
        case -ECONNRESET:
        case -ECONNABORTED:
        case -EPIPE:
        case -ENOTCONN:
        case -EHOSTUNREACH:
        case -ENETUNREACH:
        case -ENETDOWN:
        case -EHOSTDOWN:
        case -EADDRNOTAVAIL:
                return true;
        default:
                return false;
        }
}

static double adaptive_floor(double ceiling) {
        return MIN(ceiling, MAX(ADAPTIVE_FLOOR_MIN, ADAPTIVE_FLOOR_FRACTION * ceiling));
}

static double adaptive_sane_ceiling(double ceiling) {
        return ceiling > 0.0 && isfinite(ceiling) ? ceiling : 0.001;
}

void adaptive_rate_init(struct adaptive_rate *a, double ceiling, usec_t now) {
        ceiling = adaptive_sane_ceiling(ceiling);
        *a = (struct adaptive_rate){
                .ceiling = ceiling,
                .floor = adaptive_floor(ceiling),
                .rate = ceiling,
                .w_max = ceiling,
                .stretch = 1.0,
                .slot_start = now - now % ADAPTIVE_MEASURE_SLOT_USEC,
        };
}

void adaptive_rate_set_ceiling(struct adaptive_rate *a, double ceiling) {
        ceiling = adaptive_sane_ceiling(ceiling);
        if (!a->throttled || a->rate >= a->ceiling)
                a->rate = ceiling;
        a->ceiling = ceiling;
        a->floor = adaptive_floor(ceiling);
        a->rate = MIN(MAX(a->rate, a->floor), a->ceiling);
}

/* Answers per second, smoothed over half-second slots: what the client
 * really sends, which may be well under what it is allowed. */
static void adaptive_measure(struct adaptive_rate *a, usec_t now) {
        usec_t slot = now - now % ADAPTIVE_MEASURE_SLOT_USEC;

        if (slot > a->slot_start) {
                double sample = (double) a->slot_count * (double) USEC_PER_SEC / (double) (slot - a->slot_start);
                a->measured = a->measured_valid ? ADAPTIVE_MEASURE_SMOOTH * sample +
                                                          (1.0 - ADAPTIVE_MEASURE_SMOOTH) * a->measured
                                                : sample;
                a->measured_valid = true;
                a->slot_count = 0;
                a->slot_start = slot;
        }
        a->slot_count++;
}

/* Seconds of curve time since the last throttle. */
static double adaptive_curve_time(const struct adaptive_rate *a, usec_t now) {
        if (now <= a->last_throttle)
                return 0.0;
        return (double) (now - a->last_throttle) / (double) USEC_PER_SEC / a->stretch;
}

double adaptive_rate_on_response(struct adaptive_rate *a, bool throttled, usec_t now) {
        adaptive_measure(a, now);

        if (!throttled) {
                if (!a->throttled)
                        return a->rate;
                double x = adaptive_curve_time(a, now) - a->k;
                double w = ADAPTIVE_C * x * x * x + a->w_max;
                a->rate = MIN(MAX(w, a->floor), a->ceiling);
                return a->rate;
        }

        /* The rate in use: the allowed one, or what was really sent when
         * that was less (cutting an unused allowance would change
         * nothing). */
        double in_use = a->rate;
        if (a->measured_valid && a->measured > 0.0 && a->measured < in_use)
                in_use = MAX(a->measured, a->floor);

        /* Throttled again near the level of the last throttle, before the
         * curve went far past it: that level is not available (another
         * client takes part of the bucket). CUBIC would regain it within a
         * second or two and be throttled again; probing ever more slowly
         * keeps the repeats rare. A throttle long after is a new episode. */
        if (a->throttled) {
                double t = adaptive_curve_time(a, now);
                if (t >= a->k + ADAPTIVE_REPEAT_WINDOW)
                        a->streak = 0;
                else if (in_use >= ADAPTIVE_NEAR * a->w_max && a->streak < ADAPTIVE_STREAK_MAX)
                        a->streak++;
        }
        a->throttled = true;
        a->last_throttle = now;
        a->w_max = in_use;
        a->rate = MIN(MAX(in_use * ADAPTIVE_BETA, a->floor), a->ceiling);
        a->k = cbrt(a->w_max * (1.0 - ADAPTIVE_BETA) / ADAPTIVE_C);
        a->stretch = pow(ADAPTIVE_STRETCH_BASE, (double) a->streak);
        return a->rate;
}

double adaptive_rate_burst(const struct adaptive_rate *a, double configured_burst) {
        if (a->rate >= a->ceiling)
                return configured_burst;
        return MAX(1.0, MIN(configured_burst, a->rate));
}
