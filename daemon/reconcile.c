/* reconcile.c: the pure planner. (desired config, state updated with what
 * was observed, now) -> a plan of steps, plus the functions that fold each
 * observation and each outcome into the state and say what to log.
 * No I/O, no clock, no logging: every input is an argument, and the plan
 * is deterministic (targets and pools in file order, numbers by phone
 * number, our own releases by recorded claim time).
 *
 * Side effects of reconcile_plan() on the state, all of them reported as
 * events (the executor logs them only where it also saves the state):
 *   - a quota pause whose target YAML changed or whose back-off passed ends
 *     (EVENT_QUOTA_CLEARED);
 *   - a FAILED number past its one-day window becomes GIVEN_UP
 *     (EVENT_WINDOW_EXPIRED); the plan still lists STEP_GIVE_UP for it,
 *     and the executor has nothing to do for that step;
 *   - an intent older than RECONCILE_INTENT_REPLAY_SEC whose number the
 *     target's list does not show is dropped (EVENT_NOTE): the claim never
 *     happened, or it failed and the number went back to inventory. An
 *     intent for a retry of a FAILED number goes back to FAILED instead,
 *     keeping its window.
 * Everything else the plan only reads. */
#include "reconcile.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>

_Static_assert(RECONCILE_CHURN_WINDOW_SEC == 180 * 86400, "state.c prunes churn with the same window");

#define DEFAULT_QUOTA_BACKOFF_SEC (6 * 3600)
#define RETRY_WINDOW_MARGIN_SEC 60 /* the last retry happens inside the window */
#define FALLTHROUGH __attribute__((fallthrough))
/* Connect may show a new claim's tags and description a little after it
 * is CLAIMED: until our ownership tag is seen, or this long after the
 * claim, what a describe shows is not taken as drift. */
#define METADATA_GRACE_SEC 600

static const char *const action_names[_STEP_ACTION_MAX] = {
        [STEP_CLAIM] = "claim",
        [STEP_RETRY_CLAIM] = "retry_claim",
        [STEP_REPLAY_CLAIM] = "replay_claim",
        [STEP_GIVE_UP] = "give_up",
        [STEP_UPDATE_DESCRIPTION] = "update_description",
        [STEP_TAG] = "tag",
        [STEP_UNTAG] = "untag",
        [STEP_ASSOCIATE_FLOW] = "associate_flow",
        [STEP_ADOPT] = "adopt",
        [STEP_RELEASE] = "release",
        [STEP_REPORT_EXCESS] = "report_excess",
        [STEP_REPORT_ORPHAN] = "report_orphan",
        [STEP_REPORT_MISMATCH] = "report_mismatch",
        [STEP_REPORT_UNMANAGED] = "report_unmanaged",
        [STEP_REPORT_QUOTA] = "report_quota",
        [STEP_REPORT_UNKNOWN] = "report_unknown",
        [STEP_REPORT_MOVED] = "report_moved",
};

const char *step_action_name(enum step_action a) {
        if ((size_t) a >= ELEMENTSOF(action_names))
                return NULL;
        return action_names[a];
}

bool step_action_is_change(enum step_action a) {
        switch (a) {
        case STEP_CLAIM:
        case STEP_RETRY_CLAIM:
        case STEP_REPLAY_CLAIM:
        case STEP_GIVE_UP:
        case STEP_UPDATE_DESCRIPTION:
        case STEP_TAG:
        case STEP_UNTAG:
        case STEP_ASSOCIATE_FLOW:
        case STEP_ADOPT:
        case STEP_RELEASE:
                return true;
        default:
                return false;
        }
}

/* ---- small helpers ---------------------------------------------------- */

static uint64_t quota_backoff_sec(const struct config *c) {
        uint64_t b = c ? c->quota_backoff_usec / USEC_PER_SEC : 0;
        return b > 0 ? b : DEFAULT_QUOTA_BACKOFF_SEC;
}

/* ClaimPhoneNumber's answer when someone else took the number between the
 * search and the claim (CLAIMS.md). */
static bool message_not_available(const char *m) {
        return m && (strcasestr(m, "not available") || strcasestr(m, "unavailable") ||
                     strcasestr(m, "no longer available"));
}

static bool startswith(const char *s, const char *prefix) {
        return s && prefix && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The pool of t that an ownership tag value names, if it names one. */
static const struct pool_config *owner_pool(const struct target_config *t, const char *tag) {
        if (!t || !tag)
                return NULL;
        size_t l = strlen(t->name);
        if (strncmp(tag, t->name, l) != 0 || tag[l] != '/')
                return NULL;
        return target_find_pool(t, tag + l + 1);
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

static const char *cn_tag(const struct connect_number *n, const char *key) {
        for (size_t i = 0; i < n->n_tags; i++)
                if (streq_ptr(n->tags[i].key, key))
                        return n->tags[i].value;
        return NULL;
}

static bool phase_live(enum number_phase p) {
        return p == PHASE_INTENT || p == PHASE_IN_PROGRESS || p == PHASE_CLAIMED;
}

/* A FAILED claim is ours to retry until exactly 24 h after its first
 * failed request was sent (CLAIMS.md invariant 3). */
static bool in_window(const struct state_number *n, uint64_t now) {
        return n->first_failure_at == 0 || now < n->first_failure_at + RECONCILE_WINDOW_SEC;
}

bool reconcile_record_held(const struct state_number *n, uint64_t now) {
        return phase_live(n->phase) || (n->phase == PHASE_FAILED && in_window(n, now));
}

static bool record_of_pool(const struct state_number *n, const char *target, const char *pool) {
        return streq_ptr(n->target, target) && n->pool && streq_ptr(n->pool, pool);
}

void reconcile_count_pool(const struct state *s, const char *target, const char *pool, uint64_t now,
                          struct reconcile_pool_count *ret) {
        struct reconcile_pool_count c = {0};
        for (size_t i = 0; i < s->n_numbers; i++) {
                const struct state_number *n = &s->numbers[i];
                if (!record_of_pool(n, target, pool) || !reconcile_record_held(n, now))
                        continue;
                c.held++;
                switch (n->phase) {
                case PHASE_CLAIMED:
                        c.claimed++;
                        c.live++;
                        break;
                case PHASE_IN_PROGRESS:
                        c.in_progress++;
                        c.live++;
                        break;
                case PHASE_INTENT:
                        c.intent++;
                        c.live++;
                        break;
                case PHASE_FAILED:
                        c.failed++;
                        if (n->first_failure_at) {
                                uint64_t d = n->first_failure_at + RECONCILE_WINDOW_SEC;
                                if (!c.earliest_deadline || d < c.earliest_deadline)
                                        c.earliest_deadline = d;
                        }
                        break;
                default:
                        break;
                }
        }
        *ret = c;
}

static void count_target(const struct state *s, const struct target_config *t, uint64_t now, unsigned *ret_held,
                         unsigned *ret_wanted) {
        unsigned held = 0, wanted = 0;
        for (size_t j = 0; t && j < t->n_pools; j++) {
                struct reconcile_pool_count pc;
                reconcile_count_pool(s, t->name, t->pools[j].name, now, &pc);
                held += pc.held;
                wanted += t->pools[j].count;
        }
        *ret_held = held;
        *ret_wanted = wanted;
}

static struct state_target *find_state_target(struct state *s, const char *name) {
        for (size_t i = 0; s && i < s->n_targets; i++)
                if (streq_ptr(s->targets[i].name, name))
                        return &s->targets[i];
        return NULL;
}

static const struct state_target *find_state_target_const(const struct state *s, const char *name) {
        for (size_t i = 0; s && i < s->n_targets; i++)
                if (streq_ptr(s->targets[i].name, name))
                        return &s->targets[i];
        return NULL;
}

/* Paused: an episode is running (its digest is kept until it ends) and its
 * back-off has not passed. */
bool reconcile_target_paused(const struct state_target *st, uint64_t now) {
        return st && st->quota_at && st->quota_digest && now < st->quota_until;
}

static int strv_add_unique(char ***l, const char *s) {
        for (char **i = *l; i && *i; i++)
                if (streq(*i, s))
                        return 0;
        return strv_push(l, s);
}

static void strv_remove_str(char **l, const char *s) {
        if (!l)
                return;
        size_t k = 0;
        for (size_t i = 0; l[i]; i++) {
                if (streq(l[i], s)) {
                        free(l[i]);
                        continue;
                }
                l[k++] = l[i];
        }
        l[k] = NULL;
}

static bool strv_has(char *const *l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

/* Record tags hold interned strings (state.h): only the array is ours. */
static int tags_from_config(struct state *s, const struct config_tag *src, size_t n, struct state_tag **ret,
                            size_t *ret_n) {
        struct state_tag *t = n ? calloc(n, sizeof *t) : NULL;
        if (n && !t)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (state_set(s, &t[i].key, src[i].key ? src[i].key : "") < 0 ||
                    state_set(s, &t[i].value, src[i].value ? src[i].value : "") < 0) {
                        state_tags_free(s, t, n);
                        return -ENOMEM;
                }
        *ret = t;
        *ret_n = n;
        return 0;
}

/* The tags a claim of pool p sends: the ownership tag first, then the
 * pool's own (SPEC "What a pass does" 2). */
static int pool_claim_tags(const struct target_config *t, const struct pool_config *p, struct config_tag **ret,
                           size_t *ret_n) {
        size_t n = p->n_tags + 1;
        struct config_tag *tags = calloc(n, sizeof *tags);
        if (!tags)
                return -ENOMEM;
        tags[0].key = strdup(OWNERSHIP_TAG_KEY);
        tags[0].value = strprintf("%s/%s", t->name, p->name);
        for (size_t i = 0; i < p->n_tags; i++) {
                tags[i + 1].key = strdup(p->tags[i].key);
                tags[i + 1].value = strdup(p->tags[i].value ? p->tags[i].value : "");
        }
        for (size_t i = 0; i < n; i++)
                if (!tags[i].key || !tags[i].value) {
                        for (size_t k = 0; k < n; k++) {
                                free(tags[k].key);
                                free(tags[k].value);
                        }
                        free(tags);
                        return -ENOMEM;
                }
        *ret = tags;
        *ret_n = n;
        return 0;
}

static void config_tags_free(struct config_tag *t, size_t n) {
        if (!t)
                return;
        for (size_t i = 0; i < n; i++) {
                free(t[i].key);
                free(t[i].value);
        }
        free(t);
}

static int record_tag_set(struct state *s, struct state_number *n, const char *key, const char *value) {
        for (size_t i = 0; i < n->n_tags; i++)
                if (streq_ptr(n->tags[i].key, key))
                        return state_set(s, &n->tags[i].value, value ? value : "");
        struct state_tag *t = realloc(n->tags, sizeof *t * (n->n_tags + 1));
        if (!t)
                return -ENOMEM;
        n->tags = t;
        t = &n->tags[n->n_tags];
        *t = (struct state_tag){0};
        if (state_set(s, &t->key, key) < 0 || state_set(s, &t->value, value ? value : "") < 0) {
                (void) state_set(s, &t->key, NULL);
                return -ENOMEM;
        }
        n->n_tags++;
        return 0;
}

static void record_tag_remove(struct state *s, struct state_number *n, const char *key) {
        size_t k = 0;
        for (size_t i = 0; i < n->n_tags; i++)
                if (!streq_ptr(n->tags[i].key, key))
                        n->tags[k++] = n->tags[i];
                else {
                        (void) state_set(s, &n->tags[i].key, NULL);
                        (void) state_set(s, &n->tags[i].value, NULL);
                }
        n->n_tags = k;
}

static void record_clear_claim(struct state *s, struct state_number *n) {
        n->client_token = mfree(n->client_token);
        (void) state_set(s, &n->claim_description, NULL);
        state_tags_free(s, n->claim_tags, n->n_claim_tags);
        n->claim_tags = NULL;
        n->n_claim_tags = 0;
}

static void record_clear_failure(struct state_number *n) {
        n->first_failure_at = 0;
        n->next_retry_at = 0;
        n->failure_message = mfree(n->failure_message);
        n->quota_failure = false;
}

/* ---- events ----------------------------------------------------------- */

void reconcile_events_clear(struct reconcile_events *ev) {
        if (!ev)
                return;
        for (size_t i = 0; i < ev->n; i++) {
                struct reconcile_event *e = &ev->items[i];
                free(e->target);
                free(e->target_arn);
                free(e->pool);
                free(e->phone_number);
                free(e->phone_number_id);
                free(e->message);
        }
        free(ev->items);
        ev->items = NULL;
        ev->n = 0;
}

static struct reconcile_event *event_add(struct reconcile_events *ev, enum reconcile_event_kind kind,
                                         const char *target, const char *target_arn, const char *pool,
                                         const struct state_number *n) {
        if (!ev)
                return NULL;
        struct reconcile_event *items = realloc(ev->items, sizeof *items * (ev->n + 1));
        if (!items)
                return NULL;
        ev->items = items;
        struct reconcile_event *e = &ev->items[ev->n];
        *e = (struct reconcile_event){.kind = kind};
        e->target = strdup_or_null(target);
        e->target_arn = strdup_or_null(target_arn ? target_arn : n ? n->target_arn : NULL);
        e->pool = strdup_or_null(pool ? pool : n ? n->pool : NULL);
        if (n) {
                e->phone_number = strdup_or_null(n->phone_number);
                e->phone_number_id = strdup_or_null(n->id);
        }
        ev->n++;
        /* An event missing a field on OOM is still worth logging. */
        return e;
}

static void event_message(struct reconcile_event *e, const char *fmt, ...) _printf_(2, 3);
static void event_message(struct reconcile_event *e, const char *fmt, ...) {
        if (!e)
                return;
        va_list ap;
        va_start(ap, fmt);
        char *m = strvprintf(fmt, ap);
        va_end(ap);
        free(e->message);
        e->message = m;
}

/* ---- quota episodes ----------------------------------------------------- */

/* A claim was refused for quota: begins an episode unless one is running.
 * The one error record (EVENT_QUOTA) is emitted here, at the refusal, so
 * that even a single --once pass logs it (CLAIMS.md invariant 4). */
static void quota_begin(struct state *s, const struct config *c, const char *target, const char *pool,
                        const char *message, uint64_t now, struct reconcile_events *ev) {
        const struct target_config *t = config_find_target(c, target);
        if (!t)
                return;
        struct state_target *st = state_get_target(s, t->name, t->arn);
        if (!st)
                return;
        if (!reconcile_target_paused(st, now)) {
                char *d = strdup(t->digest);
                if (!d)
                        return;
                free(st->quota_digest);
                st->quota_digest = d;
                st->quota_at = now;
                st->quota_until = now + quota_backoff_sec(c);
                (void) free_and_strdup(&st->quota_message, message);
                (void) free_and_strdup(&st->quota_pool, pool);
                st->quota_logged = false;
                st->quota_last_retry_at = 0;
        }
        if (st->quota_logged || !ev)
                return;
        unsigned held, wanted;
        count_target(s, t, now, &held, &wanted);
        struct reconcile_event *e = event_add(ev, EVENT_QUOTA, t->name, t->arn, pool, NULL);
        if (!e)
                return;
        e->message = strdup_or_null(message);
        e->held = held;
        e->wanted = wanted;
        st->quota_logged = true;
}

/* ---- failures --------------------------------------------------------- */

/* The claim attempt in n FAILED (a FAILED status, or a quota refusal):
 * start or continue its one-day window and schedule the next attempt. */
static void record_failure(struct state *s, const struct config *c, struct state_number *n, const char *message,
                           uint64_t now, struct reconcile_events *ev) {
        const struct target_config *t = config_find_target(c, n->target);
        const struct pool_config *p = target_find_pool(t, n->pool);

        if (!n->first_failure_at)
                n->first_failure_at = n->claim_sent_at ? n->claim_sent_at : now;
        if (n->attempts == 0)
                n->attempts = 1;
        (void) free_and_strdup(&n->failure_message, message);
        n->quota_failure = connect_is_quota_refusal(NULL, message);
        n->phase = PHASE_FAILED;
        n->next_retry_at = reconcile_next_retry_at(n->attempts, n->first_failure_at, now, n->quota_failure,
                                                   quota_backoff_sec(c));
        /* A retry resends the recorded parameters; a record rebuilt from
         * the API has none, so take the pool's. */
        if (n->n_claim_tags == 0 && t && p) {
                struct config_tag *ct = NULL;
                size_t nct = 0;
                if (pool_claim_tags(t, p, &ct, &nct) >= 0) {
                        struct state_tag *stg = NULL;
                        size_t nst = 0;
                        if (tags_from_config(s, ct, nct, &stg, &nst) >= 0) {
                                n->claim_tags = stg;
                                n->n_claim_tags = nst;
                        }
                        config_tags_free(ct, nct);
                }
                if (!n->claim_description)
                        (void) state_set(s, &n->claim_description, p->description);
        }

        struct reconcile_event *e = event_add(ev, EVENT_CLAIM_FAILED, n->target, NULL, n->pool, n);
        if (e) {
                e->message = strdup_or_null(message);
                e->deadline = n->first_failure_at + RECONCILE_WINDOW_SEC;
        }
        if (n->quota_failure) {
                /* quota_begin may add a target (s->targets moves, n does
                 * not); the copies keep the arguments independent of n. */
                _cleanup_(freep) char *target = strdup_or_null(n->target);
                _cleanup_(freep) char *pool = strdup_or_null(n->pool);
                quota_begin(s, c, target, pool, message, now, ev);
        }
}

uint64_t reconcile_next_retry_at(unsigned attempts, uint64_t first_failure_at, uint64_t now, bool quota,
                                 uint64_t quota_backoff_sec_) {
        uint64_t delay;
        if (quota)
                delay = quota_backoff_sec_;
        else if (attempts <= 1)
                delay = 60;
        else if (attempts == 2)
                delay = 300;
        else if (attempts == 3)
                delay = 900;
        else
                delay = 3600;
        uint64_t t = now + delay;
        if (first_failure_at) {
                uint64_t end = first_failure_at + RECONCILE_WINDOW_SEC;
                uint64_t last = end > RETRY_WINDOW_MARGIN_SEC ? end - RETRY_WINDOW_MARGIN_SEC : 0;
                if (t > last)
                        t = last;
        }
        return MAX(t, now);
}

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
         * a double claim into one (CLAIMS.md). */
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
        const struct state_target *st = find_state_target_const(s, target);
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
        if (!record_of_pool(x, target, pool))
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

/* SHA-256 over the sorted phone numbers of the pool's view. */
static int pool_view_digest(const struct state *s, const char *target, const char *pool, char ret[static 65]) {
        size_t n = 0, len = 0;
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
        sha256_hex(buf, off, ret);
        return 0;
}

/* ---- 1. list ---------------------------------------------------------- */

static int idx_phone_cmp(const void *a, const void *b, void *userdata) {
        const struct state *s = userdata;
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        int c = strcmp(s->numbers[x].phone_number, s->numbers[y].phone_number);
        return c != 0 ? c : (x > y) - (x < y);
}

static int input_phone_cmp(const void *a, const void *b, void *userdata) {
        const struct connect_number *in = userdata;
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        int c = strcmp(in[x].phone_number, in[y].phone_number);
        return c != 0 ? c : (x > y) - (x < y);
}

/* Indices of the records of target, sorted by phone number. */
static int target_records(const struct state *s, const char *target, size_t **ret, size_t *ret_n) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_numbers; i++)
                if (streq_ptr(s->numbers[i].target, target))
                        n++;
        size_t *idx = malloc(sizeof *idx * (n + 1));
        if (!idx)
                return -ENOMEM;
        n = 0;
        for (size_t i = 0; i < s->n_numbers; i++)
                if (streq_ptr(s->numbers[i].target, target))
                        idx[n++] = i;
        qsort_r(idx, n, sizeof *idx, idx_phone_cmp, (void *) s);
        *ret = idx;
        *ret_n = n;
        return 0;
}

static int record_update_from_summary(struct state *s, struct state_number *r, const struct target_config *t,
                                      const struct connect_number *in) {
        int k = 0;
        /* A new id for the same phone number is a new claim of it: what we
         * knew about the old one no longer says who owns it. */
        if (in->id && r->id && !streq(in->id, r->id) && (r->phase == PHASE_CLAIMED || r->phase == PHASE_FOREIGN))
                r->phase = PHASE_UNKNOWN;
        if (in->id && k >= 0 && !streq_ptr(r->id, in->id))
                k = free_and_strdup(&r->id, in->id);
        if (k >= 0)
                k = state_set(s, &r->target_arn, t->arn);
        if (in->arn && k >= 0) /* after target_arn and id, which it may derive from */
                k = state_number_set_arn(r, in->arn);
        if (in->country && k >= 0)
                k = state_set(s, &r->country, in->country);
        if (in->type && k >= 0)
                k = state_set(s, &r->type, in->type);
        if (k >= 0)
                k = state_set(s, &r->description, in->description);
        r->listed = true;
        /* A number of ours that had vanished, or had been moved elsewhere,
         * is back on the target: find out again. */
        if (r->phase == PHASE_GONE || r->phase == PHASE_MOVED)
                r->phase = PHASE_UNKNOWN;
        return k;
}

int reconcile_ingest_list(struct state *s, const struct config *c, const char *target,
                          const struct connect_number *numbers, size_t n, uint64_t now) {
        (void) now;
        const struct target_config *t = config_find_target(c, target);
        if (!s || !t)
                return -ENOENT;
        if (!state_get_target(s, t->name, t->arn))
                return -ENOMEM;

        _cleanup_(freep) size_t *rec = NULL;
        size_t n_rec = 0;
        int r = target_records(s, t->name, &rec, &n_rec);
        if (r < 0)
                return r;
        _cleanup_(freep) size_t *in = malloc(sizeof *in * (n + 1));
        _cleanup_(freep) bool *seen = calloc(s->n_numbers + 1, sizeof *seen);
        _cleanup_(freep) size_t *fresh = malloc(sizeof *fresh * (n + 1));
        if (!in || !seen || !fresh)
                return -ENOMEM;
        size_t n_in = 0, n_fresh = 0, n_before = s->n_numbers;
        /* An entry that names another target is not on this one, whatever
         * the filter asked for: it is not taken as listed here. */
        for (size_t i = 0; i < n; i++)
                if (!isempty(numbers[i].phone_number) &&
                    (!numbers[i].target_arn || streq(numbers[i].target_arn, t->arn)))
                        in[n_in++] = i;
        qsort_r(in, n_in, sizeof *in, input_phone_cmp, (void *) numbers);

        /* Merge the two sorted sequences: O(n log n) for lists of
         * thousands of numbers. */
        size_t j = 0;
        for (size_t i = 0; i < n_in; i++) {
                const struct connect_number *x = &numbers[in[i]];
                if (i > 0 && streq(x->phone_number, numbers[in[i - 1]].phone_number))
                        continue; /* listed twice (pages overlapping): once is enough */
                while (j < n_rec && strcmp(s->numbers[rec[j]].phone_number, x->phone_number) < 0)
                        j++;
                if (j < n_rec && streq(s->numbers[rec[j]].phone_number, x->phone_number)) {
                        seen[rec[j]] = true;
                        r = record_update_from_summary(s, &s->numbers[rec[j]], t, x);
                        if (r < 0)
                                return r;
                } else
                        fresh[n_fresh++] = in[i];
        }
        for (size_t i = 0; i < n_fresh; i++) {
                const struct connect_number *x = &numbers[fresh[i]];
                struct state_number *nr = state_add_number(s, t->name, x->phone_number);
                if (!nr)
                        return -ENOMEM;
                nr->phase = PHASE_UNKNOWN;
                r = record_update_from_summary(s, nr, t, x);
                if (r < 0)
                        return r;
        }

        /* Records the list no longer shows. Numbers we never owned are
         * simply forgotten; ours stay (describe tells what happened), and
         * records of a target name no longer configured but with this ARN
         * are now tracked under this name. */
        for (size_t i = n_before; i-- > 0;) {
                struct state_number *x = &s->numbers[i];
                if (streq_ptr(x->target, t->name)) {
                        if (seen[i])
                                continue;
                        x->listed = false;
                        if (x->phase == PHASE_UNKNOWN || x->phase == PHASE_FOREIGN)
                                state_remove_number(s, x);
                } else if (!config_find_target(c, x->target) && streq_ptr(x->target_arn, t->arn))
                        state_remove_number(s, x);
        }
        struct state_target *st = find_state_target(s, t->name);
        if (st)
                st->listed_ok = true;
        return 0;
}

void reconcile_list_failed(struct state *s, const char *target) {
        struct state_target *st = find_state_target(s, target);
        if (!st)
                st = state_get_target(s, target, NULL);
        if (st)
                st->listed_ok = false;
}

/* ---- 2. describe ------------------------------------------------------ */

/* Why (and whether) this pass must describe record n of target t; audit
 * candidates are answered separately. */
static bool describe_needed(const struct target_config *t, const struct state_number *n, uint64_t now) {
        if (!n->id)
                return false;
        switch (n->phase) {
        case PHASE_UNKNOWN:
        case PHASE_IN_PROGRESS:
                return true;
        case PHASE_INTENT:
                /* Too old to replay: the list gave the id, describe settles it. */
                return n->listed && now >= n->intent_at + RECONCILE_INTENT_REPLAY_SEC;
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
                return n->owner_tag && owner_pool(t, n->owner_tag);
        default:
                return false;
        }
}

static bool audit_due(const struct target_config *t, const struct state_number *n, uint64_t now) {
        return n->id && n->phase == PHASE_CLAIMED && target_find_pool(t, n->pool) &&
               n->last_described_at + RECONCILE_AUDIT_SEC <= now;
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
                const struct state_target *st = find_state_target_const(s, t->name);
                if (!st || !st->listed_ok)
                        continue;
                _cleanup_(freep) size_t *idx = NULL;
                size_t n_idx = 0;
                int r = target_records(s, t->name, &idx, &n_idx);
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

static int record_set_tags(struct state *s, struct state_number *r, const struct connect_number *n) {
        struct state_tag *t = n->n_tags ? calloc(n->n_tags, sizeof *t) : NULL;
        if (n->n_tags && !t)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_tags; i++)
                if (state_set(s, &t[i].key, n->tags[i].key ? n->tags[i].key : "") < 0 ||
                    state_set(s, &t[i].value, n->tags[i].value ? n->tags[i].value : "") < 0) {
                        state_tags_free(s, t, n->n_tags);
                        return -ENOMEM;
                }
        state_tags_free(s, r->tags, r->n_tags);
        r->tags = t;
        r->n_tags = n->n_tags;
        return 0;
}

/* The pool's tag keys that the number carries are ours to remove if the
 * pool drops them later. */
static void record_note_pool_keys(struct state_number *r, const struct pool_config *p) {
        for (size_t i = 0; p && i < p->n_tags; i++)
                if (state_number_tag(r, p->tags[i].key))
                        (void) strv_add_unique(&r->tag_keys_applied, p->tags[i].key);
        for (size_t i = 0; i < r->n_claim_tags; i++)
                if (!streq_ptr(r->claim_tags[i].key, OWNERSHIP_TAG_KEY) && state_number_tag(r, r->claim_tags[i].key))
                        (void) strv_add_unique(&r->tag_keys_applied, r->claim_tags[i].key);
}

static void record_claimed(struct state *s, const struct target_config *t, const struct pool_config *p,
                           struct state_number *r, enum number_phase old, uint64_t now,
                           struct reconcile_events *ev) {
        bool transition = old == PHASE_INTENT || old == PHASE_IN_PROGRESS || old == PHASE_FAILED ||
                          old == PHASE_GIVEN_UP;
        r->phase = PHASE_CLAIMED;
        if (transition) {
                r->claimed_at = r->claim_sent_at ? r->claim_sent_at : now;
                struct state_target *st = t ? state_get_target(s, t->name, t->arn) : NULL;
                if (st)
                        (void) state_churn_add(st, r->claimed_at, false, r->phone_number);
                (void) event_add(ev, EVENT_CLAIMED, r->target, t ? t->arn : NULL, r->pool, r);
        }
        record_note_pool_keys(r, p);
        record_clear_failure(r);
        record_clear_claim(s, r);
        if (p)
                (void) state_set(s, &r->pool_digest, p->digest);
}

/* Connect shows record r of target t on another target (n->target_arn).
 * It is not the pool's any more: one of ours (claimed for a pool of t,
 * or tagged for one) becomes PHASE_MOVED, reported once with where it
 * went and then left alone (never counted, tagged, untagged, described
 * or released for the pool, which claims a replacement); a number that
 * was never ours is simply forgotten. Moves made by the service itself
 * are the only ones it expects, and it makes none of this kind. */
static int record_moved_away(struct state *s, const struct target_config *t, struct state_number *r,
                             const struct connect_number *n, uint64_t now, struct reconcile_events *ev) {
        const struct pool_config *tagged = owner_pool(t, cn_tag(n, OWNERSHIP_TAG_KEY));
        const char *pool = r->pool ? r->pool : tagged ? tagged->name : NULL;
        if (!pool) {
                state_remove_number(s, r);
                return 0;
        }
        enum number_phase old = r->phase;
        int k = state_set(s, &r->pool, pool);
        if (k >= 0 && n->id)
                k = free_and_strdup(&r->id, n->id);
        if (k >= 0)
                k = state_set(s, &r->target_arn, n->target_arn);
        if (k >= 0 && n->arn)
                k = state_number_set_arn(r, n->arn);
        if (k >= 0)
                k = record_set_tags(s, r, n);
        if (k < 0)
                return k;
        r->phase = PHASE_MOVED;
        r->listed = false;
        r->last_described_at = now;
        record_clear_claim(s, r);
        record_clear_failure(r);
        if (old != PHASE_MOVED) {
                struct reconcile_event *e = event_add(ev, EVENT_MOVED_AWAY, r->target, t->arn, pool, r);
                event_message(e, "%s", n->target_arn);
        }
        return 0;
}

int reconcile_ingest_describe(struct state *s, const struct config *c, const char *target,
                              const struct connect_number *n, uint64_t now, struct reconcile_events *ev) {
        if (!s || !n || !target || (isempty(n->id) && isempty(n->phone_number)))
                return -EINVAL;
        /* The record of this target: another target's record may share the
         * id (a number moved between two targets of the YAML). */
        struct state_number *r = n->phone_number ? state_find_number(s, target, n->phone_number) : NULL;
        if (!r && n->id) {
                r = state_find_number_by_id(s, n->id);
                if (r && !streq_ptr(r->target, target))
                        r = NULL;
        }
        if (!r) {
                if (isempty(n->phone_number))
                        return -EINVAL;
                r = state_add_number(s, target, n->phone_number);
                if (!r)
                        return -ENOMEM;
        }
        const struct target_config *t = config_find_target(c, r->target);
        if (t && n->target_arn && !streq(n->target_arn, t->arn))
                return record_moved_away(s, t, r, n, now, ev);
        int k = 0;
        /* Connect shows it on its target: that is as good as the list. */
        if (t && n->target_arn)
                r->listed = true;
        if (n->id)
                k = free_and_strdup(&r->id, n->id);
        if (k >= 0 && (n->target_arn || t))
                k = state_set(s, &r->target_arn, n->target_arn ? n->target_arn : t->arn);
        if (k >= 0 && n->arn) /* after target_arn and id, which it may derive from */
                k = state_number_set_arn(r, n->arn);
        if (k >= 0 && n->country)
                k = state_set(s, &r->country, n->country);
        if (k >= 0 && n->type)
                k = state_set(s, &r->type, n->type);
        if (k >= 0)
                k = state_set(s, &r->description, n->description);
        if (k >= 0)
                k = record_set_tags(s, r, n);
        if (k < 0)
                return k;
        r->last_described_at = now;

        /* Ownership is the tag (SPEC "Ownership"). A claim of ours whose
         * tags are not visible yet (Connect applies metadata a little
         * later) stays ours on the strength of our own records. */
        const char *tag = cn_tag(n, OWNERSHIP_TAG_KEY);
        const struct pool_config *p = owner_pool(t, tag);
        enum number_phase old = r->phase;
        if (tag && !p) {
                k = state_set(s, &r->owner_tag, tag);
                (void) state_set(s, &r->pool, NULL);
                r->phase = PHASE_FOREIGN;
                return k;
        }
        if (!tag) {
                bool ours_by_record = r->pool && target_find_pool(t, r->pool) &&
                                      (old == PHASE_INTENT || old == PHASE_IN_PROGRESS || old == PHASE_FAILED ||
                                       (old == PHASE_CLAIMED && !r->owner_tag));
                if (!ours_by_record) {
                        (void) state_set(s, &r->owner_tag, NULL);
                        (void) state_set(s, &r->pool, NULL);
                        r->adopted = false;
                        r->phase = PHASE_FOREIGN;
                        return 0;
                }
                p = target_find_pool(t, r->pool);
        } else {
                k = state_set(s, &r->owner_tag, tag);
                if (k >= 0)
                        k = state_set(s, &r->pool, p->name);
                if (k < 0)
                        return k;
        }

        switch (n->status) {
        case CONNECT_STATUS_CLAIMED:
                record_claimed(s, t, p, r, old, now, ev);
                break;
        case CONNECT_STATUS_FAILED:
                if (old == PHASE_CLAIMED || old == PHASE_GIVEN_UP || old == PHASE_RELEASED)
                        break; /* a failed metadata update, or a claim we are done with */
                if (old == PHASE_FAILED && !(r->claim_sent_at && r->claim_sent_at >= r->next_retry_at))
                        break; /* the failure we already know */
                record_failure(s, c, r, n->status_message, now, ev);
                break;
        case CONNECT_STATUS_IN_PROGRESS:
        default:
                /* IN_PROGRESS on a CLAIMED number is a metadata update
                 * running; on a released one, the release. */
                if (old == PHASE_CLAIMED || old == PHASE_RELEASED)
                        break;
                r->phase = PHASE_IN_PROGRESS;
                break;
        }
        return 0;
}

int reconcile_ingest_not_found(struct state *s, const char *target, const char *phone_number_id, uint64_t now,
                               struct reconcile_events *ev) {
        (void) target;
        struct state_number *r = state_find_number_by_id(s, phone_number_id);
        if (!r)
                return 0;
        switch (r->phase) {
        case PHASE_UNKNOWN:
        case PHASE_FOREIGN:
                state_remove_number(s, r);
                return 0;
        case PHASE_FAILED:
                /* The number went back to inventory; the window is ours
                 * still, and a retry claims it by phone number. Stop
                 * describing an id that is gone. */
                r->id = mfree(r->id);
                return 0;
        case PHASE_IN_PROGRESS:
                /* A claim just answered may not be describable yet. */
                if (r->claim_sent_at && now < r->claim_sent_at + RECONCILE_INTENT_REPLAY_SEC)
                        return 0;
                FALLTHROUGH;
        case PHASE_CLAIMED:
        case PHASE_INTENT: {
                r->phase = PHASE_GONE;
                r->listed = false;
                struct reconcile_event *e = event_add(ev, EVENT_NUMBER_GONE, r->target, NULL, r->pool, r);
                event_message(e, "DescribePhoneNumber no longer finds %s", phone_number_id);
                return 0;
        }
        default:
                return 0;
        }
}

/* ---- 3. the plan ------------------------------------------------------ */

struct planner {
        const struct config *c;
        struct state *s;
        uint64_t now;
        struct plan *p;
        size_t steps_cap;
        struct reconcile_events *ev;
        int r; /* first error; the plan is dropped when set */
};

struct plan *plan_free(struct plan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_steps; i++) {
                struct plan_step *s = &p->steps[i];
                free(s->target);
                free(s->target_arn);
                free(s->region);
                free(s->pool);
                free(s->phone_number);
                free(s->phone_number_id);
                free(s->phone_number_arn);
                free(s->description);
                config_tags_free(s->tags, s->n_tags);
                strv_free(s->keys);
                free(s->contact_flow);
                free(s->instance_id);
                free(s->country);
                free(s->type);
                free(s->prefix);
                free(s->detail);
        }
        free(p->steps);
        for (size_t i = 0; i < p->n_pools; i++) {
                free(p->pools[i].target);
                free(p->pools[i].pool);
        }
        free(p->pools);
        free(p);
        return NULL;
}

size_t plan_count_changes(const struct plan *p) {
        size_t n = 0;
        for (size_t i = 0; p && i < p->n_steps; i++)
                if (step_action_is_change(p->steps[i].action))
                        n++;
        return n;
}

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
        if (s && pool_claim_tags(t, p, &s->tags, &s->n_tags) < 0)
                pl->r = -ENOMEM;
}

static void pl_event(struct planner *pl, enum reconcile_event_kind kind, const struct target_config *t,
                     const char *pool, const struct state_number *n, const char *fmt, ...) _printf_(6, 7);
static void pl_event(struct planner *pl, enum reconcile_event_kind kind, const struct target_config *t,
                     const char *pool, const struct state_number *n, const char *fmt, ...) {
        if (!pl->ev)
                return;
        struct reconcile_event *e = event_add(pl->ev, kind, t->name, t->arn, pool, n);
        if (!e) {
                pl->r = -ENOMEM;
                return;
        }
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(&e->message, fmt, ap) < 0)
                        e->message = NULL;
                va_end(ap);
        }
}

static const char *ts(uint64_t sec, char buf[static 32]) {
        return format_timestamp_sec(sec, buf, 32);
}

static void quota_maybe_clear(struct planner *pl, const struct target_config *t, struct state_target *st) {
        if (!st->quota_at || !st->quota_digest)
                return;
        const char *why;
        if (!streq(st->quota_digest, t->digest)) {
                why = "its part of the configuration changed";
                st->quota_until = MIN(st->quota_until, pl->now);
        } else if (pl->now >= st->quota_until)
                why = "the quota back-off has passed";
        else
                return;
        st->quota_digest = mfree(st->quota_digest);
        st->quota_logged = false;
        pl_event(pl, EVENT_QUOTA_CLEARED, t, st->quota_pool, NULL, "%s", why);
}

/* Intents too old to replay and not in the list: the claim never
 * happened, or failed for good. */
static void drop_old_intents(struct planner *pl, const struct target_config *t) {
        for (size_t i = pl->s->n_numbers; i-- > 0;) {
                struct state_number *n = &pl->s->numbers[i];
                if (n->phase != PHASE_INTENT || !streq_ptr(n->target, t->name) || n->listed ||
                    pl->now < n->intent_at + RECONCILE_INTENT_REPLAY_SEC)
                        continue;
                if (n->first_failure_at) {
                        n->phase = PHASE_FAILED;
                        n->client_token = mfree(n->client_token);
                        continue;
                }
                char b[32];
                pl_event(pl, EVENT_NOTE, t, n->pool, n,
                         "Claim intent for %s (%s/%s, written %s) is older than an hour and the number is not "
                         "listed: the claim did not happen; dropping it",
                         n->phone_number, t->name, n->pool ? n->pool : "-", ts(n->intent_at, b));
                state_remove_number(pl->s, n);
        }
}

struct target_ctx {
        const struct target_config *t;
        struct state_target *st;
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

/* Adoption (SPEC "Ownership"): untagged matching numbers, ascending phone
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
                if (!p->adopt)
                        continue;
                struct reconcile_pool_count pc;
                reconcile_count_pool(pl->s, t->name, p->name, pl->now, &pc);
                unsigned need = p->count > pc.held ? p->count - pc.held : 0;
                for (size_t k = 0; k < tc->n_idx; k++) {
                        const struct state_number *n = &pl->s->numbers[tc->idx[k]];
                        if (n->phase != PHASE_FOREIGN || n->owner_tag || !n->listed || tc->adopt[k] >= 0 ||
                            !number_matches_pool(n, p))
                                continue;
                        if (need > 0) {
                                tc->adopt[k] = (int) j;
                                need--;
                        } else if (tc->unmanaged[k] < 0)
                                tc->unmanaged[k] = (int) j;
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
                        if (pool_claim_tags(t, p, &all, &n_all) < 0) {
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
                        config_tags_free(all, n_fix);

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
        if (p->contact_flow && t->kind == TARGET_INSTANCE && n->id && !streq_ptr(n->flow_applied, p->contact_flow)) {
                struct plan_step *s = pl_step(pl, STEP_ASSOCIATE_FLOW, t, p->name);
                pl_number(pl, s, n);
                if (s) {
                        s->contact_flow = pl_dup(pl, p->contact_flow);
                        s->instance_id = pl_dup(pl, t->resource_id);
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
                        const struct reconcile_pool_count *pc) {
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
                        if (n->phase == PHASE_CLAIMED && record_of_pool(n, t->name, p->name) && n->id &&
                            n->listed && streq_ptr(n->target_arn, t->arn) &&
                            streq_ptr(number_tag(n, OWNERSHIP_TAG_KEY), owner) && !number_mismatches_pool(n, p))
                                cand[n_cand++] = tc->idx[k];
                }
                qsort_r(cand, n_cand, sizeof *cand, release_cmp, pl->s);
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

static void plan_pool(struct planner *pl, struct target_ctx *tc, size_t j) {
        const struct target_config *t = tc->t;
        const struct pool_config *p = &t->pools[j];
        struct state *s = pl->s;
        uint64_t now = pl->now;
        struct reconcile_pool_count pc;
        char b[32];

        reconcile_count_pool(s, t->name, p->name, now, &pc);
        struct pool_summary *sum = &pl->p->pools[pl->p->n_pools++];
        *sum = (struct pool_summary){.wanted = p->count, .held = pc.held, .claimed = pc.claimed,
                                     .in_progress = pc.in_progress + pc.intent, .failed = pc.failed,
                                     .earliest_deadline = pc.earliest_deadline};
        sum->target = pl_dup(pl, t->name);
        sum->pool = pl_dup(pl, p->name);

        char view[65];
        if (pool_view_digest(s, t->name, p->name, view) < 0) {
                pl->r = -ENOMEM;
                return;
        }

        /* Unresolved intents: the same request again, same token. */
        for (size_t k = 0; k < tc->n_idx; k++) {
                const struct state_number *n = &s->numbers[tc->idx[k]];
                if (n->phase != PHASE_INTENT || !record_of_pool(n, t->name, p->name) ||
                    now >= n->intent_at + RECONCILE_INTENT_REPLAY_SEC)
                        continue;
                struct plan_step *st = pl_step(pl, STEP_REPLAY_CLAIM, t, p->name);
                pl_number(pl, st, n);
                if (!st)
                        continue;
                st->slot = n->slot;
                snprintf(st->client_token, sizeof st->client_token, "%s", n->client_token ? n->client_token : "");
                memcpy(st->view_digest, view, sizeof view);
                st->description = pl_dup(pl, n->claim_description);
                if (n->n_claim_tags) {
                        st->tags = calloc(n->n_claim_tags, sizeof *st->tags);
                        if (!st->tags)
                                pl->r = -ENOMEM;
                        else {
                                st->n_tags = n->n_claim_tags;
                                for (size_t i = 0; i < n->n_claim_tags; i++) {
                                        st->tags[i].key = pl_dup(pl, n->claim_tags[i].key);
                                        st->tags[i].value = pl_dup(pl, n->claim_tags[i].value);
                                }
                        }
                }
                st->country = pl_dup(pl, n->country ? n->country : p->country);
                st->type = pl_dup(pl, n->type ? n->type : p->type);
                st->prefix = pl_dup(pl, p->prefix);
                pl_detail(pl, st, "claim of %s sent %s has no recorded answer: resend it with its token",
                          n->phone_number, ts(n->claim_sent_at ? n->claim_sent_at : n->intent_at, b));
        }

        /* Windows that ended: give up (the state changes here). */
        for (size_t k = 0; k < tc->n_idx; k++) {
                struct state_number *n = &s->numbers[tc->idx[k]];
                if (n->phase != PHASE_FAILED || !record_of_pool(n, t->name, p->name) || in_window(n, now))
                        continue;
                n->phase = PHASE_GIVEN_UP;
                n->next_retry_at = 0;
                struct plan_step *st = pl_step(pl, STEP_GIVE_UP, t, p->name);
                pl_number(pl, st, n);
                pl_detail(pl, st, "retry window of %s ended %s", n->phone_number,
                          ts(n->first_failure_at + RECONCILE_WINDOW_SEC, b));
                pl_event(pl, EVENT_WINDOW_EXPIRED, t, p->name, n, n->failure_message ? "%s" : NULL,
                         n->failure_message);
        }

        /* Failed claims inside their window, when due and still needed. */
        unsigned live = pc.live;
        for (size_t k = 0; k < tc->n_idx; k++) {
                const struct state_number *n = &s->numbers[tc->idx[k]];
                if (n->phase != PHASE_FAILED || !record_of_pool(n, t->name, p->name) || !in_window(n, now) ||
                    n->next_retry_at > now)
                        continue;
                if (live >= p->count)
                        continue; /* the pool no longer needs it; it expires */
                if (tc->paused) {
                        if (!n->quota_failure || !tc->quota_retry_ok || tc->quota_retry_used)
                                continue;
                        tc->quota_retry_used = true;
                }
                struct plan_step *st = pl_step(pl, STEP_RETRY_CLAIM, t, p->name);
                pl_number(pl, st, n);
                pl_pool_tags(pl, st, t, p);
                if (st) {
                        _cleanup_(freep) char *v = strprintf("retry:%s", n->phone_number);
                        if (!v)
                                pl->r = -ENOMEM;
                        reconcile_claim_token(t->name, p->name, v, 0, n->attempts, st->client_token);
                        st->slot = n->slot;
                        st->description = pl_dup(pl, p->description);
                        st->country = pl_dup(pl, p->country);
                        st->type = pl_dup(pl, p->type);
                        st->prefix = pl_dup(pl, p->prefix);
                }
                pl_detail(pl, st, "attempt %u on %s, inside its window until %s", n->attempts + 1, n->phone_number,
                          ts(n->first_failure_at + RECONCILE_WINDOW_SEC, b));
                live++;
        }

        /* Adoptions count toward held before claims are planned. */
        unsigned adopted = 0;
        for (size_t k = 0; k < tc->n_idx; k++) {
                if (tc->adopt[k] != (int) j)
                        continue;
                const struct state_number *n = &s->numbers[tc->idx[k]];
                struct plan_step *st = pl_step(pl, STEP_ADOPT, t, p->name);
                pl_number(pl, st, n);
                pl_pool_tags(pl, st, t, p);
                pl_detail(pl, st, "untagged %s matches the pool (adopt: true)", n->phone_number);
                adopted++;
        }

        unsigned held = pc.held + adopted;
        if (held < p->count && tc->unknown == 0) {
                if (tc->paused) {
                        struct plan_step *st = pl_step(pl, STEP_REPORT_QUOTA, t, p->name);
                        pl_detail(pl, st,
                                  "%u more wanted, but claims for %s are paused after a phone-number quota refusal "
                                  "until %s or until its configuration changes",
                                  p->count - held, t->name, ts(tc->st->quota_until, b));
                } else
                        for (unsigned slot = held; slot < p->count; slot++) {
                                struct plan_step *st = pl_step(pl, STEP_CLAIM, t, p->name);
                                if (!st)
                                        break;
                                st->slot = slot;
                                memcpy(st->view_digest, view, sizeof view);
                                unsigned attempt = 0;
                                reconcile_fresh_claim_token(s, t->name, p->name, view, slot, &attempt,
                                                            st->client_token);
                                st->description = pl_dup(pl, p->description);
                                pl_pool_tags(pl, st, t, p);
                                st->country = pl_dup(pl, p->country);
                                st->type = pl_dup(pl, p->type);
                                st->prefix = pl_dup(pl, p->prefix);
                                pl_detail(pl, st, "slot %u of %u: %s %s%s%s", slot + 1, p->count, p->country,
                                          p->type, p->prefix ? " " : "", p->prefix ? p->prefix : "");
                        }
        }

        for (size_t k = 0; k < tc->n_idx; k++) {
                const struct state_number *n = &s->numbers[tc->idx[k]];
                /* Drift is fixed only on a number Connect shows on the
                 * target this pass: a belief is never acted on. */
                if (n->phase == PHASE_CLAIMED && n->listed && record_of_pool(n, t->name, p->name))
                        plan_drift(pl, tc, p, n);
        }

        plan_excess(pl, tc, p, &pc);

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
                struct state_number *n = &pl->s->numbers[tc->idx[k]];
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
                if (n->phase == PHASE_FOREIGN && n->owner_tag) {
                        if (owner_pool(t, n->owner_tag))
                                continue; /* its pool is back: describe settles it */
                        const struct target_config *home = tag_target(pl->c, n->owner_tag);
                        if (home && owner_pool(home, n->owner_tag)) {
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
                else if (n->phase == PHASE_FAILED && n->pool && !target_find_pool(t, n->pool) && !in_window(n, pl->now)) {
                        n->phase = PHASE_GIVEN_UP;
                        struct plan_step *st = pl_step(pl, STEP_GIVE_UP, t, n->pool);
                        pl_number(pl, st, n);
                        pl_detail(pl, st, "retry window of %s ended %s (its pool is no longer configured)",
                                  n->phone_number, ts(n->first_failure_at + RECONCILE_WINDOW_SEC, b));
                        pl_event(pl, EVENT_WINDOW_EXPIRED, t, n->pool, n, NULL);
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
        struct state_target *st = state_get_target(pl->s, t->name, t->arn);
        if (!st) {
                pl->r = -ENOMEM;
                return;
        }
        quota_maybe_clear(pl, t, st);
        if (reconcile_target_paused(st, pl->now) && !st->quota_logged && pl->ev) {
                /* An episode whose one record was never written (its
                 * refusal was folded in without events): write it now. */
                unsigned held, wanted;
                count_target(pl->s, t, pl->now, &held, &wanted);
                pl_event(pl, EVENT_QUOTA, t, st->quota_pool, NULL, "%s",
                         st->quota_message ? st->quota_message : "phone-number quota reached");
                if (pl->r >= 0) {
                        pl->ev->items[pl->ev->n - 1].held = held;
                        pl->ev->items[pl->ev->n - 1].wanted = wanted;
                        st->quota_logged = true;
                }
        }
        if (!st->listed_ok) {
                struct plan_step *s = pl_step(pl, STEP_REPORT_UNKNOWN, t, NULL);
                pl_detail(pl, s, "the numbers of %s could not be listed: no claim or release planned", t->name);
                for (size_t j = 0; j < t->n_pools; j++) {
                        struct reconcile_pool_count pc;
                        reconcile_count_pool(pl->s, t->name, t->pools[j].name, pl->now, &pc);
                        struct pool_summary *sum = &pl->p->pools[pl->p->n_pools++];
                        *sum = (struct pool_summary){.wanted = t->pools[j].count, .held = pc.held,
                                                     .claimed = pc.claimed,
                                                     .in_progress = pc.in_progress + pc.intent,
                                                     .failed = pc.failed,
                                                     .earliest_deadline = pc.earliest_deadline};
                        sum->target = pl_dup(pl, t->name);
                        sum->pool = pl_dup(pl, t->pools[j].name);
                }
                return;
        }
        drop_old_intents(pl, t);

        struct target_ctx tc = {.t = t, .st = st};
        if (target_records(pl->s, t->name, &tc.idx, &tc.n_idx) < 0) {
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
                if (phase_live(n->phase) || n->phase == PHASE_FOREIGN)
                        tc.numbers++;
        }
        tc.paused = reconcile_target_paused(st, pl->now);
        uint64_t backoff = quota_backoff_sec(pl->c);
        tc.quota_retry_ok = tc.paused && (st->quota_last_retry_at < st->quota_at ||
                                          pl->now >= st->quota_last_retry_at + backoff);
        uint64_t oldest = pl->now > RECONCILE_CHURN_WINDOW_SEC ? pl->now - RECONCILE_CHURN_WINDOW_SEC : 0;
        for (size_t i = 0; i < st->n_churn; i++)
                if (st->churn[i].at >= oldest)
                        tc.churn++;
        tc.all_pools_zero = true;
        for (size_t j = 0; j < t->n_pools; j++)
                if (t->pools[j].count > 0)
                        tc.all_pools_zero = false;

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
                if (config_find_target(pl->c, x->target))
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

int reconcile_plan(const struct config *c, struct state *s, uint64_t now, struct plan **ret,
                   struct reconcile_events *ev) {
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

        struct planner pl = {.c = c, .s = s, .now = now, .p = p, .ev = ev};
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
                if (n->phase != PHASE_FAILED || !target_find_pool(t, n->pool) || !in_window(n, now))
                        continue;
                if (n->next_retry_at > now)
                        wake = earliest(wake, n->next_retry_at);
                if (n->first_failure_at)
                        wake = earliest(wake, n->first_failure_at + RECONCILE_WINDOW_SEC);
        }
        for (size_t i = 0; i < c->n_targets; i++) {
                const struct state_target *st = find_state_target_const(s, c->targets[i].name);
                if (reconcile_target_paused(st, now))
                        wake = earliest(wake, st->quota_until);
        }
        p->next_wakeup_at = wake;
        *ret = TAKE_PTR(p);
        return 0;
}

/* ---- outcomes --------------------------------------------------------- */

struct state_number *reconcile_claim_intent(struct state *s, const struct plan_step *step, const char *phone_number,
                                            const char *client_token, uint64_t now) {
        if (!s || !step || !step->target || isempty(phone_number) || isempty(client_token)) {
                errno = EINVAL;
                return NULL;
        }
        struct state_number *n = state_find_number(s, step->target, phone_number);
        bool retry = false;
        if (n) {
                switch (n->phase) {
                case PHASE_UNKNOWN:
                case PHASE_GONE:
                        break;
                case PHASE_FAILED:
                        if (step->action != STEP_RETRY_CLAIM) {
                                errno = EEXIST;
                                return NULL;
                        }
                        retry = true;
                        break;
                case PHASE_INTENT:
                        if (step->action == STEP_REPLAY_CLAIM && streq_ptr(n->client_token, client_token))
                                return n;
                        FALLTHROUGH;
                default:
                        /* Never a second claim on a number we track
                         * (given up, released, someone else's...). */
                        errno = EEXIST;
                        return NULL;
                }
        }

        /* Build everything first: the record changes only as a whole. The
         * strings are held (state_set) until the record takes them. */
        _cleanup_(freep) char *token = strdup(client_token);
        enum { DESC, POOL, TARN, COUNTRY, TYPE, _HELD };
        const char *const src[_HELD] = {step->description, step->pool, step->target_arn, step->country, step->type};
        const char *v[_HELD] = {0};
        bool ok = token != NULL;
        for (size_t i = 0; ok && i < _HELD; i++)
                ok = state_set(s, &v[i], src[i]) >= 0;
        struct state_tag *tags = NULL;
        size_t n_tags = 0;
        if (ok)
                ok = tags_from_config(s, step->tags, step->n_tags, &tags, &n_tags) >= 0;
        if (ok && !n) {
                n = state_add_number(s, step->target, phone_number);
                ok = n != NULL;
        }
        if (!ok) {
                state_tags_free(s, tags, n_tags);
                for (size_t i = 0; i < _HELD; i++)
                        (void) state_set(s, &v[i], NULL);
                errno = ENOMEM;
                return NULL;
        }
        if (!retry) {
                /* A fresh claim: whatever we knew of an earlier life of the
                 * number says nothing about this one. */
                n->id = mfree(n->id);
                n->arn = mfree(n->arn);
                (void) state_set(s, &n->owner_tag, NULL);
                (void) state_set(s, &n->description, NULL);
                state_tags_free(s, n->tags, n->n_tags);
                n->tags = NULL;
                n->n_tags = 0;
                record_clear_failure(n);
                (void) state_set(s, &n->flow_applied, NULL);
                n->tag_keys_applied = strv_free(n->tag_keys_applied);
                (void) state_set(s, &n->pool_digest, NULL);
                n->last_described_at = 0;
                n->claimed_at = 0;
                n->adopted = false;
                n->attempts = 0;
        }
        record_clear_claim(s, n);
        n->client_token = TAKE_PTR(token);
        n->claim_tags = tags;
        n->n_claim_tags = n_tags;
        /* Taking a held string only counts a reference: cannot fail. */
        (void) state_set(s, &n->claim_description, v[DESC]);
        const char **const dst[_HELD] = {[POOL] = &n->pool, [TARN] = &n->target_arn, [COUNTRY] = &n->country,
                                         [TYPE] = &n->type};
        for (size_t i = 0; i < _HELD; i++) {
                if (v[i] && dst[i])
                        (void) state_set(s, dst[i], v[i]);
                (void) state_set(s, &v[i], NULL);
        }
        n->phase = PHASE_INTENT;
        n->slot = step->slot;
        n->intent_at = now;
        n->claim_sent_at = now;
        n->attempts++;
        if (retry) {
                struct state_target *st = find_state_target(s, step->target);
                if (reconcile_target_paused(st, now))
                        st->quota_last_retry_at = now;
        }
        return n;
}

void reconcile_claim_answered(struct state *s, struct state_number *n, const char *id, const char *arn,
                              uint64_t now) {
        (void) s;
        (void) now;
        if (!n)
                return;
        /* Without the id nothing can follow the claim: then it stays an
         * intent, which the next pass replays with its token. */
        if (!id || free_and_strdup(&n->id, id) < 0)
                return;
        if (arn)
                (void) state_number_set_arn(n, arn);
        n->phase = PHASE_IN_PROGRESS;
}

enum claim_next reconcile_claim_refused(struct state *s, const struct config *c, struct state_number *n,
                                        const struct connect_error *e, uint64_t now, struct reconcile_events *ev) {
        enum connect_error_kind kind = e ? e->kind : CONNECT_ERROR_OTHER;
        const char *msg = e ? e->message : NULL;
        if (!s || !n)
                return CLAIM_NEXT_STOP_POOL;
        /* A retry of a FAILED number: the record keeps its window unless
         * the number is gone. */
        bool retry = n->phase == PHASE_FAILED || n->first_failure_at != 0;

        if (kind == CONNECT_ERROR_QUOTA || connect_is_quota_refusal(e ? e->code : NULL, msg)) {
                if (!msg)
                        msg = e && e->code ? e->code : "ServiceQuotaExceededException";
                record_failure(s, c, n, msg, now, ev);
                /* The refusal came from the code: make sure it is seen as
                 * a quota failure whatever its message says. */
                if (!n->quota_failure) {
                        n->quota_failure = true;
                        n->next_retry_at = reconcile_next_retry_at(n->attempts, n->first_failure_at, now, true,
                                                                   quota_backoff_sec(c));
                        _cleanup_(freep) char *target = strdup_or_null(n->target);
                        _cleanup_(freep) char *pool = strdup_or_null(n->pool);
                        quota_begin(s, c, target, pool, msg, now, ev);
                }
                return CLAIM_NEXT_STOP_TARGET;
        }

        switch (kind) {
        case CONNECT_ERROR_NOT_FOUND:
        case CONNECT_ERROR_IN_USE:
        case CONNECT_ERROR_INVALID:
                if (kind == CONNECT_ERROR_INVALID && !message_not_available(msg)) {
                        if (retry) {
                                n->phase = PHASE_FAILED;
                                n->next_retry_at = reconcile_next_retry_at(n->attempts, n->first_failure_at, now,
                                                                           n->quota_failure, quota_backoff_sec(c));
                        } else
                                state_remove_number(s, n);
                        return CLAIM_NEXT_STOP_POOL;
                }
                if (retry) {
                        /* Back in inventory and taken, or gone: no window
                         * left to use. Another number replaces it. */
                        n->phase = PHASE_GIVEN_UP;
                        n->next_retry_at = 0;
                        struct reconcile_event *ev_ = event_add(ev, EVENT_NOTE, n->target, NULL, n->pool, n);
                        event_message(ev_, "Gave up on %s for %s/%s: it can no longer be claimed (%s); another "
                                           "number will be claimed in its place",
                                      n->phone_number, n->target, n->pool ? n->pool : "-",
                                      msg ? msg : kind == CONNECT_ERROR_NOT_FOUND ? "not found" : "not available");
                } else {
                        /* Connect may remember the token with this number:
                         * the next claim for the need takes the next attempt,
                         * in this pass or a later one (CLAIMS.md). */
                        if (n->client_token)
                                (void) state_spend_token(find_state_target(s, n->target), n->client_token);
                        state_remove_number(s, n);
                }
                return CLAIM_NEXT_CANDIDATE;
        case CONNECT_ERROR_IDEMPOTENCY:
                /* Another instance used this token for another number (same
                 * view): it claimed this need. Re-observe next pass. */
                if (retry) {
                        n->phase = PHASE_FAILED;
                        n->next_retry_at = reconcile_next_retry_at(n->attempts, n->first_failure_at, now,
                                                                   n->quota_failure, quota_backoff_sec(c));
                } else
                        state_remove_number(s, n);
                return CLAIM_NEXT_STOP_POOL;
        case CONNECT_ERROR_AUTH:
        case CONNECT_ERROR_ACCESS_DENIED:
        case CONNECT_ERROR_TLS:
                if (retry)
                        n->phase = PHASE_FAILED;
                else
                        state_remove_number(s, n);
                return CLAIM_NEXT_FATAL;
        default:
                /* Throttled, transient or unknown: the request may have
                 * gone through. Keep the intent; the next pass replays it
                 * with the same token. */
                return CLAIM_NEXT_KEEP_INTENT;
        }
}

void reconcile_no_numbers(struct state *s, const struct plan_step *step, struct reconcile_events *ev) {
        if (!s || !step || !step->target || !step->pool)
                return;
        struct state_target *st = state_get_target(s, step->target, step->target_arn);
        if (!st || strv_has(st->no_numbers_pools, step->pool))
                return;
        if (strv_push(&st->no_numbers_pools, step->pool) < 0)
                return;
        struct reconcile_event *e = event_add(ev, EVENT_NO_NUMBERS, step->target, step->target_arn, step->pool, NULL);
        event_message(e, "(country %s, type %s%s%s)", step->country ? step->country : "?",
                      step->type ? step->type : "?", step->prefix ? ", prefix " : "", step->prefix ? step->prefix : "");
}

void reconcile_numbers_found(struct state *s, const struct plan_step *step) {
        if (!s || !step || !step->target || !step->pool)
                return;
        struct state_target *st = find_state_target(s, step->target);
        if (st)
                strv_remove_str(st->no_numbers_pools, step->pool);
        if (st && st->no_numbers_pools && !st->no_numbers_pools[0])
                st->no_numbers_pools = strv_free(st->no_numbers_pools);
}

static struct state_number *step_record(struct state *s, const struct plan_step *step) {
        struct state_number *n = step->phone_number ? state_find_number(s, step->target, step->phone_number) : NULL;
        if (!n && step->phone_number_id)
                n = state_find_number_by_id(s, step->phone_number_id);
        return n;
}

void reconcile_released(struct state *s, const struct plan_step *step, uint64_t now, struct reconcile_events *ev) {
        if (!s || !step || !step->target)
                return;
        struct state_number *n = step_record(s, step);
        if (n) {
                n->phase = PHASE_RELEASED;
                n->listed = false;
        }
        struct state_target *st = state_get_target(s, step->target, step->target_arn);
        if (st)
                (void) state_churn_add(st, now, true, step->phone_number);
        /* n is still valid: state_get_target only touches s->targets. */
        (void) event_add(ev, EVENT_RELEASED, step->target, step->target_arn, step->pool, n);
}

void reconcile_applied(struct state *s, const struct config *c, const struct plan_step *step, uint64_t now) {
        if (!s || !step || !step->target)
                return;
        struct state_number *n = step_record(s, step);
        if (!n)
                return;
        switch (step->action) {
        case STEP_UPDATE_DESCRIPTION:
                (void) state_set(s, &n->description, step->description);
                break;
        case STEP_ADOPT:
        case STEP_TAG:
                for (size_t i = 0; i < step->n_tags; i++) {
                        const struct config_tag *t = &step->tags[i];
                        if (record_tag_set(s, n, t->key, t->value) < 0)
                                continue;
                        if (streq(t->key, OWNERSHIP_TAG_KEY))
                                (void) state_set(s, &n->owner_tag, t->value);
                        else
                                (void) strv_add_unique(&n->tag_keys_applied, t->key);
                }
                if (step->action == STEP_ADOPT && step->pool) {
                        const struct pool_config *p = target_find_pool(config_find_target(c, step->target), step->pool);
                        (void) state_set(s, &n->pool, step->pool);
                        n->phase = PHASE_CLAIMED;
                        n->adopted = true;
                        n->claimed_at = now;
                        if (p)
                                (void) state_set(s, &n->pool_digest, p->digest);
                }
                break;
        case STEP_UNTAG:
                for (char **k = step->keys; k && *k; k++) {
                        record_tag_remove(s, n, *k);
                        strv_remove_str(n->tag_keys_applied, *k);
                }
                if (n->tag_keys_applied && !n->tag_keys_applied[0])
                        n->tag_keys_applied = strv_free(n->tag_keys_applied);
                break;
        case STEP_ASSOCIATE_FLOW:
                (void) state_set(s, &n->flow_applied, step->contact_flow);
                break;
        default:
                break;
        }
}

/* ---- formatting ------------------------------------------------------- */

int plan_format_text(const struct plan *p, char **ret) {
        if (!p || p->n_steps == 0) {
                char *s = strdup("nothing to do\n");
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }
        size_t w_action = strlen("ACTION"), w_where = strlen("TARGET/POOL"), w_num = strlen("NUMBER");
        for (size_t i = 0; i < p->n_steps; i++) {
                const struct plan_step *s = &p->steps[i];
                w_action = MAX(w_action, strlen(step_action_name(s->action)));
                w_where = MAX(w_where, strlen(s->target ? s->target : "-") + 1 + strlen(s->pool ? s->pool : "-"));
                w_num = MAX(w_num, strlen(s->phone_number ? s->phone_number : "-"));
        }
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "%-*s  %-*s  %-*s  %s\n", (int) w_action, "ACTION", (int) w_where, "TARGET/POOL", (int) w_num,
                "NUMBER", "DETAIL");
        for (size_t i = 0; i < p->n_steps; i++) {
                const struct plan_step *s = &p->steps[i];
                _cleanup_(freep) char *where = strprintf("%s/%s", s->target ? s->target : "-", s->pool ? s->pool : "-");
                fprintf(f, "%-*s  %-*s  %-*s  %s\n", (int) w_action, step_action_name(s->action), (int) w_where,
                        where ? where : "?", (int) w_num, s->phone_number ? s->phone_number : "-",
                        s->detail ? s->detail : "");
        }
        size_t changes = plan_count_changes(p);
        if (changes)
                fprintf(f, "%zu change%s pending\n", changes, changes == 1 ? "" : "s");
        else
                fprintf(f, "no changes pending (reports only)\n");
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

static json_t *json_str_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

int plan_format_json(const struct plan *p, char **ret) {
        json_t *root = json_object(), *steps = json_array(), *pools = json_array();
        int r = 0;
        if (!root || !steps || !pools) {
                json_decref(root);
                json_decref(steps);
                json_decref(pools);
                return -ENOMEM;
        }
        json_object_set_new(root, "steps", steps);
        json_object_set_new(root, "pools", pools);
        for (size_t i = 0; p && i < p->n_steps && r >= 0; i++) {
                const struct plan_step *s = &p->steps[i];
                json_t *o = json_object();
                if (!o || json_array_append_new(steps, o) < 0) {
                        r = -ENOMEM;
                        break;
                }
                json_object_set_new(o, "action", json_string(step_action_name(s->action)));
                json_object_set_new(o, "target", json_str_or_null(s->target));
                json_object_set_new(o, "target_arn", json_str_or_null(s->target_arn));
                json_object_set_new(o, "pool", json_str_or_null(s->pool));
                if (s->phone_number)
                        json_object_set_new(o, "phone_number", json_string(s->phone_number));
                if (s->phone_number_id)
                        json_object_set_new(o, "phone_number_id", json_string(s->phone_number_id));
                if (s->action == STEP_CLAIM || s->action == STEP_REPLAY_CLAIM)
                        json_object_set_new(o, "slot", json_integer(s->slot));
                if (s->action == STEP_CLAIM) {
                        json_object_set_new(o, "country", json_str_or_null(s->country));
                        json_object_set_new(o, "type", json_str_or_null(s->type));
                        if (s->prefix)
                                json_object_set_new(o, "prefix", json_string(s->prefix));
                }
                if (s->description && (s->action == STEP_CLAIM || s->action == STEP_UPDATE_DESCRIPTION))
                        json_object_set_new(o, "description", json_string(s->description));
                if (s->n_tags) {
                        json_t *t = json_object();
                        for (size_t k = 0; t && k < s->n_tags; k++)
                                json_object_set_new(t, s->tags[k].key, json_str_or_null(s->tags[k].value));
                        json_object_set_new(o, "tags", t ? t : json_null());
                }
                if (s->keys) {
                        json_t *a = json_array();
                        for (char **k = s->keys; a && *k; k++)
                                json_array_append_new(a, json_string(*k));
                        json_object_set_new(o, "keys", a ? a : json_null());
                }
                if (s->contact_flow)
                        json_object_set_new(o, "contact_flow", json_string(s->contact_flow));
                json_object_set_new(o, "detail", json_str_or_null(s->detail));
        }
        for (size_t i = 0; p && i < p->n_pools && r >= 0; i++) {
                const struct pool_summary *ps = &p->pools[i];
                json_t *o = json_pack("{s:s?, s:s?, s:I, s:I, s:I, s:I, s:I}", "target", ps->target, "pool", ps->pool,
                                      "wanted", (json_int_t) ps->wanted, "held", (json_int_t) ps->held, "claimed",
                                      (json_int_t) ps->claimed, "in_progress", (json_int_t) ps->in_progress,
                                      "failed", (json_int_t) ps->failed);
                if (!o || json_array_append_new(pools, o) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (ps->earliest_deadline) {
                        char b[32];
                        json_object_set_new(o, "earliest_deadline", json_string(ts(ps->earliest_deadline, b)));
                }
        }
        if (r >= 0)
                json_object_set_new(root, "changes", json_integer((json_int_t) plan_count_changes(p)));
        char *text = r >= 0 ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(root);
        if (!text)
                return r < 0 ? r : -ENOMEM;
        *ret = text;
        return 0;
}
