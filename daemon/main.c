/* main.c: reads like a script: options, clock offset, config, then either a
 * check, a status read, or the manager (one pass or the service loop). The
 * only place that exits. Kept out of the library that tests link. */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "manager.h"
#include "pass.h"
#include "state.h"
#include "status.h"

#define DEFAULT_CONFIG "/etc/connect-numbers/numbers.yaml"
/* A usage error on the command line, as getopt-based tools exit. */
#define EXIT_USAGE 2
#define DEFAULT_STATE_DIR "/var/lib/connect-numbers"

enum mode {
        MODE_SERVICE,
        MODE_CHECK_CONFIG,
        MODE_PLAN,
        MODE_ONCE,
        MODE_STATUS,
        MODE_VERSION,
        MODE_HELP,
};

struct args {
        enum mode mode;
        const char *config_path;
        const char *state_dir;
        enum log_target log_target;
        int verbosity;
        bool json;
        usec_t wait_usec;
};

static void help(void) {
        printf("connect-numbersd " VERSION ": keeps Amazon Connect phone numbers claimed as declared in YAML.\n\n"
               "Usage:\n"
               "  connect-numbersd [-c FILE] [--state-dir DIR] [--log-target auto|journal|console] [-v]\n"
               "  connect-numbersd --check-config [-c FILE]\n"
               "  connect-numbersd --plan [-c FILE] [--state-dir DIR] [--json]\n"
               "  connect-numbersd --once [-c FILE] [--state-dir DIR] [--wait DURATION]\n"
               "  connect-numbersd --status [--state-dir DIR] [--json]\n"
               "  connect-numbersd --version | --help\n\n"
               "Modes (default: run as the service, in the foreground):\n"
               "      --check-config     parse and validate the YAML only (no network)\n"
               "      --plan             one read-only pass: print what a pass would change\n"
               "      --once             one full pass that makes the changes, then exit\n"
               "      --status           print what the state directory says (no network)\n"
               "  -V, --version          print the version\n"
               "  -h, --help             this text\n\n"
               "Options:\n"
               "  -c, --config FILE      desired state (default " DEFAULT_CONFIG ")\n"
               "      --state-dir DIR    state directory (default $STATE_DIRECTORY, else " DEFAULT_STATE_DIR ")\n"
               "      --log-target T     auto (journald when stderr is the journal), journal or console\n"
               "  -v, --verbose          log debug messages too\n"
               "      --json             --plan/--status: print one JSON object\n"
               "      --wait DURATION    --once: wait this long for claims in progress (default 5m, max 24h)\n\n"
               "Exit status: 0 desired state holds; 75 work remains; 78 invalid configuration; 1 other error;\n"
               "2 usage error.\n"
               "See connect-numbersd(8) and connect-numbers.yaml(5).\n");
}

/* One line saying what is wrong, one saying where to look: the convention
 * of getopt-based tools, whose own complaint is the first line. */
static _printf_(1, 2) int usage_error(const char *fmt, ...) {
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                fputs("connect-numbersd: ", stderr);
                vfprintf(stderr, fmt, ap);
                fputc('\n', stderr);
                va_end(ap);
        }
        fputs("Try 'connect-numbersd --help'.\n", stderr);
        return -EINVAL;
}

static int parse_args(int argc, char **argv, struct args *a) {
        enum { ARG_CHECK = 0x100, ARG_PLAN, ARG_ONCE, ARG_STATUS, ARG_STATE_DIR, ARG_LOG_TARGET, ARG_JSON,
               ARG_WAIT };
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"log-target", required_argument, NULL, ARG_LOG_TARGET},
                {"verbose", no_argument, NULL, 'v'},
                {"check-config", no_argument, NULL, ARG_CHECK},
                {"plan", no_argument, NULL, ARG_PLAN},
                {"once", no_argument, NULL, ARG_ONCE},
                {"status", no_argument, NULL, ARG_STATUS},
                {"json", no_argument, NULL, ARG_JSON},
                {"wait", required_argument, NULL, ARG_WAIT},
                {"version", no_argument, NULL, 'V'},
                {"help", no_argument, NULL, 'h'},
                {0},
        };
        int c, modes = 0;
        *a = (struct args){.mode = MODE_SERVICE, .config_path = DEFAULT_CONFIG, .log_target = LOG_TARGET_AUTO,
                           .wait_usec = 5 * USEC_PER_MINUTE};
        bool wait_given = false, json_given = false;

        while ((c = getopt_long(argc, argv, "c:vhV", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        a->config_path = optarg;
                        break;
                case ARG_STATE_DIR:
                        a->state_dir = optarg;
                        break;
                case ARG_LOG_TARGET:
                        if (log_target_from_string(optarg, &a->log_target) < 0)
                                return usage_error("--log-target takes auto, journal or console");
                        break;
                case 'v':
                        a->verbosity++;
                        break;
                case ARG_CHECK: a->mode = MODE_CHECK_CONFIG; modes++; break;
                case ARG_PLAN: a->mode = MODE_PLAN; modes++; break;
                case ARG_ONCE: a->mode = MODE_ONCE; modes++; break;
                case ARG_STATUS: a->mode = MODE_STATUS; modes++; break;
                case 'V': a->mode = MODE_VERSION; modes++; break;
                case 'h': a->mode = MODE_HELP; modes++; break;
                case ARG_JSON:
                        a->json = json_given = true;
                        break;
                case ARG_WAIT: {
                        int64_t sec;
                        if (parse_duration_sec(optarg, false, &sec) < 0 || sec > 24 * 3600)
                                return usage_error("--wait takes a duration from 0s to 24h, such as 90s or 5m");
                        a->wait_usec = (usec_t) sec * USEC_PER_SEC;
                        wait_given = true;
                        break;
                }
                default:
                        /* getopt said what was wrong. */
                        return usage_error(NULL);
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        if (modes > 1)
                return usage_error("choose one of --check-config, --plan, --once, --status, --version, --help");
        if (wait_given && a->mode != MODE_ONCE)
                return usage_error("--wait goes with --once");
        if (json_given && a->mode != MODE_PLAN && a->mode != MODE_STATUS)
                return usage_error("--json goes with --plan or --status");
        return 0;
}

static const char *state_dir_from(const struct args *a, char **buf) {
        if (a->state_dir)
                return a->state_dir;
        const char *e = getenv("STATE_DIRECTORY");
        if (!isempty(e)) {
                /* systemd may pass several paths separated by ':'; ours is the first. */
                const char *colon = strchr(e, ':');
                if (!colon)
                        return e;
                *buf = strndup(e, (size_t) (colon - e));
                if (*buf)
                        return *buf;
        }
        return DEFAULT_STATE_DIR;
}

static int setup_clock_offset(void) {
        const char *e = getenv("CONNECT_NUMBERS_CLOCK_OFFSET");
        int64_t off;
        if (isempty(e))
                return 0;
        if (parse_duration_sec(e, true, &off) < 0) {
                log_error("CONNECT_NUMBERS_CLOCK_OFFSET=%s is not a signed duration such as +25h", e);
                return -EINVAL;
        }
        clock_set_offset_sec(off);
        log_warning("CONNECT_NUMBERS_CLOCK_OFFSET=%s: every wall-clock reading is shifted by %" PRId64
                    " s (a testing hook)",
                    e, off);
        return 0;
}

static int load_config(const char *path, bool quiet_ok, struct config **ret) {
        struct config_problems problems = {0};
        int r = config_load(path, ret, &problems);
        if (r < 0) {
                config_problems_print(&problems, path, stderr);
                if (problems.n == 0)
                        fprintf(stderr, "%s: cannot be read: %s\n", path, strerror(-r));
                if (!quiet_ok) {
                        struct log_fields f = {.message_id = MESSAGE_ID_CONFIG_REJECTED};
                        /* When stderr is the console, the problems are already
                         * there; the record tells the journal. */
                        log_fields(LOG_ERR, 0, &f, "Configuration %s rejected (%zu problem%s)", path, problems.n,
                                   problems.n == 1 ? "" : "s");
                }
                config_problems_clear(&problems);
                return r;
        }
        return 0;
}

/* The service runs as a DynamicUser=, neither the owner nor in the group of
 * anything under /etc: it reads the file through the "other" bits only.
 * root reads anything, so a check as root would pass a file that the
 * service then refuses (exit 78 at start). Warns and returns false when
 * the file or a directory above it keeps other users out. ACLs are not
 * looked at: the mode is what the operator sets and sees in ls -l. */
static bool check_readable_by_others(const char *path) {
        _cleanup_(freep) char *real = realpath(path, NULL);
        struct stat st;
        if (!real)
                return true; /* it was just read; nothing better to say */
        for (char *slash = real; (slash = strchr(slash + 1, '/')); ) {
                *slash = 0;
                int r = stat(real, &st);
                if (r >= 0 && !(st.st_mode & S_IXOTH)) {
                        fprintf(stderr,
                                "connect-numbersd: warning: the directory %s (mode %04o) keeps other users out: the "
                                "service, which runs as a dynamic user, cannot read %s (chmod o+x %s)\n",
                                real, (unsigned) (st.st_mode & 07777), path, real);
                        return false;
                }
                *slash = '/';
        }
        if (stat(real, &st) >= 0 && !(st.st_mode & S_IROTH)) {
                fprintf(stderr,
                        "connect-numbersd: warning: %s (mode %04o) is not readable by other users: the service, "
                        "which runs as a dynamic user, cannot read it (chmod o+r %s; it holds no secrets)\n",
                        path, (unsigned) (st.st_mode & 07777), path);
                return false;
        }
        return true;
}

static int run_status(const struct args *a, const char *state_dir) {
        struct stat st;
        if (stat(state_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                fprintf(stderr, "connect-numbersd: cannot read the state directory %s: %s\n", state_dir,
                        strerror(errno ? errno : ENOTDIR));
                return EXIT_FAILURE_OTHER;
        }
        _cleanup_(freep) char *path = strprintf("%s/%s", state_dir, STATE_FILE);
        _cleanup_(state_freep) struct state *s = NULL;
        _cleanup_(freep) char *message = NULL;
        if (!path)
                return EXIT_FAILURE_OTHER;
        int r = state_read_file(path, &s, &message);
        if (r == -ENOENT)
                s = state_new();
        else if (r < 0) {
                if (message)
                        fprintf(stderr, "connect-numbersd: %s\n", message);
                else
                        fprintf(stderr, "connect-numbersd: cannot read %s: %s\n", path, file_error_string(r));
                return EXIT_FAILURE_OTHER;
        } else if (message)
                /* Damaged records skipped: say so, show the rest. */
                fprintf(stderr, "connect-numbersd: warning: %s\n", message);
        if (!s)
                return EXIT_FAILURE_OTHER;
        (void) state_load_pass_info(state_dir, s);
        /* The YAML gives the desired counts when it can be read; status works without it. */
        _cleanup_(config_freep) struct config *c = NULL;
        struct config_problems problems = {0};
        if (config_load(a->config_path, &c, &problems) < 0)
                c = NULL;
        config_problems_clear(&problems);
        _cleanup_(freep) char *out = NULL;
        r = status_format(s, c, clock_wall_sec(), a->json, &out);
        if (r < 0) {
                fprintf(stderr, "connect-numbersd: cannot format the status: %s\n", strerror(-r));
                return EXIT_FAILURE_OTHER;
        }
        fputs(out, stdout);
        if (*out && out[strlen(out) - 1] != '\n')
                fputc('\n', stdout);
        return 0;
}

static int run(int argc, char **argv) {
        struct args a;
        _cleanup_(freep) char *state_dir_buf = NULL;
        int r = parse_args(argc, argv, &a);
        if (r < 0)
                return EXIT_USAGE;

        switch (a.mode) {
        case MODE_HELP:
                help();
                return 0;
        case MODE_VERSION:
                printf("connect-numbersd " VERSION "\n");
                return 0;
        default:
                break;
        }

        /* Only the service writes natively to the journal by default; the
         * one-shot modes are for a terminal or a script. */
        log_setup(a.log_target, LOG_INFO);
        if (a.verbosity > 0)
                log_force_max_priority(LOG_DEBUG); /* over the configuration's log_level: */
        if (setup_clock_offset() < 0)
                return EXIT_FAILURE_OTHER;
        const char *state_dir = state_dir_from(&a, &state_dir_buf);

        if (a.mode == MODE_STATUS)
                return run_status(&a, state_dir);

        _cleanup_(config_freep) struct config *config = NULL;
        r = load_config(a.config_path, a.mode == MODE_CHECK_CONFIG, &config);
        if (r < 0)
                return EXIT_CONFIG; /* unreadable or invalid: either way the configuration is at fault */

        if (a.mode == MODE_CHECK_CONFIG) {
                unsigned pools = 0;
                for (size_t i = 0; i < config->n_targets; i++)
                        pools += (unsigned) config->targets[i].n_pools;
                unsigned wanted = config_total_wanted(config);
                printf("configuration OK\n%zu target%s, %u pool%s, %u number%s wanted\n", config->n_targets,
                       config->n_targets == 1 ? "" : "s", pools, pools == 1 ? "" : "s", wanted, wanted == 1 ? "" : "s");
                fflush(stdout);
                (void) check_readable_by_others(a.config_path);
                return 0;
        }

        struct manager_options mo = {
                .config_path = a.config_path,
                .state_dir = state_dir,
                .wait_usec = a.wait_usec,
                .json = a.json,
                .read_only = a.mode == MODE_PLAN,
        };
        _cleanup_(manager_freep) struct manager *m = NULL;
        r = manager_new(&mo, TAKE_PTR(config), &m);
        if (r < 0)
                return EXIT_FAILURE_OTHER;

        if (a.mode == MODE_PLAN)
                return manager_run_once(m, true);
        if (a.mode == MODE_ONCE)
                return manager_run_once(m, false);
        return manager_run_service(m);
}

int main(int argc, char **argv) {
        return run(argc, argv);
}
