/* prune.c: the state forgets the numbers it is done with (prune.h). */
#include "prune.h"

/* Something of the record is still under way: a claim whose token is on
 * disk (an intent, a claim in progress). Every kind of intent a record can
 * carry belongs here: a record with one is never pruned. */
static bool prune_record_busy(const struct state_number *n) {
        /* A claim or a move in flight, a move still wanted, a pin's
         * episode (its next hourly try is due from this record). */
        return n->client_token != NULL || n->move_token != NULL || n->move_target != NULL || n->pin_logged;
}

bool prune_record_final(const struct state_number *n) {
        if (!n || n->listed || prune_record_busy(n))
                return false;
        switch (n->phase) {
        case PHASE_GIVEN_UP:
        case PHASE_RELEASED:
        case PHASE_GONE:
        case PHASE_MOVED:
                return true;
        default:
                return false;
        }
}

int state_prune(struct state *s, uint64_t now, unsigned *ret_pruned) {
        unsigned pruned = 0;
        bool changed = false;
        int r = 0;

        if (!s)
                return -EINVAL;
        /* Backwards: removing a record moves only the ones after it. */
        for (size_t i = s->n_numbers; i-- > 0;) {
                struct state_number *n = &s->numbers[i];
                if (!prune_record_final(n)) {
                        if (n->ended_at) {
                                n->ended_at = 0;
                                changed = true;
                        }
                        continue;
                }
                if (!n->ended_at || n->ended_at > now) {
                        /* First seen final now (or stamped by a clock that
                         * has since gone back): the retention starts now. */
                        n->ended_at = now;
                        changed = true;
                        continue;
                }
                if (now - n->ended_at < PRUNE_RETENTION_SEC)
                        continue;
                /* The target's count first: once it is saved, the pools'
                 * view digests can never be those of an earlier view. */
                struct state_target *t = state_get_target(s, n->target, NULL);
                if (!t) {
                        r = -ENOMEM;
                        break;
                }
                t->pruned++;
                n = &s->numbers[i]; /* state_get_target may add a target, never a number */
                state_remove_number(s, n);
                pruned++;
                changed = true;
        }
        if (r < 0)
                return r;
        /* The churn ledger keeps its own 180 days. */
        for (size_t i = 0; i < s->n_targets; i++) {
                size_t before = s->targets[i].n_churn;
                if (state_churn_prune(&s->targets[i], now) != before)
                        changed = true;
        }
        if (ret_pruned)
                *ret_pruned = pruned;
        return changed ? 1 : 0;
}
