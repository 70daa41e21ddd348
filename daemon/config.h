/* config.h: the desired-state YAML (connect-numbers.yaml(5)) as a struct.
 * config.c is the only file that touches libyaml. Parsing is pure: it takes
 * the text and reports every problem as FILE:LINE:COLUMN: message. */
#pragma once

#include <stdio.h>

#include "util.h"

#define OWNERSHIP_TAG_KEY "connect-numbers:pool"

enum target_kind {
        TARGET_INSTANCE,
        TARGET_TRAFFIC_DISTRIBUTION_GROUP,
};

struct config_tag {
        char *key;
        char *value;
};

struct pool_config {
        char *name;                  /* [A-Za-z0-9_-]{1,64} */
        char *country;               /* PhoneNumberCountryCode, e.g. "US" */
        char *type;                  /* PhoneNumberType, e.g. "DID" */
        unsigned count;              /* 0..1000; default n_numbers; >= n_numbers */
        char *prefix;                /* normalised with its leading '+', or NULL */
        char *description;           /* <= 500 chars, or NULL */
        char *contact_flow;          /* contact flow id (the last part of an ARN when the YAML gives
                                      * a flow ARN), or NULL */
        char *flow_instance_id;      /* the instance id of a flow ARN, or NULL (the flow id form:
                                      * the target's own instance). A traffic distribution group's
                                      * pool must give the ARN form. */
        char **numbers;              /* pinned numbers, E.164 ('+' and 1..15 digits), file order */
        size_t n_numbers;
        char **from;                 /* ownership-tag values "TARGET/POOL" to take over, file order */
        size_t n_from;
        struct config_tag *tags;     /* user tags, without the ownership tag */
        size_t n_tags;
        bool adopt;                  /* count matching untagged numbers as ours */
        unsigned line;               /* 1-based line of the pool's key, for messages */
        char digest[65];             /* SHA-256 hex of every setting above except line */
};

struct target_config {
        char *name;                  /* [A-Za-z0-9_-]{1,64} */
        char *arn;
        enum target_kind kind;
        char *partition;             /* "aws" or "aws-us-gov" */
        char *region;                /* from the ARN: where its calls go */
        char *account;               /* 12 digits */
        char *resource_id;           /* instance id or TDG id (after the '/') */
        unsigned quota;              /* phone-number quota (default 5) */
        bool release_excess;         /* default false */
        unsigned max_releases_per_pass; /* default 1 */
        /* The role whose credentials sign this target's calls, or NULL
         * (the chain's own credentials). Each of the four keys is the
         * target's own, else the top level's. */
        char *role_arn;              /* arn:PARTITION:iam::ACCOUNT:role/NAME, same account as arn */
        char *external_id;           /* or NULL */
        char *role_session_name;     /* default "connect-numbers" */
        usec_t role_duration_usec;   /* default 1h, 15m..12h */
        char **previous_arns;        /* where the target lived before: listed too, and its numbers
                                      * found there moved to arn. Same partition, account and region
                                      * as arn, never arn itself nor another target's arn */
        size_t n_previous_arns;
        struct pool_config *pools;   /* in file order */
        size_t n_pools;
        unsigned line;
        char digest[65];             /* SHA-256 hex of the target's whole part of the YAML
                                      * (settings and pools): a change ends a quota pause */
};

struct config_rate {
        char *operation;             /* e.g. "ClaimPhoneNumber" */
        double rate;                 /* requests per second */
};

struct config {
        usec_t interval_usec;        /* default 5m, 1s..24h */
        char *region;                /* default region where no ARN applies, or NULL */
        char *endpoint_url;          /* override, or NULL */
        char *ca_file;               /* extra CA bundle, or NULL */
        char *profile;               /* credentials profile, or NULL */
        char *role_arn;              /* top-level role_arn:, or NULL (targets inherit it) */
        char *external_id;           /* top-level external_id:, or NULL */
        char *role_session_name;     /* top-level role_session_name:, or NULL */
        usec_t role_duration_usec;   /* top-level role_duration:, 0 = not given */
        double rate_default;         /* api_rate.default, req/s (default 2) */
        double rate_burst;           /* api_rate.burst (default 5) */
        struct config_rate *rates;   /* per-operation overrides */
        size_t n_rates;
        usec_t quota_backoff_usec;   /* default 6h, 1m..7d */
        unsigned max_numbers_per_target; /* a target's list stops here in a pass (it is then unknown);
                                      * default 100000, 1000..1000000 */
        struct target_config *targets; /* in file order */
        size_t n_targets;
        int log_level;               /* log_level: as a syslog priority, LOG_ERR..LOG_DEBUG (default LOG_INFO) */
        char *metrics_file;          /* absolute path, or NULL: $RUNTIME_DIRECTORY/metrics.prom when set */
};

struct config_problem {
        unsigned line, column;       /* 1-based */
        char *message;
};

struct config_problems {
        struct config_problem *items;
        size_t n;
};

/* Parses YAML text. On success returns 0 and *ret; on an invalid file
 * returns -EINVAL and fills problems (sorted by line, column), *ret
 * untouched. problems may be NULL. */
int config_parse(const char *text, size_t len, struct config **ret, struct config_problems *problems);
/* Reads a file (I/O edge) and parses it. -errno when it cannot be read
 * (a problem at 0:0 describes it). */
int config_load(const char *path, struct config **ret, struct config_problems *problems);
/* Prints each problem as "FILE:LINE:COLUMN: message\n". */
void config_problems_print(const struct config_problems *p, const char *filename, FILE *f);
void config_problems_clear(struct config_problems *p);

struct config *config_free(struct config *c);
DEFINE_FREEP(struct config, config_free)

const struct target_config *config_find_target(const struct config *c, const char *name);
const struct pool_config *target_find_pool(const struct target_config *t, const char *name);
/* Rate for an operation: its override, else rate_default. */
double config_rate_for(const struct config *c, const char *operation);
/* Total numbers wanted over every pool. */
unsigned config_total_wanted(const struct config *c);
