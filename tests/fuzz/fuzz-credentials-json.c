/* fuzz-credentials-json.c: libFuzzer entry point for the container/IMDS
 * credentials document parser (credentials_parse_json) and the ISO-8601
 * reader it uses. Seeds: tests/data/credentials/json/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct aws_credentials *c = NULL;
        int r = credentials_parse_json((const char *) data, size, &c);
        if ((r == 0) != (c != NULL))
                abort();
        if (c && (!c->access_key_id || !c->secret_access_key))
                abort();
        aws_credentials_free(c);

        /* the same bytes as an Expiration value */
        char *s = strndup((const char *) data, size);
        if (s) {
                uint64_t t;
                (void) credentials_parse_iso8601(s, &t);
                free(s);
        }
        return 0;
}
