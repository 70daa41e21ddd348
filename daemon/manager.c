/* manager.c: owns the event loop and everything long-lived: the config (and
 * a reloaded one waiting for the pass in progress to end), the state and its
 * lock, the Connect client, the pass timer and the signals. Tells systemd
 * what it does (READY, STATUS, RELOADING, STOPPING, WATCHDOG). Decides
 * nothing about numbers: that is reconcile.c's job. */
#include "manager.h"

#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "connect.h"
#include "log.h"
#include "metrics-snapshot.h"
#include "pass.h"
#include "state.h"

#define STOP_GRACE_USEC (10 * USEC_PER_SEC)   /* calls in flight may finish within this on SIGTERM */
#define SERVICE_FOLLOW_MAX_USEC (5 * USEC_PER_MINUTE)
#define MIN_PASS_DELAY_USEC (1 * USEC_PER_SEC)

struct manager {
        sd_event *event;
        struct config *config;        /* in force */
        struct config *pending;       /* reloaded while a pass ran; swapped in when it ends */
        char *config_path;
        char *state_dir;
        struct state *state;
        int lock_fd;
        struct connect_client *client;
        struct pass *pass;            /* the pass in progress, or NULL */
        sd_event_source *pass_timer;  /* CLOCK_BOOTTIME */
        sd_event_source *stop_timer;
        sd_event_source *signals[4];
        bool once;                    /* --once/--plan: exit after one pass */
        bool plan;
        bool json;
        usec_t wait_usec;
        usec_t once_deadline;         /* CLOCK_BOOTTIME: --once's --wait ends */
        bool rerun;                   /* SIGUSR1/SIGHUP during a pass: another right after */
        bool stopping;
        int exit_status;
        /* The metrics file: counters since the process started (they
         * restart from 0 with it), and the times of the passes. */
        struct metrics_counters counters;
        usec_t started_usec;          /* wall clock: connect_numbers_start_time_seconds */
        usec_t pass_started_usec;     /* CLOCK_BOOTTIME, of the pass in progress */
        usec_t last_success_usec;     /* wall clock, of the last pass that exited 0 or 75 */
};

static void connect_options_from_config(const struct config *c, bool read_only, struct connect_client_options *o) {
        *o = (struct connect_client_options){
                .endpoint_url = c->endpoint_url,
                .ca_file = c->ca_file,
                .profile = c->profile,
                .rate_default = c->rate_default,
                .rate_burst = c->rate_burst,
                .read_only = read_only,
                .config = c,
        };
        for (size_t i = 0; i < c->n_rates; i++) {
                int op = connect_op_from_name(c->rates[i].operation);
                if (op >= 0 && op < _CONNECT_OP_MAX)
                        o->rates[op] = c->rates[i].rate;
        }
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_(freep) char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* log_level: of the configuration in force, unless -v chose debug. */
static void manager_apply_log_level(const struct manager *m, const struct config *c) {
        int before = log_get_max_priority();
        if (!log_set_config_priority(c->log_level))
                log_debug("log_level: %s in %s is overridden by -v", log_level_to_string(c->log_level),
                          m->config_path);
        else if (before != c->log_level)
                log_info("Log level is now %s (log_level: in %s)", log_level_to_string(c->log_level),
                         m->config_path);
}

int manager_new(const struct manager_options *o, struct config *config, struct manager **ret) {
        _cleanup_(manager_freep) struct manager *m = calloc(1, sizeof *m);
        int r;
        if (!m) {
                config_free(config);
                return -ENOMEM;
        }
        m->lock_fd = -1;
        m->config = config;
        m->started_usec = clock_wall_usec();
        m->wait_usec = o->wait_usec;
        m->json = o->json;
        m->config_path = strdup(o->config_path);
        m->state_dir = strdup(o->state_dir);
        if (!m->config_path || !m->state_dir)
                return -ENOMEM;
        m->plan = o->read_only;
        manager_apply_log_level(m, m->config);

        if (m->plan) {
                r = sd_event_default(&m->event);
                if (r < 0)
                        return log_error_errno(r, "Cannot create the event loop");
                *ret = TAKE_PTR(m);
                return 0;
        }
        r = mkdir_p(m->state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create the state directory %s", m->state_dir);
        r = state_lock(m->state_dir, &m->lock_fd);
        if (r == -EBUSY)
                return log_error_errno(r, "Another connect-numbersd process is working on the state directory %s "
                                          "(is the service running? stop it, or use another --state-dir)",
                                       m->state_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot lock the state directory %s", m->state_dir);
        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Cannot create the event loop");
        *ret = TAKE_PTR(m);
        return 0;
}

/* --plan's view of the state: what the owner saved last, read and never
 * written. state_load() would set a damaged or empty file aside, which is
 * the owner's decision; here both are only reported. */
static int manager_read_state(struct manager *m) {
        _cleanup_(freep) char *path = strprintf("%s/%s", m->state_dir, STATE_FILE);
        _cleanup_(freep) char *message = NULL;
        if (!path)
                return log_error_errno(-ENOMEM, "Cannot read the state");
        int r = state_read_file(path, &m->state, &message);
        if (r == -ENOENT || r == -ENODATA) {
                if (r == -ENODATA)
                        log_warning("State file %s is empty; planning from what Amazon Connect shows", path);
                m->state = state_new();
                if (!m->state)
                        return log_error_errno(-ENOMEM, "Cannot read the state");
        } else if (r < 0 && message)
                return log_error_errno(r, "%s", message);
        else if (r < 0)
                return log_error_errno(r, "Cannot read the state from %s", path);
        else if (message)
                log_warning("%s", message);
        (void) state_load_pass_info(m->state_dir, m->state);
        return 0;
}

/* Loaded after READY=1 in service mode: at 10,000 numbers the state is
 * megabytes of JSON, and systemd need not wait for it. */
static int manager_load_state(struct manager *m) {
        _cleanup_(freep) char *warning = NULL;
        if (m->plan)
                return manager_read_state(m);
        int r = state_load(m->state_dir, &m->state, &warning);
        if (r < 0 && warning)
                return log_error_errno(r, "%s", warning);
        if (r < 0)
                return log_error_errno(r, "Cannot load the state from %s", m->state_dir);
        if (warning)
                log_warning("%s", warning);
        (void) state_load_pass_info(m->state_dir, m->state);
        /* Parsing megabytes of JSON leaves the heap full of freed blocks:
         * give them back, a long-running service should not hold them. */
        malloc_trim(0);
        return 0;
}

struct manager *manager_free(struct manager *m) {
        if (!m)
                return NULL;
        m->pass = pass_free(m->pass);
        connect_client_free(m->client);
        sd_event_source_disable_unref(m->pass_timer);
        sd_event_source_disable_unref(m->stop_timer);
        for (size_t i = 0; i < ELEMENTSOF(m->signals); i++)
                sd_event_source_disable_unref(m->signals[i]);
        sd_event_unref(m->event);
        state_free(m->state);
        config_free(m->config);
        config_free(m->pending);
        if (m->lock_fd >= 0)
                close(m->lock_fd);
        free(m->config_path);
        free(m->state_dir);
        metrics_counters_clear(&m->counters);
        free(m);
        return NULL;
}

static unsigned audit_budget(const struct manager *m) {
        size_t ours = 0;
        for (size_t i = 0; i < m->state->n_numbers; i++)
                if (m->state->numbers[i].pool && m->state->numbers[i].phase == PHASE_CLAIMED)
                        ours++;
        /* Spread the daily describe of every held number over the day's passes. */
        uint64_t passes_per_day = MAX(1, (uint64_t) USEC_PER_DAY / MAX(m->config->interval_usec, USEC_PER_SEC));
        return (unsigned) ((ours + passes_per_day - 1) / passes_per_day) + 1;
}

/* Every pass leaves one catalogued record (operators and monitoring look
 * for it); one that ended with exit status 1 (credentials, access, TLS) is
 * an error with its own id, never a "completed" pass. */
static void manager_log_pass(const struct pass_result *r, const char *sum, const char **extra) {
        char st[32];
        snprintf(st, sizeof st, "EXIT_STATUS=%d", r->exit_status);
        const char *fields[4] = {st};
        for (size_t i = 0; extra && extra[i] && i < 2; i++)
                fields[i + 1] = extra[i];
        bool failed = r->exit_status == EXIT_FAILURE_OTHER;
        struct log_fields f = {.message_id = failed ? MESSAGE_ID_PASS_FAILED : MESSAGE_ID_PASS, .extra = fields};
        log_fields(failed ? LOG_ERR : LOG_INFO, 0, &f, "%s: %s (exit status %d)", failed ? "Pass failed" : "Pass completed",
                   sum ? sum : "", r->exit_status);
}

static void on_pass_done(struct pass *p, const struct pass_result *r, void *userdata);

/* What is left of --once's --wait (the first pass has all of it). */
static usec_t manager_once_left(const struct manager *m) {
        usec_t now = clock_boottime_usec();
        if (!m->once_deadline)
                return m->wait_usec;
        return m->once_deadline > now ? m->once_deadline - now : 0;
}

static int on_pass_timer(sd_event_source *s, uint64_t usec, void *userdata);
static void format_next_pass(uint64_t now, usec_t delay, char *buf, size_t n);

/* --once does what falls due before its --wait ends (docs/design.md): a
 * pass that left work whose retry (a failed claim's backoff, a quota pause)
 * ends in time is followed by another pass then. Returns true when one is
 * scheduled. */
static bool manager_once_again(struct manager *m, const struct pass_result *r) {
        if (m->plan || m->stopping || r->exit_status != EXIT_WORK_REMAINS || !r->next_retry_at)
                return false;
        uint64_t now = clock_wall_sec();
        usec_t delay = r->next_retry_at > now ? (r->next_retry_at - now) * USEC_PER_SEC : 0;
        delay = MAX(delay, MIN_PASS_DELAY_USEC);
        if (clock_boottime_usec() + delay >= m->once_deadline)
                return false;
        char when[64];
        format_next_pass(now, delay, when, sizeof when);
        log_info("A failed claim's retry falls due before --wait ends: another pass at %s", when);
        if (m->pass_timer)
                return sd_event_source_set_time_relative(m->pass_timer, delay) >= 0 &&
                       sd_event_source_set_enabled(m->pass_timer, SD_EVENT_ONESHOT) >= 0;
        return sd_event_add_time_relative(m->event, &m->pass_timer, CLOCK_BOOTTIME, delay, 0, on_pass_timer, m) >= 0;
}

static int manager_start_pass(struct manager *m) {
        if (m->pass || m->stopping)
                return 0;
        if (m->pending) {
                struct connect_client_options co;
                config_free(m->config);
                m->config = TAKE_PTR(m->pending);
                /* Taking a list in depends on the configuration. */
                state_forget_list_digests(m->state);
                connect_options_from_config(m->config, m->plan, &co);
                int r = connect_client_reconfigure(m->client, &co);
                if (r < 0)
                        log_warning_errno(r, "Cannot apply the new endpoint, CA or rates");
        }
        m->rerun = false;
        struct pass_options o = {
                .read_only = m->plan,
                .follow_usec = m->once ? manager_once_left(m) : MIN(m->config->interval_usec, SERVICE_FOLLOW_MAX_USEC),
                .audit_budget = audit_budget(m),
                .state_dir = m->plan ? NULL : m->state_dir,
                .counters = m->plan ? NULL : &m->counters,
        };
        m->pass_started_usec = clock_boottime_usec();
        log_debug("pass starting");
        int r = pass_start(m->event, m->client, m->config, m->state, &o, on_pass_done, m, &m->pass);
        if (r < 0)
                return log_error_errno(r, "Cannot start a pass");
        return 0;
}

static int on_pass_timer(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        struct manager *m = userdata;
        (void) manager_start_pass(m);
        return 0;
}

static usec_t manager_next_delay(struct manager *m, const struct pass_result *r) {
        /* interval ±10 % jitter, so that many instances do not pass in step. */
        double jitter = 0.9 + 0.2 * random_unit();
        usec_t delay = (usec_t) ((double) m->config->interval_usec * jitter);
        uint64_t now = clock_wall_sec();
        if (r && r->next_wakeup_at && r->next_wakeup_at > now) {
                usec_t w = (r->next_wakeup_at - now) * USEC_PER_SEC;
                if (w < delay)
                        delay = w;
        } else if (r && r->next_wakeup_at && r->next_wakeup_at <= now)
                delay = MIN(delay, MIN_PASS_DELAY_USEC * 5);
        /* A pass that claimed numbers but stopped short (candidates ran out,
         * numbers taken by others) goes on soon rather than in an interval;
         * a pass that made no progress waits the interval. */
        if (r && r->exit_status == EXIT_WORK_REMAINS && r->claims_made > 0 && r->short_pools > 0)
                delay = MIN(delay, MIN_PASS_DELAY_USEC * 5);
        return MAX(delay, MIN_PASS_DELAY_USEC);
}

static int manager_schedule(struct manager *m, usec_t delay) {
        usec_t when = clock_boottime_usec() + delay;
        m->state->next_pass_at = clock_wall_sec() + delay / USEC_PER_SEC;
        if (m->pass_timer) {
                int r = sd_event_source_set_time(m->pass_timer, when);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(m->pass_timer, SD_EVENT_ONESHOT);
        }
        /* Accuracy 1 s: the kernel may batch this wakeup with others. */
        return sd_event_add_time(m->event, &m->pass_timer, CLOCK_BOOTTIME, when, USEC_PER_SEC, on_pass_timer, m);
}

static void manager_finish_stop(struct manager *m) {
        int r = state_save(m->state_dir, m->state);
        if (r < 0)
                log_error_errno(r, "Cannot save the state in %s", m->state_dir);
        sd_event_exit(m->event, 0);
}

/* The pass times, result and error (and the next pass's time) in the small
 * pass record: one write per pass, not the whole state. quiet: the pass
 * saved (or failed to save) the whole state, and said so already. */
static void manager_save_pass_info(struct manager *m, bool quiet) {
        int r = state_save_pass_info(m->state_dir, m->state);
        if (r < 0 && !quiet)
                log_warning_errno(r, "Cannot save the pass record in %s", m->state_dir);
}

/* When the next pass runs, as local time: a STATUS= line stays true however
 * long after the pass it is read, where "in 1m5s" did not. Seconds when it
 * is close, the date when it is not today. */
static void format_next_pass(uint64_t now, usec_t delay, char *buf, size_t n) {
        uint64_t at = now + (delay + USEC_PER_SEC / 2) / USEC_PER_SEC;
        time_t t = (time_t) at, tn = (time_t) now;
        struct tm tm, tm_now;
        if (delay < USEC_PER_SEC) {
                snprintf(buf, n, "now");
                return;
        }
        if (!localtime_r(&t, &tm) || !localtime_r(&tn, &tm_now) ||
            strftime(buf, n,
                     tm.tm_year != tm_now.tm_year || tm.tm_yday != tm_now.tm_yday ? "%Y-%m-%d %H:%M"
                     : at - now < 10 * 60                                          ? "%H:%M:%S"
                                                                                   : "%H:%M",
                     &tm) == 0)
                format_timestamp_sec(at, buf, n);
}

/* After every pass that may change something (never --plan's). A file
 * that cannot be written is reported once, until it can be again: the
 * service goes on without it. */
static void manager_write_metrics(struct manager *m, const struct pass_result *r) {
        _cleanup_(freep) char *path = NULL, *text = NULL;
        usec_t now = clock_wall_usec();
        int k;

        if (m->plan)
                return;
        if (r->exit_status == EXIT_DESIRED_HOLDS || r->exit_status == EXIT_WORK_REMAINS)
                m->last_success_usec = now;
        k = metrics_path(m->config, &path);
        if (k < 0 || !path)
                return;
        struct metrics_pass_info info = {
                .duration_usec = clock_boottime_usec() - m->pass_started_usec,
                .ended_usec = now,
                .last_success_usec = m->last_success_usec,
                .since_usec = m->started_usec,
                .exit_status = r->exit_status,
        };
        k = metrics_snapshot_format(m->config, m->state, m->client, &m->counters, r->plan, &info, now / USEC_PER_SEC,
                                    &text);
        if (k >= 0)
                k = metrics_write_file(path, text);
        if (k < 0) {
                char msg[512];
                snprintf(msg, sizeof msg, "Cannot write the metrics file %s: %s", path, strerror(-k));
                log_full_errno(log_repeat_priority("metrics-write", msg, LOG_WARNING), 0, "%s", msg);
                return;
        }
        if (log_repeat_clear("metrics-write"))
                log_notice("Metrics file %s written again", path);
}

static void on_pass_done(struct pass *p _unused_, const struct pass_result *r, void *userdata) {
        struct manager *m = userdata;

        manager_write_metrics(m, r);

        if (m->once) {
                m->exit_status = r->exit_status;
                if (m->plan && r->plan) {
                        _cleanup_(freep) char *out = NULL;
                        int k = m->json ? plan_format_json(r->plan, &out) : plan_format_text(r->plan, &out);
                        if (k >= 0 && out) {
                                fputs(out, stdout);
                                if (!*out || out[strlen(out) - 1] != '\n')
                                        fputc('\n', stdout);
                                fflush(stdout);
                        } else
                                m->exit_status = EXIT_FAILURE_OTHER;
                }
                if (!m->plan) {
                        if (!r->wrote_state)
                                manager_save_pass_info(m, false);
                        _cleanup_(freep) char *sum = pass_result_summary(r, m->config, USEC_INFINITY);
                        manager_log_pass(r, sum, NULL);
                }
                bool again = manager_once_again(m, r);
                m->pass = pass_free(m->pass);
                if (!again)
                        sd_event_exit(m->event, 0);
                return;
        }

        /* r is the pass's: gone once the pass is freed below. */
        bool wrote_state = r->wrote_state;
        usec_t delay = manager_next_delay(m, r);
        if (m->rerun || m->pending)
                delay = 0;
        _cleanup_(freep) char *sum = pass_result_summary(r, m->config, USEC_INFINITY);
        if (sum && !m->stopping) {
                char when[64];
                format_next_pass(clock_wall_sec(), delay, when, sizeof when);
                char *s = strprintf("%s; next pass %s", sum, when);
                if (s) {
                        free(sum);
                        sum = s;
                }
        }
        {
                char c1[32], c2[32];
                snprintf(c1, sizeof c1, "CLAIMS=%u", r->claims_made);
                snprintf(c2, sizeof c2, "RELEASES=%u", r->releases_made);
                const char *extra[] = {c1, c2, NULL};
                manager_log_pass(r, sum, extra);
        }
        if (sum)
                sd_notifyf(false, "STATUS=%s", sum);
        m->pass = pass_free(m->pass);
        if (m->stopping) {
                manager_finish_stop(m);
                return;
        }
        if (manager_schedule(m, delay) < 0)
                log_error("Cannot schedule the next pass");
        /* Even after a whole save: the next pass's time is known only now. */
        manager_save_pass_info(m, wrote_state);
        /* The pass's list pages and plan are freed (and the strings its
         * changes replaced, as they were replaced): return the memory
         * before sleeping until the next one. */
        malloc_trim(0);
}

static int on_stop_timer(sd_event_source *s _unused_, uint64_t usec _unused_, void *userdata) {
        struct manager *m = userdata;
        log_warning("Calls still in flight after %" PRIu64 " s; cancelling them (intents stay on disk)",
                    (uint64_t) (STOP_GRACE_USEC / USEC_PER_SEC));
        connect_client_cancel_all(m->client);
        return 0;
}

static int on_sigterm(sd_event_source *s _unused_, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;
        if (m->stopping)
                return 0;
        m->stopping = true;
        sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        log_info("Stopping (signal %u)%s", si->ssi_signo, m->pass ? "; letting calls in flight finish" : "");
        if (m->pass) {
                pass_stop(m->pass);
                (void) sd_event_add_time_relative(m->event, &m->stop_timer, CLOCK_BOOTTIME, STOP_GRACE_USEC, 0,
                                                  on_stop_timer, m);
                return 0;
        }
        if (m->once) {
                sd_event_exit(m->event, 0);
                return 0;
        }
        manager_finish_stop(m);
        return 0;
}

static int on_sighup(sd_event_source *s _unused_, const struct signalfd_siginfo *si _unused_, void *userdata) {
        struct manager *m = userdata;
        struct config *c = NULL;
        struct config_problems problems = {0};
        usec_t mono = 0;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        mono = (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
        sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading %s", mono, m->config_path);

        int r = config_load(m->config_path, &c, &problems);
        if (r < 0) {
                for (size_t i = 0; i < problems.n; i++)
                        log_error("%s:%u:%u: %s", m->config_path, problems.items[i].line, problems.items[i].column,
                                  problems.items[i].message);
                struct log_fields f = {.message_id = MESSAGE_ID_CONFIG_REJECTED};
                log_fields(LOG_ERR, 0, &f,
                           "Configuration %s rejected (%zu problem%s); the previous desired state stays in force",
                           m->config_path, problems.n, problems.n == 1 ? "" : "s");
                config_problems_clear(&problems);
                sd_notify(false, "READY=1\nSTATUS=Configuration rejected on reload; previous desired state in force");
                return 0;
        }
        /* The new level first: the record of the reload is logged at it. */
        manager_apply_log_level(m, c);
        log_info("Configuration %s reloaded", m->config_path);
        config_free(m->pending);
        m->pending = c;
        sd_notify(false, "READY=1");
        if (m->pass)
                m->rerun = true;
        else
                (void) manager_start_pass(m);
        return 0;
}

static int on_sigusr1(sd_event_source *s _unused_, const struct signalfd_siginfo *si _unused_, void *userdata) {
        struct manager *m = userdata;
        if (m->pass) {
                log_info("SIGUSR1: a pass is running; another starts right after it");
                m->rerun = true;
                return 0;
        }
        log_info("SIGUSR1: starting a pass now");
        (void) manager_start_pass(m);
        return 0;
}

static int manager_setup(struct manager *m, bool once, bool plan) {
        struct connect_client_options co;
        sigset_t ss;
        int r;

        m->once = once;
        m->plan = plan;
        connect_options_from_config(m->config, plan, &co);
        r = connect_client_new(m->event, &co, &m->client);
        if (r < 0 && (r == -EBADFD || r == -EISDIR) && co.ca_file)
                return log_error_errno(r, "Cannot use the CA bundle %s: %s", co.ca_file, file_error_string(r));
        if (r < 0)
                return log_error_errno(r, "Cannot set up the Connect client");

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        sigaddset(&ss, SIGUSR1);
        sigprocmask(SIG_BLOCK, &ss, NULL);
        r = sd_event_add_signal(m->event, &m->signals[0], SIGTERM, on_sigterm, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->signals[1], SIGINT, on_sigterm, m);
        if (r >= 0 && !once)
                r = sd_event_add_signal(m->event, &m->signals[2], SIGHUP, on_sighup, m);
        if (r >= 0 && !once)
                r = sd_event_add_signal(m->event, &m->signals[3], SIGUSR1, on_sigusr1, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch signals");
        return 0;
}

int manager_run_service(struct manager *m) {
        int r = manager_setup(m, false, false);
        if (r < 0)
                return EXIT_FAILURE_OTHER;
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Cannot enable the watchdog");
        unsigned wanted = config_total_wanted(m->config);
        const char *numbers = wanted == 1 ? "number" : "numbers", *targets = m->config->n_targets == 1 ? "target" : "targets";
        sd_notifyf(false, "READY=1\nSTATUS=Started; first pass running (%u %s wanted on %zu %s)", wanted, numbers,
                   m->config->n_targets, targets);
        if (manager_load_state(m) < 0)
                return EXIT_FAILURE_OTHER;
        r = manager_schedule(m, 0);
        if (r < 0)
                return log_error_errno(r, "Cannot schedule the first pass"), EXIT_FAILURE_OTHER;
        log_info("connect-numbersd " VERSION " started: %u %s wanted on %zu %s, state in %s", wanted, numbers,
                 m->config->n_targets, targets, m->state_dir);
        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed"), EXIT_FAILURE_OTHER;
        return 0;
}

int manager_run_once(struct manager *m, bool plan) {
        int r = manager_setup(m, true, plan);
        if (r < 0)
                return EXIT_FAILURE_OTHER;
        m->exit_status = EXIT_FAILURE_OTHER;
        if (manager_load_state(m) < 0)
                return EXIT_FAILURE_OTHER;
        m->once_deadline = clock_boottime_usec() + m->wait_usec;
        r = manager_start_pass(m);
        if (r < 0)
                return EXIT_FAILURE_OTHER;
        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed"), EXIT_FAILURE_OTHER;
        /* The pass saved what it changed. */
        return m->exit_status;
}
