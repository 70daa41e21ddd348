/* fuzz-config.c: libFuzzer target for the desired-state parser. Any bytes
 * must give either a config or -EINVAL with problems, never a crash, a hang,
 * a leak or a read outside the input (the input is not NUL-terminated). */

#include <stdint.h>
#include <stdio.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct config_problems p = {};
        struct config *c = NULL;
        int r = config_parse((const char *) data, size, &c, &p);

        if (r == 0) {
                if (!c || p.n != 0)
                        __builtin_trap();
                /* walk what a caller walks */
                (void) config_total_wanted(c);
                (void) config_rate_for(c, "ClaimPhoneNumber");
                for (size_t i = 0; i < c->n_targets; i++)
                        if (config_find_target(c, c->targets[i].name) == NULL ||
                            !target_find_pool(&c->targets[i], c->targets[i].pools[0].name))
                                __builtin_trap();
        } else if (r == -EINVAL) {
                if (c || p.n == 0)
                        __builtin_trap();
                for (size_t i = 1; i < p.n; i++) /* sorted, one line each */
                        if (p.items[i - 1].line > p.items[i].line || strchr(p.items[i].message, '\n'))
                                __builtin_trap();
                FILE *devnull = fopen("/dev/null", "we");
                if (devnull) {
                        config_problems_print(&p, "fuzz.yaml", devnull);
                        fclose(devnull);
                }
        } else if (r != -ENOMEM)
                __builtin_trap();

        config_free(c);
        config_problems_clear(&p);
        return 0;
}
