/* test-reconcile.c: the planner, table-driven. Every case under
 * tests/data/reconcile/ is
 *   NAME.yaml           the desired state (read with config_parse)
 *   NAME.state.json     the state before the pass ("{}": a new state). The
 *                       text may say @NOW, @NOW-1h, @NOW+90s (wall seconds
 *                       relative to NAME.now), "@DIGEST:TARGET/POOL" and
 *                       "@TDIGEST:TARGET" (the digests config_parse made).
 *   NAME.observed.json  per target name: {"list": [summaries] | "list_failed":
 *                       true, "describe": [described numbers], "not_found":
 *                       [ids]}; a described number takes the members it
 *                       lacks from the summary with its id; country and type
 *                       default to US and DID, target_arn to the target's.
 *   NAME.now            wall seconds
 *   NAME.budget         optional audit budget (default 1000)
 *   NAME.describe       optional: the ids describe_wanted must ask for, one
 *                       "TARGET ID" per line, in order
 *   NAME.plan           the expected plan: one "action target pool number
 *                       slot" line per step ("-" where empty), then
 *                       "events: kind,kind" when the pass emitted events
 *   NAME.plan2          optional: the plan after every change step of the
 *                       first was applied successfully (idempotence)
 * The test runs the pass as the executor does: ingest_list, describe_wanted,
 * ingest_describe / ingest_not_found, reconcile_plan. Every described or
 * not-found entry must have been asked for.
 * Then unit tests for the pieces: retry back-off, tokens, claim outcomes,
 * events, formatting. */
#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "config.h"
#include "pass.h"
#include "reconcile.h"
#include "status.h"
#include "state.h"

static const char *data_dir(void) {
        const char *d = getenv("CONNECT_NUMBERS_TEST_DATA");
        return d ? d : "tests/data";
}

static char *case_file(const char *name, const char *ext, bool required) {
        _cleanup_(freep) char *path = strprintf("%s/reconcile/%s.%s", data_dir(), name, ext);
        char *text = NULL;
        assert_non_null(path);
        int r = read_full_file(path, 1 << 24, &text, NULL);
        if (r == -ENOENT && !required)
                return NULL;
        if (r < 0)
                fail_msg("cannot read %s: %s", path, strerror(-r));
        return text;
}

static void strip(char *s) {
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
                s[--n] = 0;
}

static struct config *parse_config(const char *text) {
        struct config *c = NULL;
        struct config_problems problems = {0};
        int r = config_parse(text, strlen(text), &c, &problems);
        if (r < 0) {
                for (size_t i = 0; i < problems.n; i++)
                        print_error("config %u:%u: %s\n", problems.items[i].line, problems.items[i].column,
                                    problems.items[i].message);
                config_problems_clear(&problems);
                fail_msg("configuration refused: %d", r);
        }
        config_problems_clear(&problems);
        return c;
}

/* ---- state text preprocessing ------------------------------------------ */

static const char *find_digest(const struct config *c, const char *spec, bool target_only) {
        for (size_t i = 0; i < c->n_targets; i++) {
                const struct target_config *t = &c->targets[i];
                size_t l = strlen(t->name);
                if (strncmp(spec, t->name, l) != 0)
                        continue;
                if (target_only && spec[l] == 0)
                        return t->digest;
                if (!target_only && spec[l] == '/')
                        for (size_t j = 0; j < t->n_pools; j++)
                                if (streq(spec + l + 1, t->pools[j].name))
                                        return t->pools[j].digest;
        }
        fail_msg("no digest for %s", spec);
        return NULL;
}

static char *preprocess(const char *text, const struct config *c, uint64_t now) {
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        assert_non_null(f);
        for (const char *p = text; *p;) {
                if (strncmp(p, "@NOW", 4) == 0) {
                        p += 4;
                        int64_t v = (int64_t) now;
                        if (*p == '+' || *p == '-') {
                                int sign = *p == '-' ? -1 : 1;
                                char *end;
                                p++;
                                long long k = strtoll(p, &end, 10);
                                assert_true(end != p);
                                p = end;
                                if (*p == 's')
                                        p++;
                                else if (*p == 'm')
                                        k *= 60, p++;
                                else if (*p == 'h')
                                        k *= 3600, p++;
                                else if (*p == 'd')
                                        k *= 86400, p++;
                                v += sign * k;
                        }
                        fprintf(f, "%" PRId64, v);
                } else if (strncmp(p, "@DIGEST:", 8) == 0 || strncmp(p, "@TDIGEST:", 9) == 0) {
                        bool target_only = p[1] == 'T';
                        p += target_only ? 9 : 8;
                        size_t l = strcspn(p, "\"");
                        _cleanup_(freep) char *spec = strndup(p, l);
                        fputs(find_digest(c, spec, target_only), f);
                        p += l;
                } else
                        fputc(*p++, f);
        }
        assert_int_equal(fclose(f), 0);
        return out;
}

/* ---- observed numbers -------------------------------------------------- */

struct numbers {
        struct connect_number *v;
        size_t n;
};

static void numbers_clear(struct numbers *l) {
        for (size_t i = 0; i < l->n; i++) {
                struct connect_number *x = &l->v[i];
                free(x->id);
                free(x->arn);
                free(x->phone_number);
                free(x->country);
                free(x->type);
                free(x->target_arn);
                free(x->instance_id);
                free(x->description);
                for (size_t k = 0; k < x->n_tags; k++) {
                        free(x->tags[k].key);
                        free(x->tags[k].value);
                }
                free(x->tags);
                free(x->status_message);
        }
        free(l->v);
        *l = (struct numbers){0};
}

static const char *jstr(json_t *o, const char *key) {
        json_t *v = o ? json_object_get(o, key) : NULL;
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static json_t *find_by_id(json_t *list, const char *id) {
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) if (streq_ptr(jstr(e, "id"), id)) return e;
        return NULL;
}

/* One connect_number from an entry, the summary with its id filling in. */
static void number_from(struct connect_number *x, json_t *e, json_t *summary, const char *target_arn,
                        bool described) {
        const char *id = jstr(e, "id");
        const char *arn = jstr(e, "arn") ? jstr(e, "arn") : jstr(summary, "arn");
        const char *phone = jstr(e, "phone_number") ? jstr(e, "phone_number") : jstr(summary, "phone_number");
        const char *country = jstr(e, "country") ? jstr(e, "country") : jstr(summary, "country");
        const char *type = jstr(e, "type") ? jstr(e, "type") : jstr(summary, "type");
        json_t *desc = json_object_get(e, "description");
        if (!desc)
                desc = json_object_get(summary, "description");
        *x = (struct connect_number){0};
        x->id = strdup_or_null(id);
        x->arn = arn ? strdup(arn) : strprintf("arn:aws:connect:us-east-1:111122223333:phone-number/%s", id);
        x->phone_number = strdup_or_null(phone);
        x->country = strdup(country ? country : "US");
        x->type = strdup(type ? type : "DID");
        x->target_arn = strdup(jstr(e, "target_arn") ? jstr(e, "target_arn") : target_arn);
        x->description = json_is_string(desc) ? strdup(json_string_value(desc)) : NULL;
        x->described = described;
        json_t *tags = json_object_get(e, "tags");
        if (json_is_object(tags) && json_object_size(tags) > 0) {
                x->tags = calloc(json_object_size(tags), sizeof *x->tags);
                const char *k;
                json_t *v;
                json_object_foreach(tags, k, v) {
                        x->tags[x->n_tags].key = strdup(k);
                        x->tags[x->n_tags].value = strdup(json_string_value(v));
                        x->n_tags++;
                }
        }
        const char *status = jstr(e, "status");
        x->status = !status                      ? CONNECT_STATUS_UNKNOWN
                    : streq(status, "CLAIMED")     ? CONNECT_STATUS_CLAIMED
                    : streq(status, "IN_PROGRESS") ? CONNECT_STATUS_IN_PROGRESS
                    : streq(status, "FAILED")      ? CONNECT_STATUS_FAILED
                                                   : CONNECT_STATUS_UNKNOWN;
        x->status_message = strdup_or_null(jstr(e, "status_message"));
}

static const char *event_kind_name(enum lifecycle_event_kind k) {
        static const char *const names[] = {
                [EVENT_CLAIMED] = "claimed",         [EVENT_CLAIM_FAILED] = "claim_failed",
                [EVENT_WINDOW_EXPIRED] = "window_expired", [EVENT_QUOTA] = "quota",
                [EVENT_QUOTA_CLEARED] = "quota_cleared", [EVENT_NO_NUMBERS] = "no_numbers",
                [EVENT_RELEASED] = "released",       [EVENT_NUMBER_GONE] = "number_gone",
                [EVENT_MOVED_AWAY] = "moved_away",   [EVENT_MOVED] = "moved",
                [EVENT_MOVE_FAILED] = "move_failed", [EVENT_PIN_UNAVAILABLE] = "pin_unavailable",
                [EVENT_PIN_LOST] = "pin_lost",
                [EVENT_NOTE] = "note",
        };
        return names[k];
}

static void events_append(struct lifecycle_events *all, struct lifecycle_events *ev) {
        if (ev->n == 0)
                return;
        all->items = realloc(all->items, sizeof *all->items * (all->n + ev->n));
        assert_non_null(all->items);
        memcpy(all->items + all->n, ev->items, sizeof *ev->items * ev->n);
        all->n += ev->n;
        free(ev->items);
        *ev = (struct lifecycle_events){0};
}

static char *plan_lines(const struct plan *p, const struct lifecycle_events *ev) {
        char *out = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&out, &size);
        assert_non_null(f);
        for (size_t i = 0; i < p->n_steps; i++) {
                const struct plan_step *s = &p->steps[i];
                fprintf(f, "%s %s %s %s ", step_action_name(s->action), s->target ? s->target : "-",
                        s->pool ? s->pool : "-", s->phone_number ? s->phone_number : "-");
                if (s->action == STEP_CLAIM || s->action == STEP_REPLAY_CLAIM)
                        fprintf(f, "%u\n", s->slot);
                else
                        fprintf(f, "-\n");
        }
        if (ev && ev->n > 0) {
                fprintf(f, "events: ");
                for (size_t i = 0; i < ev->n; i++)
                        fprintf(f, "%s%s", i ? "," : "", event_kind_name(ev->items[i].kind));
                fprintf(f, "\n");
        }
        assert_int_equal(fclose(f), 0);
        strip(out);
        return out;
}

static void compare(const char *name, const char *what, const char *expected, const char *actual) {
        if (streq(expected, actual))
                return;
        print_error("case %s, %s\n--- expected\n%s\n--- actual\n%s\n---\n", name, what, expected, actual);
        fail_msg("case %s: %s differs", name, what);
}

/* Every step well-formed for the executor. */
static void check_steps(const struct config *c, const struct plan *p) {
        for (size_t i = 0; i < p->n_steps; i++) {
                const struct plan_step *s = &p->steps[i];
                assert_non_null(s->target);
                assert_non_null(s->detail);
                const struct target_config *t = config_find_target(c, s->target);
                switch (s->action) {
                case STEP_CLAIM:
                        assert_non_null(t);
                        assert_int_equal(strlen(s->client_token), 36);
                        assert_int_equal(strlen(s->view_digest), 64);
                        assert_non_null(s->country);
                        assert_non_null(s->type);
                        assert_true(s->n_tags >= 1);
                        assert_string_equal(s->tags[0].key, OWNERSHIP_TAG_KEY);
                        assert_non_null(s->region);
                        break;
                case STEP_RETRY_CLAIM:
                case STEP_RELEASE:
                        assert_int_equal(strlen(s->client_token), 36);
                        assert_non_null(s->phone_number);
                        break;
                case STEP_TAG:
                case STEP_ADOPT:
                        assert_true(s->n_tags >= 1);
                        assert_non_null(s->phone_number_arn);
                        break;
                case STEP_UNTAG:
                        assert_non_null(s->keys);
                        assert_non_null(s->keys[0]);
                        assert_non_null(s->phone_number_arn);
                        break;
                case STEP_ASSOCIATE_FLOW:
                        assert_non_null(s->contact_flow);
                        assert_non_null(s->instance_id);
                        assert_non_null(s->phone_number_id);
                        break;
                case STEP_UPDATE_DESCRIPTION:
                        assert_non_null(s->description);
                        assert_non_null(s->phone_number_id);
                        break;
                default:
                        break;
                }
        }
}

/* The formats parse and agree with the plan. */
static void check_formats(const struct plan *p) {
        _cleanup_(freep) char *text = NULL, *js = NULL;
        assert_int_equal(plan_format_text(p, &text), 0);
        assert_int_equal(plan_format_json(p, &js), 0);
        if (p->n_steps == 0)
                assert_string_equal(text, "nothing to do\n");
        json_error_t err;
        json_t *root = json_loads(js, 0, &err);
        assert_non_null(root);
        assert_int_equal(json_array_size(json_object_get(root, "steps")), p->n_steps);
        assert_int_equal(json_array_size(json_object_get(root, "pools")), p->n_pools);
        assert_int_equal(json_integer_value(json_object_get(root, "changes")), plan_count_changes(p));
        json_decref(root);
}

/* The state survives its file form unchanged. */
static void check_state_round_trip(const struct state *s) {
        _cleanup_(freep) char *a = NULL, *b = NULL;
        _cleanup_(state_freep) struct state *s2 = NULL;
        assert_int_equal(state_to_json(s, &a), 0);
        assert_int_equal(state_from_json(a, strlen(a), &s2), 0);
        assert_int_equal(state_to_json(s2, &b), 0);
        assert_string_equal(a, b);
}

/* Applies every change step as if Connect said yes, the way the executor
 * drives the outcome functions. */
static void simulate_apply(const struct config *c, struct state *s, const struct plan *p, uint64_t now) {
        unsigned seq = 0;
        for (size_t i = 0; i < p->n_steps; i++) {
                const struct plan_step *st = &p->steps[i];
                struct lifecycle_events ev = {0};
                struct connect_number cn = {0};
                struct state_number *n = NULL;
                char id[64], arn[128], phone[32];
                switch (st->action) {
                case STEP_CLAIM:
                        snprintf(phone, sizeof phone, "%s%0*u", st->prefix ? st->prefix : "+1999",
                                 (int) (12 - strlen(st->prefix ? st->prefix : "+1999")), 900 + seq);
                        n = lifecycle_claim_intent(s, st, phone, st->client_token, now);
                        assert_non_null(n);
                        break;
                case STEP_REPLAY_CLAIM:
                        n = state_find_number(s, st->target, st->phone_number);
                        assert_non_null(n);
                        break;
                case STEP_RETRY_CLAIM:
                        /* The executor's one retry path: an intent first. */
                        n = lifecycle_claim_intent(s, st, st->phone_number, st->client_token, now);
                        assert_non_null(n);
                        assert_int_equal(n->phase, PHASE_INTENT);
                        break;
                case STEP_GIVE_UP:
                        lifecycle_give_up(s, st, now, &ev);
                        break;
                case STEP_RELEASE:
                        lifecycle_released(s, st, now, &ev);
                        break;
                default:
                        if (step_action_is_change(st->action))
                                lifecycle_applied(s, c, st, now);
                        break;
                }
                lifecycle_events_clear(&ev);
                if (!n)
                        continue;
                snprintf(id, sizeof id, "sim-%u", seq);
                snprintf(arn, sizeof arn, "arn:aws:connect:us-east-1:111122223333:phone-number/sim-%u", seq);
                seq++;
                char known_arn[STATE_ARN_MAX];
                const char *have_arn = state_number_arn(n, known_arn);
                lifecycle_claim_answered(s, n, n->id ? n->id : id, have_arn ? have_arn : arn, now);
                assert_int_equal(n->phase, PHASE_IN_PROGRESS);
                /* Connect applies what the claim request carried. */
                cn.id = n->id;
                cn.arn = (char *) state_number_arn(n, known_arn);
                cn.phone_number = n->phone_number;
                cn.country = (char *) n->country;
                cn.type = (char *) n->type;
                cn.description = (char *) n->claim_description;
                cn.described = true;
                cn.status = CONNECT_STATUS_CLAIMED;
                struct connect_tag tags[64];
                size_t k = 0;
                const struct config_tag *src = st->action == STEP_REPLAY_CLAIM ? NULL : st->tags;
                size_t n_src = st->action == STEP_REPLAY_CLAIM ? 0 : st->n_tags;
                for (; k < n_src && k < ELEMENTSOF(tags); k++)
                        tags[k] = (struct connect_tag){src[k].key, src[k].value};
                for (size_t j = 0; st->action == STEP_REPLAY_CLAIM && j < n->n_claim_tags && k < ELEMENTSOF(tags); j++)
                        tags[k++] = (struct connect_tag){(char *) n->claim_tags[j].key,
                                                         (char *) n->claim_tags[j].value};
                cn.tags = tags;
                cn.n_tags = k;
                /* The describe copies what it keeps: give it private strings. */
                struct connect_number copy = {
                        .id = strdup(cn.id), .arn = strdup(cn.arn), .phone_number = strdup(cn.phone_number),
                        .country = strdup_or_null(cn.country), .type = strdup_or_null(cn.type),
                        .description = strdup_or_null(cn.description), .described = true,
                        .status = CONNECT_STATUS_CLAIMED, .tags = cn.tags, .n_tags = cn.n_tags,
                };
                assert_int_equal(lifecycle_ingest_describe(s, c, st->target, &copy, now, &ev), 0);
                free(copy.id);
                free(copy.arn);
                free(copy.phone_number);
                free(copy.country);
                free(copy.type);
                free(copy.description);
                lifecycle_events_clear(&ev);
        }
        /* A fresh list would show the numbers claimed. */
        for (size_t i = 0; i < s->n_numbers; i++)
                if (s->numbers[i].phase == PHASE_CLAIMED)
                        s->numbers[i].listed = true;
}

static void run_case(void **state) {
        const char *name = *state;
        _cleanup_(freep) char *yaml = case_file(name, "yaml", true);
        _cleanup_(freep) char *state_text = case_file(name, "state.json", true);
        _cleanup_(freep) char *observed_text = case_file(name, "observed.json", true);
        _cleanup_(freep) char *now_text = case_file(name, "now", true);
        _cleanup_(freep) char *budget_text = case_file(name, "budget", false);
        _cleanup_(freep) char *expected_describe = case_file(name, "describe", false);
        _cleanup_(freep) char *expected = case_file(name, "plan", true);
        _cleanup_(freep) char *expected2 = case_file(name, "plan2", false);
        _cleanup_(config_freep) struct config *c = parse_config(yaml);
        uint64_t now = strtoull(now_text, NULL, 10);
        unsigned budget = budget_text ? (unsigned) strtoul(budget_text, NULL, 10) : 1000;
        assert_true(now > 0);

        _cleanup_(state_freep) struct state *s = NULL;
        strip(state_text);
        if (streq(state_text, "{}"))
                s = state_new();
        else {
                _cleanup_(freep) char *pre = preprocess(state_text, c, now);
                int r = state_from_json(pre, strlen(pre), &s);
                if (r < 0)
                        fail_msg("case %s: state refused (%d):\n%s", name, r, pre);
        }
        json_error_t err;
        json_t *observed = json_loads(observed_text, 0, &err);
        if (!observed)
                fail_msg("case %s: observed.json: %s at line %d", name, err.text, err.line);

        /* 1. list: every target, and its previous_arns (observed under the ARN) */
        for (size_t i = 0; i < c->n_targets; i++) {
                for (size_t j = 0; j <= c->targets[i].n_previous_arns; j++) {
                        const struct target_config *t = &c->targets[i];
                        const char *src = j == 0 ? t->name : t->previous_arns[j - 1];
                        const char *src_arn = j == 0 ? t->arn : t->previous_arns[j - 1];
                        json_t *o = json_object_get(observed, src);
                        if (json_is_true(json_object_get(o, "list_failed"))) {
                                lifecycle_list_failed(s, src);
                                continue;
                        }
                        json_t *list = json_object_get(o, "list");
                        struct numbers l = {0};
                        l.v = calloc(json_array_size(list) + 1, sizeof *l.v);
                        size_t k;
                        json_t *e;
                        json_array_foreach(list, k, e) number_from(&l.v[l.n++], e, NULL, src_arn, false);
                        assert_int_equal(lifecycle_ingest_list(s, c, src, l.v, l.n), 0);
                        numbers_clear(&l);
                }
        }

        /* 2. describe */
        struct lifecycle_events all = {0}, ev = {0};
        _cleanup_(strv_freep) char **ids = NULL;
        assert_int_equal(reconcile_describe_wanted(c, s, now, budget, &ids), 0);
        assert_non_null(ids);
        if (expected_describe) {
                char *got = NULL;
                size_t size = 0;
                FILE *f = open_memstream(&got, &size);
                for (char **i = ids; *i; i++) {
                        const char *tab = strchr(*i, '\t');
                        assert_non_null(tab);
                        fprintf(f, "%.*s %s\n", (int) (tab - *i), *i, tab + 1);
                }
                fclose(f);
                strip(got);
                strip(expected_describe);
                compare(name, "describe", expected_describe, got);
                free(got);
        }
        size_t used = 0, entries = 0;
        const char *key;
        json_t *o;
        json_object_foreach(observed, key, o) {
                entries += json_array_size(json_object_get(o, "describe"));
                entries += json_array_size(json_object_get(o, "not_found"));
        }
        for (char **i = ids; *i; i++) {
                char *tab = strchr(*i, '\t');
                _cleanup_(freep) char *target = strndup(*i, (size_t) (tab - *i));
                const char *id = tab + 1;
                json_t *to = json_object_get(observed, target);
                json_t *d = find_by_id(json_object_get(to, "describe"), id);
                const char *src_arn = NULL;
                assert_true(lifecycle_source(c, target, &src_arn, NULL));
                if (d) {
                        struct connect_number x;
                        number_from(&x, d, find_by_id(json_object_get(to, "list"), id), src_arn, true);
                        assert_int_equal(lifecycle_ingest_describe(s, c, target, &x, now, &ev), 0);
                        struct numbers one = {.v = malloc(sizeof x), .n = 1};
                        one.v[0] = x;
                        numbers_clear(&one);
                        used++;
                } else {
                        size_t k;
                        json_t *e;
                        json_array_foreach(json_object_get(to, "not_found"), k, e) {
                                if (streq(json_string_value(e), id)) {
                                        assert_int_equal(lifecycle_ingest_not_found(s, target, id, now, &ev), 0);
                                        used++;
                                }
                        }
                }
                events_append(&all, &ev);
        }
        if (used != entries)
                fail_msg("case %s: %zu observed describe answers, %zu asked for", name, entries, used);
        json_decref(observed);

        /* 3. what time decides, then the plan (which must not change the
         * state), then the give-ups the executor applies at once. */
        lifecycle_tick(s, c, now, &ev);
        events_append(&all, &ev);
        _cleanup_(freep) char *before = NULL;
        assert_int_equal(state_to_json(s, &before), 0);
        _cleanup_(plan_freep) struct plan *p = NULL;
        assert_int_equal(reconcile_plan(c, s, now, &p), 0);
        _cleanup_(freep) char *after = NULL;
        assert_int_equal(state_to_json(s, &after), 0);
        if (!streq(before, after))
                fail_msg("case %s: reconcile_plan changed the state", name);
        /* Pure: the same inputs give the same plan, byte for byte. */
        _cleanup_(plan_freep) struct plan *again = NULL;
        assert_int_equal(reconcile_plan(c, s, now, &again), 0);
        _cleanup_(freep) char *t1 = NULL, *t2 = NULL, *j1 = NULL, *j2 = NULL;
        assert_int_equal(plan_format_text(p, &t1), 0);
        assert_int_equal(plan_format_text(again, &t2), 0);
        assert_int_equal(plan_format_json(p, &j1), 0);
        assert_int_equal(plan_format_json(again, &j2), 0);
        assert_string_equal(t1, t2);
        assert_string_equal(j1, j2);
        for (size_t i = 0; i < p->n_steps; i++)
                assert_string_equal(p->steps[i].client_token, again->steps[i].client_token);
        for (size_t i = 0; i < p->n_steps; i++)
                if (p->steps[i].action == STEP_GIVE_UP) {
                        lifecycle_give_up(s, &p->steps[i], now, &ev);
                        events_append(&all, &ev);
                }
        _cleanup_(freep) char *got = plan_lines(p, &all);
        strip(expected);
        compare(name, "plan", expected, got);
        check_steps(c, p);
        check_formats(p);
        check_state_round_trip(s);
        lifecycle_events_clear(&all);

        if (expected2) {
                simulate_apply(c, s, p, now);
                _cleanup_(plan_freep) struct plan *p2 = NULL;
                lifecycle_tick(s, c, now, &ev);
                lifecycle_events_clear(&ev);
                assert_int_equal(reconcile_plan(c, s, now, &p2), 0);
                _cleanup_(freep) char *got2 = plan_lines(p2, NULL);
                strip(expected2);
                compare(name, "plan after applying", expected2, got2);
                check_state_round_trip(s);
        }
}

/* ---- unit tests ----------------------------------------------------------- */

static const char BASE_YAML[] =
        "quota_backoff: 6h\n"
        "targets:\n"
        "  support-us:\n"
        "    arn: arn:aws:connect:us-east-1:111122223333:instance/0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11\n"
        "    quota: 5\n"
        "    pools:\n"
        "      main:\n"
        "        country: US\n"
        "        type: DID\n"
        "        count: 2\n"
        "        prefix: \"+1206\"\n"
        "        description: Support main line\n"
        "        tags: {team: support}\n";

#define NOW UINT64_C(1800000000)

/* A record of pool support-us/main in the given phase (FAILED ones inside
 * their window, with their next retry). */
static void add_record(struct state *s, const char *phone, enum number_phase phase) {
        struct state_number *n = state_add_number(s, "support-us", phone);
        assert_non_null(n);
        assert_int_equal(state_set(s, &n->pool, "main"), 0);
        n->phase = phase;
        n->listed = phase == PHASE_CLAIMED;
        if (phase == PHASE_FAILED) {
                n->first_failure_at = NOW - 60;
                n->next_retry_at = NOW + 300;
                n->quota_failure = true;
        }
}

/* The counts operators read keep each kind apart (the cases an operator
 * found misleading): 2 claimed and 2 failed at the quota are not "4/4
 * held"; 3 held for a count of 1 show their excess; --status shows 2
 * claimed and 1 failed as such. */
static void test_counts_say_what_is_true(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        _cleanup_(state_freep) struct state *s = state_new();
        add_record(s, "+12065550101", PHASE_CLAIMED);
        add_record(s, "+12065550102", PHASE_CLAIMED);
        add_record(s, "+12065550103", PHASE_FAILED);
        add_record(s, "+12065550104", PHASE_FAILED);
        struct pool_figures f;
        lifecycle_pool_figures(s, "support-us", "main", 4, NOW, &f);
        assert_int_equal(f.desired, 4);
        assert_int_equal(f.claimed, 2);
        assert_int_equal(f.failed_pending, 2);
        assert_int_equal(f.in_progress, 0);
        assert_int_equal(f.excess, 0);
        assert_int_equal(f.next_retry_at, NOW + 300);
        assert_int_equal(f.earliest_deadline, NOW - 60 + LIFECYCLE_WINDOW_SEC);

        /* The pass record and STATUS= from those figures. */
        struct pass_result r = {.desired = 4, .claimed = 2, .failed_pending = 2, .next_retry_at = NOW + 300,
                                .earliest_deadline = NOW - 60 + LIFECYCLE_WINDOW_SEC, .exit_status = 75};
        _cleanup_(freep) char *sum = pass_result_summary(&r, c, USEC_INFINITY);
        assert_non_null(sum);
        assert_null(strstr(sum, "4/4"));
        assert_null(strstr(sum, "held"));
        assert_non_null(strstr(sum, "2 of 4 numbers claimed on 1 target"));
        assert_non_null(strstr(sum, "2 failed claims awaiting a retry (next "));

        /* Three claimed for a count of one: claimed 3, excess 2. */
        add_record(s, "+12065550105", PHASE_CLAIMED);
        lifecycle_pool_figures(s, "support-us", "main", 1, NOW, &f);
        assert_int_equal(f.claimed, 3);
        assert_int_equal(f.excess, 2);

        /* --status: 2 claimed, 1 failed (the YAML wants 2). */
        _cleanup_(state_freep) struct state *s2 = state_new();
        add_record(s2, "+12065550101", PHASE_CLAIMED);
        add_record(s2, "+12065550102", PHASE_CLAIMED);
        add_record(s2, "+12065550103", PHASE_FAILED);
        _cleanup_(freep) char *json = NULL, *text = NULL;
        assert_int_equal(status_format(s2, c, NOW, true, &json), 0);
        json_error_t err;
        json_t *root = json_loads(json, 0, &err);
        assert_non_null(root);
        json_t *pool = json_array_get(json_object_get(root, "pools"), 0);
        assert_int_equal(json_integer_value(json_object_get(pool, "desired")), 2);
        assert_int_equal(json_integer_value(json_object_get(pool, "claimed")), 2);
        assert_int_equal(json_integer_value(json_object_get(pool, "failed_pending")), 1);
        assert_int_equal(json_integer_value(json_object_get(pool, "in_progress")), 0);
        assert_int_equal(json_integer_value(json_object_get(pool, "moving")), 0);
        assert_int_equal(json_integer_value(json_object_get(pool, "pins_missing")), 0);
        assert_int_equal(json_integer_value(json_object_get(pool, "excess")), 0);
        assert_null(json_object_get(pool, "held"));
        json_decref(root);
        assert_int_equal(status_format(s2, c, NOW, false, &text), 0);
        assert_null(strstr(text, "HELD"));
        assert_non_null(strstr(text, "support-us               main                   2       2           0      1"));
}

static void test_next_retry_at(void **unused) {
        (void) unused;
        uint64_t ffa = NOW - 100, end = ffa + LIFECYCLE_WINDOW_SEC;
        assert_int_equal(lifecycle_next_retry_at(0, ffa, NOW, false, 21600), NOW + 60);
        assert_int_equal(lifecycle_next_retry_at(1, ffa, NOW, false, 21600), NOW + 60);
        assert_int_equal(lifecycle_next_retry_at(2, ffa, NOW, false, 21600), NOW + 300);
        assert_int_equal(lifecycle_next_retry_at(3, ffa, NOW, false, 21600), NOW + 900);
        assert_int_equal(lifecycle_next_retry_at(4, ffa, NOW, false, 21600), NOW + 3600);
        assert_int_equal(lifecycle_next_retry_at(40, ffa, NOW, false, 21600), NOW + 3600);
        /* quota: the back-off */
        assert_int_equal(lifecycle_next_retry_at(1, ffa, NOW, true, 21600), NOW + 21600);
        /* never past the window's end minus a minute ... */
        assert_int_equal(lifecycle_next_retry_at(1, ffa, NOW, true, 7 * 86400), end - 60);
        assert_int_equal(lifecycle_next_retry_at(5, ffa, end - 1000, false, 0), end - 60);
        /* ... and never before now */
        assert_int_equal(lifecycle_next_retry_at(5, ffa, end - 30, false, 0), end - 30);
        assert_int_equal(lifecycle_next_retry_at(5, ffa, end + 500, false, 0), end + 500);
        /* no window known: plain back-off */
        assert_int_equal(lifecycle_next_retry_at(2, 0, NOW, false, 0), NOW + 300);
}

static bool is_lower_uuid(const char *u) {
        if (strlen(u) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;
                if (dash ? u[i] != '-' : !((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f')))
                        return false;
        }
        return u[14] == '4' && strchr("89ab", u[19]);
}

static void test_claim_token(void **unused) {
        (void) unused;
        char a[37], b[37], x[37];
        reconcile_claim_token("support-us", "main", "digest", 0, 0, a);
        reconcile_claim_token("support-us", "main", "digest", 0, 0, b);
        assert_true(is_lower_uuid(a));
        assert_string_equal(a, b);
        /* Each input changes the token. */
        reconcile_claim_token("support-uS", "main", "digest", 0, 0, x);
        assert_string_not_equal(a, x);
        reconcile_claim_token("support-us", "mainx", "digest", 0, 0, x);
        assert_string_not_equal(a, x);
        reconcile_claim_token("support-us", "main", "digesT", 0, 0, x);
        assert_string_not_equal(a, x);
        reconcile_claim_token("support-us", "main", "digest", 1, 0, x);
        assert_string_not_equal(a, x);
        reconcile_claim_token("support-us", "main", "digest", 0, 1, x);
        assert_string_not_equal(a, x);
        /* No ambiguity between fields. */
        reconcile_claim_token("support-us/main", "", "digest", 0, 0, x);
        assert_string_not_equal(a, x);
        reconcile_claim_token("support-us", "main", "digest", 1, 1, a);
        reconcile_claim_token("support-us", "main", "digest", 11, 0, b);
        assert_string_not_equal(a, b);
        /* Long inputs are fine. */
        char longv[3000];
        memset(longv, 'v', sizeof longv - 1);
        longv[sizeof longv - 1] = 0;
        reconcile_claim_token("support-us", "main", longv, 0, 0, x);
        assert_true(is_lower_uuid(x));
        longv[2000] = 'w';
        reconcile_claim_token("support-us", "main", longv, 0, 0, a);
        assert_string_not_equal(a, x);
}

static void test_action_names(void **unused) {
        (void) unused;
        static const char *const names[] = {
                "claim", "retry_claim", "replay_claim", "give_up", "update_description", "tag", "untag",
                "associate_flow", "adopt", "release", "report_excess", "report_orphan", "report_mismatch",
                "report_unmanaged", "report_quota", "report_unknown", "report_moved", "move", "claim_pinned",
                "take_over", "report_waiting",
        };
        assert_int_equal(ELEMENTSOF(names), _STEP_ACTION_MAX);
        for (int a = 0; a < _STEP_ACTION_MAX; a++) {
                assert_string_equal(step_action_name(a), names[a]);
                assert_int_equal(step_action_is_change(a), strncmp(names[a], "report_", 7) != 0);
        }
}

/* A plan for BASE_YAML on an empty, listed state. */
static struct plan *fresh_plan(const struct config *c, struct state *s) {
        struct plan *p = NULL;
        struct lifecycle_events ev = {0};
        assert_int_equal(lifecycle_ingest_list(s, c, "support-us", NULL, 0), 0);
        assert_int_equal(reconcile_plan(c, s, NOW, &p), 0);
        assert_int_equal(ev.n, 0);
        return p;
}

/* A described number as Connect shows a claim of BASE_YAML's pool: its
 * description and tags when owner is set, none otherwise. */
static struct connect_number described(const char *id, const char *phone, const char *owner,
                                       enum connect_number_status status, const char *message) {
        static struct connect_tag tags[2];
        tags[0] = (struct connect_tag){(char *) OWNERSHIP_TAG_KEY, (char *) owner};
        tags[1] = (struct connect_tag){(char *) "team", (char *) "support"};
        return (struct connect_number){
                .id = (char *) id, .arn = (char *) "arn:aws:connect:us-east-1:111122223333:phone-number/x",
                .phone_number = (char *) phone, .country = (char *) "US", .type = (char *) "DID",
                .description = owner ? (char *) "Support main line" : NULL, .described = true,
                .tags = owner ? tags : NULL, .n_tags = owner ? 2 : 0, .status = status,
                .status_message = (char *) message,
        };
}

static void test_claim_lifecycle(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        _cleanup_(state_freep) struct state *s = state_new();
        _cleanup_(plan_freep) struct plan *p = fresh_plan(c, s);
        struct lifecycle_events ev = {0};
        assert_int_equal(p->n_steps, 2);
        assert_int_equal(p->steps[0].action, STEP_CLAIM);
        assert_int_equal(p->steps[1].slot, 1);
        assert_string_equal(p->steps[0].prefix, "+1206");
        assert_string_equal(p->steps[0].description, "Support main line");
        assert_int_equal(p->steps[0].n_tags, 2);
        assert_string_equal(p->steps[0].tags[0].value, "support-us/main");
        assert_string_equal(p->steps[0].tags[1].key, "team");
        assert_string_equal(p->steps[0].region, "us-east-1");
        assert_string_not_equal(p->steps[0].client_token, p->steps[1].client_token);

        /* Claim 1: intent, 200, CLAIMED. */
        struct state_number *n = lifecycle_claim_intent(s, &p->steps[0], "+12065550100", p->steps[0].client_token,
                                                        NOW);
        assert_non_null(n);
        assert_int_equal(n->phase, PHASE_INTENT);
        assert_string_equal(n->client_token, p->steps[0].client_token);
        assert_string_equal(n->claim_description, "Support main line");
        assert_int_equal(n->n_claim_tags, 2);
        assert_int_equal(n->attempts, 1);
        /* The same number cannot be claimed twice. */
        assert_null(lifecycle_claim_intent(s, &p->steps[1], "+12065550100", p->steps[1].client_token, NOW));
        assert_int_equal(errno, EEXIST);
        lifecycle_claim_answered(s, n, "id-100", "arn:100", NOW + 1);
        assert_int_equal(n->phase, PHASE_IN_PROGRESS);
        struct connect_number cn = described("id-100", "+12065550100", "support-us/main", CONNECT_STATUS_CLAIMED, NULL);
        assert_int_equal(lifecycle_ingest_describe(s, c, "support-us", &cn, NOW + 5, &ev), 0);
        n = state_find_number(s, "support-us", "+12065550100");
        assert_int_equal(n->phase, PHASE_CLAIMED);
        assert_int_equal(n->claimed_at, NOW);
        assert_null(n->client_token);
        assert_string_equal(n->pool_digest, c->targets[0].pools[0].digest);
        assert_int_equal(ev.n, 1);
        assert_int_equal(ev.items[0].kind, EVENT_CLAIMED);
        assert_string_equal(ev.items[0].phone_number, "+12065550100");
        assert_string_equal(ev.items[0].pool, "main");
        lifecycle_events_clear(&ev);
        /* Described again: no second event, no second churn entry. */
        assert_int_equal(lifecycle_ingest_describe(s, c, "support-us", &cn, NOW + 6, &ev), 0);
        assert_int_equal(ev.n, 0);
        assert_int_equal(s->targets[0].n_churn, 1);
        /* IN_PROGRESS on a CLAIMED number is a metadata update, not a claim. */
        cn.status = CONNECT_STATUS_IN_PROGRESS;
        assert_int_equal(lifecycle_ingest_describe(s, c, "support-us", &cn, NOW + 7, &ev), 0);
        assert_int_equal(state_find_number(s, "support-us", "+12065550100")->phase, PHASE_CLAIMED);
        cn.status = CONNECT_STATUS_CLAIMED;
        assert_int_equal(lifecycle_ingest_describe(s, c, "support-us", &cn, NOW + 8, &ev), 0);
        assert_int_equal(ev.n, 0);
        assert_int_equal(s->targets[0].n_churn, 1);

        /* Claim 2: FAILED -> window from the send time, retry in 60 s. */
        n = lifecycle_claim_intent(s, &p->steps[1], "+12065550101", p->steps[1].client_token, NOW + 10);
        assert_non_null(n);
        lifecycle_claim_answered(s, n, "id-101", "arn:101", NOW + 11);
        cn = described("id-101", "+12065550101", "support-us/main", CONNECT_STATUS_FAILED, "Claim failed");
        assert_int_equal(lifecycle_ingest_describe(s, c, "support-us", &cn, NOW + 20, &ev), 0);
        n = state_find_number(s, "support-us", "+12065550101");
        assert_int_equal(n->phase, PHASE_FAILED);
        assert_int_equal(n->first_failure_at, NOW + 10);
        assert_int_equal(n->next_retry_at, NOW + 20 + 60);
        assert_false(n->quota_failure);
        assert_string_equal(n->failure_message, "Claim failed");
        assert_int_equal(ev.n, 1);
        assert_int_equal(ev.items[0].kind, EVENT_CLAIM_FAILED);
        assert_int_equal(ev.items[0].deadline, NOW + 10 + LIFECYCLE_WINDOW_SEC);
        lifecycle_events_clear(&ev);
        assert_int_equal(s->targets[0].n_churn, 1);

        /* The plan: nothing to claim (held 2), a retry once due. */
        _cleanup_(plan_freep) struct plan *p2 = NULL;
        assert_int_equal(reconcile_plan(c, s, NOW + 30, &p2), 0);
        assert_int_equal(plan_count_changes(p2), 0);
        assert_int_equal(p2->next_wakeup_at, NOW + 80);
        assert_int_equal(p2->pools[0].f.claimed + p2->pools[0].f.in_progress, 1);
        assert_int_equal(p2->pools[0].f.failed_pending, 1);
        assert_int_equal(p2->pools[0].f.earliest_deadline, NOW + 10 + LIFECYCLE_WINDOW_SEC);
        assert_int_equal(p2->pools[0].f.next_retry_at, NOW + 80);
        _cleanup_(plan_freep) struct plan *p3 = NULL;
        assert_int_equal(reconcile_plan(c, s, NOW + 80, &p3), 0);
        assert_int_equal(p3->n_steps, 1);
        assert_int_equal(p3->steps[0].action, STEP_RETRY_CLAIM);
        char token[37];
        reconcile_claim_token("support-us", "main", "retry:+12065550101", 0, 1, token);
        assert_string_equal(p3->steps[0].client_token, token);
        assert_int_equal(ev.n, 0);
}

static void test_quota_episode(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        _cleanup_(state_freep) struct state *s = state_new();
        _cleanup_(plan_freep) struct plan *p = fresh_plan(c, s);
        struct lifecycle_events ev = {0};

        /* First claim FAILED with the quota message. */
        struct state_number *n = lifecycle_claim_intent(s, &p->steps[0], "+12065550100", p->steps[0].client_token,
                                                        NOW);
        lifecycle_claim_answered(s, n, "id-100", "arn:100", NOW);
        struct connect_number cn = described("id-100", "+12065550100", "support-us/main", CONNECT_STATUS_FAILED,
                                             "You've reached the LIMIT of claimed numbers for this instance");
        assert_int_equal(lifecycle_ingest_describe(s, c, "support-us", &cn, NOW + 5, &ev), 0);
        n = state_find_number(s, "support-us", "+12065550100");
        assert_true(n->quota_failure);
        assert_int_equal(n->next_retry_at, NOW + 5 + 6 * 3600);
        assert_int_equal(ev.n, 2);
        assert_int_equal(ev.items[0].kind, EVENT_CLAIM_FAILED);
        assert_int_equal(ev.items[1].kind, EVENT_QUOTA);
        /* What the target held in Connect at the refusal: the FAILED
         * claim itself is not one of them. */
        assert_int_equal(ev.items[1].held, 0);
        assert_int_equal(ev.items[1].wanted, 2);
        lifecycle_events_clear(&ev);
        struct state_target *st = &s->targets[0];
        assert_int_equal(st->quota_at, NOW + 5);
        assert_int_equal(st->quota_until, NOW + 5 + 6 * 3600);
        assert_string_equal(st->quota_digest, c->targets[0].digest);
        assert_string_equal(st->quota_pool, "main");
        assert_true(st->quota_logged);

        /* The second claim refused for quota in the same episode: one record. */
        n = lifecycle_claim_intent(s, &p->steps[1], "+12065550101", p->steps[1].client_token, NOW + 6);
        struct connect_error e = {.kind = CONNECT_ERROR_QUOTA, .code = (char *) "ServiceQuotaExceededException"};
        assert_int_equal(lifecycle_claim_refused(s, c, n, &e, NOW + 7, &ev), CLAIM_NEXT_STOP_TARGET);
        n = state_find_number(s, "support-us", "+12065550101");
        assert_int_equal(n->phase, PHASE_FAILED);
        assert_true(n->quota_failure);
        assert_int_equal(n->first_failure_at, NOW + 6);
        for (size_t i = 0; i < ev.n; i++)
                assert_int_not_equal(ev.items[i].kind, EVENT_QUOTA);
        lifecycle_events_clear(&ev);
        assert_int_equal(s->targets[0].quota_at, NOW + 5);

        /* The pause ends with the back-off: QUOTA_CLEARED, once. */
        lifecycle_tick(s, c, NOW + 5 + 6 * 3600, &ev);
        assert_int_equal(ev.n, 1);
        assert_int_equal(ev.items[0].kind, EVENT_QUOTA_CLEARED);
        lifecycle_events_clear(&ev);
        lifecycle_tick(s, c, NOW + 5 + 6 * 3600, &ev);
        assert_int_equal(ev.n, 0);
        /* The last quota error stays for --status. */
        assert_int_equal(s->targets[0].quota_at, NOW + 5);
        assert_non_null(s->targets[0].quota_message);
}

static void test_no_numbers_once(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        _cleanup_(state_freep) struct state *s = state_new();
        _cleanup_(plan_freep) struct plan *p = fresh_plan(c, s);
        struct lifecycle_events ev = {0};
        lifecycle_no_numbers(s, &p->steps[0], &ev);
        lifecycle_no_numbers(s, &p->steps[1], &ev);
        assert_int_equal(ev.n, 1);
        assert_int_equal(ev.items[0].kind, EVENT_NO_NUMBERS);
        assert_string_equal(ev.items[0].pool, "main");
        assert_non_null(strstr(ev.items[0].message, "+1206"));
        lifecycle_events_clear(&ev);
        lifecycle_numbers_found(s, &p->steps[0]);
        lifecycle_no_numbers(s, &p->steps[0], &ev);
        assert_int_equal(ev.n, 1);
        lifecycle_events_clear(&ev);
}

struct refusal_case {
        enum connect_error_kind kind;
        const char *code;
        const char *message;
        bool retry;                 /* the claim was a retry of a FAILED number */
        enum claim_next expected;
        int phase_after;            /* -1: record removed */
};

static void test_claim_refused(void **unused) {
        (void) unused;
        static const struct refusal_case cases[] = {
                {CONNECT_ERROR_INVALID, "InvalidParameterException", "PhoneNumber is not available", false,
                 CLAIM_NEXT_CANDIDATE, -1},
                {CONNECT_ERROR_NOT_FOUND, "ResourceNotFoundException", "not found", false, CLAIM_NEXT_CANDIDATE, -1},
                {CONNECT_ERROR_INVALID, "InvalidParameterException", "TargetArn is not valid", false,
                 CLAIM_NEXT_STOP_POOL, -1},
                {CONNECT_ERROR_IDEMPOTENCY, "IdempotencyException", "An entity with the same name already exists.",
                 false, CLAIM_NEXT_STOP_POOL, -1},
                {CONNECT_ERROR_QUOTA, "ServiceQuotaExceededException", "quota", false, CLAIM_NEXT_STOP_TARGET,
                 PHASE_FAILED},
                {CONNECT_ERROR_INVALID, "InvalidParameterException",
                 "You have reached the limit of phone numbers for this instance", false, CLAIM_NEXT_STOP_TARGET,
                 PHASE_FAILED},
                {CONNECT_ERROR_THROTTLED, "ThrottlingException", "Rate exceeded", false, CLAIM_NEXT_KEEP_INTENT,
                 PHASE_INTENT},
                {CONNECT_ERROR_TRANSIENT, NULL, "connection reset", false, CLAIM_NEXT_KEEP_INTENT, PHASE_INTENT},
                {CONNECT_ERROR_AUTH, "UnrecognizedClientException", "bad key", false, CLAIM_NEXT_FATAL, -1},
                {CONNECT_ERROR_ACCESS_DENIED, "AccessDeniedException", "no", false, CLAIM_NEXT_FATAL, -1},
                {CONNECT_ERROR_TLS, NULL, "certificate", false, CLAIM_NEXT_FATAL, -1},
                /* Retries of a FAILED number. */
                {CONNECT_ERROR_NOT_FOUND, "ResourceNotFoundException", "gone", true, CLAIM_NEXT_CANDIDATE,
                 PHASE_GIVEN_UP},
                {CONNECT_ERROR_INVALID, "InvalidParameterException", "number unavailable", true, CLAIM_NEXT_CANDIDATE,
                 PHASE_GIVEN_UP},
                {CONNECT_ERROR_INVALID, "InvalidParameterException", "bad description", true, CLAIM_NEXT_STOP_POOL,
                 PHASE_FAILED},
                {CONNECT_ERROR_IDEMPOTENCY, "IdempotencyException", "same token", true, CLAIM_NEXT_STOP_POOL,
                 PHASE_FAILED},
                {CONNECT_ERROR_QUOTA, "ServiceQuotaExceededException", NULL, true, CLAIM_NEXT_STOP_TARGET,
                 PHASE_FAILED},
                {CONNECT_ERROR_THROTTLED, "ThrottlingException", NULL, true, CLAIM_NEXT_KEEP_INTENT, PHASE_FAILED},
                {CONNECT_ERROR_AUTH, NULL, NULL, true, CLAIM_NEXT_FATAL, PHASE_FAILED},
        };
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct refusal_case *k = &cases[i];
                _cleanup_(state_freep) struct state *s = state_new();
                _cleanup_(plan_freep) struct plan *p = fresh_plan(c, s);
                struct lifecycle_events ev = {0};
                struct state_number *n = lifecycle_claim_intent(s, &p->steps[0], "+12065550100",
                                                                p->steps[0].client_token, NOW - 500);
                assert_non_null(n);
                if (k->retry) {
                        /* As the executor sends a retry: FAILED, new token. */
                        n->phase = PHASE_FAILED;
                        n->first_failure_at = NOW - 500;
                        n->next_retry_at = NOW - 10;
                        n->claim_sent_at = NOW;
                        n->attempts = 2;
                }
                struct connect_error e = {.kind = k->kind, .code = (char *) k->code, .message = (char *) k->message};
                enum claim_next got = lifecycle_claim_refused(s, c, n, &e, NOW, &ev);
                if (got != k->expected)
                        fail_msg("case %zu: got %d, expected %d", i, got, k->expected);
                n = state_find_number(s, "support-us", "+12065550100");
                if (k->phase_after < 0)
                        assert_null(n);
                else {
                        assert_non_null(n);
                        if ((int) n->phase != k->phase_after)
                                fail_msg("case %zu: phase %d, expected %d", i, n->phase, k->phase_after);
                        if (n->phase == PHASE_FAILED && k->expected != CLAIM_NEXT_KEEP_INTENT &&
                            k->expected != CLAIM_NEXT_FATAL)
                                assert_true(n->next_retry_at >= NOW);
                        if (k->expected == CLAIM_NEXT_STOP_TARGET) {
                                assert_true(n->quota_failure);
                                assert_true(s->targets[0].quota_until > NOW);
                                assert_int_equal(n->first_failure_at, k->retry ? NOW - 500 : NOW - 500);
                        }
                }
                /* A fresh claim refused as not available spends its token:
                 * the next plan's claim for the same slot takes another. */
                bool spends = !k->retry && k->expected == CLAIM_NEXT_CANDIDATE;
                const struct state_target *st = s->n_targets > 0 ? &s->targets[0] : NULL;
                if (state_token_spent(st, p->steps[0].client_token) != spends)
                        fail_msg("case %zu: token spent %d, expected %d", i, !spends, spends);
                if (spends) {
                        _cleanup_(plan_freep) struct plan *again = fresh_plan(c, s);
                        assert_int_equal(again->steps[0].action, STEP_CLAIM);
                        assert_int_equal(again->steps[0].slot, p->steps[0].slot);
                        if (streq(again->steps[0].client_token, p->steps[0].client_token))
                                fail_msg("case %zu: a spent token planned again", i);
                }
                lifecycle_events_clear(&ev);
        }
}

static void test_plan_tokens_follow_view(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        _cleanup_(state_freep) struct state *a = state_new(), *b = state_new();
        _cleanup_(plan_freep) struct plan *pa = fresh_plan(c, a), *pb = fresh_plan(c, b);
        /* Same view: same tokens, in two separate states. */
        assert_int_equal(pa->n_steps, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_string_equal(pa->steps[i].client_token, pb->steps[i].client_token);
                assert_string_equal(pa->steps[i].view_digest, pb->steps[i].view_digest);
                char t[37];
                reconcile_claim_token("support-us", "main", pa->steps[i].view_digest, pa->steps[i].slot, 0, t);
                assert_string_equal(t, pa->steps[i].client_token);
        }
        /* A number given up in the pool changes the view, hence the tokens. */
        struct state_number *n = state_add_number(b, "support-us", "+12065550777");
        assert_int_equal(state_set(b, &n->pool, "main"), 0);
        n->phase = PHASE_GIVEN_UP;
        _cleanup_(plan_freep) struct plan *pb2 = NULL;
        struct lifecycle_events ev = {0};
        assert_int_equal(reconcile_plan(c, b, NOW, &pb2), 0);
        assert_int_equal(pb2->n_steps, 2);
        assert_string_not_equal(pa->steps[0].view_digest, pb2->steps[0].view_digest);
        assert_string_not_equal(pa->steps[0].client_token, pb2->steps[0].client_token);
        /* So does a number released from it: the view only grows, and a
         * token used once is never derived again for another number. */
        n = state_find_number(b, "support-us", "+12065550777");
        n->phase = PHASE_RELEASED;
        _cleanup_(plan_freep) struct plan *pb3 = NULL;
        assert_int_equal(reconcile_plan(c, b, NOW, &pb3), 0);
        assert_string_equal(pb2->steps[0].client_token, pb3->steps[0].client_token);
        /* An intent of ours is not part of the view (another instance
         * cannot see it): the remaining slot keeps its token. */
        _cleanup_(state_freep) struct state *c2 = state_new();
        _cleanup_(plan_freep) struct plan *pc = fresh_plan(c, c2);
        assert_non_null(lifecycle_claim_intent(c2, &pc->steps[0], "+12065550100", pc->steps[0].client_token, NOW));
        _cleanup_(plan_freep) struct plan *pc2 = NULL;
        assert_int_equal(reconcile_plan(c, c2, NOW, &pc2), 0);
        assert_int_equal(pc2->n_steps, 2);
        assert_int_equal(pc2->steps[0].action, STEP_REPLAY_CLAIM);
        assert_string_equal(pc2->steps[0].client_token, pc->steps[0].client_token);
        assert_int_equal(pc2->steps[1].action, STEP_CLAIM);
        assert_string_equal(pc2->steps[1].client_token, pc->steps[1].client_token);
        lifecycle_events_clear(&ev);
}

static void test_format(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        _cleanup_(state_freep) struct state *s = state_new();
        _cleanup_(plan_freep) struct plan *p = fresh_plan(c, s);
        _cleanup_(freep) char *text = NULL, *js = NULL;
        assert_int_equal(plan_format_text(p, &text), 0);
        assert_non_null(strstr(text, "ACTION"));
        assert_non_null(strstr(text, "\nclaim   support-us/main  -       slot 0 (slots 0 to 1)"));
        assert_non_null(strstr(text, "2 changes pending"));
        assert_int_equal(plan_format_json(p, &js), 0);
        json_error_t err;
        json_t *root = json_loads(js, 0, &err);
        assert_non_null(root);
        json_t *step = json_array_get(json_object_get(root, "steps"), 1);
        assert_string_equal(json_string_value(json_object_get(step, "action")), "claim");
        assert_string_equal(json_string_value(json_object_get(step, "target")), "support-us");
        assert_string_equal(json_string_value(json_object_get(step, "target_arn")), c->targets[0].arn);
        assert_string_equal(json_string_value(json_object_get(step, "pool")), "main");
        assert_int_equal(json_integer_value(json_object_get(step, "slot")), 1);
        assert_non_null(json_string_value(json_object_get(step, "detail")));
        json_t *pool = json_array_get(json_object_get(root, "pools"), 0);
        assert_int_equal(json_integer_value(json_object_get(pool, "desired")), 2);
        assert_int_equal(json_integer_value(json_object_get(pool, "claimed")), 0);
        assert_int_equal(json_integer_value(json_object_get(pool, "failed_pending")), 0);
        assert_null(json_object_get(pool, "held"));
        assert_int_equal(json_integer_value(json_object_get(root, "changes")), 2);
        json_decref(root);

        struct plan empty = {0};
        _cleanup_(freep) char *t2 = NULL, *j2 = NULL;
        assert_int_equal(plan_format_text(&empty, &t2), 0);
        assert_string_equal(t2, "nothing to do\n");
        assert_int_equal(plan_format_json(&empty, &j2), 0);
        assert_non_null(strstr(j2, "\"changes\": 0"));
}

static void test_list_merge(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        _cleanup_(state_freep) struct state *s = state_new();
        const char *arn = c->targets[0].arn;
        struct connect_number l[3] = {
                {.id = (char *) "b", .phone_number = (char *) "+12065550102", .target_arn = (char *) arn},
                {.id = (char *) "a", .phone_number = (char *) "+12065550101", .target_arn = (char *) arn},
                {.id = (char *) "b", .phone_number = (char *) "+12065550102", .target_arn = (char *) arn},
        };
        assert_int_equal(lifecycle_ingest_list(s, c, "support-us", l, 3), 0);
        assert_int_equal(s->n_numbers, 2);
        assert_int_equal(state_find_number(s, "support-us", "+12065550101")->phase, PHASE_UNKNOWN);
        assert_true(s->targets[0].listed_ok);
        assert_int_equal(lifecycle_ingest_list(s, c, "nope", l, 3), -ENOENT);
        /* Gone from the list: unknown records are forgotten. */
        assert_int_equal(lifecycle_ingest_list(s, c, "support-us", l + 1, 1), 0);
        assert_int_equal(s->n_numbers, 1);
        lifecycle_list_failed(s, "support-us");
        assert_false(s->targets[0].listed_ok);
}

static void test_not_found(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = parse_config(BASE_YAML);
        _cleanup_(state_freep) struct state *s = state_new();
        _cleanup_(plan_freep) struct plan *p = fresh_plan(c, s);
        struct lifecycle_events ev = {0};
        struct state_number *n = lifecycle_claim_intent(s, &p->steps[0], "+12065550100", p->steps[0].client_token,
                                                        NOW);
        lifecycle_claim_answered(s, n, "id-100", "arn:100", NOW);
        /* Just answered: not describable yet is no news. */
        assert_int_equal(lifecycle_ingest_not_found(s, "support-us", "id-100", NOW + 10, &ev), 0);
        assert_int_equal(ev.n, 0);
        assert_int_equal(state_find_number(s, "support-us", "+12065550100")->phase, PHASE_IN_PROGRESS);
        /* An hour on, it is gone. */
        assert_int_equal(lifecycle_ingest_not_found(s, "support-us", "id-100", NOW + 3600, &ev), 0);
        assert_int_equal(ev.n, 1);
        assert_int_equal(ev.items[0].kind, EVENT_NUMBER_GONE);
        assert_int_equal(state_find_number(s, "support-us", "+12065550100")->phase, PHASE_GONE);
        lifecycle_events_clear(&ev);
        /* Unknown ids and numbers that were never ours are forgotten. */
        struct connect_number l = {.id = (char *) "id-200", .phone_number = (char *) "+12065550200"};
        assert_int_equal(lifecycle_ingest_list(s, c, "support-us", &l, 1), 0);
        assert_int_equal(lifecycle_ingest_not_found(s, "support-us", "id-200", NOW, &ev), 0);
        assert_null(state_find_number(s, "support-us", "+12065550200"));
        assert_int_equal(lifecycle_ingest_not_found(s, "support-us", "id-404", NOW, &ev), 0);
        assert_int_equal(ev.n, 0);
        /* A GONE number listed again is found out again. */
        l = (struct connect_number){.id = (char *) "id-100b", .phone_number = (char *) "+12065550100"};
        assert_int_equal(lifecycle_ingest_list(s, c, "support-us", &l, 1), 0);
        assert_int_equal(state_find_number(s, "support-us", "+12065550100")->phase, PHASE_UNKNOWN);
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int main(void) {
        const struct CMUnitTest units[] = {
                cmocka_unit_test(test_next_retry_at),     cmocka_unit_test(test_claim_token),
                cmocka_unit_test(test_action_names),      cmocka_unit_test(test_claim_lifecycle),
                cmocka_unit_test(test_quota_episode),     cmocka_unit_test(test_no_numbers_once),
                cmocka_unit_test(test_claim_refused),     cmocka_unit_test(test_plan_tokens_follow_view),
                cmocka_unit_test(test_format),            cmocka_unit_test(test_list_merge),
                cmocka_unit_test(test_counts_say_what_is_true),
                cmocka_unit_test(test_not_found),
        };
        int failed = cmocka_run_group_tests_name("reconcile", units, NULL, NULL);

        /* The data-driven cases, one test each. */
        _cleanup_(freep) char *dir = strprintf("%s/reconcile", data_dir());
        DIR *d = opendir(dir);
        if (!d) {
                fprintf(stderr, "cannot open %s\n", dir);
                return 1;
        }
        _cleanup_(strv_freep) char **names = NULL;
        for (struct dirent *de; (de = readdir(d));) {
                size_t l = strlen(de->d_name);
                if (l > 5 && streq(de->d_name + l - 5, ".yaml")) {
                        _cleanup_(freep) char *nm = strndup(de->d_name, l - 5);
                        assert_int_equal(strv_push(&names, nm), 0);
                }
        }
        closedir(d);
        size_t n = strv_length(names);
        if (n < 30) {
                fprintf(stderr, "only %zu reconcile cases in %s\n", n, dir);
                failed++;
        }
        qsort(names, n, sizeof *names, cmp_names);
        struct CMUnitTest *cases = calloc(n + 1, sizeof *cases);
        for (size_t i = 0; i < n; i++)
                cases[i] = (struct CMUnitTest){.name = names[i], .test_func = run_case, .initial_state = names[i]};
        failed += _cmocka_run_group_tests("reconcile-cases", cases, n, NULL, NULL);
        free(cases);
        return failed ? 1 : 0;
}
