/* reconcile.h: the planner. (desired config, const state, now) -> plan.
 * It reads the state (what lifecycle.c made of the lists, describes and
 * outcomes) and never changes it: no I/O, no clock, no logging, and the
 * same inputs give the same plan, byte for byte.
 *
 * A pass, as the executor (pass.c) drives it:
 *   1. each target's list      -> lifecycle_ingest_list()
 *   2. reconcile_describe_wanted() -> DescribePhoneNumber each ->
 *      lifecycle_ingest_describe() / lifecycle_ingest_not_found()
 *   3. lifecycle_tick() (what time alone decides), then reconcile_plan()
 *   4. each step run, its outcome through lifecycle_*() */
#pragma once

#include "config.h"
#include "lifecycle.h"
#include "plan.h"
#include "state.h"

/* Ids to describe this pass: unknown numbers, IN_PROGRESS ones, numbers
 * whose pool settings changed, ours that the list no longer shows, and up
 * to audit_budget numbers whose daily audit is due. NULL-terminated; each
 * entry "TARGET\tPHONE_NUMBER_ID". */
int reconcile_describe_wanted(const struct config *c, const struct state *s, uint64_t now, unsigned audit_budget,
                              char ***ret);

/* The plan for this moment. */
int reconcile_plan(const struct config *c, const struct state *s, uint64_t now, struct plan **ret);

/* The ClientToken of a claim: a lower-case UUID derived from (target, pool,
 * view digest, slot, attempt), so that two instances with the same view
 * collide into one claim instead of two (docs/design.md). */
void reconcile_claim_token(const char *target, const char *pool, const char *view_digest, unsigned slot,
                           unsigned attempt, char ret[static 37]);
/* The token of the first attempt from *attempt on whose token the target has
 * not spent (a fresh claim refused as "not available": a process never
 * reuses its own refused token); *attempt becomes that attempt. */
void reconcile_fresh_claim_token(const struct state *s, const char *target, const char *pool,
                                 const char *view_digest, unsigned slot, unsigned *attempt, char ret[static 37]);

/* A search result fits the pool of claim step s: its country, type and
 * prefix are the step's. Connect offers only such numbers; an answer that
 * does not (a broken or hostile endpoint) must never make a pool claim a
 * number it did not ask for. A result without country or type does not
 * fit. */
bool reconcile_candidate_fits(const struct plan_step *s, const struct connect_available *a);
