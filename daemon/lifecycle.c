/* lifecycle.c: every transition of a number record (lifecycle.h). Pure:
 * no I/O, no clock, no logging; each change that an operator should hear
 * of comes back as an event for the executor to log. */
#include "lifecycle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

_Static_assert(LIFECYCLE_CHURN_WINDOW_SEC == 180 * 86400, "state.c prunes churn with the same window");

#define DEFAULT_QUOTA_BACKOFF_SEC (6 * 3600)
#define RETRY_WINDOW_MARGIN_SEC 60 /* the last retry happens inside the window */
#define FALLTHROUGH __attribute__((fallthrough))

uint64_t lifecycle_quota_backoff_sec(const struct config *c) {
        uint64_t b = c ? c->quota_backoff_usec / USEC_PER_SEC : 0;
        return b > 0 ? b : DEFAULT_QUOTA_BACKOFF_SEC;
}

/* ClaimPhoneNumber's answer when someone else took the number between the
 * search and the claim (docs/design.md). */
static bool message_not_available(const char *m) {
        return m && (strcasestr(m, "not available") || strcasestr(m, "unavailable") ||
                     strcasestr(m, "no longer available"));
}


/* The pool of t that an ownership tag value names, if it names one. */
const struct pool_config *lifecycle_owner_pool(const struct target_config *t, const char *tag) {
        if (!t || !tag)
                return NULL;
        size_t l = strlen(t->name);
        if (strncmp(tag, t->name, l) != 0 || tag[l] != '/')
                return NULL;
        return target_find_pool(t, tag + l + 1);
}

const struct pool_config *lifecycle_pin_pool(const struct target_config *t, const char *phone_number) {
        for (size_t j = 0; t && phone_number && j < t->n_pools; j++)
                for (size_t k = 0; k < t->pools[j].n_numbers; k++)
                        if (streq(t->pools[j].numbers[k], phone_number))
                                return &t->pools[j];
        return NULL;
}

const struct pool_config *lifecycle_pin_anywhere(const struct config *c, const char *phone_number,
                                                 const struct target_config **ret_t) {
        for (size_t i = 0; c && i < c->n_targets; i++) {
                const struct pool_config *p = lifecycle_pin_pool(&c->targets[i], phone_number);
                if (p) {
                        if (ret_t)
                                *ret_t = &c->targets[i];
                        return p;
                }
        }
        return NULL;
}

bool lifecycle_pool_takes_tag(const struct pool_config *p, const char *tag) {
        for (size_t k = 0; p && tag && k < p->n_from; k++)
                if (streq(p->from[k], tag))
                        return true;
        return false;
}

bool lifecycle_source(const struct config *c, const char *name, const char **ret_arn,
                      const struct target_config **ret_owner) {
        for (size_t i = 0; c && name && i < c->n_targets; i++) {
                const struct target_config *t = &c->targets[i];
                const char *arn = NULL;
                if (streq(t->name, name))
                        arn = t->arn;
                for (size_t k = 0; !arn && k < t->n_previous_arns; k++)
                        if (streq(t->previous_arns[k], name))
                                arn = t->previous_arns[k];
                if (!arn)
                        continue;
                if (ret_arn)
                        *ret_arn = arn;
                if (ret_owner)
                        *ret_owner = t;
                return true;
        }
        return false;
}

static const char *cn_tag(const struct connect_number *n, const char *key) {
        for (size_t i = 0; i < n->n_tags; i++)
                if (streq_ptr(n->tags[i].key, key))
                        return n->tags[i].value;
        return NULL;
}

bool lifecycle_phase_live(enum number_phase p) {
        return p == PHASE_INTENT || p == PHASE_IN_PROGRESS || p == PHASE_CLAIMED;
}

/* A FAILED claim is ours to retry until exactly 24 h after its first
 * failed request was sent (docs/design.md, rule 3). */
bool lifecycle_in_window(const struct state_number *n, uint64_t now) {
        return n->first_failure_at == 0 || now < n->first_failure_at + LIFECYCLE_WINDOW_SEC;
}

bool lifecycle_record_held(const struct state_number *n, uint64_t now) {
        return lifecycle_phase_live(n->phase) || (n->phase == PHASE_FAILED && lifecycle_in_window(n, now));
}

bool lifecycle_record_of_pool(const struct state_number *n, const char *target, const char *pool) {
        return streq_ptr(n->target, target) && n->pool && streq_ptr(n->pool, pool);
}

void lifecycle_count_pool(const struct state *s, const char *target, const char *pool, uint64_t now,
                          struct lifecycle_pool_count *ret) {
        struct lifecycle_pool_count c = {0};
        for (size_t i = 0; i < s->n_numbers; i++) {
                const struct state_number *n = &s->numbers[i];
                if (streq_ptr(n->move_target, target) && streq_ptr(n->move_pool, pool))
                        c.moving++; /* filed where it is now, not under target */
                if (!lifecycle_record_of_pool(n, target, pool) || !lifecycle_record_held(n, now))
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
                                uint64_t d = n->first_failure_at + LIFECYCLE_WINDOW_SEC;
                                if (!c.earliest_deadline || d < c.earliest_deadline)
                                        c.earliest_deadline = d;
                        }
                        if (n->next_retry_at && (!c.next_retry_at || n->next_retry_at < c.next_retry_at))
                                c.next_retry_at = n->next_retry_at;
                        break;
                default:
                        break;
                }
        }
        *ret = c;
}

void lifecycle_pool_figures(const struct state *s, const char *target, const char *pool, unsigned desired,
                            uint64_t now, struct pool_figures *ret) {
        struct lifecycle_pool_count c;
        lifecycle_count_pool(s, target, pool, now, &c);
        *ret = (struct pool_figures){
                .desired = desired,
                .moving = c.moving,
                .claimed = c.claimed,
                .in_progress = c.in_progress + c.intent,
                .failed_pending = c.failed,
                .excess = c.live > desired ? c.live - desired : 0,
                .earliest_deadline = c.earliest_deadline,
                .next_retry_at = c.next_retry_at,
        };
}

unsigned lifecycle_pins_missing(const struct state *s, const struct target_config *t, const struct pool_config *p,
                                uint64_t now) {
        unsigned missing = 0;
        for (size_t k = 0; t && p && k < p->n_numbers; k++) {
                const struct state_number *n = state_find_number((struct state *) s, t->name, p->numbers[k]);
                if (!n || !lifecycle_record_of_pool(n, t->name, p->name) || !lifecycle_record_held(n, now))
                        missing++;
        }
        return missing;
}

static void count_target(const struct state *s, const struct target_config *t, uint64_t now, unsigned *ret_held,
                         unsigned *ret_wanted) {
        /* held: what the target holds in Connect, every number counting
         * against its quota (ours, others', untagged), not failed claims or
         * intents: the limit that the refusal actually met. */
        (void) now;
        unsigned held = 0, wanted = 0;
        for (size_t j = 0; t && j < t->n_pools; j++)
                wanted += t->pools[j].count;
        for (size_t i = 0; t && i < s->n_numbers; i++) {
                const struct state_number *n = &s->numbers[i];
                if (streq_ptr(n->target, t->name) &&
                    (n->phase == PHASE_CLAIMED || n->phase == PHASE_IN_PROGRESS ||
                     ((n->phase == PHASE_FOREIGN || n->phase == PHASE_UNKNOWN) && n->listed)))
                        held++;
        }
        *ret_held = held;
        *ret_wanted = wanted;
}


/* Paused: an episode is running (its digest is kept until it ends) and its
 * back-off has not passed. */
bool lifecycle_target_paused(const struct state_target *st, uint64_t now) {
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

void lifecycle_events_clear(struct lifecycle_events *ev) {
        if (!ev)
                return;
        for (size_t i = 0; i < ev->n; i++) {
                struct lifecycle_event *e = &ev->items[i];
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

static struct lifecycle_event *event_add(struct lifecycle_events *ev, enum lifecycle_event_kind kind,
                                         const char *target, const char *target_arn, const char *pool,
                                         const struct state_number *n) {
        if (!ev)
                return NULL;
        struct lifecycle_event *items = realloc(ev->items, sizeof *items * (ev->n + 1));
        if (!items)
                return NULL;
        ev->items = items;
        struct lifecycle_event *e = &ev->items[ev->n];
        *e = (struct lifecycle_event){.kind = kind};
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

static void event_message(struct lifecycle_event *e, const char *fmt, ...) _printf_(2, 3);

static void event_message(struct lifecycle_event *e, const char *fmt, ...) {
        if (!e)
                return;
        va_list ap;
        va_start(ap, fmt);
        char *m = strvprintf(fmt, ap);
        va_end(ap);
        free(e->message);
        e->message = m;
}

/* A claim was refused for quota: begins an episode unless one is running.
 * The one error record (EVENT_QUOTA) is emitted here, at the refusal, so
 * that even a single --once pass logs it (docs/design.md, rule 4). */
static void quota_begin(struct state *s, const struct config *c, const char *target, const char *pool,
                        const char *message, uint64_t now, struct lifecycle_events *ev) {
        const struct target_config *t = config_find_target(c, target);
        if (!t)
                return;
        struct state_target *st = state_get_target(s, t->name, t->arn);
        if (!st)
                return;
        if (!lifecycle_target_paused(st, now)) {
                char *d = strdup(t->digest);
                if (!d)
                        return;
                free(st->quota_digest);
                st->quota_digest = d;
                st->quota_at = now;
                st->quota_until = now + lifecycle_quota_backoff_sec(c);
                (void) free_and_strdup(&st->quota_message, message);
                (void) free_and_strdup(&st->quota_pool, pool);
                st->quota_logged = false;
                st->quota_last_retry_at = 0;
        }
        if (st->quota_logged || !ev)
                return;
        unsigned held, wanted;
        count_target(s, t, now, &held, &wanted);
        struct lifecycle_event *e = event_add(ev, EVENT_QUOTA, t->name, t->arn, pool, NULL);
        if (!e)
                return;
        e->message = strdup_or_null(message);
        e->held = held;
        e->wanted = wanted;
        st->quota_logged = true;
}

/* The claim attempt in n FAILED (a FAILED status, or a quota refusal):
 * start or continue its one-day window and schedule the next attempt. */
static void record_failure(struct state *s, const struct config *c, struct state_number *n, const char *message, bool refused,
                           uint64_t now, struct lifecycle_events *ev) {
        const struct target_config *t = config_find_target(c, n->target);
        const struct pool_config *p = target_find_pool(t, n->pool);

        if (!n->first_failure_at)
                n->first_failure_at = n->claim_sent_at ? n->claim_sent_at : now;
        if (n->attempts == 0)
                n->attempts = 1;
        (void) free_and_strdup(&n->failure_message, message);
        n->quota_failure = connect_is_quota_refusal(NULL, message);
        n->phase = PHASE_FAILED;
        n->next_retry_at = lifecycle_next_retry_at(n->attempts, n->first_failure_at, now, n->quota_failure,
                                                   lifecycle_quota_backoff_sec(c));
        /* A retry resends the recorded parameters; a record rebuilt from
         * the API has none, so take the pool's. */
        if (n->n_claim_tags == 0 && t && p) {
                struct config_tag *ct = NULL;
                size_t nct = 0;
                if (plan_pool_claim_tags(t, p, &ct, &nct) >= 0) {
                        struct state_tag *stg = NULL;
                        size_t nst = 0;
                        if (tags_from_config(s, ct, nct, &stg, &nst) >= 0) {
                                n->claim_tags = stg;
                                n->n_claim_tags = nst;
                        }
                        plan_tags_free(ct, nct);
                }
                if (!n->claim_description)
                        (void) state_set(s, &n->claim_description, p->description);
        }

        struct lifecycle_event *e = event_add(ev, EVENT_CLAIM_FAILED, n->target, NULL, n->pool, n);
        if (e) {
                e->refused = refused;
                e->next_retry_at = n->next_retry_at;
        }
        if (e) {
                e->message = strdup_or_null(message);
                e->deadline = n->first_failure_at + LIFECYCLE_WINDOW_SEC;
        }
        if (n->quota_failure) {
                /* quota_begin may add a target (s->targets moves, n does
                 * not); the copies keep the arguments independent of n. */
                _cleanup_(freep) char *target = strdup_or_null(n->target);
                _cleanup_(freep) char *pool = strdup_or_null(n->pool);
                quota_begin(s, c, target, pool, message, now, ev);
        }
}

uint64_t lifecycle_next_retry_at(unsigned attempts, uint64_t first_failure_at, uint64_t now, bool quota,
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
                uint64_t end = first_failure_at + LIFECYCLE_WINDOW_SEC;
                uint64_t last = end > RETRY_WINDOW_MARGIN_SEC ? end - RETRY_WINDOW_MARGIN_SEC : 0;
                if (t > last)
                        t = last;
        }
        return MAX(t, now);
}

static int idx_phone_cmp(const void *a, const void *b, void *userdata) {
        const struct state *s = userdata;
        size_t x = *(const size_t *) a, y = *(const size_t *) b;
        int c = strcmp(s->numbers[x].phone_number, s->numbers[y].phone_number);
        return c != 0 ? c : (x > y) - (x < y);
}


/* Indices of the records of target, sorted by phone number. */
int lifecycle_target_records(const struct state *s, const char *target, size_t **ret, size_t *ret_n) {
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

static int record_update_from_summary(struct state *s, struct state_number *r, const char *source_arn,
                                      const struct connect_number *in) {
        int k = 0;
        /* A new id for the same phone number is a new claim of it: what we
         * knew about the old one no longer says who owns it. */
        if (in->id && r->id && !streq(in->id, r->id) && (r->phase == PHASE_CLAIMED || r->phase == PHASE_FOREIGN))
                r->phase = PHASE_UNKNOWN;
        if (in->id && k >= 0 && !streq_ptr(r->id, in->id))
                k = free_and_strdup(&r->id, in->id);
        if (k >= 0)
                k = state_set(s, &r->target_arn, source_arn);
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
        if (r->phase == PHASE_GONE || r->phase == PHASE_MOVED || r->phase == PHASE_UNAVAILABLE)
                r->phase = PHASE_UNKNOWN;
        return k;
}

/* A list source is a target (its name, its arn) or one of its previous_arns
 * (the ARN is then the name too): numbers found there are filed under it. */
int lifecycle_list_begin(struct state *s, const struct config *c, const char *target) {
        const char *arn;
        const struct target_config *owner;
        if (!s || !lifecycle_source(c, target, &arn, &owner))
                return -ENOENT;
        if (!state_get_target(s, target, arn))
                return -ENOMEM;
        /* The target's own records of numbers that sit on this previous ARN
         * (the target's arn was changed in the YAML): they are this
         * source's now, and will be moved. */
        if (!streq(target, owner->name))
                for (size_t i = 0; i < s->n_numbers; i++) {
                        struct state_number *x = &s->numbers[i];
                        if (streq_ptr(x->target, owner->name) && streq_ptr(x->target_arn, arn) &&
                            state_find_number(s, target, x->phone_number) == NULL) {
                                int r = state_number_set_target(s, x, target);
                                if (r < 0)
                                        return r;
                        }
                }
        /* Listed again from scratch: what this listing shows is listed. */
        for (size_t i = 0; i < s->n_numbers; i++)
                if (streq_ptr(s->numbers[i].target, target))
                        s->numbers[i].listed = false;
        return 0;
}

int lifecycle_list_page(struct state *s, const struct config *c, const char *target,
                        const struct connect_number *numbers, size_t n) {
        const char *arn;
        if (!s || !lifecycle_source(c, target, &arn, NULL))
                return -ENOENT;
        for (size_t i = 0; i < n; i++) {
                const struct connect_number *x = &numbers[i];
                /* An entry that names another target is not on this one,
                 * whatever the filter asked for: not taken as listed here. */
                if (isempty(x->phone_number) || (x->target_arn && !streq(x->target_arn, arn)))
                        continue;
                struct state_number *r = state_find_number(s, target, x->phone_number);
                if (!r) {
                        r = state_add_number(s, target, x->phone_number);
                        if (!r)
                                return -ENOMEM;
                        r->phase = PHASE_UNKNOWN;
                }
                int k = record_update_from_summary(s, r, arn, x);
                if (k < 0)
                        return k;
        }
        return 0;
}

int lifecycle_list_end(struct state *s, const struct config *c, const char *target) {
        const char *arn;
        if (!s || !lifecycle_source(c, target, &arn, NULL))
                return -ENOENT;
        /* Records the list no longer shows. Numbers we never owned are
         * simply forgotten; ours stay (describe tells what happened), and
         * records of a target name no longer configured but with this ARN
         * are now tracked under this name. */
        for (size_t i = s->n_numbers; i-- > 0;) {
                struct state_number *x = &s->numbers[i];
                if (streq_ptr(x->target, target)) {
                        if (!x->listed && !x->move_token && (x->phase == PHASE_UNKNOWN || x->phase == PHASE_FOREIGN))
                                state_remove_number(s, x);
                } else if (!lifecycle_source(c, x->target, NULL, NULL) && streq_ptr(x->target_arn, arn))
                        state_remove_number(s, x);
        }
        struct state_target *st = state_find_target(s, target);
        if (st)
                st->listed_ok = true;
        return 0;
}

int lifecycle_ingest_list(struct state *s, const struct config *c, const char *target,
                          const struct connect_number *numbers, size_t n) {
        int r = lifecycle_list_begin(s, c, target);
        if (r >= 0)
                r = lifecycle_list_page(s, c, target, numbers, n);
        if (r >= 0)
                r = lifecycle_list_end(s, c, target);
        return r;
}

void lifecycle_list_failed(struct state *s, const char *target) {
        struct state_target *st = state_find_target(s, target);
        if (!st)
                st = state_get_target(s, target, NULL);
        if (st)
                st->listed_ok = false;
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
                           struct lifecycle_events *ev) {
        bool transition = old == PHASE_INTENT || old == PHASE_IN_PROGRESS || old == PHASE_FAILED ||
                          old == PHASE_GIVEN_UP;
        r->phase = PHASE_CLAIMED;
        r->pin_logged = false;
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
                             const struct connect_number *n, uint64_t now, struct lifecycle_events *ev) {
        const struct pool_config *tagged = lifecycle_owner_pool(t, cn_tag(n, OWNERSHIP_TAG_KEY));
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
                struct lifecycle_event *e = event_add(ev, EVENT_MOVED_AWAY, r->target, t->arn, pool, r);
                event_message(e, "%s", n->target_arn);
        }
        return 0;
}

static void record_clear_move(struct state *s, struct state_number *r) {
        (void) state_set(s, &r->move_target, NULL);
        (void) state_set(s, &r->move_pool, NULL);
        (void) state_set(s, &r->move_target_arn, NULL);
        r->move_token = mfree(r->move_token);
        r->move_message = mfree(r->move_message);
        r->move_intent_at = r->move_next_retry_at = 0;
        r->move_attempts = 0;
}

uint64_t lifecycle_move_next_retry_at(unsigned attempts, uint64_t now) {
        return now + (attempts <= 1 ? 60 : attempts == 2 ? 300 : attempts == 3 ? 900 : 3600);
}

static void record_move_failed(struct state_number *r, const char *message, uint64_t now,
                               struct lifecycle_events *ev) {
        r->move_token = mfree(r->move_token);
        r->move_attempts++;
        r->move_next_retry_at = lifecycle_move_next_retry_at(r->move_attempts, now);
        (void) free_and_strdup(&r->move_message, message);
        struct lifecycle_event *e = event_add(ev, EVENT_MOVE_FAILED, r->move_target, r->move_target_arn, r->move_pool, r);
        if (e) {
                e->next_retry_at = r->move_next_retry_at;
                event_message(e, "%s", message ? message : "no reason given");
        }
}

int lifecycle_ingest_describe(struct state *s, const struct config *c, const char *target,
                              const struct connect_number *n, uint64_t now, struct lifecycle_events *ev);

/* A describe of a number we are moving (r holds the intent). 1: the move
 * arrived and the number is now filed under its destination (r is gone);
 * 2: it arrived and is still settling (nothing else to take in); 0: go on
 * taking the describe in as usual; <0: error. */
static int record_move_observed(struct state *s, const struct config *c, struct state_number *r,
                                const struct connect_number *n, uint64_t now, struct lifecycle_events *ev) {
        if (n->target_arn && streq_ptr(n->target_arn, r->move_target_arn)) {
                if (n->status == CONNECT_STATUS_IN_PROGRESS)
                        return 2;
                if (n->status == CONNECT_STATUS_FAILED && r->move_token) {
                        record_move_failed(r, n->status_message, now, ev);
                        return 2;
                }
                _cleanup_(freep) char *dest = strdup_or_null(r->move_target);
                _cleanup_(freep) char *from = strdup_or_null(r->target_arn ? r->target_arn : r->target);
                uint64_t claimed_at = r->claimed_at;
                if (!dest || !from)
                        return -ENOMEM;
                struct lifecycle_event *e = event_add(ev, EVENT_MOVED, dest, n->target_arn, r->move_pool, r);
                event_message(e, "%s", from);
                state_remove_number(s, r);
                int k = lifecycle_ingest_describe(s, c, dest, n, now, ev);
                struct state_number *d = state_find_number(s, dest, n->phone_number);
                if (d && claimed_at && (!d->claimed_at || d->claimed_at > claimed_at))
                        d->claimed_at = claimed_at;
                if (d)
                        (void) state_set(s, &d->flow_applied, NULL); /* a move does not carry the flow */
                return k < 0 ? k : 1;
        }
        if (!r->move_token)
                return 0;
        if (n->status == CONNECT_STATUS_FAILED)
                record_move_failed(r, n->status_message, now, ev);
        else if (n->status == CONNECT_STATUS_CLAIMED)
                /* Still where it was and not moving: the request never
                 * arrived (a crash before it left). The next pass sends it
                 * again with the same derived token. */
                r->move_token = mfree(r->move_token);
        return 0;
}

int lifecycle_ingest_describe(struct state *s, const struct config *c, const char *target,
                              const struct connect_number *n, uint64_t now, struct lifecycle_events *ev) {
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
        if (r->move_target) {
                int m = record_move_observed(s, c, r, n, now, ev);
                if (m != 0)
                        return m < 0 ? m : 0;
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

        /* Ownership is the tag (connect-numbers.yaml(5), OWNERSHIP). A claim of ours whose
         * tags are not visible yet (Connect applies metadata a little
         * later) stays ours on the strength of our own records. */
        const char *tag = cn_tag(n, OWNERSHIP_TAG_KEY);
        /* A pinned number on its pool's target is the pool's, whatever
         * its tag says (the tag is then put right). */
        const struct pool_config *pin = lifecycle_pin_pool(t, r->phone_number);
        const struct pool_config *p = pin ? pin : lifecycle_owner_pool(t, tag);
        enum number_phase old = r->phase;
        if (pin) {
                k = state_set(s, &r->owner_tag, tag);
                if (k >= 0)
                        k = state_set(s, &r->pool, pin->name);
                if (k < 0)
                        return k;
        } else if (tag && !p) {
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

        if (old == PHASE_UNAVAILABLE && n->status == CONNECT_STATUS_FAILED)
                old = PHASE_GIVEN_UP; /* not a claim of ours */
        switch (n->status) {
        case CONNECT_STATUS_CLAIMED:
                record_claimed(s, t, p, r, old, now, ev);
                break;
        case CONNECT_STATUS_FAILED:
                if (old == PHASE_CLAIMED || old == PHASE_GIVEN_UP || old == PHASE_RELEASED)
                        break; /* a failed metadata update, or a claim we are done with */
                if (old == PHASE_FAILED && !(r->claim_sent_at && r->claim_sent_at >= r->next_retry_at))
                        break; /* the failure we already know */
                record_failure(s, c, r, n->status_message, false, now, ev);
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

int lifecycle_ingest_not_found(struct state *s, const char *target, const char *phone_number_id, uint64_t now,
                               struct lifecycle_events *ev) {
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
                if (r->claim_sent_at && now < r->claim_sent_at + LIFECYCLE_INTENT_REPLAY_SEC)
                        return 0;
                FALLTHROUGH;
        case PHASE_CLAIMED:
        case PHASE_INTENT: {
                r->phase = PHASE_GONE;
                r->listed = false;
                struct lifecycle_event *e = event_add(ev, EVENT_NUMBER_GONE, r->target, NULL, r->pool, r);
                event_message(e, "DescribePhoneNumber no longer finds %s", phone_number_id);
                return 0;
        }
        default:
                return 0;
        }
}

/* ---- time and configuration -------------------------------------------- */

static void quota_maybe_clear(const struct target_config *t, struct state_target *st, uint64_t now,
                              struct lifecycle_events *ev) {
        if (!st->quota_at || !st->quota_digest)
                return;
        const char *why;
        if (!streq(st->quota_digest, t->digest)) {
                why = "its part of the configuration changed";
                st->quota_until = MIN(st->quota_until, now);
        } else if (now >= st->quota_until)
                why = "the quota back-off has passed";
        else
                return;
        st->quota_digest = mfree(st->quota_digest);
        st->quota_logged = false;
        struct lifecycle_event *e = event_add(ev, EVENT_QUOTA_CLEARED, t->name, t->arn, st->quota_pool, NULL);
        event_message(e, "%s", why);
}

/* An episode whose one record was never written (its refusal was folded
 * in without events): write it now. */
static void quota_maybe_log(struct state *s, const struct target_config *t, struct state_target *st, uint64_t now,
                            struct lifecycle_events *ev) {
        if (!ev || st->quota_logged || !lifecycle_target_paused(st, now))
                return;
        unsigned held, wanted;
        count_target(s, t, now, &held, &wanted);
        struct lifecycle_event *e = event_add(ev, EVENT_QUOTA, t->name, t->arn, st->quota_pool, NULL);
        if (!e)
                return;
        event_message(e, "%s", st->quota_message ? st->quota_message : "phone-number quota reached");
        e->held = held;
        e->wanted = wanted;
        st->quota_logged = true;
}

/* Intents too old to replay and not in the list: the claim never
 * happened, or failed for good. */
static void drop_old_intents(struct state *s, const struct target_config *t, uint64_t now,
                             struct lifecycle_events *ev) {
        for (size_t i = s->n_numbers; i-- > 0;) {
                struct state_number *n = &s->numbers[i];
                if (n->phase != PHASE_INTENT || !streq_ptr(n->target, t->name) || n->listed ||
                    now < n->intent_at + LIFECYCLE_INTENT_REPLAY_SEC)
                        continue;
                if (n->first_failure_at) {
                        n->phase = PHASE_FAILED;
                        n->client_token = mfree(n->client_token);
                        continue;
                }
                char b[32];
                struct lifecycle_event *e = event_add(ev, EVENT_NOTE, t->name, t->arn, n->pool, n);
                event_message(e,
                              "Claim intent for %s (%s/%s, written %s) is older than an hour and the number is not "
                              "listed: the claim did not happen; dropping it",
                              n->phone_number, t->name, n->pool ? n->pool : "-",
                              format_timestamp_sec(n->intent_at, b, sizeof b));
                state_remove_number(s, n);
        }
}

/* A move nobody asks for any more (its pool left the YAML, or its target),
 * with no attempt in flight, is forgotten. */
static void drop_unwanted_moves(struct state *s, const struct config *c) {
        for (size_t i = 0; i < s->n_numbers; i++) {
                struct state_number *n = &s->numbers[i];
                if (n->move_target && !n->move_token &&
                    !target_find_pool(config_find_target(c, n->move_target), n->move_pool))
                        record_clear_move(s, n);
        }
}

void lifecycle_tick(struct state *s, const struct config *c, uint64_t now, struct lifecycle_events *ev) {
        if (s && c)
                drop_unwanted_moves(s, c);
        for (size_t i = 0; s && c && i < c->n_targets; i++) {
                const struct target_config *t = &c->targets[i];
                struct state_target *st = state_find_target(s, t->name);
                if (!st)
                        continue;
                quota_maybe_clear(t, st, now, ev);
                quota_maybe_log(s, t, st, now, ev);
                if (st->listed_ok)
                        drop_old_intents(s, t, now, ev);
        }
}

void lifecycle_give_up(struct state *s, const struct plan_step *step, uint64_t now, struct lifecycle_events *ev) {
        if (!s || !step || !step->target || !step->phone_number)
                return;
        struct state_number *n = state_find_number(s, step->target, step->phone_number);
        if (!n || n->phase != PHASE_FAILED || lifecycle_in_window(n, now))
                return;
        n->phase = PHASE_GIVEN_UP;
        n->next_retry_at = step->pinned ? now + LIFECYCLE_PIN_RETRY_SEC : 0;
        record_clear_claim(s, n); /* settled: no claim of it is ever in flight again (prune.h) */
        struct lifecycle_event *e = event_add(ev, step->pinned ? EVENT_PIN_LOST : EVENT_WINDOW_EXPIRED, n->target,
                                              step->target_arn, n->pool, n);
        if (e) {
                e->next_retry_at = n->next_retry_at;
                if (n->failure_message)
                        event_message(e, "%s", n->failure_message);
        }
        if (step->pinned)
                n->pin_logged = true;
}

/* ---- claims --------------------------------------------------------------- */

struct state_number *lifecycle_claim_intent(struct state *s, const struct plan_step *step, const char *phone_number,
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
                case PHASE_UNAVAILABLE:
                        break;
                case PHASE_GIVEN_UP:
                case PHASE_MOVED:
                case PHASE_RELEASED:
                        /* A pinned number is claimed again by number whatever
                         * became of it; Amazon Connect says whether it can be. */
                        if (step->action != STEP_CLAIM_PINNED) {
                                errno = EEXIST;
                                return NULL;
                        }
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
                /* A pinned number keeps counting its attempts: each takes
                 * a token of its own (reconcile.c derives it from them). */
                if (step->action != STEP_CLAIM_PINNED)
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
                struct state_target *st = state_find_target(s, step->target);
                if (lifecycle_target_paused(st, now))
                        st->quota_last_retry_at = now;
        }
        return n;
}

void lifecycle_claim_answered(struct state *s, struct state_number *n, const char *id, const char *arn,
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

/* A refused claim whose outcome is known not to be a claim: a retry of a
 * FAILED number goes back to FAILED (its window kept, the next attempt
 * scheduled); a fresh claim's intent is forgotten. */
static void refused_back_to_failed_or_forget(struct state *s, const struct config *c, struct state_number *n,
                                             bool retry, uint64_t now) {
        if (!retry) {
                state_remove_number(s, n);
                return;
        }
        n->phase = PHASE_FAILED;
        n->next_retry_at = lifecycle_next_retry_at(n->attempts, n->first_failure_at, now, n->quota_failure,
                                                   lifecycle_quota_backoff_sec(c));
}

enum claim_next lifecycle_claim_refused(struct state *s, const struct config *c, struct state_number *n,
                                        const struct connect_error *e, uint64_t now, struct lifecycle_events *ev) {
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
                record_failure(s, c, n, msg, true, now, ev);
                /* The refusal came from the code: make sure it is seen as
                 * a quota failure whatever its message says. */
                if (!n->quota_failure) {
                        n->quota_failure = true;
                        n->next_retry_at = lifecycle_next_retry_at(n->attempts, n->first_failure_at, now, true,
                                                                   lifecycle_quota_backoff_sec(c));
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
                        refused_back_to_failed_or_forget(s, c, n, retry, now);
                        return CLAIM_NEXT_STOP_POOL;
                }
                if (retry) {
                        /* Back in inventory and taken, or gone: no window
                         * left to use. Another number replaces it. */
                        n->phase = PHASE_GIVEN_UP;
                        n->next_retry_at = 0;
                        record_clear_claim(s, n);
                        struct lifecycle_event *ev_ = event_add(ev, EVENT_NOTE, n->target, NULL, n->pool, n);
                        event_message(ev_, "Gave up on %s for %s/%s: it can no longer be claimed. Amazon Connect "
                                           "said: \"%s\" Another number will be claimed in its place.",
                                      n->phone_number, n->target, n->pool ? n->pool : "-",
                                      msg ? msg : kind == CONNECT_ERROR_NOT_FOUND ? "not found" : "not available");
                } else if (lifecycle_pin_pool(config_find_target(c, n->target), n->phone_number)) {
                        /* A pinned number is never replaced: it waits an hour
                         * and is tried again; logged once per episode. */
                        record_clear_claim(s, n);
                        n->phase = PHASE_UNAVAILABLE;
                        n->next_retry_at = now + LIFECYCLE_PIN_RETRY_SEC;
                        (void) free_and_strdup(&n->failure_message,
                                               msg ? msg : kind == CONNECT_ERROR_NOT_FOUND ? "not found" : "not available");
                        if (!n->pin_logged) {
                                struct lifecycle_event *pe = event_add(ev, EVENT_PIN_UNAVAILABLE, n->target, NULL,
                                                                       n->pool, n);
                                if (pe) {
                                        pe->next_retry_at = n->next_retry_at;
                                        event_message(pe, "%s", n->failure_message);
                                }
                                n->pin_logged = true;
                        }
                        return CLAIM_NEXT_STOP_POOL;
                } else {
                        /* Connect may remember the token with this number:
                         * the next claim for the need takes the next attempt,
                         * in this pass or a later one (docs/design.md). */
                        if (n->client_token)
                                (void) state_spend_token(state_find_target(s, n->target), n->client_token);
                        state_remove_number(s, n);
                }
                return CLAIM_NEXT_CANDIDATE;
        case CONNECT_ERROR_IDEMPOTENCY:
                /* Another instance used this token for another number (same
                 * view): it claimed this need. Re-observe next pass. */
                refused_back_to_failed_or_forget(s, c, n, retry, now);
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

void lifecycle_no_numbers(struct state *s, const struct plan_step *step, struct lifecycle_events *ev) {
        if (!s || !step || !step->target || !step->pool)
                return;
        struct state_target *st = state_get_target(s, step->target, step->target_arn);
        if (!st || strv_has(st->no_numbers_pools, step->pool))
                return;
        if (strv_push(&st->no_numbers_pools, step->pool) < 0)
                return;
        struct lifecycle_event *e = event_add(ev, EVENT_NO_NUMBERS, step->target, step->target_arn, step->pool, NULL);
        event_message(e, "(country %s, type %s%s%s)", step->country ? step->country : "?",
                      step->type ? step->type : "?", step->prefix ? ", prefix " : "", step->prefix ? step->prefix : "");
}

void lifecycle_numbers_found(struct state *s, const struct plan_step *step) {
        if (!s || !step || !step->target || !step->pool)
                return;
        struct state_target *st = state_find_target(s, step->target);
        if (st)
                strv_remove_str(st->no_numbers_pools, step->pool);
        if (st && st->no_numbers_pools && !st->no_numbers_pools[0])
                st->no_numbers_pools = strv_free(st->no_numbers_pools);
}

struct state_number *lifecycle_move_intent(struct state *s, const struct plan_step *step, uint64_t now) {
        if (!s || !step || !step->source || !step->phone_number || !step->target || !step->pool ||
            isempty(step->client_token)) {
                errno = EINVAL;
                return NULL;
        }
        struct state_number *n = state_find_number(s, step->source, step->phone_number);
        if (!n) {
                errno = ENOENT;
                return NULL;
        }
        if (n->move_token) {
                errno = EALREADY;
                return NULL;
        }
        _cleanup_(freep) char *token = strdup(step->client_token);
        if (!token || state_set(s, &n->move_target, step->target) < 0 || state_set(s, &n->move_pool, step->pool) < 0 ||
            state_set(s, &n->move_target_arn, step->target_arn) < 0) {
                errno = ENOMEM;
                return NULL;
        }
        n->move_token = TAKE_PTR(token);
        n->move_intent_at = now;
        return n;
}

void lifecycle_move_refused(struct state *s, struct state_number *n, const struct connect_error *e, uint64_t now,
                            struct lifecycle_events *ev) {
        (void) s;
        if (!n)
                return;
        switch (e ? e->kind : CONNECT_ERROR_OTHER) {
        case CONNECT_ERROR_THROTTLED:
        case CONNECT_ERROR_TRANSIENT:
        case CONNECT_ERROR_IN_USE:
        case CONNECT_ERROR_AUTH:
        case CONNECT_ERROR_ACCESS_DENIED:
        case CONNECT_ERROR_TLS:
                /* The attempt may or may not have happened: the next pass
                 * describes the number (the intent is kept until then), and
                 * a resend takes the same token. */
                return;
        default:
                record_move_failed(n, e && e->message ? e->message : e && e->code ? e->code : NULL, now, ev);
                return;
        }
}

static struct state_number *step_record(struct state *s, const struct plan_step *step) {
        struct state_number *n = step->phone_number ? state_find_number(s, step->target, step->phone_number) : NULL;
        if (!n && step->phone_number_id)
                n = state_find_number_by_id(s, step->phone_number_id);
        return n;
}

void lifecycle_released(struct state *s, const struct plan_step *step, uint64_t now, struct lifecycle_events *ev) {
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

void lifecycle_applied(struct state *s, const struct config *c, const struct plan_step *step, uint64_t now) {
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
        case STEP_TAKE_OVER:
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
                if ((step->action == STEP_ADOPT || step->action == STEP_TAKE_OVER) && step->pool) {
                        const struct pool_config *p = target_find_pool(config_find_target(c, step->target), step->pool);
                        (void) state_set(s, &n->pool, step->pool);
                        n->phase = PHASE_CLAIMED;
                        n->adopted = step->action == STEP_ADOPT;
                        if (step->action == STEP_ADOPT || !n->claimed_at)
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
