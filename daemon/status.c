/* status.c: formats what the state says for --status, as a table for
 * people or one JSON object. Pure: the state, the (optional) config and
 * the time come in, a string goes out. */
#include "status.h"

#include <inttypes.h>
#include <jansson.h>

#include "reconcile.h"

struct pool_count {
        const char *target;
        const char *pool;
        bool desired_known;          /* false: no YAML and no desired count in the state */
        bool in_config;
        struct pool_figures f;
};

static size_t n_known_desired(const struct state *s) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_targets; i++)
                n += s->targets[i].n_desired;
        return n;
}

static int add_pool(struct pool_count **v, size_t *n, const char *target, const char *pool, long desired,
                    bool in_config) {
        for (size_t i = 0; i < *n; i++)
                if (streq((*v)[i].target, target) && streq((*v)[i].pool, pool))
                        return 0;
        struct pool_count *nv = realloc(*v, sizeof **v * (*n + 1));
        if (!nv)
                return -ENOMEM;
        *v = nv;
        nv[(*n)++] = (struct pool_count){.target = target, .pool = pool, .desired_known = desired >= 0,
                                         .in_config = in_config, .f.desired = desired >= 0 ? (unsigned) desired : 0};
        return 0;
}

/* The pools the YAML (or, without it, the last pass) wants, then any pool
 * the state holds numbers for that is no longer wanted (orphans). */
static int collect(const struct state *s, const struct config *c, uint64_t now, struct pool_count **ret, size_t *ret_n) {
        _cleanup_(freep) struct pool_count *v = NULL;
        size_t n = 0;
        int r = 0;
        if (c)
                for (size_t i = 0; r >= 0 && i < c->n_targets; i++)
                        for (size_t j = 0; r >= 0 && j < c->targets[i].n_pools; j++)
                                r = add_pool(&v, &n, c->targets[i].name, c->targets[i].pools[j].name,
                                             (long) c->targets[i].pools[j].count, true);
        else
                for (size_t i = 0; r >= 0 && i < s->n_targets; i++)
                        for (size_t j = 0; r >= 0 && j < s->targets[i].n_desired; j++)
                                r = add_pool(&v, &n, s->targets[i].name, s->targets[i].desired[j].pool,
                                             (long) s->targets[i].desired[j].count, true);
        long unknown = n_known_desired(s) || c ? 0 : -1;
        for (size_t k = 0; r >= 0 && k < s->n_numbers; k++) {
                const struct state_number *x = &s->numbers[k];
                if (x->pool && x->target && lifecycle_record_held(x, now))
                        r = add_pool(&v, &n, x->target, x->pool, unknown, false);
        }
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                lifecycle_pool_figures(s, v[i].target, v[i].pool, v[i].f.desired, now, &v[i].f);
                const struct target_config *t = c ? config_find_target(c, v[i].target) : NULL;
                v[i].f.pins_missing = lifecycle_pins_missing(s, t, target_find_pool(t, v[i].pool), now);
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static const char *ts(uint64_t t, char *buf, size_t n) {
        if (!t) {
                snprintf(buf, n, "-");
                return buf;
        }
        return format_timestamp_sec(t, buf, n);
}

/* What a pinned number's record says, for --status. */
static const char *pin_state(const struct state *s, const struct target_config *t, const struct pool_config *p,
                             const char *phone, uint64_t now) {
        const struct state_number *x = state_find_number((struct state *) s, t->name, phone);
        if (x && lifecycle_record_of_pool(x, t->name, p->name) && lifecycle_record_held(x, now))
                return x->phase == PHASE_CLAIMED ? "held" : x->phase == PHASE_FAILED ? "failed" : "claiming";
        for (size_t k = 0; k < s->n_numbers; k++)
                if (streq_ptr(s->numbers[k].phone_number, phone) && streq_ptr(s->numbers[k].move_target, t->name))
                        return "moving";
        if (x && x->phase == PHASE_UNAVAILABLE)
                return "unavailable";
        if (x && x->phase == PHASE_GIVEN_UP)
                return "lost";
        return "missing";
}

static int pins_and_moves_json(const struct state *s, const struct config *c, uint64_t now, json_t *root) {
        json_t *pins = json_array(), *moves = json_array();
        char b[32];
        if (!pins || !moves) {
                json_decref(pins);
                json_decref(moves);
                return -ENOMEM;
        }
        json_object_set_new(root, "pins", pins);
        json_object_set_new(root, "moves", moves);
        for (size_t i = 0; c && i < c->n_targets; i++)
                for (size_t j = 0; j < c->targets[i].n_pools; j++) {
                        const struct pool_config *p = &c->targets[i].pools[j];
                        for (size_t k = 0; k < p->n_numbers; k++)
                                json_array_append_new(pins, json_pack("{s:s, s:s, s:s, s:s}", "target",
                                                                      c->targets[i].name, "pool", p->name,
                                                                      "phone_number", p->numbers[k], "state",
                                                                      pin_state(s, &c->targets[i], p, p->numbers[k],
                                                                                now)));
                }
        for (size_t k = 0; k < s->n_numbers; k++) {
                const struct state_number *x = &s->numbers[k];
                if (!x->move_target)
                        continue;
                json_t *o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s, s:s?}", "phone_number", x->phone_number,
                                      "from", x->target_arn, "to_target", x->move_target, "to_pool", x->move_pool,
                                      "to_arn", x->move_target_arn, "state", x->move_token ? "in_flight" : "failed",
                                      "message", x->move_message);
                if (o && !x->move_token && x->move_next_retry_at)
                        json_object_set_new(o, "next_retry", json_string(ts(x->move_next_retry_at, b, sizeof b)));
                if (o)
                        json_array_append_new(moves, o);
        }
        return 0;
}

static int format_json(const struct state *s, const struct config *c, const struct pool_count *v, size_t n,
                       uint64_t now, char **ret) {
        json_t *root = json_object(), *pools = json_array(), *failed = json_array(), *quota = json_array();
        char b[32];
        if (!root || !pools || !failed || !quota) {
                json_decref(root);
                json_decref(pools);
                json_decref(failed);
                json_decref(quota);
                return -ENOMEM;
        }
        json_object_set_new(root, "pools", pools);
        json_object_set_new(root, "failed_claims", failed);
        json_object_set_new(root, "quota", quota);
        struct pool_figures total = {0};
        for (size_t i = 0; i < n; i++) {
                json_t *o = pool_figures_json(v[i].target, v[i].pool, &v[i].f);
                if (!o)
                        continue;
                if (!v[i].desired_known)
                        json_object_set_new(o, "desired", json_null());
                json_object_set_new(o, "in_config", json_boolean(v[i].in_config));
                json_array_append_new(pools, o);
                total.desired += v[i].f.desired;
                total.claimed += v[i].f.claimed;
                total.in_progress += v[i].f.in_progress;
                total.failed_pending += v[i].f.failed_pending;
                total.excess += v[i].f.excess;
        }
        for (size_t k = 0; k < s->n_numbers; k++) {
                const struct state_number *x = &s->numbers[k];
                if (x->phase != PHASE_FAILED)
                        continue;
                uint64_t deadline = x->first_failure_at ? x->first_failure_at + LIFECYCLE_WINDOW_SEC : 0;
                json_t *o = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s, s:s, s:s?, s:b, s:i}", "target", x->target, "pool",
                                      x->pool, "phone_number", x->phone_number, "phone_number_id", x->id,
                                      "first_failure", ts(x->first_failure_at, b, sizeof b), "retry_deadline",
                                      deadline ? format_timestamp_sec(deadline, (char[32]){0}, 32) : "-", "message",
                                      x->failure_message, "quota", x->quota_failure, "attempts", (int) x->attempts);
                if (o) {
                        json_object_set_new(o, "next_retry",
                                            x->next_retry_at ? json_string(format_timestamp_sec(
                                                                       x->next_retry_at, (char[32]){0}, 32))
                                                             : json_null());
                        json_object_set_new(o, "expired", json_boolean(deadline && now >= deadline));
                        json_array_append_new(failed, o);
                }
        }
        for (size_t k = 0; k < s->n_targets; k++) {
                const struct state_target *t = &s->targets[k];
                if (!t->quota_at)
                        continue;
                json_t *o = json_pack("{s:s?, s:s?, s:s, s:s, s:s?, s:b}", "target", t->name, "target_arn", t->arn, "at",
                                      ts(t->quota_at, b, sizeof b), "paused_until",
                                      format_timestamp_sec(t->quota_until, (char[32]){0}, 32), "message",
                                      t->quota_message, "paused", t->quota_until > now);
                if (o)
                        json_array_append_new(quota, o);
        }
        if (pins_and_moves_json(s, c, now, root) < 0) {
                json_decref(root);
                return -ENOMEM;
        }
        json_object_set_new(root, "desired", json_integer(total.desired));
        json_object_set_new(root, "claimed", json_integer(total.claimed));
        json_object_set_new(root, "in_progress", json_integer(total.in_progress));
        json_object_set_new(root, "failed_pending", json_integer(total.failed_pending));
        json_object_set_new(root, "excess", json_integer(total.excess));
        json_object_set_new(root, "last_pass_started",
                            s->last_pass_started_at ? json_string(ts(s->last_pass_started_at, b, sizeof b)) : json_null());
        json_object_set_new(root, "last_pass_finished",
                            s->last_pass_finished_at ? json_string(ts(s->last_pass_finished_at, b, sizeof b))
                                                     : json_null());
        json_object_set_new(root, "next_pass",
                            s->next_pass_at ? json_string(ts(s->next_pass_at, b, sizeof b)) : json_null());
        json_object_set_new(root, "last_pass_result", json_integer(s->last_pass_result));
        json_object_set_new(root, "last_error", s->last_error ? json_string(s->last_error) : json_null());
        char *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (!out)
                return -ENOMEM;
        *ret = out;
        return 0;
}

int status_format(const struct state *s, const struct config *c, uint64_t now, bool json, char **ret) {
        _cleanup_(freep) struct pool_count *v = NULL;
        size_t n = 0;
        int r = collect(s, c, now, &v, &n);
        if (r < 0)
                return r;
        if (json)
                return format_json(s, c, v, n, now, ret);

        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        char b1[32], b2[32];
        fprintf(f, "%-24s %-16s %7s %7s %11s %6s %6s %6s\n", "TARGET", "POOL", "DESIRED", "CLAIMED", "IN-PROGRESS",
                "FAILED", "MOVING", "EXCESS");
        for (size_t i = 0; i < n; i++) {
                char w[24];
                if (v[i].desired_known)
                        snprintf(w, sizeof w, "%u", v[i].f.desired);
                else
                        snprintf(w, sizeof w, "?");
                fprintf(f, "%-24s %-16s %7s %7u %11u %6u %6u %6u%s\n", v[i].target, v[i].pool, w, v[i].f.claimed,
                        v[i].f.in_progress, v[i].f.failed_pending, v[i].f.moving, v[i].f.excess,
                        v[i].in_config ? "" : "  (not in the YAML: orphan)");
        }
        if (n == 0)
                fprintf(f, "(no pools: the state is empty and no configuration was read)\n");
        bool header = false;
        for (size_t k = 0; k < s->n_numbers; k++) {
                const struct state_number *x = &s->numbers[k];
                if (x->phase != PHASE_FAILED)
                        continue;
                if (!header) {
                        fprintf(f, "\nFailed claims (Amazon Connect allows claiming them again for one day):\n");
                        header = true;
                }
                uint64_t deadline = x->first_failure_at ? x->first_failure_at + LIFECYCLE_WINDOW_SEC : 0;
                fprintf(f, "  %s %s/%s retry until %s%s, next try %s%s%s\n", x->phone_number, x->target,
                        x->pool ? x->pool : "-", ts(deadline, b1, sizeof b1),
                        deadline && now >= deadline ? " (expired)" : "", ts(x->next_retry_at, b2, sizeof b2),
                        x->quota_failure ? " [quota]" : "", x->failure_message ? "" : "");
                if (x->failure_message)
                        fprintf(f, "    %s\n", x->failure_message);
        }
        header = false;
        for (size_t i = 0; c && i < c->n_targets; i++)
                for (size_t j = 0; j < c->targets[i].n_pools; j++) {
                        const struct pool_config *p = &c->targets[i].pools[j];
                        for (size_t k = 0; k < p->n_numbers; k++) {
                                if (!header) {
                                        fprintf(f, "\nPinned numbers:\n");
                                        header = true;
                                }
                                fprintf(f, "  %s %s/%s %s\n", p->numbers[k], c->targets[i].name, p->name,
                                        pin_state(s, &c->targets[i], p, p->numbers[k], now));
                        }
                }
        header = false;
        for (size_t k = 0; k < s->n_numbers; k++) {
                const struct state_number *x = &s->numbers[k];
                if (!x->move_target)
                        continue;
                if (!header) {
                        fprintf(f, "\nMoves in progress:\n");
                        header = true;
                }
                fprintf(f, "  %s from %s to %s/%s: %s", x->phone_number, x->target_arn ? x->target_arn : x->target,
                        x->move_target, x->move_pool ? x->move_pool : "-",
                        x->move_token ? "in flight" : "failed, next try ");
                if (!x->move_token)
                        fprintf(f, "%s", ts(x->move_next_retry_at, b1, sizeof b1));
                fprintf(f, "\n");
                if (x->move_message)
                        fprintf(f, "    %s\n", x->move_message);
        }
        for (size_t k = 0; k < s->n_targets; k++) {
                const struct state_target *t = &s->targets[k];
                if (!t->quota_at)
                        continue;
                fprintf(f, "\nQuota: %s reached its phone-number limit at %s; new claims %s until %s.\n", t->name,
                        ts(t->quota_at, b1, sizeof b1), t->quota_until > now ? "paused" : "were paused",
                        ts(t->quota_until, b2, sizeof b2));
                if (t->quota_message)
                        fprintf(f, "  %s\n", t->quota_message);
                fprintf(f, "  You've reached the limit of Phone Numbers. To increase the limit, contact support "
                           "(Amazon Connect service quotas increase form in the AWS Support console).\n");
        }
        fprintf(f, "\nLast pass: %s", ts(s->last_pass_finished_at, b1, sizeof b1));
        if (s->last_pass_finished_at)
                fprintf(f, " (exit status %d)", s->last_pass_result);
        fprintf(f, "\nNext pass: %s\n", ts(s->next_pass_at, b2, sizeof b2));
        if (s->last_error)
                fprintf(f, "Last error: %s\n", s->last_error);
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}
