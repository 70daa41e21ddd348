/* metrics.h: the Prometheus metrics file (text exposition format 0.0.4).
 * A pass fills a struct metrics_snapshot (a view: every string is borrowed
 * from the caller), metrics_format() turns it into text and
 * metrics_write_file() puts the text in place atomically, so that a scraper
 * of files (node_exporter's textfile collector) never reads half a file.
 * Formatting is pure: no clock, no I/O, no logging. */
#pragma once

#include "util.h"

/* connect_numbers_api_calls_total{outcome=...} */
enum metrics_api_outcome {
        METRICS_API_OK,
        METRICS_API_THROTTLED,
        METRICS_API_ERROR,
        _METRICS_API_OUTCOME_MAX,
};

/* connect_numbers_claims_total{outcome=...} */
enum metrics_claim_outcome {
        METRICS_CLAIM_CLAIMED,  /* the number became CLAIMED on the pool's target */
        METRICS_CLAIM_FAILED,   /* the claim ended FAILED */
        METRICS_CLAIM_REFUSED,  /* ClaimPhoneNumber refused it (taken, quota) */
        METRICS_CLAIM_GIVEN_UP, /* retries ended without the number */
        _METRICS_CLAIM_OUTCOME_MAX,
};

/* Gauges of one pool of one target. */
struct metrics_pool {
        const char *target;
        const char *pool;
        uint64_t desired;
        uint64_t claimed;        /* CLAIMED on the pool's target, excess included */
        uint64_t in_progress;
        uint64_t failed_pending; /* FAILED claims waiting for their retry */
        uint64_t excess;
        uint64_t moving;
        uint64_t pins_missing;
};

/* Numbers tagged for a target/pool no longer in the YAML. */
struct metrics_orphans {
        const char *target;
        const char *pool;
        uint64_t count;
};

/* Per target: the quota pause and the counters. */
struct metrics_target {
        const char *target;
        bool quota_paused;
        uint64_t claims[_METRICS_CLAIM_OUTCOME_MAX];
        uint64_t releases;
        uint64_t moves;
};

/* Counters of the calls of one operation to one account and region. */
struct metrics_api {
        const char *operation;
        const char *account;
        const char *region;
        uint64_t calls[_METRICS_API_OUTCOME_MAX];
};

struct metrics_snapshot {
        const struct metrics_pool *pools;
        size_t n_pools;
        const struct metrics_orphans *orphans;
        size_t n_orphans;
        const struct metrics_target *targets;
        size_t n_targets;
        const struct metrics_api *api;
        size_t n_api;

        /* The last pass. Wall-clock times in microseconds since the epoch;
         * last_success_usec is 0 when no pass has exited 0 or 75 yet. */
        usec_t pass_duration_usec;
        usec_t last_pass_usec;
        usec_t last_success_usec;
        int last_pass_exit_status;
        /* Since when the counters count (process start, or the time the
         * state they were carried in began): a reset shows as a new value. */
        usec_t counters_since_usec;
};

/* The exposition text of m in a fixed order (families as listed in the
 * manual, series sorted by their label values), every family with # HELP
 * and # TYPE. Returns 0 and *ret (free() it), -EINVAL when a label is NULL
 * or two series of a family have the same labels, -ENOMEM. */
int metrics_format(const struct metrics_snapshot *m, char **ret);

/* Replaces path with text: a temporary file in the same directory (whose
 * name does not end in .prom), fsync, rename, fsync of the directory. The
 * file is mode 0644. Returns 0 or -errno; on failure path is untouched. */
int metrics_write_file(const char *path, const char *text);
