/* prune.h: forgetting the records of numbers the service is done with, so
 * that the state file's size follows the numbers held, not the history.
 * Pure: time is an argument; no I/O, no logging. The rule and why it is
 * safe are in docs/design.md ("Pruning the state"). */
#pragma once

#include "state.h"

/* A record in a final phase is kept this long after it was first seen
 * there: far beyond the one-day FAILED window, the hour an intent is
 * replayed for, and a release still running at Connect. */
#define PRUNE_RETENTION_SEC (7 * 86400)

/* Whether record n is done with: GIVEN_UP, RELEASED, GONE or MOVED, not
 * listed on its target, and nothing of it in flight. */
bool prune_record_final(const struct state_number *n);

/* Stamps ended_at on records newly final (and clears it on records that
 * are no longer), drops churn entries older than the ledger's 180 days,
 * and removes the records final for PRUNE_RETENTION_SEC,
 * counting each in its target's `pruned`, which the pools' view digests
 * include (so that a ClientToken can never be derived twice). Returns 1
 * when the state changed (it must be saved), 0 when not, -ENOMEM (then
 * some records may have been stamped and pruned, none half). *ret_pruned
 * (may be NULL): records removed. */
int state_prune(struct state *s, uint64_t now, unsigned *ret_pruned);
