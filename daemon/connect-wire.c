/* connect-wire.c: the wire format of the Amazon Connect operations the
 * daemon uses, as pure functions: each operation's request (method, path,
 * query, JSON body: the exact bytes that are signed and sent), the parsers
 * of each answer, error parsing and classification, and the endpoint. No
 * event loop, no network, no clock, no logging: every function here is
 * tested byte for byte (tests/unit/test-connect.c) and fuzzed.
 *
 * JSON (jansson) never leaves this file: the scheduler (connect.c) and the
 * rest of the daemon see C structs. Error messages come from the network
 * and may be logged, so they are cut to their first line here. */
#include "connect-wire.h"

#include <jansson.h>
#include <stdio.h>
#include <strings.h>

#include "aws/pacing.h"
#include "aws/sigv4.h"

#define CONNECT_LIST_PAGE_SIZE 1000
#define CONNECT_SEARCH_MAX_RESULTS 10U
/* AWS's signature-mismatch text continues after a blank line with the
 * canonical request, which holds the session token: only the first line
 * of a message is kept, and not too much of it. */
#define CONNECT_MESSAGE_MAX 512

static const char *const op_names[_CONNECT_OP_MAX] = {
        [CONNECT_OP_CLAIM] = "ClaimPhoneNumber",
        [CONNECT_OP_DESCRIBE] = "DescribePhoneNumber",
        [CONNECT_OP_LIST] = "ListPhoneNumbersV2",
        [CONNECT_OP_SEARCH] = "SearchAvailablePhoneNumbers",
        [CONNECT_OP_RELEASE] = "ReleasePhoneNumber",
        [CONNECT_OP_UPDATE_METADATA] = "UpdatePhoneNumberMetadata",
        [CONNECT_OP_ASSOCIATE_FLOW] = "AssociatePhoneNumberContactFlow",
        [CONNECT_OP_TAG] = "TagResource",
        [CONNECT_OP_UNTAG] = "UntagResource",
        [CONNECT_OP_UPDATE_NUMBER] = "UpdatePhoneNumber",
};

const char *connect_op_name(enum connect_op op) {
        if ((unsigned) op >= _CONNECT_OP_MAX)
                return NULL;
        return op_names[op];
}

int connect_op_from_name(const char *name) {
        if (!name)
                return -EINVAL;
        for (int i = 0; i < _CONNECT_OP_MAX; i++)
                if (streq(op_names[i], name))
                        return i;
        return -EINVAL;
}

bool connect_op_is_mutating(enum connect_op op) {
        switch (op) {
        case CONNECT_OP_CLAIM:
        case CONNECT_OP_RELEASE:
        case CONNECT_OP_UPDATE_METADATA:
        case CONNECT_OP_ASSOCIATE_FLOW:
        case CONNECT_OP_TAG:
        case CONNECT_OP_UNTAG:
        case CONNECT_OP_UPDATE_NUMBER:
                return true;
        default:
                return false;
        }
}

/* ---- Classification (pure) ---- */

static bool code_in(const char *code, const char *const *list, size_t n) {
        if (!code)
                return false;
        for (size_t i = 0; i < n; i++)
                if (streq(code, list[i]))
                        return true;
        return false;
}

enum connect_error_kind connect_classify_error(long http_status, const char *code, const char *message) {
        static const char *const auth_codes[] = {
                "UnrecognizedClientException",
                "InvalidSignatureException",
                "SignatureDoesNotMatch",
                "IncompleteSignature",
                "IncompleteSignatureException",
                "MissingAuthenticationToken",
                "MissingAuthenticationTokenException",
                "ExpiredToken",
                "ExpiredTokenException",
                "InvalidClientTokenId",
                "InvalidAccessKeyId",
                "AuthFailure",
                "RequestExpired",
                "RequestTimeTooSkewed",
        };
        static const char *const invalid_codes[] = {
                "InvalidParameterException",
                "InvalidRequestException",
                "ValidationException",
                "SerializationException",
        };

        /* Quota first: LimitExceededException with a quota message is a
         * quota refusal, without one it is throttling (Connect uses the
         * same code for both). */
        if (connect_is_quota_refusal(code, message))
                return CONNECT_ERROR_QUOTA;
        if (retry_is_throttling_code(code) || http_status == 429)
                return CONNECT_ERROR_THROTTLED;
        if (retry_is_transient_code(code))
                return CONNECT_ERROR_TRANSIENT;
        if (streq_ptr(code, "ResourceNotFoundException"))
                return CONNECT_ERROR_NOT_FOUND;
        if (streq_ptr(code, "ResourceInUseException"))
                return CONNECT_ERROR_IN_USE;
        if (streq_ptr(code, "IdempotencyException"))
                return CONNECT_ERROR_IDEMPOTENCY;
        if (code_in(code, invalid_codes, ELEMENTSOF(invalid_codes)))
                return CONNECT_ERROR_INVALID;
        if (streq_ptr(code, "AccessDeniedException"))
                return CONNECT_ERROR_ACCESS_DENIED;
        if (code_in(code, auth_codes, ELEMENTSOF(auth_codes)))
                return CONNECT_ERROR_AUTH;
        if (http_status >= 500 && http_status <= 599)
                return CONNECT_ERROR_TRANSIENT;
        switch (http_status) {
        case 400:
                return CONNECT_ERROR_INVALID;
        case 401:
                return CONNECT_ERROR_AUTH;
        case 403:
                return CONNECT_ERROR_ACCESS_DENIED;
        case 404:
                return CONNECT_ERROR_NOT_FOUND;
        default:
                return CONNECT_ERROR_OTHER;
        }
}

/* ---- JSON helpers ---- */

/* A member that must be a string when present: -EBADMSG otherwise. */
static int json_member_string(json_t *o, const char *key, const char **ret) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return -EBADMSG;
        *ret = json_string_value(v);
        return 0;
}

static int json_member_dup(json_t *o, const char *key, char **ret) {
        const char *s;
        int r = json_member_string(o, key, &s);
        if (r < 0)
                return r;
        if (!s)
                return 0;
        char *c = strdup(s);
        if (!c)
                return -ENOMEM;
        free(*ret);
        *ret = c;
        return 0;
}

static json_t *json_parse_object(const char *body, size_t len) {
        json_t *root;
        if (!body)
                return NULL;
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
        if (root && !json_is_object(root)) {
                json_decref(root);
                return NULL;
        }
        return root;
}

/* First line of s, at most CONNECT_MESSAGE_MAX bytes, never cut inside a
 * UTF-8 sequence, trimmed. NULL for an empty result. */
char *connect_message_sanitize(const char *s, size_t len) {
        size_t n = 0;
        while (n < len && s[n] && s[n] != '\n' && s[n] != '\r')
                n++;
        while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
                s++;
                n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
                n--;
        if (n > CONNECT_MESSAGE_MAX) {
                n = CONNECT_MESSAGE_MAX;
                while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                        n--;
        }
        if (n == 0)
                return NULL;
        return strndup(s, n);
}

/* SMITHY restJson1: cut at the first ':', then keep what follows the first
 * '#'. "ns#FooError:http://..." -> "FooError". */
static int error_code_clean(const char *s, char **ret) {
        size_t n = strcspn(s, ":");
        const char *hash = memchr(s, '#', n);
        if (hash) {
                n -= (size_t) (hash + 1 - s);
                s = hash + 1;
        }
        while (n > 0 && (*s == ' ' || *s == '\t')) {
                s++;
                n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
                n--;
        if (n == 0) {
                *ret = NULL;
                return 0;
        }
        *ret = strndup(s, n);
        return *ret ? 0 : -ENOMEM;
}

/* ---- Parsers (pure) ---- */

int connect_parse_error(long http_status, const char *error_type_header, const char *body, size_t len,
                        struct connect_error *ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(freep) char *code = NULL, *message = NULL;
        const char *s;
        int r;

        if (!ret)
                return -EINVAL;
        if (!body)
                len = 0;

        if (len > 0)
                root = json_parse_object(body, len);

        /* botocore's order: header, body code/Code, body __type. */
        if (!isempty(error_type_header)) {
                r = error_code_clean(error_type_header, &code);
                if (r < 0)
                        return r;
        }
        if (!code && root) {
                static const char *const keys[] = { "code", "Code", "__type" };
                for (size_t i = 0; i < ELEMENTSOF(keys) && !code; i++) {
                        json_t *v = json_object_get(root, keys[i]);
                        if (!json_is_string(v) || isempty(json_string_value(v)))
                                continue;
                        r = error_code_clean(json_string_value(v), &code);
                        if (r < 0)
                                return r;
                }
        }

        if (root) {
                static const char *const keys[] = { "message", "Message" };
                for (size_t i = 0; i < ELEMENTSOF(keys) && !message; i++) {
                        json_t *v = json_object_get(root, keys[i]);
                        if (!json_is_string(v))
                                continue;
                        s = json_string_value(v);
                        message = connect_message_sanitize(s, strlen(s));
                }
        } else if (len > 0) {
                /* Not JSON (a proxy's HTML page, plain text): the body is
                 * the message, as botocore does. */
                message = connect_message_sanitize(body, len);
        }

        connect_error_clear(ret);
        ret->kind = connect_classify_error(http_status, code, message);
        ret->http_status = http_status;
        ret->code = TAKE_PTR(code);
        ret->message = TAKE_PTR(message);
        return 0;
}

static int parse_tags(json_t *tags, struct connect_tag **ret, size_t *ret_n) {
        struct connect_tag *t = NULL;
        size_t n = 0;
        const char *key;
        json_t *v;

        if (!tags || json_is_null(tags)) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (!json_is_object(tags))
                return -EBADMSG;
        if (json_object_size(tags) > 0) {
                t = calloc(json_object_size(tags), sizeof(*t));
                if (!t)
                        return -ENOMEM;
        }
        json_object_foreach(tags, key, v) {
                int r = 0;
                if (!json_is_string(v))
                        r = -EBADMSG;
                else {
                        t[n].key = strdup(key);
                        t[n].value = strdup(json_string_value(v));
                        n++;
                        if (!t[n - 1].key || !t[n - 1].value)
                                r = -ENOMEM;
                }
                if (r < 0) {
                        for (size_t i = 0; i < n; i++) {
                                free(t[i].key);
                                free(t[i].value);
                        }
                        free(t);
                        return r;
                }
        }
        *ret = t;
        *ret_n = n;
        return 0;
}

/* Fills n from a PhoneNumberSummary-like object (ListPhoneNumbersSummary
 * or ClaimedPhoneNumberSummary). PhoneNumberId and PhoneNumber are
 * required: a number without them cannot be acted on. */
static int parse_number(json_t *o, bool described, struct connect_number *ret) {
        struct connect_number n = {};
        int r;

        if (!json_is_object(o))
                return -EBADMSG;

        struct {
                const char *key;
                char **field;
        } fields[] = {
                { "PhoneNumberId", &n.id },
                { "PhoneNumberArn", &n.arn },
                { "PhoneNumber", &n.phone_number },
                { "PhoneNumberCountryCode", &n.country },
                { "PhoneNumberType", &n.type },
                { "TargetArn", &n.target_arn },
                { "InstanceId", &n.instance_id },
                { "PhoneNumberDescription", &n.description },
        };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                r = json_member_dup(o, fields[i].key, fields[i].field);
                if (r < 0)
                        goto fail;
        }
        r = -EBADMSG;
        if (isempty(n.id) || isempty(n.phone_number))
                goto fail;

        if (described) {
                n.described = true;
                r = parse_tags(json_object_get(o, "Tags"), &n.tags, &n.n_tags);
                if (r < 0)
                        goto fail;
                json_t *st = json_object_get(o, "PhoneNumberStatus");
                if (st && !json_is_null(st)) {
                        const char *status;
                        r = -EBADMSG;
                        if (!json_is_object(st))
                                goto fail;
                        r = json_member_string(st, "Status", &status);
                        if (r < 0)
                                goto fail;
                        if (streq_ptr(status, "CLAIMED"))
                                n.status = CONNECT_STATUS_CLAIMED;
                        else if (streq_ptr(status, "IN_PROGRESS"))
                                n.status = CONNECT_STATUS_IN_PROGRESS;
                        else if (streq_ptr(status, "FAILED"))
                                n.status = CONNECT_STATUS_FAILED;
                        r = json_member_dup(st, "Message", &n.status_message);
                        if (r < 0)
                                goto fail;
                }
        }
        *ret = n;
        return 0;

fail:
        connect_number_clear(&n);
        return r;
}

/* root[key], an array of objects or absent (or null): *ret_arr is it, or
 * NULL, and *ret_list a zeroed array of as many elem_size items (NULL when
 * empty), for the caller to fill. */
static int member_array(json_t *root, const char *key, size_t elem_size, json_t **ret_arr, void **ret_list) {
        json_t *arr = json_object_get(root, key);
        void *list = NULL;
        if (!arr || json_is_null(arr)) {
                *ret_arr = NULL;
                *ret_list = NULL;
                return 0;
        }
        if (!json_is_array(arr))
                return -EBADMSG;
        if (json_array_size(arr) > 0) {
                list = calloc(json_array_size(arr), elem_size);
                if (!list)
                        return -ENOMEM;
        }
        *ret_arr = arr;
        *ret_list = list;
        return 0;
}

int connect_parse_list(const char *body, size_t len, struct connect_number **numbers, size_t *n,
                       char **ret_next_token) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        struct connect_number *list = NULL;
        size_t count = 0;
        char *next = NULL;
        json_t *arr, *item;
        size_t i;
        int r;

        if (!numbers || !n)
                return -EINVAL;
        root = json_parse_object(body, len);
        if (!root)
                return -EBADMSG;

        r = member_array(root, "ListPhoneNumbersSummaryList", sizeof(*list), &arr, (void **) &list);
        if (r < 0)
                return r;
        json_array_foreach(arr, i, item) {
                r = parse_number(item, false, &list[count]);
                if (r < 0)
                        goto fail;
                count++;
        }

        r = json_member_dup(root, "NextToken", &next);
        if (r < 0)
                goto fail;
        if (next && !*next)
                next = mfree(next); /* "" is no token: following it would loop */

        if (ret_next_token)
                *ret_next_token = next;
        else
                free(next);
        *numbers = list;
        *n = count;
        return 0;

fail:
        connect_numbers_free(list, count);
        free(next);
        return r;
}

int connect_parse_describe(const char *body, size_t len, struct connect_number *ret) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        if (!ret)
                return -EINVAL;
        root = json_parse_object(body, len);
        if (!root)
                return -EBADMSG;
        return parse_number(json_object_get(root, "ClaimedPhoneNumberSummary"), true, ret);
}

int connect_parse_search(const char *body, size_t len, struct connect_available **ret, size_t *n) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        struct connect_available *list = NULL;
        size_t count = 0, i;
        json_t *arr, *item;
        int r = 0;

        if (!ret || !n)
                return -EINVAL;
        root = json_parse_object(body, len);
        if (!root)
                return -EBADMSG;

        r = member_array(root, "AvailableNumbersList", sizeof(*list), &arr, (void **) &list);
        if (r < 0)
                return r;
        json_array_foreach(arr, i, item) {
                struct connect_available *a = &list[count];
                r = -EBADMSG;
                if (!json_is_object(item))
                        break;
                count++; /* freed on failure from here on */
                if ((r = json_member_dup(item, "PhoneNumber", &a->phone_number)) < 0 ||
                    (r = json_member_dup(item, "PhoneNumberCountryCode", &a->country)) < 0 ||
                    (r = json_member_dup(item, "PhoneNumberType", &a->type)) < 0)
                        break;
                r = isempty(a->phone_number) ? -EBADMSG : 0;
                if (r < 0)
                        break;
        }
        if (r < 0) {
                connect_available_free(list, count);
                return r;
        }
        *ret = list;
        *n = count;
        return 0;
}

int connect_parse_claim(const char *body, size_t len, char **ret_id, char **ret_arn) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_(freep) char *id = NULL, *arn = NULL;
        int r;

        if (!ret_id)
                return -EINVAL;
        root = json_parse_object(body, len);
        if (!root)
                return -EBADMSG;
        r = json_member_dup(root, "PhoneNumberId", &id);
        if (r < 0)
                return r;
        r = json_member_dup(root, "PhoneNumberArn", &arn);
        if (r < 0)
                return r;
        if (isempty(id))
                return -EBADMSG;
        *ret_id = TAKE_PTR(id);
        if (ret_arn)
                *ret_arn = TAKE_PTR(arn);
        return 0;
}

/* ---- Request building (pure) ---- */

void connect_request_clear(struct connect_request *r) {
        if (!r)
                return;
        free(r->path);
        free(r->query);
        free(r->body);
        *r = (struct connect_request){};
}

static int json_set_string(json_t *o, const char *key, const char *value) {
        json_t *v = json_string(value); /* NULL also for invalid UTF-8 */
        if (!v)
                return -EINVAL;
        return json_object_set_new(o, key, v) < 0 ? -ENOMEM : 0;
}

static int json_set_tags(json_t *o, const char *key, const struct connect_tag *tags, size_t n) {
        json_t *m = json_object();
        int r;
        if (!m)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!tags[i].key || !tags[i].value) {
                        json_decref(m);
                        return -EINVAL;
                }
                r = json_set_string(m, tags[i].key, tags[i].value);
                if (r < 0) {
                        json_decref(m);
                        return r;
                }
        }
        return json_object_set_new(o, key, m) < 0 ? -ENOMEM : 0;
}

/* "/prefix/" + encoded label + suffix. */
static char *path_with_label(const char *prefix, const char *label, const char *suffix) {
        _cleanup_(freep) char *enc = aws_uri_encode(label, false);
        if (!enc)
                return NULL;
        return strprintf("%s%s%s", prefix, enc, suffix);
}

int connect_build_request(enum connect_op op, const struct connect_args *a, struct connect_request *ret) {
        _cleanup_(json_decrefp) json_t *body = NULL;
        _cleanup_(freep) char *path = NULL, *query = NULL;
        const char *method = NULL;
        int r;

        if (!a || !ret)
                return -EINVAL;

        switch (op) {
        case CONNECT_OP_CLAIM:
                /* POST /phone-number/claim */
                if (isempty(a->target_arn) || isempty(a->phone_number))
                        return -EINVAL;
                method = "POST";
                path = strdup("/phone-number/claim");
                body = json_object();
                if (!path || !body)
                        return -ENOMEM;
                if ((r = json_set_string(body, "TargetArn", a->target_arn)) < 0 ||
                    (r = json_set_string(body, "PhoneNumber", a->phone_number)) < 0)
                        return r;
                if (a->description && (r = json_set_string(body, "PhoneNumberDescription", a->description)) < 0)
                        return r;
                if (a->n_tags > 0 && (r = json_set_tags(body, "Tags", a->tags, a->n_tags)) < 0)
                        return r;
                if (a->client_token && (r = json_set_string(body, "ClientToken", a->client_token)) < 0)
                        return r;
                break;

        case CONNECT_OP_DESCRIBE:
                /* GET /phone-number/{PhoneNumberId} */
                if (isempty(a->phone_number_id))
                        return -EINVAL;
                method = "GET";
                path = path_with_label("/phone-number/", a->phone_number_id, "");
                if (!path)
                        return -ENOMEM;
                break;

        case CONNECT_OP_LIST:
                /* POST /phone-number/list */
                if (isempty(a->target_arn))
                        return -EINVAL;
                method = "POST";
                path = strdup("/phone-number/list");
                body = json_object();
                if (!path || !body)
                        return -ENOMEM;
                if ((r = json_set_string(body, "TargetArn", a->target_arn)) < 0)
                        return r;
                if (json_object_set_new(body, "MaxResults", json_integer(CONNECT_LIST_PAGE_SIZE)) < 0)
                        return -ENOMEM;
                if (a->next_token && (r = json_set_string(body, "NextToken", a->next_token)) < 0)
                        return r;
                break;

        case CONNECT_OP_SEARCH: {
                /* POST /phone-number/search-available; MaxResults 1..10 */
                unsigned max = a->max_results;
                if (max == 0 || max > CONNECT_SEARCH_MAX_RESULTS)
                        max = CONNECT_SEARCH_MAX_RESULTS;
                if (isempty(a->target_arn) || isempty(a->country) || isempty(a->type))
                        return -EINVAL;
                method = "POST";
                path = strdup("/phone-number/search-available");
                body = json_object();
                if (!path || !body)
                        return -ENOMEM;
                if ((r = json_set_string(body, "TargetArn", a->target_arn)) < 0 ||
                    (r = json_set_string(body, "PhoneNumberCountryCode", a->country)) < 0 ||
                    (r = json_set_string(body, "PhoneNumberType", a->type)) < 0)
                        return r;
                if (!isempty(a->prefix)) {
                        /* The prefix always goes with its '+': without it Connect
                         * matches anywhere in the number, not at its start. */
                        _cleanup_(freep) char *p = a->prefix[0] == '+' ? strdup(a->prefix) : strprintf("+%s", a->prefix);
                        if (!p)
                                return -ENOMEM;
                        if ((r = json_set_string(body, "PhoneNumberPrefix", p)) < 0)
                                return r;
                }
                if (json_object_set_new(body, "MaxResults", json_integer(max)) < 0)
                        return -ENOMEM;
                break;
        }

        case CONNECT_OP_RELEASE:
                /* DELETE /phone-number/{PhoneNumberId}?clientToken=... */
                if (isempty(a->phone_number_id))
                        return -EINVAL;
                method = "DELETE";
                path = path_with_label("/phone-number/", a->phone_number_id, "");
                if (!path)
                        return -ENOMEM;
                if (a->client_token) {
                        _cleanup_(freep) char *enc = aws_uri_encode(a->client_token, false);
                        if (!enc)
                                return -ENOMEM;
                        query = strprintf("clientToken=%s", enc);
                        if (!query)
                                return -ENOMEM;
                }
                break;

        case CONNECT_OP_UPDATE_METADATA:
                /* PUT /phone-number/{PhoneNumberId}/metadata */
                if (isempty(a->phone_number_id) || !a->description)
                        return -EINVAL;
                method = "PUT";
                path = path_with_label("/phone-number/", a->phone_number_id, "/metadata");
                body = json_object();
                if (!path || !body)
                        return -ENOMEM;
                if ((r = json_set_string(body, "PhoneNumberDescription", a->description)) < 0)
                        return r;
                if (a->client_token && (r = json_set_string(body, "ClientToken", a->client_token)) < 0)
                        return r;
                break;

        case CONNECT_OP_UPDATE_NUMBER:
                /* PUT /phone-number/{PhoneNumberId} {"TargetArn", "ClientToken"}: moves
                 * the number; it runs IN_PROGRESS like a claim. */
                if (isempty(a->phone_number_id) || isempty(a->target_arn))
                        return -EINVAL;
                method = "PUT";
                path = path_with_label("/phone-number/", a->phone_number_id, "");
                body = json_object();
                if (!path || !body)
                        return -ENOMEM;
                if ((r = json_set_string(body, "TargetArn", a->target_arn)) < 0)
                        return r;
                if (a->client_token && (r = json_set_string(body, "ClientToken", a->client_token)) < 0)
                        return r;
                break;

        case CONNECT_OP_ASSOCIATE_FLOW:
                /* PUT /phone-number/{PhoneNumberId}/contact-flow */
                if (isempty(a->phone_number_id) || isempty(a->instance_id) || isempty(a->contact_flow_id))
                        return -EINVAL;
                method = "PUT";
                path = path_with_label("/phone-number/", a->phone_number_id, "/contact-flow");
                body = json_object();
                if (!path || !body)
                        return -ENOMEM;
                if ((r = json_set_string(body, "InstanceId", a->instance_id)) < 0 ||
                    (r = json_set_string(body, "ContactFlowId", a->contact_flow_id)) < 0)
                        return r;
                break;

        case CONNECT_OP_TAG:
                /* POST /tags/{resourceArn} {"tags": {...}}: lower-case */
                if (isempty(a->resource_arn) || a->n_tags == 0 || !a->tags)
                        return -EINVAL;
                method = "POST";
                path = path_with_label("/tags/", a->resource_arn, "");
                body = json_object();
                if (!path || !body)
                        return -ENOMEM;
                if ((r = json_set_tags(body, "tags", a->tags, a->n_tags)) < 0)
                        return r;
                break;

        case CONNECT_OP_UNTAG: {
                /* DELETE /tags/{resourceArn}?tagKeys=a&tagKeys=b */
                size_t len = 0, used = 0;
                if (isempty(a->resource_arn) || a->n_tag_keys == 0 || !a->tag_keys)
                        return -EINVAL;
                method = "DELETE";
                path = path_with_label("/tags/", a->resource_arn, "");
                if (!path)
                        return -ENOMEM;
                for (size_t i = 0; i < a->n_tag_keys; i++) {
                        if (isempty(a->tag_keys[i]))
                                return -EINVAL;
                        len += strlen("tagKeys=") + 3 * strlen(a->tag_keys[i]) + 1;
                }
                query = malloc(len + 1);
                if (!query)
                        return -ENOMEM;
                for (size_t i = 0; i < a->n_tag_keys; i++) {
                        _cleanup_(freep) char *enc = aws_uri_encode(a->tag_keys[i], false);
                        if (!enc)
                                return -ENOMEM;
                        int k = snprintf(query + used, len + 1 - used, "%stagKeys=%s", i > 0 ? "&" : "", enc);
                        if (k < 0 || (size_t) k >= len + 1 - used)
                                return -EINVAL;
                        used += (size_t) k;
                }
                break;
        }

        default:
                return -EINVAL;
        }

        char *text = NULL;
        if (body) {
                /* Insertion order, compact: the exact bytes signed and sent. */
                text = json_dumps(body, JSON_COMPACT);
                if (!text)
                        return -ENOMEM;
        }

        connect_request_clear(ret);
        ret->method = method;
        ret->path = TAKE_PTR(path);
        ret->query = TAKE_PTR(query);
        ret->body = text;
        ret->body_len = text ? strlen(text) : 0;
        return 0;
}

/* ---- Endpoints ---- */

static bool has_prefix_case(const char *s, const char *prefix) {
        return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int connect_endpoint_split(const char *base_url, char **ret_host, char **ret_base_path) {
        const char *authority, *slash;
        _cleanup_(freep) char *host = NULL, *path = NULL;
        size_t n;

        if (!base_url || !has_prefix_case(base_url, "https://"))
                return -EINVAL;
        authority = base_url + strlen("https://");
        slash = strchr(authority, '/');
        n = slash ? (size_t) (slash - authority) : strlen(authority);
        if (n == 0 || memchr(authority, '@', n) || strcspn(authority, "?# \t\r\n") < (slash ? strlen(authority) : n))
                return -EINVAL;

        /* The default port is not part of the Host header (and so not of
         * what is signed), as the SDKs send it. */
        if (n > 4 && memcmp(authority + n - 4, ":443", 4) == 0 && authority[n - 5] != ':')
                n -= 4;
        host = strndup(authority, n);
        path = strdup(slash ? slash : "");
        if (!host || !path)
                return -ENOMEM;
        /* Base path without trailing '/': the operation path brings its own. */
        size_t l = strlen(path);
        while (l > 0 && path[l - 1] == '/')
                path[--l] = 0;

        if (ret_host)
                *ret_host = TAKE_PTR(host);
        if (ret_base_path)
                *ret_base_path = TAKE_PTR(path);
        return 0;
}

int connect_resolve_endpoint(const char *endpoint_url, char **ret) {
        const char *e = endpoint_url;
        _cleanup_(freep) char *copy = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        if (isempty(e))
                e = getenv("AWS_ENDPOINT_URL_CONNECT");
        if (isempty(e))
                e = getenv("AWS_ENDPOINT_URL");
        if (isempty(e)) {
                *ret = NULL;
                return 0;
        }
        /* TLS always: a plain http:// endpoint is refused here
         * rather than by every request. */
        if (!has_prefix_case(e, "https://"))
                return has_prefix_case(e, "http://") || strstr(e, "://") ? -EPROTONOSUPPORT : -EINVAL;

        copy = strdup(e);
        if (!copy)
                return -ENOMEM;
        size_t l = strlen(copy);
        while (l > strlen("https://") && copy[l - 1] == '/')
                copy[--l] = 0;
        r = connect_endpoint_split(copy, NULL, NULL);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(copy);
        return 0;
}

bool connect_region_is_valid(const char *region) {
        if (isempty(region) || strlen(region) > 64)
                return false;
        for (const char *p = region; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

/* ---- An order-independent digest of a LIST answer ---- */

static const char *skip_ws(const char *p, const char *end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
        return p;
}

/* p at '"': returns the byte after the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *end) {
        for (p++; p < end; p++) {
                if (*p == '\\') {
                        p++;
                        continue;
                }
                if (*p == '"')
                        return p + 1;
        }
        return NULL;
}

/* Skips one JSON value (no validation beyond nesting and strings: the
 * digest only has to tell answers apart, and a malformed body is parsed
 * and refused later). Returns the byte after it, or NULL. */
static const char *skip_value(const char *p, const char *end) {
        size_t depth = 0;

        p = skip_ws(p, end);
        if (p >= end)
                return NULL;
        if (*p != '{' && *p != '[') {
                if (*p == '"')
                        return skip_string(p, end);
                const char *s = p;
                while (p < end && !strchr(",}] \t\n\r", *p))
                        p++;
                return p > s ? p : NULL;
        }
        for (; p < end; p++) {
                if (*p == '"') {
                        p = skip_string(p, end);
                        if (!p)
                                return NULL;
                        p--;
                } else if (*p == '{' || *p == '[')
                        depth++;
                else if (*p == '}' || *p == ']') {
                        if (--depth == 0)
                                return p + 1;
                }
        }
        return NULL;
}

/* Adds a SHA-256 of [s, e) into sum, lane by lane: a sum commutes (the
 * order of the parts does not matter) and, unlike XOR, does not cancel a
 * part that appears twice. */
static void digest_add(uint64_t sum[static 4], const char *s, const char *e) {
        uint8_t d[32];

        sha256(s, (size_t) (e - s), d);
        for (size_t i = 0; i < 4; i++) {
                uint64_t v;
                memcpy(&v, d + 8 * i, sizeof v);
                sum[i] += v;
        }
}

int connect_list_digest(const char *body, size_t len, uint8_t ret[static 32]) {
        static const char key[] = "\"ListPhoneNumbersSummaryList\"";
        const char *p = body, *end = body + len;
        uint64_t entries[4] = {}, members[4] = {}, counts[2] = {};
        uint8_t buf[sizeof entries + sizeof members + sizeof counts];

        if (!body)
                return -EINVAL;
        p = skip_ws(p, end);
        if (p >= end || *p != '{')
                return -EBADMSG;
        p = skip_ws(p + 1, end);
        if (p < end && *p == '}')
                p++;
        else
                for (;;) {
                        const char *m = p, *k;
                        if (p >= end || *p != '"' || !(k = skip_string(p, end)))
                                return -EBADMSG;
                        p = skip_ws(k, end);
                        if (p >= end || *p != ':')
                                return -EBADMSG;
                        p = skip_ws(p + 1, end);
                        if ((size_t) (k - m) == strlen(key) && memcmp(m, key, strlen(key)) == 0 && p < end &&
                            *p == '[') {
                                /* The list: each entry's text on its own, in any order. */
                                p = skip_ws(p + 1, end);
                                if (p < end && *p == ']')
                                        p++;
                                else
                                        for (;;) {
                                                const char *s = p, *e = skip_value(p, end);
                                                if (!e)
                                                        return -EBADMSG;
                                                digest_add(entries, s, e);
                                                counts[0]++;
                                                p = skip_ws(e, end);
                                                if (p < end && *p == ',') {
                                                        p = skip_ws(p + 1, end);
                                                        continue;
                                                }
                                                if (p < end && *p == ']') {
                                                        p++;
                                                        break;
                                                }
                                                return -EBADMSG;
                                        }
                                /* The key stands for the list in the members' sum. */
                                digest_add(members, m, k);
                        } else {
                                const char *e = skip_value(p, end);
                                if (!e)
                                        return -EBADMSG;
                                digest_add(members, m, e);
                                p = e;
                        }
                        counts[1]++;
                        p = skip_ws(p, end);
                        if (p < end && *p == ',') {
                                p = skip_ws(p + 1, end);
                                continue;
                        }
                        if (p < end && *p == '}') {
                                p++;
                                break;
                        }
                        return -EBADMSG;
                }
        if (skip_ws(p, end) != end)
                return -EBADMSG;

        memcpy(buf, entries, sizeof entries);
        memcpy(buf + sizeof entries, members, sizeof members);
        memcpy(buf + sizeof entries + sizeof members, counts, sizeof counts);
        sha256(buf, sizeof buf, ret);
        return 0;
}
