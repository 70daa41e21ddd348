/* metrics-snapshot.c: fills a struct metrics_snapshot from what the
 * service knows after a pass. Reads only: the state, the configuration and
 * the client are the manager's. No I/O but getenv(). */
#include "metrics-snapshot.h"

#include <stdio.h>

struct metrics_target_counters *metrics_counters_get(struct metrics_counters *c, const char *target) {
        if (!c || !target)
                return NULL;
        for (size_t i = 0; i < c->n_targets; i++)
                if (streq(c->targets[i].target, target))
                        return &c->targets[i];
        char *name = strdup(target);
        if (!name)
                return NULL;
        struct metrics_target_counters *t = realloc(c->targets, (c->n_targets + 1) * sizeof *t);
        if (!t) {
                free(name);
                return NULL;
        }
        c->targets = t;
        t = &c->targets[c->n_targets++];
        *t = (struct metrics_target_counters){.target = name};
        return t;
}

void metrics_counters_clear(struct metrics_counters *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_targets; i++)
                free(c->targets[i].target);
        free(c->targets);
        *c = (struct metrics_counters){};
}

void metrics_counters_event(struct metrics_counters *c, const struct lifecycle_event *ev) {
        struct metrics_target_counters *t = ev ? metrics_counters_get(c, ev->target) : NULL;
        if (!t)
                return;
        switch (ev->kind) {
        case EVENT_CLAIMED:
                t->claims[METRICS_CLAIM_CLAIMED]++;
                break;
        case EVENT_CLAIM_FAILED:
                t->claims[METRICS_CLAIM_FAILED]++;
                break;
        case EVENT_WINDOW_EXPIRED:
                t->claims[METRICS_CLAIM_GIVEN_UP]++;
                break;
        case EVENT_RELEASED:
                t->releases++;
                break;
        case EVENT_MOVED:
                t->moves++;
                break;
        default:
                break;
        }
}

void metrics_counters_refusal(struct metrics_counters *c, const char *target, bool retry, enum claim_next next) {
        if (next == CLAIM_NEXT_KEEP_INTENT)
                return;
        struct metrics_target_counters *t = metrics_counters_get(c, target);
        if (!t)
                return;
        t->claims[METRICS_CLAIM_REFUSED]++;
        if (retry && next == CLAIM_NEXT_CANDIDATE)
                t->claims[METRICS_CLAIM_GIVEN_UP]++;
}

int metrics_path(const struct config *c, char **ret) {
        if (c && c->metrics_file) {
                *ret = strdup(c->metrics_file);
                return *ret ? 0 : -ENOMEM;
        }
        /* systemd joins several RuntimeDirectory= entries with ':'. */
        const char *rd = getenv("RUNTIME_DIRECTORY");
        if (isempty(rd) || rd[0] != '/') {
                *ret = NULL;
                return 0;
        }
        *ret = strprintf("%.*s/metrics.prom", (int) strcspn(rd, ":"), rd);
        return *ret ? 0 : -ENOMEM;
}

/* The account that c's targets in region share, or NULL when they have
 * none or several. Calls by phone-number id name no ARN; with one
 * credential set they go to the account of these targets. */
static const char *region_account(const struct config *c, const char *region) {
        const char *account = NULL;
        for (size_t i = 0; i < c->n_targets; i++) {
                const struct target_config *t = &c->targets[i];
                if (!streq_ptr(t->region, region) || !t->account)
                        continue;
                if (account && !streq(account, t->account))
                        return NULL;
                account = t->account;
        }
        return account;
}

static int add_api(const struct config *c, const struct connect_client *client, struct metrics_api **ret,
                   size_t *ret_n) {
        const struct connect_api_count *counts;
        size_t n;
        connect_client_api_counts(client, &counts, &n);
        struct metrics_api *api = calloc(n + 1, sizeof *api);
        size_t k = 0;
        if (!api)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const struct connect_api_count *a = &counts[i];
                const char *account = a->account[0] ? a->account : region_account(c, a->region);
                if (!account)
                        account = "unknown";
                struct metrics_api *e = NULL;
                /* Two client entries (one by ARN, one by id) may come to
                 * the same labels: one series. */
                for (size_t j = 0; j < k && !e; j++)
                        if (streq(api[j].operation, connect_op_name(a->op)) && streq(api[j].account, account) &&
                            streq(api[j].region, a->region))
                                e = &api[j];
                if (!e) {
                        e = &api[k++];
                        *e = (struct metrics_api){
                                .operation = connect_op_name(a->op), .account = account, .region = a->region};
                }
                e->calls[METRICS_API_OK] += a->n[CONNECT_OUTCOME_OK];
                e->calls[METRICS_API_THROTTLED] += a->n[CONNECT_OUTCOME_THROTTLED];
                e->calls[METRICS_API_ERROR] += a->n[CONNECT_OUTCOME_ERROR];
        }
        *ret = api;
        *ret_n = k;
        return 0;
}

static int add_orphans(const struct plan *plan, struct metrics_orphans **ret, size_t *ret_n) {
        size_t n_steps = plan ? plan->n_steps : 0, k = 0;
        struct metrics_orphans *o = calloc(n_steps + 1, sizeof *o);
        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < n_steps; i++) {
                const struct plan_step *st = &plan->steps[i];
                if (st->action != STEP_REPORT_ORPHAN || !st->target)
                        continue;
                /* An orphan of a target removed from the YAML may have no pool. */
                const char *pool = st->pool ? st->pool : "";
                struct metrics_orphans *e = NULL;
                for (size_t j = 0; j < k && !e; j++)
                        if (streq(o[j].target, st->target) && streq(o[j].pool, pool))
                                e = &o[j];
                if (!e) {
                        e = &o[k++];
                        *e = (struct metrics_orphans){.target = st->target, .pool = pool};
                }
                e->count++;
        }
        *ret = o;
        *ret_n = k;
        return 0;
}

int metrics_snapshot_format(const struct config *c, const struct state *s, const struct connect_client *client,
                            const struct metrics_counters *counters, const struct plan *plan,
                            const struct metrics_pass_info *info, uint64_t now, char **ret) {
        _cleanup_(freep) struct metrics_pool *pools = NULL;
        _cleanup_(freep) struct metrics_target *targets = NULL;
        _cleanup_(freep) struct metrics_api *api = NULL;
        _cleanup_(freep) struct metrics_orphans *orphans = NULL;
        size_t n_pools = 0, n_targets = 0, n_api = 0, n_orphans = 0, max_pools = 0;
        size_t n_counted = counters ? counters->n_targets : 0;
        int r;

        if (!c || !s || !info || !ret)
                return -EINVAL;
        for (size_t i = 0; i < c->n_targets; i++)
                max_pools += c->targets[i].n_pools;
        pools = calloc(max_pools + 1, sizeof *pools);
        targets = calloc(c->n_targets + n_counted + 1, sizeof *targets);
        if (!pools || !targets)
                return -ENOMEM;

        for (size_t i = 0; i < c->n_targets; i++) {
                const struct target_config *t = &c->targets[i];
                targets[n_targets++] = (struct metrics_target){
                        .target = t->name,
                        .quota_paused = lifecycle_target_paused(state_find_target(s, t->name), now),
                };
                for (size_t j = 0; j < t->n_pools; j++) {
                        const struct pool_config *pc = &t->pools[j];
                        struct lifecycle_pool_count pc_count;
                        lifecycle_count_pool(s, t->name, pc->name, now, &pc_count);
                        pools[n_pools++] = (struct metrics_pool){
                                .target = t->name,
                                .pool = pc->name,
                                .desired = pc->count,
                                .claimed = pc_count.claimed,
                                .in_progress = pc_count.in_progress + pc_count.intent,
                                .failed_pending = pc_count.failed,
                                .excess = pc_count.live > pc->count ? pc_count.live - pc->count : 0,
                                .moving = pc_count.moving,
                                .pins_missing = lifecycle_pins_missing(s, t, pc, now),
                        };
                }
        }
        /* The counters: of every target of the YAML (0 until something
         * happens, so that a series exists from the first file on), and of
         * targets since removed, which keep counting what they did. */
        for (size_t i = 0; i < n_counted; i++) {
                const struct metrics_target_counters *tc = &counters->targets[i];
                struct metrics_target *e = NULL;
                for (size_t j = 0; j < n_targets && !e; j++)
                        if (streq(targets[j].target, tc->target))
                                e = &targets[j];
                if (!e) {
                        e = &targets[n_targets++];
                        *e = (struct metrics_target){.target = tc->target};
                }
                memcpy(e->claims, tc->claims, sizeof e->claims);
                e->releases = tc->releases;
                e->moves = tc->moves;
        }

        r = add_api(c, client, &api, &n_api);
        if (r >= 0)
                r = add_orphans(plan, &orphans, &n_orphans);
        if (r < 0)
                return r;

        struct metrics_snapshot m = {
                .pools = pools,
                .n_pools = n_pools,
                .orphans = orphans,
                .n_orphans = n_orphans,
                .targets = targets,
                .n_targets = n_targets,
                .api = api,
                .n_api = n_api,
                .pass_duration_usec = info->duration_usec,
                .last_pass_usec = info->ended_usec,
                .last_success_usec = info->last_success_usec,
                .last_pass_exit_status = info->exit_status,
                .counters_since_usec = info->since_usec,
        };
        return metrics_format(&m, ret);
}
