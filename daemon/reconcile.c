/* reconcile.c: the planner. (desired config, const state, now) -> a plan
 * of steps, and which numbers a pass must describe. Pure and read-only:
 * no I/O, no clock, no logging, and the state is not changed (every
 * change of a number's life is lifecycle.c's, which the executor calls
 * when it runs a step). The plan is deterministic: targets and pools in
 * file order, numbers by phone number, our own releases by recorded claim
 * time. */
#include "reconcile.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>

/* Connect may show a new claim's tags and description a little after it
 * is CLAIMED: until our ownership tag is seen, or this long after the
 * claim, what a describe shows is not taken as drift. */
#define METADATA_GRACE_SEC 600

/* ---- small helpers ---------------------------------------------------- */

static bool startswith(const char *s, const char *prefix) {
        return s && prefix && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The target of the YAML that an ownership tag value names, if any. */
static const struct target_config *tag_target(const struct config *c, const char *tag) {
        const char *slash = tag ? strchr(tag, '/') : NULL;
        for (size_t i = 0; slash && c && i < c->n_targets; i++)
                if (strlen(c->targets[i].name) == (size_t) (slash - tag) &&
                    strncmp(c->targets[i].name, tag, (size_t) (slash - tag)) == 0)
                        return &c->targets[i];
        return NULL;
}

static const char *tag_pool_part(const char *tag) {
        const char *slash = tag ? strchr(tag, '/') : NULL;
        return slash && slash[1] ? slash + 1 : NULL;
}

static const char *number_tag(const struct state_number *n, const char *key) {
        const struct state_tag *t = state_number_tag(n, key);
        return t ? t->value : NULL;
}

/* ---- quota episodes ----------------------------------------------------- */

/* ---- failures --------------------------------------------------------- */

/* ---- tokens ----------------------------------------------------------- */

static void token_part(char *buf, size_t size, size_t *off, const char *s) {
        char hex[65];
        if (!s)
                s = "";
        if (strlen(s) > 200) {
                sha256_hex(s, strlen(s), hex);
                s = hex;
        }
        int k = snprintf(buf + *off, size - *off, "%s\n", s);
        if (k > 0)
                *off = MIN(*off + (size_t) k, size - 1);
}

void reconcile_claim_token(const char *target, const char *pool, const char *view_digest, unsigned slot,
                           unsigned attempt, char ret[static 37]) {
        /* Deterministic on purpose: two instances with the same view make
         * the same token for the same need, so Connect's idempotency turns
         * a double claim into one (docs/design.md). */
        char buf[1024];
        size_t off = 0;
        token_part(buf, sizeof buf, &off, "connect-numbers claim v1");
        token_part(buf, sizeof buf, &off, target);
        token_part(buf, sizeof buf, &off, pool);
        token_part(buf, sizeof buf, &off, view_digest);
        int k = snprintf(buf + off, sizeof buf - off, "%u\n%u", slot, attempt);
        if (k > 0)
                off = MIN(off + (size_t) k, sizeof buf - 1);
        uuid_from_digest(buf, off, ret);
}

void reconcile_fresh_claim_token(const struct state *s, const char *target, const char *pool,
                                 const char *view_digest, unsigned slot, unsigned *attempt, char ret[static 37]) {
        const struct state_target *st = state_find_target(s, target);
        /* Bounded: at most STATE_SPENT_TOKENS_MAX tokens are remembered. */
        for (unsigned i = 0;; i++) {
                reconcile_claim_token(target, pool, view_digest, slot, *attempt, ret);
                if (!state_token_spent(st, ret) || i > STATE_SPENT_TOKENS_MAX)
                        return;
                (*attempt)++;
        }
}

static int cmp_strp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The numbers of a pool that make its view: every number that any instance
 * can learn was claimed for it (IN_PROGRESS, CLAIMED, FAILED, GIVEN_UP),
 * and those that were and are no more (RELEASED, GONE). The view only
 * grows, so a token, once used for one number, is never derived again for
 * another (Connect would answer IdempotencyException for ever), e.g. when a
 * pool is emptied by releases and later wanted again. Our own intents are
 * left out: another instance cannot see them. */
static bool in_view(const struct state_number *x, const char *target, const char *pool) {
        if (!lifecycle_record_of_pool(x, target, pool))
                return false;
        switch (x->phase) {
        case PHASE_IN_PROGRESS:
        case PHASE_CLAIMED:
        case PHASE_FAILED:
        case PHASE_GIVEN_UP:
        case PHASE_RELEASED:
        case PHASE_GONE:
        case PHASE_MOVED:
                return true;
        default:
                return false;
        }
}

/* SHA-256 over the sorted phone numbers of the pool's view, then, once
 * records of the target have been pruned (prune.h), their count: the view
 * shrinks when a record is pruned, and the count keeps it from being an
 * earlier view again (docs/design.md, "Pruning the state"). */
static int pool_view_digest(const struct state *s, const char *target, const char *pool, char ret[static 65]) {
        const struct state_target *st = state_find_target(s, target);
        uint64_t pruned = st ? st->pruned : 0;
        size_t n = 0, len = 32;
        for (size_t i = 0; i < s->n_numbers; i++) {
                const struct state_number *x = &s->numbers[i];
                if (in_view(x, target, pool)) {
                        n++;
                        len += strlen(x->phone_number) + 1;
                }
        }
        _cleanup_(freep) const char **v = calloc(n + 1, sizeof *v);
        _cleanup_(freep) char *buf = malloc(len + 1);
        if (!v || !buf)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < s->n_numbers; i++) {
                const struct state_number *x = &s->numbers[i];
                if (in_view(x, target, pool))
                        v[k++] = x->phone_number;
        }
        qsort(v, n, sizeof *v, cmp_strp);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(v[i]);
                memcpy(buf + off, v[i], l);
                off += l;
                buf[off++] = '\n';
        }
        if (pruned) {
                int w = snprintf(buf + off, len + 1 - off, "pruned %" PRIu64 "\n", pruned);
                if (w < 0 || (size_t) w > len - off)
                        return -EINVAL;
                off += (size_t) w;
        }
        sha256_hex(buf, off, ret);
        return 0;
}

/* ---- 1. list ---------------------------------------------------------- */

/* ---- 2. describe ------------------------------------------------------ */

/* Why (and whether) this pass must describe record n of target t; audit
 * candidates are answered separately. */
static bool describe_needed(const struct target_config *t, const struct state_number *n, uint64_t now) {
        if (!n->id)
                return false;
        /* A move whose outcome is not known (a restart): describe settles it. */
        if (n->move_token)
                return true;
        switch (n->phase) {
        case PHASE_UNKNOWN:
        case PHASE_IN_PROGRESS:
                return true;
        case PHASE_INTENT:
                /* Too old to replay: the list gave the id, describe settles it. */
                return n->listed && now >= n->intent_at + LIFECYCLE_INTENT_REPLAY_SEC;
        case PHASE_CLAIMED: {
                if (!n->listed || !n->owner_tag)
                        return true; /* gone from the list, or our tag not seen yet */
                const struct pool_config *p = target_find_pool(t, n->pool);
                return !p || !streq_ptr(n->pool_digest, p->digest);
        }
        case PHASE_FAILED:
                /* Not listed, or a retry was sent and its answer never
                 * recorded (a crash, a timeout). */
                return !n->listed || (n->claim_sent_at && n->claim_sent_at >= n->next_retry_at);
        case PHASE_FOREIGN:
                /* Tagged for a pool that was not in the YAML, and now is. */
                return n->owner_tag && lifecycle_owner_pool(t, n->owner_tag);
        default:
                return false;
        }
}

static bool audit_due(const struct target_config *t, const struct state_number *n, uint64_t now) {
        return n->id && n->phase == PHASE_CLAIMED && target_find_pool(t, n->pool) &&
               n->last_described_at + LIFECYCLE_AUDIT_SEC <= now;
}

static int audit_cmp(const void *a, const void *b, void *userdata) {
        const struct state *s = userdata;
        const struct state_number *x = &s->numbers[*(const size_t *) a], *y = &s->numbers[*(const size_t *) b];
        if (x->last_described_at != y->last_described_at)
                return x->last_described_at < y->last_described_at ? -1 : 1;
        int c = strcmp(x->target, y->target);
        return c != 0 ? c : strcmp(x->phone_number, y->phone_number);
}

static int push_describe(char ***l, const struct state_number *n) {
        _cleanup_(freep) char *e = strprintf("%s\t%s", n->target, n->id);
        if (!e)
                return -ENOMEM;
        return strv_push(l, e);
}

int reconcile_describe_wanted(const struct config *c, const struct state *s, uint64_t now, unsigned audit_budget,
                              char ***ret) {
        if (!c || !s || !ret)
                return -EINVAL;
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_(freep) size_t *audit = malloc(sizeof *audit * (s->n_numbers + 1));
        size_t n_audit = 0;
        if (!audit)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_targets; i++) {
                const struct target_config *t = &c->targets[i];
                const struct state_target *st = state_find_target(s, t->name);
                if (!st || !st->listed_ok)
                        continue;
                _cleanup_(freep) size_t *idx = NULL;
                size_t n_idx = 0;
                int r = lifecycle_target_records(s, t->name, &idx, &n_idx);
                if (r < 0)
                        return r;
                for (size_t k = 0; k < n_idx; k++) {
                        const struct state_number *n = &s->numbers[idx[k]];
                        if (describe_needed(t, n, now)) {
                                r = push_describe(&l, n);
                                if (r < 0)
                                        return r;
                        } else if (audit_due(t, n, now))
                                audit[n_audit++] = idx[k];
                }
        }
        /* The previous_arns of each target: only what is new there, and
         * moves whose outcome is not known. */
        for (size_t i = 0; i < c->n_targets; i++)
                for (size_t j = 0; j < c->targets[i].n_previous_arns; j++) {
                        const char *src = c->targets[i].previous_arns[j];
                        const struct state_target *st = state_find_target(s, src);
                        if (!st || !st->listed_ok)
                                continue;
                        _cleanup_(freep) size_t *idx = NULL;
                        size_t n_idx = 0;
                        int r = lifecycle_target_records(s, src, &idx, &n_idx);
                        if (r < 0)
                                return r;
                        for (size_t k = 0; k < n_idx; k++) {
                                const struct state_number *n = &s->numbers[idx[k]];
                                if (n->id && (n->phase == PHASE_UNKNOWN || n->move_token)) {
                                        r = push_describe(&l, n);
                                        if (r < 0)
                                                return r;
                                }
                        }
                }
        /* The daily audit, paced: the longest unseen first. */
        qsort_r(audit, n_audit, sizeof *audit, audit_cmp, (void *) s);
        for (size_t k = 0; k < n_audit && k < audit_budget; k++) {
                int r = push_describe(&l, &s->numbers[audit[k]]);
                if (r < 0)
                        return r;
        }
        if (!l) {
                l = calloc(1, sizeof *l);
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* ---- 3. the plan ------------------------------------------------------ */

struct planner {
        const struct config *c;
        const struct state *s;
        uint64_t now;
        struct plan *p;
        size_t steps_cap;
        int r; /* first error; the plan is dropped when set */
};

static char *pl_dup(struct planner *pl, const char *s) {
        if (!s)
                return NULL;
        char *c = strdup(s);
        if (!c)
                pl->r = -ENOMEM;
        return c;
}

/* Appends a step; the pointer is valid until the next append. */
static struct plan_step *pl_step_raw(struct planner *pl, enum step_action a, const char *target,
                                     const char *target_arn, const char *region, const char *pool) {
        if (pl->r < 0)
                return NULL;
        if (pl->p->n_steps == pl->steps_cap) {
                size_t cap = pl->steps_cap ? pl->steps_cap * 2 : 16;
                struct plan_step *v = realloc(pl->p->steps, sizeof *v * cap);
                if (!v) {
                        pl->r = -ENOMEM;
                        return NULL;
                }
                pl->p->steps = v;
                pl->steps_cap = cap;
        }
        struct plan_step *s = &pl->p->steps[pl->p->n_steps++];
        *s = (struct plan_step){.action = a};
        s->target = pl_dup(pl, target);
        s->target_arn = pl_dup(pl, target_arn);
        s->region = pl_dup(pl, region);
        s->pool = pl_dup(pl, pool);
        return s;
}

static struct plan_step *pl_step(struct planner *pl, enum step_action a, const struct target_config *t,
                                 const char *pool) {
        return pl_step_raw(pl, a, t->name, t->arn, t->region, pool);
}

static void pl_detail(struct planner *pl, struct plan_step *s, const char *fmt, ...) _printf_(3, 4);
static void pl_detail(struct planner *pl, struct plan_step *s, const char *fmt, ...) {
        if (!s)
                return;
        va_list ap;
        char *m = NULL;
        va_start(ap, fmt);
        if (vasprintf(&m, fmt, ap) < 0) {
                m = NULL;
                pl->r = -ENOMEM;
        }
        va_end(ap);
        free(s->detail);
        s->detail = m;
}

static void pl_number(struct planner *pl, struct plan_step *s, const struct state_number *n) {
        if (!s)
                return;
        s->phone_number = pl_dup(pl, n->phone_number);
        s->phone_number_id = pl_dup(pl, n->id);
        char arn[STATE_ARN_MAX];
        s->phone_number_arn = pl_dup(pl, state_number_arn(n, arn));
}

static void pl_pool_tags(struct planner *pl, struct plan_step *s, const struct target_config *t,
                         const struct pool_config *p) {
        if (s && plan_pool_claim_tags(t, p, &s->tags, &s->n_tags) < 0)
                pl->r = -ENOMEM;
}

/* The parameters of a claim request (search and claim): a replay resends
 * its intent's own (replay), any other claim the pool's. */
static void pl_claim_params(struct planner *pl, struct plan_step *s, const struct target_config *t,
                            const struct pool_config *p, const struct state_number *replay) {
        if (!s)
                return;
        s->prefix = pl_dup(pl, p->prefix);
        if (!replay) {
                s->description = pl_dup(pl, p->description);
                pl_pool_tags(pl, s, t, p);
                s->country = pl_dup(pl, p->country);
                s->type = pl_dup(pl, p->type);
                return;
        }
        s->description = pl_dup(pl, replay->claim_description);
        s->country = pl_dup(pl, replay->country ? replay->country : p->country);
        s->type = pl_dup(pl, replay->type ? replay->type : p->type);
        if (replay->n_claim_tags == 0)
                return;
        s->tags = calloc(replay->n_claim_tags, sizeof *s->tags);
        if (!s->tags) {
                pl->r = -ENOMEM;
                return;
        }
        s->n_tags = replay->n_claim_tags;
        for (size_t i = 0; i < replay->n_claim_tags; i++) {
                s->tags[i].key = pl_dup(pl, replay->claim_tags[i].key);
                s->tags[i].value = pl_dup(pl, replay->claim_tags[i].value);
        }
}

static const char *ts(uint64_t sec, char buf[static 32]) {
        return format_timestamp_sec(sec, buf, 32);
}

struct target_ctx {
        const struct target_config *t;
        const struct state_target *st; /* NULL: never listed */
        size_t *idx;                 /* records of the target, by phone number */
        size_t n_idx;
        int *adopt;                  /* per idx entry: pool index adopting it, or -1 */
        int *unmanaged;              /* per idx entry: adopting pool reporting it, or -1 */
        unsigned unknown;            /* records still PHASE_UNKNOWN */
        bool paused;
        bool quota_retry_ok;         /* the one retry per quota_backoff while paused is due */
        bool quota_retry_used;
        unsigned releases;           /* planned this pass */
        size_t churn;                /* claims + releases in the churn window */
        unsigned numbers;            /* numbers the target has (ours live + others) */
        bool all_pools_zero;
};

static bool number_matches_pool(const struct state_number *n, const struct pool_config *p) {
        return n->country && n->type && streq(n->country, p->country) && streq(n->type, p->type) &&
               (!p->prefix || startswith(n->phone_number, p->prefix));
}

bool reconcile_candidate_fits(const struct plan_step *s, const struct connect_available *a) {
        return s && a && !isempty(a->phone_number) && streq_ptr(a->country, s->country) &&
               streq_ptr(a->type, s->type) && (!s->prefix || startswith(a->phone_number, s->prefix));
}

static bool number_mismatches_pool(const struct state_number *n, const struct pool_config *p) {
        return (n->country && !streq(n->country, p->country)) || (n->type && !streq(n->type, p->type)) ||
               (p->prefix && !startswith(n->phone_number, p->prefix));
}

/* Pinned numbers of p that its target holds (counted in its pool). */
static unsigned pins_held(const struct planner *pl, const struct target_config *t, const struct pool_config *p) {
        return p->n_numbers - lifecycle_pins_missing(pl->s, t, p, pl->now);
}

/* Slots of p that searches, adoptions and moves of unpinned numbers may
 * fill: count minus the pins (which keep their own slots, held or not),
 * minus the unpinned numbers held and those moving towards the pool. */
static unsigned pool_room(const struct planner *pl, const struct target_config *t, const struct pool_config *p,
                          const struct lifecycle_pool_count *pc, unsigned moving) {
        unsigned pinned_held = pins_held(pl, t, p);
        unsigned nonpin = pc->held > pinned_held ? pc->held - pinned_held : 0;
        unsigned free_slots = p->count > p->n_numbers ? p->count - p->n_numbers : 0;
        return free_slots > nonpin + moving ? free_slots - nonpin - moving : 0;
}

/* Unpinned numbers moving towards pool p of t (an intent, or a FAILED
 * move waiting for its retry). */
static unsigned pool_moving_unpinned(const struct planner *pl, const struct target_config *t,
                                     const struct pool_config *p) {
        unsigned n = 0;
        for (size_t i = 0; i < pl->s->n_numbers; i++) {
                const struct state_number *x = &pl->s->numbers[i];
                if (streq_ptr(x->move_target, t->name) && streq_ptr(x->move_pool, p->name) &&
                    !lifecycle_pin_pool(t, x->phone_number))
                        n++;
        }
        return n;
}

/* Adoption (connect-numbers.yaml(5), OWNERSHIP): untagged matching numbers, ascending phone
 * number, up to each adopting pool's need; a number that two adopting
 * pools match goes to the first in file order that has room. The rest are
 * reported as unmanaged by the first adopting pool they match. */
static void assign_adoptions(struct planner *pl, struct target_ctx *tc) {
        const struct target_config *t = tc->t;
        for (size_t k = 0; k < tc->n_idx; k++)
                tc->adopt[k] = tc->unmanaged[k] = -1;
        if (tc->unknown > 0)
                return; /* an undescribed number may be one of ours */
        for (size_t j = 0; j < t->n_pools; j++) {
                const struct pool_config *p = &t->pools[j];
                if (!p->adopt && p->n_from == 0)
                        continue;
                struct lifecycle_pool_count pc;
                lifecycle_count_pool(pl->s, t->name, p->name, pl->now, &pc);
                unsigned need = pool_room(pl, t, p, &pc, pool_moving_unpinned(pl, t, p));
                /* from: first (numbers that were the pool's under another
                 * name), then untagged ones (adopt: true). */
                for (int pass = 0; pass < 2; pass++) {
                        for (size_t k = 0; k < tc->n_idx; k++) {
                                const struct state_number *n = &pl->s->numbers[tc->idx[k]];
                                if (n->phase != PHASE_FOREIGN || !n->listed || tc->adopt[k] >= 0 || n->move_target)
                                        continue;
                                if (pass == 0 ? !lifecycle_pool_takes_tag(p, n->owner_tag)
                                              : (!p->adopt || n->owner_tag || !number_matches_pool(n, p)))
                                        continue;
                                if (need > 0) {
                                        tc->adopt[k] = (int) j;
                                        need--;
                                } else if (pass == 1 && tc->unmanaged[k] < 0)
                                        tc->unmanaged[k] = (int) j;
                        }
                }
        }
        for (size_t k = 0; k < tc->n_idx; k++)
                if (tc->adopt[k] >= 0)
                        tc->unmanaged[k] = -1;
}

static int release_cmp(const void *a, const void *b, void *userdata) {
        const struct state *s = userdata;
        const struct state_number *x = &s->numbers[*(const size_t *) a], *y = &s->numbers[*(const size_t *) b];
        if (x->claimed_at != y->claimed_at)
                return x->claimed_at > y->claimed_at ? -1 : 1;
        return -strcmp(x->phone_number, y->phone_number);
}

static void plan_drift(struct planner *pl, struct target_ctx *tc, const struct pool_config *p,
                       const struct state_number *n) {
        const struct target_config *t = tc->t;
        bool metadata_known = n->last_described_at &&
                              (n->owner_tag || n->claimed_at + METADATA_GRACE_SEC <= pl->now);
        if (metadata_known) {
                if (p->description && n->id && !streq_ptr(n->description, p->description)) {
                        struct plan_step *s = pl_step(pl, STEP_UPDATE_DESCRIPTION, t, p->name);
                        pl_number(pl, s, n);
                        if (s) {
                                s->description = pl_dup(pl, p->description);
                                _cleanup_(freep) char *v = strprintf("update:%s:%s", n->id, p->description);
                                if (!v)
                                        pl->r = -ENOMEM;
                                reconcile_claim_token(t->name, p->name, v, 0, 0, s->client_token);
                        }
                        pl_detail(pl, s, "description \"%s\" differs from the pool's \"%s\"",
                                  n->description ? n->description : "", p->description);
                }
                char arn[STATE_ARN_MAX];
                if (state_number_arn(n, arn)) {
                        /* Missing or different tags: the ownership tag and the pool's. */
                        struct config_tag *all = NULL;
                        size_t n_all = 0;
                        if (plan_pool_claim_tags(t, p, &all, &n_all) < 0) {
                                pl->r = -ENOMEM;
                                return;
                        }
                        size_t n_fix = 0;
                        for (size_t i = 0; i < n_all; i++)
                                if (!streq_ptr(number_tag(n, all[i].key), all[i].value))
                                        all[n_fix++] = all[i];
                                else {
                                        free(all[i].key);
                                        free(all[i].value);
                                }
                        if (n_fix > 0) {
                                struct plan_step *s = pl_step(pl, STEP_TAG, t, p->name);
                                pl_number(pl, s, n);
                                if (s) {
                                        s->tags = all;
                                        s->n_tags = n_fix;
                                        all = NULL;
                                        pl_detail(pl, s, "%zu tag%s missing or different (first: %s)", n_fix,
                                                  n_fix == 1 ? "" : "s", s->tags[0].key);
                                }
                        }
                        plan_tags_free(all, n_fix);

                        _cleanup_(strv_freep) char **keys = NULL;
                        for (char **k = n->tag_keys_applied; k && *k; k++) {
                                bool in_pool = streq(*k, OWNERSHIP_TAG_KEY);
                                for (size_t i = 0; i < p->n_tags && !in_pool; i++)
                                        in_pool = streq_ptr(p->tags[i].key, *k);
                                if (!in_pool && state_number_tag(n, *k) && strv_push(&keys, *k) < 0)
                                        pl->r = -ENOMEM;
                        }
                        if (keys) {
                                struct plan_step *s = pl_step(pl, STEP_UNTAG, t, p->name);
                                pl_number(pl, s, n);
                                if (s) {
                                        s->keys = TAKE_PTR(keys);
                                        pl_detail(pl, s, "tag %s%s no longer in the pool", s->keys[0],
                                                  s->keys[1] ? " and others" : "");
                                }
                        }
                }
        }
        /* A traffic distribution group's pool names its flow by ARN: the
         * association goes to the instance that ARN names. */
        const char *flow_instance = p->flow_instance_id ? p->flow_instance_id
                                    : t->kind == TARGET_INSTANCE ? t->resource_id : NULL;
        if (p->contact_flow && flow_instance && n->id && !streq_ptr(n->flow_applied, p->contact_flow)) {
                struct plan_step *s = pl_step(pl, STEP_ASSOCIATE_FLOW, t, p->name);
                pl_number(pl, s, n);
                if (s) {
                        s->contact_flow = pl_dup(pl, p->contact_flow);
                        s->instance_id = pl_dup(pl, flow_instance);
                }
                if (n->flow_applied)
                        pl_detail(pl, s, "associate contact flow %s (was %s)", p->contact_flow, n->flow_applied);
                else
                        pl_detail(pl, s, "associate contact flow %s", p->contact_flow);
        }
        if (number_mismatches_pool(n, p)) {
                struct plan_step *s = pl_step(pl, STEP_REPORT_MISMATCH, t, p->name);
                pl_number(pl, s, n);
                pl_detail(pl, s,
                          "%s (%s %s) is tagged for %s/%s but does not match its country %s, type %s%s%s: counted "
                          "for the pool, never released for it",
                          n->phone_number, n->country ? n->country : "?", n->type ? n->type : "?", t->name, p->name,
                          p->country, p->type, p->prefix ? ", prefix " : "", p->prefix ? p->prefix : "");
        }
}

static void plan_excess(struct planner *pl, struct target_ctx *tc, const struct pool_config *p,
                        const struct lifecycle_pool_count *pc, unsigned moving) {
        const struct target_config *t = tc->t;
        if (pc->live <= p->count)
                return;
        unsigned excess = pc->live - p->count;
        const char *why = NULL;
        char buf[160];
        if (!t->release_excess)
                why = "release_excess is false: the excess is kept";
        else if (tc->unknown > 0)
                why = "not released while some numbers of the target are not described yet";
        else if (pc->intent + pc->in_progress > 0)
                why = "not released while claims of the pool are in progress";
        else if (moving > 0)
                why = "not released while numbers are moving to the pool";
        unsigned released = 0;
        if (!why) {
                _cleanup_(freep) size_t *cand = malloc(sizeof *cand * (tc->n_idx + 1));
                _cleanup_(freep) char *owner = strprintf("%s/%s", t->name, p->name);
                size_t n_cand = 0;
                if (!cand || !owner) {
                        pl->r = -ENOMEM;
                        return;
                }
                for (size_t k = 0; k < tc->n_idx; k++) {
                        const struct state_number *n = &pl->s->numbers[tc->idx[k]];
                        /* Only numbers that carry our tag, and never one
                         * that is in the pool only by its tag; and only
                         * while Connect shows it on this target (this
                         * pass's list or describe), never on a belief. */
                        if (n->phase == PHASE_CLAIMED && lifecycle_record_of_pool(n, t->name, p->name) && n->id &&
                            n->listed && streq_ptr(n->target_arn, t->arn) &&
                            streq_ptr(number_tag(n, OWNERSHIP_TAG_KEY), owner) && !number_mismatches_pool(n, p) &&
                            !n->move_target && !lifecycle_pin_anywhere(pl->c, n->phone_number, NULL))
                                cand[n_cand++] = tc->idx[k];
                }
                qsort_r(cand, n_cand, sizeof *cand, release_cmp, (void *) pl->s);
                for (size_t k = 0; k < n_cand && released < excess; k++) {
                        if (tc->releases >= t->max_releases_per_pass) {
                                snprintf(buf, sizeof buf, "max_releases_per_pass (%u) reached for this pass",
                                         t->max_releases_per_pass);
                                why = buf;
                                break;
                        }
                        if (tc->churn + tc->releases + 1 > 2 * (size_t) t->quota) {
                                snprintf(buf, sizeof buf,
                                         "the churn limit would be passed (%zu claims and releases in 180 days, "
                                         "limit %u)",
                                         tc->churn + tc->releases, 2 * t->quota);
                                why = buf;
                                break;
                        }
                        if (!tc->all_pools_zero && tc->numbers <= tc->releases + 1) {
                                why = "it would leave the target without numbers while a pool wants some";
                                break;
                        }
                        const struct state_number *n = &pl->s->numbers[cand[k]];
                        struct plan_step *s = pl_step(pl, STEP_RELEASE, t, p->name);
                        pl_number(pl, s, n);
                        if (s) {
                                _cleanup_(freep) char *v = strprintf("release:%s", n->id);
                                if (!v)
                                        pl->r = -ENOMEM;
                                reconcile_claim_token(t->name, p->name, v, 0, 0, s->client_token);
                        }
                        char b[32];
                        pl_detail(pl, s,
                                  "%s holds %u numbers, %u wanted: releasing the most recently claimed "
                                  "(claimed %s); a released number can never be claimed again",
                                  p->name, pc->live, p->count, n->claimed_at ? ts(n->claimed_at, b) : "before records");
                        tc->releases++;
                        released++;
                }
                if (released < excess && !why)
                        why = "no more numbers carrying the pool's tag can be released";
        }
        if (released < excess) {
                struct plan_step *s = pl_step(pl, STEP_REPORT_EXCESS, t, p->name);
                pl_detail(pl, s, "%s/%s holds %u numbers, %u wanted: %u kept (%s)", t->name, p->name, pc->live,
                          p->count, excess - released, why);
        }
}

/* The record of phone on a list source other than t's own arn (another
 * target of the YAML, or a previous_arns entry), if any. */
static const struct state_number *find_elsewhere(const struct planner *pl, const struct target_config *t,
                                                 const char *phone) {
        for (size_t i = 0; i < pl->c->n_targets; i++) {
                const struct target_config *u = &pl->c->targets[i];
                for (size_t j = 0; j <= u->n_previous_arns; j++) {
                        const char *src = j == 0 ? u->name : u->previous_arns[j - 1];
                        if (streq(src, t->name))
                                continue;
                        const struct state_number *n = state_find_number((struct state *) pl->s, src, phone);
                        if (n && (n->move_target || n->phase == PHASE_CLAIMED || n->phase == PHASE_FOREIGN ||
                                  n->phase == PHASE_UNKNOWN || n->phase == PHASE_IN_PROGRESS))
                                return n;
                }
        }
        return NULL;
}

/* Connect shows n on its list source in this pass: a move may start. */
static bool movable_now(const struct planner *pl, const struct state_number *n) {
        const struct state_target *st = state_find_target(pl->s, n->target);
        return st && st->listed_ok && n->listed && n->id &&
               (n->phase == PHASE_CLAIMED || n->phase == PHASE_FOREIGN);
}

static void plan_move_step(struct planner *pl, const struct target_config *t, const struct pool_config *p,
                           const struct state_number *n, const char *why) {
        struct plan_step *st = pl_step(pl, STEP_MOVE, t, p->name);
        pl_number(pl, st, n);
        if (!st)
                return;
        const char *src_arn = NULL;
        (void) lifecycle_source(pl->c, n->target, &src_arn, NULL);
        st->source = pl_dup(pl, n->target);
        st->source_arn = pl_dup(pl, n->target_arn ? n->target_arn : src_arn);
        st->pinned = lifecycle_pin_pool(t, n->phone_number) != NULL;
        /* Derived, not random: two instances moving the same number send
         * the same token, and Connect makes one move of it. A FAILED
         * attempt counts, so that the retry is a new request. */
        _cleanup_(freep) char *v = strprintf("move:%s:%s", n->id ? n->id : n->phone_number, t->arn);
        if (!v)
                pl->r = -ENOMEM;
        reconcile_claim_token(t->name, p->name, v ? v : "", 0, n->move_attempts, st->client_token);
        pl_pool_tags(pl, st, t, p);
        if (n->move_attempts)
                pl_detail(pl, st, "%s: from %s (attempt %u after a failed move)", why, st->source_arn,
                          n->move_attempts + 1);
        else
                pl_detail(pl, st, "%s: from %s", why, st->source_arn);
}

/* A move towards (t, p) already under way for n: counted as moving, and
 * retried when a FAILED attempt's back-off has passed. */
static void plan_move_pending(struct planner *pl, const struct target_config *t, const struct pool_config *p,
                              const struct state_number *n, const char *why) {
        char b[32];
        if (n->move_token)
                return; /* in flight: followed by the executor */
        if (n->move_next_retry_at > pl->now || !movable_now(pl, n)) {
                struct plan_step *st = pl_step(pl, STEP_REPORT_WAITING, t, p->name);
                pl_number(pl, st, n);
                pl_detail(pl, st, "moving %s here failed (%s): it stays where it is, counts as moving, and is tried "
                                  "again at %s",
                          n->phone_number, n->move_message ? n->move_message : "no reason given",
                          ts(MAX(n->move_next_retry_at, pl->now), b));
                return;
        }
        plan_move_step(pl, t, p, n, why);
}

/* Pinned numbers of p: held, moved here, claimed by number, or waiting. */
static void plan_pins(struct planner *pl, struct target_ctx *tc, const struct pool_config *p) {
        const struct target_config *t = tc->t;
        char b[32];
        for (size_t k = 0; k < p->n_numbers; k++) {
                const char *phone = p->numbers[k];
                const struct state_number *n = state_find_number((struct state *) pl->s, t->name, phone);
                if (n && lifecycle_record_of_pool(n, t->name, p->name) &&
                    (lifecycle_record_held(n, pl->now) || n->phase == PHASE_FAILED))
                        continue; /* held (or its window is handled with the failed claims) */
                const struct state_number *e = find_elsewhere(pl, t, phone);
                if (e && e->move_target) {
                        if (streq(e->move_target, t->name) && streq_ptr(e->move_pool, p->name))
                                plan_move_pending(pl, t, p, e, "pinned number held by another target");
                        continue;
                }
                if (e) {
                        if (movable_now(pl, e))
                                plan_move_step(pl, t, p, e, "pinned number held by another target");
                        continue; /* else: not described yet, or not listed this pass */
                }
                if (tc->unknown > 0)
                        continue;
                if (n && (n->phase == PHASE_UNAVAILABLE || n->phase == PHASE_GIVEN_UP) && n->next_retry_at > pl->now) {
                        struct plan_step *st = pl_step(pl, STEP_REPORT_WAITING, t, p->name);
                        pl_number(pl, st, n);
                        pl_detail(pl, st, "pinned %s %s (%s): tried again at %s", phone,
                                  n->phase == PHASE_UNAVAILABLE ? "is not available" : "could not be claimed in its window",
                                  n->failure_message ? n->failure_message : "no reason given", ts(n->next_retry_at, b));
                        continue;
                }
                if (n && n->phase != PHASE_UNAVAILABLE && n->phase != PHASE_GIVEN_UP && n->phase != PHASE_GONE &&
                    n->phase != PHASE_UNKNOWN && n->phase != PHASE_RELEASED && n->phase != PHASE_MOVED)
                        continue; /* another pool's record of it, in flight: wait */
                if (tc->paused) {
                        struct plan_step *st = pl_step(pl, STEP_REPORT_QUOTA, t, p->name);
                        pl_detail(pl, st, "pinned %s is wanted, but claims for %s are paused after a phone-number "
                                          "quota refusal until %s",
                                  phone, t->name, ts(tc->st->quota_until, b));
                        continue;
                }
                struct plan_step *st = pl_step(pl, STEP_CLAIM_PINNED, t, p->name);
                if (!st)
                        return;
                st->phone_number = pl_dup(pl, phone);
                st->pinned = true;
                st->slot = (unsigned) k;
                _cleanup_(freep) char *v = strprintf("pin:%s", phone);
                if (!v)
                        pl->r = -ENOMEM;
                reconcile_claim_token(t->name, p->name, v ? v : "", 0, n ? n->attempts : 0, st->client_token);
                pl_claim_params(pl, st, t, p, NULL);
                pl_detail(pl, st, "pinned %s is not held: claim it by number", phone);
        }
}

/* Numbers of other list sources that p asks for (from:, or tagged for it
 * on one of t's previous_arns), oldest claim first. */
static bool pool_asks_for(const struct planner *pl, const struct target_config *t, const struct pool_config *p,
                          const struct state_number *n) {
        const struct target_config *owner = NULL;
        if (streq_ptr(n->target, t->name) || !lifecycle_source(pl->c, n->target, NULL, &owner))
                return false;
        if (lifecycle_pin_anywhere(pl->c, n->phone_number, NULL))
                return false; /* pins are moved for their own pool only */
        if (lifecycle_pool_takes_tag(p, n->owner_tag))
                return true;
        if (owner != t)
                return false;
        _cleanup_(freep) char *mine = strprintf("%s/%s", t->name, p->name);
        return mine && (streq_ptr(n->owner_tag, mine) || (!n->owner_tag && streq_ptr(n->pool, p->name)));
}

static int move_cmp(const void *a, const void *b, void *userdata) {
        const struct state *s = userdata;
        const struct state_number *x = &s->numbers[*(const size_t *) a], *y = &s->numbers[*(const size_t *) b];
        if (x->claimed_at != y->claimed_at)
                return x->claimed_at < y->claimed_at ? -1 : 1;
        return strcmp(x->phone_number, y->phone_number);
}

/* Moves of unpinned numbers into p: those under way, then new ones up to
 * room. Returns how many are moving towards p after this plan. */
static unsigned plan_moves(struct planner *pl, struct target_ctx *tc, const struct pool_config *p, unsigned room) {
        const struct target_config *t = tc->t;
        if (p->n_from == 0 && t->n_previous_arns == 0)
                return 0;
        unsigned moving = 0;
        _cleanup_(freep) size_t *cand = malloc(sizeof *cand * (pl->s->n_numbers + 1));
        size_t n_cand = 0;
        if (!cand) {
                pl->r = -ENOMEM;
                return 0;
        }
        for (size_t i = 0; i < pl->s->n_numbers; i++) {
                const struct state_number *n = &pl->s->numbers[i];
                if (n->move_target) {
                        if (streq(n->move_target, t->name) && streq_ptr(n->move_pool, p->name) &&
                            !lifecycle_pin_pool(t, n->phone_number)) {
                                moving++;
                                plan_move_pending(pl, t, p, n, "asked for by the pool");
                        }
                        continue;
                }
                if (movable_now(pl, n) && pool_asks_for(pl, t, p, n))
                        cand[n_cand++] = i;
        }
        qsort_r(cand, n_cand, sizeof *cand, move_cmp, (void *) pl->s);
        for (size_t k = 0; k < n_cand; k++) {
                const struct state_number *n = &pl->s->numbers[cand[k]];
                if (k >= room) {
                        struct plan_step *st = pl_step(pl, STEP_REPORT_EXCESS, t, p->name);
                        pl_number(pl, st, n);
                        pl_detail(pl, st, "%s (%s=%s, on %s) is beyond the pool's count: left where it is, never "
                                          "released for it",
                                  n->phone_number, OWNERSHIP_TAG_KEY, n->owner_tag ? n->owner_tag : "-",
                                  n->target_arn ? n->target_arn : n->target);
                        continue;
                }
                plan_move_step(pl, t, p, n,
                               lifecycle_pool_takes_tag(p, n->owner_tag) ? "named by the pool's from:"
                                                                         : "the target's previous ARN");
                moving++;
        }
        return moving;
}

static void pl_pool_summary(struct planner *pl, const struct target_config *t, const struct pool_config *p) {
        struct pool_summary *sum = &pl->p->pools[pl->p->n_pools++];
        *sum = (struct pool_summary){0};
        lifecycle_pool_figures(pl->s, t->name, p->name, p->count, pl->now, &sum->f);
        sum->f.pins_missing = lifecycle_pins_missing(pl->s, t, p, pl->now);
        sum->target = pl_dup(pl, t->name);
        sum->pool = pl_dup(pl, p->name);
}

static void plan_pool(struct planner *pl, struct target_ctx *tc, size_t j) {
        const struct target_config *t = tc->t;
        const struct pool_config *p = &t->pools[j];
        const struct state *s = pl->s;
        uint64_t now = pl->now;
        struct lifecycle_pool_count pc;
        char b[32];

        lifecycle_count_pool(s, t->name, p->name, now, &pc);
        pl_pool_summary(pl, t, p);

        char view[65];
        if (pool_view_digest(s, t->name, p->name, view) < 0) {
                pl->r = -ENOMEM;
                return;
        }

        /* Unresolved intents: the same request again, same token. */
        for (size_t k = 0; k < tc->n_idx; k++) {
                const struct state_number *n = &s->numbers[tc->idx[k]];
                if (n->phase != PHASE_INTENT || !lifecycle_record_of_pool(n, t->name, p->name) ||
                    now >= n->intent_at + LIFECYCLE_INTENT_REPLAY_SEC)
                        continue;
                struct plan_step *st = pl_step(pl, STEP_REPLAY_CLAIM, t, p->name);
                pl_number(pl, st, n);
                if (!st)
                        continue;
                st->slot = n->slot;
                snprintf(st->client_token, sizeof st->client_token, "%s", n->client_token ? n->client_token : "");
                memcpy(st->view_digest, view, sizeof view);
                pl_claim_params(pl, st, t, p, n);
                pl_detail(pl, st, "claim of %s sent %s has no recorded answer: resend it with its token",
                          n->phone_number, ts(n->claim_sent_at ? n->claim_sent_at : n->intent_at, b));
        }

        /* Windows that ended: the executor gives them up (lifecycle). */
        for (size_t k = 0; k < tc->n_idx; k++) {
                const struct state_number *n = &s->numbers[tc->idx[k]];
                if (n->phase != PHASE_FAILED || !lifecycle_record_of_pool(n, t->name, p->name) ||
                    lifecycle_in_window(n, now))
                        continue;
                struct plan_step *st = pl_step(pl, STEP_GIVE_UP, t, p->name);
                pl_number(pl, st, n);
                if (st)
                        st->pinned = lifecycle_pin_pool(t, n->phone_number) != NULL;
                pl_detail(pl, st, "retry window of %s ended %s%s", n->phone_number,
                          ts(n->first_failure_at + LIFECYCLE_WINDOW_SEC, b),
                          st && st->pinned ? ": pinned, so not replaced; tried again hourly" : "");
        }

        /* Failed claims inside their window, when due and still needed. */
        unsigned live = pc.live;
        for (size_t k = 0; k < tc->n_idx; k++) {
                const struct state_number *n = &s->numbers[tc->idx[k]];
                if (n->phase != PHASE_FAILED || !lifecycle_record_of_pool(n, t->name, p->name) || !lifecycle_in_window(n, now) ||
                    n->next_retry_at > now)
                        continue;
                if (live >= p->count && !lifecycle_pin_pool(t, n->phone_number))
                        continue; /* the pool no longer needs it; it expires */
                if (tc->paused) {
                        if (!n->quota_failure || !tc->quota_retry_ok || tc->quota_retry_used)
                                continue;
                        tc->quota_retry_used = true;
                }
                struct plan_step *st = pl_step(pl, STEP_RETRY_CLAIM, t, p->name);
                pl_number(pl, st, n);
                pl_claim_params(pl, st, t, p, NULL);
                if (st) {
                        _cleanup_(freep) char *v = strprintf("retry:%s", n->phone_number);
                        if (!v)
                                pl->r = -ENOMEM;
                        reconcile_claim_token(t->name, p->name, v, 0, n->attempts, st->client_token);
                        st->slot = n->slot;
                }
                pl_detail(pl, st, "attempt %u on %s, inside its window until %s", n->attempts + 1, n->phone_number,
                          ts(n->first_failure_at + LIFECYCLE_WINDOW_SEC, b));
                live++;
        }

        /* Adoptions count toward held before claims are planned. */
        unsigned adopted = 0;
        for (size_t k = 0; k < tc->n_idx; k++) {
                if (tc->adopt[k] != (int) j)
                        continue;
                const struct state_number *n = &s->numbers[tc->idx[k]];
                struct plan_step *st = pl_step(pl, n->owner_tag ? STEP_TAKE_OVER : STEP_ADOPT, t, p->name);
                pl_number(pl, st, n);
                pl_pool_tags(pl, st, t, p);
                if (n->owner_tag)
                        pl_detail(pl, st, "%s=%s is named by the pool's from: retagged as the pool's",
                                  OWNERSHIP_TAG_KEY, n->owner_tag);
                else
                        pl_detail(pl, st, "untagged %s matches the pool (adopt: true)", n->phone_number);
                adopted++;
        }

        /* Pins, then moves of the numbers the pool asks for. Neither is
         * acted on while a number of the target is not described yet. */
        unsigned moving = 0;
        if (tc->unknown == 0) {
                plan_pins(pl, tc, p);
                unsigned room = pool_room(pl, t, p, &pc, 0);
                room = room > adopted ? room - adopted : 0;
                moving = plan_moves(pl, tc, p, room);
        }

        /* Search fills what pins, held numbers, adoptions and moves leave:
         * slots numbered from the first free one, as before pins existed. */
        unsigned pinned_held = pins_held(pl, t, p);
        unsigned held = pc.held - MIN(pc.held, pinned_held) + adopted + moving;
        unsigned searchable = p->count - MIN(p->count, p->n_numbers);
        if (held < searchable && tc->unknown == 0) {
                if (tc->paused) {
                        struct plan_step *st = pl_step(pl, STEP_REPORT_QUOTA, t, p->name);
                        pl_detail(pl, st,
                                  "%u more wanted, but claims for %s are paused after a phone-number quota refusal "
                                  "until %s or until its configuration changes",
                                  searchable - held, t->name, ts(tc->st->quota_until, b));
                } else
                        for (unsigned slot = held; slot < searchable; slot++) {
                                struct plan_step *st = pl_step(pl, STEP_CLAIM, t, p->name);
                                if (!st)
                                        break;
                                st->slot = slot;
                                memcpy(st->view_digest, view, sizeof view);
                                unsigned attempt = 0;
                                for (unsigned a = 0; a < PLAN_CLAIM_ATTEMPTS; a++, attempt++)
                                        reconcile_fresh_claim_token(s, t->name, p->name, view, slot, &attempt,
                                                                    st->claim_tokens[a]);
                                st->n_claim_tokens = PLAN_CLAIM_ATTEMPTS;
                                memcpy(st->client_token, st->claim_tokens[0], sizeof st->client_token);
                                pl_claim_params(pl, st, t, p, NULL);
                                pl_detail(pl, st, "slot %u (slots 0 to %u): %s %s%s%s", slot, p->count - 1, p->country,
                                          p->type, p->prefix ? " " : "", p->prefix ? p->prefix : "");
                        }
        }

        for (size_t k = 0; k < tc->n_idx; k++) {
                const struct state_number *n = &s->numbers[tc->idx[k]];
                /* Drift is fixed only on a number Connect shows on the
                 * target this pass: a belief is never acted on. */
                if (n->phase == PHASE_CLAIMED && n->listed && lifecycle_record_of_pool(n, t->name, p->name) &&
                    !n->move_target)
                        plan_drift(pl, tc, p, n);
        }

        plan_excess(pl, tc, p, &pc, moving);

        for (size_t k = 0; k < tc->n_idx; k++) {
                if (tc->unmanaged[k] != (int) j)
                        continue;
                const struct state_number *n = &s->numbers[tc->idx[k]];
                struct plan_step *st = pl_step(pl, STEP_REPORT_UNMANAGED, t, p->name);
                pl_number(pl, st, n);
                pl_detail(pl, st, "untagged %s matches %s/%s but is not needed: left alone", n->phone_number,
                          t->name, p->name);
        }
}

/* Numbers of t that belong to no pool of it: tagged for a pool or target
 * not in the YAML, or ours from a pool since removed. */
static void plan_target_orphans(struct planner *pl, struct target_ctx *tc) {
        const struct target_config *t = tc->t;
        char b[32];
        for (size_t k = 0; k < tc->n_idx; k++) {
                const struct state_number *n = &pl->s->numbers[tc->idx[k]];
                const char *pool = NULL;
                if (n->phase == PHASE_MOVED) {
                        struct plan_step *st = pl_step(pl, STEP_REPORT_MOVED, t, n->pool);
                        pl_number(pl, st, n);
                        pl_detail(pl, st,
                                  "%s of %s/%s was moved to %s outside connect-numbers: it no longer counts for "
                                  "the pool and is never released, tagged or untagged for it",
                                  n->phone_number, t->name, n->pool, n->target_arn ? n->target_arn : "another target");
                        continue;
                }
                if (tc->adopt[k] >= 0)
                        continue; /* taken over (from:) in this plan */
                if (n->phase == PHASE_FOREIGN && n->owner_tag) {
                        if (lifecycle_owner_pool(t, n->owner_tag))
                                continue; /* its pool is back: describe settles it */
                        const struct target_config *home = tag_target(pl->c, n->owner_tag);
                        if (home && lifecycle_owner_pool(home, n->owner_tag)) {
                                struct plan_step *st = pl_step(pl, STEP_REPORT_ORPHAN, t, tag_pool_part(n->owner_tag));
                                pl_number(pl, st, n);
                                pl_detail(pl, st,
                                          "%s is tagged %s=%s but sits on %s, not on %s: not counted for that pool, "
                                          "reported, never released",
                                          n->phone_number, OWNERSHIP_TAG_KEY, n->owner_tag, t->name, home->name);
                                continue;
                        }
                        pool = tag_pool_part(n->owner_tag);
                } else if ((n->phase == PHASE_CLAIMED || n->phase == PHASE_IN_PROGRESS) && n->pool &&
                           !target_find_pool(t, n->pool))
                        pool = n->pool;
                else if (n->phase == PHASE_FAILED && n->pool && !target_find_pool(t, n->pool) &&
                         !lifecycle_in_window(n, pl->now)) {
                        struct plan_step *st = pl_step(pl, STEP_GIVE_UP, t, n->pool);
                        pl_number(pl, st, n);
                        pl_detail(pl, st, "retry window of %s ended %s (its pool is no longer configured)",
                                  n->phone_number, ts(n->first_failure_at + LIFECYCLE_WINDOW_SEC, b));
                        continue;
                } else
                        continue;
                struct plan_step *st = pl_step(pl, STEP_REPORT_ORPHAN, t, pool);
                pl_number(pl, st, n);
                pl_detail(pl, st, "%s is tagged %s=%s, which names no pool of this configuration: reported, never "
                                  "released",
                          n->phone_number, OWNERSHIP_TAG_KEY, n->owner_tag ? n->owner_tag : n->pool);
        }
}

static void plan_target(struct planner *pl, const struct target_config *t) {
        const struct state_target *st = state_find_target(pl->s, t->name);
        if (!st || !st->listed_ok) {
                struct plan_step *s = pl_step(pl, STEP_REPORT_UNKNOWN, t, NULL);
                pl_detail(pl, s, "the numbers of %s could not be listed: no claim or release planned", t->name);
                for (size_t j = 0; j < t->n_pools; j++)
                        pl_pool_summary(pl, t, &t->pools[j]);
                return;
        }
        struct target_ctx tc = {.t = t, .st = st};
        if (lifecycle_target_records(pl->s, t->name, &tc.idx, &tc.n_idx) < 0) {
                pl->r = -ENOMEM;
                return;
        }
        tc.adopt = calloc(tc.n_idx + 1, sizeof *tc.adopt);
        tc.unmanaged = calloc(tc.n_idx + 1, sizeof *tc.unmanaged);
        if (!tc.adopt || !tc.unmanaged) {
                pl->r = -ENOMEM;
                goto finish;
        }
        for (size_t k = 0; k < tc.n_idx; k++) {
                const struct state_number *n = &pl->s->numbers[tc.idx[k]];
                if (n->phase == PHASE_UNKNOWN)
                        tc.unknown++;
                if (lifecycle_phase_live(n->phase) || n->phase == PHASE_FOREIGN)
                        tc.numbers++;
        }
        tc.paused = lifecycle_target_paused(st, pl->now);
        uint64_t backoff = lifecycle_quota_backoff_sec(pl->c);
        tc.quota_retry_ok = tc.paused && (st->quota_last_retry_at < st->quota_at ||
                                          pl->now >= st->quota_last_retry_at + backoff);
        uint64_t oldest = pl->now > LIFECYCLE_CHURN_WINDOW_SEC ? pl->now - LIFECYCLE_CHURN_WINDOW_SEC : 0;
        for (size_t i = 0; i < st->n_churn; i++)
                if (st->churn[i].at >= oldest)
                        tc.churn++;
        tc.all_pools_zero = true;
        for (size_t j = 0; j < t->n_pools; j++)
                if (t->pools[j].count > 0)
                        tc.all_pools_zero = false;

        /* Where the target lived before counts as the target itself: a
         * number there not described yet, or a list that failed, may be
         * one the pools would otherwise claim a replacement for. */
        for (size_t j = 0; j < t->n_previous_arns; j++) {
                const char *src = t->previous_arns[j];
                const struct state_target *pst = state_find_target(pl->s, src);
                if (!pst || !pst->listed_ok) {
                        struct plan_step *s = pl_step(pl, STEP_REPORT_UNKNOWN, t, NULL);
                        pl_detail(pl, s, "the numbers of %s (a previous ARN of %s) could not be listed: no claim or "
                                         "release for %s this pass",
                                  src, t->name, t->name);
                        tc.unknown++;
                        continue;
                }
                for (size_t i = 0; i < pl->s->n_numbers; i++)
                        if (pl->s->numbers[i].phase == PHASE_UNKNOWN && streq_ptr(pl->s->numbers[i].target, src))
                                tc.unknown++;
        }
        if (tc.unknown > 0) {
                struct plan_step *s = pl_step(pl, STEP_REPORT_UNKNOWN, t, NULL);
                pl_detail(pl, s,
                          "%u number%s of %s not described yet (any could be ours): no claim, adoption or "
                          "release for %s this pass",
                          tc.unknown, tc.unknown == 1 ? " is" : "s are", t->name, t->name);
        }
        assign_adoptions(pl, &tc);
        for (size_t j = 0; j < t->n_pools && pl->r >= 0; j++)
                plan_pool(pl, &tc, j);
        plan_target_orphans(pl, &tc);
finish:
        free(tc.idx);
        free(tc.adopt);
        free(tc.unmanaged);
}

static int orphan_cmp(const void *a, const void *b, void *userdata) {
        const struct state *s = userdata;
        const struct state_number *x = &s->numbers[*(const size_t *) a], *y = &s->numbers[*(const size_t *) b];
        int c = strcmp(x->target, y->target);
        return c != 0 ? c : strcmp(x->phone_number, y->phone_number);
}

/* Numbers of targets the YAML no longer has: the state is all we know of
 * them (nothing lists those targets any more). */
static void plan_removed_targets(struct planner *pl) {
        const struct state *s = pl->s;
        _cleanup_(freep) size_t *v = malloc(sizeof *v * (s->n_numbers + 1));
        size_t n = 0;
        if (!v) {
                pl->r = -ENOMEM;
                return;
        }
        for (size_t i = 0; i < s->n_numbers; i++) {
                const struct state_number *x = &s->numbers[i];
                if (config_find_target(pl->c, x->target) || lifecycle_source(pl->c, x->target, NULL, NULL))
                        continue;
                if (((x->phase == PHASE_CLAIMED || x->phase == PHASE_IN_PROGRESS) && x->pool) ||
                    (x->phase == PHASE_FOREIGN && x->owner_tag))
                        v[n++] = i;
        }
        qsort_r(v, n, sizeof *v, orphan_cmp, (void *) s);
        for (size_t i = 0; i < n; i++) {
                const struct state_number *x = &s->numbers[v[i]];
                const char *pool = x->pool ? x->pool : tag_pool_part(x->owner_tag);
                struct plan_step *st = pl_step_raw(pl, STEP_REPORT_ORPHAN, x->target, x->target_arn, NULL, pool);
                pl_number(pl, st, x);
                pl_detail(pl, st, "%s of target %s, which is no longer in the configuration: reported, never "
                                  "released",
                          x->phone_number, x->target);
        }
}

static uint64_t earliest(uint64_t a, uint64_t b) {
        if (!a)
                return b;
        if (!b)
                return a;
        return MIN(a, b);
}

int reconcile_plan(const struct config *c, const struct state *s, uint64_t now, struct plan **ret) {
        if (!c || !s || !ret)
                return -EINVAL;
        _cleanup_(plan_freep) struct plan *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        size_t n_pools = 0;
        for (size_t i = 0; i < c->n_targets; i++)
                n_pools += c->targets[i].n_pools;
        p->pools = calloc(n_pools + 1, sizeof *p->pools);
        if (!p->pools)
                return -ENOMEM;

        struct planner pl = {.c = c, .s = s, .now = now, .p = p};
        for (size_t i = 0; i < c->n_targets && pl.r >= 0; i++)
                plan_target(&pl, &c->targets[i]);
        if (pl.r >= 0)
                plan_removed_targets(&pl);
        if (pl.r < 0)
                return pl.r;

        /* When the next pass should come at the latest to act in time. */
        uint64_t wake = 0;
        for (size_t i = 0; i < s->n_numbers; i++) {
                const struct state_number *n = &s->numbers[i];
                const struct target_config *t = config_find_target(c, n->target);
                if (n->phase != PHASE_FAILED || !target_find_pool(t, n->pool) || !lifecycle_in_window(n, now))
                        continue;
                if (n->next_retry_at > now)
                        wake = earliest(wake, n->next_retry_at);
                if (n->first_failure_at)
                        wake = earliest(wake, n->first_failure_at + LIFECYCLE_WINDOW_SEC);
        }
        for (size_t i = 0; i < c->n_targets; i++) {
                const struct state_target *st = state_find_target(s, c->targets[i].name);
                if (lifecycle_target_paused(st, now))
                        wake = earliest(wake, st->quota_until);
        }
        p->next_wakeup_at = wake;
        *ret = TAKE_PTR(p);
        return 0;
}

/* ---- outcomes --------------------------------------------------------- */

/* ---- formatting ------------------------------------------------------- */

