/* state.h: what the service remembers between passes and across restarts,
 * kept as JSON lines (jansson) in $STATE_DIRECTORY/state.json. Written
 * atomically (temp file, fsync, rename, fsync dir); read carefully (a
 * damaged record is skipped, a newer version or a damaged header refused;
 * docs/state-file.md). Times are wall-clock seconds (clock_wall_sec()). */
#pragma once

#include "util.h"

#define STATE_VERSION 2
#define STATE_FILE "state.json"
#define STATE_LOCK_FILE "lock"
#define STATE_PASS_FILE "pass.json"
#define STATE_LIST_DIGEST_LEN 32
#define STATE_SPENT_TOKENS_MAX 64

enum number_phase {
        PHASE_UNKNOWN,      /* seen in a list, not described yet */
        PHASE_INTENT,       /* claim intent on disk; request sent or about to be; no id known */
        PHASE_IN_PROGRESS,  /* claim answered (id known), status IN_PROGRESS */
        PHASE_CLAIMED,      /* status CLAIMED */
        PHASE_FAILED,       /* last claim FAILED, inside the one-day window */
        PHASE_GIVEN_UP,     /* window expired: never claimed again by us */
        PHASE_RELEASED,     /* released by us: gone for good */
        PHASE_FOREIGN,      /* described: not ours (untagged or someone else's tag) */
        PHASE_GONE,         /* ours once, no longer listed nor describable */
        PHASE_MOVED,        /* ours, but Connect shows it on another target (target_arn says which):
                             * moved by someone else; never counted, tagged or released for the pool */
        PHASE_UNAVAILABLE,  /* a pinned number whose direct claim was refused as not available
                             * (held by a target or customer we do not manage): tried again at
                             * next_retry_at, at most hourly */
};
const char *number_phase_name(enum number_phase p);
int number_phase_from_name(const char *s);

/* Strings of a state that many records share (target names and ARNs,
 * pools, countries, types, descriptions, digests, tags) are interned: one
 * copy per distinct value, owned by the state, with a count of the fields
 * that hold it. A `const char *` member of the structs below is such a
 * string (as are the key and value of a struct state_tag in a record):
 * write it only with state_set(), which takes a reference and drops the
 * one of the value it replaces, never by assignment, not even of another
 * field's value (state_set(s, &a->pool, b->pool) is right); free a tag
 * array with state_tags_free(). A string lives exactly as long as a field
 * holds it, so a new field needs nothing more. At 10,000 numbers this
 * keeps the state to a few MiB instead of ten. The owned `char *` members
 * (phone number, id, ARN, token, message) are unique per record and freed
 * with it. */
struct state_tag {
        const char *key;
        const char *value;
};

struct state_number {
        char *phone_number;          /* E.164; with target, the record's key */
        const char *target;          /* target name at the time it was recorded */
        const char *target_arn;
        const char *pool;            /* pool name of our ownership tag, or NULL */
        const char *owner_tag;       /* the connect-numbers:pool value seen on the number, or NULL */
        char *id;                    /* PhoneNumberId, or NULL until known */
        char *arn;                   /* PhoneNumberArn when it is not the one derived from target_arn and id
                                      * (read it with state_number_arn()), else NULL */
        const char *country, *type;  /* as listed or described */
        const char *description;     /* as last described, or NULL */
        struct state_tag *tags;      /* as last described (all tags) */
        size_t n_tags;
        enum number_phase phase;
        bool listed;                 /* seen in the last list of its target */
        bool adopted;                /* taken over by adopt: true */

        /* Claim bookkeeping. */
        char *client_token;          /* token of the claim attempt in flight (INTENT/IN_PROGRESS) */
        const char *claim_description; /* exact parameters of that claim request */
        struct state_tag *claim_tags;
        size_t n_claim_tags;
        unsigned slot;               /* slot in the pool the claim was made for */
        uint64_t intent_at;          /* when the intent was written */
        uint64_t claim_sent_at;      /* when the current attempt's first request was sent */
        uint64_t claimed_at;         /* recorded claim time (orders our own numbers) */
        uint64_t first_failure_at;   /* send time of the first claim request that FAILED; 0 none */
        uint64_t next_retry_at;      /* FAILED: next claim attempt not before */
        unsigned attempts;           /* claim attempts made on this number */
        char *failure_message;       /* last FAILED status message or error */
        bool quota_failure;          /* that failure was a quota refusal */

        /* What the service applied, since the API cannot read some back. */
        const char *flow_applied;    /* contact flow id associated, or NULL */
        char **tag_keys_applied;     /* user tag keys this service set (for untag) */
        const char *pool_digest;     /* pool_config.digest when last reconciled */
        uint64_t last_described_at;  /* for the daily audit */

        /* A move (UpdatePhoneNumber) of this number, from where this record
         * is to a pool that asks for it (pins, from:, previous_arns:). */
        const char *move_target;     /* destination target name, or NULL: no move under way */
        const char *move_pool;       /* destination pool */
        const char *move_target_arn; /* destination ARN */
        char *move_token;            /* ClientToken of the attempt in flight: its intent is on disk; NULL
                                      * while none is (before the first, after a FAILED one) */
        uint64_t move_intent_at;     /* when that intent was written */
        uint64_t move_next_retry_at; /* after a FAILED move: the next attempt not before */
        unsigned move_attempts;      /* FAILED attempts so far (each retry takes a new token) */
        char *move_message;          /* the last failure, or NULL */
        bool pin_logged;             /* a pinned number's "unavailable" or "lost" was logged (this episode) */
        uint64_t ended_at;           /* first seen final (prune.h); 0 while it is not */
};

struct state_churn {
        uint64_t at;
        bool release;                /* false: a claim */
        char *phone_number;
};

struct state_desired {
        char *pool;                  /* pool name */
        unsigned count;              /* numbers wanted */
};

struct state_target {
        char *name;
        char *arn;
        /* Quota episode (connect-numbers.yaml(5), QUOTAS). */
        uint64_t quota_at;           /* when the current episode began; 0 none */
        uint64_t quota_until;        /* new claims pause until then */
        char *quota_digest;          /* target_config.digest at the refusal */
        char *quota_message;
        char *quota_pool;
        bool quota_logged;           /* the one error record was written */
        uint64_t quota_last_retry_at; /* last claim attempt while paused */
        struct state_churn *churn;   /* claims and releases, rolling 180 days */
        size_t n_churn;
        char **no_numbers_pools;     /* pools whose empty search was logged (once) */
        char **spent_tokens;         /* ClientTokens of fresh claims refused as "not available", newest last
                                      * (at most STATE_SPENT_TOKENS_MAX): never sent again (docs/design.md) */
        struct state_desired *desired; /* each pool's wanted count, as the YAML said at the last
                                      * pass: --status shows it without reading the YAML */
        size_t n_desired;
        bool listed_ok;              /* the last list of this target succeeded */
        uint64_t pruned;             /* records of this target ever pruned: part of its pools' view digests */
        /* In memory only, never saved: the SHA-256 of the target's last list
         * answer, when it was one page and the state has not changed since
         * it was taken in. A pass that receives the same bytes again may
         * skip parsing and taking them in (pass.c). */
        uint8_t list_digest[STATE_LIST_DIGEST_LEN];
        bool list_digest_valid;
};


struct state {
        unsigned version;
        uint64_t last_pass_started_at;
        uint64_t last_pass_finished_at;
        uint64_t next_pass_at;
        int last_pass_result;        /* 0, 75 or 1, like --once */
        char *last_error;            /* last pass-level error, or NULL */
        double claim_latency_sec;    /* EWMA of claim -> CLAIMED, for describe polling */
        struct state_number *numbers;
        size_t n_numbers;
        struct state_target *targets;
        size_t n_targets;
        /* Private to state.c: an open-addressing index of numbers[] by
         * (target, phone number), built on first lookup; 0 slots = none. */
        size_t *index;
        size_t index_slots;
        /* Private to state.c: the interned strings and their reference
         * counts (see struct state_tag). */
        struct state_strings *strings;
};

/* Frees an array of n desired counts (NULL is fine). */
void state_desired_free(struct state_desired *d, size_t n);

struct state *state_new(void);
struct state *state_free(struct state *s);
DEFINE_FREEP(struct state, state_free)

/* Pure (de)serialisation. The text (version 2) is a header line, then one
 * line per number; version 1 (one document) is still read. state_from_json
 * is strict: -EBADMSG for any damage or an unknown version. */
int state_to_json(const struct state *s, char **ret);
int state_from_json(const char *text, size_t len, struct state **ret);
/* Reads PATH a line at a time. 0: *ret, with damaged number records
 * skipped (the others kept) and *ret_message saying which and why (NULL
 * when none was). Else -ENOENT, or an error with *ret_message saying what
 * (when it is more than the errno): -EPROTONOSUPPORT (a newer version's
 * file), -EBADMSG (a damaged header: the churn ledger and the pauses are
 * there, the file is not used), -ENODATA (empty), -EFBIG, -EBADFD (not a
 * regular file), -EIO or -ENOMEM. ret_message may be NULL. */
int state_read_file(const char *path, struct state **ret, char **ret_message);

/* I/O edge. state_load: no file -> a new empty state (returns 0); damaged
 * number records -> skipped, the file as it was hard-linked to
 * state.json.damaged-<time>, *ret_message a warning; an empty file ->
 * moved to state.json.empty-<time>, a new state, a warning. A newer
 * version's file or a damaged header -> the error of state_read_file(),
 * the file untouched, *ret_message the error and how to recover.
 * state_save: atomic. */
int state_load(const char *dir, struct state **ret, char **ret_message);
int state_save(const char *dir, const struct state *s);
/* The pass times, result and error alone, in DIR/pass.json: a pass that
 * changed nothing writes only this small file, not the whole state.
 * state_load_pass_info() takes them when newer than the state's own. */
int state_save_pass_info(const char *dir, const struct state *s);
int state_load_pass_info(const char *dir, struct state *s);
/* Advisory flock on DIR/lock (non-blocking): -EBUSY when another process
 * holds it. The lock lives as long as the returned fd. */
int state_lock(const char *dir, int *ret_fd);

/* Interned strings (see struct state_tag). state_set: *field = the
 * state's copy of v (NULL for NULL), the old value's reference dropped;
 * 0, -EINVAL or -ENOMEM (then *field is unchanged). state_tags_free: drops
 * the references of n tags and frees the array (NULL is fine).
 * state_strings_count: distinct strings held. */
int state_set(struct state *s, const char **field, const char *v);
void state_tags_free(struct state *s, struct state_tag *tags, size_t n);
size_t state_strings_count(const struct state *s);

/* Forgets every target's list_digest: after a change to the state or the
 * configuration, the next list is taken in again. */
void state_forget_list_digests(struct state *s);

/* Lookups and edits. */
struct state_number *state_find_number(struct state *s, const char *target, const char *phone_number);
struct state_number *state_find_number_by_id(struct state *s, const char *id);
/* Appends a zeroed record with these keys; returns it (pointer valid until
 * the next add/remove). */
struct state_number *state_add_number(struct state *s, const char *target, const char *phone_number);
void state_remove_number(struct state *s, struct state_number *n);
/* Files the record under another target name (a list source): 0 or -ENOMEM. */
int state_number_set_target(struct state *s, struct state_number *n, const char *target);
struct state_target *state_get_target(struct state *s, const char *name, const char *arn); /* finds or adds */
/* The target record of that name, or NULL (the one lookup by name; like
 * strchr, a const state gives a pointer the caller must not write through). */
struct state_target *state_find_target(const struct state *s, const char *name);
const struct state_tag *state_number_tag(const struct state_number *n, const char *key);
/* A number's ARN is arn:PARTITION:connect:REGION:ACCOUNT:phone-number/ID,
 * the first five fields those of its target's ARN: only an ARN that is
 * not is stored (10,000 of them are a megabyte). state_number_arn writes
 * the ARN to buf (or returns the stored one); NULL when it is not known.
 * state_number_set_arn stores arn, or nothing when it is the derived one. */
#define STATE_ARN_MAX 512
const char *state_number_arn(const struct state_number *n, char buf[static STATE_ARN_MAX]);
/* The ARN Amazon Connect gives number id on target_arn's partition, region
 * and account; false when either is missing or it does not fit. */
bool state_derive_number_arn(const char *target_arn, const char *id, char buf[static STATE_ARN_MAX]);
int state_number_set_arn(struct state_number *n, const char *arn);
int state_churn_add(struct state_target *t, uint64_t at, bool release, const char *phone_number);
/* Remembers a spent ClientToken (dropping the oldest beyond the limit). */
int state_spend_token(struct state_target *t, const char *token);
bool state_token_spent(const struct state_target *t, const char *token);
/* Drops churn entries older than 180 days before now; returns how many remain. */
size_t state_churn_prune(struct state_target *t, uint64_t now);
