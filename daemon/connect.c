/* connect.c: the Amazon Connect operations the daemon uses, as
 * asynchronous calls on sd-event. A call is built once (method, path,
 * query, JSON body), waits in the FIFO of its (region, operation) token
 * bucket, is signed with SigV4 at every attempt and sent through http.c;
 * throttling and transient failures are retried as the SDK "standard"
 * retry mode does (CONNECT-API.md §8), each retry going back through the
 * pacing queue with the same bytes (same ClientToken). The callback sees
 * only the final outcome.
 *
 * Owns: wire formats (paths, members, encodings, CONNECT-API.md §4), error
 * parsing and classification (§2, SPEC "What a pass does" 6), pacing and
 * retries. JSON (jansson) never leaves this file. Must not: log headers,
 * bodies or anything secret (one debug line per HTTP attempt with
 * operation, request id, error code, status and attempt), block (except
 * inside credentials_get(), which is bounded), or decide what an error
 * means for a pass. */
#include "connect.h"

#include <jansson.h>
#include <stdio.h>
#include <strings.h>

#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/pacing.h"
#include "aws/sigv4.h"
#include "log.h"

#define CONNECT_DEFAULT_RATE 2.0
#define CONNECT_DEFAULT_BURST 5.0
#define CONNECT_DEFAULT_MAX_ATTEMPTS 3U
#define CONNECT_MAX_ATTEMPTS_LIMIT 100U
#define CONNECT_LIST_PAGE_SIZE 1000
#define CONNECT_SEARCH_MAX_RESULTS 10U
#define CONNECT_MAX_PAGES 10000U
/* Error messages come from the network; AWS's signature-mismatch text
 * continues after a blank line with the canonical request, which holds the
 * session token: only the first line is kept, and not too much of it. */
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
                return true;
        default:
                return false;
        }
}

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
                [CONNECT_ERROR_OTHER] = "other",
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

static void connect_numbers_free(struct connect_number *numbers, size_t n) {
        for (size_t i = 0; i < n; i++)
                connect_number_clear(&numbers[i]);
        free(numbers);
}

static void connect_available_free(struct connect_available *a, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(a[i].phone_number);
                free(a[i].country);
                free(a[i].type);
        }
        free(a);
}

/* ---- Classification (pure) ---- */

bool connect_is_quota_refusal(const char *code, const char *message) {
        if (streq_ptr(code, "ServiceQuotaExceededException"))
                return true;
        if (!message)
                return false;
        return strcasestr(message, "limit") &&
               (strcasestr(message, "phone number") || strcasestr(message, "claimed numbers"));
}

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
         * quota refusal, without one it is throttling (SPEC). */
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
static char *message_sanitize(const char *s, size_t len) {
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
                        message = message_sanitize(s, strlen(s));
                }
        } else if (len > 0) {
                /* Not JSON (a proxy's HTML page, plain text): the body is
                 * the message, as botocore does. */
                message = message_sanitize(body, len);
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
                /* POST /phone-number/claim (CONNECT-API.md §4.1) */
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
                /* GET /phone-number/{PhoneNumberId} (§4.2) */
                if (isempty(a->phone_number_id))
                        return -EINVAL;
                method = "GET";
                path = path_with_label("/phone-number/", a->phone_number_id, "");
                if (!path)
                        return -ENOMEM;
                break;

        case CONNECT_OP_LIST:
                /* POST /phone-number/list (§4.3) */
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
                /* POST /phone-number/search-available (§4.4); MaxResults 1..10 */
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
                        /* SPEC: the prefix is always sent with its '+'. */
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
                /* DELETE /phone-number/{PhoneNumberId}?clientToken=... (§4.5) */
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
                /* PUT /phone-number/{PhoneNumberId}/metadata (§4.7) */
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

        case CONNECT_OP_ASSOCIATE_FLOW:
                /* PUT /phone-number/{PhoneNumberId}/contact-flow (§4.8) */
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
                /* POST /tags/{resourceArn} {"tags": {...}}: lower-case (§4.10) */
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
                /* DELETE /tags/{resourceArn}?tagKeys=a&tagKeys=b (§4.10) */
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
        /* TLS always (SPEC): a plain http:// endpoint is refused here
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

static bool region_is_valid(const char *region) {
        if (isempty(region) || strlen(region) > 64)
                return false;
        for (const char *p = region; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

/* ---- The client ---- */

struct connect_call;

/* Pacing for one (region, operation): FIFO of calls waiting for a token. */
struct connect_bucket {
        struct connect_client *client;
        char *region;
        enum connect_op op;
        struct token_bucket tb;
        struct connect_call *head, *tail;  /* waiting calls, FIFO */
        sd_event_source *timer;            /* CLOCK_BOOTTIME; on only while calls wait */
        struct connect_bucket *next;
};

enum call_state {
        CALL_QUEUED,   /* in its bucket's FIFO */
        CALL_BACKOFF,  /* waiting out a retry delay */
        CALL_RUNNING,  /* an HTTP request is in flight (or being submitted) */
        CALL_ACTIVE,   /* its response is being handled: in no queue */
};

struct connect_call {
        struct connect_client *client;
        enum connect_op op;
        char *region;
        struct connect_request req;        /* the bytes of the current request; retries reuse them */
        char *target_arn;                  /* LIST: for the next pages */
        char *next_token;                  /* LIST: the NextToken the current request sends, or NULL */
        unsigned pages;                    /* LIST: pages received */
        bool have_known_digest;            /* LIST: known_digest given */
        uint8_t known_digest[CONNECT_LIST_DIGEST_LEN]; /* LIST: SHA-256 of the last single-page answer */
        unsigned request_attempts;         /* attempts of the current request (page) */
        unsigned last_retry_cost;          /* retry quota paid by the last retry of the current request */
        enum call_state state;
        struct connect_bucket *bucket;
        struct connect_call *q_prev, *q_next; /* bucket FIFO */
        struct connect_call *prev, *next;  /* client's list of live calls */
        sd_event_source *backoff;          /* CALL_BACKOFF */
        connect_callback_t cb;
        void *userdata;
        struct connect_result result;      /* accumulates (LIST pages), then handed to cb */
};

struct connect_client {
        sd_event *event;
        struct http_client *http;
        struct credentials_provider *creds;
        char *endpoint;                    /* resolved base URL, or NULL: per-region default */
        double rate_default;               /* req/s */
        double rate_burst;                 /* tokens */
        double rates[_CONNECT_OP_MAX];     /* per-operation req/s, 0 = rate_default */
        unsigned max_attempts;             /* per request, first try included */
        bool read_only;
        struct retry_quota quota;          /* SDK retry quota, per client */
        struct connect_bucket *buckets;
        struct connect_call *calls;        /* queued, backing off or running */
        size_t n_calls;
        struct connect_stats stats;
        unsigned dispatching;              /* depth of frames that may run user callbacks */
        bool freeing;                      /* connect_client_free() called: destroy when dispatching == 0 */
};

static void connect_client_destroy(struct connect_client *c);

static void dispatch_begin(struct connect_client *c) {
        c->dispatching++;
}

static void dispatch_end(struct connect_client *c) {
        if (--c->dispatching == 0 && c->freeing)
                connect_client_destroy(c);
}

static void connect_result_clear(struct connect_result *res) {
        connect_error_clear(&res->error);
        free(res->request_id);
        connect_numbers_free(res->numbers, res->n_numbers);
        connect_available_free(res->available, res->n_available);
        free(res->phone_number_id);
        free(res->phone_number_arn);
        *res = (struct connect_result){};
}

static void call_free(struct connect_call *call) {
        if (!call)
                return;
        sd_event_source_disable_unref(call->backoff);
        connect_request_clear(&call->req);
        free(call->region);
        free(call->target_arn);
        free(call->next_token);
        connect_result_clear(&call->result);
        free(call);
}

static void bucket_queue_remove(struct connect_bucket *b, struct connect_call *call) {
        if (call->q_prev)
                call->q_prev->q_next = call->q_next;
        else
                b->head = call->q_next;
        if (call->q_next)
                call->q_next->q_prev = call->q_prev;
        else
                b->tail = call->q_prev;
        call->q_prev = call->q_next = NULL;
}

/* Removes call from every list and timer of the client. */
static void call_unlink(struct connect_call *call) {
        struct connect_client *c = call->client;

        if (call->state == CALL_QUEUED && call->bucket)
                bucket_queue_remove(call->bucket, call);
        call->backoff = sd_event_source_disable_unref(call->backoff);
        if (call->prev)
                call->prev->next = call->next;
        else if (c->calls == call)
                c->calls = call->next;
        if (call->next)
                call->next->prev = call->prev;
        call->prev = call->next = NULL;
        if (c->n_calls > 0)
                c->n_calls--;
}

/* Hands the outcome of an unlinked call to its callback, then frees it. */
static void call_deliver(struct connect_call *call) {
        struct connect_result *res = &call->result;

        res->op = call->op;
        if (res->r < 0) {
                /* A failed LIST must not look like a shorter list: no
                 * partial pages reach the caller. */
                connect_numbers_free(res->numbers, res->n_numbers);
                res->numbers = NULL;
                res->n_numbers = 0;
                connect_available_free(res->available, res->n_available);
                res->available = NULL;
                res->n_available = 0;
                res->phone_number_id = mfree(res->phone_number_id);
                res->phone_number_arn = mfree(res->phone_number_arn);
                res->have_digest = false;
                res->unchanged = false;
        }
        call->cb(&call->result, call->userdata);
        call_free(call);
}

/* Unlinks the call, hands the outcome to the callback, frees the call. */
static void call_finish(struct connect_call *call) {
        call_unlink(call);
        call_deliver(call);
}

static void call_fail(struct connect_call *call, int r, enum connect_error_kind kind, const char *message) {
        connect_error_clear(&call->result.error);
        call->result.r = r < 0 ? r : -EIO;
        call->result.error.kind = kind;
        call->result.error.message = message ? message_sanitize(message, strlen(message)) : NULL;
        call_finish(call);
}

/* Paced a little under the configured rate: AWS's own bucket and ours are
 * not in phase, and network jitter bunches requests up, so pacing at the
 * exact limit still earns a 429 now and then (the bench saw 1 list call in
 * 10). 5 % below it, a healthy run sees none. */
#define PACING_MARGIN 0.95

static double bucket_rate(const struct connect_client *c, enum connect_op op) {
        return (c->rates[op] > 0 ? c->rates[op] : c->rate_default) * PACING_MARGIN;
}

static int bucket_timer_cb(sd_event_source *s, uint64_t usec, void *userdata);

/* Arms the bucket's timer for when its first waiting call may go, or
 * turns it off when nobody waits (no timers while idle). */
static void bucket_schedule(struct connect_bucket *b) {
        usec_t now, wait;
        int r;

        if (!b->head) {
                (void) sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
                return;
        }
        now = clock_boottime_usec();
        wait = token_bucket_wait_usec(&b->tb, now);
        r = sd_event_source_set_time(b->timer, now + wait);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->timer, SD_EVENT_ONESHOT);
        if (r < 0)
                log_warning_errno(r, "Cannot arm the pacing timer for %s in %s", op_names[b->op], b->region);
}

static struct connect_bucket *bucket_get(struct connect_client *c, const char *region, enum connect_op op,
                                         int *ret_r) {
        struct connect_bucket *b;
        int r;

        for (b = c->buckets; b; b = b->next)
                if (b->op == op && streq(b->region, region))
                        return b;

        b = calloc(1, sizeof(*b));
        if (!b) {
                *ret_r = -ENOMEM;
                return NULL;
        }
        b->client = c;
        b->op = op;
        b->region = strdup(region);
        if (!b->region) {
                free(b);
                *ret_r = -ENOMEM;
                return NULL;
        }
        token_bucket_init(&b->tb, bucket_rate(c, op), c->rate_burst, clock_boottime_usec());
        r = sd_event_add_time(c->event, &b->timer, CLOCK_BOOTTIME, USEC_INFINITY, USEC_PER_MSEC, bucket_timer_cb, b);
        if (r >= 0)
                r = sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
        if (r < 0) {
                sd_event_source_disable_unref(b->timer);
                free(b->region);
                free(b);
                *ret_r = r;
                return NULL;
        }
        (void) sd_event_source_set_description(b->timer, "connect-pacing");
        b->next = c->buckets;
        c->buckets = b;
        return b;
}

static void bucket_free(struct connect_bucket *b) {
        sd_event_source_disable_unref(b->timer);
        free(b->region);
        free(b);
}

/* Appends call to its bucket's FIFO. Never runs a callback. */
static void call_enqueue(struct connect_call *call) {
        struct connect_bucket *b = call->bucket;

        call->state = CALL_QUEUED;
        call->q_next = NULL;
        call->q_prev = b->tail;
        if (b->tail)
                b->tail->q_next = call;
        else
                b->head = call;
        b->tail = call;
        /* Even with a token at hand the call starts from the timer, in
         * the event loop: connect_*() never runs a callback itself. */
        if (b->head == call)
                bucket_schedule(b);
}

static void call_start_attempt(struct connect_call *call);

static int bucket_timer_cb(_unused_ sd_event_source *s, _unused_ uint64_t usec, void *userdata) {
        struct connect_bucket *b = userdata;
        struct connect_client *c = b->client;

        dispatch_begin(c);
        while (b->head && !c->freeing) {
                struct connect_call *call;
                if (!token_bucket_take(&b->tb, clock_boottime_usec()))
                        break;
                call = b->head;
                bucket_queue_remove(b, call);
                call->state = CALL_RUNNING;
                call_start_attempt(call); /* may finish the call, and run user code */
        }
        if (!c->freeing)
                bucket_schedule(b);
        dispatch_end(c);
        return 0;
}

static int backoff_cb(_unused_ sd_event_source *s, _unused_ uint64_t usec, void *userdata) {
        struct connect_call *call = userdata;
        struct connect_client *c = call->client;

        dispatch_begin(c);
        call->backoff = sd_event_source_disable_unref(call->backoff);
        call_enqueue(call); /* a retry waits for a token like anyone else */
        dispatch_end(c);
        return 0;
}

static char *header_line(const char *name, const char *value) {
        return strprintf("%s: %s", name, value);
}

static void header_lines_free(char **l) {
        if (!l)
                return;
        /* Authorization and the session token leave no copy behind. */
        for (char **i = l; *i; i++)
                explicit_bzero(*i, strlen(*i));
        strv_free(l);
}
static void header_lines_freep(char ***l) {
        header_lines_free(*l);
}

static void http_done(int r, const struct http_response *resp, const char *error_text, void *userdata);

/* Builds URL and headers, signs, submits. On failure the call ends here. */
static void call_start_attempt(struct connect_call *call) {
        struct connect_client *c = call->client;
        _cleanup_(header_lines_freep) char **headers = NULL;
        _cleanup_(freep) char *base = NULL, *host = NULL, *base_path = NULL, *path = NULL, *url = NULL;
        _cleanup_(sigv4_signature_clear) struct sigv4_signature sig = {};
        const struct aws_credentials *creds = NULL;
        uint64_t now = clock_wall_sec();
        int r;

        r = credentials_get(c->creds, now, &creds);
        if (r < 0) {
                const char *why = credentials_provider_error(c->creds);
                call_fail(call, r, CONNECT_ERROR_AUTH, why ? why : "no AWS credentials found");
                return;
        }

        base = c->endpoint ? strdup(c->endpoint) : strprintf("https://connect.%s.amazonaws.com", call->region);
        if (!base) {
                call_fail(call, -ENOMEM, CONNECT_ERROR_OTHER, "out of memory");
                return;
        }
        r = connect_endpoint_split(base, &host, &base_path);
        if (r < 0) {
                call_fail(call, r, CONNECT_ERROR_OTHER, "invalid endpoint URL");
                return;
        }
        path = strprintf("%s%s", base_path, call->req.path);
        url = path ? strprintf("https://%s%s%s%s", host, path, call->req.query ? "?" : "",
                               call->req.query ?: "")
                   : NULL;
        if (!url) {
                call_fail(call, -ENOMEM, CONNECT_ERROR_OTHER, "out of memory");
                return;
        }

        struct sigv4_header sh[2] = {
                { "host", host },
                { "content-type", "application/json" },
        };
        struct sigv4_request sreq = {
                .method = call->req.method,
                .path = path,
                .query = call->req.query,
                .headers = sh,
                .n_headers = call->req.body ? 2 : 1,
                .body = call->req.body,
                .body_len = call->req.body_len,
        };
        r = sigv4_sign(&sreq, creds, call->region, "connect", now, true, &sig);
        if (r < 0) {
                call_fail(call, r, r == -ENOMEM ? CONNECT_ERROR_OTHER : CONNECT_ERROR_AUTH,
                          "cannot sign the request");
                return;
        }

        char *lines[6] = {};
        size_t n = 0;
        lines[n++] = header_line("Host", host);
        if (call->req.body)
                lines[n++] = header_line("Content-Type", "application/json");
        lines[n++] = header_line("X-Amz-Date", sig.amz_date);
        if (creds->session_token)
                lines[n++] = header_line("X-Amz-Security-Token", creds->session_token);
        lines[n++] = header_line("Authorization", sig.authorization);
        headers = calloc(n + 1, sizeof(char *));
        bool oom = !headers;
        for (size_t i = 0; i < n; i++) {
                if (!lines[i])
                        oom = true;
                if (headers)
                        headers[i] = lines[i];
                else if (lines[i]) {
                        explicit_bzero(lines[i], strlen(lines[i]));
                        free(lines[i]);
                }
        }
        if (oom) {
                call_fail(call, -ENOMEM, CONNECT_ERROR_OTHER, "out of memory");
                return;
        }

        struct http_request hreq = {
                .method = call->req.method,
                .url = url,
                .headers = headers,
                .body = call->req.body,
                .body_len = call->req.body_len,
        };
        r = http_submit(c->http, &hreq, http_done, call);
        if (r < 0) {
                call_fail(call, r, CONNECT_ERROR_OTHER, "cannot submit the HTTP request");
                return;
        }
        call->state = CALL_RUNNING;
        call->request_attempts++;
        call->result.attempts++;
        c->stats.calls[call->op]++;
}

static void log_attempt(const struct connect_call *call, long status, const char *request_id, const char *code,
                        int r) {
        char status_field[32], attempt_field[32];

        if (log_get_max_priority() < LOG_DEBUG)
                return;
        snprintf(status_field, sizeof status_field, "HTTP_STATUS=%ld", status);
        snprintf(attempt_field, sizeof attempt_field, "ATTEMPT=%u", call->request_attempts);
        const char *extra[] = { status_field, attempt_field, NULL };
        struct log_fields f = {
                .aws_operation = op_names[call->op],
                .aws_request_id = request_id,
                .aws_error_code = code,
                .extra = extra,
        };
        if (r < 0)
                log_fields(LOG_DEBUG, r, &f, "%s in %s, attempt %u", op_names[call->op], call->region,
                           call->request_attempts); /* log_fields() appends strerror(r) */
        else
                log_fields(LOG_DEBUG, 0, &f, "%s in %s, attempt %u: HTTP %ld%s%s", op_names[call->op],
                           call->region, call->request_attempts, status, code ? " " : "", code ?: "");
}

/* Parses a 2xx body into the result. LIST may ask for another page
 * (*ret_next_token). */
static int call_parse_success(struct connect_call *call, const struct http_response *resp, char **ret_next_token) {
        struct connect_result *res = &call->result;
        int r;

        *ret_next_token = NULL;
        switch (call->op) {
        case CONNECT_OP_LIST: {
                struct connect_number *page = NULL;
                uint8_t digest[CONNECT_LIST_DIGEST_LEN];
                bool have_digest = call->pages == 0;
                size_t n = 0;

                /* Only a first page without NextToken stands for the whole
                 * list, and only such answers get a digest: a body equal to
                 * known_digest has no NextToken either. */
                _Static_assert(CONNECT_LIST_DIGEST_LEN == 32, "a list digest is a SHA-256");
                if (have_digest)
                        sha256(resp->body, resp->body_len, digest);
                if (have_digest && call->have_known_digest &&
                    memcmp(digest, call->known_digest, sizeof(digest)) == 0) {
                        res->unchanged = true;
                        res->have_digest = true;
                        memcpy(res->digest, digest, sizeof(digest));
                        return 0;
                }
                r = connect_parse_list(resp->body, resp->body_len, &page, &n, ret_next_token);
                if (r < 0)
                        return r;
                if (n > 0) {
                        struct connect_number *all = reallocarray(res->numbers, res->n_numbers + n, sizeof(*all));
                        if (!all) {
                                connect_numbers_free(page, n);
                                *ret_next_token = mfree(*ret_next_token);
                                return -ENOMEM;
                        }
                        memcpy(all + res->n_numbers, page, n * sizeof(*page));
                        res->numbers = all;
                        res->n_numbers += n;
                }
                free(page);
                if (have_digest && !*ret_next_token) {
                        res->have_digest = true;
                        memcpy(res->digest, digest, sizeof(digest));
                }
                return 0;
        }
        case CONNECT_OP_DESCRIBE: {
                struct connect_number *num = calloc(1, sizeof(*num));
                if (!num)
                        return -ENOMEM;
                r = connect_parse_describe(resp->body, resp->body_len, num);
                if (r < 0) {
                        free(num);
                        return r;
                }
                connect_numbers_free(res->numbers, res->n_numbers);
                res->numbers = num;
                res->n_numbers = 1;
                return 0;
        }
        case CONNECT_OP_SEARCH: {
                struct connect_available *a = NULL;
                size_t n = 0;
                r = connect_parse_search(resp->body, resp->body_len, &a, &n);
                if (r < 0)
                        return r;
                connect_available_free(res->available, res->n_available);
                res->available = a;
                res->n_available = n;
                return 0;
        }
        case CONNECT_OP_CLAIM: {
                char *id = NULL, *arn = NULL;
                r = connect_parse_claim(resp->body, resp->body_len, &id, &arn);
                if (r < 0)
                        return r;
                free(res->phone_number_id);
                free(res->phone_number_arn);
                res->phone_number_id = id;
                res->phone_number_arn = arn;
                return 0;
        }
        default:
                /* No output shape: 200 with an empty (or ignorable) body. */
                return 0;
        }
}

/* Retries if the SDK standard mode allows: attempts left, quota paid.
 * Returns true when a retry was scheduled. */
static bool call_maybe_retry(struct connect_call *call, bool retryable, bool is_timeout) {
        struct connect_client *c = call->client;
        unsigned cost;
        int r;

        if (!retryable || c->freeing || call->request_attempts >= c->max_attempts)
                return false;
        cost = retry_quota_acquire(&c->quota, is_timeout);
        if (cost == 0)
                return false;

        usec_t delay = retry_backoff_usec(call->request_attempts, random_unit());
        r = sd_event_add_time_relative(c->event, &call->backoff, CLOCK_BOOTTIME, delay, USEC_PER_MSEC, backoff_cb,
                                       call);
        if (r < 0) {
                retry_quota_success(&c->quota, cost); /* give back what was not used */
                return false;
        }
        (void) sd_event_source_set_description(call->backoff, "connect-backoff");
        call->last_retry_cost = cost;
        call->state = CALL_BACKOFF;
        c->stats.retries++;
        return true;
}

static int error_kind_errno(enum connect_error_kind kind) {
        switch (kind) {
        case CONNECT_ERROR_THROTTLED:
                return -EAGAIN;
        case CONNECT_ERROR_NOT_FOUND:
                return -ENOENT;
        case CONNECT_ERROR_IN_USE:
                return -EBUSY;
        case CONNECT_ERROR_IDEMPOTENCY:
                return -EEXIST;
        case CONNECT_ERROR_QUOTA:
                return -EDQUOT;
        case CONNECT_ERROR_INVALID:
                return -EINVAL;
        case CONNECT_ERROR_ACCESS_DENIED:
                return -EACCES;
        case CONNECT_ERROR_AUTH:
                return -EPERM;
        case CONNECT_ERROR_TLS:
                return -EPROTO;
        default:
                return -EIO;
        }
}

/* LIST: the next page is a new request (new body, fresh attempts), as the
 * SDK paginators make it. */
static int call_next_page(struct connect_call *call, const char *token) {
        struct connect_request req = {};
        char *t;
        int r;

        t = strdup(token);
        if (!t)
                return -ENOMEM;
        r = connect_build_request(CONNECT_OP_LIST,
                                  &(struct connect_args){ .target_arn = call->target_arn, .next_token = token }, &req);
        if (r < 0) {
                free(t);
                return r;
        }
        connect_request_clear(&call->req);
        call->req = req;
        free(call->next_token);
        call->next_token = t;
        call->request_attempts = 0;
        call->last_retry_cost = 0;
        return 0;
}

static void http_done(int r, const struct http_response *resp, const char *error_text, void *userdata) {
        struct connect_call *call = userdata;
        struct connect_client *c = call->client;
        struct connect_result *res = &call->result;
        _cleanup_(freep) char *next_token = NULL;
        enum connect_error_kind kind;
        bool retryable = false, is_timeout = false;
        int rr;

        dispatch_begin(c);
        call->state = CALL_ACTIVE;

        free(res->request_id);
        res->request_id = resp && resp->request_id ? strdup(resp->request_id) : NULL;
        connect_error_clear(&res->error);

        if (r == -ECANCELED) {
                log_attempt(call, 0, NULL, NULL, r);
                call_fail(call, -ECANCELED, CONNECT_ERROR_OTHER, "cancelled");
                goto out;
        }

        if (r < 0) {
                /* Transport: no HTTP answer. */
                log_attempt(call, 0, NULL, NULL, r);
                if (r == -EPROTO)
                        kind = CONNECT_ERROR_TLS;
                else if (retry_is_transient_errno(r))
                        kind = CONNECT_ERROR_TRANSIENT;
                else
                        kind = CONNECT_ERROR_OTHER;
                retryable = kind == CONNECT_ERROR_TRANSIENT;
                is_timeout = r == -ETIMEDOUT;
                rr = r;
                res->error.kind = kind;
                res->error.message = error_text ? message_sanitize(error_text, strlen(error_text)) : NULL;
        } else if (resp->status >= 200 && resp->status <= 299) {
                log_attempt(call, resp->status, resp->request_id, NULL, 0);
                rr = call_parse_success(call, resp, &next_token);
                if (rr >= 0) {
                        retry_quota_success(&c->quota, call->last_retry_cost);
                        call->last_retry_cost = 0;
                        if (call->op == CONNECT_OP_LIST && next_token) {
                                if (streq_ptr(next_token, call->next_token)) {
                                        call_fail(call, -EBADMSG, CONNECT_ERROR_OTHER,
                                                  "ListPhoneNumbersV2 returned the same NextToken again");
                                        goto out;
                                }
                                if (++call->pages >= CONNECT_MAX_PAGES) {
                                        call_fail(call, -E2BIG, CONNECT_ERROR_OTHER, "too many pages");
                                        goto out;
                                }
                                rr = call_next_page(call, next_token);
                                if (rr < 0) {
                                        call_fail(call, rr, CONNECT_ERROR_OTHER, "cannot build the next page request");
                                        goto out;
                                }
                                call_enqueue(call);
                                goto out;
                        }
                        res->r = 0;
                        call_finish(call);
                        goto out;
                }
                /* A 2xx that does not parse (truncated by a proxy, a
                 * half-written reply): transient. A retried claim sends
                 * the same ClientToken, so it is safe. */
                kind = CONNECT_ERROR_TRANSIENT;
                retryable = rr == -EBADMSG;
                res->error.kind = rr == -EBADMSG ? kind : CONNECT_ERROR_OTHER;
                res->error.http_status = resp->status;
                res->error.message = strdup(rr == -EBADMSG ? "malformed response body" : "out of memory");
        } else {
                rr = connect_parse_error(resp->status, resp->error_type, resp->body, resp->body_len, &res->error);
                if (rr < 0) {
                        log_attempt(call, resp->status, resp->request_id, NULL, 0);
                        call_fail(call, rr, CONNECT_ERROR_OTHER, "out of memory");
                        goto out;
                }
                log_attempt(call, resp->status, resp->request_id, res->error.code, 0);
                kind = res->error.kind;
                if (resp->status == 429)
                        c->stats.throttled[call->op]++;
                retryable = kind == CONNECT_ERROR_THROTTLED || retry_is_transient_status(resp->status) ||
                            retry_is_transient_code(res->error.code);
                if (kind == CONNECT_ERROR_QUOTA)
                        retryable = false;
                rr = error_kind_errno(kind);
        }

        if (call_maybe_retry(call, retryable, is_timeout))
                goto out;

        if (resp && resp->request_id && !res->error.request_id)
                res->error.request_id = strdup(resp->request_id);
        res->r = rr < 0 ? rr : -EIO;
        call_finish(call);
out:
        dispatch_end(c);
}

/* ---- Client lifetime and configuration ---- */

static int max_attempts_from(unsigned option, unsigned *ret) {
        const char *e = getenv("AWS_MAX_ATTEMPTS");
        unsigned v = option > 0 ? option : CONNECT_DEFAULT_MAX_ATTEMPTS;

        if (!isempty(e)) {
                char *end = NULL;
                errno = 0;
                unsigned long l = strtoul(e, &end, 10);
                if (errno != 0 || !end || *end || l < 1 || l > CONNECT_MAX_ATTEMPTS_LIMIT || *e == '-' || *e == '+')
                        return -EINVAL;
                v = (unsigned) l;
        }
        *ret = MIN(v, CONNECT_MAX_ATTEMPTS_LIMIT);
        return 0;
}

static double rate_or(double v, double def) {
        return v > 0 ? v : def;
}

/* Everything an options struct decides, validated before anything
 * changes (a reload either applies fully or not at all). */
struct client_settings {
        char *endpoint;
        char *ca_file;
        unsigned max_attempts;
};

static void client_settings_clear(struct client_settings *s) {
        free(s->endpoint);
        free(s->ca_file);
}

static int client_settings_from(const struct connect_client_options *o, struct client_settings *ret) {
        struct client_settings s = {};
        const char *ca;
        int r;

        r = connect_resolve_endpoint(o->endpoint_url, &s.endpoint);
        if (r < 0)
                return r;
        ca = !isempty(o->ca_file) ? o->ca_file : getenv("AWS_CA_BUNDLE");
        if (!isempty(ca)) {
                s.ca_file = strdup(ca);
                if (!s.ca_file) {
                        client_settings_clear(&s);
                        return -ENOMEM;
                }
        }
        r = max_attempts_from(o->max_attempts, &s.max_attempts);
        if (r < 0) {
                log_warning("Ignoring invalid AWS_MAX_ATTEMPTS=%s (want 1..%u)", getenv("AWS_MAX_ATTEMPTS"),
                            CONNECT_MAX_ATTEMPTS_LIMIT);
                s.max_attempts = o->max_attempts > 0 ? MIN(o->max_attempts, CONNECT_MAX_ATTEMPTS_LIMIT)
                                                     : CONNECT_DEFAULT_MAX_ATTEMPTS;
        }
        *ret = s;
        return 0;
}

static void client_apply_rates(struct connect_client *c, const struct connect_client_options *o) {
        usec_t now = clock_boottime_usec();

        c->rate_default = rate_or(o->rate_default, CONNECT_DEFAULT_RATE);
        c->rate_burst = rate_or(o->rate_burst, CONNECT_DEFAULT_BURST);
        for (size_t i = 0; i < _CONNECT_OP_MAX; i++)
                c->rates[i] = o->rates[i] > 0 ? o->rates[i] : 0;
        c->read_only = o->read_only;
        for (struct connect_bucket *b = c->buckets; b; b = b->next) {
                token_bucket_set_rate(&b->tb, bucket_rate(c, b->op), c->rate_burst, now);
                if (b->head)
                        bucket_schedule(b);
        }
}

int connect_client_new(sd_event *event, const struct connect_client_options *o, struct connect_client **ret) {
        _cleanup_(client_settings_clear) struct client_settings s = {};
        struct connect_client *c;
        int r;

        if (!event || !o || !ret)
                return -EINVAL;

        r = client_settings_from(o, &s);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        retry_quota_init(&c->quota);
        c->endpoint = TAKE_PTR(s.endpoint);
        c->max_attempts = s.max_attempts;
        client_apply_rates(c, o);

        r = http_client_new(event, s.ca_file, &c->http);
        if (r < 0)
                goto fail;
        r = credentials_provider_new(o->profile, &c->creds);
        if (r < 0)
                goto fail;

        *ret = c;
        return 0;

fail:
        connect_client_destroy(c);
        return r;
}

int connect_client_reconfigure(struct connect_client *c, const struct connect_client_options *o) {
        _cleanup_(client_settings_clear) struct client_settings s = {};
        _cleanup_(credentials_provider_freep) struct credentials_provider *creds = NULL;
        int r;

        if (!c || !o)
                return -EINVAL;
        r = client_settings_from(o, &s);
        if (r < 0)
                return r;
        r = credentials_provider_new(o->profile, &creds);
        if (r < 0)
                return r;
        r = http_client_set_ca_file(c->http, s.ca_file);
        if (r < 0)
                return r;

        /* Calls in flight keep going; their next attempts use the new
         * endpoint, credentials and pacing. */
        free(c->endpoint);
        c->endpoint = TAKE_PTR(s.endpoint);
        c->max_attempts = s.max_attempts;
        credentials_provider_free(c->creds);
        c->creds = TAKE_PTR(creds);
        client_apply_rates(c, o);
        return 0;
}

size_t connect_client_in_flight(const struct connect_client *c) {
        return c ? c->n_calls : 0;
}

void connect_client_stats(const struct connect_client *c, struct connect_stats *ret) {
        if (!ret)
                return;
        if (!c) {
                *ret = (struct connect_stats){};
                return;
        }
        *ret = c->stats;
}

void connect_client_cancel_all(struct connect_client *c) {
        struct connect_call *waiting = NULL, *call, *next;

        if (!c)
                return;
        dispatch_begin(c);

        /* Calls not on the wire: take them out first, so that nothing a
         * callback does below can start them. */
        for (call = c->calls; call; call = next) {
                next = call->next;
                if (call->state == CALL_RUNNING)
                        continue;
                call_unlink(call);
                call->next = waiting;
                waiting = call;
        }
        for (struct connect_bucket *b = c->buckets; b; b = b->next)
                bucket_schedule(b);

        /* Calls on the wire end through http_done() with -ECANCELED. */
        http_client_cancel_all(c->http);

        while ((call = waiting)) {
                waiting = call->next;
                call->next = NULL;
                if (c->freeing) {
                        /* A callback freed the client: the rest go without
                         * callbacks, as connect_client_free() promises. */
                        call_free(call);
                        continue;
                }
                connect_error_clear(&call->result.error);
                call->result.r = -ECANCELED;
                call->result.error.kind = CONNECT_ERROR_OTHER;
                call->result.error.message = strdup("cancelled");
                call_deliver(call); /* already unlinked above */
        }
        dispatch_end(c);
}

static void connect_client_destroy(struct connect_client *c) {
        struct connect_call *call;

        while ((call = c->calls)) {
                call_unlink(call);
                call_free(call);
        }
        while (c->buckets) {
                struct connect_bucket *b = c->buckets;
                c->buckets = b->next;
                bucket_free(b);
        }
        http_client_free(c->http);
        credentials_provider_free(c->creds);
        free(c->endpoint);
        sd_event_unref(c->event);
        free(c);
}

struct connect_client *connect_client_free(struct connect_client *c) {
        struct connect_call *call;

        if (!c || c->freeing)
                return NULL;
        c->freeing = true;

        /* Dropped without callbacks (connect.h). The HTTP client goes now
         * too, so that no request in flight can call back. */
        while ((call = c->calls)) {
                call_unlink(call);
                call_free(call);
        }
        for (struct connect_bucket *b = c->buckets; b; b = b->next)
                (void) sd_event_source_set_enabled(b->timer, SD_EVENT_OFF);
        c->http = http_client_free(c->http);

        if (c->dispatching == 0)
                connect_client_destroy(c);
        return NULL;
}

/* ---- The operations ---- */

/* known_digest: LIST only, or NULL. */
static int call_submit_full(struct connect_client *c, enum connect_op op, const char *region,
                            const struct connect_args *a, const uint8_t *known_digest, connect_callback_t cb,
                            void *userdata) {
        struct connect_call *call;
        int r;

        if (!c || !cb || !a)
                return -EINVAL;
        if (c->freeing)
                return -ESHUTDOWN;
        if (!region_is_valid(region))
                return -EINVAL;
        if (c->read_only && connect_op_is_mutating(op))
                return -EROFS;

        call = calloc(1, sizeof(*call));
        if (!call)
                return -ENOMEM;
        call->client = c;
        call->op = op;
        call->cb = cb;
        call->userdata = userdata;
        call->result.op = op;
        call->region = strdup(region);
        if (!call->region) {
                call_free(call);
                return -ENOMEM;
        }
        if (op == CONNECT_OP_LIST) {
                call->target_arn = strdup(a->target_arn ?: "");
                if (!call->target_arn) {
                        call_free(call);
                        return -ENOMEM;
                }
                if (known_digest) {
                        memcpy(call->known_digest, known_digest, CONNECT_LIST_DIGEST_LEN);
                        call->have_known_digest = true;
                }
        }
        r = connect_build_request(op, a, &call->req);
        if (r < 0) {
                call_free(call);
                return r;
        }
        call->bucket = bucket_get(c, region, op, &r);
        if (!call->bucket) {
                call_free(call);
                return r;
        }

        call->next = c->calls;
        if (c->calls)
                c->calls->prev = call;
        c->calls = call;
        c->n_calls++;
        call_enqueue(call);
        return 0;
}

static int call_submit(struct connect_client *c, enum connect_op op, const char *region, const struct connect_args *a,
                       connect_callback_t cb, void *userdata) {
        return call_submit_full(c, op, region, a, NULL, cb, userdata);
}

int connect_list_numbers(struct connect_client *c, const char *region, const char *target_arn,
                         const uint8_t *known_digest, connect_callback_t cb, void *userdata) {
        return call_submit_full(c, CONNECT_OP_LIST, region, &(struct connect_args){ .target_arn = target_arn },
                                known_digest, cb, userdata);
}

int connect_describe_number(struct connect_client *c, const char *region, const char *phone_number_id,
                            connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_DESCRIBE, region, &(struct connect_args){ .phone_number_id = phone_number_id },
                           cb, userdata);
}

int connect_search_available(struct connect_client *c, const char *region, const char *target_arn,
                             const char *country, const char *type, const char *prefix, unsigned max_results,
                             connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_SEARCH, region,
                           &(struct connect_args){
                                   .target_arn = target_arn,
                                   .country = country,
                                   .type = type,
                                   .prefix = prefix,
                                   .max_results = max_results,
                           },
                           cb, userdata);
}

int connect_claim_number(struct connect_client *c, const char *region, const char *target_arn,
                         const char *phone_number, const char *description, const struct connect_tag *tags,
                         size_t n_tags, const char *client_token, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_CLAIM, region,
                           &(struct connect_args){
                                   .target_arn = target_arn,
                                   .phone_number = phone_number,
                                   .description = description,
                                   .tags = tags,
                                   .n_tags = n_tags,
                                   .client_token = client_token,
                           },
                           cb, userdata);
}

int connect_release_number(struct connect_client *c, const char *region, const char *phone_number_id,
                           const char *client_token, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_RELEASE, region,
                           &(struct connect_args){ .phone_number_id = phone_number_id, .client_token = client_token },
                           cb, userdata);
}

int connect_update_metadata(struct connect_client *c, const char *region, const char *phone_number_id,
                            const char *description, const char *client_token, connect_callback_t cb,
                            void *userdata) {
        return call_submit(c, CONNECT_OP_UPDATE_METADATA, region,
                           &(struct connect_args){
                                   .phone_number_id = phone_number_id,
                                   .description = description,
                                   .client_token = client_token,
                           },
                           cb, userdata);
}

int connect_associate_flow(struct connect_client *c, const char *region, const char *phone_number_id,
                           const char *instance_id, const char *contact_flow_id, connect_callback_t cb,
                           void *userdata) {
        return call_submit(c, CONNECT_OP_ASSOCIATE_FLOW, region,
                           &(struct connect_args){
                                   .phone_number_id = phone_number_id,
                                   .instance_id = instance_id,
                                   .contact_flow_id = contact_flow_id,
                           },
                           cb, userdata);
}

int connect_tag_resource(struct connect_client *c, const char *region, const char *resource_arn,
                         const struct connect_tag *tags, size_t n_tags, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_TAG, region,
                           &(struct connect_args){ .resource_arn = resource_arn, .tags = tags, .n_tags = n_tags }, cb,
                           userdata);
}

int connect_untag_resource(struct connect_client *c, const char *region, const char *resource_arn,
                           char *const *keys, size_t n_keys, connect_callback_t cb, void *userdata) {
        return call_submit(c, CONNECT_OP_UNTAG, region,
                           &(struct connect_args){ .resource_arn = resource_arn, .tag_keys = keys, .n_tag_keys = n_keys },
                           cb, userdata);
}
