/* credentials.h: the standard AWS credential chain (connect-numbersd(8),
 * CREDENTIALS): environment, web identity, $CREDENTIALS_DIRECTORY/aws,
 * shared credentials/config files (with role, web identity and
 * credential_process profiles), container credentials, EC2 IMDSv2. STS
 * calls (sts.c) and credential_process (process.c) are bounded blocking
 * calls too. Fetching
 * from the container or IMDS endpoints is a short, bounded, blocking HTTP
 * call (1-2 s timeouts) to a loopback or link-local address. */
#pragma once

#include "sigv4.h"

struct credentials_provider;

/* profile: the YAML's profile:, or NULL (then AWS_PROFILE, else "default"). */
int credentials_provider_new(const char *profile, struct credentials_provider **ret);
struct credentials_provider *credentials_provider_free(struct credentials_provider *p);
DEFINE_FREEP(struct credentials_provider, credentials_provider_free)

/* Returns valid credentials, walking the chain the first time and
 * refreshing temporary credentials at least 5 minutes before they expire
 * (a failed refresh keeps the old ones until they expire, logged once).
 * now: wall seconds. The pointer stays valid until the next call.
 * Errors: -ENOKEY nothing in the chain has credentials; -EOPNOTSUPP an
 * SSO profile; -ELOOP a source_profile loop; -EACCES STS refused a role
 * or web identity; -EIO an endpoint, STS or credential_process failed
 * (-EINVAL: a credentials file, profile or variable is malformed). With
 * nothing valid left, a failing chain is walked again at most once a
 * minute.
 * credentials_provider_error() then says why in one line (never
 * containing a secret). */
int credentials_get(struct credentials_provider *p, uint64_t now, const struct aws_credentials **ret);
const char *credentials_provider_error(const struct credentials_provider *p);
/* The region whose STS endpoint the chain's own role profiles and web
 * identity call (NULL: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1). */
int credentials_provider_set_region(struct credentials_provider *p, const char *region);

/* New credentials from their parts (copied; source may be NULL): -EINVAL
 * when a part has spaces or control characters (it goes into a header),
 * or a key id has '/', ',' or '='. Shared with the STS answer reader. */
int credentials_new(const char *access_key_id, const char *secret, const char *token, uint64_t expiration,
                    const char *source, struct aws_credentials **ret);

/* Pure parsers, exposed for tests and fuzzing. */
/* Shared credentials/config file text: the named profile's keys. In a
 * config file (is_config) sections are "[default]" and "[profile NAME]". */
int credentials_parse_ini(const char *text, size_t len, const char *profile, bool is_config,
                          struct aws_credentials **ret, char **ret_error);
/* The container/IMDS JSON document (AccessKeyId, SecretAccessKey, Token,
 * Expiration ISO-8601). */
int credentials_parse_json(const char *text, size_t len, struct aws_credentials **ret);
/* ISO-8601 UTC time as the container and IMDS endpoints send it
 * ("2026-11-27T10:00:00Z", also with fractional seconds or an offset such
 * as "+00:00") -> wall seconds. -EINVAL if malformed. */
int credentials_parse_iso8601(const char *s, uint64_t *ret);
