/* sts.h: the two AWS STS calls the credential chain makes, AssumeRole
 * (SigV4, service "sts") and AssumeRoleWithWebIdentity (unsigned), in the
 * Query protocol of the STS service model (version 2011-06-15): a form
 * body in, an XML document out. The model has no JSON protocol, so the
 * answer is read as XML with a small bounded reader (docs/credentials.md).
 * The builders and parsers are pure; sts_call() is one bounded blocking
 * request through http.c, made from inside credentials_get(). */
#pragma once

#include "sigv4.h"

#define STS_API_VERSION "2011-06-15"
#define STS_RESPONSE_MAX_BYTES (64 * 1024)

struct sts_assume_role {
        const char *role_arn;
        const char *role_session_name;
        const char *external_id;       /* or NULL */
        unsigned duration_sec;         /* 0: not sent (STS default 1 h) */
        const char *web_identity_token; /* AssumeRoleWithWebIdentity when not NULL (a secret) */
};

/* The form body, members in the order of the model, each value
 * percent-encoded as the Query protocol does (A-Za-z0-9-._~ kept). The
 * body holds the web identity token when there is one: free it with
 * wiping. */
int sts_request_body(const struct sts_assume_role *a, char **ret);

/* https://sts.REGION.amazonaws.com, unless AWS_ENDPOINT_URL_STS, else
 * AWS_ENDPOINT_URL, names another (https only; trailing '/' dropped). */
int sts_endpoint(const char *region, char **ret);

/* A 2xx answer: the Credentials of AssumeRoleResult (or
 * AssumeRoleWithWebIdentityResult). -EBADMSG when malformed. */
int sts_parse_credentials(const char *xml, size_t len, struct aws_credentials **ret);
/* An error answer: Error/Code and Error/Message (either may be NULL when
 * absent); -EBADMSG when it is not an STS error document. */
int sts_parse_error(const char *xml, size_t len, char **ret_code, char **ret_message);

/* Calls STS at endpoint (sts_endpoint()) for region; caller: the
 * credentials that sign AssumeRole (NULL for web identity). now: wall
 * seconds, for signing. 0 with *ret; else a negative errno, with
 * *ret_code set to the STS error code when STS answered with one (e.g.
 * "AccessDenied") and *ret_error to a one-line message without secrets. */
int sts_call(const char *endpoint, const char *region, const struct sts_assume_role *a,
             const struct aws_credentials *caller, uint64_t now, struct aws_credentials **ret, char **ret_code,
             char **ret_error);
