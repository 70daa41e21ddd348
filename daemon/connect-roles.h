/* connect-roles.h: which credentials sign a Connect call. A target with a
 * role_arn (connect-numbers.yaml(5)) has its calls signed by that role's
 * assumed credentials; every other call by the chain's. Copied from the
 * configuration, so that a reload can swap it whole. */
#pragma once

#include "aws/roles.h"

struct config;
struct connect_roles;

/* config may be NULL: no roles. */
int connect_roles_new(const struct config *config, struct connect_roles **ret);
struct connect_roles *connect_roles_free(struct connect_roles *rs);
DEFINE_FREEP(struct connect_roles, connect_roles_free)
size_t connect_roles_count(const struct connect_roles *rs);

/* A claimed number's id and ARN: later calls that name the number by id
 * only (describe, release...) go to the role of the ARN's account. */
void connect_roles_remember(struct connect_roles *rs, const char *phone_number_id, const char *phone_number_arn);

/* The account a number given by bare id was claimed in (remembered as
 * above, only when roles are configured): true with ret (12 digits and
 * a NUL). Its calls then draw on that account's pacing, not on a bucket
 * that every account would share. */
bool connect_roles_account_of(const struct connect_roles *rs, const char *phone_number_id, char ret[13]);

/* Credentials for a call in region about arn (a target's or a number's
 * ARN, or NULL) or phone_number_id (or NULL): the role of the ARN's
 * account, else of the account the id was claimed in, else the region's
 * only role, else the chain's (base). As role_cache_get() and
 * credentials_get(); *ret_assumed (may be NULL) says whether a role was
 * picked, so that a failure is that role's targets' only. */
int connect_roles_credentials(struct connect_roles *rs, struct role_cache *cache, struct credentials_provider *base,
                              const char *region, const char *arn, const char *phone_number_id, uint64_t now,
                              const struct aws_credentials **ret, const char **ret_error, bool *ret_assumed);
