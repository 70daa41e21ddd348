/* plan.h: what a pass intends to do, as the planner (reconcile.c) makes
 * it and the executor (pass.c) runs it: one step per change or report,
 * each carrying everything its call needs, so that the executor decides
 * nothing of its own. Also the plan's two printed forms (--plan). */
#pragma once

#include <jansson.h>

#include "config.h"

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
        STEP_MOVE,               /* UpdatePhoneNumber: from source to target (a pin, from:, previous_arns:) */
        STEP_CLAIM_PINNED,       /* ClaimPhoneNumber of a pinned number by its number, no search */
        STEP_TAKE_OVER,          /* retag a number of a from: pool as this pool's */
        STEP_REPORT_WAITING,     /* a pin the pool cannot have now, or a failed move: waiting for its next try */
        _STEP_ACTION_MAX,
};
/* --plan --json action names: "claim", "retry_claim", ...; reports beyond
 * the documented list use "report_mismatch", "report_unmanaged", ... */
const char *step_action_name(enum step_action a);
/* true for actions that change something in Connect or the state. */
bool step_action_is_change(enum step_action a);

/* Claim attempts at one slot in one pass: each candidate that turns out
 * to be taken between the search and the claim costs one. */
#define PLAN_CLAIM_ATTEMPTS 8

struct plan_step {
        enum step_action action;
        char *target;                /* target name (MOVE: the destination) */
        char *target_arn;
        char *source;                /* MOVE: the record's list source (a target name, or a previous ARN) */
        char *source_arn;            /* MOVE: where the number is now */
        char *region;                /* where the call goes (the target ARN's region) */
        char *pool;                  /* pool name, or NULL (orphans of a removed target...) */
        char *phone_number;          /* E.164 where known */
        char *phone_number_id;
        char *phone_number_arn;
        unsigned slot;               /* CLAIM: the slot index in the pool */
        bool pinned;                 /* the number is pinned (numbers:): GIVE_UP keeps trying hourly */
        char client_token[37];       /* CLAIM: the first attempt's token (= claim_tokens[0]); REPLAY: the
                                      * intent's; RETRY/RELEASE/UPDATE: a fresh derived one */
        char claim_tokens[PLAN_CLAIM_ATTEMPTS][37]; /* CLAIM: one token per attempt at this slot in this
                                      * pass, in order (a candidate taken by someone else between search
                                      * and claim moves the slot to the next), none ever spent before */
        unsigned n_claim_tokens;
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

/* A pool's numbers as operators are shown them, each kind apart. */
struct pool_figures {
        unsigned desired;            /* count */
        unsigned claimed;            /* CLAIMED on the pool's target */
        unsigned in_progress;        /* claims sent and not settled (IN_PROGRESS, intents) */
        unsigned failed_pending;     /* FAILED claims inside their window, awaiting a retry */
        unsigned moving;             /* moves in progress towards the pool */
        unsigned pins_missing;       /* pinned numbers the pool does not hold */
        unsigned excess;             /* claimed and in progress beyond desired */
        uint64_t earliest_deadline;  /* of the failed claims' windows, 0 none */
        uint64_t next_retry_at;      /* of the failed claims, 0 none */
};

/* A pool's figures as one JSON object with the integer keys desired,
 * claimed, in_progress, failed_pending, moving, pins_missing and excess
 * (--plan --json and --status --json alike). */
json_t *pool_figures_json(const char *target, const char *pool, const struct pool_figures *f);

struct pool_summary {
        char *target;
        char *pool;
        struct pool_figures f;
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
/* Of those, the steps that call a mutating API (--plan exits 75 for them). */
size_t plan_count_api_changes(const struct plan *p);
/* Human table (one line per step) and the JSON object {"steps":[...]}
 * of --plan --json (connect-numbersd(8)). */
int plan_format_text(const struct plan *p, char **ret);
int plan_format_json(const struct plan *p, char **ret);

/* The tags a claim of pool p of t sends: the ownership tag
 * (connect-numbers:pool = TARGET/POOL) first, then the pool's own. */
int plan_pool_claim_tags(const struct target_config *t, const struct pool_config *p, struct config_tag **ret,
                         size_t *ret_n);
void plan_tags_free(struct config_tag *t, size_t n);
