/* process.h: credential_process (connect-numbersd(8), CREDENTIALS): a
 * program named in a profile that prints credentials as JSON. It is run
 * without a shell (its command line split as a POSIX shell would split
 * it, without expansions), with a short environment that carries no AWS
 * secret, stdin and stderr on /dev/null, for at most
 * PROCESS_TIMEOUT_SEC (then its process group is killed), and its output
 * bounded by PROCESS_OUTPUT_MAX_BYTES. Never logs; never puts its output
 * in a message. */
#pragma once

#include "sigv4.h"

#define PROCESS_TIMEOUT_SEC 60
#define PROCESS_OUTPUT_MAX_BYTES (64 * 1024)

/* Splits a command line into words: blanks separate words; '...' keeps
 * everything literally; "..." keeps everything but \" \\ \$ \` (as
 * escapes); a backslash outside quotes escapes the next character. No
 * expansions of any kind. -EINVAL: an unterminated quote, a trailing
 * backslash, or no word at all. *ret: NULL-terminated, free with
 * strv_free(). */
int process_split_command(const char *cmd, char ***ret);

/* The process's JSON output: {"Version": 1, "AccessKeyId",
 * "SecretAccessKey", "SessionToken"?, "Expiration"? (ISO-8601)}. -EINVAL
 * with *ret_error (a message without the output) when malformed. */
int process_parse_output(const char *text, size_t len, struct aws_credentials **ret, char **ret_error);

/* Runs cmd and parses its output. timeout_usec: 0 = PROCESS_TIMEOUT_SEC.
 * 0 with *ret, or: -ETIME (killed at the limit), -EFBIG (more output than
 * the bound; killed), -ECHILD (it exited non-zero or by a signal),
 * -EINVAL (command or output malformed), -ENOENT (program not found);
 * *ret_error says which in one line. */
int process_credentials(const char *cmd, usec_t timeout_usec, struct aws_credentials **ret, char **ret_error);
