/* manager.h: the one object that owns the sd-event loop, the Connect
 * client, the configuration, the state (and its lock), the pass timer and
 * the signal sources. Service mode runs passes on the interval; --once and
 * --plan run a single pass through the same machinery. */
#pragma once

#include "config.h"
#include "util.h"

struct manager_options {
        const char *config_path;
        const char *state_dir;
        usec_t wait_usec;            /* --once: follow IN_PROGRESS claims this long */
        bool json;                   /* --plan --json */
        bool read_only;              /* --plan: no lock, no directory made, the state read but never written */
};

struct manager;

/* Takes ownership of config. Locks the state directory: -EBUSY when another
 * process works on it (the message is logged). A read-only manager (--plan)
 * takes no lock: it reads the last state the owner saved, which is always
 * written whole, so it can run beside the service. */
int manager_new(const struct manager_options *o, struct config *config, struct manager **ret);
struct manager *manager_free(struct manager *m);
DEFINE_FREEP(struct manager, manager_free)

/* Runs until SIGTERM/SIGINT; returns the exit status (0 after a clean stop). */
int manager_run_service(struct manager *m);
/* One pass; returns the exit status of connect-numbersd(8). plan: read-only, prints the plan. */
int manager_run_once(struct manager *m, bool plan);
