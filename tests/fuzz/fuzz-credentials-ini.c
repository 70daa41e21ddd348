/* fuzz-credentials-ini.c: libFuzzer entry point for the shared
 * credentials/config file parser (credentials_parse_ini). The input is
 * not NUL-terminated, as the parser takes a length. Seeds:
 * tests/data/credentials/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "aws/credentials.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const struct {
                const char *profile;
                bool is_config;
        } runs[] = {
                { "default", false },
                { "default", true },
                { "prod", false },
                { "prod", true },
        };
        for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
                struct aws_credentials *c = NULL;
                char *error = NULL;
                int r = credentials_parse_ini((const char *) data, size, runs[i].profile, runs[i].is_config, &c,
                                              &error);
                /* the contract: credentials on success, a message on failure */
                if ((r == 0) != (c != NULL) || (r < 0 && r != -ENOMEM && !error))
                        abort();
                aws_credentials_free(c);
                free(error);
        }
        return 0;
}
