/* observe.c: the observed data's small helpers (observe.h). Pure. */
#include "observe.h"

const char *connect_error_kind_name(enum connect_error_kind k) {
        static const char *const names[] = {
                [CONNECT_ERROR_NONE] = "none",
                [CONNECT_ERROR_THROTTLED] = "throttled",
                [CONNECT_ERROR_TRANSIENT] = "transient",
                [CONNECT_ERROR_NOT_FOUND] = "not-found",
                [CONNECT_ERROR_IN_USE] = "in-use",
                [CONNECT_ERROR_IDEMPOTENCY] = "idempotency",
                [CONNECT_ERROR_QUOTA] = "quota",
                [CONNECT_ERROR_INVALID] = "invalid",
                [CONNECT_ERROR_ACCESS_DENIED] = "access-denied",
                [CONNECT_ERROR_AUTH] = "auth",
                [CONNECT_ERROR_TLS] = "tls",
                [CONNECT_ERROR_LIST_BOUND] = "list-bound",
                [CONNECT_ERROR_OTHER] = "other",
                [CONNECT_ERROR_CREDENTIALS] = "credentials",
        };
        if ((unsigned) k >= ELEMENTSOF(names))
                return "other";
        return names[k];
}

bool connect_error_kind_is_retryable(enum connect_error_kind k) {
        return k == CONNECT_ERROR_THROTTLED || k == CONNECT_ERROR_TRANSIENT;
}

void connect_error_clear(struct connect_error *e) {
        if (!e)
                return;
        free(e->code);
        free(e->message);
        free(e->request_id);
        *e = (struct connect_error){};
}

const char *connect_status_name(enum connect_number_status s) {
        switch (s) {
        case CONNECT_STATUS_CLAIMED:
                return "CLAIMED";
        case CONNECT_STATUS_IN_PROGRESS:
                return "IN_PROGRESS";
        case CONNECT_STATUS_FAILED:
                return "FAILED";
        default:
                return "UNKNOWN";
        }
}

void connect_number_clear(struct connect_number *n) {
        if (!n)
                return;
        free(n->id);
        free(n->arn);
        free(n->phone_number);
        free(n->country);
        free(n->type);
        free(n->target_arn);
        free(n->instance_id);
        free(n->description);
        for (size_t i = 0; i < n->n_tags; i++) {
                free(n->tags[i].key);
                free(n->tags[i].value);
        }
        free(n->tags);
        free(n->status_message);
        *n = (struct connect_number){};
}

const char *connect_number_tag(const struct connect_number *n, const char *key) {
        if (!n || !key)
                return NULL;
        for (size_t i = 0; i < n->n_tags; i++)
                if (streq_ptr(n->tags[i].key, key))
                        return n->tags[i].value;
        return NULL;
}

void connect_numbers_free(struct connect_number *numbers, size_t n) {
        for (size_t i = 0; i < n; i++)
                connect_number_clear(&numbers[i]);
        free(numbers);
}

void connect_available_free(struct connect_available *a, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(a[i].phone_number);
                free(a[i].country);
                free(a[i].type);
        }
        free(a);
}

bool connect_is_quota_refusal(const char *code, const char *message) {
        if (streq_ptr(code, "ServiceQuotaExceededException"))
                return true;
        if (!message)
                return false;
        return strcasestr(message, "limit") &&
               (strcasestr(message, "phone number") || strcasestr(message, "claimed numbers"));
}
