/* fuzz-state.c: libFuzzer target for the state file reader. Any bytes must
 * give either a state or -EBADMSG (-ENOMEM aside), never a crash, a hang, a
 * leak or a read outside the input (it is not NUL-terminated). A state that
 * loads must write back to a document that loads to the same text (the
 * file is a fixed point after one save), and the planner must cope with it:
 * a state file is input the daemon did not necessarily write. */

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "reconcile.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char yaml[] =
        "targets:\n"
        "  support-us:\n"
        "    arn: arn:aws:connect:us-east-1:111122223333:instance/0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11\n"
        "    release_excess: true\n"
        "    pools:\n"
        "      main: {country: US, type: DID, count: 2, prefix: \"+1206\", description: d, tags: {team: a}, "
        "contact_flow: f}\n"
        "      adopt: {country: US, type: DID, count: 1, adopt: true}\n"
        "  tdg:\n"
        "    arn: arn:aws:connect:us-east-1:111122223333:traffic-distribution-group/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n"
        "    pools:\n"
        "      main: {country: US, type: DID, count: 0}\n";

static const struct config *fuzz_config(void) {
        static struct config *c;
        if (!c && config_parse(yaml, sizeof yaml - 1, &c, NULL) < 0)
                __builtin_trap();
        return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct state *s = NULL;
        int r = state_from_json((const char *) data, size, &s);
        if (r == -EBADMSG || r == -ENOMEM) {
                if (s)
                        __builtin_trap();
                return 0;
        }
        if (r != 0 || !s)
                __builtin_trap();

        char *a = NULL, *b = NULL;
        struct state *s2 = NULL;
        if (state_to_json(s, &a) == 0) {
                if (state_from_json(a, strlen(a), &s2) != 0)
                        __builtin_trap();
                if (state_to_json(s2, &b) != 0 || strcmp(a, b) != 0)
                        __builtin_trap();
        }
        free(a);
        free(b);
        state_free(s2);

        /* What a pass does with a loaded state, without the network. */
        const struct config *c = fuzz_config();
        uint64_t now = 1800000000;
        char **ids = NULL;
        if (reconcile_describe_wanted(c, s, now, 5, &ids) == 0)
                strv_free(ids);
        struct lifecycle_events ev = {0};
        lifecycle_tick(s, c, now, &ev);
        struct plan *p = NULL;
        if (reconcile_plan(c, s, now, &p) == 0) {
                char *t = NULL, *j = NULL;
                if (plan_format_text(p, &t) == 0)
                        free(t);
                if (plan_format_json(p, &j) == 0)
                        free(j);
                plan_free(p);
        }
        lifecycle_events_clear(&ev);
        state_free(s);
        return 0;
}
