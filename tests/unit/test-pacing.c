/* test-pacing.c: token buckets, the SDK retry quota, full-jitter backoff
 * and the retryable lists, all with an injected clock and injected random
 * numbers (no timing in these tests). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aws/pacing.h"

#define T0 ((usec_t) 1000 * USEC_PER_SEC)

static void test_bucket_burst_then_rate(_unused_ void **state) {
        struct token_bucket b;

        /* 2/s burst 5: five immediate, then one every 500 ms. */
        token_bucket_init(&b, 2.0, 5.0, T0);
        for (int i = 0; i < 5; i++) {
                assert_int_equal(token_bucket_wait_usec(&b, T0), 0);
                assert_true(token_bucket_take(&b, T0));
        }
        assert_false(token_bucket_take(&b, T0));
        assert_int_equal(token_bucket_wait_usec(&b, T0), 500 * USEC_PER_MSEC);

        usec_t t = T0;
        for (int i = 0; i < 20; i++) {
                usec_t w = token_bucket_wait_usec(&b, t);
                assert_int_equal(w, 500 * USEC_PER_MSEC);
                /* one microsecond early: still nothing */
                assert_false(token_bucket_take(&b, t + w - 1));
                t += w;
                assert_true(token_bucket_take(&b, t));
                assert_false(token_bucket_take(&b, t));
        }
}

static void test_bucket_partial_wait(_unused_ void **state) {
        struct token_bucket b;

        token_bucket_init(&b, 2.0, 5.0, T0);
        for (int i = 0; i < 5; i++)
                assert_true(token_bucket_take(&b, T0));
        /* 200 ms later 0.4 tokens are there: 300 ms to go. */
        assert_int_equal(token_bucket_wait_usec(&b, T0 + 200 * USEC_PER_MSEC), 300 * USEC_PER_MSEC);
        assert_true(token_bucket_take(&b, T0 + 500 * USEC_PER_MSEC));
}

static void test_bucket_refill_caps_at_burst(_unused_ void **state) {
        struct token_bucket b;
        int n = 0;

        token_bucket_init(&b, 2.0, 5.0, T0);
        for (int i = 0; i < 5; i++)
                assert_true(token_bucket_take(&b, T0));
        /* An hour idle earns no more than the burst. */
        usec_t later = T0 + USEC_PER_HOUR;
        while (token_bucket_take(&b, later))
                n++;
        assert_int_equal(n, 5);
}

static void test_bucket_odd_rates(_unused_ void **state) {
        struct token_bucket b;

        /* 0.1/s: ten seconds between tokens. */
        token_bucket_init(&b, 0.1, 1.0, T0);
        assert_true(token_bucket_take(&b, T0));
        assert_int_equal(token_bucket_wait_usec(&b, T0), 10 * USEC_PER_SEC);
        assert_true(token_bucket_take(&b, T0 + 10 * USEC_PER_SEC));

        /* 3/s: a wait is never promised too short. */
        token_bucket_init(&b, 3.0, 1.0, T0);
        usec_t t = T0;
        for (int i = 0; i < 100; i++) {
                assert_true(token_bucket_take(&b, t));
                usec_t w = token_bucket_wait_usec(&b, t);
                assert_true(w >= 333333 && w <= 333334);
                t += w;
        }

        /* Nonsense rates are made sane rather than stalling forever. */
        token_bucket_init(&b, 0.0, 0.0, T0);
        assert_true(token_bucket_take(&b, T0));
        assert_true(token_bucket_wait_usec(&b, T0) > 0);
        assert_true(token_bucket_wait_usec(&b, T0) != USEC_INFINITY);
}

static void test_bucket_clock_backwards(_unused_ void **state) {
        struct token_bucket b;

        token_bucket_init(&b, 2.0, 1.0, T0);
        assert_true(token_bucket_take(&b, T0));
        /* An earlier reading earns nothing and breaks nothing. */
        assert_false(token_bucket_take(&b, T0 - USEC_PER_SEC));
        assert_true(token_bucket_take(&b, T0 + 500 * USEC_PER_MSEC));
}

static void test_bucket_set_rate(_unused_ void **state) {
        struct token_bucket b;

        token_bucket_init(&b, 2.0, 5.0, T0);
        /* Lowering the burst clamps what is stored. */
        token_bucket_set_rate(&b, 10.0, 2.0, T0);
        assert_true(token_bucket_take(&b, T0));
        assert_true(token_bucket_take(&b, T0));
        assert_false(token_bucket_take(&b, T0));
        assert_int_equal(token_bucket_wait_usec(&b, T0), 100 * USEC_PER_MSEC);
}

static void test_retry_quota(_unused_ void **state) {
        struct retry_quota q;

        retry_quota_init(&q);
        assert_int_equal(q.available, 500);

        assert_int_equal(retry_quota_acquire(&q, false), 5);
        assert_int_equal(q.available, 495);
        assert_int_equal(retry_quota_acquire(&q, true), 10);
        assert_int_equal(q.available, 485);

        /* Success after a retry refunds what that retry cost. */
        retry_quota_success(&q, 10);
        assert_int_equal(q.available, 495);
        /* Success without a retry refunds 1, never past capacity. */
        retry_quota_success(&q, 0);
        assert_int_equal(q.available, 496);
        for (int i = 0; i < 10; i++)
                retry_quota_success(&q, 0);
        assert_int_equal(q.available, 500);
        retry_quota_success(&q, 5);
        assert_int_equal(q.available, 500);

        /* Drain: 100 retries of 5, then none. */
        for (int i = 0; i < 100; i++)
                assert_int_equal(retry_quota_acquire(&q, false), 5);
        assert_int_equal(q.available, 0);
        assert_int_equal(retry_quota_acquire(&q, false), 0);
        assert_int_equal(retry_quota_acquire(&q, true), 0);

        /* 7 left: a retry (5) fits, a timeout retry (10) does not. */
        q.available = 7;
        assert_int_equal(retry_quota_acquire(&q, true), 0);
        assert_int_equal(q.available, 7);
        assert_int_equal(retry_quota_acquire(&q, false), 5);
        assert_int_equal(q.available, 2);
}

static void test_backoff(_unused_ void **state) {
        /* random 0: no wait at all */
        for (unsigned a = 1; a < 40; a++)
                assert_int_equal(retry_backoff_usec(a, 0.0), 0);

        /* random 0.999: just under min(2^(attempt-1), 20) s */
        assert_int_equal(retry_backoff_usec(1, 0.999), 999000);
        assert_int_equal(retry_backoff_usec(2, 0.999), 1998000);
        assert_int_equal(retry_backoff_usec(3, 0.999), 3996000);
        assert_int_equal(retry_backoff_usec(4, 0.999), 7992000);
        assert_int_equal(retry_backoff_usec(5, 0.999), 15984000);
        assert_int_equal(retry_backoff_usec(6, 0.999), 19980000); /* 32 s capped to 20 */
        assert_int_equal(retry_backoff_usec(1000, 0.999), 19980000);
        assert_int_equal(retry_backoff_usec(UINT32_MAX, 0.999), 19980000);

        assert_int_equal(retry_backoff_usec(2, 0.5), 1000000);
        /* another cap: a throttled call backs off at most that long, and
         * 0 means the standard 20 s */
        assert_int_equal(retry_backoff_capped_usec(1, 0.5, 100 * USEC_PER_MSEC), 50000);
        assert_int_equal(retry_backoff_capped_usec(UINT32_MAX, 0.5, 100 * USEC_PER_MSEC), 50000);
        assert_int_equal(retry_backoff_capped_usec(17, 0.5, 0), 10000000);
        assert_int_equal(retry_backoff_capped_usec(3, 0.5, 60 * USEC_PER_SEC), 2000000);

        /* never reaches the cap, even with out-of-range input */
        assert_true(retry_backoff_usec(100, 1.0) < RETRY_BACKOFF_MAX_USEC);
        assert_true(retry_backoff_usec(100, 7.0) < RETRY_BACKOFF_MAX_USEC);
        assert_int_equal(retry_backoff_usec(100, -1.0), 0);
        /* attempt 0 is treated as the first */
        assert_int_equal(retry_backoff_usec(0, 0.5), 500000);
}

static void test_retryable_lists(_unused_ void **state) {
        assert_true(retry_is_throttling_code("ThrottlingException"));
        assert_true(retry_is_throttling_code("Throttling"));
        assert_true(retry_is_throttling_code("TooManyRequestsException"));
        assert_true(retry_is_throttling_code("LimitExceededException"));
        assert_true(retry_is_throttling_code("SlowDown"));
        assert_true(retry_is_throttling_code("EC2ThrottledException"));
        assert_false(retry_is_throttling_code("ServiceQuotaExceededException"));
        assert_false(retry_is_throttling_code("ResourceNotFoundException"));
        assert_false(retry_is_throttling_code("throttlingexception"));
        assert_false(retry_is_throttling_code(NULL));

        assert_true(retry_is_transient_code("RequestTimeout"));
        assert_true(retry_is_transient_code("RequestTimeoutException"));
        assert_true(retry_is_transient_code("PriorRequestNotComplete"));
        assert_false(retry_is_transient_code("InternalServiceException")); /* retried by its 500 */
        assert_false(retry_is_transient_code(NULL));

        assert_true(retry_is_transient_status(500));
        assert_true(retry_is_transient_status(502));
        assert_true(retry_is_transient_status(503));
        assert_true(retry_is_transient_status(504));
        assert_false(retry_is_transient_status(501));
        assert_false(retry_is_transient_status(429)); /* throttling is decided by code/kind */
        assert_false(retry_is_transient_status(400));
        assert_false(retry_is_transient_status(404));
        assert_false(retry_is_transient_status(200));

        assert_true(retry_is_transient_errno(-ETIMEDOUT));
        assert_true(retry_is_transient_errno(-ECONNRESET));
        assert_true(retry_is_transient_errno(-ECONNREFUSED));
        assert_true(retry_is_transient_errno(-EPIPE));
        assert_false(retry_is_transient_errno(-EPROTO)); /* TLS: retrying cannot help */
        assert_false(retry_is_transient_errno(-EFBIG));
        assert_false(retry_is_transient_errno(-ECANCELED));
        assert_false(retry_is_transient_errno(0));
}

/* ---- The adaptive rate: rates after sequences of answers ---- */

struct rate_event {
        unsigned ms;    /* after T0 */
        bool throttled;
        double rate;    /* the allowed rate after this answer */
};

static const struct rate_event seq_cut_and_regain[] = {
        {0, true, 1.4000}, /* streak 0 measured 0.00 */
        {500, false, 1.8928}, /* streak 0 measured 2.00 */
        {1000, false, 1.9988}, /* streak 0 measured 2.00 */
        {1145, false, 2.0000}, /* streak 0 measured 2.00 */
        {2000, false, 2.0000}, /* streak 0 measured 2.00 */
        {60000, false, 2.0000}, /* streak 0 measured 0.41 */
};

static const struct rate_event seq_back_to_back[] = {
        {0, true, 1.4000}, /* streak 0 measured 0.00 */
        {10, true, 0.9800}, /* streak 0 measured 0.00 */
        {20, true, 0.6860}, /* streak 0 measured 0.00 */
        {30, true, 0.5000}, /* streak 0 measured 0.00 */
        {40, true, 0.5000}, /* streak 0 measured 0.00 */
        {1000, false, 0.5055}, /* streak 0 measured 5.00 */
        {2000, false, 1.2606}, /* streak 0 measured 1.80 */
        {3000, false, 2.0000}, /* streak 0 measured 1.16 */
};

static const struct rate_event seq_repeats[] = {
        {0, true, 1.4000}, /* streak 0 measured 0.00 */
        {250, false, 1.7135}, /* streak 0 measured 0.00 */
        {500, false, 1.8928}, /* streak 0 measured 4.00 */
        {750, false, 1.9754}, /* streak 0 measured 4.00 */
        {1000, false, 1.9988}, /* streak 0 measured 4.00 */
        {1250, false, 2.0000}, /* streak 0 measured 4.00 */
        {1500, true, 1.4000}, /* streak 1 measured 4.00 */
        {1750, false, 1.5759}, /* streak 1 measured 4.00 */
        {2000, false, 1.7135}, /* streak 1 measured 4.00 */
        {2250, false, 1.8176}, /* streak 1 measured 4.00 */
        {2500, false, 1.8928}, /* streak 1 measured 4.00 */
        {2750, false, 1.9438}, /* streak 1 measured 4.00 */
        {3000, false, 1.9754}, /* streak 1 measured 4.00 */
        {3250, false, 1.9922}, /* streak 1 measured 4.00 */
        {3500, false, 1.9988}, /* streak 1 measured 4.00 */
        {3750, false, 2.0000}, /* streak 1 measured 4.00 */
        {3800, true, 1.4000}, /* streak 2 measured 4.00 */
        {4000, false, 1.4752}, /* streak 2 measured 5.60 */
        {4500, false, 1.6353}, /* streak 2 measured 2.72 */
        {5000, false, 1.7589}, /* streak 2 measured 2.14 */
        {5500, false, 1.8509}, /* streak 2 measured 2.03 */
        {6000, false, 1.9159}, /* streak 2 measured 2.01 */
        {6500, false, 1.9585}, /* streak 2 measured 2.00 */
        {7000, false, 1.9836}, /* streak 2 measured 2.00 */
        {7500, false, 1.9958}, /* streak 2 measured 2.00 */
        {8000, false, 1.9997}, /* streak 2 measured 2.00 */
        {8500, false, 2.0000}, /* streak 2 measured 2.00 */
        {8600, true, 1.4000}, /* streak 3 measured 2.00 */
        {12000, false, 1.8509}, /* streak 3 measured 0.86 */
        {20000, false, 2.0000}, /* streak 3 measured 0.27 */
        {25000, true, 0.5000}, /* streak 3 measured 0.21 */
        {30000, false, 0.5000}, /* streak 3 measured 0.20 */
        {60000, false, 2.0000}, /* streak 3 measured 0.07 */
        {100000, false, 2.0000}, /* streak 3 measured 0.03 */
        {100000, true, 0.5000}, /* streak 0 measured 0.03 */
};

static const struct rate_event seq_sparse[] = {
        {0, false, 2.0000}, /* streak 0 measured 0.00 */
        {1000, false, 2.0000}, /* streak 0 measured 1.00 */
        {2000, false, 2.0000}, /* streak 0 measured 1.00 */
        {3000, false, 2.0000}, /* streak 0 measured 1.00 */
        {4000, false, 2.0000}, /* streak 0 measured 1.00 */
        {5000, true, 0.7000}, /* streak 0 measured 1.00 */
        {5500, false, 0.9727}, /* streak 0 measured 1.80 */
};

static void run_sequence(double ceiling, const struct rate_event *ev, size_t n) {
        struct adaptive_rate a;

        adaptive_rate_init(&a, ceiling, T0);
        for (size_t i = 0; i < n; i++) {
                double r = adaptive_rate_on_response(&a, ev[i].throttled, T0 + ev[i].ms * USEC_PER_MSEC);
                if (fabs(r - ev[i].rate) > 1e-3)
                        fail_msg("event %zu (%u ms, %s): rate %.4f, want %.4f", i, ev[i].ms,
                                 ev[i].throttled ? "throttled" : "ok", r, ev[i].rate);
                assert_true(r >= a.floor && r <= ceiling);
        }
}

static void test_adaptive_sequences(_unused_ void **state) {
        /* One throttle: cut by 0.7, back at the old rate after
         * K = cbrt(2 x 0.3 / 0.4) = 1.145 s, never past the ceiling. */
        run_sequence(2.0, seq_cut_and_regain, ELEMENTSOF(seq_cut_and_regain));
        /* Answers to calls already sent each cut again, down to the floor
         * (a quarter of the ceiling), not below. */
        run_sequence(2.0, seq_back_to_back, ELEMENTSOF(seq_back_to_back));
        /* Throttled again each time the old level is regained: the curve
         * runs 2, 4, 8 times slower (1.1 s, 2.3 s, 4.6 s, 9.2 s to get
         * back); a throttle at a low measured rate cuts from that rate; a
         * throttle long after the last one starts a new episode. */
        run_sequence(2.0, seq_repeats, ELEMENTSOF(seq_repeats));
        /* A client sending 1/s while allowed 2/s is cut from 1/s. */
        run_sequence(2.0, seq_sparse, ELEMENTSOF(seq_sparse));
}

static void test_adaptive_bounds(_unused_ void **state) {
        struct adaptive_rate a;
        usec_t t = T0;

        /* Unthrottled: the ceiling, with the configured burst. */
        adaptive_rate_init(&a, 1.9, T0);
        for (int i = 0; i < 100; i++)
                assert_true(adaptive_rate_on_response(&a, false, t += 100 * USEC_PER_MSEC) == 1.9);
        assert_true(adaptive_rate_burst(&a, 5.0) == 5.0);

        /* Every answer throttled for ten minutes: the floor, never lower,
         * and a burst of one. */
        for (int i = 0; i < 6000; i++)
                assert_true(adaptive_rate_on_response(&a, true, t += 100 * USEC_PER_MSEC) >= 0.475 - 1e-9);
        assert_true(fabs(a.rate - 0.475) < 1e-9);
        assert_true(adaptive_rate_burst(&a, 5.0) == 1.0);
        assert_int_equal(a.streak, ADAPTIVE_STREAK_MAX); /* repeats at one level: probing at its slowest */

        /* Small ceilings: floor 0.1, or the ceiling itself below that. */
        adaptive_rate_init(&a, 0.2, T0);
        for (int i = 0; i < 50; i++)
                adaptive_rate_on_response(&a, true, T0 + (usec_t) i * USEC_PER_SEC);
        assert_true(fabs(a.rate - 0.1) < 1e-9);
        adaptive_rate_init(&a, 0.05, T0);
        assert_true(fabs(adaptive_rate_on_response(&a, true, T0) - 0.05) < 1e-9);

        /* Nonsense ceilings are made sane. */
        adaptive_rate_init(&a, 0.0, T0);
        assert_true(a.rate > 0 && a.floor > 0 && a.floor <= a.ceiling);
}

static void test_adaptive_set_ceiling(_unused_ void **state) {
        struct adaptive_rate a;

        /* Unthrottled: follows the new ceiling up and down. */
        adaptive_rate_init(&a, 2.0, T0);
        adaptive_rate_set_ceiling(&a, 4.0);
        assert_true(a.rate == 4.0);
        adaptive_rate_set_ceiling(&a, 1.0);
        assert_true(a.rate == 1.0);
        assert_true(fabs(a.floor - 0.25) < 1e-9);

        /* Throttled: keeps its rate, clamped to the new bounds. */
        adaptive_rate_init(&a, 2.0, T0);
        assert_true(fabs(adaptive_rate_on_response(&a, true, T0) - 1.4) < 1e-9);
        adaptive_rate_set_ceiling(&a, 4.0);
        assert_true(fabs(a.rate - 1.4) < 1e-9);
        adaptive_rate_set_ceiling(&a, 1.0);
        assert_true(a.rate == 1.0);
        /* The curve never leaves the new ceiling again. */
        assert_true(adaptive_rate_on_response(&a, false, T0 + USEC_PER_HOUR) == 1.0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bucket_burst_then_rate),
                cmocka_unit_test(test_bucket_partial_wait),
                cmocka_unit_test(test_bucket_refill_caps_at_burst),
                cmocka_unit_test(test_bucket_odd_rates),
                cmocka_unit_test(test_bucket_clock_backwards),
                cmocka_unit_test(test_bucket_set_rate),
                cmocka_unit_test(test_retry_quota),
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_retryable_lists),
                cmocka_unit_test(test_adaptive_sequences),
                cmocka_unit_test(test_adaptive_bounds),
                cmocka_unit_test(test_adaptive_set_ceiling),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
