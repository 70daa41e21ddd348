/* roles.c: the cache of assumed-role credentials. One entry per (role
 * ARN, external id, session name): two targets with the same role share
 * its credentials, and a reload that keeps a role keeps them. Logs only
 * a role's failure (once per episode) and its recovery; never a secret
 * (messages show the role ARN, the STS code and message, and at most the
 * last four characters of an access key id). */
#include "roles.h"

#include <stdio.h>

#include "../log.h"
#include "sts.h"

#define ROLE_REFRESH_BEFORE_MAX_SEC 300
#define ROLE_RETRY_SEC 60

struct role_entry {
        char *role_arn;
        char *external_id;             /* or NULL */
        char *session_name;
        unsigned duration_sec;
        struct aws_credentials *creds; /* or NULL */
        uint64_t obtained;             /* wall seconds when creds arrived */
        uint64_t last_attempt;         /* wall seconds of the last STS call, 0 = none */
        char *error;                   /* why the last attempt failed, or NULL */
        int error_code;
        bool failure_logged;           /* this failure episode is in the log */
        struct role_entry *next;
};

struct role_cache {
        struct role_entry *entries;
};

int role_cache_new(struct role_cache **ret) {
        struct role_cache *rc = calloc(1, sizeof *rc);
        if (!rc)
                return -ENOMEM;
        *ret = rc;
        return 0;
}

static void role_entry_free(struct role_entry *e) {
        if (!e)
                return;
        free(e->role_arn);
        free(e->external_id);
        free(e->session_name);
        aws_credentials_free(e->creds);
        free(e->error);
        free(e);
}

struct role_cache *role_cache_free(struct role_cache *rc) {
        if (!rc)
                return NULL;
        while (rc->entries) {
                struct role_entry *e = rc->entries;
                rc->entries = e->next;
                role_entry_free(e);
        }
        free(rc);
        return NULL;
}

uint64_t role_refresh_at(uint64_t obtained, uint64_t expiration) {
        uint64_t lifetime = expiration > obtained ? expiration - obtained : 0;
        uint64_t before = MIN((uint64_t) ROLE_REFRESH_BEFORE_MAX_SEC, lifetime / 2);
        return expiration - before;
}

static struct role_entry *entry_get(struct role_cache *rc, const struct role_spec *s) {
        for (struct role_entry *e = rc->entries; e; e = e->next)
                if (streq(e->role_arn, s->role_arn) && streq_ptr(e->external_id, s->external_id) &&
                    streq(e->session_name, s->session_name)) {
                        e->duration_sec = s->duration_sec;
                        return e;
                }
        struct role_entry *e = calloc(1, sizeof *e);
        if (!e)
                return NULL;
        e->role_arn = strdup(s->role_arn);
        e->external_id = strdup_or_null(s->external_id);
        e->session_name = strdup(s->session_name);
        e->duration_sec = s->duration_sec;
        if (!e->role_arn || !e->session_name || (s->external_id && !e->external_id)) {
                role_entry_free(e);
                return NULL;
        }
        e->next = rc->entries;
        rc->entries = e;
        return e;
}

static const char *key_tail(const struct aws_credentials *c) {
        size_t n = c && c->access_key_id ? strlen(c->access_key_id) : 0;
        return n >= 8 ? c->access_key_id + n - 4 : "????";
}

static bool usable(const struct role_entry *e, uint64_t now) {
        return e->creds && e->creds->expiration > now;
}

/* One AssumeRole. 0 or a negative errno with e->error set. */
static int entry_assume(struct role_entry *e, struct credentials_provider *base, const char *region, uint64_t now,
                        char **ret_code) {
        _cleanup_(aws_credentials_freep) struct aws_credentials *c = NULL;
        _cleanup_(freep) char *endpoint = NULL, *why = NULL;
        const struct aws_credentials *caller = NULL;
        int r;

        e->last_attempt = now;
        r = credentials_get(base, now, &caller);
        if (r < 0) {
                free(e->error);
                e->error = strprintf("cannot assume role %s: the credentials to call STS with are missing: %s",
                                     e->role_arn, credentials_provider_error(base));
                return r;
        }
        r = sts_endpoint(region, &endpoint);
        if (r < 0) {
                free(e->error);
                e->error = strprintf("cannot assume role %s: no usable STS endpoint for region %s (check "
                                     "AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL)",
                                     e->role_arn, region);
                return r;
        }
        struct sts_assume_role a = {
                .role_arn = e->role_arn,
                .role_session_name = e->session_name,
                .external_id = e->external_id,
                .duration_sec = e->duration_sec,
        };
        r = sts_call(endpoint, region, &a, caller, now, &c, ret_code, &why);
        if (r < 0) {
                /* A duration the role does not allow is a ValidationError
                 * about DurationSeconds: name the key that sets it. */
                bool duration = *ret_code && streq(*ret_code, "ValidationError") && why &&
                                strstr(why, "DurationSeconds");
                free(e->error);
                e->error = strprintf("cannot assume role %s%s%s: %s%s", e->role_arn,
                                     e->external_id ? " with external id " : "", e->external_id ?: "",
                                     why ? why : strerror(-r),
                                     duration ? " (role_duration is longer than the role allows)" : "");
                return r;
        }
        r = free_and_strdup(&c->source, "assume-role");
        if (r < 0)
                return r;
        aws_credentials_free(e->creds);
        e->creds = TAKE_PTR(c);
        e->obtained = now;
        e->error = mfree(e->error);
        e->error_code = 0;
        return 0;
}

int role_cache_get(struct role_cache *rc, struct credentials_provider *base, const struct role_spec *s,
                   const char *region, const char *target_arn, uint64_t now, const struct aws_credentials **ret,
                   const char **ret_error) {
        _cleanup_(freep) char *code = NULL;
        char when[32];

        if (!rc || !base || !s || !s->role_arn || !s->session_name || !region || !ret || !ret_error)
                return -EINVAL;
        *ret_error = NULL;
        struct role_entry *e = entry_get(rc, s);
        if (!e)
                return -ENOMEM;
        if (e->creds && now < role_refresh_at(e->obtained, e->creds->expiration)) {
                *ret = e->creds;
                return 0;
        }
        if (e->last_attempt && e->error && now >= e->last_attempt && now - e->last_attempt < ROLE_RETRY_SEC) {
                /* failed a moment ago: not again for every call */
                if (usable(e, now)) {
                        *ret = e->creds;
                        return 0;
                }
                *ret_error = e->error;
                return e->error_code < 0 ? e->error_code : -EIO;
        }

        int r = entry_assume(e, base, region, now, &code);
        if (r >= 0) {
                if (e->failure_logged)
                        log_fields(LOG_NOTICE, 0, &(struct log_fields){ .target_arn = target_arn },
                                   "Credentials for role %s work again", e->role_arn);
                else
                        log_debug("assumed role %s (access key id ...%s, expiring at %s)", e->role_arn,
                                  key_tail(e->creds), format_timestamp_sec(e->creds->expiration, when, sizeof when));
                e->failure_logged = false;
                *ret = e->creds;
                return 0;
        }
        e->error_code = r;
        if (!e->error)
                e->error = strprintf("cannot assume role %s: %s", e->role_arn, strerror(-r));
        if (usable(e, now)) {
                log_full_errno(LOG_WARNING, 0,
                               "Renewing the credentials of role %s failed: %s; keeping the current ones until %s",
                               e->role_arn, e->error ? e->error : "?",
                               format_timestamp_sec(e->creds->expiration, when, sizeof when));
                *ret = e->creds;
                return 0;
        }
        e->creds = aws_credentials_free(e->creds);
        if (!e->failure_logged) {
                log_fields(LOG_ERR, 0,
                           &(struct log_fields){ .message_id = MESSAGE_ID_CREDENTIALS_FAILED,
                                                 .target_arn = target_arn,
                                                 .aws_operation = "AssumeRole",
                                                 .aws_error_code = code },
                           "Credentials for %s failed: %s", target_arn ? target_arn : "a target",
                           e->error ? e->error : "?");
                e->failure_logged = true;
        }
        *ret_error = e->error;
        return r;
}
