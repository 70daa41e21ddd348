/* fuzz-connect-json.c: libFuzzer entry point over every connect_parse_*
 * function (the JSON that comes back from the network). Each input goes
 * through all parsers; whatever they return must be freed cleanly and must
 * satisfy the parsers' promises (required members set on success). */
#include <stdint.h>
#include <stdlib.h>

#include "connect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok) {
        if (!ok)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const long statuses[] = { 400, 403, 404, 409, 429, 500, 503, 200 };
        const char *body = (const char *) data;
        struct connect_error e = {};
        struct connect_number *nums = NULL, num = {};
        struct connect_available *avail = NULL;
        char *token = NULL, *id = NULL, *arn = NULL;
        size_t n = 0;

        /* The error parser also reads a header value: take it from the
         * input's first line when there is one, so that both the header
         * cleaning and the body path are explored. */
        const uint8_t *nl = memchr(data, '\n', size);
        char *header = NULL;
        if (nl) {
                header = strndup(body, (size_t) (nl - data));
                check(header != NULL);
        }
        long status = statuses[(size > 0 ? data[0] : 0) % (sizeof statuses / sizeof statuses[0])];
        if (connect_parse_error(status, header, body, size, &e) == 0) {
                check(e.http_status == status);
                check(e.kind != CONNECT_ERROR_NONE);
                check(!e.message || !strchr(e.message, '\n'));
                (void) connect_classify_error(status, e.code, e.message);
                (void) connect_is_quota_refusal(e.code, e.message);
        }
        connect_error_clear(&e);
        free(header);

        if (connect_parse_list(body, size, &nums, &n, &token) == 0) {
                for (size_t i = 0; i < n; i++) {
                        check(nums[i].id && nums[i].phone_number);
                        connect_number_clear(&nums[i]);
                }
                check(!token || *token);
                free(nums);
                free(token);
        }

        if (connect_parse_describe(body, size, &num) == 0) {
                check(num.id && num.phone_number && num.described);
                for (size_t i = 0; i < num.n_tags; i++)
                        check(num.tags[i].key && num.tags[i].value);
                (void) connect_number_tag(&num, "connect-numbers:pool");
                (void) connect_is_quota_refusal(NULL, num.status_message);
                connect_number_clear(&num);
        }

        if (connect_parse_search(body, size, &avail, &n) == 0) {
                for (size_t i = 0; i < n; i++) {
                        check(avail[i].phone_number != NULL);
                        free(avail[i].phone_number);
                        free(avail[i].country);
                        free(avail[i].type);
                }
                free(avail);
        }

        if (connect_parse_claim(body, size, &id, &arn) == 0) {
                check(id && *id);
                free(id);
                free(arn);
        }
        return 0;
}
