/* metrics-snapshot.h: what goes into the metrics file, gathered from the
 * configuration, the state, the Connect client's call counts, the counters
 * the passes keep and the last pass's result; metrics.h formats and writes
 * it. The counters live as long as the process (the manager owns them):
 * they restart from 0 with it, which connect_numbers_start_time_seconds
 * tells a scraper's rate(). */
#pragma once

#include "config.h"
#include "connect.h"
#include "lifecycle.h"
#include "metrics.h"
#include "plan.h"
#include "state.h"

/* Claims, releases and moves of one target, counted as the passes log them. */
struct metrics_target_counters {
        char *target;
        uint64_t claims[_METRICS_CLAIM_OUTCOME_MAX];
        uint64_t releases;
        uint64_t moves;
};

struct metrics_counters {
        struct metrics_target_counters *targets;
        size_t n_targets;
};

/* The counters of target, made (zero) the first time; NULL when c or
 * target is NULL or memory runs out (a count is lost, nothing else). */
struct metrics_target_counters *metrics_counters_get(struct metrics_counters *c, const char *target);
void metrics_counters_clear(struct metrics_counters *c);
/* What a lifecycle event counts: claims claimed, failed (FAILED, the one-day
 * retry starts; a quota refusal is one) and given up (its window ended),
 * releases. c may be NULL. */
void metrics_counters_event(struct metrics_counters *c, const struct lifecycle_event *ev);
/* A ClaimPhoneNumber of target answered with an error, and what the
 * lifecycle made of it (retry: the claim was a FAILED number's retry).
 * Throttling and transient errors are no answer (the intent is replayed):
 * not counted. Any other is "refused"; a refused retry is also "given_up"
 * (another number replaces it). c may be NULL. */
void metrics_counters_refusal(struct metrics_counters *c, const char *target, bool retry, enum claim_next next);

/* The last pass, as the file reports it. Wall-clock microseconds. */
struct metrics_pass_info {
        usec_t duration_usec;
        usec_t ended_usec;
        usec_t last_success_usec;  /* 0: no pass exited 0 or 75 yet */
        usec_t since_usec;         /* when the counters started (the process's start) */
        int exit_status;
};

/* Where the file goes: metrics_file:, else $RUNTIME_DIRECTORY/metrics.prom
 * (the first directory when systemd lists several), else none. Returns 0
 * and *ret (NULL: no file), or -ENOMEM. */
int metrics_path(const struct config *c, char **ret);

/* The exposition text for the configuration c and state s at wall time
 * now (seconds): pool gauges for every pool of c, quota pauses and
 * counters for every target of c (and for counted targets since removed),
 * the orphans the plan reported (plan may be NULL), the client's API
 * counts (a call that named no ARN is put on the account of c's targets in
 * its region when they have one, else on "unknown"). Returns 0 and *ret,
 * or -ENOMEM. */
int metrics_snapshot_format(const struct config *c, const struct state *s, const struct connect_client *client,
                            const struct metrics_counters *counters, const struct plan *plan,
                            const struct metrics_pass_info *info, uint64_t now, char **ret);
