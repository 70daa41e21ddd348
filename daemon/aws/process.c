/* process.c: credential_process (process.h). The child gets a pipe for
 * stdout, /dev/null for stdin and stderr (its stderr could carry what it
 * printed by mistake, and it is never read), a new process group so that
 * the whole group can be killed at the limit, and an environment reduced
 * to what a credential helper needs to find its own configuration. The
 * parent polls the pipe with the remaining time as the timeout, keeping
 * the systemd watchdog fed meanwhile (the limit is longer than
 * WatchdogSec= allows a stalled loop). */
#include "process.h"

#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "credentials.h"

extern char **environ;

_printf_(2, 3) static void set_error(char **ret_error, const char *fmt, ...) {
        if (!ret_error)
                return;
        va_list ap;
        va_start(ap, fmt);
        char *s = strvprintf(fmt, ap);
        va_end(ap);
        free(*ret_error);
        *ret_error = s;
}

/* Appends s (taken; freed on failure). */
static int strv_take(char ***v, size_t *n, char *s) {
        char **nv = realloc(*v, (*n + 2) * sizeof(char *));
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        nv[(*n)++] = s;
        nv[*n] = NULL;
        *v = nv;
        return 0;
}

int process_split_command(const char *cmd, char ***ret) {
        _cleanup_(strv_freep) char **v = NULL;
        size_t n = 0;
        int r;

        if (!cmd || !ret)
                return -EINVAL;
        v = calloc(1, sizeof(char *));
        if (!v)
                return -ENOMEM;
        for (const char *p = cmd;;) {
                while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
                        p++;
                if (!*p)
                        break;
                size_t cap = strlen(p) + 1, len = 0;
                char *w = malloc(cap);
                if (!w)
                        return -ENOMEM;
                while (*p && !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
                        if (*p == '\'') {
                                const char *end = strchr(p + 1, '\'');
                                if (!end) {
                                        free(w);
                                        return -EINVAL;
                                }
                                memcpy(w + len, p + 1, (size_t) (end - p - 1));
                                len += (size_t) (end - p - 1);
                                p = end + 1;
                        } else if (*p == '"') {
                                p++;
                                while (*p && *p != '"') {
                                        if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
                                                p++;
                                        w[len++] = *p++;
                                }
                                if (*p != '"') {
                                        free(w);
                                        return -EINVAL;
                                }
                                p++;
                        } else if (*p == '\\') {
                                if (!p[1]) {
                                        free(w);
                                        return -EINVAL;
                                }
                                w[len++] = p[1];
                                p += 2;
                        } else
                                w[len++] = *p++;
                }
                w[len] = 0;
                r = strv_take(&v, &n, w);
                if (r < 0)
                        return r;
        }
        if (n == 0)
                return -EINVAL;
        *ret = TAKE_PTR(v);
        return 0;
}

static void json_string_cleanse(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        if (json_is_string(v))
                OPENSSL_cleanse((char *) json_string_value(v), json_string_length(v));
}

int process_parse_output(const char *text, size_t len, struct aws_credentials **ret, char **ret_error) {
        json_error_t err;
        int r = -EINVAL;

        if ((!text && len > 0) || !ret)
                return -EINVAL;
        json_t *root = json_loadb(text ? text : "", len, 0, &err);
        if (!root || !json_is_object(root)) {
                /* not even the parser's message: it may quote the output */
                set_error(ret_error, "its output is not a JSON object");
                json_decref(root);
                return -EINVAL;
        }
        json_t *ver = json_object_get(root, "Version");
        const char *akid = json_string_value(json_object_get(root, "AccessKeyId"));
        const char *secret = json_string_value(json_object_get(root, "SecretAccessKey"));
        json_t *tok = json_object_get(root, "SessionToken"), *exp = json_object_get(root, "Expiration");
        uint64_t expiration = 0;

        if (!json_is_integer(ver) || json_integer_value(ver) != 1)
                set_error(ret_error, "its output has no \"Version\": 1");
        else if (!akid || !secret)
                set_error(ret_error, "its output lacks AccessKeyId or SecretAccessKey");
        else if (tok && !json_is_string(tok) && !json_is_null(tok))
                set_error(ret_error, "its SessionToken is not a string");
        else if (exp && !json_is_null(exp) &&
                 (!json_is_string(exp) || credentials_parse_iso8601(json_string_value(exp), &expiration) < 0))
                set_error(ret_error, "its Expiration is not an ISO-8601 time");
        else {
                const char *token = json_string_value(tok);
                r = credentials_new(akid, secret, isempty(token) ? NULL : token, expiration, "process", ret);
                if (r == -EINVAL)
                        set_error(ret_error, "its keys contain spaces or control characters");
        }
        json_string_cleanse(root, "SecretAccessKey");
        json_string_cleanse(root, "SessionToken");
        json_decref(root);
        return r;
}

/* Names of variables a credential helper may need. AWS_* pass too, except
 * the ones that are secrets. */
static bool env_passes(const char *entry) {
        static const char *const keep[] = {
                "PATH=", "HOME=", "USER=", "LOGNAME=", "LANG=", "TZ=", "TMPDIR=", "CREDENTIALS_DIRECTORY=",
                "XDG_CONFIG_HOME=", "XDG_CACHE_HOME=", "XDG_RUNTIME_DIR=", "SSL_CERT_FILE=", "SSL_CERT_DIR=",
        };
        static const char *const secret[] = {
                "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_SECURITY_TOKEN=",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN=", "AWS_ACCESS_KEY_ID=",
        };
        for (size_t i = 0; i < ELEMENTSOF(secret); i++)
                if (strncmp(entry, secret[i], strlen(secret[i])) == 0)
                        return false;
        if (strncmp(entry, "AWS_", 4) == 0 || strncmp(entry, "LC_", 3) == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(keep); i++)
                if (strncmp(entry, keep[i], strlen(keep[i])) == 0)
                        return true;
        return false;
}

/* The program's path: argv0 itself when it has a '/', else the first
 * executable of that name in PATH (default "/usr/bin:/bin"). Resolved
 * here rather than by posix_spawnp(), so that a missing program is
 * told apart from one that fails. -ENOENT when there is none. */
static int resolve_program(const char *argv0, char **ret) {
        if (strchr(argv0, '/')) {
                if (access(argv0, X_OK) < 0)
                        return -errno;
                *ret = strdup(argv0);
                return *ret ? 0 : -ENOMEM;
        }
        const char *path = getenv("PATH");
        if (isempty(path))
                path = "/usr/bin:/bin";
        for (const char *p = path; *p;) {
                size_t n = strcspn(p, ":");
                char *cand = n > 0 ? strprintf("%.*s/%s", (int) n, p, argv0) : strprintf("./%s", argv0);
                if (!cand)
                        return -ENOMEM;
                if (access(cand, X_OK) == 0) {
                        *ret = cand;
                        return 0;
                }
                free(cand);
                p += n;
                if (*p == ':')
                        p++;
        }
        return -ENOENT;
}

static usec_t now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

int process_credentials(const char *cmd, usec_t timeout_usec, struct aws_credentials **ret, char **ret_error) {
        _cleanup_(strv_freep) char **argv = NULL;
        _cleanup_(freep) char *program = NULL;
        char **envp = NULL;
        size_t n_env = 0;
        int pipefd[2] = { -1, -1 }, devnull = -1, r;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        pid_t pid = -1;
        char *out = NULL;
        size_t len = 0;

        if (!cmd || !ret)
                return -EINVAL;
        if (timeout_usec == 0)
                timeout_usec = PROCESS_TIMEOUT_SEC * USEC_PER_SEC;
        r = process_split_command(cmd, &argv);
        if (r == -EINVAL) {
                set_error(ret_error, "credential_process is not a command line (an unterminated quote?)");
                return r;
        }
        if (r < 0)
                return r;
        r = resolve_program(argv[0], &program);
        if (r < 0) {
                set_error(ret_error, "cannot run credential_process %s: %s", argv[0], strerror(-r));
                return r == -ENOMEM ? r : -ENOENT;
        }
        for (char **e = environ; e && *e; e++)
                if (env_passes(*e)) {
                        char **ne = realloc(envp, (n_env + 2) * sizeof(char *));
                        if (!ne) {
                                free(envp);
                                return -ENOMEM;
                        }
                        envp = ne;
                        envp[n_env++] = *e; /* borrowed */
                        envp[n_env] = NULL;
                }
        if (!envp && !(envp = calloc(1, sizeof(char *))))
                return -ENOMEM;
        out = malloc(PROCESS_OUTPUT_MAX_BYTES + 1);
        if (!out) {
                free(envp);
                return -ENOMEM;
        }
        if (pipe2(pipefd, O_CLOEXEC) < 0 || (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
                r = -errno;
                set_error(ret_error, "cannot run credential_process: %s", strerror(-r));
                goto finish;
        }
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, devnull, STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, devnull, STDERR_FILENO);
        posix_spawnattr_init(&attr);
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        r = posix_spawn(&pid, program, &fa, &attr, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close(pipefd[1]);
        pipefd[1] = -1;
        if (r != 0) {
                pid = -1;
                set_error(ret_error, "cannot run credential_process %s: %s", argv[0], strerror(r));
                r = r == ENOENT ? -ENOENT : -r;
                goto finish;
        }

        usec_t deadline = now_mono() + timeout_usec;
        bool too_big = false, timed_out = false;
        for (;;) {
                usec_t now = now_mono();
                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                usec_t left = deadline - now;
                struct pollfd pfd = { .fd = pipefd[0], .events = POLLIN };
                int k = poll(&pfd, 1, (int) MIN(left / USEC_PER_MSEC + 1, (usec_t) 1000));
                (void) sd_notify(0, "WATCHDOG=1");
                if (k < 0 && errno != EINTR) {
                        timed_out = true;
                        break;
                }
                if (k <= 0)
                        continue;
                ssize_t m = read(pipefd[0], out + len, PROCESS_OUTPUT_MAX_BYTES + 1 - len);
                if (m < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (m <= 0)
                        break; /* EOF (or an error: treat as the end) */
                len += (size_t) m;
                if (len > PROCESS_OUTPUT_MAX_BYTES) {
                        too_big = true;
                        break;
                }
        }
        if (timed_out || too_big)
                (void) kill(-pid, SIGKILL);
        int status = 0;
        /* After EOF the child is exiting; give it what is left of the time,
         * then kill it. */
        for (;;) {
                pid_t w = waitpid(pid, &status, timed_out || too_big ? 0 : WNOHANG);
                if (w == pid || (w < 0 && errno != EINTR))
                        break;
                if (w == 0) {
                        if (now_mono() >= deadline) {
                                timed_out = true;
                                (void) kill(-pid, SIGKILL);
                                continue;
                        }
                        (void) sd_notify(0, "WATCHDOG=1");
                        usleep(10 * 1000);
                }
        }
        pid = -1;
        if (timed_out) {
                set_error(ret_error, "credential_process %s did not finish within %llu s and was killed", argv[0],
                          (unsigned long long) (timeout_usec / USEC_PER_SEC));
                r = -ETIME;
        } else if (too_big) {
                set_error(ret_error, "credential_process %s printed more than %u bytes and was killed", argv[0],
                          (unsigned) PROCESS_OUTPUT_MAX_BYTES);
                r = -EFBIG;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (WIFEXITED(status))
                        set_error(ret_error, "credential_process %s exited with status %d", argv[0],
                                  WEXITSTATUS(status));
                else
                        set_error(ret_error, "credential_process %s was killed by signal %d", argv[0],
                                  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
                r = -ECHILD;
        } else {
                _cleanup_(freep) char *why = NULL;
                r = process_parse_output(out, len, ret, &why);
                if (r < 0)
                        set_error(ret_error, "credential_process %s: %s", argv[0], why ? why : strerror(-r));
        }
finish:
        if (pipefd[0] >= 0)
                close(pipefd[0]);
        if (pipefd[1] >= 0)
                close(pipefd[1]);
        if (devnull >= 0)
                close(devnull);
        free_cleanse(out, PROCESS_OUTPUT_MAX_BYTES + 1);
        free(envp);
        return r;
}
