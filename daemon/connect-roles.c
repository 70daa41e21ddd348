/* connect-roles.c: the role of each call. Keyed by account (the target
 * ARN's fourth field): config.c has checked that a target's role lives in
 * the target's account, so every ARN of that account (the target's, its
 * numbers') maps to the role. Logging of failures is roles.c's. */
#include "connect-roles.h"

#include "config.h"

/* Claimed ids remembered for id-only calls: a ring, as only recent claims
 * are followed by such calls within a pass. */
#define REMEMBERED_IDS 4096

struct connect_role {
        char *account;                 /* 12 digits */
        char *region;                  /* of the first target with this account */
        char *target_arn;              /* the first target with this account, for logs */
        char *role_arn, *external_id, *session_name;
        unsigned duration_sec;
};

struct remembered {
        char *id;
        char account[13];
};

struct connect_roles {
        struct connect_role *roles;
        size_t n_roles;
        struct remembered ids[REMEMBERED_IDS];
        size_t next_id;
};

static void role_done(struct connect_role *r) {
        free(r->account);
        free(r->region);
        free(r->target_arn);
        free(r->role_arn);
        free(r->external_id);
        free(r->session_name);
}

struct connect_roles *connect_roles_free(struct connect_roles *rs) {
        if (!rs)
                return NULL;
        for (size_t i = 0; i < rs->n_roles; i++)
                role_done(&rs->roles[i]);
        free(rs->roles);
        for (size_t i = 0; i < REMEMBERED_IDS; i++)
                free(rs->ids[i].id);
        free(rs);
        return NULL;
}

size_t connect_roles_count(const struct connect_roles *rs) {
        return rs ? rs->n_roles : 0;
}

static const struct connect_role *role_by_account(const struct connect_roles *rs, const char *account, size_t n) {
        for (size_t i = 0; i < rs->n_roles; i++)
                if (strlen(rs->roles[i].account) == n && memcmp(rs->roles[i].account, account, n) == 0)
                        return &rs->roles[i];
        return NULL;
}

int connect_roles_new(const struct config *config, struct connect_roles **ret) {
        _cleanup_(connect_roles_freep) struct connect_roles *rs = calloc(1, sizeof *rs);
        if (!rs)
                return -ENOMEM;
        for (size_t i = 0; config && i < config->n_targets; i++) {
                const struct target_config *t = &config->targets[i];
                if (!t->role_arn || !t->account || role_by_account(rs, t->account, strlen(t->account)))
                        continue;
                struct connect_role *n = realloc(rs->roles, (rs->n_roles + 1) * sizeof *n);
                if (!n)
                        return -ENOMEM;
                rs->roles = n;
                struct connect_role *r = &rs->roles[rs->n_roles++];
                *r = (struct connect_role){
                        .account = strdup(t->account),
                        .region = strdup(t->region),
                        .target_arn = strdup(t->arn),
                        .role_arn = strdup(t->role_arn),
                        .external_id = strdup_or_null(t->external_id),
                        .session_name = strdup(t->role_session_name ?: "connect-numbers"),
                        .duration_sec = (unsigned) (t->role_duration_usec / USEC_PER_SEC),
                };
                if (!r->account || !r->region || !r->target_arn || !r->role_arn || !r->session_name ||
                    (t->external_id && !r->external_id))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(rs);
        return 0;
}

/* arn:PARTITION:SERVICE:REGION:ACCOUNT:... -> ACCOUNT */
static const char *arn_account(const char *arn, size_t *ret_len) {
        if (!arn || strncmp(arn, "arn:", 4) != 0)
                return NULL;
        const char *p = arn;
        for (int i = 0; i < 4; i++) {
                p = strchr(p, ':');
                if (!p)
                        return NULL;
                p++;
        }
        const char *end = strchr(p, ':');
        if (!end)
                return NULL;
        *ret_len = (size_t) (end - p);
        return p;
}

void connect_roles_remember(struct connect_roles *rs, const char *phone_number_id, const char *phone_number_arn) {
        size_t n;
        const char *account = arn_account(phone_number_arn, &n);
        if (!rs || !phone_number_id || !account || n != 12 || rs->n_roles == 0)
                return;
        char *id = strdup(phone_number_id);
        if (!id)
                return; /* only a hint lost */
        struct remembered *m = &rs->ids[rs->next_id];
        free(m->id);
        m->id = id;
        memcpy(m->account, account, 12);
        m->account[12] = 0;
        rs->next_id = (rs->next_id + 1) % REMEMBERED_IDS;
}

bool connect_roles_account_of(const struct connect_roles *rs, const char *phone_number_id, char ret[13]) {
        if (!rs || !phone_number_id || rs->n_roles == 0)
                return false;
        for (size_t i = 0; i < REMEMBERED_IDS; i++)
                if (rs->ids[i].id && streq(rs->ids[i].id, phone_number_id)) {
                        memcpy(ret, rs->ids[i].account, 13);
                        return true;
                }
        return false;
}

static const struct connect_role *role_pick(const struct connect_roles *rs, const char *region, const char *arn,
                                            const char *id) {
        size_t n;
        const char *account = arn_account(arn, &n);
        if (!rs || rs->n_roles == 0)
                return NULL;
        if (!account && id) {
                account = arn_account(id, &n); /* a number's ARN given as its id */
                for (size_t i = 0; !account && i < REMEMBERED_IDS; i++)
                        if (rs->ids[i].id && streq(rs->ids[i].id, id)) {
                                account = rs->ids[i].account;
                                n = 12;
                        }
        }
        if (account)
                return role_by_account(rs, account, n);
        const struct connect_role *only = NULL;
        for (size_t i = 0; i < rs->n_roles; i++)
                if (streq(rs->roles[i].region, region)) {
                        if (only)
                                return NULL;
                        only = &rs->roles[i];
                }
        return only;
}

int connect_roles_credentials(struct connect_roles *rs, struct role_cache *cache, struct credentials_provider *base,
                              const char *region, const char *arn, const char *phone_number_id, uint64_t now,
                              const struct aws_credentials **ret, const char **ret_error, bool *ret_assumed) {
        const struct connect_role *r = role_pick(rs, region, arn, phone_number_id);
        if (ret_assumed)
                *ret_assumed = r != NULL;
        if (!r) {
                int k = credentials_get(base, now, ret);
                if (k < 0)
                        *ret_error = credentials_provider_error(base);
                return k;
        }
        struct role_spec s = {
                .role_arn = r->role_arn,
                .external_id = r->external_id,
                .session_name = r->session_name,
                .duration_sec = r->duration_sec,
        };
        /* STS in the target's region (its regional endpoint), also for a
         * call of another region in the same account */
        return role_cache_get(cache, base, &s, r->region, arn && arn_account(arn, &(size_t){ 0 }) ? arn : r->target_arn,
                              now, ret, ret_error);
}
