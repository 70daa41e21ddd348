/* state.c: the state file. Owns the JSON form of struct state, its atomic
 * save (temp file, fsync, rename, fsync of the directory), its tolerant
 * load (a corrupt or unknown-version file is moved aside, never trusted,
 * never fatal), the directory lock, and the small lookups on the struct.
 * Must not decide anything about numbers (reconcile.c does) and never
 * logs: problems come back as -errno or as a warning string.
 *
 * The document, version 2 (times in wall-clock seconds; zero, false, empty
 * and NULL members are left out, and read back as such), one compact JSON
 * object per line, so that it is read, parsed and freed a line at a time:
 *   {"version": 2, "last_pass_started_at": N, ..., "claim_latency_sec": X,
 *    "targets": [{"name", "arn", "quota_at", ..., "churn": [{"at", "release",
 *                 "phone_number"}], "no_numbers_pools": [...], "listed_ok"}]}
 *   {"phone_number", "target", ..., "phase": "claimed", "tags": {"k": "v"},
 *    "claim_tags": {...}, "tag_keys_applied": [...], ...}     (one per number)
 * Version 1 (0.1.0) was one document with the numbers in a "numbers"
 * array; it is still read. Unknown members are ignored (a newer minor
 * writer may add some); a member of the wrong type, a missing key field, a
 * duplicate record or an unknown version make the whole document corrupt. */
#include "state.h"

#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>

/* Same value as LIFECYCLE_CHURN_WINDOW_SEC; state.c does not depend on the
 * planner's header (reconcile.c checks that both agree). */
#define STATE_CHURN_WINDOW_SEC ((uint64_t) 180 * 86400)
#define STATE_MAX_FILE_SIZE ((size_t) 256 * 1024 * 1024)

static const char *const phase_names[] = {
        [PHASE_UNKNOWN] = "unknown",   [PHASE_INTENT] = "intent",       [PHASE_IN_PROGRESS] = "in_progress",
        [PHASE_CLAIMED] = "claimed",   [PHASE_FAILED] = "failed",       [PHASE_GIVEN_UP] = "given_up",
        [PHASE_RELEASED] = "released", [PHASE_FOREIGN] = "foreign",     [PHASE_GONE] = "gone",
        [PHASE_MOVED] = "moved",       [PHASE_UNAVAILABLE] = "unavailable",
};

const char *number_phase_name(enum number_phase p) {
        if ((size_t) p >= ELEMENTSOF(phase_names))
                return NULL;
        return phase_names[p];
}

int number_phase_from_name(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(phase_names); i++)
                if (streq(phase_names[i], s))
                        return (int) i;
        return -EINVAL;
}

/* ---- construction and destruction ------------------------------------ */

static int number_push(struct state *s, struct state_number *n);

void state_desired_free(struct state_desired *d, size_t n) {
        for (size_t i = 0; d && i < n; i++)
                free(d[i].pool);
        free(d);
}

static void state_target_done(struct state_target *t) {
        free(t->name);
        free(t->arn);
        free(t->quota_digest);
        free(t->quota_message);
        free(t->quota_pool);
        for (size_t i = 0; i < t->n_churn; i++)
                free(t->churn[i].phone_number);
        free(t->churn);
        strv_free(t->no_numbers_pools);
        strv_free(t->spent_tokens);
        state_desired_free(t->desired, t->n_desired);
        *t = (struct state_target){0};
}

/* ---- interned strings ------------------------------------------------- */

/* One distinct value with the number of fields that point at it. A field
 * takes a reference when state_set() writes it and drops it when it is
 * overwritten or its record freed: a string is freed exactly when no field
 * holds it, whatever fields exist. Nothing has to list the fields for the
 * string to stay alive. */
struct strent {
        uint64_t hash;
        uint32_t refs;
        char s[];
};

/* An open-addressing set of entries (a power of two of slots, at most
 * half full, linear probing). A removal shifts the entries after it back
 * into the hole, so probing needs no tombstones. */
struct state_strings {
        struct strent **slots;
        size_t n_slots;
        size_t count;
};

/* FNV-1a, for the string table and the number index. */
#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv1a(uint64_t h, const char *v) {
        for (const char *c = v; *c; c++)
                h = (h ^ (uint8_t) *c) * FNV_PRIME;
        return h;
}

static uint64_t str_hash(const char *v) {
        return fnv1a(FNV_OFFSET, v);
}

/* Slots of an open-addressing table for n entries: a power of two, at
 * most half full. */
static size_t table_slots(size_t n) {
        size_t slots = 64;
        while (slots < n * 2 + 2)
                slots *= 2;
        return slots;
}

static void strings_free(struct state_strings *ss) {
        if (!ss)
                return;
        for (size_t k = 0; k < ss->n_slots; k++)
                free(ss->slots[k]);
        free(ss->slots);
        free(ss);
}

static void strings_put(struct strent **slots, size_t n_slots, struct strent *e) {
        size_t mask = n_slots - 1;
        size_t k = e->hash & mask;
        while (slots[k])
                k = (k + 1) & mask;
        slots[k] = e;
}

static int strings_grow(struct state_strings *ss, size_t n_slots) {
        struct strent **slots = calloc(n_slots, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        for (size_t k = 0; k < ss->n_slots; k++)
                if (ss->slots[k])
                        strings_put(slots, n_slots, ss->slots[k]);
        free(ss->slots);
        ss->slots = slots;
        ss->n_slots = n_slots;
        return 0;
}

/* The slot of the entry equal to v (by_pointer: whose string is v
 * itself), or SIZE_MAX. */
static size_t strings_find(const struct state_strings *ss, const char *v, bool by_pointer) {
        if (!ss || ss->n_slots == 0)
                return SIZE_MAX;
        uint64_t h = str_hash(v);
        size_t mask = ss->n_slots - 1;
        for (size_t k = h & mask; ss->slots[k]; k = (k + 1) & mask) {
                const struct strent *e = ss->slots[k];
                if (by_pointer ? e->s == v : e->hash == h && streq(e->s, v))
                        return k;
        }
        return SIZE_MAX;
}

/* The state's copy of v with one more reference, or NULL (ENOMEM). */
static const char *strings_ref(struct state *s, const char *v) {
        size_t k = strings_find(s->strings, v, false);
        if (k != SIZE_MAX) {
                struct strent *e = s->strings->slots[k];
                if (e->refs == UINT32_MAX) {
                        errno = ENOMEM;
                        return NULL;
                }
                e->refs++;
                return e->s;
        }
        if (!s->strings) {
                s->strings = calloc(1, sizeof *s->strings);
                if (!s->strings) {
                        errno = ENOMEM;
                        return NULL;
                }
        }
        struct state_strings *ss = s->strings;
        if ((ss->count + 1) * 2 > ss->n_slots && strings_grow(ss, MAX(ss->n_slots * 2, (size_t) 64)) < 0) {
                errno = ENOMEM;
                return NULL;
        }
        size_t len = strlen(v);
        struct strent *e = malloc(sizeof *e + len + 1);
        if (!e) {
                errno = ENOMEM;
                return NULL;
        }
        e->hash = str_hash(v);
        e->refs = 1;
        memcpy(e->s, v, len + 1);
        strings_put(ss->slots, ss->n_slots, e);
        ss->count++;
        return e->s;
}

/* Drops one reference to v (a string of the table; anything else is left
 * alone) and frees it with the last. */
static void strings_unref(struct state *s, const char *v) {
        if (!s || !v)
                return;
        struct state_strings *ss = s->strings;
        size_t k = strings_find(ss, v, true);
        if (k == SIZE_MAX)
                return;
        struct strent *e = ss->slots[k];
        if (--e->refs > 0)
                return;
        free(e);
        ss->slots[k] = NULL;
        ss->count--;
        /* Shift back each following entry of the run that may move into
         * the hole (its home slot is not cyclically between the hole and it). */
        size_t mask = ss->n_slots - 1;
        for (size_t j = (k + 1) & mask; ss->slots[j]; j = (j + 1) & mask) {
                size_t home = ss->slots[j]->hash & mask;
                if (((j - home) & mask) >= ((j - k) & mask)) {
                        ss->slots[k] = ss->slots[j];
                        ss->slots[j] = NULL;
                        k = j;
                }
        }
}

int state_set(struct state *s, const char **field, const char *v) {
        if (!s || !field)
                return -EINVAL;
        const char *i = NULL;
        if (v) {
                /* Referenced before the old one is dropped: v may be it. */
                i = strings_ref(s, v);
                if (!i)
                        return -ENOMEM;
        }
        strings_unref(s, *field);
        *field = i;
        return 0;
}

void state_tags_free(struct state *s, struct state_tag *tags, size_t n) {
        for (size_t i = 0; tags && i < n; i++) {
                strings_unref(s, tags[i].key);
                strings_unref(s, tags[i].value);
        }
        free(tags);
}

size_t state_strings_count(const struct state *s) {
        return s && s->strings ? s->strings->count : 0;
}

/* ---- construction and destruction (continued) ------------------------- */

/* A record gives back its references (s NULL: the whole table is going,
 * no need) and frees what it owns. */
static void state_number_done(struct state *s, struct state_number *n) {
        const char **const f[] = {&n->target, &n->target_arn, &n->pool, &n->owner_tag, &n->country, &n->type,
                                  &n->description, &n->claim_description, &n->flow_applied, &n->pool_digest,
                                  &n->move_target, &n->move_pool, &n->move_target_arn};
        for (size_t k = 0; s && k < ELEMENTSOF(f); k++)
                strings_unref(s, *f[k]);
        state_tags_free(s, n->tags, n->n_tags);
        state_tags_free(s, n->claim_tags, n->n_claim_tags);
        free(n->phone_number);
        free(n->id);
        free(n->arn);
        free(n->client_token);
        free(n->failure_message);
        free(n->move_token);
        free(n->move_message);
        strv_free(n->tag_keys_applied);
        *n = (struct state_number){0};
}

struct state *state_new(void) {
        struct state *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->version = STATE_VERSION;
        return s;
}

struct state *state_free(struct state *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_numbers; i++)
                state_number_done(NULL, &s->numbers[i]);
        free(s->numbers);
        for (size_t i = 0; i < s->n_targets; i++)
                state_target_done(&s->targets[i]);
        free(s->targets);
        free(s->last_error);
        free(s->index);
        strings_free(s->strings);
        free(s);
        return NULL;
}

/* The numbers and targets arrays grow geometrically: the allocation of an
 * array of n elements is always at least array_capacity(n), so an append
 * only reallocates when n reaches a power of two. Only this file allocates
 * them. */
static size_t array_capacity(size_t n) {
        size_t cap = 8;
        while (cap < n)
                cap *= 2;
        return cap;
}

static int array_grow(void **array, size_t n, size_t size) {
        if (n < array_capacity(n) && *array)
                return 0;
        size_t cap = array_capacity(n + 1);
        if (cap > SIZE_MAX / size)
                return -ENOMEM;
        void *p = realloc(*array, cap * size);
        if (!p)
                return -ENOMEM;
        *array = p;
        return 0;
}

/* ---- serialisation ---------------------------------------------------- */

static int json_set(json_t *o, const char *key, json_t *v) {
        if (!v)
                return -ENOMEM;
        return json_object_set_new(o, key, v) < 0 ? -ENOMEM : 0;
}

static int put_str(json_t *o, const char *key, const char *v) {
        if (!v)
                return 0;
        json_t *j = json_string(v);
        if (!j)
                return -EINVAL; /* not UTF-8: nothing we wrote can be like this */
        return json_set(o, key, j);
}

static int put_u64(json_t *o, const char *key, uint64_t v) {
        if (v == 0)
                return 0;
        return json_set(o, key, json_integer((json_int_t) MIN(v, (uint64_t) INT64_MAX)));
}

static int put_bool(json_t *o, const char *key, bool v) {
        return v ? json_set(o, key, json_true()) : 0;
}

static int put_tags(json_t *o, const char *key, const struct state_tag *tags, size_t n) {
        if (n == 0)
                return 0;
        json_t *t = json_object();
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int r = put_str(t, tags[i].key, tags[i].value ? tags[i].value : "");
                if (r < 0) {
                        json_decref(t);
                        return r;
                }
        }
        return json_set(o, key, t);
}

static int put_strv(json_t *o, const char *key, char *const *l) {
        if (!l || !l[0])
                return 0;
        json_t *a = json_array();
        if (!a)
                return -ENOMEM;
        for (; *l; l++) {
                json_t *j = json_string(*l);
                if (!j || json_array_append_new(a, j) < 0) {
                        json_decref(a);
                        return j ? -ENOMEM : -EINVAL;
                }
        }
        return json_set(o, key, a);
}

static json_t *number_to_json(const struct state_number *n, int *ret_r) {
        json_t *o = json_object();
        int r = o ? 0 : -ENOMEM;
        if (r >= 0)
                r = put_str(o, "phone_number", n->phone_number);
        if (r >= 0)
                r = put_str(o, "target", n->target);
        if (r >= 0)
                r = put_str(o, "target_arn", n->target_arn);
        if (r >= 0)
                r = put_str(o, "pool", n->pool);
        if (r >= 0)
                r = put_str(o, "owner_tag", n->owner_tag);
        if (r >= 0)
                r = put_str(o, "id", n->id);
        if (r >= 0)
                r = put_str(o, "arn", n->arn);
        if (r >= 0)
                r = put_str(o, "country", n->country);
        if (r >= 0)
                r = put_str(o, "type", n->type);
        if (r >= 0)
                r = put_str(o, "description", n->description);
        if (r >= 0)
                r = put_tags(o, "tags", n->tags, n->n_tags);
        if (r >= 0)
                r = put_str(o, "phase", number_phase_name(n->phase));
        if (r >= 0)
                r = put_bool(o, "listed", n->listed);
        if (r >= 0)
                r = put_bool(o, "adopted", n->adopted);
        if (r >= 0)
                r = put_str(o, "client_token", n->client_token);
        if (r >= 0)
                r = put_str(o, "claim_description", n->claim_description);
        if (r >= 0)
                r = put_tags(o, "claim_tags", n->claim_tags, n->n_claim_tags);
        if (r >= 0)
                r = put_u64(o, "slot", n->slot);
        if (r >= 0)
                r = put_u64(o, "intent_at", n->intent_at);
        if (r >= 0)
                r = put_u64(o, "claim_sent_at", n->claim_sent_at);
        if (r >= 0)
                r = put_u64(o, "claimed_at", n->claimed_at);
        if (r >= 0)
                r = put_u64(o, "first_failure_at", n->first_failure_at);
        if (r >= 0)
                r = put_u64(o, "next_retry_at", n->next_retry_at);
        if (r >= 0)
                r = put_u64(o, "ended_at", n->ended_at);
        if (r >= 0)
                r = put_u64(o, "attempts", n->attempts);
        if (r >= 0)
                r = put_str(o, "failure_message", n->failure_message);
        if (r >= 0)
                r = put_bool(o, "quota_failure", n->quota_failure);
        if (r >= 0)
                r = put_str(o, "flow_applied", n->flow_applied);
        if (r >= 0)
                r = put_strv(o, "tag_keys_applied", n->tag_keys_applied);
        if (r >= 0)
                r = put_str(o, "pool_digest", n->pool_digest);
        if (r >= 0)
                r = put_u64(o, "last_described_at", n->last_described_at);
        if (r >= 0)
                r = put_str(o, "move_target", n->move_target);
        if (r >= 0)
                r = put_str(o, "move_pool", n->move_pool);
        if (r >= 0)
                r = put_str(o, "move_target_arn", n->move_target_arn);
        if (r >= 0)
                r = put_str(o, "move_token", n->move_token);
        if (r >= 0)
                r = put_u64(o, "move_intent_at", n->move_intent_at);
        if (r >= 0)
                r = put_u64(o, "move_next_retry_at", n->move_next_retry_at);
        if (r >= 0)
                r = put_u64(o, "move_attempts", n->move_attempts);
        if (r >= 0)
                r = put_str(o, "move_message", n->move_message);
        if (r >= 0)
                r = put_bool(o, "pin_logged", n->pin_logged);
        if (r < 0) {
                json_decref(o);
                *ret_r = r;
                return NULL;
        }
        return o;
}

/* {"pool": "3"}: the counts stay decimal strings in the file, the form
 * every earlier version wrote and reads, so that a downgrade keeps it. */
static int put_desired(json_t *o, const struct state_desired *d, size_t n) {
        json_t *t = json_object();
        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char count[16];
                snprintf(count, sizeof count, "%u", d[i].count);
                int r = put_str(t, d[i].pool, count);
                if (r < 0) {
                        json_decref(t);
                        return r;
                }
        }
        return json_set(o, "desired", t);
}

static json_t *target_to_json(const struct state_target *t, int *ret_r) {
        json_t *o = json_object();
        int r = o ? 0 : -ENOMEM;
        if (r >= 0)
                r = put_str(o, "name", t->name);
        if (r >= 0)
                r = put_str(o, "arn", t->arn);
        if (r >= 0)
                r = put_u64(o, "quota_at", t->quota_at);
        if (r >= 0)
                r = put_u64(o, "quota_until", t->quota_until);
        if (r >= 0)
                r = put_str(o, "quota_digest", t->quota_digest);
        if (r >= 0)
                r = put_str(o, "quota_message", t->quota_message);
        if (r >= 0)
                r = put_str(o, "quota_pool", t->quota_pool);
        if (r >= 0)
                r = put_bool(o, "quota_logged", t->quota_logged);
        if (r >= 0)
                r = put_u64(o, "quota_last_retry_at", t->quota_last_retry_at);
        if (r >= 0)
                r = put_u64(o, "pruned", t->pruned);
        if (r >= 0 && t->n_churn > 0) {
                json_t *a = json_array();
                r = a ? 0 : -ENOMEM;
                for (size_t i = 0; r >= 0 && i < t->n_churn; i++) {
                        json_t *e = json_object();
                        r = e ? 0 : -ENOMEM;
                        if (r >= 0)
                                r = json_set(e, "at", json_integer((json_int_t) MIN(t->churn[i].at, (uint64_t) INT64_MAX)));
                        if (r >= 0)
                                r = put_bool(e, "release", t->churn[i].release);
                        if (r >= 0)
                                r = put_str(e, "phone_number", t->churn[i].phone_number);
                        if (r >= 0 && json_array_append(a, e) < 0)
                                r = -ENOMEM;
                        json_decref(e);
                }
                if (r >= 0)
                        r = json_set(o, "churn", a);
                else
                        json_decref(a);
        }
        if (r >= 0)
                r = put_strv(o, "no_numbers_pools", t->no_numbers_pools);
        if (r >= 0)
                r = put_strv(o, "spent_tokens", t->spent_tokens);
        if (r >= 0)
                r = put_bool(o, "listed_ok", t->listed_ok);
        if (r >= 0 && t->n_desired > 0)
                r = put_desired(o, t->desired, t->n_desired);
        if (r < 0) {
                json_decref(o);
                *ret_r = r;
                return NULL;
        }
        return o;
}

/* Where a document goes: a file descriptor (through a buffer, with plain
 * write(2) so that every write is visible to the I/O fault tests) or a
 * growing string. The first error sticks. */
struct sink {
        int fd;                      /* -1: memory */
        char *buf;
        size_t len, cap;
        int r;
};

#define SINK_FLUSH_AT ((size_t) 64 * 1024)

static int sink_flush(struct sink *k) {
        if (k->r >= 0 && k->fd >= 0 && k->len > 0) {
                k->r = write_all(k->fd, k->buf, k->len);
                k->len = 0;
        }
        return k->r;
}

static int sink_put(const char *p, size_t n, void *userdata) {
        struct sink *k = userdata;
        if (k->r < 0)
                return -1;
        if (k->len + n + 1 > k->cap) {
                size_t cap = MAX(k->cap * 2, k->len + n + 1);
                cap = MAX(cap, (size_t) 4096);
                char *b = realloc(k->buf, cap);
                if (!b) {
                        k->r = -ENOMEM;
                        return -1;
                }
                k->buf = b;
                k->cap = cap;
        }
        memcpy(k->buf + k->len, p, n);
        k->len += n;
        k->buf[k->len] = 0;
        if (k->fd >= 0 && k->len >= SINK_FLUSH_AT && sink_flush(k) < 0)
                return -1;
        return 0;
}

/* One JSON value on one line. */
static int sink_put_line(struct sink *k, json_t *v) {
        if (json_dump_callback(v, sink_put, k, JSON_COMPACT | JSON_PRESERVE_ORDER) < 0 && k->r >= 0)
                k->r = -ENOMEM;
        if (k->r >= 0)
                (void) sink_put("\n", 1, k);
        return k->r;
}

/* The version and the last pass's record, shared by the state's header and
 * pass.json. explicit_result: write a result of 0 too (pass.json's record
 * replaces the state's, so a 0 must be said). */
static int put_pass_record(json_t *o, const struct state *s, bool explicit_result) {
        int r = json_set(o, "version", json_integer(STATE_VERSION));
        if (r >= 0)
                r = put_u64(o, "last_pass_started_at", s->last_pass_started_at);
        if (r >= 0)
                r = put_u64(o, "last_pass_finished_at", s->last_pass_finished_at);
        if (r >= 0)
                r = put_u64(o, "next_pass_at", s->next_pass_at);
        if (r >= 0 && (explicit_result || s->last_pass_result != 0))
                r = json_set(o, "last_pass_result", json_integer(s->last_pass_result));
        if (r >= 0)
                r = put_str(o, "last_error", s->last_error);
        return r;
}

static json_t *header_to_json(const struct state *s, int *ret_r) {
        json_t *root = json_object();
        if (!root) {
                *ret_r = -ENOMEM;
                return NULL;
        }
        int r = put_pass_record(root, s, false);
        if (r >= 0 && s->claim_latency_sec != 0)
                r = json_set(root, "claim_latency_sec", json_real(s->claim_latency_sec));
        json_t *targets = r >= 0 ? json_array() : NULL;
        if (r >= 0 && !targets)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < s->n_targets; i++) {
                json_t *t = target_to_json(&s->targets[i], &r);
                if (t && json_array_append_new(targets, t) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0)
                r = json_set(root, "targets", targets);
        else
                json_decref(targets);
        if (r < 0) {
                json_decref(root);
                *ret_r = r;
                return NULL;
        }
        return root;
}

/* The document, version 2: a header line (everything but the numbers),
 * then one line per number. Each line is parsed and freed on its own when
 * read back, so loading 10,000 numbers never holds more than one record's
 * JSON, and a large file stays diffable and greppable. */
static int state_write(struct sink *k, const struct state *s) {
        int r = 0;
        json_t *header = header_to_json(s, &r);
        if (!header)
                return r;
        r = sink_put_line(k, header);
        json_decref(header);
        for (size_t i = 0; r >= 0 && i < s->n_numbers; i++) {
                json_t *n = number_to_json(&s->numbers[i], &r);
                if (n) {
                        r = sink_put_line(k, n);
                        json_decref(n);
                }
        }
        return r; /* write_file_atomic() flushes */
}

int state_to_json(const struct state *s, char **ret) {
        struct sink k = {.fd = -1};
        int r = state_write(&k, s);
        if (r >= 0 && !k.buf)
                r = -ENOMEM;
        if (r < 0) {
                free(k.buf);
                return r;
        }
        *ret = k.buf;
        return 0;
}

/* ---- deserialisation -------------------------------------------------- */

/* Each reader leaves the output alone when the member is absent or null
 * and returns -EBADMSG when it has the wrong type or range. */
static int get_str(json_t *o, const char *key, char **ret) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return -EBADMSG;
        char *c = strdup(json_string_value(v));
        if (!c)
                return -ENOMEM;
        free(*ret);
        *ret = c;
        return 0;
}

static int get_u64(json_t *o, const char *key, uint64_t *ret) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return -EBADMSG;
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

static int get_unsigned(json_t *o, const char *key, unsigned *ret) {
        uint64_t v = *ret;
        int r = get_u64(o, key, &v);
        if (r < 0)
                return r;
        if (v > UINT_MAX)
                return -EBADMSG;
        *ret = (unsigned) v;
        return 0;
}

static int get_bool(json_t *o, const char *key, bool *ret) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_boolean(v))
                return -EBADMSG;
        *ret = json_is_true(v);
        return 0;
}

/* An interned string member (see state.h). */
static int get_istr(struct state *s, json_t *o, const char *key, const char **ret) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return -EBADMSG;
        return state_set(s, ret, json_string_value(v));
}

/* A member that must be an object when present: *ret is it, or NULL when
 * it is absent, null or empty. */
static int get_object(json_t *o, const char *key, json_t **ret) {
        json_t *v = json_object_get(o, key);
        *ret = NULL;
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return -EBADMSG;
        if (json_object_size(v) > 0)
                *ret = v;
        return 0;
}

static int get_tags(struct state *s, json_t *o, const char *key, struct state_tag **ret, size_t *ret_n) {
        json_t *v;
        int r = get_object(o, key, &v);
        if (r < 0 || !v)
                return r;
        size_t n = json_object_size(v), i = 0;
        struct state_tag *tags = calloc(n, sizeof *tags);
        if (!tags)
                return -ENOMEM;
        const char *k;
        json_t *val;
        json_object_foreach(v, k, val) {
                if (!json_is_string(val) || i >= n) {
                        state_tags_free(s, tags, n);
                        return -EBADMSG;
                }
                if (state_set(s, &tags[i].key, k) < 0 || state_set(s, &tags[i].value, json_string_value(val)) < 0) {
                        state_tags_free(s, tags, n);
                        return -ENOMEM;
                }
                i++;
        }
        state_tags_free(s, *ret, *ret_n);
        *ret = tags;
        *ret_n = i;
        return 0;
}

static int get_strv(json_t *o, const char *key, char ***ret) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return -EBADMSG;
        _cleanup_(strv_freep) char **l = NULL;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
                if (!json_is_string(e))
                        return -EBADMSG;
                if (strv_push(&l, json_string_value(e)) < 0)
                        return -ENOMEM;
        }
        strv_free(*ret);
        *ret = TAKE_PTR(l);
        return 0;
}

/* The members of a number record, read by one loop so that a member of
 * the wrong type is named in the warning that skips its record. */
enum member_kind { MEMBER_STR, MEMBER_ISTR, MEMBER_U64, MEMBER_UNSIGNED, MEMBER_BOOL, MEMBER_TAGS, MEMBER_STRV,
                   MEMBER_PHASE };

struct member {
        const char *key;
        enum member_kind kind;
        size_t offset;               /* in struct state_number */
        size_t n_offset;             /* MEMBER_TAGS: of the count */
};

#define M(key, kind, field) {key, kind, offsetof(struct state_number, field), 0}
#define M_TAGS(key, field) {key, MEMBER_TAGS, offsetof(struct state_number, field), offsetof(struct state_number, n_##field)}
static const struct member number_members[] = {
        M("phone_number", MEMBER_STR, phone_number),
        M("target", MEMBER_ISTR, target),
        M("target_arn", MEMBER_ISTR, target_arn),
        M("pool", MEMBER_ISTR, pool),
        M("owner_tag", MEMBER_ISTR, owner_tag),
        M("id", MEMBER_STR, id),
        M("arn", MEMBER_STR, arn),
        M("country", MEMBER_ISTR, country),
        M("type", MEMBER_ISTR, type),
        M("description", MEMBER_ISTR, description),
        M_TAGS("tags", tags),
        M("phase", MEMBER_PHASE, phase),
        M("listed", MEMBER_BOOL, listed),
        M("adopted", MEMBER_BOOL, adopted),
        M("client_token", MEMBER_STR, client_token),
        M("claim_description", MEMBER_ISTR, claim_description),
        M_TAGS("claim_tags", claim_tags),
        M("slot", MEMBER_UNSIGNED, slot),
        M("intent_at", MEMBER_U64, intent_at),
        M("claim_sent_at", MEMBER_U64, claim_sent_at),
        M("claimed_at", MEMBER_U64, claimed_at),
        M("first_failure_at", MEMBER_U64, first_failure_at),
        M("next_retry_at", MEMBER_U64, next_retry_at),
        M("attempts", MEMBER_UNSIGNED, attempts),
        M("failure_message", MEMBER_STR, failure_message),
        M("quota_failure", MEMBER_BOOL, quota_failure),
        M("flow_applied", MEMBER_ISTR, flow_applied),
        M("tag_keys_applied", MEMBER_STRV, tag_keys_applied),
        M("pool_digest", MEMBER_ISTR, pool_digest),
        M("last_described_at", MEMBER_U64, last_described_at),
        M("move_target", MEMBER_ISTR, move_target),
        M("move_pool", MEMBER_ISTR, move_pool),
        M("move_target_arn", MEMBER_ISTR, move_target_arn),
        M("move_token", MEMBER_STR, move_token),
        M("move_intent_at", MEMBER_U64, move_intent_at),
        M("move_next_retry_at", MEMBER_U64, move_next_retry_at),
        M("move_attempts", MEMBER_UNSIGNED, move_attempts),
        M("move_message", MEMBER_STR, move_message),
        M("pin_logged", MEMBER_BOOL, pin_logged),
        M("ended_at", MEMBER_U64, ended_at),
};
#undef M
#undef M_TAGS

static int member_from_json(struct state *s, json_t *o, const struct member *m, struct state_number *n) {
        char *f = (char *) n + m->offset;
        switch (m->kind) {
        case MEMBER_STR: return get_str(o, m->key, (char **) f);
        case MEMBER_ISTR: return get_istr(s, o, m->key, (const char **) f);
        case MEMBER_U64: return get_u64(o, m->key, (uint64_t *) f);
        case MEMBER_UNSIGNED: return get_unsigned(o, m->key, (unsigned *) f);
        case MEMBER_BOOL: return get_bool(o, m->key, (bool *) f);
        case MEMBER_TAGS: return get_tags(s, o, m->key, (struct state_tag **) f, (size_t *) ((char *) n + m->n_offset));
        case MEMBER_STRV: return get_strv(o, m->key, (char ***) f);
        case MEMBER_PHASE: {
                _cleanup_(freep) char *phase = NULL;
                int r = get_str(o, m->key, &phase);
                if (r < 0 || !phase)
                        return r;
                int p = number_phase_from_name(phase);
                if (p < 0)
                        return -EBADMSG;
                n->phase = (enum number_phase) p;
                return 0;
        }
        }
        return -EINVAL;
}

/* Fills n from o. On -EBADMSG, *ret_why says what was wrong. */
static int number_from_json(struct state *s, json_t *o, struct state_number *n, char **ret_why) {
        int r = 0;
        if (!json_is_object(o)) {
                *ret_why = strdup("not a JSON object");
                return -EBADMSG;
        }
        for (size_t i = 0; i < ELEMENTSOF(number_members); i++) {
                r = member_from_json(s, o, &number_members[i], n);
                if (r == -EBADMSG) {
                        *ret_why = strprintf("member \"%s\" has the wrong type or value", number_members[i].key);
                        return r;
                }
                if (r < 0)
                        return r;
        }
        if (isempty(n->phone_number) || isempty(n->target)) {
                *ret_why = strdup("no phone_number or no target (the record's key)");
                return -EBADMSG;
        }
        if (n->arn) {
                /* Version 1 kept every ARN. */
                _cleanup_(freep) char *arn = TAKE_PTR(n->arn);
                r = state_number_set_arn(n, arn);
        }
        return r;
}

/* Counts as written (decimal strings) or as plain integers. */
static int get_desired(json_t *o, struct state_desired **ret, size_t *ret_n) {
        json_t *v;
        int r = get_object(o, "desired", &v);
        if (r < 0 || !v)
                return r;
        size_t n = json_object_size(v), i = 0;
        struct state_desired *d = calloc(n, sizeof *d);
        if (!d)
                return -ENOMEM;
        const char *k;
        json_t *val;
        json_object_foreach(v, k, val) {
                uint64_t count = 0;
                if (json_is_integer(val) && json_integer_value(val) >= 0)
                        count = (uint64_t) json_integer_value(val);
                else if (json_is_string(val)) {
                        const char *c = json_string_value(val);
                        char *end = NULL;
                        errno = 0;
                        count = *c >= '0' && *c <= '9' ? strtoull(c, &end, 10) : UINT64_MAX;
                        if (!end || *end || errno != 0)
                                count = UINT64_MAX;
                } else
                        count = UINT64_MAX;
                if (count > UINT_MAX || i >= n) {
                        r = -EBADMSG;
                        break;
                }
                d[i].pool = strdup(k);
                if (!d[i].pool) {
                        r = -ENOMEM;
                        break;
                }
                d[i++].count = (unsigned) count;
        }
        if (r < 0) {
                state_desired_free(d, i);
                return r;
        }
        state_desired_free(*ret, *ret_n);
        *ret = d;
        *ret_n = i;
        return 0;
}

static int target_from_json(json_t *o, struct state_target *t) {
        int r = 0;
        if (!json_is_object(o))
                return -EBADMSG;
        r = get_str(o, "name", &t->name);
        if (r >= 0 && isempty(t->name))
                r = -EBADMSG;
        if (r >= 0)
                r = get_str(o, "arn", &t->arn);
        if (r >= 0)
                r = get_u64(o, "quota_at", &t->quota_at);
        if (r >= 0)
                r = get_u64(o, "quota_until", &t->quota_until);
        if (r >= 0)
                r = get_str(o, "quota_digest", &t->quota_digest);
        if (r >= 0)
                r = get_str(o, "quota_message", &t->quota_message);
        if (r >= 0)
                r = get_str(o, "quota_pool", &t->quota_pool);
        if (r >= 0)
                r = get_bool(o, "quota_logged", &t->quota_logged);
        if (r >= 0)
                r = get_u64(o, "quota_last_retry_at", &t->quota_last_retry_at);
        if (r >= 0)
                r = get_u64(o, "pruned", &t->pruned);
        json_t *churn = json_object_get(o, "churn");
        if (r >= 0 && churn && !json_is_null(churn)) {
                if (!json_is_array(churn))
                        return -EBADMSG;
                size_t n = json_array_size(churn);
                if (n > 0) {
                        t->churn = calloc(n, sizeof *t->churn);
                        if (!t->churn)
                                return -ENOMEM;
                }
                size_t i;
                json_t *e;
                json_array_foreach(churn, i, e) {
                        if (!json_is_object(e) || !json_object_get(e, "at"))
                                return -EBADMSG;
                        struct state_churn *c = &t->churn[t->n_churn++];
                        r = get_u64(e, "at", &c->at);
                        if (r >= 0)
                                r = get_bool(e, "release", &c->release);
                        if (r >= 0)
                                r = get_str(e, "phone_number", &c->phone_number);
                        if (r < 0)
                                return r;
                }
        }
        if (r >= 0)
                r = get_strv(o, "no_numbers_pools", &t->no_numbers_pools);
        if (r >= 0)
                r = get_strv(o, "spent_tokens", &t->spent_tokens);
        if (r >= 0)
                r = get_bool(o, "listed_ok", &t->listed_ok);
        if (r >= 0)
                r = get_desired(o, &t->desired, &t->n_desired);
        return r;
}

static int cmp_str_ptr(const char *a, const char *b) {
        return strcmp(a ? a : "", b ? b : "");
}

static int target_key_cmp(const void *a, const void *b) {
        const struct state_target *x = *(const struct state_target *const *) a, *y = *(const struct state_target *const *) b;
        return cmp_str_ptr(x->name, y->name);
}

/* Two targets with one name would make every lookup ambiguous: such a
 * header was not written by us. (A second record of a number is skipped
 * as it is read, see number_append_from_json().) */
static int check_unique_targets(const struct state *s) {
        if (s->n_targets < 2)
                return 0;
        _cleanup_(freep) const void **v = calloc(s->n_targets, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_targets; i++)
                v[i] = &s->targets[i];
        qsort(v, s->n_targets, sizeof *v, target_key_cmp);
        for (size_t i = 1; i < s->n_targets; i++)
                if (target_key_cmp(&v[i - 1], &v[i]) == 0)
                        return -EBADMSG;
        return 0;
}

/* The members of the header (version 2) or of the whole document
 * (version 1), but the numbers. */
static int header_from_json(json_t *root, struct state *s) {
        int r;
        if (!json_is_object(root))
                return -EBADMSG;
        r = get_u64(root, "last_pass_started_at", &s->last_pass_started_at);
        if (r >= 0)
                r = get_u64(root, "last_pass_finished_at", &s->last_pass_finished_at);
        if (r >= 0)
                r = get_u64(root, "next_pass_at", &s->next_pass_at);
        if (r >= 0) {
                json_t *v = json_object_get(root, "last_pass_result");
                if (v && !json_is_null(v)) {
                        if (!json_is_integer(v) || json_integer_value(v) < INT_MIN ||
                            json_integer_value(v) > INT_MAX)
                                r = -EBADMSG;
                        else
                                s->last_pass_result = (int) json_integer_value(v);
                }
        }
        if (r >= 0)
                r = get_str(root, "last_error", &s->last_error);
        if (r >= 0) {
                json_t *v = json_object_get(root, "claim_latency_sec");
                if (v && !json_is_null(v)) {
                        if (!json_is_number(v) || json_number_value(v) < 0)
                                r = -EBADMSG;
                        else
                                s->claim_latency_sec = json_number_value(v);
                }
        }
        if (r < 0)
                return r;

        json_t *targets = json_object_get(root, "targets");
        if (targets && !json_is_null(targets)) {
                if (!json_is_array(targets))
                        return -EBADMSG;
                size_t n = json_array_size(targets);
                if (n > 0) {
                        s->targets = calloc(array_capacity(n), sizeof *s->targets);
                        if (!s->targets)
                                return -ENOMEM;
                }
                for (size_t i = 0; i < n; i++) {
                        s->n_targets++;
                        r = target_from_json(json_array_get(targets, i), &s->targets[i]);
                        if (r < 0)
                                return r;
                }
        }
        return check_unique_targets(s);
}

/* What reading a file found: records skipped, and why (the first few). */
struct read_report {
        size_t skipped;
        char *text;                  /* "line 5: ...; line 9: ..." */
};

#define REPORT_REASONS_MAX 5

static int report_skip(struct read_report *rep, const char *where, const char *why) {
        rep->skipped++;
        if (rep->skipped > REPORT_REASONS_MAX)
                return 0;
        char *t = strprintf("%s%s%s: %s%s", rep->text ? rep->text : "", rep->text ? "; " : "", where,
                            why ? why : "out of memory", rep->skipped == REPORT_REASONS_MAX ? "; ..." : "");
        if (!t)
                return -ENOMEM;
        free(rep->text);
        rep->text = t;
        return 0;
}

/* Appends the record in o, or skips it (reported as WHERE) when it is
 * damaged or repeats a key: one bad record must not cost the others. */
static int number_append_from_json(struct state *s, json_t *o, const char *where, struct read_report *rep) {
        struct state_number n = {0};
        _cleanup_(freep) char *why = NULL;
        int r = number_from_json(s, o, &n, &why);
        if (r >= 0 && state_find_number(s, n.target, n.phone_number)) {
                why = strprintf("a second record for %s on target %s (the first is kept)", n.phone_number, n.target);
                r = -EBADMSG;
        }
        if (r < 0) {
                state_number_done(s, &n);
                return r == -EBADMSG ? report_skip(rep, where, why) : r;
        }
        if (number_push(s, &n) < 0) {
                state_number_done(s, &n);
                return -ENOMEM;
        }
        return 0;
}

/* Version 1 (up to 0.1.0): one document with a "numbers" array. Read so
 * that an upgrade keeps its state; the next save writes version 2. */
static int state_from_v1(json_t *root, struct state *s, struct read_report *rep, char **ret_error) {
        int r = header_from_json(root, s);
        if (r == -EBADMSG)
                *ret_error = strdup("its header members (pass record, targets, churn ledger, quota pauses) "
                                    "are damaged");
        if (r < 0)
                return r;
        json_t *numbers = json_object_get(root, "numbers");
        if (numbers && !json_is_null(numbers)) {
                if (!json_is_array(numbers)) {
                        *ret_error = strdup("its \"numbers\" member is not an array");
                        return -EBADMSG;
                }
                size_t i;
                json_t *o;
                json_array_foreach(numbers, i, o) {
                        char where[48];
                        snprintf(where, sizeof where, "numbers[%zu]", i);
                        r = number_append_from_json(s, o, where, rep);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* The version of a document: -1 when it has none (not an object, no
 * integer "version", or one out of range). */
static int json_version(json_t *root) {
        json_t *v = json_is_object(root) ? json_object_get(root, "version") : NULL;
        return json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < INT_MAX
                       ? (int) json_integer_value(v)
                       : -1;
}

/* Reads a document of either version from f, at most max bytes.
 *
 * The header (line 1 of version 2, everything but "numbers" in version 1)
 * holds the churn ledger, the quota pauses and the pass record: losing it
 * could let the churn guard be passed, so a damaged header refuses the
 * whole file (-EBADMSG), as does a newer version (-EPROTONOSUPPORT),
 * with *ret_error saying what. A damaged number record is skipped and
 * reported in rep: the others are kept. An empty file is -ENODATA. */
static int state_read(FILE *f, size_t max, struct state **ret, struct read_report *rep, char **ret_error) {
        _cleanup_(state_freep) struct state *s = state_new();
        _cleanup_(freep) char *line = NULL;
        size_t cap = 0, total = 0, lineno = 1;
        int r;
        if (!s)
                return -ENOMEM;
        ssize_t len = getline(&line, &cap, f);
        if (len < 0)
                return ferror(f) ? -EIO : -ENODATA;
        total = (size_t) len;
        json_t *header = json_loadb(line, (size_t) len, 0, NULL);
        int version = json_version(header);
        if (version > STATE_VERSION) {
                json_decref(header);
                *ret_error = strprintf("was written by a newer version of connect-numbersd (file version %d; "
                                       "this one reads versions 1 to %d)",
                                       version, STATE_VERSION);
                return -EPROTONOSUPPORT;
        }
        if (version != STATE_VERSION) {
                /* Not a version 2 header: a version 1 document (it spans
                 * many lines), or damage. */
                json_decref(header);
                if (fseek(f, 0, SEEK_SET) < 0)
                        return -errno;
                json_t *root = json_loadf(f, 0, NULL);
                version = json_version(root);
                if (version == 1)
                        r = state_from_v1(root, s, rep, ret_error);
                else {
                        *ret_error = strdup(version > STATE_VERSION ? "was written by a newer version of connect-numbersd"
                                            : !root                  ? "has a damaged header: line 1 is not valid JSON"
                                                                     : "has a damaged header: no valid \"version\"");
                        r = version > STATE_VERSION ? -EPROTONOSUPPORT : -EBADMSG;
                }
                json_decref(root);
        } else {
                r = json_object_get(header, "numbers") ? -EBADMSG : header_from_json(header, s);
                json_decref(header);
                if (r == -EBADMSG)
                        *ret_error = strdup("has a damaged header: a member of line 1 (pass record, targets, churn "
                                            "ledger, quota pauses) has the wrong type or value");
                while (r >= 0 && (len = getline(&line, &cap, f)) >= 0) {
                        lineno++;
                        total += (size_t) len;
                        if (total > max) {
                                *ret_error = strdup("is too large");
                                r = -EFBIG;
                                break;
                        }
                        if (len == 1 && line[0] == '\n')
                                continue;
                        char where[32];
                        snprintf(where, sizeof where, "line %zu", lineno);
                        json_t *o = json_loadb(line, (size_t) len, 0, NULL);
                        r = o ? number_append_from_json(s, o, where, rep) : report_skip(rep, where, "not valid JSON");
                        json_decref(o);
                }
                if (r >= 0 && ferror(f))
                        r = -EIO;
        }
        if (r < 0)
                return r;
        s->version = STATE_VERSION;
        *ret = TAKE_PTR(s);
        return 0;
}

/* Strict: a document with any damage, even one skipped record, is
 * -EBADMSG (the fuzzer and the tests use it). */
int state_from_json(const char *text, size_t len, struct state **ret) {
        if (!text || len == 0)
                return -EBADMSG;
        FILE *f = fmemopen((void *) text, len, "r");
        if (!f)
                return -errno;
        _cleanup_(state_freep) struct state *s = NULL;
        struct read_report rep = {0};
        _cleanup_(freep) char *error = NULL;
        int r = state_read(f, len, &s, &rep, &error);
        fclose(f);
        free(rep.text);
        if (r == -ENOMEM)
                return r;
        if (r < 0 || rep.skipped > 0)
                return -EBADMSG;
        *ret = TAKE_PTR(s);
        return 0;
}

int state_read_file(const char *path, struct state **ret, char **ret_message) {
        _cleanup_(freep) char *error = NULL;
        struct read_report rep = {0};
        _cleanup_(closep) int fd = -1;
        int r = open_regular_file(path, &fd);
        if (r < 0) {
                if (r != -ENOENT && ret_message)
                        *ret_message = strprintf("state file %s: %s", path, file_error_string(r));
                return r;
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((uint64_t) st.st_size > STATE_MAX_FILE_SIZE)
                r = -EFBIG;
        else {
                FILE *f = fdopen(fd, "r");
                if (!f)
                        return -errno;
                TAKE_FD(fd);
                _cleanup_(state_freep) struct state *s = NULL;
                r = state_read(f, STATE_MAX_FILE_SIZE, &s, &rep, &error);
                fclose(f);
                if (r >= 0) {
                        if (ret_message)
                                *ret_message = rep.skipped == 0 ? NULL
                                                                : strprintf("state file %s: skipped %zu damaged record%s "
                                                                            "(%s); the other records are kept",
                                                                            path, rep.skipped,
                                                                            rep.skipped == 1 ? "" : "s", rep.text);
                        free(rep.text);
                        *ret = TAKE_PTR(s);
                        return 0;
                }
        }
        free(rep.text);
        if (ret_message)
                *ret_message = r == -EFBIG    ? strprintf("state file %s is larger than %zu MiB", path,
                                                          STATE_MAX_FILE_SIZE / 1024 / 1024)
                               : r == -ENODATA ? strprintf("state file %s is empty", path)
                               : error         ? strprintf("state file %s %s", path, error)
                                               : NULL;
        return r;
}

/* ---- files ------------------------------------------------------------ */

int state_load(const char *dir, struct state **ret, char **ret_message) {
        _cleanup_(freep) char *path = strprintf("%s/%s", dir, STATE_FILE);
        _cleanup_(freep) char *message = NULL;
        if (!path)
                return -ENOMEM;
        if (ret_message)
                *ret_message = NULL;
        _cleanup_(state_freep) struct state *s = NULL;
        int r = state_read_file(path, &s, &message);
        if (r == -ENOENT) {
                s = state_new();
                if (!s)
                        return -ENOMEM;
                r = 0;
        } else if (r >= 0 && message) {
                /* Some records were skipped: the next save drops them from
                 * state.json. A hard link keeps the file as it was, for a
                 * human, at no cost. */
                _cleanup_(freep) char *copy = strprintf("%s.damaged-%" PRIu64, path, clock_wall_sec());
                if (!copy)
                        return -ENOMEM;
                char *m = link(path, copy) >= 0 ? strprintf("%s; the file as it was is kept as %s", message, copy)
                                                : strdup(message);
                if (!m)
                        return -ENOMEM;
                free(message);
                message = m;
        } else if (r == -ENODATA) {
                /* Nothing in it to lose: keep it for a human, out of the
                 * way, and start from what the API says. */
                _cleanup_(freep) char *aside = strprintf("%s.empty-%" PRIu64, path, clock_wall_sec());
                if (!aside)
                        return -ENOMEM;
                if (rename(path, aside) < 0)
                        return -errno;
                s = state_new();
                if (!s)
                        return -ENOMEM;
                free(message);
                message = strprintf("state file %s was empty; moved it to %s and rebuilding the state from "
                                    "Amazon Connect",
                                    path, aside);
                r = 0;
        } else if (r < 0 && message) {
                /* Never discarded: its churn ledger, pauses, windows and
                 * intents keep the guards true. A human decides. */
                char *m = strprintf("%s; refusing to run without it, the file is left untouched. Run the version "
                                    "that wrote it, restore a good copy, or move it aside to start over from what "
                                    "Amazon Connect shows (its churn ledger, quota pauses, failed-claim windows "
                                    "and claim intents are then forgotten)",
                                    message);
                if (!m)
                        return -ENOMEM;
                free(message);
                message = m;
        }
        if (ret_message)
                *ret_message = TAKE_PTR(message);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

/* Writes DIR/NAME atomically: old or new, never half-written (docs/design.md
 * invariant 6). write() produces the content into the sink; the new file
 * becomes NAME only once it is complete on disk, and the rename itself is
 * made durable. */
static int write_file_atomic(const char *dir, const char *name, int (*write_fn)(struct sink *k, const void *data),
                             const void *data) {
        _cleanup_(freep) char *path = strprintf("%s/%s", dir, name);
        _cleanup_(freep) char *tmp = NULL;
        int fd, r;
        if (!path)
                return -ENOMEM;
        r = atomic_file_open(path, &fd, &tmp);
        if (r < 0)
                return r;
        struct sink k = {.fd = fd};
        r = write_fn(&k, data);
        if (r >= 0)
                r = sink_flush(&k);
        free(k.buf);
        /* No secrets inside; --status may run as another administrator. */
        return atomic_file_finish(fd, tmp, path, 0644, r);
}

static int write_state(struct sink *k, const void *data) {
        return state_write(k, data);
}

int state_save(const char *dir, const struct state *s) {
        return write_file_atomic(dir, STATE_FILE, write_state, s);
}

static int write_json_line(struct sink *k, const void *data) {
        return sink_put_line(k, (json_t *) data);
}

int state_save_pass_info(const char *dir, const struct state *s) {
        json_t *o = json_object();
        int r = o ? put_pass_record(o, s, true) : -ENOMEM;
        if (r >= 0)
                r = write_file_atomic(dir, STATE_PASS_FILE, write_json_line, o);
        json_decref(o);
        return r;
}

int state_load_pass_info(const char *dir, struct state *s) {
        _cleanup_(freep) char *path = strprintf("%s/%s", dir, STATE_PASS_FILE);
        _cleanup_(freep) char *text = NULL;
        size_t len = 0;
        if (!path)
                return -ENOMEM;
        int r = read_full_file(path, 64 * 1024, &text, &len);
        if (r < 0)
                return r;
        json_t *o = json_loadb(text, len, 0, NULL);
        if (!json_is_object(o)) {
                json_decref(o);
                return -EBADMSG;
        }
        uint64_t started = 0, finished = 0, next = 0;
        _cleanup_(freep) char *error = NULL;
        json_t *res = json_object_get(o, "last_pass_result");
        r = get_u64(o, "last_pass_started_at", &started);
        if (r >= 0)
                r = get_u64(o, "last_pass_finished_at", &finished);
        if (r >= 0)
                r = get_u64(o, "next_pass_at", &next);
        if (r >= 0)
                r = get_str(o, "last_error", &error);
        if (r >= 0 && res && !json_is_integer(res))
                r = -EBADMSG;
        /* Only a newer record than the state's own counts. */
        if (r >= 0 && finished >= s->last_pass_finished_at) {
                s->last_pass_started_at = started;
                s->last_pass_finished_at = finished;
                s->next_pass_at = next;
                if (res)
                        s->last_pass_result = (int) json_integer_value(res);
                free(s->last_error);
                s->last_error = TAKE_PTR(error);
        }
        json_decref(o);
        return r;
}

int state_lock(const char *dir, int *ret_fd) {
        _cleanup_(freep) char *path = strprintf("%s/%s", dir, STATE_LOCK_FILE);
        if (!path)
                return -ENOMEM;
        _cleanup_(closep) int fd = open(path, O_RDWR | O_CREAT | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        /* flock locks belong to the open file description: a second open,
         * even in this process, conflicts; the lock dies with the fd. */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0)
                return errno == EWOULDBLOCK ? -EBUSY : -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* ---- lookups and edits ------------------------------------------------ */

/* A pass looks every listed number up: with 10,000 numbers a linear scan
 * per lookup costs more than everything else in the pass together. The
 * index maps (target, phone number) to a position in numbers[]; adding a
 * record inserts it, removing one drops the index (positions shift), and
 * the next lookup rebuilds it. Keys of a record never change. */
#define INDEX_EMPTY SIZE_MAX

static uint64_t key_hash(const char *target, const char *phone_number) {
        /* A 0xff byte between the two: no UTF-8 text contains it. */
        return fnv1a((fnv1a(FNV_OFFSET, target) ^ 0xff) * FNV_PRIME, phone_number);
}

static void index_drop(struct state *s) {
        s->index = mfree(s->index);
        s->index_slots = 0;
}

static void index_put(struct state *s, size_t i) {
        const struct state_number *n = &s->numbers[i];
        size_t mask = s->index_slots - 1;
        for (size_t k = key_hash(n->target, n->phone_number) & mask;; k = (k + 1) & mask)
                if (s->index[k] == INDEX_EMPTY) {
                        s->index[k] = i;
                        return;
                }
}

/* After an append: the index takes the new last record, or is dropped
 * (rebuilt larger at the next lookup) when it would be more than half full. */
static void index_added(struct state *s) {
        if (s->index_slots == 0)
                return;
        if (s->n_numbers * 2 + 2 > s->index_slots)
                index_drop(s);
        else
                index_put(s, s->n_numbers - 1);
}

static int number_push(struct state *s, struct state_number *n) {
        if (array_grow((void **) &s->numbers, s->n_numbers, sizeof *s->numbers) < 0)
                return -ENOMEM;
        s->numbers[s->n_numbers++] = *n;
        *n = (struct state_number){0};
        index_added(s);
        return 0;
}

static int index_build(struct state *s) {
        size_t slots = table_slots(s->n_numbers);
        size_t *ix = malloc(slots * sizeof *ix);
        if (!ix)
                return -ENOMEM;
        for (size_t k = 0; k < slots; k++)
                ix[k] = INDEX_EMPTY;
        free(s->index);
        s->index = ix;
        s->index_slots = slots;
        for (size_t i = 0; i < s->n_numbers; i++)
                if (s->numbers[i].target && s->numbers[i].phone_number)
                        index_put(s, i);
        return 0;
}

struct state_number *state_find_number(struct state *s, const char *target, const char *phone_number) {
        if (!s || !target || !phone_number)
                return NULL;
        if (s->index_slots == 0 && index_build(s) < 0) {
                for (size_t i = 0; i < s->n_numbers; i++)
                        if (streq_ptr(s->numbers[i].phone_number, phone_number) &&
                            streq_ptr(s->numbers[i].target, target))
                                return &s->numbers[i];
                return NULL;
        }
        size_t mask = s->index_slots - 1;
        for (size_t k = key_hash(target, phone_number) & mask; s->index[k] != INDEX_EMPTY; k = (k + 1) & mask) {
                struct state_number *n = &s->numbers[s->index[k]];
                if (streq_ptr(n->phone_number, phone_number) && streq_ptr(n->target, target))
                        return n;
        }
        return NULL;
}

struct state_number *state_find_number_by_id(struct state *s, const char *id) {
        if (!s || !id)
                return NULL;
        for (size_t i = 0; i < s->n_numbers; i++)
                if (streq_ptr(s->numbers[i].id, id))
                        return &s->numbers[i];
        return NULL;
}

/* The array may move: every struct state_number pointer into it is
 * invalid after this call (and after state_remove_number). Callers keep
 * keys (target, phone number) or indices across calls, not pointers. */
struct state_number *state_add_number(struct state *s, const char *target, const char *phone_number) {
        if (!s || !target || !phone_number) {
                errno = EINVAL;
                return NULL;
        }
        struct state_number x = {.phase = PHASE_UNKNOWN};
        x.phone_number = strdup(phone_number);
        if (!x.phone_number || state_set(s, &x.target, target) < 0 ||
            array_grow((void **) &s->numbers, s->n_numbers, sizeof *s->numbers) < 0) {
                state_number_done(s, &x);
                errno = ENOMEM;
                return NULL;
        }
        struct state_number *n = &s->numbers[s->n_numbers++];
        *n = x;
        index_added(s);
        return n;
}

void state_remove_number(struct state *s, struct state_number *n) {
        if (!s || !n || n < s->numbers || n >= s->numbers + s->n_numbers)
                return;
        size_t i = (size_t) (n - s->numbers);
        state_number_done(s, n);
        memmove(s->numbers + i, s->numbers + i + 1, sizeof *s->numbers * (s->n_numbers - i - 1));
        s->n_numbers--;
        index_drop(s);
}

int state_number_set_target(struct state *s, struct state_number *n, const char *target) {
        if (!s || !n || !target)
                return -EINVAL;
        int r = state_set(s, &n->target, target);
        if (r < 0)
                return r;
        index_drop(s);
        return 0;
}

/* Finds the target by name, adding it if missing; a known target takes
 * the ARN given (the YAML is the authority). Pointers into s->targets are
 * invalid after a call that adds one. */
struct state_target *state_find_target(const struct state *s, const char *name) {
        for (size_t i = 0; s && name && i < s->n_targets; i++)
                if (streq_ptr(s->targets[i].name, name))
                        return (struct state_target *) &s->targets[i];
        return NULL;
}

struct state_target *state_get_target(struct state *s, const char *name, const char *arn) {
        if (!s || !name)
                return NULL;
        struct state_target *found = state_find_target(s, name);
        if (found) {
                if (arn && !streq_ptr(found->arn, arn) && free_and_strdup(&found->arn, arn) < 0)
                        return NULL;
                return found;
        }
        _cleanup_(freep) char *nm = strdup(name);
        _cleanup_(freep) char *a = strdup_or_null(arn);
        if (!nm || (arn && !a) || array_grow((void **) &s->targets, s->n_targets, sizeof *s->targets) < 0)
                return NULL;
        struct state_target *t = &s->targets[s->n_targets++];
        *t = (struct state_target){.name = TAKE_PTR(nm), .arn = TAKE_PTR(a)};
        return t;
}

bool state_derive_number_arn(const char *target_arn, const char *id, char buf[static STATE_ARN_MAX]) {
        if (isempty(target_arn) || isempty(id))
                return false;
        /* arn:partition:service:region:account: */
        const char *c = target_arn;
        for (int i = 0; i < 5; i++) {
                c = strchr(c, ':');
                if (!c)
                        return false;
                c++;
        }
        int k = snprintf(buf, STATE_ARN_MAX, "%.*sphone-number/%s", (int) (c - target_arn), target_arn, id);
        return k > 0 && k < STATE_ARN_MAX;
}

const char *state_number_arn(const struct state_number *n, char buf[static STATE_ARN_MAX]) {
        if (!n)
                return NULL;
        if (n->arn)
                return n->arn;
        return state_derive_number_arn(n->target_arn, n->id, buf) ? buf : NULL;
}

int state_number_set_arn(struct state_number *n, const char *arn) {
        char buf[STATE_ARN_MAX];
        if (arn && state_derive_number_arn(n->target_arn, n->id, buf) && streq(buf, arn)) {
                n->arn = mfree(n->arn);
                return 0;
        }
        if (streq_ptr(n->arn, arn))
                return 0;
        return free_and_strdup(&n->arn, arn);
}

const struct state_tag *state_number_tag(const struct state_number *n, const char *key) {
        if (!n || !key)
                return NULL;
        for (size_t i = 0; i < n->n_tags; i++)
                if (streq_ptr(n->tags[i].key, key))
                        return &n->tags[i];
        return NULL;
}

int state_churn_add(struct state_target *t, uint64_t at, bool release, const char *phone_number) {
        _cleanup_(freep) char *p = strdup_or_null(phone_number);
        if (phone_number && !p)
                return -ENOMEM;
        struct state_churn *c = realloc(t->churn, sizeof *c * (t->n_churn + 1));
        if (!c)
                return -ENOMEM;
        t->churn = c;
        t->churn[t->n_churn++] = (struct state_churn){.at = at, .release = release, .phone_number = TAKE_PTR(p)};
        return 0;
}

int state_spend_token(struct state_target *t, const char *token) {
        if (!t || isempty(token))
                return -EINVAL;
        if (state_token_spent(t, token))
                return 0;
        int r = strv_push(&t->spent_tokens, token);
        if (r < 0)
                return r;
        size_t n = strv_length(t->spent_tokens);
        if (n > STATE_SPENT_TOKENS_MAX) {
                size_t drop = n - STATE_SPENT_TOKENS_MAX;
                for (size_t i = 0; i < drop; i++)
                        free(t->spent_tokens[i]);
                memmove(t->spent_tokens, t->spent_tokens + drop, sizeof *t->spent_tokens * (n - drop + 1));
        }
        return 0;
}

bool state_token_spent(const struct state_target *t, const char *token) {
        for (char **l = t && token ? t->spent_tokens : NULL; l && *l; l++)
                if (streq(*l, token))
                        return true;
        return false;
}

void state_forget_list_digests(struct state *s) {
        for (size_t i = 0; s && i < s->n_targets; i++)
                s->targets[i].list_digest_valid = false;
}

size_t state_churn_prune(struct state_target *t, uint64_t now) {
        uint64_t oldest = now > STATE_CHURN_WINDOW_SEC ? now - STATE_CHURN_WINDOW_SEC : 0;
        size_t k = 0;
        for (size_t i = 0; i < t->n_churn; i++) {
                if (t->churn[i].at < oldest) {
                        free(t->churn[i].phone_number);
                        continue;
                }
                t->churn[k++] = t->churn[i];
        }
        t->n_churn = k;
        if (k == 0)
                t->churn = mfree(t->churn);
        return k;
}
