/* pass.c: runs one reconcile pass on the sd-event loop. The decisions are
 * reconcile.c's; this file only moves data between the Connect client, the
 * state and the log: it lists, describes, asks for a plan, runs the steps
 * (claims with their intents written and fsynced first), follows claims
 * until they settle, and saves the state. It never decides what to claim
 * or release by itself. */
#include "pass.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "metrics-snapshot.h"
#include "prune.h"

_Static_assert(STATE_LIST_DIGEST_LEN == CONNECT_LIST_DIGEST_LEN, "a list digest fits the state's copy");

#define STEP_WINDOW 32                 /* steps (other than claims) in flight at once */
/* Describes in flight at once. The client paces them anyway; queueing more
 * only holds memory (100,000 queued describes took 589 MB), so the pass
 * hands the client a describe when one comes back. */
#define DESCRIBE_WINDOW 32
/* A long describe phase (a first pass over a large account) saves what it
 * learned this often, so that a kill loses at most this much work. */
#define DESCRIBE_SAVE_USEC (30 * USEC_PER_SEC)
#define FOLD_MAX 8                     /* kinds of failure counted apart per pass */
#define FOLLOW_MAX_DELAY_USEC (30 * USEC_PER_SEC)
#define CLAIM_SEARCH_SLACK 3           /* searches per pool beyond ceil(slots/10) */
#define CLAIM_CANDIDATE_SLACK 5        /* "not available" answers tolerated per pool per pass */

enum pass_phase {
        PASS_LIST,
        PASS_DESCRIBE,
        PASS_EXECUTE,
        PASS_DONE,
};

struct claimer;
struct follow;

/* Failures of one kind in one phase fold into one record with a count:
 * 100,000 describes failing alike are one warning, not 100,000. */
struct fold {
        char *key;                     /* operation, error kind and code */
        char *what;                    /* the first failure's text, for the count's record */
        unsigned count;
};

struct pass {
        sd_event *event;
        struct connect_client *client;
        const struct config *config;
        struct state *state;
        struct pass_options opts;
        pass_done_t done;
        void *userdata;

        enum pass_phase phase;
        unsigned outstanding;          /* connect calls in flight that this pass waits for */
        bool stopping;
        bool fatal;                    /* auth, access denied, TLS, internal: exit 1 */
        bool target_failed;            /* a target's credentials failed: exit 1, the others go on */
        bool retryable;                /* throttled/transient errors outlasted their retries */
        char *error;

        struct plan *plan;
        struct plan *settle_plan;      /* made after this pass's claims settled: their drift fixes */
        struct plan *steps_plan;       /* the plan whose steps run now */
        size_t next_step;              /* next plan step to start (non-claim steps) */
        unsigned round;                /* 0: every step but descriptions; 1: descriptions */
        bool settling;                 /* running settle_plan: its reports are not logged again */
        unsigned steps_in_flight;

        char **describe_ids;           /* "TARGET\tID" to describe this pass */
        size_t describe_next;          /* next entry to hand the client */
        unsigned describes_in_flight;
        usec_t describe_saved_at;      /* CLOCK_BOOTTIME of the last progress save */
        struct fold folds[FOLD_MAX];
        size_t n_folds;

        struct claimer **claimers;
        size_t n_claimers;
        struct searcher **searchers;
        size_t n_searchers;
        struct follow **follows;
        size_t n_follows;
        usec_t follow_deadline;        /* CLOCK_BOOTTIME */
        bool probed_down;              /* a claim followed early this pass (FOLLOW_PROBE_DOWN) */

        unsigned claims_made, releases_made, moves_made;
        bool with_roles;               /* some target's calls use an assumed role (call_id()) */
        bool dirty;                    /* the state changed: save it whole at the end */
        sd_event_source *finish_source;
        struct pass_result result;
        bool finished;
};

/* ---- small helpers ---------------------------------------------------- */

static const struct target_config *pass_target(struct pass *p, const char *name) {
        return name ? config_find_target(p->config, name) : NULL;
}

static void pass_set_error(struct pass *p, bool fatal, const char *fmt, ...) _printf_(3, 4);
static void pass_set_error(struct pass *p, bool fatal, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *m = strvprintf(fmt, ap);
        va_end(ap);
        if (fatal)
                p->fatal = true;
        else
                p->retryable = true;
        if (m && (!p->error || fatal)) {
                free(p->error);
                p->error = m;
        } else
                free(m);
}

static int pass_save(struct pass *p) {
        if (p->opts.read_only || !p->opts.state_dir)
                return 0;
        int r = state_save(p->opts.state_dir, p->state);
        if (r < 0) {
                char msg[256];
                snprintf(msg, sizeof msg, "cannot save state in %s: %s", p->opts.state_dir, strerror(-r));
                int prio = log_repeat_priority("state-save", msg, LOG_ERR);
                log_full_errno(prio, 0, "%s; claiming nothing that could not be recorded", msg);
                return r;
        }
        if (log_repeat_clear("state-save"))
                log_notice("state saved again in %s", p->opts.state_dir);
        return 0;
}

/* Logs an AWS error of a call with the fields an operator filters on. */
static void log_call_error(int prio, const struct connect_result *res, const char *target, const char *pool,
                           const char *phone_number, const char *what) {
        struct log_fields f = {
                .target = target,
                .pool = pool,
                .phone_number = phone_number,
                .aws_operation = connect_op_name(res->op),
                .aws_request_id = res->error.request_id ? res->error.request_id : res->request_id,
                .aws_error_code = res->error.code,
        };
        /* The number and the target in the text too: a line read alone
         * (journalctl without -o verbose) says what it is about. */
        char about[256] = "";
        if (phone_number && target)
                snprintf(about, sizeof about, " (%s of %s/%s)", phone_number, target, pool ? pool : "-");
        else if (target)
                snprintf(about, sizeof about, " (%s%s%s)", target, pool ? "/" : "", pool ? pool : "");
        if (res->error.message)
                log_fields(prio, 0, &f, "%s%s: %s. Amazon Connect said: \"%s\"", what, about,
                           connect_error_kind_name(res->error.kind), res->error.message);
        else
                log_fields(prio, 0, &f, "%s%s: %s", what, about, connect_error_kind_name(res->error.kind));
}

/* Classifies a failed call for the pass result. */
static void pass_note_call_error(struct pass *p, const struct connect_result *res, const char *target) {
        enum connect_error_kind k = res->error.kind;
        if (res->r == -ECANCELED)
                return;
        if (k == CONNECT_ERROR_CREDENTIALS)
                p->target_failed = true;
        if (k == CONNECT_ERROR_AUTH || k == CONNECT_ERROR_ACCESS_DENIED || k == CONNECT_ERROR_TLS)
                pass_set_error(p, true, "%s on %s: %s", connect_op_name(res->op), target ? target : "-",
                               res->error.message ? res->error.message : connect_error_kind_name(k));
        else if (k == CONNECT_ERROR_THROTTLED || k == CONNECT_ERROR_TRANSIENT || k == CONNECT_ERROR_QUOTA)
                pass_set_error(p, false, "%s on %s: %s", connect_op_name(res->op), target ? target : "-",
                               res->error.message ? res->error.message : connect_error_kind_name(k));
        else
                pass_set_error(p, false, "%s on %s: %s", connect_op_name(res->op), target ? target : "-",
                               res->error.message ? res->error.message : connect_error_kind_name(k));
}

static const char QUOTA_SENTENCE[] = "You've reached the limit of Phone Numbers. To increase the limit, contact support.";
static const char QUOTA_WHERE[] =
        "Ask for a higher \"Phone numbers per instance\" quota through the Amazon Connect service quotas "
        "increase form in the AWS Support console "
        "(https://console.aws.amazon.com/support/home#/case/create?issueType=service-limit-increase); "
        "even a first claim can hit this limit.";

/* Amazon's text, quoted once and verbatim: ' Amazon Connect said: "..."'. */
static const char *said(const char *message, char *buf, size_t n) {
        if (!message)
                return "";
        snprintf(buf, n, " Amazon Connect said: \"%s\"", message);
        return buf;
}

static void log_event(struct pass *p, const struct lifecycle_event *ev) {
        char deadline[32] = "", held[32], wanted[32], quota[32] = "";
        const struct target_config *t = pass_target(p, ev->target);
        const char *extra[5] = {0};
        size_t n = 0;
        snprintf(held, sizeof held, "HELD=%u", ev->held);
        snprintf(wanted, sizeof wanted, "WANTED=%u", ev->wanted);
        struct log_fields f = {
                .target = ev->target,
                .target_arn = ev->target_arn ? ev->target_arn : (t ? t->arn : NULL),
                .pool = ev->pool,
                .phone_number = ev->phone_number,
                .phone_number_id = ev->phone_number_id,
                .extra = extra,
        };
        const char *who = ev->target ? ev->target : "-";
        const char *pool = ev->pool ? ev->pool : "-";
        const char *num = ev->phone_number ? ev->phone_number : "a number";

        switch (ev->kind) {
        case EVENT_CLAIMED:
                f.message_id = MESSAGE_ID_CLAIMED;
                log_fields(LOG_INFO, 0, &f, "Claimed %s for %s/%s", num, who, pool);
                break;
        case EVENT_CLAIM_FAILED: {
                char next[32], amazon[640];
                f.message_id = MESSAGE_ID_CLAIM_FAILED;
                format_timestamp_sec(ev->deadline, deadline, sizeof deadline);
                format_timestamp_sec(ev->next_retry_at, next, sizeof next);
                if (ev->refused)
                        /* An error answer: no number is held, nothing FAILED. */
                        log_fields(LOG_WARNING, 0, &f,
                                   "Claim of %s for %s/%s was refused.%s It will be tried again at %s, until %s.",
                                   num, who, pool, said(ev->message, amazon, sizeof amazon), next, deadline);
                else
                        log_fields(LOG_WARNING, 0, &f,
                                   "Claim of %s for %s/%s failed.%s Amazon Connect keeps a FAILED number for this "
                                   "account for one day, without charge: it will be claimed again at %s, until %s.",
                                   num, who, pool, said(ev->message, amazon, sizeof amazon), next, deadline);
                break;
        }
        case EVENT_WINDOW_EXPIRED: {
                char amazon[640];
                f.message_id = MESSAGE_ID_WINDOW_EXPIRED;
                log_fields(LOG_WARNING, 0, &f,
                           "Gave up on %s for %s/%s: its one-day retry window has ended.%s Another number will be "
                           "claimed in its place.",
                           num, who, pool, said(ev->message, amazon, sizeof amazon));
                break;
        }
        case EVENT_QUOTA: {
                char backoff[32], amazon[640], configured[48];
                f.message_id = MESSAGE_ID_QUOTA;
                /* The limit actually met: the numbers the target held when
                 * Amazon Connect refused; the YAML's quota: beside it. */
                snprintf(quota, sizeof quota, "QUOTA=%u", ev->held);
                extra[n++] = quota;
                if (t) {
                        snprintf(configured, sizeof configured, "QUOTA_CONFIGURED=%u", t->quota);
                        extra[n++] = configured;
                }
                extra[n++] = held;
                extra[n++] = wanted;
                format_duration_sec(p->config->quota_backoff_usec / USEC_PER_SEC, backoff, sizeof backoff);
                bool amazon_says_it = ev->message && strstr(ev->message, QUOTA_SENTENCE);
                log_fields(LOG_ERR, 0, &f,
                           "Phone-number quota reached on target %s: it held %u %s when Amazon Connect refused a "
                           "claim (%u wanted).%s%s%s %s New claims for %s pause for %s or until its part of the "
                           "YAML changes.",
                           who, ev->held, ev->held == 1 ? "number" : "numbers", ev->wanted,
                           said(ev->message, amazon, sizeof amazon), amazon_says_it ? "" : " ",
                           amazon_says_it ? "" : QUOTA_SENTENCE, QUOTA_WHERE, who, backoff);
                break;
        }
        case EVENT_QUOTA_CLEARED:
                log_fields(LOG_NOTICE, 0, &f, "Claims for target %s resume%s%s.", who, ev->message ? ": " : "",
                           ev->message ? ev->message : "");
                break;
        case EVENT_NO_NUMBERS:
                f.message_id = MESSAGE_ID_NO_NUMBERS;
                log_fields(LOG_WARNING, 0, &f,
                           "No phone numbers available for %s/%s%s%s. More numbers for a country or region, or a "
                           "specific area code or prefix, can be requested through the Amazon Connect service "
                           "quotas increase form in the AWS Support console.",
                           who, pool, ev->message ? " " : "", ev->message ? ev->message : "");
                break;
        case EVENT_RELEASED:
                f.message_id = MESSAGE_ID_RELEASED;
                log_fields(LOG_NOTICE, 0, &f,
                           "Released %s from %s/%s. A released number can never be claimed again.", num, who, pool);
                break;
        case EVENT_NUMBER_GONE:
                log_fields(LOG_WARNING, 0, &f, "%s of %s/%s is no longer in Amazon Connect%s%s.", num, who, pool,
                           ev->message ? ": " : "", ev->message ? ev->message : "");
                break;
        case EVENT_MOVED_AWAY:
                f.message_id = MESSAGE_ID_MOVED;
                if (lifecycle_pin_pool(t, ev->phone_number)) {
                        log_fields(LOG_WARNING, 0, &f,
                                   "Pinned number %s of %s/%s was moved to %s outside connect-numbers: it is moved "
                                   "back if that target is one the service lists, else claimed again when it is "
                                   "free; it is never replaced by another number.",
                                   num, who, pool, ev->message ? ev->message : "another target");
                        break;
                }
                log_fields(LOG_WARNING, 0, &f,
                           "%s of %s/%s was moved to %s outside connect-numbers: it no longer counts for the pool, "
                           "which claims a replacement, and it is never released, tagged or untagged for it.",
                           num, who, pool, ev->message ? ev->message : "another target");
                break;
        case EVENT_MOVED:
                f.message_id = MESSAGE_ID_MOVED;
                log_fields(LOG_NOTICE, 0, &f,
                           "Moved %s from %s to %s for %s/%s (UpdatePhoneNumber); its tag and contact flow follow "
                           "on the new target.",
                           num, ev->message ? ev->message : "its old target", f.target_arn ? f.target_arn : who, who,
                           pool);
                break;
        case EVENT_MOVE_FAILED: {
                char next[32], amazon[640];
                format_timestamp_sec(ev->next_retry_at, next, sizeof next);
                log_fields(LOG_WARNING, 0, &f,
                           "Moving %s to %s for %s/%s failed.%s The number stays where it was and counts for the "
                           "pool as moving; the move is tried again at %s.",
                           num, f.target_arn ? f.target_arn : who, who, pool,
                           said(ev->message, amazon, sizeof amazon), next);
                break;
        }
        case EVENT_PIN_UNAVAILABLE:
        case EVENT_PIN_LOST: {
                char next[32], amazon[640];
                f.message_id = MESSAGE_ID_PIN;
                format_timestamp_sec(ev->next_retry_at, next, sizeof next);
                log_fields(ev->kind == EVENT_PIN_LOST ? LOG_ERR : LOG_WARNING, 0, &f,
                           "Pinned number %s of %s/%s %s.%s It may be held by another target or another customer, "
                           "or back with the carrier. It is never replaced by another number; it will be tried "
                           "again at %s (at most hourly). A specific number can be requested through the Amazon "
                           "Connect service quotas increase form in the AWS Support console.",
                           num, who, pool,
                           ev->kind == EVENT_PIN_LOST ? "could not be claimed within its one-day retry window"
                                                      : "is not available to claim",
                           said(ev->message, amazon, sizeof amazon), next);
                break;
        }
        case EVENT_NOTE:
                log_fields(LOG_INFO, 0, &f, "%s", ev->message ? ev->message : "note");
                break;
        }
}

/* The metrics' counters, from the same events the log records (counted
 * also when a record is repeat-suppressed; --plan counts nothing). */
static void pass_count_event(struct pass *p, const struct lifecycle_event *ev) {
        if (!p->opts.read_only)
                metrics_counters_event(p->opts.counters, ev);
}

static void log_events(struct pass *p, struct lifecycle_events *ev) {
        for (size_t i = 0; i < ev->n; i++)
                pass_count_event(p, &ev->items[i]);
        /* --plan changes nothing and saves nothing: what it learns would be
         * logged again by the next real pass, so it stays out of the log. */
        for (size_t i = 0; i < ev->n && !p->opts.read_only; i++)
                log_event(p, &ev->items[i]);
        lifecycle_events_clear(ev);
}

/* ---- finishing ---------------------------------------------------------- */

static void pass_maybe_advance(struct pass *p);

static void pass_summarize(struct pass *p, struct pass_result *r) {
        uint64_t now = clock_wall_sec();
        bool all_claimed = true;
        for (size_t i = 0; i < p->config->n_targets; i++) {
                const struct target_config *t = &p->config->targets[i];
                const struct state_target *st = state_find_target(p->state, t->name);
                if (lifecycle_target_paused(st, now)) {
                        r->quota_paused = true;
                        char *q = r->quota_targets ? strprintf("%s,%s", r->quota_targets, t->name)
                                                   : strdup(t->name);
                        if (q) {
                                free(r->quota_targets);
                                r->quota_targets = q;
                        }
                }
                for (size_t j = 0; j < t->n_pools; j++) {
                        const struct pool_config *pc = &t->pools[j];
                        struct pool_figures f;
                        lifecycle_pool_figures(p->state, t->name, pc->name, pc->count, now, &f);
                        if (f.earliest_deadline && (!r->earliest_deadline || f.earliest_deadline < r->earliest_deadline))
                                r->earliest_deadline = f.earliest_deadline;
                        if (f.next_retry_at && (!r->next_retry_at || f.next_retry_at < r->next_retry_at))
                                r->next_retry_at = f.next_retry_at;
                        r->desired += f.desired;
                        r->claimed += f.claimed;
                        r->in_progress += f.in_progress;
                        r->failed_pending += f.failed_pending;
                        r->excess += f.excess;
                        r->moving += f.moving;
                        r->pins_missing += lifecycle_pins_missing(p->state, t, pc, now);
                        if (f.moving > 0)
                                all_claimed = false;
                        if (f.claimed < f.desired)
                                r->short_pools++;
                        if (f.claimed < f.desired || f.in_progress > 0)
                                all_claimed = false;
                        /* An excess that release_excess: true will release is
                         * work remaining; one that is only reported is not. */
                        if (t->release_excess && f.excess > 0)
                                all_claimed = false;
                }
        }
        r->claims_made = p->claims_made;
        r->releases_made = p->releases_made;
        r->moves_made = p->moves_made;
        if (p->plan)
                r->next_wakeup_at = p->plan->next_wakeup_at;

        if (p->fatal || p->target_failed)
                r->exit_status = EXIT_FAILURE_OTHER;
        else if (p->opts.read_only)
                r->exit_status = p->plan && plan_count_api_changes(p->plan) > 0 ? EXIT_WORK_REMAINS
                                 : p->retryable                            ? EXIT_WORK_REMAINS
                                                                           : EXIT_DESIRED_HOLDS;
        else if (!all_claimed || p->retryable || p->stopping)
                r->exit_status = EXIT_WORK_REMAINS;
        else
                r->exit_status = EXIT_DESIRED_HOLDS;
        r->error = strdup_or_null(p->error);
}

static int on_finish(sd_event_source *s _unused_, void *userdata) {
        struct pass *p = userdata;
        p->done(p, &p->result, p->userdata);
        return 0;
}

/* Remembers what the YAML wants, so that --status can show it without
 * reading the YAML (it may be unreadable to the operator). */
static bool pass_record_desired(struct pass *p) {
        bool changed = false;
        for (size_t i = 0; i < p->config->n_targets; i++) {
                const struct target_config *t = &p->config->targets[i];
                struct state_target *st = state_get_target(p->state, t->name, t->arn);
                struct state_desired *d = calloc(MAX(t->n_pools, 1), sizeof *d);
                if (!st || !d) {
                        free(d);
                        continue;
                }
                size_t n = 0;
                for (size_t j = 0; j < t->n_pools; j++) {
                        d[n].pool = strdup(t->pools[j].name);
                        if (!d[n].pool)
                                continue;
                        d[n++].count = t->pools[j].count;
                }
                bool same = st->n_desired == n;
                for (size_t j = 0; same && j < n; j++)
                        same = streq_ptr(st->desired[j].pool, d[j].pool) && st->desired[j].count == d[j].count;
                if (same) {
                        state_desired_free(d, n);
                        continue;
                }
                state_desired_free(st->desired, st->n_desired);
                st->desired = d;
                st->n_desired = n;
                changed = true;
        }
        return changed;
}

static void pass_finish(struct pass *p) {
        if (p->finished)
                return;
        if (!p->opts.read_only && pass_record_desired(p))
                p->dirty = true;
        if (!p->opts.read_only && state_prune(p->state, clock_wall_sec(), NULL) > 0)
                p->dirty = true; /* forget the numbers we are done with (prune.h) */
        p->finished = true;
        p->phase = PASS_DONE;
        uint64_t now = clock_wall_sec();
        p->state->last_pass_finished_at = now;
        pass_summarize(p, &p->result);
        p->state->last_pass_result = p->result.exit_status;
        free_and_strdup(&p->state->last_error, p->error);
        p->result.plan = TAKE_PTR(p->plan);
        /* Only a pass that changed the state saves it whole (at 10,000
         * numbers it is megabytes); the caller writes the small pass record
         * otherwise. After a change, the lists this pass took in no longer
         * describe the whole state: the next pass takes them in again. */
        log_debug("The pass %s the state", p->dirty ? "changed" : "did not change");
        if (p->dirty) {
                state_forget_list_digests(p->state);
                p->result.wrote_state = !p->opts.read_only && p->opts.state_dir;
                (void) pass_save(p);
        }
        /* Report from the loop, never from inside a callback chain that the
         * receiver might free. */
        if (sd_event_add_defer(p->event, &p->finish_source, on_finish, p) < 0)
                p->done(p, &p->result, p->userdata);
}

/* ---- follow claims with DescribePhoneNumber ----------------------------- */

/* Following costs one describe per claim (docs/design.md, "Following
 * claims"). A claim's first describe is due when the claim latency observed
 * so far (the EWMA in state->claim_latency_sec) says it is likely done;
 * until one claim has been seen to settle, the oldest claim alone probes
 * (first at FOLLOW_PROBE_FIRST_USEC, then FOLLOW_PROBE_GROWTH times later)
 * and the others wait for what it learns. Due describes are handed to the
 * client oldest claim first, at most FOLLOW_WINDOW per region at once: when
 * the describe bucket is the bottleneck, the rest wait here (growing older,
 * so likelier done) instead of in the client's queue, and a token is never
 * spent early. A poll that sees IN_PROGRESS is repeated after an eighth of
 * the estimate (at least FOLLOW_STEP_MIN_USEC), doubling from there. */
#define FOLLOW_WINDOW 4
#define FOLLOW_PROBE_FIRST_USEC (2 * USEC_PER_SEC)
#define FOLLOW_PROBE_GROWTH 1.5
#define FOLLOW_STEP_MIN_USEC (100 * USEC_PER_MSEC)
#define FOLLOW_UPDATE_FIRST_USEC (500 * USEC_PER_MSEC)
/* The first claim followed in a pass polls at this share of the estimate,
 * so that an estimate that has grown too large can come down (at most one
 * extra describe per pass). */
#define FOLLOW_PROBE_DOWN 0.8

enum follow_kind {
        FOLLOW_CLAIM,                  /* a claim just answered: its settling teaches the latency */
        FOLLOW_RESUMED,                /* a claim an earlier pass left IN_PROGRESS: poll now */
        FOLLOW_UPDATE,                 /* a metadata update: not a claim, teaches nothing */
        FOLLOW_MOVE,                   /* a move (UpdatePhoneNumber): looked at when a claim would be done */
};

struct follow {
        struct pass *pass;
        enum follow_kind kind;
        char *target;
        char *phone_number;
        char *id;
        char *region;
        usec_t started;                /* CLOCK_BOOTTIME when the claim was answered */
        usec_t due;                    /* CLOCK_BOOTTIME of the next describe; 0 while parked */
        usec_t step;                   /* wait after the next IN_PROGRESS */
        unsigned polls;                /* describes answered */
        sd_event_source *timer;
        bool parked;                   /* waits for the latency probe */
        bool early;                    /* its first look is the pass's probe down (FOLLOW_PROBE_DOWN) */
        bool ready;                    /* due: waits for a place in the window */
        bool in_flight;
        bool done;
};

static void follow_free(struct follow *f) {
        if (!f)
                return;
        sd_event_source_disable_unref(f->timer);
        free(f->target);
        free(f->phone_number);
        free(f->id);
        free(f->region);
        free(f);
}

static size_t pass_follows_active(struct pass *p) {
        size_t n = 0;
        for (size_t i = 0; i < p->n_follows; i++)
                if (!p->follows[i]->done)
                        n++;
        return n;
}

static usec_t follow_latency_usec(const struct pass *p) {
        double lat = p->state->claim_latency_sec;
        if (!(lat > 0) || !isfinite(lat))
                return 0;
        return MIN((usec_t) (lat * 1e6), FOLLOW_MAX_DELAY_USEC);
}

static int follow_arm(struct follow *f);
static void follow_dispatch(struct pass *p);
static void pass_stop_if_quota_paused(struct pass *p, const char *target);

/* The probe taught the latency, or ended without teaching it: every parked
 * claim gets its first describe at (answer + estimate), or the oldest of them
 * becomes the next probe. */
static bool follow_probing(const struct pass *p);

static void follow_unpark(struct pass *p) {
        usec_t lat = follow_latency_usec(p);
        if (!lat && follow_probing(p))
                return;
        for (size_t i = 0; i < p->n_follows; i++) {
                struct follow *f = p->follows[i];
                if (!f->parked || f->done)
                        continue;
                f->parked = false;
                f->due = f->started + (lat ?: FOLLOW_PROBE_FIRST_USEC);
                f->step = MAX(lat / 8, FOLLOW_STEP_MIN_USEC);
                if (follow_arm(f) < 0)
                        f->done = true;
                if (!lat)
                        break; /* the oldest probes; the rest stay parked */
        }
}

static bool follow_probing(const struct pass *p) {
        for (size_t i = 0; i < p->n_follows; i++) {
                const struct follow *f = p->follows[i];
                if (f->kind == FOLLOW_CLAIM && !f->parked && !f->done)
                        return true;
        }
        return false;
}

static void follow_learn(struct follow *f, usec_t now) {
        struct pass *p = f->pass;
        double took = (double) (now - f->started) / 1e6, lat = p->state->claim_latency_sec;
        if (f->kind != FOLLOW_CLAIM)
                return;
        /* Settled at the first describe: the latency is at most its age,
         * which is the estimate plus the describe's own wait and round trip
         * (not the claim's): the estimate stays, unless the describe went
         * early (the per-pass probe down) and so brings it down. After an
         * IN_PROGRESS, the age is an upper bound close to the truth. */
        if (f->polls == 1 && lat > 0 && isfinite(lat))
                took = MIN(took, lat);
        p->state->claim_latency_sec = lat > 0 && isfinite(lat) ? 0.7 * lat + 0.3 * took : took;
}

static void on_follow_describe(const struct connect_result *res, void *userdata) {
        struct follow *f = userdata;
        struct pass *p = f->pass;
        struct lifecycle_events ev = {0};
        uint64_t now = clock_wall_sec();
        bool was_unknown = follow_latency_usec(p) == 0;

        f->in_flight = false;
        p->outstanding--;
        p->dirty = true;
        if (res->r >= 0 && res->n_numbers == 1) {
                f->polls++;
                lifecycle_ingest_describe(p->state, p->config, f->target, &res->numbers[0], now, &ev);
                log_events(p, &ev);
                pass_stop_if_quota_paused(p, f->target);
                /* Done when Amazon Connect says so: a claim CLAIMED or
                 * FAILED, a metadata update back to CLAIMED. */
                struct state_number *n = state_find_number(p->state, f->target, f->phone_number);
                if (!n || res->numbers[0].status != CONNECT_STATUS_IN_PROGRESS) {
                        follow_learn(f, clock_boottime_usec());
                        f->done = true;
                        (void) pass_save(p);
                }
        } else if (res->r == -ECANCELED)
                f->done = true;
        else if (res->error.kind != CONNECT_ERROR_NOT_FOUND) {
                /* A claim just answered may not be describable for a moment
                 * (NOT_FOUND): keep polling. Other errors: log once. */
                char key[128];
                snprintf(key, sizeof key, "follow:%s", f->phone_number);
                log_call_error(log_repeat_priority(key, res->error.message, LOG_WARNING), res, f->target, NULL,
                               f->phone_number, "Following a claim failed");
                if (res->error.kind == CONNECT_ERROR_AUTH || res->error.kind == CONNECT_ERROR_ACCESS_DENIED ||
                    res->error.kind == CONNECT_ERROR_TLS) {
                        pass_note_call_error(p, res, f->target);
                        f->done = true;
                }
        }
        if (!f->done && !p->stopping && clock_boottime_usec() < p->follow_deadline) {
                usec_t now_b = clock_boottime_usec();
                if (f->kind == FOLLOW_CLAIM && was_unknown) {
                        /* The probe: the next look when the claim is that much older. */
                        usec_t age = now_b > f->started ? now_b - f->started : 0;
                        f->due = f->started + MAX((usec_t) ((double) age * FOLLOW_PROBE_GROWTH),
                                                  age + FOLLOW_STEP_MIN_USEC);
                } else if (f->early) {
                        /* Looked early on purpose: the next look when the
                         * estimate says, as for any other claim. */
                        f->early = false;
                        f->due = MAX(now_b, f->started + follow_latency_usec(p));
                } else {
                        f->due = now_b + f->step;
                        f->step = MIN(f->step * 2, FOLLOW_MAX_DELAY_USEC);
                }
                if (follow_arm(f) < 0)
                        f->done = true;
        } else
                f->done = true;
        if (was_unknown && (f->done || follow_latency_usec(p) > 0))
                follow_unpark(p);
        follow_dispatch(p);
        pass_maybe_advance(p);
}

/* A number's id as the calls about it send it. With roles (several
 * accounts), its ARN: a bare id names no account, so the call could be
 * signed with another account's credentials (Amazon Connect then finds no
 * such number, or refuses) and paced on the wrong buckets; the ARN says
 * whose number it is. */
static const char *call_id(struct pass *p, const char *source, const char *id, const char *known_arn,
                           char buf[static STATE_ARN_MAX]) {
        if (!p->with_roles || !id || strncmp(id, "arn:", 4) == 0)
                return id;
        if (known_arn)
                return known_arn;
        const char *arn = NULL;
        if (!lifecycle_source(p->config, source, &arn, NULL) || !state_derive_number_arn(arn, id, buf))
                return id;
        return buf;
}

static void follow_send(struct follow *f) {
        struct pass *p = f->pass;
        f->ready = false;
        char arn[STATE_ARN_MAX];
        int r = connect_describe_number(p->client, f->region, call_id(p, f->target, f->id, NULL, arn), on_follow_describe, f);
        if (r < 0) {
                f->done = true;
                if (follow_latency_usec(p) == 0)
                        follow_unpark(p);
                return;
        }
        f->in_flight = true;
        p->outstanding++;
}

/* Hands due describes to the client, oldest claim first, while the region
 * has fewer than FOLLOW_WINDOW in flight. Each round is one walk over the
 * follows; a region found full is skipped for the rest of the call. */
#define FOLLOW_FULL_REGIONS_MAX 16
static void follow_dispatch(struct pass *p) {
        const char *full[FOLLOW_FULL_REGIONS_MAX];
        size_t n_full = 0;

        if (p->stopping)
                return;
        for (;;) {
                struct follow *best = NULL;
                for (size_t i = 0; i < p->n_follows; i++) {
                        struct follow *f = p->follows[i];
                        if (!f->ready || f->done || (best && best->started <= f->started))
                                continue;
                        bool skip = false;
                        for (size_t k = 0; k < n_full && !skip; k++)
                                skip = streq(full[k], f->region);
                        if (!skip)
                                best = f;
                }
                if (!best)
                        return;
                unsigned in_region = 0;
                for (size_t j = 0; j < p->n_follows; j++)
                        if (p->follows[j]->in_flight && streq(p->follows[j]->region, best->region))
                                in_region++;
                if (in_region < FOLLOW_WINDOW)
                        follow_send(best);
                else if (n_full < FOLLOW_FULL_REGIONS_MAX)
                        full[n_full++] = best->region;
                else
                        return; /* more full regions than that: the next answer dispatches again */
        }
}

static int on_follow_timer(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        struct follow *f = userdata;
        struct pass *p = f->pass;
        if (p->stopping) {
                f->done = true;
                pass_maybe_advance(p);
                return 0;
        }
        f->ready = true;
        follow_dispatch(p);
        pass_maybe_advance(p);
        return 0;
}

static int follow_arm(struct follow *f) {
        usec_t when = MIN(f->due, f->pass->follow_deadline);
        if (f->timer)
                return sd_event_source_set_time(f->timer, when) < 0 ? -EIO
                       : sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT);
        return sd_event_add_time(f->pass->event, &f->timer, CLOCK_BOOTTIME, when, 10 * USEC_PER_MSEC, on_follow_timer,
                                 f);
}

static void pass_follow(struct pass *p, enum follow_kind kind, const char *target, const char *region,
                        const char *phone_number, const char *id) {
        if (p->stopping || !id)
                return;
        struct follow *f = calloc(1, sizeof *f);
        if (!f)
                return;
        f->pass = p;
        f->kind = kind;
        f->target = strdup(target);
        f->phone_number = strdup(phone_number);
        f->id = strdup(id);
        f->region = strdup(region);
        f->started = clock_boottime_usec();
        usec_t lat = follow_latency_usec(p);
        f->step = MAX(lat / 8, FOLLOW_STEP_MIN_USEC);
        switch (kind) {
        case FOLLOW_RESUMED:
                f->due = f->started;
                break;
        case FOLLOW_UPDATE:
                f->due = f->started + FOLLOW_UPDATE_FIRST_USEC;
                break;
        case FOLLOW_MOVE:
                f->due = f->started + (lat ? lat : FOLLOW_PROBE_FIRST_USEC);
                break;
        case FOLLOW_CLAIM:
                if (!lat && follow_probing(p))
                        f->parked = true;
                else if (!lat)
                        f->due = f->started + FOLLOW_PROBE_FIRST_USEC;
                else if (!p->probed_down) {
                        p->probed_down = f->early = true;
                        f->due = f->started + (usec_t) ((double) lat * FOLLOW_PROBE_DOWN);
                } else
                        f->due = f->started + lat;
                break;
        }
        struct follow **nf = realloc(p->follows, sizeof *nf * (p->n_follows + 1));
        if (!f->target || !f->phone_number || !f->id || !f->region || !nf || (!f->parked && follow_arm(f) < 0)) {
                if (nf)
                        p->follows = nf;
                follow_free(f);
                return;
        }
        p->follows = nf;
        p->follows[p->n_follows++] = f;
}

/* ---- claims ------------------------------------------------------------ */

/* One search feed per kind of number (region, country, type, prefix) for
 * the whole pass: pools that want the same kind take candidates from one
 * queue instead of racing each other for the same search results. A new
 * search waits until the claims of the last results are answered:
 * SearchAvailablePhoneNumbers keeps offering numbers whose claims are still
 * queued, so an earlier search would mostly return what is being claimed. */
struct searcher {
        struct pass *pass;
        const struct plan_step *step;  /* search parameters: the first pool's claim step */
        char **queue;                  /* fresh candidates, shuffled */
        char **seen;                   /* every number searches returned in this pass */
        struct claimer **claimers;
        size_t n_claimers;
        unsigned claims_in_flight;     /* claims of this feed's numbers not answered yet */
        unsigned searches;
        unsigned searches_max;
        unsigned fruitless;            /* searches that returned nothing new */
        size_t turn;                   /* the claimer that gets the first candidate of the next round */
        bool searching;
        bool exhausted;
        bool found_any;
};

struct claimer {
        struct pass *pass;
        struct searcher *searcher;
        const struct plan_step *step;  /* the pool's first claim step: parameters */
        const struct plan_step **pending; /* the pool's claim steps (slots) still to fill, in order */
        unsigned *tries;               /* per pending step: the index of its next token (claim_tokens) */
        size_t n_slots;
        unsigned slots_wanted;         /* slots at the start of the pass */
        unsigned not_available;
        unsigned in_flight;
        bool stopped;
};

struct claim_call {
        struct pass *pass;
        struct claimer *claimer;       /* NULL for replays and retries */
        char *target;
        char *pool;
        char *region;
        char *phone_number;
        const struct plan_step *step;  /* the claim step of the slot (fresh claims) */
        unsigned try;                  /* which of its tokens this claim used */
        bool retry;                    /* a FAILED number claimed again */
};

static void claim_call_free(struct claim_call *c) {
        if (!c)
                return;
        free(c->target);
        free(c->pool);
        free(c->region);
        free(c->phone_number);
        free(c);
}

static void claimer_free(struct claimer *c) {
        if (!c)
                return;
        free(c->pending);
        free(c->tries);
        free(c);
}

static void searcher_free(struct searcher *sr) {
        if (!sr)
                return;
        strv_free(sr->queue);
        strv_free(sr->seen);
        free(sr->claimers);
        free(sr);
}

static bool claimer_take_one(struct claimer *c);
static void searcher_pump(struct searcher *sr);

/* Queues claim step s (a slot) to be filled with its token number try. */
static int claimer_push(struct claimer *cl, const struct plan_step *s, unsigned try) {
        const struct plan_step **np = realloc(cl->pending, sizeof *np * (cl->n_slots + 1));
        if (!np)
                return -ENOMEM;
        cl->pending = np;
        unsigned *nt = realloc(cl->tries, sizeof *nt * (cl->n_slots + 1));
        if (!nt)
                return -ENOMEM;
        cl->tries = nt;
        cl->pending[cl->n_slots] = s;
        cl->tries[cl->n_slots] = try;
        cl->n_slots++;
        return 0;
}

static void claimers_stop_target(struct pass *p, const char *target) {
        for (size_t i = 0; i < p->n_claimers; i++)
                if (streq(p->claimers[i]->step->target, target))
                        p->claimers[i]->stopped = true;
}

/* A claim that ended FAILED for the quota (seen by describing it) pauses
 * the target's claims at once: no more of this pass's queued candidates
 * are claimed for it (docs/design.md, rule 4: no claim storm). */
static void pass_stop_if_quota_paused(struct pass *p, const char *target) {
        if (lifecycle_target_paused(state_find_target(p->state, target), clock_wall_sec()))
                claimers_stop_target(p, target);
}

static void on_claim(const struct connect_result *res, void *userdata) {
        struct claim_call *cc = userdata;
        struct pass *p = cc->pass;
        struct claimer *cl = cc->claimer;
        struct lifecycle_events ev = {0};
        uint64_t now = clock_wall_sec();

        p->outstanding--;
        p->dirty = true;
        if (cl) {
                cl->in_flight--;
                cl->searcher->claims_in_flight--;
        }
        struct state_number *n = state_find_number(p->state, cc->target, cc->phone_number);
        if (res->r >= 0 && n) {
                lifecycle_claim_answered(p->state, n, res->phone_number_id, res->phone_number_arn, now);
                p->claims_made++;
                struct log_fields f = {.target = cc->target, .pool = cc->pool, .phone_number = cc->phone_number,
                                       .phone_number_id = res->phone_number_id, .aws_operation = "ClaimPhoneNumber",
                                       .aws_request_id = res->request_id};
                log_fields(LOG_INFO, 0, &f, "Claim of %s for %s/%s accepted, in progress", cc->phone_number,
                           cc->target, cc->pool ? cc->pool : "-");
                (void) pass_save(p);
                pass_follow(p, FOLLOW_CLAIM, cc->target, cc->region, cc->phone_number, res->phone_number_id);
        } else if (res->r < 0 && n) {
                enum claim_next next;
                if (res->r == -ECANCELED)
                        next = CLAIM_NEXT_KEEP_INTENT; /* outcome unknown: the intent is replayed */
                else {
                        log_call_error(LOG_WARNING, res, cc->target, cc->pool, cc->phone_number, "Claim refused");
                        bool retry = n->phase == PHASE_FAILED || n->first_failure_at != 0;
                        next = lifecycle_claim_refused(p->state, p->config, n, &res->error, now, &ev);
                        metrics_counters_refusal(p->opts.counters, cc->target, retry, next);
                        log_events(p, &ev);
                }
                switch (next) {
                case CLAIM_NEXT_CANDIDATE:
                        if (cl && cc->step) {
                                /* The slot again, with its next token (none left:
                                 * the slot waits for the next pass). */
                                if (cc->try + 1 < cc->step->n_claim_tokens)
                                        (void) claimer_push(cl, cc->step, cc->try + 1);
                                cl->not_available++;
                        }
                        break;
                case CLAIM_NEXT_STOP_POOL:
                        if (cl)
                                cl->stopped = true;
                        break;
                case CLAIM_NEXT_STOP_TARGET:
                        claimers_stop_target(p, cc->target);
                        p->retryable = true;
                        break;
                case CLAIM_NEXT_KEEP_INTENT:
                        if (res->r != -ECANCELED)
                                pass_note_call_error(p, res, cc->target);
                        if (cl)
                                cl->stopped = true;
                        break;
                case CLAIM_NEXT_FATAL:
                        pass_note_call_error(p, res, cc->target);
                        claimers_stop_target(p, cc->target);
                        break;
                }
                (void) pass_save(p);
        }
        claim_call_free(cc);
        if (cl)
                searcher_pump(cl->searcher);
        pass_maybe_advance(p);
}

static int send_claim(struct pass *p, struct claimer *cl, const char *target, const char *pool, const char *region,
                      const char *target_arn, const struct state_number *n, const struct plan_step *step,
                      unsigned try, bool retry) {
        _cleanup_(freep) struct connect_tag *tags = calloc(n->n_claim_tags + 1, sizeof *tags);
        if (!tags)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_claim_tags; i++)
                /* connect_claim_number only reads them. */
                tags[i] = (struct connect_tag){.key = (char *) n->claim_tags[i].key,
                                               .value = (char *) n->claim_tags[i].value};
        struct claim_call *cc = calloc(1, sizeof *cc);
        if (!cc)
                return -ENOMEM;
        *cc = (struct claim_call){.pass = p, .claimer = cl, .step = step, .try = try, .retry = retry};
        cc->target = strdup(target);
        cc->pool = strdup_or_null(pool);
        cc->region = strdup(region);
        cc->phone_number = strdup(n->phone_number);
        if (!cc->target || !cc->region || !cc->phone_number) {
                claim_call_free(cc);
                return -ENOMEM;
        }
        int r = connect_claim_number(p->client, region, target_arn, n->phone_number, n->claim_description, tags,
                                     n->n_claim_tags, n->client_token, on_claim, cc);
        if (r < 0) {
                claim_call_free(cc);
                return r;
        }
        p->outstanding++;
        if (cl) {
                cl->in_flight++;
                cl->searcher->claims_in_flight++;
        }
        return 0;
}

static bool strv_contains(char *const *l, const char *s) {
        if (l)
                for (; *l; l++)
                        if (streq(*l, s))
                                return true;
        return false;
}

static bool searcher_needed(const struct searcher *sr) {
        if (sr->pass->stopping)
                return false;
        for (size_t i = 0; i < sr->n_claimers; i++)
                if (!sr->claimers[i]->stopped && sr->claimers[i]->n_slots > 0)
                        return true;
        return false;
}

static void searcher_stop(struct searcher *sr) {
        sr->exhausted = true;
        for (size_t i = 0; i < sr->n_claimers; i++)
                sr->claimers[i]->stopped = true;
}

/* A search result that does not fit the pool is skipped and said once
 * (then at debug while the same feed keeps getting such answers): Connect
 * should never offer one. */
static void searcher_log_misfit(struct searcher *sr, const struct connect_available *a) {
        const struct plan_step *s = sr->step;
        char key[256], what[256];
        snprintf(key, sizeof key, "search-misfit:%s:%s:%s:%s", s->target, s->country, s->type,
                 s->prefix ? s->prefix : "");
        snprintf(what, sizeof what, "%s %s%s%s", s->country, s->type, s->prefix ? " with prefix " : "",
                 s->prefix ? s->prefix : "");
        struct log_fields f = {.target = s->target, .target_arn = s->target_arn, .pool = s->pool,
                               .phone_number = a->phone_number, .aws_operation = "SearchAvailablePhoneNumbers"};
        log_fields(log_repeat_priority(key, what, LOG_WARNING), 0, &f,
                   "SearchAvailablePhoneNumbers offered %s (%s %s) for %s/%s, which wants %s: skipped, never "
                   "claimed",
                   a->phone_number ? a->phone_number : "a number without a phone number",
                   a->country ? a->country : "no country", a->type ? a->type : "no type", s->target, s->pool,
                   what);
}

static void on_search(const struct connect_result *res, void *userdata) {
        struct searcher *sr = userdata;
        struct pass *p = sr->pass;
        struct lifecycle_events ev = {0};

        p->outstanding--;
        p->dirty = true;
        sr->searching = false;
        if (res->r < 0) {
                if (res->r != -ECANCELED) {
                        log_call_error(LOG_WARNING, res, sr->step->target, sr->step->pool, NULL,
                                       "Searching for available numbers failed");
                        pass_note_call_error(p, res, sr->step->target);
                }
                searcher_stop(sr);
        } else if (res->n_available == 0) {
                if (!sr->found_any) {
                        for (size_t i = 0; i < sr->n_claimers; i++)
                                lifecycle_no_numbers(p->state, sr->claimers[i]->step, &ev);
                        log_events(p, &ev);
                }
                searcher_stop(sr);
        } else {
                size_t fresh = 0;
                sr->found_any = true;
                for (size_t i = 0; i < sr->n_claimers; i++)
                        lifecycle_numbers_found(p->state, sr->claimers[i]->step);
                for (size_t i = 0; i < res->n_available; i++) {
                        const struct connect_available *a = &res->available[i];
                        const char *num = a->phone_number;
                        if (!reconcile_candidate_fits(sr->step, a)) {
                                searcher_log_misfit(sr, a);
                                continue;
                        }
                        bool known = !num || strv_contains(sr->seen, num);
                        for (size_t k = 0; !known && k < sr->n_claimers; k++)
                                known = state_find_number(p->state, sr->claimers[k]->step->target, num) != NULL;
                        if (known)
                                continue;
                        if (strv_push(&sr->seen, num) < 0 || strv_push(&sr->queue, num) < 0)
                                break;
                        /* Pick at random among the results (docs/design.md): swap the
                         * new one with a random queued one. */
                        size_t len = strv_length(sr->queue);
                        size_t j = (size_t) (random_unit() * (double) len);
                        if (j < len) {
                                char *t = sr->queue[j];
                                sr->queue[j] = sr->queue[len - 1];
                                sr->queue[len - 1] = t;
                        }
                        fresh++;
                }
                if (fresh == 0 && ++sr->fruitless > CLAIM_SEARCH_SLACK)
                        searcher_stop(sr);
        }
        searcher_pump(sr);
        pass_maybe_advance(p);
}

static void searcher_maybe_search(struct searcher *sr) {
        struct pass *p = sr->pass;
        const struct plan_step *s = sr->step;
        if (sr->searching || sr->exhausted || (sr->queue && sr->queue[0]) || !searcher_needed(sr))
                return;
        if (sr->searches > 0 && sr->claims_in_flight > 0)
                return; /* wait for them: see struct searcher */
        if (sr->searches >= sr->searches_max) {
                searcher_stop(sr);
                return;
        }
        int r = connect_search_available(p->client, s->region, s->target_arn, s->country, s->type, s->prefix, 10,
                                         on_search, sr);
        if (r < 0) {
                searcher_stop(sr);
                return;
        }
        sr->searches++;
        sr->searching = true;
        p->outstanding++;
}

/* Candidates go out in turn, one per claimer and round: pools of
 * different accounts then claim side by side, each at its own account's
 * rate, instead of the second waiting until the first is full. */
static void searcher_pump(struct searcher *sr) {
        for (bool more = sr->n_claimers > 0; more;) {
                more = false;
                for (size_t k = 0; k < sr->n_claimers; k++)
                        if (claimer_take_one(sr->claimers[(sr->turn + k) % sr->n_claimers]))
                                more = true;
                sr->turn++;
        }
        searcher_maybe_search(sr);
}

static char *searcher_take(struct searcher *sr) {
        size_t len = strv_length(sr->queue);
        if (len == 0)
                return NULL;
        char *num = sr->queue[len - 1];
        sr->queue[len - 1] = NULL;
        return num;
}

/* Starts one claim with the feed's next candidate; false when the
 * claimer wants none or the feed is empty. */
static bool claimer_take_one(struct claimer *cl) {
        struct pass *p = cl->pass;
        if (!cl->stopped && !p->stopping && cl->n_slots > 0) {
                if (cl->not_available > 2 * cl->slots_wanted + CLAIM_CANDIDATE_SLACK) {
                        cl->stopped = true;
                        return false;
                }
                _cleanup_(freep) char *num = searcher_take(cl->searcher);
                if (!num)
                        return false; /* the searcher pumps us when it has more */

                const struct plan_step *step = cl->pending[0];
                unsigned try = cl->tries[0];
                memmove(cl->pending, cl->pending + 1, sizeof *cl->pending * (cl->n_slots - 1));
                memmove(cl->tries, cl->tries + 1, sizeof *cl->tries * (cl->n_slots - 1));
                cl->n_slots--;

                uint64_t now = clock_wall_sec();
                struct state_number *n = lifecycle_claim_intent(p->state, step, num, step->claim_tokens[try], now);
                if (!n) {
                        cl->stopped = true;
                        return false;
                }
                /* The intent must be on disk before the request leaves
                 * (docs/design.md): no state, no claim. */
                if (pass_save(p) < 0) {
                        n = state_find_number(p->state, cl->step->target, num);
                        if (n)
                                state_remove_number(p->state, n);
                        pass_set_error(p, false, "state could not be saved; claims stopped");
                        cl->stopped = true;
                        return false;
                }
                n = state_find_number(p->state, cl->step->target, num);
                if (!n || send_claim(p, cl, cl->step->target, cl->step->pool, cl->step->region, cl->step->target_arn,
                                     n, step, try, false) < 0) {
                        cl->stopped = true;
                        return false;
                }
                return true;
        }
        return false;
}

static bool step_is_tdg(const struct plan_step *s) {
        return s->target_arn && strstr(s->target_arn, ":traffic-distribution-group/");
}

static struct searcher *pass_searcher_for(struct pass *p, const struct plan_step *s) {
        /* Instances and traffic distribution groups may not be offered the
         * same inventory: they do not share a feed. */
        for (size_t i = 0; i < p->n_searchers; i++) {
                const struct plan_step *x = p->searchers[i]->step;
                if (streq_ptr(x->region, s->region) && streq_ptr(x->country, s->country) &&
                    streq_ptr(x->type, s->type) && streq_ptr(x->prefix, s->prefix) && step_is_tdg(x) == step_is_tdg(s))
                        return p->searchers[i];
        }
        struct searcher *sr = calloc(1, sizeof *sr);
        struct searcher **ns = realloc(p->searchers, sizeof *ns * (p->n_searchers + 1));
        if (ns)
                p->searchers = ns;
        if (!sr || !ns) {
                free(sr);
                return NULL;
        }
        sr->pass = p;
        sr->step = s;
        p->searchers[p->n_searchers++] = sr;
        return sr;
}

static int pass_add_claimer(struct pass *p, const struct plan_step *s) {
        struct claimer *cl = NULL;
        for (size_t i = 0; i < p->n_claimers; i++)
                if (streq(p->claimers[i]->step->target, s->target) && streq_ptr(p->claimers[i]->step->pool, s->pool))
                        cl = p->claimers[i];
        if (!cl) {
                struct searcher *sr = pass_searcher_for(p, s);
                if (!sr)
                        return -ENOMEM;
                struct claimer **sc = realloc(sr->claimers, sizeof *sc * (sr->n_claimers + 1));
                if (!sc)
                        return -ENOMEM;
                sr->claimers = sc;
                cl = calloc(1, sizeof *cl);
                struct claimer **nc = realloc(p->claimers, sizeof *nc * (p->n_claimers + 1));
                if (nc)
                        p->claimers = nc;
                if (!cl || !nc) {
                        free(cl);
                        return -ENOMEM;
                }
                cl->pass = p;
                cl->step = s;
                cl->searcher = sr;
                p->claimers[p->n_claimers++] = cl;
                sr->claimers[sr->n_claimers++] = cl;
        }
        int r = claimer_push(cl, s, 0);
        if (r < 0)
                return r;
        cl->slots_wanted++;
        /* Searches: one per ten numbers wanted of this kind, plus a few for
         * numbers taken by others between search and claim. */
        unsigned wanted = 0;
        for (size_t i = 0; i < cl->searcher->n_claimers; i++)
                wanted += cl->searcher->claimers[i]->slots_wanted;
        cl->searcher->searches_max = (wanted + 9) / 10 + CLAIM_SEARCH_SLACK;
        return 0;
}

/* ---- other steps -------------------------------------------------------- */

struct step_call {
        struct pass *pass;
        const struct plan_step *step;
};

static const char *step_action_words(enum step_action a) {
        switch (a) {
        case STEP_ASSOCIATE_FLOW:
                return "Associating a contact flow failed";
        case STEP_TAG:
                return "Tagging failed";
        case STEP_UNTAG:
                return "Removing tags failed";
        case STEP_UPDATE_DESCRIPTION:
                return "Setting the description failed";
        case STEP_ADOPT:
                return "Adopting failed";
        case STEP_TAKE_OVER:
                return "Taking the number over (retagging) failed";
        case STEP_RELEASE:
                return "Releasing failed";
        default:
                return "A step failed";
        }
}

/* A step that succeeded, in words. */
static void log_step_done(const struct plan_step *s, const struct log_fields *f) {
        const char *num = s->phone_number ? s->phone_number : "a number", *pool = s->pool ? s->pool : "-";
        switch (s->action) {
        case STEP_ASSOCIATE_FLOW:
                log_fields(LOG_INFO, 0, f, "Associated contact flow %s with %s (%s/%s).", s->contact_flow, num,
                           s->target, pool);
                break;
        case STEP_TAG:
                log_fields(LOG_INFO, 0, f, "Tagged %s (%s/%s) with the pool's tags.", num, s->target, pool);
                break;
        case STEP_UNTAG:
                log_fields(LOG_INFO, 0, f, "Removed the tags the pool no longer has from %s (%s/%s).", num,
                           s->target, pool);
                break;
        case STEP_UPDATE_DESCRIPTION:
                log_fields(LOG_INFO, 0, f, "Set the description of %s (%s/%s) to \"%s\".", num, s->target, pool,
                           s->description ? s->description : "");
                break;
        case STEP_ADOPT:
                log_fields(LOG_INFO, 0, f, "Adopted %s into %s/%s: tagged as the pool's.", num, s->target, pool);
                break;
        case STEP_TAKE_OVER:
                log_fields(LOG_INFO, 0, f, "Took %s over into %s/%s (from:): retagged as the pool's.", num, s->target,
                           pool);
                break;
        default:
                log_fields(LOG_INFO, 0, f, "Done: %s %s (%s/%s).", step_action_name(s->action), num, s->target, pool);
                break;
        }
}

static void on_step(const struct connect_result *res, void *userdata) {
        struct step_call *sc = userdata;
        struct pass *p = sc->pass;
        const struct plan_step *s = sc->step;
        struct lifecycle_events ev = {0};
        uint64_t now = clock_wall_sec();

        free(sc);
        p->outstanding--;
        p->steps_in_flight--;
        p->dirty = true;
        if (res->r >= 0) {
                struct log_fields f = {.target = s->target, .target_arn = s->target_arn, .pool = s->pool,
                                       .phone_number = s->phone_number, .phone_number_id = s->phone_number_id,
                                       .aws_operation = connect_op_name(res->op), .aws_request_id = res->request_id};
                if (s->action == STEP_RELEASE) {
                        lifecycle_released(p->state, s, now, &ev);
                        p->releases_made++;
                        log_events(p, &ev);
                } else {
                        lifecycle_applied(p->state, p->config, s, now);
                        /* The update runs IN_PROGRESS for a while: follow it so
                         * that the pass ends with the number CLAIMED again. */
                        if (s->action == STEP_UPDATE_DESCRIPTION && s->phone_number_id)
                                pass_follow(p, FOLLOW_UPDATE, s->target, s->region, s->phone_number, s->phone_number_id);
                        log_step_done(s, &f);
                }
                (void) pass_save(p);
        } else if (res->r != -ECANCELED) {
                log_call_error(LOG_WARNING, res, s->target, s->pool, s->phone_number, step_action_words(s->action));
                if (res->error.kind != CONNECT_ERROR_IN_USE && res->error.kind != CONNECT_ERROR_NOT_FOUND)
                        pass_note_call_error(p, res, s->target);
                else
                        p->retryable = true;
        }
        pass_maybe_advance(p);
}

static void on_move(const struct connect_result *res, void *userdata);

static int start_step_call(struct pass *p, const struct plan_step *s) {
        struct step_call *sc = calloc(1, sizeof *sc);
        char token[37];
        int r;
        if (!sc)
                return -ENOMEM;
        sc->pass = p;
        sc->step = s;
        char arn[STATE_ARN_MAX];
        /* A move's number is still filed where it is now (its source). */
        const char *id = call_id(p, s->action == STEP_MOVE ? s->source : s->target, s->phone_number_id,
                                 s->phone_number_arn, arn);
        switch (s->action) {
        case STEP_UPDATE_DESCRIPTION:
                if (uuid_random(token) < 0)
                        reconcile_claim_token(s->target, s->pool, "metadata", 0, 0, token);
                r = connect_update_metadata(p->client, s->region, id, s->description ? s->description : "", token,
                                            on_step, sc);
                break;
        case STEP_TAG:
        case STEP_ADOPT:
        case STEP_TAKE_OVER: {
                _cleanup_(freep) struct connect_tag *tags = calloc(s->n_tags + 1, sizeof *tags);
                if (!tags) {
                        r = -ENOMEM;
                        break;
                }
                for (size_t i = 0; i < s->n_tags; i++)
                        tags[i] = (struct connect_tag){.key = s->tags[i].key, .value = s->tags[i].value};
                r = connect_tag_resource(p->client, s->region, s->phone_number_arn, tags, s->n_tags, on_step, sc);
                break;
        }
        case STEP_UNTAG:
                r = connect_untag_resource(p->client, s->region, s->phone_number_arn, s->keys, strv_length(s->keys),
                                           on_step, sc);
                break;
        case STEP_ASSOCIATE_FLOW:
                r = connect_associate_flow(p->client, s->region, id, s->instance_id, s->contact_flow, on_step, sc);
                break;
        case STEP_RELEASE:
                r = connect_release_number(p->client, s->region, id, s->client_token, on_step, sc);
                break;
        case STEP_MOVE:
                r = connect_update_number(p->client, s->region, id, s->target_arn, s->client_token, on_move, sc);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0) {
                free(sc);
                return r;
        }
        p->outstanding++;
        p->steps_in_flight++;
        return 0;
}

/* ---- moves --------------------------------------------------------------- */

static void on_move(const struct connect_result *res, void *userdata) {
        struct step_call *sc = userdata;
        struct pass *p = sc->pass;
        const struct plan_step *s = sc->step;
        struct lifecycle_events ev = {0};

        free(sc);
        p->outstanding--;
        p->steps_in_flight--;
        p->dirty = true;
        struct state_number *n = state_find_number(p->state, s->source, s->phone_number);
        struct log_fields f = {.target = s->target, .target_arn = s->target_arn, .pool = s->pool,
                               .phone_number = s->phone_number, .phone_number_id = s->phone_number_id,
                               .aws_operation = "UpdatePhoneNumber", .aws_request_id = res->request_id};
        if (res->r >= 0) {
                p->moves_made++;
                log_fields(LOG_INFO, 0, &f, "Move of %s from %s to %s/%s accepted, in progress", s->phone_number,
                           s->source_arn ? s->source_arn : s->source, s->target, s->pool);
                pass_follow(p, FOLLOW_MOVE, s->source, s->region, s->phone_number, s->phone_number_id);
        } else if (res->r != -ECANCELED) {
                log_call_error(LOG_WARNING, res, s->target, s->pool, s->phone_number, "Moving the number failed");
                lifecycle_move_refused(p->state, n, &res->error, clock_wall_sec(), &ev);
                log_events(p, &ev);
                if (res->error.kind == CONNECT_ERROR_AUTH || res->error.kind == CONNECT_ERROR_ACCESS_DENIED ||
                    res->error.kind == CONNECT_ERROR_TLS)
                        pass_note_call_error(p, res, s->target);
                else
                        p->retryable = true;
        }
        (void) pass_save(p);
        pass_maybe_advance(p);
}

/* The intent (destination, token) on disk before the request leaves: a
 * kill at any instant leaves either no intent (nothing was sent) or one
 * that the next pass settles by describing the number. */
static int start_move(struct pass *p, const struct plan_step *s) {
        struct state_number *n = lifecycle_move_intent(p->state, s, clock_wall_sec());
        if (!n)
                return -errno;
        p->dirty = true;
        int r = pass_save(p);
        if (r < 0)
                return r; /* not sent; the intent is settled by a describe next pass */
        return start_step_call(p, s);
}

static void log_report(const struct plan_step *s) {
        char key[512];
        snprintf(key, sizeof key, "%s:%s:%s:%s", step_action_name(s->action), s->target ? s->target : "",
                 s->pool ? s->pool : "", s->phone_number ? s->phone_number : "");
        const char *d = s->detail ? s->detail : step_action_name(s->action);
        int prio = log_repeat_priority(key, d, s->action == STEP_REPORT_UNMANAGED ? LOG_INFO : LOG_WARNING);
        struct log_fields f = {.target = s->target, .target_arn = s->target_arn, .pool = s->pool,
                               .phone_number = s->phone_number, .phone_number_id = s->phone_number_id};
        log_fields(prio, 0, &f, "%s", d);
}

/* Starts the plan's steps: claims through their pool's claimer, replays and
 * retries at once, the rest through a window of STEP_WINDOW calls. */
static void pass_run_steps(struct pass *p) {
        uint64_t now = clock_wall_sec();
        while (!p->stopping && p->next_step < p->steps_plan->n_steps && p->steps_in_flight < STEP_WINDOW) {
                const struct plan_step *s = &p->steps_plan->steps[p->next_step++];
                const struct target_config *t = pass_target(p, s->target);
                /* UpdatePhoneNumberMetadata puts the number IN_PROGRESS for a
                 * while, and tagging or associating a flow then fails: the
                 * descriptions go in a second round, after everything else. */
                if ((s->action == STEP_UPDATE_DESCRIPTION) != (p->round == 1))
                        continue;
                switch (s->action) {
                case STEP_CLAIM:
                        break; /* started by the claimers below */
                case STEP_REPLAY_CLAIM:
                case STEP_RETRY_CLAIM: {
                        struct state_number *n = state_find_number(p->state, s->target, s->phone_number);
                        if (!n || !t)
                                break;
                        if (s->action == STEP_RETRY_CLAIM) {
                                /* A new attempt on a FAILED number: its intent, with
                                 * the new token, on disk before the request leaves. */
                                n = lifecycle_claim_intent(p->state, s, s->phone_number, s->client_token, now);
                                if (!n)
                                        break;
                                p->dirty = true;
                                if (pass_save(p) < 0)
                                        break;
                                n = state_find_number(p->state, s->target, s->phone_number);
                        }
                        if (n)
                                (void) send_claim(p, NULL, s->target, s->pool, t->region, t->arn, n, NULL, 0,
                                                  s->action == STEP_RETRY_CLAIM);
                        break;
                }
                case STEP_CLAIM_PINNED: {
                        /* By number, no search: its intent on disk first. */
                        struct state_number *n = t ? lifecycle_claim_intent(p->state, s, s->phone_number,
                                                                            s->client_token, now)
                                                   : NULL;
                        if (!n)
                                break;
                        p->dirty = true;
                        if (pass_save(p) < 0)
                                break;
                        n = state_find_number(p->state, s->target, s->phone_number);
                        if (n)
                                (void) send_claim(p, NULL, s->target, s->pool, t->region, t->arn, n, NULL, 0, false);
                        break;
                }
                case STEP_MOVE:
                        if (start_move(p, s) < 0)
                                p->retryable = true;
                        break;
                case STEP_REPORT_WAITING:
                        break; /* logged once per episode, as it began (events) */
                case STEP_GIVE_UP: {
                        struct lifecycle_events ev = {0};
                        lifecycle_give_up(p->state, s, now, &ev);
                        p->dirty = true;
                        log_events(p, &ev);
                        break;
                }
                case STEP_UPDATE_DESCRIPTION:
                case STEP_TAG:
                case STEP_UNTAG:
                case STEP_ASSOCIATE_FLOW:
                case STEP_ADOPT:
                case STEP_TAKE_OVER:
                case STEP_RELEASE:
                        if (start_step_call(p, s) < 0)
                                p->retryable = true;
                        break;
                case STEP_REPORT_MOVED:
                        break; /* logged once, when the move was found (EVENT_MOVED_AWAY) */
                default:
                        if (!p->settling)
                                log_report(s);
                        break;
                }
        }
}

static void pass_execute(struct pass *p) {
        p->phase = PASS_EXECUTE;
        p->steps_plan = p->plan;
        p->follow_deadline = clock_boottime_usec() + p->opts.follow_usec;
        /* Follow claims that an earlier pass left IN_PROGRESS. */
        for (size_t i = 0; i < p->state->n_numbers; i++) {
                struct state_number *n = &p->state->numbers[i];
                const struct target_config *t = pass_target(p, n->target);
                if (n->phase == PHASE_IN_PROGRESS && n->id && t && n->pool)
                        pass_follow(p, FOLLOW_RESUMED, n->target, t->region, n->phone_number, n->id);
                else if (n->move_token && n->id) {
                        const struct target_config *owner = NULL;
                        if (lifecycle_source(p->config, n->target, NULL, &owner))
                                pass_follow(p, FOLLOW_RESUMED, n->target, owner->region, n->phone_number, n->id);
                }
        }
        for (size_t i = 0; i < p->plan->n_steps; i++)
                if (p->plan->steps[i].action == STEP_CLAIM)
                        if (pass_add_claimer(p, &p->plan->steps[i]) < 0)
                                p->retryable = true;
        pass_run_steps(p);
        for (size_t i = 0; i < p->n_searchers; i++)
                searcher_pump(p->searchers[i]);
        pass_maybe_advance(p);
}

/* ---- plan, describe, list ---------------------------------------------- */

static void pass_plan(struct pass *p) {
        struct lifecycle_events ev = {0};
        uint64_t now = clock_wall_sec();
        /* What time or the YAML alone decides (a pause that ends, an old
         * intent dropped), then the plan, which only reads the state. */
        lifecycle_tick(p->state, p->config, now, &ev);
        int r = reconcile_plan(p->config, p->state, now, &p->plan);
        if (ev.n > 0 || (p->plan && plan_count_changes(p->plan) > 0))
                p->dirty = true;
        log_events(p, &ev);
        if (r < 0) {
                pass_set_error(p, true, "planning failed: %s", strerror(-r));
                pass_finish(p);
                return;
        }
        if (p->opts.read_only || p->stopping) {
                pass_finish(p);
                return;
        }
        pass_execute(p);
}

struct describe_call {
        struct pass *pass;
        char *target;
        char *id;
};

/* Counts a failure of kind key; true for the first of its kind this pass
 * (log it), false after (counted, logged at the end by pass_folds_flush). */
static bool pass_fold(struct pass *p, const char *key, const char *what) {
        for (size_t i = 0; i < p->n_folds; i++)
                if (streq(p->folds[i].key, key))
                        return p->folds[i].count++ == 0;
        if (p->n_folds == FOLD_MAX)
                return false; /* past FOLD_MAX kinds, the rest is only counted in the pass error */
        struct fold *f = &p->folds[p->n_folds];
        f->key = strdup(key);
        f->what = strdup(what ? what : key);
        if (!f->key || !f->what) {
                f->key = mfree(f->key);
                f->what = mfree(f->what);
                return true;
        }
        f->count = 1;
        p->n_folds++;
        return true;
}

static void pass_folds_flush(struct pass *p) {
        for (size_t i = 0; i < p->n_folds; i++) {
                struct fold *f = &p->folds[i];
                if (f->count > 1)
                        log_warning("%u more calls failed the same way (%s)", f->count - 1, f->what);
                free(f->key);
                free(f->what);
        }
        p->n_folds = 0;
}

static void pass_describe_pump(struct pass *p);

static void on_describe(const struct connect_result *res, void *userdata) {
        struct describe_call *dc = userdata;
        struct pass *p = dc->pass;
        struct lifecycle_events ev = {0};
        uint64_t now = clock_wall_sec();

        p->outstanding--;
        p->describes_in_flight--;
        p->dirty = true;
        if (res->r >= 0 && res->n_numbers == 1)
                lifecycle_ingest_describe(p->state, p->config, dc->target, &res->numbers[0], now, &ev);
        else if (res->r < 0 && res->error.kind == CONNECT_ERROR_NOT_FOUND)
                lifecycle_ingest_not_found(p->state, dc->target, dc->id, now, &ev);
        else if (res->r < 0 && res->r != -ECANCELED) {
                char key[192], what[256];
                snprintf(key, sizeof key, "describe:%s:%s", connect_error_kind_name(res->error.kind),
                         res->error.code ? res->error.code : "");
                snprintf(what, sizeof what, "describing a number: %s%s%s", connect_error_kind_name(res->error.kind),
                         res->error.code ? " " : "", res->error.code ? res->error.code : "");
                if (pass_fold(p, key, what))
                        log_call_error(LOG_WARNING, res, dc->target, NULL, NULL, "Describing a number failed");
                pass_note_call_error(p, res, dc->target);
        }
        log_events(p, &ev);
        free(dc->target);
        free(dc->id);
        free(dc);
        if (p->phase == PASS_DESCRIBE) {
                usec_t t = clock_boottime_usec();
                if (t >= p->describe_saved_at + DESCRIBE_SAVE_USEC) {
                        /* Progress of a long first pass: what was learned
                         * survives a kill (the end of the pass saves again). */
                        p->describe_saved_at = t;
                        (void) pass_save(p);
                }
                pass_describe_pump(p);
        }
        pass_maybe_advance(p);
}

/* Hands the client describes up to DESCRIBE_WINDOW in flight. */
static void pass_describe_pump(struct pass *p) {
        while (!p->stopping && !p->fatal && p->describes_in_flight < DESCRIBE_WINDOW && p->describe_ids &&
               p->describe_ids[p->describe_next]) {
                char *e = p->describe_ids[p->describe_next++];
                char *tab = strchr(e, '\t');
                if (!tab)
                        continue;
                *tab = 0;
                const struct target_config *t = pass_target(p, e);
                if (!t)
                        continue;
                struct describe_call *dc = calloc(1, sizeof *dc);
                if (!dc)
                        break;
                dc->pass = p;
                dc->target = strdup(e);
                dc->id = strdup(tab + 1);
                char arn[STATE_ARN_MAX];
                if (!dc->target || !dc->id ||
                    connect_describe_number(p->client, t->region, call_id(p, dc->target, dc->id, NULL, arn), on_describe, dc) < 0) {
                        free(dc->target);
                        free(dc->id);
                        free(dc);
                        p->retryable = true;
                        continue;
                }
                p->outstanding++;
                p->describes_in_flight++;
        }
}

static void pass_describe(struct pass *p) {
        p->phase = PASS_DESCRIBE;
        int r = reconcile_describe_wanted(p->config, p->state, clock_wall_sec(), p->opts.audit_budget,
                                          &p->describe_ids);
        if (r < 0) {
                pass_set_error(p, true, "cannot work out what to describe: %s", strerror(-r));
                pass_finish(p);
                return;
        }
        log_debug("describing %zu numbers", strv_length(p->describe_ids));
        p->describe_saved_at = clock_boottime_usec();
        pass_describe_pump(p);
        pass_maybe_advance(p);
}

struct list_call {
        struct pass *pass;
        const struct target_config *target; /* the target whose list this is (region, credentials) */
        const char *source;            /* its name, or one of its previous_arns (lifecycle_source()) */
        const char *arn;               /* what is listed */
        bool begun;                    /* the first page came: lifecycle_list_begin() ran */
        size_t before;                 /* records in the state when it began */
        int r;                         /* the first error taking a page in */
};

/* Takes each page in as it arrives: memory does not grow with the list. */
static int on_list_page(struct connect_number *numbers, size_t n, void *userdata) {
        struct list_call *lc = userdata;
        struct pass *p = lc->pass;
        if (!lc->begun) {
                lc->begun = true;
                lc->before = p->state->n_numbers;
                lc->r = lifecycle_list_begin(p->state, p->config, lc->source);
        }
        if (lc->r >= 0)
                lc->r = lifecycle_list_page(p->state, p->config, lc->source, numbers, n);
        return lc->r;
}

static void on_list(const struct connect_result *res, void *userdata) {
        _cleanup_(freep) struct list_call *lc = userdata;
        struct pass *p = lc->pass;
        const char *name = lc->source, *arn = lc->arn;
        char key[600];

        p->outstanding--;
        snprintf(key, sizeof key, "list:%s", name);
        struct state_target *st = state_get_target(p->state, name, arn);
        if (st) {
                st->list_digest_valid = res->r >= 0 && res->have_digest;
                memcpy(st->list_digest, res->digest, sizeof st->list_digest);
        }
        if (res->r >= 0 && res->unchanged)
                /* The same bytes as the list taken in last time, and the state
                 * has not changed since (else the digest was forgotten):
                 * taking them in again would change nothing. At 10,000
                 * numbers this saves most of a steady pass's CPU. */
                log_debug("The list of %s is unchanged since the last pass", name);
        else if (res->r >= 0) {
                if (!lc->begun) {
                        lc->before = p->state->n_numbers;
                        (void) lifecycle_list_begin(p->state, p->config, name);
                }
                size_t before = lc->before;
                (void) lifecycle_list_end(p->state, p->config, name);
                if (p->state->n_numbers != before)
                        p->dirty = true;
                if (log_repeat_clear(key))
                        log_fields(LOG_NOTICE, 0, &(struct log_fields){.target = lc->target->name, .target_arn = arn},
                                   "Listing numbers of %s works again", name);
        } else {
                lifecycle_list_failed(p->state, name);
                p->dirty = true;
                if (res->r != -ECANCELED) {
                        int prio = log_repeat_priority(key, res->error.message, LOG_ERR);
                        struct log_fields f = {.target = lc->target->name, .target_arn = arn,
                                               .aws_operation = connect_op_name(res->op),
                                               .aws_request_id = res->error.request_id,
                                               .aws_error_code = res->error.code};
                        log_fields(prio, 0, &f, "Cannot list the numbers of %s: %s%s%s", name,
                                   connect_error_kind_name(res->error.kind), res->error.message ? ": " : "",
                                   res->error.message ? res->error.message : "");
                        pass_note_call_error(p, res, lc->target->name);
                }
        }
        pass_maybe_advance(p);
}

/* Numbers claimed in this pass settled after the plan was made: plan once
 * more and run only their follow-up steps (contact flow, tags,
 * description), so that one pass leaves them complete. Claims and releases
 * wait for the next pass. Returns true when steps were started. */
static bool pass_settle(struct pass *p) {
        int r = reconcile_plan(p->config, p->state, clock_wall_sec(), &p->settle_plan);
        if (r < 0 || !p->settle_plan)
                return false;
        bool any = false;
        for (size_t i = 0; i < p->settle_plan->n_steps; i++) {
                enum step_action a = p->settle_plan->steps[i].action;
                if (a == STEP_ASSOCIATE_FLOW || a == STEP_TAG || a == STEP_UNTAG || a == STEP_UPDATE_DESCRIPTION ||
                    a == STEP_TAKE_OVER)
                        any = true;
                else
                        p->settle_plan->steps[i].action = STEP_REPORT_UNKNOWN; /* skipped below */
        }
        if (!any)
                return false;
        p->steps_plan = p->settle_plan;
        p->next_step = 0;
        p->round = 0;
        p->settling = true;
        pass_run_steps(p);
        return p->outstanding > 0;
}

static void pass_maybe_advance(struct pass *p) {
        if (p->finished || p->outstanding > 0)
                return;
        switch (p->phase) {
        case PASS_LIST:
                if (p->stopping || p->fatal) {
                        pass_finish(p);
                        return;
                }
                pass_describe(p);
                return;
        case PASS_DESCRIBE:
                p->describe_ids = strv_free(p->describe_ids);
                pass_folds_flush(p);
                if (p->fatal) {
                        pass_finish(p);
                        return;
                }
                pass_plan(p);
                return;
        case PASS_EXECUTE:
                if (!p->stopping && p->next_step < p->steps_plan->n_steps) {
                        pass_run_steps(p);
                        if (p->outstanding > 0)
                                return;
                }
                if (!p->stopping && p->round == 0 && p->steps_in_flight == 0) {
                        p->round = 1;
                        p->next_step = 0;
                        pass_run_steps(p);
                        if (p->outstanding > 0)
                                return;
                }
                /* Nothing in flight: a claimer still short of numbers gets
                 * one more chance to search, else it stops for this pass. */
                for (size_t i = 0; i < p->n_searchers && !p->stopping; i++)
                        if (searcher_needed(p->searchers[i]))
                                searcher_pump(p->searchers[i]);
                if (p->outstanding > 0)
                        return;
                for (size_t i = 0; i < p->n_claimers; i++)
                        p->claimers[i]->stopped = true;
                if (pass_follows_active(p) > 0 && !p->stopping)
                        return;
                if (!p->stopping && !p->settle_plan && (p->claims_made > 0 || p->moves_made > 0) && pass_settle(p))
                        return;
                pass_finish(p);
                return;
        case PASS_DONE:
                return;
        }
}

/* ---- lifecycle ---------------------------------------------------------- */

int pass_start(sd_event *event, struct connect_client *client, const struct config *config, struct state *state,
               const struct pass_options *o, pass_done_t done, void *userdata, struct pass **ret) {
        _cleanup_(pass_freep) struct pass *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->event = sd_event_ref(event);
        p->client = client;
        p->config = config;
        p->state = state;
        p->opts = *o;
        p->done = done;
        p->userdata = userdata;
        p->phase = PASS_LIST;
        for (size_t i = 0; i < config->n_targets; i++)
                p->with_roles = p->with_roles || config->targets[i].role_arn != NULL;
        state->last_pass_started_at = clock_wall_sec();
        /* Throttling is a reason to slow down, never to give up a step
         * while the pass (or --once's --wait) has time: throttled calls are
         * retried until then (at least half a minute). */
        connect_client_set_deadline(client, clock_boottime_usec() + MAX(o->follow_usec, 30 * USEC_PER_SEC));

        /* Each target, and where it lived before (previous_arns). */
        for (size_t i = 0; i < config->n_targets; i++) {
                const struct target_config *t = &config->targets[i];
                for (size_t j = 0; j <= t->n_previous_arns; j++) {
                        const char *name = j == 0 ? t->name : t->previous_arns[j - 1];
                        const char *arn = j == 0 ? t->arn : t->previous_arns[j - 1];
                        struct list_call *lc = calloc(1, sizeof *lc);
                        if (!lc)
                                return -ENOMEM;
                        lc->pass = p;
                        lc->target = t;
                        lc->source = name;
                        lc->arn = arn;
                        const struct state_target *st = state_get_target(state, name, arn);
                        struct connect_list_options lo = {
                                .known_digest = st && st->list_digest_valid ? st->list_digest : NULL,
                                .max_numbers = config->max_numbers_per_target,
                                .on_page = on_list_page,
                        };
                        int r = connect_list_numbers(client, t->region, arn, &lo, on_list, lc);
                        if (r < 0) {
                                free(lc);
                                lifecycle_list_failed(state, name);
                                pass_set_error(p, r == -ENOKEY, "cannot list %s: %s", name, strerror(-r));
                                continue;
                        }
                        p->outstanding++;
                }
        }
        /* Nothing in flight (no targets, or every call refused at once):
         * move on from the loop, not from here. */
        if (p->outstanding == 0)
                pass_maybe_advance(p);
        *ret = TAKE_PTR(p);
        return 0;
}

void pass_stop(struct pass *p) {
        if (!p || p->stopping)
                return;
        p->stopping = true;
        for (size_t i = 0; i < p->n_follows; i++)
                if (!p->follows[i]->in_flight) {
                        p->follows[i]->done = true;
                        sd_event_source_set_enabled(p->follows[i]->timer, SD_EVENT_OFF);
                }
        for (size_t i = 0; i < p->n_claimers; i++)
                p->claimers[i]->stopped = true;
        pass_maybe_advance(p);
}

bool pass_is_stopping(const struct pass *p) {
        return p && p->stopping;
}

void pass_result_clear(struct pass_result *r) {
        if (!r)
                return;
        plan_free(r->plan);
        free(r->quota_targets);
        free(r->error);
        *r = (struct pass_result){0};
}

struct pass *pass_free(struct pass *p) {
        if (!p)
                return NULL;
        sd_event_source_disable_unref(p->finish_source);
        for (size_t i = 0; i < p->n_follows; i++)
                follow_free(p->follows[i]);
        free(p->follows);
        for (size_t i = 0; i < p->n_claimers; i++)
                claimer_free(p->claimers[i]);
        free(p->claimers);
        for (size_t i = 0; i < p->n_searchers; i++)
                searcher_free(p->searchers[i]);
        free(p->searchers);
        plan_free(p->plan);
        plan_free(p->settle_plan);
        strv_free(p->describe_ids);
        for (size_t i = 0; i < p->n_folds; i++) {
                free(p->folds[i].key);
                free(p->folds[i].what);
        }
        pass_result_clear(&p->result);
        free(p->error);
        sd_event_unref(p->event);
        free(p);
        return NULL;
}

/* Appends "; " and the formatted text to buf (bounded). */
static void summary_add(char *buf, size_t size, size_t *off, const char *fmt, ...) _printf_(4, 5);
static void summary_add(char *buf, size_t size, size_t *off, const char *fmt, ...) {
        if (*off >= size)
                return;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(buf + *off, size - *off, fmt, ap);
        va_end(ap);
        if (k > 0)
                *off = MIN(*off + (size_t) k, size);
}

static const char *plural(unsigned n, const char *one, const char *many) {
        return n == 1 ? one : many;
}

char *pass_result_summary(const struct pass_result *r, const struct config *c, usec_t next_pass_in_usec) {
        char buf[1024];
        size_t off = 0;
        /* Each kind apart: claimed means CLAIMED on the pool's target; a
         * claim in progress or a failed claim is never counted as held. */
        summary_add(buf, sizeof buf, &off, "%u of %u %s claimed on %zu %s", r->claimed, r->desired,
                    plural(r->desired, "number", "numbers"), c->n_targets, plural((unsigned) c->n_targets, "target",
                                                                                    "targets"));
        if (r->in_progress)
                summary_add(buf, sizeof buf, &off, "; %u in progress", r->in_progress);
        if (r->moving)
                summary_add(buf, sizeof buf, &off, "; %u moving", r->moving);
        if (r->pins_missing)
                summary_add(buf, sizeof buf, &off, "; %u pinned %s not held", r->pins_missing,
                            plural(r->pins_missing, "number", "numbers"));
        if (r->failed_pending) {
                char next[32], until[32];
                format_timestamp_sec(r->next_retry_at, next, sizeof next);
                format_timestamp_sec(r->earliest_deadline, until, sizeof until);
                summary_add(buf, sizeof buf, &off, "; %u failed %s awaiting a retry (next %s, window ends %s)",
                            r->failed_pending, plural(r->failed_pending, "claim", "claims"), next, until);
        }
        if (r->excess)
                summary_add(buf, sizeof buf, &off, "; %u excess", r->excess);
        if (r->quota_paused)
                summary_add(buf, sizeof buf, &off, "; quota reached on %s", r->quota_targets ? r->quota_targets : "?");
        if (r->error)
                summary_add(buf, sizeof buf, &off, "; %s: %s", r->exit_status == EXIT_FAILURE_OTHER ? "failed" : "last error",
                            r->error);
        if (next_pass_in_usec != USEC_INFINITY) {
                char d[32];
                format_duration_sec((next_pass_in_usec + USEC_PER_SEC / 2) / USEC_PER_SEC, d, sizeof d);
                summary_add(buf, sizeof buf, &off, "; next pass in %s", d);
        }
        return strdup(buf);
}
