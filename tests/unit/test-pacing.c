/* test-pacing.c: token buckets, the SDK retry quota, full-jitter backoff
 * and the retryable lists, all with an injected clock and injected random
 * numbers (no timing in these tests). */
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
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
