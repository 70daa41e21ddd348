/* metrics.c: struct metrics_snapshot -> Prometheus text exposition 0.0.4, and
 * the atomic write of the metrics file.
 * Must not: log, read the clock, touch the network. metrics_format() is pure;
 * metrics_write_file() is the only I/O.
 *
 * Numbers are printed from integers only (seconds from microseconds by
 * integer division), so the text does not depend on the locale and the same
 * snapshot always gives the same bytes. */

#include <inttypes.h>
#include <stdio.h>

#include "metrics.h"

#define PREFIX "connect_numbers_"

static const char *const api_outcome_names[_METRICS_API_OUTCOME_MAX] = {
        [METRICS_API_OK] = "ok",
        [METRICS_API_THROTTLED] = "throttled",
        [METRICS_API_ERROR] = "error",
};

static const char *const claim_outcome_names[_METRICS_CLAIM_OUTCOME_MAX] = {
        [METRICS_CLAIM_CLAIMED] = "claimed",
        [METRICS_CLAIM_FAILED] = "failed",
        [METRICS_CLAIM_REFUSED] = "refused",
        [METRICS_CLAIM_GIVEN_UP] = "given_up",
};

/* ---- ordering ---------------------------------------------------------- */

#define LABELS_MAX 3

/* The label values that identify one item of an array, in sort order. */
typedef size_t (*labels_fn)(const void *item, const char *ret[static LABELS_MAX]);

struct order_ctx {
        labels_fn labels;
};

static int order_compare(const void *a, const void *b, void *userdata) {
        const struct order_ctx *ctx = userdata;
        const char *la[LABELS_MAX], *lb[LABELS_MAX];
        size_t n = ctx->labels(*(const void *const *) a, la);
        (void) ctx->labels(*(const void *const *) b, lb);
        for (size_t i = 0; i < n; i++) {
                int c = strcmp(la[i], lb[i]);
                if (c != 0)
                        return c;
        }
        return 0;
}

/* Pointers to the n items of size bytes each, sorted by their labels. The
 * caller's order must not leak into the file: the same state gives the same
 * bytes. -EINVAL for a NULL label or two items with the same labels (the
 * scraper would refuse the whole file). */
static int sorted_items(const void *items, size_t n, size_t size, labels_fn labels, const void ***ret) {
        const void **v = calloc(n + 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *l[LABELS_MAX];
                v[i] = (const char *) items + i * size;
                size_t k = labels(v[i], l);
                for (size_t j = 0; j < k; j++)
                        if (!l[j]) {
                                free(v);
                                return -EINVAL;
                        }
        }
        struct order_ctx ctx = { .labels = labels };
        qsort_r(v, n, sizeof *v, order_compare, &ctx);
        for (size_t i = 1; i < n; i++)
                if (order_compare(&v[i - 1], &v[i], &ctx) == 0) {
                        free(v);
                        return -EINVAL;
                }
        *ret = v;
        return 0;
}

static size_t pool_labels(const void *item, const char *ret[static LABELS_MAX]) {
        const struct metrics_pool *p = item;
        ret[0] = p->target;
        ret[1] = p->pool;
        return 2;
}

static size_t orphans_labels(const void *item, const char *ret[static LABELS_MAX]) {
        const struct metrics_orphans *o = item;
        ret[0] = o->target;
        ret[1] = o->pool;
        return 2;
}

static size_t target_labels(const void *item, const char *ret[static LABELS_MAX]) {
        const struct metrics_target *t = item;
        ret[0] = t->target;
        return 1;
}

static size_t api_labels(const void *item, const char *ret[static LABELS_MAX]) {
        const struct metrics_api *a = item;
        ret[0] = a->operation;
        ret[1] = a->account;
        ret[2] = a->region;
        return 3;
}

/* ---- text -------------------------------------------------------------- */

/* A label value: backslash, double quote and line feed are the three
 * characters the format escapes; everything else (UTF-8) goes as it is. */
static void put_label_value(FILE *f, const char *s) {
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '\\')
                        fputs("\\\\", f);
                else if (*s == '"')
                        fputs("\\\"", f);
                else if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

/* name="value",... between braces; names and values alternate in kv. */
static void put_labels(FILE *f, const char *const *kv, size_t n) {
        if (n == 0)
                return;
        fputc('{', f);
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        fputc(',', f);
                fputs(kv[2 * i], f);
                fputc('=', f);
                put_label_value(f, kv[2 * i + 1]);
        }
        fputc('}', f);
}

static void put_family(FILE *f, const char *name, const char *type, const char *help) {
        /* help texts are ours and hold neither backslashes nor line feeds */
        fprintf(f, "# HELP " PREFIX "%s %s\n# TYPE " PREFIX "%s %s\n", name, help, name, type);
}

static void put_sample_u64(FILE *f, const char *name, const char *const *kv, size_t n, uint64_t v) {
        fputs(PREFIX, f);
        fputs(name, f);
        put_labels(f, kv, n);
        fprintf(f, " %" PRIu64 "\n", v);
}

static void put_sample_int(FILE *f, const char *name, int64_t v) {
        fprintf(f, PREFIX "%s %" PRId64 "\n", name, v);
}

/* Microseconds as seconds, without trailing zeros: 1.5, 12, 0.000001. */
static void put_sample_seconds(FILE *f, const char *name, usec_t usec) {
        uint64_t sec = usec / USEC_PER_SEC, frac = usec % USEC_PER_SEC;
        fprintf(f, PREFIX "%s %" PRIu64, name, sec);
        if (frac > 0) {
                char digits[8];
                snprintf(digits, sizeof digits, "%06" PRIu64, frac);
                size_t len = strlen(digits);
                while (len > 0 && digits[len - 1] == '0')
                        len--;
                fprintf(f, ".%.*s", (int) len, digits);
        }
        fputc('\n', f);
}

/* The per-pool gauges, in the order the file lists them. */
static const struct {
        const char *name;
        const char *help;
        size_t offset;
} pool_gauges[] = {
        { "desired", "Numbers the pool should hold (its count).", offsetof(struct metrics_pool, desired) },
        { "claimed", "Numbers of the pool CLAIMED on its target, excess included.", offsetof(struct metrics_pool, claimed) },
        { "in_progress", "Claims of the pool still IN_PROGRESS.", offsetof(struct metrics_pool, in_progress) },
        { "failed_pending", "Failed claims of the pool waiting for their retry.",
          offsetof(struct metrics_pool, failed_pending) },
        { "excess", "Numbers of the pool beyond its count.", offsetof(struct metrics_pool, excess) },
        { "moving", "Numbers being moved to the pool's target.", offsetof(struct metrics_pool, moving) },
        { "pins_missing", "Pinned numbers of the pool not held by its target.",
          offsetof(struct metrics_pool, pins_missing) },
};

static void put_pools(FILE *f, const struct metrics_pool *const *pools, size_t n) {
        for (size_t g = 0; g < ELEMENTSOF(pool_gauges); g++) {
                put_family(f, pool_gauges[g].name, "gauge", pool_gauges[g].help);
                for (size_t i = 0; i < n; i++) {
                        const char *kv[] = { "target", pools[i]->target, "pool", pools[i]->pool };
                        uint64_t v = *(const uint64_t *) (const void *) ((const char *) pools[i] + pool_gauges[g].offset);
                        put_sample_u64(f, pool_gauges[g].name, kv, 2, v);
                }
        }
}

static void put_orphans(FILE *f, const struct metrics_orphans *const *orphans, size_t n) {
        put_family(f, "orphans", "gauge", "Numbers tagged for a target or pool that is no longer configured.");
        for (size_t i = 0; i < n; i++) {
                const char *kv[] = { "target", orphans[i]->target, "pool", orphans[i]->pool };
                put_sample_u64(f, "orphans", kv, 2, orphans[i]->count);
        }
}

static void put_targets(FILE *f, const struct metrics_target *const *targets, size_t n) {
        put_family(f, "quota_paused", "gauge", "1 while claiming for the target is paused after a quota refusal.");
        for (size_t i = 0; i < n; i++) {
                const char *kv[] = { "target", targets[i]->target };
                put_sample_u64(f, "quota_paused", kv, 1, targets[i]->quota_paused ? 1 : 0);
        }
        put_family(f, "claims_total", "counter", "Claims that ended, by outcome (claimed, failed, refused, given_up).");
        for (size_t i = 0; i < n; i++)
                for (size_t o = 0; o < _METRICS_CLAIM_OUTCOME_MAX; o++) {
                        const char *kv[] = { "target", targets[i]->target, "outcome", claim_outcome_names[o] };
                        put_sample_u64(f, "claims_total", kv, 2, targets[i]->claims[o]);
                }
        put_family(f, "releases_total", "counter", "Numbers released.");
        for (size_t i = 0; i < n; i++) {
                const char *kv[] = { "target", targets[i]->target };
                put_sample_u64(f, "releases_total", kv, 1, targets[i]->releases);
        }
        put_family(f, "moves_total", "counter", "Numbers moved to the target.");
        for (size_t i = 0; i < n; i++) {
                const char *kv[] = { "target", targets[i]->target };
                put_sample_u64(f, "moves_total", kv, 1, targets[i]->moves);
        }
}

static void put_api(FILE *f, const struct metrics_api *const *api, size_t n) {
        put_family(f, "api_calls_total", "counter", "Amazon Connect API calls, by outcome (ok, throttled, error).");
        for (size_t i = 0; i < n; i++)
                for (size_t o = 0; o < _METRICS_API_OUTCOME_MAX; o++) {
                        const char *kv[] = { "operation", api[i]->operation, "outcome", api_outcome_names[o],
                                             "account", api[i]->account, "region", api[i]->region };
                        put_sample_u64(f, "api_calls_total", kv, 4, api[i]->calls[o]);
                }
}

static void put_pass(FILE *f, const struct metrics_snapshot *m) {
        put_family(f, "pass_duration_seconds", "gauge", "How long the last pass took.");
        put_sample_seconds(f, "pass_duration_seconds", m->pass_duration_usec);
        put_family(f, "last_pass_timestamp_seconds", "gauge", "When the last pass ended, in seconds since the epoch.");
        put_sample_seconds(f, "last_pass_timestamp_seconds", m->last_pass_usec);
        put_family(f, "last_success_timestamp_seconds", "gauge",
                   "When the last pass that exited 0 or 75 ended, in seconds since the epoch (0: none yet).");
        put_sample_seconds(f, "last_success_timestamp_seconds", m->last_success_usec);
        put_family(f, "last_pass_exit_status", "gauge", "Exit status of the last pass (0, 75 or 1).");
        put_sample_int(f, "last_pass_exit_status", m->last_pass_exit_status);
        put_family(f, "start_time_seconds", "gauge",
                   "Since when the counters count, in seconds since the epoch: they restart from 0 then.");
        put_sample_seconds(f, "start_time_seconds", m->counters_since_usec);
}

static void freep_ptrs(const void ***p) {
        free(*p);
}

int metrics_format(const struct metrics_snapshot *m, char **ret) {
        _cleanup_(freep_ptrs) const void **pools = NULL, **orphans = NULL, **targets = NULL, **api = NULL;
        int r;

        if (!m || !ret)
                return -EINVAL;
        if ((m->n_pools > 0 && !m->pools) || (m->n_orphans > 0 && !m->orphans) ||
            (m->n_targets > 0 && !m->targets) || (m->n_api > 0 && !m->api))
                return -EINVAL;
        r = sorted_items(m->pools, m->n_pools, sizeof *m->pools, pool_labels, &pools);
        if (r >= 0)
                r = sorted_items(m->orphans, m->n_orphans, sizeof *m->orphans, orphans_labels, &orphans);
        if (r >= 0)
                r = sorted_items(m->targets, m->n_targets, sizeof *m->targets, target_labels, &targets);
        if (r >= 0)
                r = sorted_items(m->api, m->n_api, sizeof *m->api, api_labels, &api);
        if (r < 0)
                return r;

        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        put_pools(f, (const struct metrics_pool *const *) pools, m->n_pools);
        put_orphans(f, (const struct metrics_orphans *const *) orphans, m->n_orphans);
        put_targets(f, (const struct metrics_target *const *) targets, m->n_targets);
        put_api(f, (const struct metrics_api *const *) api, m->n_api);
        put_pass(f, m);
        bool failed = ferror(f);
        if (fclose(f) != 0 || failed) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

/* ---- the file ---------------------------------------------------------- */

int metrics_write_file(const char *path, const char *text) {
        _cleanup_(freep) char *tmp = NULL;
        int fd, r;
        if (isempty(path) || !text)
                return -EINVAL;
        r = atomic_file_open(path, &fd, &tmp);
        if (r < 0)
                return r;
        r = write_all(fd, text, strlen(text));
        /* Read by node_exporter or another scraper running as another user. */
        return atomic_file_finish(fd, tmp, path, 0644, r);
}
