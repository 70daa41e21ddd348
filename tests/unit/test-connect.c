/* test-connect.c: the Connect client's pure parts (error parsing and
 * classification, response parsers on tests/data/connect/, the exact
 * request bytes of every operation, endpoint resolution) and its event-loop
 * contract without a server (read-only refusal, cancel, free with calls
 * pending, a refused connection retried and classified). The round trip
 * against the fake Connect is in test-http.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "connect.h"
#include "log.h"

/* tests/data/connect/, found from this file's path so that the test runs
 * from any directory. */
static char *data_path(const char *name) {
        const char *file = __FILE__;
        const char *slash = strrchr(file, '/');
        size_t dir = slash ? (size_t) (slash - file) : 0;
        /* __FILE__ is .../tests/unit/test-connect.c */
        return strprintf("%.*s%s../data/connect/%s", (int) dir, file, dir ? "/" : "", name);
}

static char *read_data(const char *name, size_t *ret_len) {
        _cleanup_(freep) char *p = data_path(name);
        char *text = NULL;
        size_t len = 0;
        assert_non_null(p);
        assert_int_equal(read_full_file(p, 1 << 20, &text, &len), 0);
        *ret_len = len;
        return text;
}

/* ---- error parsing ---- */

struct error_case {
        long status;
        const char *header;
        const char *body;
        const char *code;
        const char *message;
        enum connect_error_kind kind;
};

static void test_parse_error_forms(_unused_ void **state) {
        static const struct error_case cases[] = {
                /* header wins, body Message */
                { 429, "ThrottlingException", "{\"Message\":\"Rate exceeded\"}", "ThrottlingException",
                  "Rate exceeded", CONNECT_ERROR_THROTTLED },
                /* header with legacy junk */
                { 400, "InvalidParameterException:http://internal.amazon.com/coral/com.amazon.coral.validate/",
                  "{\"Message\":\"bad\"}", "InvalidParameterException", "bad", CONNECT_ERROR_INVALID },
                { 404, "aws.connect#ResourceNotFoundException:http://internal.amazon.com/x", "{}",
                  "ResourceNotFoundException", NULL, CONNECT_ERROR_NOT_FOUND },
                /* header beats a body code */
                { 409, "ResourceInUseException", "{\"code\":\"IdempotencyException\",\"message\":\"m\"}",
                  "ResourceInUseException", "m", CONNECT_ERROR_IN_USE },
                /* body code / Code */
                { 404, NULL, "{\"code\":\"ResourceNotFoundException\",\"message\":\"no such number\"}",
                  "ResourceNotFoundException", "no such number", CONNECT_ERROR_NOT_FOUND },
                { 409, NULL, "{\"Code\":\"IdempotencyException\",\"Message\":\"An entity with the same name already exists.\"}",
                  "IdempotencyException", "An entity with the same name already exists.", CONNECT_ERROR_IDEMPOTENCY },
                /* code beats __type */
                { 400, NULL, "{\"__type\":\"ThrottlingException\",\"code\":\"InvalidRequestException\"}",
                  "InvalidRequestException", NULL, CONNECT_ERROR_INVALID },
                /* __type, with namespace and junk */
                { 403, NULL, "{\"__type\":\"com.amazonaws.connect#AccessDeniedException\",\"Message\":\"denied\"}",
                  "AccessDeniedException", "denied", CONNECT_ERROR_ACCESS_DENIED },
                { 400, NULL, "{\"__type\":\"ns#InvalidParameterException:http://internal.amazon.com/coral/\"}",
                  "InvalidParameterException", NULL, CONNECT_ERROR_INVALID },
                /* message beats Message */
                { 500, "InternalServiceException", "{\"message\":\"lower\",\"Message\":\"upper\"}",
                  "InternalServiceException", "lower", CONNECT_ERROR_TRANSIENT },
                /* a non-string message is ignored, Message used */
                { 500, NULL, "{\"message\":42,\"Message\":\"upper\"}", NULL, "upper", CONNECT_ERROR_TRANSIENT },
                /* non-JSON body: the body is the message (first line) */
                { 502, NULL, "<html>502 Bad Gateway</html>\n<body>x</body>", NULL, "<html>502 Bad Gateway</html>",
                  CONNECT_ERROR_TRANSIENT },
                { 503, NULL, "Service Unavailable", NULL, "Service Unavailable", CONNECT_ERROR_TRANSIENT },
                /* JSON that is not an object: treated as text */
                { 400, NULL, "[1,2]", NULL, "[1,2]", CONNECT_ERROR_INVALID },
                /* empty body: status decides */
                { 404, NULL, "", NULL, NULL, CONNECT_ERROR_NOT_FOUND },
                { 403, NULL, "", NULL, NULL, CONNECT_ERROR_ACCESS_DENIED },
                { 401, NULL, "", NULL, NULL, CONNECT_ERROR_AUTH },
                { 429, NULL, "", NULL, NULL, CONNECT_ERROR_THROTTLED },
                { 504, NULL, "", NULL, NULL, CONNECT_ERROR_TRANSIENT },
                { 418, NULL, "", NULL, NULL, CONNECT_ERROR_OTHER },
                /* empty header falls back to the body */
                { 403, "", "{\"__type\":\"UnrecognizedClientException\",\"message\":\"The security token included in the request is invalid.\"}",
                  "UnrecognizedClientException", "The security token included in the request is invalid.", CONNECT_ERROR_AUTH },
                { 403, "InvalidSignatureException", "{\"message\":\"Signature expired\"}", "InvalidSignatureException",
                  "Signature expired", CONNECT_ERROR_AUTH },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const struct error_case *t = &cases[i];
                struct connect_error e = {};
                int r = connect_parse_error(t->status, t->header, t->body, strlen(t->body), &e);
                if (r != 0 || !streq_ptr(e.code, t->code) || !streq_ptr(e.message, t->message) || e.kind != t->kind ||
                    e.http_status != t->status)
                        fail_msg("case %zu: r=%d code=%s message=%s kind=%s", i, r, e.code ?: "(null)",
                                 e.message ?: "(null)", connect_error_kind_name(e.kind));
                connect_error_clear(&e);
        }
}

static void test_parse_error_keeps_no_secrets(_unused_ void **state) {
        _cleanup_(freep) char *body = NULL;
        struct connect_error e = {};
        size_t len;

        /* AWS's signature-mismatch text goes on with the canonical request,
         * session token included: only the first line is kept. */
        body = read_data("error-signature.json", &len);
        assert_int_equal(connect_parse_error(403, "InvalidSignatureException", body, len, &e), 0);
        assert_int_equal(e.kind, CONNECT_ERROR_AUTH);
        assert_non_null(e.message);
        assert_non_null(strstr(e.message, "signature"));
        assert_null(strstr(e.message, "SECRETSESSIONTOKEN"));
        assert_null(strchr(e.message, '\n'));
        connect_error_clear(&e);

        /* A huge message is capped. */
        size_t n = 100000;
        _cleanup_(freep) char *big = malloc(n + 32);
        assert_non_null(big);
        memcpy(big, "{\"Message\":\"", 12);
        memset(big + 12, 'x', n);
        memcpy(big + 12 + n, "\"}", 3);
        assert_int_equal(connect_parse_error(500, NULL, big, strlen(big), &e), 0);
        assert_non_null(e.message);
        assert_true(strlen(e.message) <= 512);
        connect_error_clear(&e);

        /* NULL body is an empty body */
        assert_int_equal(connect_parse_error(404, NULL, NULL, 0, &e), 0);
        assert_int_equal(e.kind, CONNECT_ERROR_NOT_FOUND);
        assert_null(e.code);
        assert_null(e.message);
        connect_error_clear(&e);
}

/* ---- classification ---- */

static void test_quota_refusal(_unused_ void **state) {
        assert_true(connect_is_quota_refusal("ServiceQuotaExceededException", NULL));
        assert_true(connect_is_quota_refusal("ServiceQuotaExceededException", "anything"));
        assert_true(connect_is_quota_refusal(NULL, "You've reached the limit of Phone Numbers"));
        assert_true(connect_is_quota_refusal(NULL, "You've reached the limit of Phone Numbers. To increase the limit, contact support."));
        assert_true(connect_is_quota_refusal(NULL, "Reached the limit of claimed numbers for this instance"));
        assert_true(connect_is_quota_refusal("LimitExceededException", "PHONE NUMBER LIMIT exceeded"));
        assert_true(connect_is_quota_refusal(NULL, "phone number limit"));
        assert_false(connect_is_quota_refusal("LimitExceededException", "Rate exceeded"));
        assert_false(connect_is_quota_refusal(NULL, "phone number not available"));   /* no "limit" */
        assert_false(connect_is_quota_refusal(NULL, "limit reached for contact flows")); /* no number */
        assert_false(connect_is_quota_refusal("ThrottlingException", NULL));
        assert_false(connect_is_quota_refusal(NULL, NULL));
}

static void test_classify_table(_unused_ void **state) {
        static const struct {
                long status;
                const char *code;
                const char *message;
                enum connect_error_kind kind;
        } cases[] = {
                { 429, "ThrottlingException", "Rate exceeded", CONNECT_ERROR_THROTTLED },
                { 429, NULL, NULL, CONNECT_ERROR_THROTTLED },
                { 400, "TooManyRequestsException", NULL, CONNECT_ERROR_THROTTLED },
                /* LimitExceededException without quota text is throttling (docs/connect-api.md §2) */
                { 429, "LimitExceededException", "Rate exceeded", CONNECT_ERROR_THROTTLED },
                { 429, "LimitExceededException", NULL, CONNECT_ERROR_THROTTLED },
                /* ... with it, a quota refusal: checked before throttling */
                { 429, "LimitExceededException", "You've reached the limit of Phone Numbers", CONNECT_ERROR_QUOTA },
                { 402, "ServiceQuotaExceededException", "Quota exceeded", CONNECT_ERROR_QUOTA },
                { 400, "InvalidRequestException", "Reached the limit of claimed numbers", CONNECT_ERROR_QUOTA },
                { 500, "InternalServiceException", NULL, CONNECT_ERROR_TRANSIENT },
                { 502, NULL, NULL, CONNECT_ERROR_TRANSIENT },
                { 503, NULL, NULL, CONNECT_ERROR_TRANSIENT },
                { 504, NULL, NULL, CONNECT_ERROR_TRANSIENT },
                { 408, "RequestTimeoutException", NULL, CONNECT_ERROR_TRANSIENT },
                { 404, "ResourceNotFoundException", NULL, CONNECT_ERROR_NOT_FOUND },
                { 409, "ResourceInUseException", NULL, CONNECT_ERROR_IN_USE },
                { 409, "IdempotencyException", NULL, CONNECT_ERROR_IDEMPOTENCY },
                { 400, "InvalidParameterException", NULL, CONNECT_ERROR_INVALID },
                { 400, "InvalidRequestException", NULL, CONNECT_ERROR_INVALID },
                { 403, "AccessDeniedException", "User is not authorized", CONNECT_ERROR_ACCESS_DENIED },
                { 403, "UnrecognizedClientException", NULL, CONNECT_ERROR_AUTH },
                { 403, "InvalidSignatureException", "signature does not match", CONNECT_ERROR_AUTH },
                { 403, "IncompleteSignature", NULL, CONNECT_ERROR_AUTH },
                { 403, "MissingAuthenticationToken", NULL, CONNECT_ERROR_AUTH },
                { 403, "MissingAuthenticationTokenException", NULL, CONNECT_ERROR_AUTH },
                { 403, "ExpiredTokenException", NULL, CONNECT_ERROR_AUTH },
                { 400, "SomethingNew", NULL, CONNECT_ERROR_INVALID },
                { 409, "SomethingNew", NULL, CONNECT_ERROR_OTHER },
                { 0, NULL, NULL, CONNECT_ERROR_OTHER },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                enum connect_error_kind k = connect_classify_error(cases[i].status, cases[i].code, cases[i].message);
                if (k != cases[i].kind)
                        fail_msg("case %zu (%ld %s): got %s, want %s", i, cases[i].status, cases[i].code ?: "-",
                                 connect_error_kind_name(k), connect_error_kind_name(cases[i].kind));
        }

        assert_true(connect_error_kind_is_retryable(CONNECT_ERROR_THROTTLED));
        assert_true(connect_error_kind_is_retryable(CONNECT_ERROR_TRANSIENT));
        assert_false(connect_error_kind_is_retryable(CONNECT_ERROR_QUOTA));
        assert_false(connect_error_kind_is_retryable(CONNECT_ERROR_AUTH));
        assert_false(connect_error_kind_is_retryable(CONNECT_ERROR_TLS));
}

static void test_names(_unused_ void **state) {
        for (int op = 0; op < _CONNECT_OP_MAX; op++) {
                assert_non_null(connect_op_name(op));
                assert_int_equal(connect_op_from_name(connect_op_name(op)), op);
        }
        assert_string_equal(connect_op_name(CONNECT_OP_LIST), "ListPhoneNumbersV2");
        assert_string_equal(connect_op_name(CONNECT_OP_ASSOCIATE_FLOW), "AssociatePhoneNumberContactFlow");
        assert_int_equal(connect_op_from_name("ListPhoneNumbers"), -EINVAL);
        assert_int_equal(connect_op_from_name(NULL), -EINVAL);
        assert_null(connect_op_name(_CONNECT_OP_MAX));

        assert_true(connect_op_is_mutating(CONNECT_OP_CLAIM));
        assert_true(connect_op_is_mutating(CONNECT_OP_RELEASE));
        assert_true(connect_op_is_mutating(CONNECT_OP_UPDATE_METADATA));
        assert_true(connect_op_is_mutating(CONNECT_OP_ASSOCIATE_FLOW));
        assert_true(connect_op_is_mutating(CONNECT_OP_TAG));
        assert_true(connect_op_is_mutating(CONNECT_OP_UNTAG));
        assert_true(connect_op_is_mutating(CONNECT_OP_UPDATE_NUMBER));
        assert_false(connect_op_is_mutating(CONNECT_OP_LIST));
        assert_false(connect_op_is_mutating(CONNECT_OP_DESCRIBE));
        assert_false(connect_op_is_mutating(CONNECT_OP_SEARCH));

        assert_string_equal(connect_status_name(CONNECT_STATUS_IN_PROGRESS), "IN_PROGRESS");
        assert_string_equal(connect_error_kind_name(CONNECT_ERROR_THROTTLED), "throttled");
}

/* ---- response parsers ---- */

static void test_parse_list(_unused_ void **state) {
        _cleanup_(freep) char *p1 = NULL, *p2 = NULL, *empty = NULL, *token = NULL;
        struct connect_number *nums = NULL;
        size_t n = 0, len;

        p1 = read_data("list-page1.json", &len);
        assert_int_equal(connect_parse_list(p1, len, &nums, &n, &token), 0);
        assert_int_equal(n, 2);
        assert_string_equal(token, "page-2-token/with+odd=chars");
        assert_string_equal(nums[0].id, "11111111-2222-4333-8444-555555555555");
        assert_string_equal(nums[0].arn,
                            "arn:aws:connect:us-east-1:111122223333:phone-number/11111111-2222-4333-8444-555555555555");
        assert_string_equal(nums[0].phone_number, "+12065550100");
        assert_string_equal(nums[0].country, "US");
        assert_string_equal(nums[0].type, "DID");
        assert_string_equal(nums[0].target_arn,
                            "arn:aws:connect:us-east-1:111122223333:instance/0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11");
        assert_string_equal(nums[0].instance_id, "0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11");
        assert_string_equal(nums[0].description, "Support main line");
        assert_false(nums[0].described);
        assert_int_equal(nums[0].n_tags, 0);
        assert_int_equal(nums[0].status, CONNECT_STATUS_UNKNOWN);
        assert_string_equal(nums[1].type, "TOLL_FREE");
        assert_null(nums[1].description);
        for (size_t i = 0; i < n; i++)
                connect_number_clear(&nums[i]);
        nums = mfree(nums);
        token = mfree(token);

        p2 = read_data("list-page2.json", &len);
        assert_int_equal(connect_parse_list(p2, len, &nums, &n, &token), 0);
        assert_int_equal(n, 1);
        assert_null(token);
        assert_string_equal(nums[0].country, "GB");
        assert_null(nums[0].instance_id);
        connect_number_clear(&nums[0]);
        nums = mfree(nums);

        empty = read_data("list-empty.json", &len);
        assert_int_equal(connect_parse_list(empty, len, &nums, &n, &token), 0);
        assert_int_equal(n, 0);
        assert_null(nums);
        assert_null(token);

        /* "" is no token; a missing list is an empty page */
        static const char t1[] = "{\"NextToken\":\"\"}";
        assert_int_equal(connect_parse_list(t1, strlen(t1), &nums, &n, &token), 0);
        assert_int_equal(n, 0);
        assert_null(token);
}

static void test_parse_describe(_unused_ void **state) {
        _cleanup_(freep) char *claimed = NULL, *failed = NULL, *progress = NULL;
        struct connect_number num = {};
        size_t len;

        claimed = read_data("describe-claimed.json", &len);
        assert_int_equal(connect_parse_describe(claimed, len, &num), 0);
        assert_true(num.described);
        assert_int_equal(num.status, CONNECT_STATUS_CLAIMED);
        assert_null(num.status_message);
        assert_string_equal(num.id, "11111111-2222-4333-8444-555555555555");
        assert_string_equal(num.phone_number, "+12065550100");
        assert_string_equal(num.description, "Support main line");
        assert_int_equal(num.n_tags, 2);
        assert_string_equal(connect_number_tag(&num, "connect-numbers:pool"), "support-us/main");
        assert_string_equal(connect_number_tag(&num, "team"), "support");
        assert_null(connect_number_tag(&num, "other"));
        connect_number_clear(&num);

        failed = read_data("describe-failed.json", &len);
        assert_int_equal(connect_parse_describe(failed, len, &num), 0);
        assert_int_equal(num.status, CONNECT_STATUS_FAILED);
        assert_non_null(num.status_message);
        assert_true(connect_is_quota_refusal(NULL, num.status_message));
        assert_int_equal(num.n_tags, 0);
        connect_number_clear(&num);

        progress = read_data("describe-in-progress.json", &len);
        assert_int_equal(connect_parse_describe(progress, len, &num), 0);
        assert_int_equal(num.status, CONNECT_STATUS_IN_PROGRESS);
        assert_null(num.arn);
        connect_number_clear(&num);
}

static void test_parse_search_claim(_unused_ void **state) {
        _cleanup_(freep) char *search = NULL, *empty = NULL, *claim = NULL, *trunc = NULL;
        struct connect_available *a = NULL;
        size_t n = 0, len;
        char *id = NULL, *arn = NULL;

        search = read_data("search.json", &len);
        assert_int_equal(connect_parse_search(search, len, &a, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(a[0].phone_number, "+12065550140");
        assert_string_equal(a[2].phone_number, "+12065550142");
        assert_string_equal(a[1].country, "US");
        assert_string_equal(a[1].type, "DID");
        for (size_t i = 0; i < n; i++) {
                free(a[i].phone_number);
                free(a[i].country);
                free(a[i].type);
        }
        a = mfree(a);

        empty = read_data("search-empty.json", &len);
        assert_int_equal(connect_parse_search(empty, len, &a, &n), 0);
        assert_int_equal(n, 0);
        assert_null(a);

        claim = read_data("claim.json", &len);
        assert_int_equal(connect_parse_claim(claim, len, &id, &arn), 0);
        assert_string_equal(id, "44444444-5555-4666-8777-888888888888");
        assert_string_equal(arn, "arn:aws:connect:us-east-1:111122223333:phone-number/44444444-5555-4666-8777-888888888888");
        id = mfree(id);
        arn = mfree(arn);

        trunc = read_data("claim-truncated.json", &len);
        assert_int_equal(connect_parse_claim(trunc, len, &id, &arn), -EBADMSG);
        assert_null(id);
        assert_null(arn);
}

static void test_parse_bad_inputs(_unused_ void **state) {
        static const char *const bad_list[] = {
                "", "not json", "[]", "{\"ListPhoneNumbersSummaryList\":{}}",
                "{\"ListPhoneNumbersSummaryList\":[1]}",
                "{\"ListPhoneNumbersSummaryList\":[{\"PhoneNumber\":\"+1\"}]}",             /* no id */
                "{\"ListPhoneNumbersSummaryList\":[{\"PhoneNumberId\":\"x\",\"PhoneNumber\":5}]}",
                "{\"ListPhoneNumbersSummaryList\":[],\"NextToken\":7}",
                "{\"a\":1,\"a\":2}", /* duplicate keys */
        };
        static const char *const bad_describe[] = {
                "{}", "{\"ClaimedPhoneNumberSummary\":null}", "{\"ClaimedPhoneNumberSummary\":[]}",
                "{\"ClaimedPhoneNumberSummary\":{\"PhoneNumberId\":\"x\",\"PhoneNumber\":\"+1\",\"Tags\":[]}}",
                "{\"ClaimedPhoneNumberSummary\":{\"PhoneNumberId\":\"x\",\"PhoneNumber\":\"+1\",\"Tags\":{\"k\":1}}}",
                "{\"ClaimedPhoneNumberSummary\":{\"PhoneNumberId\":\"x\",\"PhoneNumber\":\"+1\",\"PhoneNumberStatus\":\"CLAIMED\"}}",
        };
        static const char *const bad_search[] = {
                "{\"AvailableNumbersList\":{}}", "{\"AvailableNumbersList\":[{}]}",
                "{\"AvailableNumbersList\":[{\"PhoneNumber\":\"+1\"},{\"PhoneNumber\":1}]}",
        };
        static const char *const bad_claim[] = { "{}", "{\"PhoneNumberId\":1}", "{\"PhoneNumberId\":\"\"}", "null" };
        struct connect_number *nums = NULL, num = {};
        struct connect_available *a = NULL;
        char *token = NULL, *id = NULL;
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(bad_list); i++)
                if (connect_parse_list(bad_list[i], strlen(bad_list[i]), &nums, &n, &token) != -EBADMSG)
                        fail_msg("list case %zu accepted", i);
        for (size_t i = 0; i < ELEMENTSOF(bad_describe); i++)
                if (connect_parse_describe(bad_describe[i], strlen(bad_describe[i]), &num) != -EBADMSG)
                        fail_msg("describe case %zu accepted", i);
        for (size_t i = 0; i < ELEMENTSOF(bad_search); i++)
                if (connect_parse_search(bad_search[i], strlen(bad_search[i]), &a, &n) != -EBADMSG)
                        fail_msg("search case %zu accepted", i);
        for (size_t i = 0; i < ELEMENTSOF(bad_claim); i++)
                if (connect_parse_claim(bad_claim[i], strlen(bad_claim[i]), &id, NULL) != -EBADMSG)
                        fail_msg("claim case %zu accepted", i);
        assert_null(nums);
        assert_null(token);
        assert_null(a);
        assert_null(id);
        assert_null(num.id);

        /* Unknown status values are UNKNOWN, not an error. */
        static const char odd[] =
                "{\"ClaimedPhoneNumberSummary\":{\"PhoneNumberId\":\"x\",\"PhoneNumber\":\"+1\",\"PhoneNumberStatus\":{\"Status\":\"NEW\"}}}";
        assert_int_equal(connect_parse_describe(odd, strlen(odd), &num), 0);
        assert_int_equal(num.status, CONNECT_STATUS_UNKNOWN);
        connect_number_clear(&num);
}

/* ---- wire format of every operation ---- */

#define ARN_INSTANCE "arn:aws:connect:us-east-1:111122223333:instance/0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11"
#define ARN_NUMBER "arn:aws:connect:us-east-1:111122223333:phone-number/11111111-2222-4333-8444-555555555555"
#define ARN_NUMBER_ENC \
        "arn%3Aaws%3Aconnect%3Aus-east-1%3A111122223333%3Aphone-number%2F11111111-2222-4333-8444-555555555555"
#define TOKEN "5f0c3a1e-9b7d-4c2a-8e6f-1a2b3c4d5e6f"

static void expect_request(enum connect_op op, const struct connect_args *a, const char *method, const char *path,
                           const char *query, const char *body) {
        struct connect_request req = {};
        int r = connect_build_request(op, a, &req);
        if (r != 0)
                fail_msg("%s: build failed: %d", connect_op_name(op), r);
        assert_string_equal(req.method, method);
        assert_string_equal(req.path, path);
        if (query)
                assert_string_equal(req.query, query);
        else
                assert_null(req.query);
        if (body) {
                assert_non_null(req.body);
                assert_string_equal(req.body, body);
                assert_int_equal(req.body_len, strlen(body));
        } else
                assert_null(req.body);
        connect_request_clear(&req);
}

static void test_build_requests(_unused_ void **state) {
        const struct connect_tag tags[] = {
                { (char *) "connect-numbers:pool", (char *) "support-us/main" },
                { (char *) "team", (char *) "support" },
        };
        char *keys[] = { (char *) "connect-numbers:pool", (char *) "team a/b", NULL };

        expect_request(CONNECT_OP_CLAIM,
                       &(struct connect_args){ .target_arn = ARN_INSTANCE,
                                               .phone_number = "+12065550100",
                                               .description = "Support main line",
                                               .tags = tags,
                                               .n_tags = 2,
                                               .client_token = TOKEN },
                       "POST", "/phone-number/claim", NULL,
                       "{\"TargetArn\":\"" ARN_INSTANCE "\",\"PhoneNumber\":\"+12065550100\","
                       "\"PhoneNumberDescription\":\"Support main line\","
                       "\"Tags\":{\"connect-numbers:pool\":\"support-us/main\",\"team\":\"support\"},"
                       "\"ClientToken\":\"" TOKEN "\"}");
        /* description NULL: omitted; no tags: omitted */
        expect_request(CONNECT_OP_CLAIM,
                       &(struct connect_args){ .target_arn = ARN_INSTANCE, .phone_number = "+12065550100",
                                               .client_token = TOKEN },
                       "POST", "/phone-number/claim", NULL,
                       "{\"TargetArn\":\"" ARN_INSTANCE "\",\"PhoneNumber\":\"+12065550100\",\"ClientToken\":\"" TOKEN "\"}");

        expect_request(CONNECT_OP_DESCRIBE, &(struct connect_args){ .phone_number_id = "11111111-2222-4333-8444-555555555555" },
                       "GET", "/phone-number/11111111-2222-4333-8444-555555555555", NULL, NULL);
        expect_request(CONNECT_OP_DESCRIBE, &(struct connect_args){ .phone_number_id = ARN_NUMBER }, "GET",
                       "/phone-number/" ARN_NUMBER_ENC, NULL, NULL);

        expect_request(CONNECT_OP_LIST, &(struct connect_args){ .target_arn = ARN_INSTANCE }, "POST", "/phone-number/list",
                       NULL, "{\"TargetArn\":\"" ARN_INSTANCE "\",\"MaxResults\":1000}");
        expect_request(CONNECT_OP_LIST, &(struct connect_args){ .target_arn = ARN_INSTANCE, .next_token = "abc/+=" }, "POST",
                       "/phone-number/list", NULL,
                       "{\"TargetArn\":\"" ARN_INSTANCE "\",\"MaxResults\":1000,\"NextToken\":\"abc/+=\"}");

        expect_request(CONNECT_OP_SEARCH,
                       &(struct connect_args){ .target_arn = ARN_INSTANCE, .country = "US", .type = "DID",
                                               .prefix = "+1206", .max_results = 5 },
                       "POST", "/phone-number/search-available", NULL,
                       "{\"TargetArn\":\"" ARN_INSTANCE "\",\"PhoneNumberCountryCode\":\"US\",\"PhoneNumberType\":\"DID\","
                       "\"PhoneNumberPrefix\":\"+1206\",\"MaxResults\":5}");
        /* the prefix always goes with its '+' (connect-numbers.yaml(5), prefix) */
        expect_request(CONNECT_OP_SEARCH,
                       &(struct connect_args){ .target_arn = ARN_INSTANCE, .country = "US", .type = "DID",
                                               .prefix = "1206", .max_results = 1 },
                       "POST", "/phone-number/search-available", NULL,
                       "{\"TargetArn\":\"" ARN_INSTANCE "\",\"PhoneNumberCountryCode\":\"US\",\"PhoneNumberType\":\"DID\","
                       "\"PhoneNumberPrefix\":\"+1206\",\"MaxResults\":1}");
        expect_request(CONNECT_OP_SEARCH,
                       &(struct connect_args){ .target_arn = ARN_INSTANCE, .country = "GB", .type = "TOLL_FREE",
                                               .max_results = 50 },
                       "POST", "/phone-number/search-available", NULL,
                       "{\"TargetArn\":\"" ARN_INSTANCE "\",\"PhoneNumberCountryCode\":\"GB\",\"PhoneNumberType\":\"TOLL_FREE\","
                       "\"MaxResults\":10}");

        expect_request(CONNECT_OP_RELEASE,
                       &(struct connect_args){ .phone_number_id = "11111111-2222-4333-8444-555555555555", .client_token = TOKEN },
                       "DELETE", "/phone-number/11111111-2222-4333-8444-555555555555", "clientToken=" TOKEN, NULL);
        expect_request(CONNECT_OP_RELEASE, &(struct connect_args){ .phone_number_id = ARN_NUMBER, .client_token = "a b+c" },
                       "DELETE", "/phone-number/" ARN_NUMBER_ENC, "clientToken=a%20b%2Bc", NULL);

        expect_request(CONNECT_OP_UPDATE_METADATA,
                       &(struct connect_args){ .phone_number_id = "11111111-2222-4333-8444-555555555555",
                                               .description = "New \"desc\" \xc3\xa9", .client_token = TOKEN },
                       "PUT", "/phone-number/11111111-2222-4333-8444-555555555555/metadata", NULL,
                       "{\"PhoneNumberDescription\":\"New \\\"desc\\\" \xc3\xa9\",\"ClientToken\":\"" TOKEN "\"}");

        expect_request(CONNECT_OP_ASSOCIATE_FLOW,
                       &(struct connect_args){ .phone_number_id = ARN_NUMBER,
                                               .instance_id = "0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11",
                                               .contact_flow_id = "7c1a8bde-1111-4222-8333-444455556666" },
                       "PUT", "/phone-number/" ARN_NUMBER_ENC "/contact-flow", NULL,
                       "{\"InstanceId\":\"0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11\","
                       "\"ContactFlowId\":\"7c1a8bde-1111-4222-8333-444455556666\"}");

        expect_request(CONNECT_OP_TAG, &(struct connect_args){ .resource_arn = ARN_NUMBER, .tags = tags, .n_tags = 2 },
                       "POST", "/tags/" ARN_NUMBER_ENC, NULL,
                       "{\"tags\":{\"connect-numbers:pool\":\"support-us/main\",\"team\":\"support\"}}");

        expect_request(CONNECT_OP_UNTAG, &(struct connect_args){ .resource_arn = ARN_NUMBER, .tag_keys = keys, .n_tag_keys = 2 },
                       "DELETE", "/tags/" ARN_NUMBER_ENC, "tagKeys=connect-numbers%3Apool&tagKeys=team%20a%2Fb", NULL);
}

/* Every operation, byte for byte against tests/data/connect/requests/
 * OPERATION.http: "METHOD path[?query]", then, when a body is sent, an
 * empty line and the body (each file ends with one newline). The loop runs
 * over every operation, so a new one without its file fails here. */
static void test_build_requests_files(_unused_ void **state) {
        const struct connect_tag tags[] = {
                { (char *) "connect-numbers:pool", (char *) "support-us/main" },
                { (char *) "team", (char *) "support" },
        };
        char *keys[] = { (char *) "connect-numbers:pool", (char *) "team a/b", NULL };
        const struct connect_args args[_CONNECT_OP_MAX] = {
                [CONNECT_OP_CLAIM] = { .target_arn = ARN_INSTANCE, .phone_number = "+12065550100",
                                       .description = "Support main line", .tags = tags, .n_tags = 2,
                                       .client_token = TOKEN },
                [CONNECT_OP_DESCRIBE] = { .phone_number_id = ARN_NUMBER },
                [CONNECT_OP_LIST] = { .target_arn = ARN_INSTANCE, .next_token = "abc/+=" },
                [CONNECT_OP_SEARCH] = { .target_arn = ARN_INSTANCE, .country = "US", .type = "DID", .prefix = "1206",
                                        .max_results = 5 },
                [CONNECT_OP_RELEASE] = { .phone_number_id = "11111111-2222-4333-8444-555555555555",
                                         .client_token = "a b+c" },
                [CONNECT_OP_UPDATE_METADATA] = { .phone_number_id = "11111111-2222-4333-8444-555555555555",
                                                 .description = "New \"desc\" \xc3\xa9", .client_token = TOKEN },
                [CONNECT_OP_ASSOCIATE_FLOW] = { .phone_number_id = ARN_NUMBER,
                                                .instance_id = "0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11",
                                                .contact_flow_id = "7c1a8bde-1111-4222-8333-444455556666" },
                [CONNECT_OP_TAG] = { .resource_arn = ARN_NUMBER, .tags = tags, .n_tags = 2 },
                [CONNECT_OP_UNTAG] = { .resource_arn = ARN_NUMBER, .tag_keys = keys, .n_tag_keys = 2 },
                [CONNECT_OP_UPDATE_NUMBER] = { .phone_number_id = "11111111-2222-4333-8444-555555555555",
                                               .target_arn = ARN_INSTANCE, .client_token = TOKEN },
        };

        for (int op = 0; op < _CONNECT_OP_MAX; op++) {
                _cleanup_(freep) char *name = strprintf("requests/%s.http", connect_op_name(op));
                _cleanup_(freep) char *want = NULL, *got = NULL;
                struct connect_request req = {};
                size_t len;

                assert_non_null(name);
                want = read_data(name, &len);
                if (connect_build_request(op, &args[op], &req) != 0)
                        fail_msg("%s: build failed", connect_op_name(op));
                got = strprintf("%s %s%s%s\n%s%s%s", req.method, req.path, req.query ? "?" : "", req.query ?: "",
                                req.body ? "\n" : "", req.body ?: "", req.body ? "\n" : "");
                assert_non_null(got);
                assert_int_equal(req.body_len, req.body ? strlen(req.body) : 0);
                if (!streq(got, want))
                        fail_msg("%s: built\n%s\nwant (%s)\n%s", connect_op_name(op), got, name, want);
                connect_request_clear(&req);
        }
}

static void test_build_request_invalid(_unused_ void **state) {
        struct connect_request req = {};
        const struct connect_tag bad_utf8[] = { { (char *) "k", (char *) "\xff\xfe" } };

        assert_int_equal(connect_build_request(CONNECT_OP_CLAIM, &(struct connect_args){ .target_arn = ARN_INSTANCE }, &req),
                         -EINVAL);
        assert_int_equal(connect_build_request(CONNECT_OP_DESCRIBE, &(struct connect_args){}, &req), -EINVAL);
        assert_int_equal(connect_build_request(CONNECT_OP_LIST, &(struct connect_args){}, &req), -EINVAL);
        assert_int_equal(connect_build_request(CONNECT_OP_SEARCH,
                                               &(struct connect_args){ .target_arn = ARN_INSTANCE, .country = "US" }, &req),
                         -EINVAL);
        assert_int_equal(connect_build_request(CONNECT_OP_TAG, &(struct connect_args){ .resource_arn = ARN_NUMBER }, &req),
                         -EINVAL);
        assert_int_equal(connect_build_request(CONNECT_OP_UNTAG, &(struct connect_args){ .resource_arn = ARN_NUMBER }, &req),
                         -EINVAL);
        assert_int_equal(connect_build_request(CONNECT_OP_UPDATE_METADATA,
                                               &(struct connect_args){ .phone_number_id = "x" }, &req),
                         -EINVAL);
        assert_int_equal(connect_build_request(CONNECT_OP_UPDATE_NUMBER,
                                               &(struct connect_args){ .phone_number_id = "x" }, &req),
                         -EINVAL);
        assert_int_equal(connect_build_request(CONNECT_OP_TAG,
                                               &(struct connect_args){ .resource_arn = ARN_NUMBER, .tags = bad_utf8, .n_tags = 1 },
                                               &req),
                         -EINVAL);
        assert_int_equal(connect_build_request(_CONNECT_OP_MAX, &(struct connect_args){}, &req), -EINVAL);
        /* outputs untouched on failure */
        assert_null(req.path);
        assert_null(req.body);
}

/* ---- endpoints ---- */

static void test_endpoints(_unused_ void **state) {
        char *e = NULL, *host = NULL, *path = NULL;

        unsetenv("AWS_ENDPOINT_URL_CONNECT");
        unsetenv("AWS_ENDPOINT_URL");
        assert_int_equal(connect_resolve_endpoint(NULL, &e), 0);
        assert_null(e);

        setenv("AWS_ENDPOINT_URL", "https://generic.example:8443/", 1);
        assert_int_equal(connect_resolve_endpoint(NULL, &e), 0);
        assert_string_equal(e, "https://generic.example:8443");
        e = mfree(e);

        setenv("AWS_ENDPOINT_URL_CONNECT", "https://connect.example", 1);
        assert_int_equal(connect_resolve_endpoint("", &e), 0);
        assert_string_equal(e, "https://connect.example");
        e = mfree(e);

        /* the option wins; trailing slashes go */
        assert_int_equal(connect_resolve_endpoint("https://127.0.0.1:4443//", &e), 0);
        assert_string_equal(e, "https://127.0.0.1:4443");
        e = mfree(e);

        assert_int_equal(connect_resolve_endpoint("http://127.0.0.1:4443", &e), -EPROTONOSUPPORT);
        assert_int_equal(connect_resolve_endpoint("ftp://x", &e), -EPROTONOSUPPORT);
        assert_int_equal(connect_resolve_endpoint("connect.example", &e), -EINVAL);
        assert_int_equal(connect_resolve_endpoint("https://", &e), -EINVAL);
        assert_int_equal(connect_resolve_endpoint("https://user@host", &e), -EINVAL);
        assert_int_equal(connect_resolve_endpoint("https://host/a b", &e), -EINVAL);
        assert_null(e);
        unsetenv("AWS_ENDPOINT_URL_CONNECT");
        unsetenv("AWS_ENDPOINT_URL");

        assert_int_equal(connect_endpoint_split("https://connect.us-east-1.amazonaws.com", &host, &path), 0);
        assert_string_equal(host, "connect.us-east-1.amazonaws.com");
        assert_string_equal(path, "");
        host = mfree(host);
        path = mfree(path);
        /* default port dropped, others kept */
        assert_int_equal(connect_endpoint_split("https://h.example:443/base/", &host, &path), 0);
        assert_string_equal(host, "h.example");
        assert_string_equal(path, "/base");
        host = mfree(host);
        path = mfree(path);
        assert_int_equal(connect_endpoint_split("https://127.0.0.1:4443", &host, &path), 0);
        assert_string_equal(host, "127.0.0.1:4443");
        host = mfree(host);
        path = mfree(path);
        assert_int_equal(connect_endpoint_split("https://[::1]:8443", &host, &path), 0);
        assert_string_equal(host, "[::1]:8443");
        host = mfree(host);
        path = mfree(path);
}

/* ---- the client on an event loop, no server ---- */

struct outcome {
        unsigned calls;
        int r;
        enum connect_error_kind kind;
        unsigned attempts;
        enum connect_op op;
};

static void on_result(const struct connect_result *res, void *userdata) {
        struct outcome *o = userdata;
        o->calls++;
        o->r = res->r;
        o->kind = res->error.kind;
        o->attempts = res->attempts;
        o->op = res->op;
}

static int on_page_ignore(_unused_ struct connect_number *numbers, _unused_ size_t n, _unused_ void *userdata) {
        return 0;
}

static void set_fake_credentials(void) {
        setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
        unsetenv("AWS_SESSION_TOKEN");
        unsetenv("AWS_PROFILE");
        unsetenv("CREDENTIALS_DIRECTORY");
        setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
        setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
        unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
        unsetenv("AWS_ENDPOINT_URL_CONNECT");
        unsetenv("AWS_ENDPOINT_URL");
        unsetenv("AWS_CA_BUNDLE");
        unsetenv("AWS_MAX_ATTEMPTS");
        unsetenv("https_proxy");
        unsetenv("HTTPS_PROXY");
        unsetenv("all_proxy");
        unsetenv("ALL_PROXY");
}

/* A loopback port nobody listens on: bind, read the port, close. */
static int closed_port(void);

#include <netinet/in.h>
#include <sys/socket.h>

static int closed_port(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof sa;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        close(fd);
        return ntohs(sa.sin_port);
}

static void test_client_read_only_and_args(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct outcome o = {};
        struct connect_tag tag = { (char *) "k", (char *) "v" };
        char *keys[] = { (char *) "k", NULL };

        set_fake_credentials();
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &(struct connect_client_options){ .endpoint_url = "http://127.0.0.1:1" }, &c),
                         -EPROTONOSUPPORT);
        assert_int_equal(connect_client_new(e,
                                            &(struct connect_client_options){ .endpoint_url = "https://127.0.0.1:1",
                                                                              .read_only = true },
                                            &c),
                         0);

        assert_int_equal(connect_claim_number(c, "us-east-1", ARN_INSTANCE, "+12065550100", NULL, NULL, 0, TOKEN,
                                              on_result, &o),
                         -EROFS);
        assert_int_equal(connect_release_number(c, "us-east-1", "id", TOKEN, on_result, &o), -EROFS);
        assert_int_equal(connect_update_metadata(c, "us-east-1", "id", "d", TOKEN, on_result, &o), -EROFS);
        assert_int_equal(connect_associate_flow(c, "us-east-1", "id", "i", "f", on_result, &o), -EROFS);
        assert_int_equal(connect_tag_resource(c, "us-east-1", ARN_NUMBER, &tag, 1, on_result, &o), -EROFS);
        assert_int_equal(connect_untag_resource(c, "us-east-1", ARN_NUMBER, keys, 1, on_result, &o), -EROFS);
        /* bad region, missing argument */
        assert_int_equal(connect_describe_number(c, "us-east-1/../x", "id", on_result, &o), -EINVAL);
        assert_int_equal(connect_describe_number(c, "", "id", on_result, &o), -EINVAL);
        assert_int_equal(connect_describe_number(c, "us-east-1", NULL, on_result, &o), -EINVAL);
        assert_int_equal(connect_client_in_flight(c), 0);
        assert_int_equal(o.calls, 0);

        /* Reads are allowed; queued, not run from inside the call. */
        assert_int_equal(connect_describe_number(c, "us-east-1", "id", on_result, &o), 0);
        assert_int_equal(connect_client_in_flight(c), 1);
        assert_int_equal(o.calls, 0);

        /* cancel: the callback runs before cancel_all returns */
        connect_client_cancel_all(c);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.r, -ECANCELED);
        assert_int_equal(o.op, CONNECT_OP_DESCRIBE);
        assert_int_equal(connect_client_in_flight(c), 0);
}

static void test_client_free_with_pending(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        struct connect_client *c = NULL;
        struct outcome o = {};
        _cleanup_(freep) char *url = NULL;

        set_fake_credentials();
        url = strprintf("https://127.0.0.1:%d", closed_port());
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &(struct connect_client_options){ .endpoint_url = url }, &c), 0);
        for (int i = 0; i < 8; i++)
                assert_int_equal(connect_list_numbers(c, "us-east-1", ARN_INSTANCE,
                                                      &(struct connect_list_options){ .on_page = on_page_ignore },
                                                      on_result, &o), 0);
        assert_int_equal(connect_client_in_flight(c), 8);
        /* run one iteration so that some requests are on the wire */
        assert_true(sd_event_run(e, 0) >= 0);
        connect_client_free(c);
        assert_int_equal(o.calls, 0); /* dropped without callbacks */
        /* and nothing fires later */
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(o.calls, 0);
}

static void test_client_connection_refused(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct outcome o[3] = {};
        struct connect_stats st;
        _cleanup_(freep) char *url = NULL;

        set_fake_credentials();
        url = strprintf("https://127.0.0.1:%d", closed_port());
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e,
                                            &(struct connect_client_options){ .endpoint_url = url, .max_attempts = 2,
                                                                              .rate_default = 1000, .rate_burst = 10 },
                                            &c),
                         0);
        assert_int_equal(connect_describe_number(c, "us-east-1", "id-1", on_result, &o[0]), 0);
        assert_int_equal(connect_search_available(c, "us-west-2", ARN_INSTANCE, "US", "DID", NULL, 3, on_result, &o[1]), 0);
        assert_int_equal(connect_claim_number(c, "us-east-1", ARN_INSTANCE, "+12065550100", NULL, NULL, 0, TOKEN,
                                              on_result, &o[2]),
                         0);
        while (connect_client_in_flight(c) > 0)
                assert_true(sd_event_run(e, UINT64_MAX) >= 0);

        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(o[i].calls, 1);
                assert_int_equal(o[i].r, -ECONNREFUSED);
                assert_int_equal(o[i].kind, CONNECT_ERROR_TRANSIENT);
                assert_int_equal(o[i].attempts, 2); /* a connection error is retried */
        }
        connect_client_stats(c, &st);
        assert_int_equal(st.calls[CONNECT_OP_DESCRIBE], 2);
        assert_int_equal(st.calls[CONNECT_OP_SEARCH], 2);
        assert_int_equal(st.calls[CONNECT_OP_CLAIM], 2);
        assert_int_equal(st.retries, 3);
}

static void test_client_no_credentials(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(connect_client_freep) struct connect_client *c = NULL;
        struct outcome o = {};

        set_fake_credentials();
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &(struct connect_client_options){ .endpoint_url = "https://127.0.0.1:1" }, &c),
                         0);
        assert_int_equal(connect_describe_number(c, "us-east-1", "id", on_result, &o), 0);
        while (connect_client_in_flight(c) > 0)
                assert_true(sd_event_run(e, UINT64_MAX) >= 0);
        assert_int_equal(o.calls, 1);
        assert_int_equal(o.kind, CONNECT_ERROR_AUTH);
        assert_true(o.r < 0);
        assert_int_equal(o.attempts, 0); /* nothing was sent */
}

/* A callback that frees the client it was called from. */
struct free_in_cb {
        struct connect_client *c;
        unsigned calls;
};

static void on_result_free(_unused_ const struct connect_result *res, void *userdata) {
        struct free_in_cb *f = userdata;
        f->calls++;
        f->c = connect_client_free(f->c);
}

static void test_client_free_in_callback(_unused_ void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        struct free_in_cb f = {};
        _cleanup_(freep) char *url = NULL;

        set_fake_credentials();
        url = strprintf("https://127.0.0.1:%d", closed_port());
        setenv("AWS_MAX_ATTEMPTS", "1", 1);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(connect_client_new(e, &(struct connect_client_options){ .endpoint_url = url, .rate_burst = 10 },
                                            &f.c),
                         0);
        unsetenv("AWS_MAX_ATTEMPTS");
        for (int i = 0; i < 4; i++)
                assert_int_equal(connect_describe_number(f.c, "us-east-1", "id", on_result_free, &f), 0);
        while (f.c)
                assert_true(sd_event_run(e, UINT64_MAX) >= 0);
        /* the first outcome freed the client; the others never came */
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(e, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(f.calls, 1);
}

static int list_digest_of(const char *body, uint8_t d[static 32]) {
        return connect_list_digest(body, strlen(body), d);
}

static void test_list_digest_order_independent(_unused_ void **state) {
        uint8_t a[32], b[32], c[32];
        const char *e1 = "{\"PhoneNumberId\":\"1\",\"PhoneNumber\":\"+12065550100\",\"TargetArn\":\"t\"}";
        const char *e2 = "{\"PhoneNumberId\":\"2\",\"PhoneNumber\":\"+12065550101\",\"PhoneNumberDescription\":\"a, } ] \\\" {\"}";
        const char *e3 = "{\"PhoneNumberId\":\"3\",\"PhoneNumber\":\"+12065550102\",\"Tags\":{\"k\":[1,2]}}";
        _cleanup_(freep) char *abc = strprintf("{\"ListPhoneNumbersSummaryList\":[%s,%s,%s]}", e1, e2, e3);
        _cleanup_(freep) char *cab = strprintf("{ \"ListPhoneNumbersSummaryList\" : [ %s , %s,%s ] }", e3, e1, e2);
        _cleanup_(freep) char *ab = strprintf("{\"ListPhoneNumbersSummaryList\":[%s,%s]}", e1, e2);
        _cleanup_(freep) char *aab = strprintf("{\"ListPhoneNumbersSummaryList\":[%s,%s,%s]}", e1, e1, e2);
        _cleanup_(freep) char *bbb = strprintf("{\"ListPhoneNumbersSummaryList\":[%s,%s,%s]}", e2, e2, e2);
        _cleanup_(freep) char *ab_extra = strprintf("{\"ListPhoneNumbersSummaryList\":[%s,%s],\"X\":1}", e1, e2);

        /* The same entries in another order (and other spacing between
         * them): the same digest. */
        assert_int_equal(list_digest_of(abc, a), 0);
        assert_int_equal(list_digest_of(cab, b), 0);
        assert_memory_equal(a, b, 32);

        /* Anything else differs: an entry fewer, an entry twice (a sum,
         * not a XOR, so pairs do not cancel), another member. */
        assert_int_equal(list_digest_of(ab, c), 0);
        assert_memory_not_equal(a, c, 32);
        assert_int_equal(list_digest_of(aab, b), 0);
        assert_memory_not_equal(b, c, 32);
        assert_int_equal(list_digest_of(bbb, b), 0);
        assert_int_equal(list_digest_of(ab_extra, a), 0);
        assert_memory_not_equal(a, c, 32);
        assert_int_equal(list_digest_of("{\"ListPhoneNumbersSummaryList\":[]}", a), 0);
        assert_int_equal(list_digest_of("{}", b), 0);
        assert_memory_not_equal(a, b, 32);

        /* Not an object, or cut short: refused (then parsed, and refused
         * there). */
        assert_int_equal(list_digest_of("[]", a), -EBADMSG);
        assert_int_equal(list_digest_of("", a), -EBADMSG);
        assert_int_equal(list_digest_of("{\"ListPhoneNumbersSummaryList\":[{\"a\":\"}]}", a), -EBADMSG);
        assert_int_equal(list_digest_of("{\"ListPhoneNumbersSummaryList\":[1,2]", a), -EBADMSG);
        assert_int_equal(list_digest_of("{\"a\":1} x", a), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_error_forms),
                cmocka_unit_test(test_parse_error_keeps_no_secrets),
                cmocka_unit_test(test_quota_refusal),
                cmocka_unit_test(test_classify_table),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_parse_list),
                cmocka_unit_test(test_parse_describe),
                cmocka_unit_test(test_parse_search_claim),
                cmocka_unit_test(test_parse_bad_inputs),
                cmocka_unit_test(test_build_requests),
                cmocka_unit_test(test_build_requests_files),
                cmocka_unit_test(test_build_request_invalid),
                cmocka_unit_test(test_endpoints),
                cmocka_unit_test(test_client_read_only_and_args),
                cmocka_unit_test(test_client_free_with_pending),
                cmocka_unit_test(test_client_connection_refused),
                cmocka_unit_test(test_client_no_credentials),
                cmocka_unit_test(test_client_free_in_callback),
                cmocka_unit_test(test_list_digest_order_independent),
        };
        log_setup(LOG_TARGET_CONSOLE, LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
