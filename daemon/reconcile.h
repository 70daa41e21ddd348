/* reconcile.h: the pure core. (desired config, state updated with what was
 * observed, now) -> a plan of steps. No I/O, no clock, no logging: every
 * input is an argument, and the output is deterministic for a given input
 * (ordered by target and pool in file order, then by phone number).
 *
 * A pass, as the executor drives it:
 *   1. for each target: ListPhoneNumbersV2 -> reconcile_ingest_list()
 *   2. reconcile_describe_wanted() -> DescribePhoneNumber each ->
 *      reconcile_ingest_describe() / reconcile_ingest_not_found()
 *   3. reconcile_plan() -> steps; the executor runs them and reports each
 *      outcome through reconcile_claim_*() and friends, which update the
 *      state and return events to log.
 */
#pragma once

#include "config.h"
#include "connect.h"
#include "state.h"

#define RECONCILE_WINDOW_SEC (24 * 3600)          /* FAILED claim retry window */
#define RECONCILE_CHURN_WINDOW_SEC (180 * 86400)  /* rolling churn window */
#define RECONCILE_AUDIT_SEC (24 * 3600)           /* describe every held number once a day */
#define RECONCILE_INTENT_REPLAY_SEC 3600          /* older intents are resolved by listing */

enum step_action {
        STEP_CLAIM,              /* claim a new number for a slot (search first) */
        STEP_RETRY_CLAIM,        /* claim a FAILED number again, inside its window (new token) */
        STEP_REPLAY_CLAIM,       /* resend an unresolved intent with its token and parameters */
        STEP_GIVE_UP,            /* window expired: forget the number, claim another */
        STEP_UPDATE_DESCRIPTION, /* UpdatePhoneNumberMetadata */
        STEP_TAG,                /* TagResource with tags[] */
        STEP_UNTAG,              /* UntagResource with keys[] */
        STEP_ASSOCIATE_FLOW,     /* AssociatePhoneNumberContactFlow */
        STEP_ADOPT,              /* tag an untagged matching number as the pool's */
        STEP_RELEASE,            /* ReleasePhoneNumber: irreversible */
        STEP_REPORT_EXCESS,      /* held > count, kept (release_excess false or a guard) */
        STEP_REPORT_ORPHAN,      /* tagged for a target/pool no longer in the YAML */
        STEP_REPORT_MISMATCH,    /* tagged for a pool, country/type/prefix no longer match */
        STEP_REPORT_UNMANAGED,   /* untagged matching number left alone */
        STEP_REPORT_QUOTA,       /* claims for the target paused by a quota episode */
        STEP_REPORT_UNKNOWN,     /* target not fully observed: no claim or release planned */
        STEP_REPORT_MOVED,       /* ours, moved to another target by someone else: not counted, left alone */
        _STEP_ACTION_MAX,
};
/* SPEC --plan --json action names: "claim", "retry_claim", ...; reports
 * beyond the SPEC's list use "report_mismatch", "report_unmanaged", ... */
const char *step_action_name(enum step_action a);
/* true for actions that change something in Connect or the state. */
bool step_action_is_change(enum step_action a);

struct plan_step {
        enum step_action action;
        char *target;                /* target name */
        char *target_arn;
        char *region;                /* where the call goes (the target ARN's region) */
        char *pool;                  /* pool name, or NULL (orphans of a removed target...) */
        char *phone_number;          /* E.164 where known */
        char *phone_number_id;
        char *phone_number_arn;
        unsigned slot;               /* CLAIM: the slot index in the pool */
        char client_token[37];       /* CLAIM: derived token (attempt 0); REPLAY: the intent's;
                                      * RETRY/RELEASE/UPDATE: a fresh derived one */
        char view_digest[65];        /* CLAIM: digest of the pool's observed numbers */
        char *description;           /* CLAIM/UPDATE_DESCRIPTION */
        struct config_tag *tags;     /* CLAIM (ownership tag included), TAG, ADOPT */
        size_t n_tags;
        char **keys;                 /* UNTAG */
        char *contact_flow;          /* ASSOCIATE_FLOW */
        char *instance_id;           /* ASSOCIATE_FLOW: the instance id from the target ARN */
        char *country, *type, *prefix; /* CLAIM: search parameters */
        char *detail;                /* one line for people: why this step */
};

struct pool_summary {
        char *target;
        char *pool;
        unsigned wanted;
        unsigned held;               /* CLAIMED + IN_PROGRESS + INTENT + FAILED in window */
        unsigned claimed;
        unsigned in_progress;
        unsigned failed;
        uint64_t earliest_deadline;  /* of the FAILED ones, 0 none */
};

struct plan {
        struct plan_step *steps;
        size_t n_steps;
        struct pool_summary *pools;
        size_t n_pools;
        uint64_t next_wakeup_at;     /* earliest retry, deadline or pause end; 0 none */
};

struct plan *plan_free(struct plan *p);
DEFINE_FREEP(struct plan, plan_free)
size_t plan_count_changes(const struct plan *p);
/* Human table (one line per step) and the SPEC's JSON object {"steps":[...]}. */
int plan_format_text(const struct plan *p, char **ret);
int plan_format_json(const struct plan *p, char **ret);

/* Events for the executor to log (with MESSAGE_IDs). */
enum reconcile_event_kind {
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
        EVENT_NOTE,              /* anything else worth an info line */
};

struct reconcile_event {
        enum reconcile_event_kind kind;
        char *target, *target_arn, *pool;
        char *phone_number, *phone_number_id;
        char *message;               /* AWS message or explanation, may be NULL */
        uint64_t deadline;           /* CLAIM_FAILED: retry window end */
        unsigned held, wanted;       /* QUOTA: the target's counts */
};

struct reconcile_events {
        struct reconcile_event *items;
        size_t n;
};
void reconcile_events_clear(struct reconcile_events *ev);

/* 1. A target's complete list. Marks listed numbers, adds unseen ones as
 * PHASE_UNKNOWN, marks the target listed_ok. */
int reconcile_ingest_list(struct state *s, const struct config *c, const char *target,
                          const struct connect_number *numbers, size_t n, uint64_t now);
/* Marks a target whose list failed: its pools get no claim or release. */
void reconcile_list_failed(struct state *s, const char *target);

/* 2. Ids to describe this pass: unknown numbers, IN_PROGRESS ones, numbers
 * whose pool settings changed, ours that the list no longer shows, and up
 * to audit_budget numbers whose daily audit is due. NULL-terminated; each
 * entry "TARGET\tPHONE_NUMBER_ID". */
int reconcile_describe_wanted(const struct config *c, const struct state *s, uint64_t now, unsigned audit_budget,
                              char ***ret);
int reconcile_ingest_describe(struct state *s, const struct config *c, const char *target,
                              const struct connect_number *n, uint64_t now, struct reconcile_events *ev);
int reconcile_ingest_not_found(struct state *s, const char *target, const char *phone_number_id, uint64_t now,
                               struct reconcile_events *ev);

/* 3. The plan. Changes the state only where time alone decides (hence the
 * non-const state), each with an event: ends quota pauses whose YAML
 * changed or backoff passed (EVENT_QUOTA_CLEARED); moves FAILED numbers
 * past their window to GIVEN_UP (EVENT_WINDOW_EXPIRED; the STEP_GIVE_UP
 * step needs nothing from the executor); drops intents older than
 * RECONCILE_INTENT_REPLAY_SEC that the list does not show (EVENT_NOTE; a
 * retry's intent goes back to FAILED). */
int reconcile_plan(const struct config *c, struct state *s, uint64_t now, struct plan **ret,
                   struct reconcile_events *ev);

/* What a pool holds (one definition for the planner, the pass summary
 * and --status): its records that are live (INTENT, IN_PROGRESS, CLAIMED)
 * or FAILED inside the one-day window. */
bool reconcile_record_held(const struct state_number *n, uint64_t now);
/* The target's new claims are paused after a phone-number quota refusal
 * (one definition for the planner, the executor and the pass summary). */
bool reconcile_target_paused(const struct state_target *st, uint64_t now);
struct reconcile_pool_count {
        unsigned held, live, claimed, in_progress, intent, failed;
        uint64_t earliest_deadline;  /* of its FAILED records' windows, 0 none */
};
void reconcile_count_pool(const struct state *s, const char *target, const char *pool, uint64_t now,
                          struct reconcile_pool_count *ret);

/* The ClientToken of a claim: a lower-case UUID derived from (target, pool,
 * view digest, slot, attempt), so that two instances with the same view
 * collide into one claim instead of two. */
void reconcile_claim_token(const char *target, const char *pool, const char *view_digest, unsigned slot,
                           unsigned attempt, char ret[static 37]);
/* The token of the first attempt from *attempt on whose token the target has
 * not spent (a fresh claim refused as "not available": CLAIMS.md, a process
 * never reuses its own failed token); *attempt becomes that attempt. */
void reconcile_fresh_claim_token(const struct state *s, const char *target, const char *pool,
                                 const char *view_digest, unsigned slot, unsigned *attempt, char ret[static 37]);

/* Claim outcomes, applied by the executor. All update the state only. */
/* Before sending: writes the intent record (phase INTENT) for step's
 * target/pool/slot with this number, token and parameters. */
struct state_number *reconcile_claim_intent(struct state *s, const struct plan_step *step, const char *phone_number,
                                            const char *client_token, uint64_t now);
/* 200: id and arn known, phase IN_PROGRESS. */
void reconcile_claim_answered(struct state *s, struct state_number *n, const char *id, const char *arn, uint64_t now);
/* Refused. Returns what the executor should do next for that pool. */
enum claim_next {
        CLAIM_NEXT_CANDIDATE,    /* number not available: drop intent, try the next candidate */
        CLAIM_NEXT_STOP_POOL,    /* idempotency conflict or invalid: drop intent, stop this pool for the pass */
        CLAIM_NEXT_STOP_TARGET,  /* quota: number FAILED (quota), target paused */
        CLAIM_NEXT_KEEP_INTENT,  /* throttled/transient: outcome unknown, keep the intent for a replay */
        CLAIM_NEXT_FATAL,        /* auth, access denied, TLS: drop intent, end the pass with exit 1 */
};
enum claim_next reconcile_claim_refused(struct state *s, const struct config *c, struct state_number *n,
                                        const struct connect_error *e, uint64_t now, struct reconcile_events *ev);
/* A retry of a FAILED number answered 200 / refused. */
/* Search came back empty for a pool: EVENT_NO_NUMBERS the first time. */
void reconcile_no_numbers(struct state *s, const struct plan_step *step, struct reconcile_events *ev);
void reconcile_numbers_found(struct state *s, const struct plan_step *step);
/* Release answered 200: phase RELEASED, churn recorded, EVENT_RELEASED. */
void reconcile_released(struct state *s, const struct plan_step *step, uint64_t now, struct reconcile_events *ev);
/* Drift fixes that succeeded: remember what was applied. */
void reconcile_applied(struct state *s, const struct config *c, const struct plan_step *step, uint64_t now);

/* A search result fits the pool of claim step s: its country, type and
 * prefix are the step's. Connect offers only such numbers; an answer that
 * does not (a broken or hostile endpoint) must never make a pool claim a
 * number it did not ask for. A result without country or type does not
 * fit. */
bool reconcile_candidate_fits(const struct plan_step *s, const struct connect_available *a);

/* FAILED retry backoff: 1 min, 5 min, 15 min, then hourly, never past the
 * window's end; quota failures wait quota_backoff. Pure. */
uint64_t reconcile_next_retry_at(unsigned attempts, uint64_t first_failure_at, uint64_t now, bool quota,
                                 uint64_t quota_backoff_sec);
