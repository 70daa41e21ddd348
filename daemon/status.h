/* status.h: --status, what the state directory says (no network): per
 * target and pool, desired vs held, in progress, failed claims and their
 * retry deadlines, the last quota error, the last and next pass. */
#pragma once

#include <stdio.h>

#include "config.h"
#include "state.h"

/* config may be NULL (the YAML could not be read): desired counts are then
 * unknown. now: wall seconds. */
int status_format(const struct state *s, const struct config *c, uint64_t now, bool json, char **ret);
