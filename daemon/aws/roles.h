/* roles.h: credentials of assumed roles (STS AssumeRole, called with the
 * chain's credentials), cached per (role ARN, external id, session name)
 * and refreshed before they expire. Like the chain, a refresh is a short
 * bounded blocking call made from inside roles_get(). */
#pragma once

#include "credentials.h"

struct role_spec {
        const char *role_arn;
        const char *external_id;       /* or NULL */
        const char *session_name;
        unsigned duration_sec;         /* asked lifetime */
};

struct role_cache;

int role_cache_new(struct role_cache **ret);
struct role_cache *role_cache_free(struct role_cache *rc);
DEFINE_FREEP(struct role_cache, role_cache_free)

/* Credentials of the role, assumed with base's at the STS endpoint of
 * region (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL override it). now: wall
 * seconds. They are renewed when less than min(5 min, half their
 * lifetime) is left; a failed renewal keeps the old ones while they are
 * valid, and is tried again at most once a minute. Never hands out
 * expired credentials. A failure with nothing valid left is logged once
 * per episode (MESSAGE_ID_CREDENTIALS_FAILED, naming target_arn when
 * given, the role and the STS code) and returned: -EACCES (STS refused),
 * or the chain's or the transport's errno; *ret_error then says why in
 * one line without secrets (valid until the next call). */
int role_cache_get(struct role_cache *rc, struct credentials_provider *base, const struct role_spec *s,
                   const char *region, const char *target_arn, uint64_t now, const struct aws_credentials **ret,
                   const char **ret_error);

/* When to renew credentials obtained at obtained (wall seconds) that
 * expire at expiration: min(5 min, half the lifetime) before. Pure. */
uint64_t role_refresh_at(uint64_t obtained, uint64_t expiration);
