/* lifecycle.h: every transition of a number record, in one place. A
 * record changes only here: when a list or a describe is taken in, when a
 * claim intent is written, a claim answered or refused, a retry started,
 * a window ends and the number is given up, a quota pause begins or ends,
 * a release or a drift fix is applied. The executor (pass.c) calls these
 * as things happen; the planner (reconcile.c) only reads their result.
 * Pure: no I/O, no clock, no logging; the time is an argument, and what is
 * worth logging comes back as events.
 *
 * The life of one need (a slot of a pool), as docs/claims.md tells it:
 *   wanted -> intent (on disk before the request) -> in_progress (200)
 *          -> claimed | failed (window of 24 h from the first failed
 *             request, retried with back-off) -> given_up (window over)
 * and for any number of ours: gone (no longer in Connect), moved (Connect
 * shows it on another target), released (by us, for good). */
#pragma once

#include "config.h"
#include "observe.h"
#include "plan.h"
#include "state.h"

#define LIFECYCLE_WINDOW_SEC (24 * 3600)          /* FAILED claim retry window */
#define LIFECYCLE_CHURN_WINDOW_SEC (180 * 86400)  /* rolling churn window */
#define LIFECYCLE_AUDIT_SEC (24 * 3600)           /* describe every held number once a day */
#define LIFECYCLE_INTENT_REPLAY_SEC 3600          /* older intents are resolved by listing */

/* Events for the executor to log (with MESSAGE_IDs). */
enum lifecycle_event_kind {
        EVENT_CLAIMED,           /* MESSAGE_ID_CLAIMED */
        EVENT_CLAIM_FAILED,      /* MESSAGE_ID_CLAIM_FAILED: will retry until deadline */
        EVENT_WINDOW_EXPIRED,    /* MESSAGE_ID_WINDOW_EXPIRED */
        EVENT_QUOTA,             /* MESSAGE_ID_QUOTA: first record of an episode only */
        EVENT_QUOTA_CLEARED,     /* the pause ended (YAML changed or backoff passed) */
        EVENT_NO_NUMBERS,        /* MESSAGE_ID_NO_NUMBERS: once per pool until numbers are found */
        EVENT_RELEASED,          /* MESSAGE_ID_RELEASED */
        EVENT_NUMBER_GONE,       /* a number of ours is no longer there */
        EVENT_MOVED_AWAY,        /* MESSAGE_ID_MOVED: a number of ours was found on another target
                                  * (message: that target's ARN) */
        EVENT_MOVED,             /* MESSAGE_ID_MOVED: our move of a number arrived (message: from where) */
        EVENT_MOVE_FAILED,       /* a move FAILED or was refused: retried with back-off (message: why) */
        EVENT_PIN_UNAVAILABLE,   /* MESSAGE_ID_PIN: a pinned number cannot be claimed (once per episode) */
        EVENT_PIN_LOST,          /* MESSAGE_ID_PIN at err: a pinned claim's window ended without it */
        EVENT_NOTE,              /* anything else worth an info line */
};

struct lifecycle_event {
        enum lifecycle_event_kind kind;
        char *target, *target_arn, *pool;
        char *phone_number, *phone_number_id;
        char *message;               /* AWS message or explanation, may be NULL */
        uint64_t deadline;           /* CLAIM_FAILED: retry window end */
        uint64_t next_retry_at;      /* CLAIM_FAILED: the next attempt */
        bool refused;                /* CLAIM_FAILED: an error answer (no number held), not a FAILED status */
        unsigned held, wanted;       /* QUOTA: numbers the target held (CLAIMED, IN_PROGRESS) and wanted */
};

struct lifecycle_events {
        struct lifecycle_event *items;
        size_t n;
};
void lifecycle_events_clear(struct lifecycle_events *ev);

/* ---- what a pool holds (read by the planner, the pass summary, --status) */

/* A FAILED claim is ours to retry until exactly 24 h after its first
 * failed request was sent. */
bool lifecycle_in_window(const struct state_number *n, uint64_t now);
/* INTENT, IN_PROGRESS or CLAIMED. */
bool lifecycle_phase_live(enum number_phase p);
/* Held by its pool: live, or FAILED inside the one-day window. */
bool lifecycle_record_held(const struct state_number *n, uint64_t now);
/* The record is of this target and pool (by our bookkeeping or its tag). */
bool lifecycle_record_of_pool(const struct state_number *n, const char *target, const char *pool);
/* The target's new claims are paused after a phone-number quota refusal. */
bool lifecycle_target_paused(const struct state_target *st, uint64_t now);
struct lifecycle_pool_count {
        unsigned held, live, claimed, in_progress, intent, failed;
        unsigned moving;             /* moves under way towards the pool (not in held) */
        uint64_t earliest_deadline;  /* of its FAILED records' windows, 0 none */
        uint64_t next_retry_at;      /* the earliest next attempt of its FAILED records, 0 none */
};
void lifecycle_count_pool(const struct state *s, const char *target, const char *pool, uint64_t now,
                          struct lifecycle_pool_count *ret);
/* What operators are shown of a pool (the plan, the pass record, STATUS=,
 * --status), each kind kept apart: a failed claim is never "held". */
void lifecycle_pool_figures(const struct state *s, const char *target, const char *pool, unsigned desired,
                            uint64_t now, struct pool_figures *ret);
/* Pinned numbers of pool p that its target does not hold (CLAIMED, in
 * progress, or FAILED inside the window). */
unsigned lifecycle_pins_missing(const struct state *s, const struct target_config *t, const struct pool_config *p,
                                uint64_t now);
/* Indices of the records of target in s->numbers, sorted by phone number. */
int lifecycle_target_records(const struct state *s, const char *target, size_t **ret, size_t *ret_n);
/* The pool of t that an ownership tag value ("TARGET/POOL") names, if any. */
const struct pool_config *lifecycle_owner_pool(const struct target_config *t, const char *tag);
/* The pool of t that pins phone_number (numbers:), if any. */
const struct pool_config *lifecycle_pin_pool(const struct target_config *t, const char *phone_number);
/* The pool of any target that pins it, and that target. */
const struct pool_config *lifecycle_pin_anywhere(const struct config *c, const char *phone_number,
                                                 const struct target_config **ret_t);
/* The pool's from: names this ownership-tag value. */
bool lifecycle_pool_takes_tag(const struct pool_config *p, const char *tag);
/* A list source: a target of the YAML (name: its name) or one of the
 * previous_arns of a target (name: that ARN). Its ARN and the target it
 * belongs to. */
bool lifecycle_source(const struct config *c, const char *name, const char **ret_arn,
                      const struct target_config **ret_owner);
/* The configured quota_backoff, or its default. */
uint64_t lifecycle_quota_backoff_sec(const struct config *c);

/* ---- observations ------------------------------------------------------- */

/* A target's list, taken in page by page as it arrives (memory does not
 * grow with the list): begin, every page, then end once the list is
 * complete (forgets numbers of others it no longer shows, marks the target
 * listed_ok), or lifecycle_list_failed() when it is not. A page marks the
 * numbers it shows as listed and adds unseen ones as PHASE_UNKNOWN. */
int lifecycle_list_begin(struct state *s, const struct config *c, const char *target);
int lifecycle_list_page(struct state *s, const struct config *c, const char *target,
                        const struct connect_number *numbers, size_t n);
int lifecycle_list_end(struct state *s, const struct config *c, const char *target);
/* All three for a list in one piece. */
int lifecycle_ingest_list(struct state *s, const struct config *c, const char *target,
                          const struct connect_number *numbers, size_t n);
/* Marks a target whose list failed: its pools get no claim or release. */
void lifecycle_list_failed(struct state *s, const char *target);
/* A describe of one number of target: status, tags, where it sits. */
int lifecycle_ingest_describe(struct state *s, const struct config *c, const char *target,
                              const struct connect_number *n, uint64_t now, struct lifecycle_events *ev);
int lifecycle_ingest_not_found(struct state *s, const char *target, const char *phone_number_id, uint64_t now,
                               struct lifecycle_events *ev);

/* ---- time and configuration --------------------------------------------- */

/* What time or the YAML alone decides, before a plan is made: a quota
 * pause whose target changed in the YAML or whose back-off passed ends
 * (EVENT_QUOTA_CLEARED); a running episode whose one record was never
 * written gets it (EVENT_QUOTA); on listed targets, an intent older than
 * LIFECYCLE_INTENT_REPLAY_SEC that the list does not show is dropped
 * (EVENT_NOTE: the claim never happened), or, for a retry, goes back to
 * FAILED keeping its window. */
void lifecycle_tick(struct state *s, const struct config *c, uint64_t now, struct lifecycle_events *ev);
/* STEP_GIVE_UP: the FAILED number's window has ended (or its pool is gone
 * and so is its window): GIVEN_UP, never claimed by us again
 * (EVENT_WINDOW_EXPIRED). */
void lifecycle_give_up(struct state *s, const struct plan_step *step, uint64_t now, struct lifecycle_events *ev);

/* ---- claims ------------------------------------------------------------- */

/* Before sending (STEP_CLAIM, STEP_RETRY_CLAIM, STEP_REPLAY_CLAIM): writes
 * the intent (phase INTENT) for step's target, pool and slot with this
 * number, token and the step's parameters; a retry keeps the FAILED
 * number's window. The caller saves the state before the request leaves. */
struct state_number *lifecycle_claim_intent(struct state *s, const struct plan_step *step, const char *phone_number,
                                            const char *client_token, uint64_t now);
/* 200: id and arn known, phase IN_PROGRESS. */
void lifecycle_claim_answered(struct state *s, struct state_number *n, const char *id, const char *arn, uint64_t now);
/* Refused. Returns what the executor should do next for that pool. */
enum claim_next {
        CLAIM_NEXT_CANDIDATE,    /* number not available: drop intent, try the next candidate */
        CLAIM_NEXT_STOP_POOL,    /* idempotency conflict or invalid: drop intent, stop this pool for the pass */
        CLAIM_NEXT_STOP_TARGET,  /* quota: number FAILED (quota), target paused */
        CLAIM_NEXT_KEEP_INTENT,  /* throttled/transient: outcome unknown, keep the intent for a replay */
        CLAIM_NEXT_FATAL,        /* auth, access denied, TLS: drop intent, end the pass with exit 1 */
};
enum claim_next lifecycle_claim_refused(struct state *s, const struct config *c, struct state_number *n,
                                        const struct connect_error *e, uint64_t now, struct lifecycle_events *ev);
/* Search came back empty for a pool: EVENT_NO_NUMBERS the first time. */
void lifecycle_no_numbers(struct state *s, const struct plan_step *step, struct lifecycle_events *ev);
void lifecycle_numbers_found(struct state *s, const struct plan_step *step);

/* ---- other outcomes ----------------------------------------------------- */

/* ---- moves (UpdatePhoneNumber) ------------------------------------------ */

#define LIFECYCLE_PIN_RETRY_SEC 3600              /* a pin unavailable or lost: tried again hourly */

/* STEP_MOVE, before sending: the intent (destination, pool, the step's
 * token) on the source record (step->source, step->phone_number). The
 * caller saves the state before the request leaves. NULL (errno) when the
 * record is not there or a move of it is already in flight. */
struct state_number *lifecycle_move_intent(struct state *s, const struct plan_step *step, uint64_t now);
/* The UpdatePhoneNumber request was refused. Throttled, transient, in use:
 * the attempt did not happen, the token is dropped (the next pass derives
 * the same one); otherwise the attempt FAILED (EVENT_MOVE_FAILED, backoff). */
void lifecycle_move_refused(struct state *s, struct state_number *n, const struct connect_error *e, uint64_t now,
                            struct lifecycle_events *ev);
/* Backoff of a FAILED move: 1, 5, 15 min, then hourly. */
uint64_t lifecycle_move_next_retry_at(unsigned attempts, uint64_t now);

/* Release answered 200: phase RELEASED, churn recorded, EVENT_RELEASED. */
void lifecycle_released(struct state *s, const struct plan_step *step, uint64_t now, struct lifecycle_events *ev);
/* Drift fixes that succeeded: remember what was applied. */
void lifecycle_applied(struct state *s, const struct config *c, const struct plan_step *step, uint64_t now);

/* FAILED retry backoff: 1 min, 5 min, 15 min, then hourly, never past the
 * window's end; quota failures wait quota_backoff. */
uint64_t lifecycle_next_retry_at(unsigned attempts, uint64_t first_failure_at, uint64_t now, bool quota,
                                 uint64_t quota_backoff_sec);
