/* observe.h: what the service observes of Amazon Connect, as plain data:
 * a number as a list or a describe shows it, a search result, an error
 * answer and its kind. The wire format (connect-wire.c) fills these; the
 * lifecycle and the planner read them without knowing the wire or the
 * scheduler. */
#pragma once

#include "util.h"

enum connect_error_kind {
        CONNECT_ERROR_NONE,
        CONNECT_ERROR_THROTTLED,     /* ThrottlingException, 429, LimitExceededException w/o quota text */
        CONNECT_ERROR_TRANSIENT,     /* 5xx, timeouts, dropped connections, truncated bodies */
        CONNECT_ERROR_NOT_FOUND,     /* ResourceNotFoundException */
        CONNECT_ERROR_IN_USE,        /* ResourceInUseException */
        CONNECT_ERROR_IDEMPOTENCY,   /* IdempotencyException */
        CONNECT_ERROR_QUOTA,         /* the target reached its phone-number quota */
        CONNECT_ERROR_INVALID,       /* InvalidParameterException, InvalidRequestException */
        CONNECT_ERROR_ACCESS_DENIED, /* AccessDeniedException */
        CONNECT_ERROR_AUTH,          /* no/bad credentials, signature mismatch, unknown key */
        CONNECT_ERROR_TLS,           /* certificate verification and other TLS failures */
        CONNECT_ERROR_LIST_BOUND,    /* a list that cycles (NextToken seen before) or passes its cap */
        CONNECT_ERROR_OTHER,
        CONNECT_ERROR_CREDENTIALS,   /* the target's role could not be assumed: that target only */
};
const char *connect_error_kind_name(enum connect_error_kind k);
/* Worth another try later (the pass ends with work remaining, exit 75):
 * throttled, transient. */
bool connect_error_kind_is_retryable(enum connect_error_kind k);

struct connect_error {
        enum connect_error_kind kind;
        long http_status;            /* 0 when no response */
        char *code;                  /* AWS error code, cleaned ("ThrottlingException"), or NULL */
        char *message;               /* AWS or transport message, or NULL */
        char *request_id;            /* x-amzn-RequestId, or NULL */
};
void connect_error_clear(struct connect_error *e);

/* A refusal because the target reached its phone-number quota: code
 * ServiceQuotaExceededException, or a
 * message containing (ignoring case) "limit" with "phone number" or
 * "claimed numbers". Pure; also used on FAILED status messages. */
bool connect_is_quota_refusal(const char *code, const char *message);

enum connect_number_status {
        CONNECT_STATUS_UNKNOWN,
        CONNECT_STATUS_CLAIMED,
        CONNECT_STATUS_IN_PROGRESS,
        CONNECT_STATUS_FAILED,
};
const char *connect_status_name(enum connect_number_status s);

struct connect_tag {
        char *key;
        char *value;
};

/* A number from ListPhoneNumbersV2 (summary) or DescribePhoneNumber
 * (described == true: tags and status filled). */
struct connect_number {
        char *id;                    /* PhoneNumberId */
        char *arn;                   /* PhoneNumberArn */
        char *phone_number;          /* E.164 */
        char *country;               /* PhoneNumberCountryCode */
        char *type;                  /* PhoneNumberType */
        char *target_arn;
        char *instance_id;
        char *description;           /* PhoneNumberDescription, or NULL */
        bool described;
        struct connect_tag *tags;
        size_t n_tags;
        enum connect_number_status status;
        char *status_message;
};
void connect_number_clear(struct connect_number *n);
const char *connect_number_tag(const struct connect_number *n, const char *key); /* value or NULL */

struct connect_available {
        char *phone_number;
        char *country;
        char *type;
};

void connect_numbers_free(struct connect_number *numbers, size_t n);
void connect_available_free(struct connect_available *a, size_t n);
