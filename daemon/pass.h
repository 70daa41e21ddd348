/* pass.h: one reconcile pass, run asynchronously on the sd-event loop:
 * list every target, describe what the state does not know, plan, then run
 * the plan's steps through the Connect client (many in flight, paced by
 * the client), follow new claims until CLAIMED or FAILED, and save the
 * state. Owns no long-lived resource: the manager (or main, for --once and
 * --plan) owns the loop, the client, the config and the state. */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"
#include "connect.h"
#include "reconcile.h"
#include "state.h"

struct metrics_counters;

/* Exit statuses shared with the command line (connect-numbersd(8), EXIT STATUS). */
#define EXIT_DESIRED_HOLDS 0
#define EXIT_FAILURE_OTHER 1
#define EXIT_WORK_REMAINS 75
#define EXIT_CONFIG 78

struct pass_options {
        bool read_only;              /* --plan: list, describe, plan; no change, no state save */
        usec_t follow_usec;          /* how long to follow IN_PROGRESS claims before ending */
        unsigned audit_budget;       /* describes for the daily audit in this pass */
        const char *state_dir;       /* where the state is saved (NULL: never) */
        struct metrics_counters *counters; /* claims, releases, moves counted here (the caller's), or NULL */
};

struct pass_result {
        int exit_status;             /* 0, 75 or 1 as --once reports it */
        struct plan *plan;           /* the plan made (owned by the result) */
        unsigned desired;            /* every pool's count */
        unsigned claimed;            /* CLAIMED on their pools' targets (excess included) */
        unsigned in_progress;        /* claims sent, not settled */
        unsigned failed_pending;     /* FAILED claims awaiting a retry inside their window */
        unsigned excess;             /* beyond the pools' counts */
        unsigned short_pools;        /* pools with fewer claimed than desired */
        uint64_t next_retry_at;      /* earliest retry of a failed claim, 0 none */
        unsigned claims_made, releases_made;
        unsigned moving;             /* numbers moving to their pools (moves in flight or awaiting a retry) */
        unsigned pins_missing;       /* pinned numbers their pools do not hold */
        unsigned moves_made;         /* UpdatePhoneNumber calls accepted in this pass */
        bool quota_paused;           /* some target's claims are paused */
        char *quota_targets;         /* comma-separated names, or NULL */
        uint64_t earliest_deadline;  /* of failed claims, 0 none */
        uint64_t next_wakeup_at;     /* from the plan, 0 none */
        char *error;                 /* the pass-level error, or NULL */
        bool wrote_state;            /* the pass changed the state and saved it whole at its end (or tried:
                                      * its error is logged), so the caller's pass record adds nothing */
};
void pass_result_clear(struct pass_result *r);

struct pass;
typedef void (*pass_done_t)(struct pass *p, const struct pass_result *r, void *userdata);

int pass_start(sd_event *event, struct connect_client *client, const struct config *config, struct state *state,
               const struct pass_options *o, pass_done_t done, void *userdata, struct pass **ret);
/* Stop starting new calls; calls in flight finish (intents are on disk). */
void pass_stop(struct pass *p);
bool pass_is_stopping(const struct pass *p);
struct pass *pass_free(struct pass *p);
DEFINE_FREEP(struct pass, pass_free)
/* One-line summary for sd_notify STATUS= and the pass-completed record. */
char *pass_result_summary(const struct pass_result *r, const struct config *c, usec_t next_pass_in_usec);
