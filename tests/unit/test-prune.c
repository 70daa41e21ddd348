/* test-prune.c: the state forgets the numbers it is done with
 * (daemon/prune.c), and a pruned record can never make a ClientToken
 * repeat (docs/design.md, "Pruning the state"). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "config.h"
#include "lifecycle.h"
#include "prune.h"
#include "reconcile.h"
#include "state.h"

#define NOW UINT64_C(1800000000)
#define TARGET "support-us"

static struct config *config_count(unsigned count) {
        char text[1024];
        snprintf(text, sizeof text,
                 "targets:\n"
                 "  " TARGET ":\n"
                 "    arn: arn:aws:connect:us-east-1:111122223333:instance/0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11\n"
                 "    quota: 50\n"
                 "    pools:\n"
                 "      main:\n"
                 "        country: US\n"
                 "        type: DID\n"
                 "        count: %u\n",
                 count);
        struct config *c = NULL;
        struct config_problems problems = {0};
        int r = config_parse(text, strlen(text), &c, &problems);
        config_problems_clear(&problems);
        assert_int_equal(r, 0);
        return c;
}

static struct state_number *add(struct state *s, const char *phone, enum number_phase phase, bool listed) {
        struct state_number *n = state_add_number(s, TARGET, phone);
        assert_non_null(n);
        assert_int_equal(state_set(s, &n->pool, "main"), 0);
        n->phase = phase;
        n->listed = listed;
        return n;
}

/* Which records are final, from a table. */
static void test_final_records(void **unused) {
        (void) unused;
        static const struct {
                enum number_phase phase;
                bool listed, token, final;
        } cases[] = {
                {PHASE_UNKNOWN, false, false, false},   {PHASE_INTENT, false, true, false},
                {PHASE_IN_PROGRESS, false, true, false}, {PHASE_CLAIMED, true, false, false},
                {PHASE_CLAIMED, false, false, false},   {PHASE_FAILED, false, false, false},
                {PHASE_FOREIGN, false, false, false},   {PHASE_GIVEN_UP, false, false, true},
                {PHASE_GIVEN_UP, true, false, false},   {PHASE_GIVEN_UP, false, true, false},
                {PHASE_RELEASED, false, false, true},   {PHASE_RELEASED, true, false, false},
                {PHASE_RELEASED, false, true, false},   {PHASE_GONE, false, false, true},
                {PHASE_GONE, false, true, false},       {PHASE_MOVED, false, false, true},
                {PHASE_MOVED, true, false, false},
        };
        _cleanup_(state_freep) struct state *s = state_new();
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char phone[32];
                snprintf(phone, sizeof phone, "+1206555%04zu", i);
                struct state_number *n = add(s, phone, cases[i].phase, cases[i].listed);
                if (cases[i].token)
                        n->client_token = strdup("8c6f1d2e-0000-4000-8000-000000000000");
                if (prune_record_final(n) != cases[i].final)
                        fail_msg("case %zu (%s, listed %d, token %d): final %d", i, number_phase_name(cases[i].phase),
                                 cases[i].listed, cases[i].token, !cases[i].final);
        }
        assert_false(prune_record_final(NULL));
}

/* Retention: stamped when first seen final, removed PRUNE_RETENTION_SEC
 * later, counted in the target; a record that is no longer final loses its
 * stamp; the stamp and the count survive a save. */
static void test_retention(void **unused) {
        (void) unused;
        _cleanup_(state_freep) struct state *s = state_new();
        assert_non_null(state_get_target(s, TARGET, NULL));
        add(s, "+12065550001", PHASE_CLAIMED, true);
        add(s, "+12065550002", PHASE_RELEASED, false);
        add(s, "+12065550003", PHASE_GONE, false);
        struct state_target *st = state_find_target(s, TARGET);
        assert_int_equal(state_churn_add(st, NOW - 181 * 86400, true, "+12065550009"), 0);
        assert_int_equal(state_churn_add(st, NOW - 10 * 86400, false, "+12065550001"), 0);
        unsigned pruned = 99;

        assert_int_equal(state_prune(s, NOW, &pruned), 1);
        assert_int_equal(pruned, 0);
        assert_int_equal(state_find_number(s, TARGET, "+12065550002")->ended_at, NOW);
        assert_int_equal(state_find_number(s, TARGET, "+12065550001")->ended_at, 0);
        /* The churn ledger keeps 180 days. */
        assert_int_equal(st->n_churn, 1);
        assert_string_equal(st->churn[0].phone_number, "+12065550001");
        /* Nothing new: nothing to save. */
        assert_int_equal(state_prune(s, NOW + 10, &pruned), 0);

        /* The GONE number is listed again: it is no longer final. */
        state_find_number(s, TARGET, "+12065550003")->phase = PHASE_UNKNOWN;
        assert_int_equal(state_prune(s, NOW + 20, NULL), 1);
        assert_int_equal(state_find_number(s, TARGET, "+12065550003")->ended_at, 0);

        /* A save and a load keep the stamp. */
        _cleanup_(freep) char *text = NULL;
        assert_int_equal(state_to_json(s, &text), 0);
        _cleanup_(state_freep) struct state *t = NULL;
        assert_int_equal(state_from_json(text, strlen(text), &t), 0);
        assert_int_equal(state_find_number(t, TARGET, "+12065550002")->ended_at, NOW);

        assert_int_equal(state_prune(t, NOW + PRUNE_RETENTION_SEC - 1, &pruned), 0);
        assert_int_equal(pruned, 0);
        assert_int_equal(state_prune(t, NOW + PRUNE_RETENTION_SEC, &pruned), 1);
        assert_int_equal(pruned, 1);
        assert_null(state_find_number(t, TARGET, "+12065550002"));
        assert_non_null(state_find_number(t, TARGET, "+12065550001"));
        assert_int_equal(state_find_target(t, TARGET)->pruned, 1);

        free(text);
        text = NULL;
        assert_int_equal(state_to_json(t, &text), 0);
        _cleanup_(state_freep) struct state *u = NULL;
        assert_int_equal(state_from_json(text, strlen(text), &u), 0);
        assert_int_equal(state_find_target(u, TARGET)->pruned, 1);
}

/* The plain case: a pool claims number A with the token of the empty view,
 * releases it, and wants a number again after A's record was pruned. The
 * view is empty again, yet the token must not be A's. */
static void test_pruned_release_keeps_token_fresh(void **unused) {
        (void) unused;
        _cleanup_(config_freep) struct config *c = config_count(1);
        _cleanup_(state_freep) struct state *s = state_new();
        assert_int_equal(lifecycle_ingest_list(s, c, TARGET, NULL, 0), 0);
        _cleanup_(plan_freep) struct plan *p1 = NULL, *p2 = NULL;
        assert_int_equal(reconcile_plan(c, s, NOW, &p1), 0);
        assert_int_equal(p1->n_steps, 1);
        assert_int_equal(p1->steps[0].action, STEP_CLAIM);
        add(s, "+12065550100", PHASE_RELEASED, false);
        assert_int_equal(state_prune(s, NOW, NULL), 1);
        assert_int_equal(state_prune(s, NOW + PRUNE_RETENTION_SEC, NULL), 1);
        assert_int_equal(s->n_numbers, 0);
        assert_int_equal(reconcile_plan(c, s, NOW + PRUNE_RETENTION_SEC, &p2), 0);
        assert_int_equal(p2->n_steps, 1);
        assert_string_not_equal(p1->steps[0].client_token, p2->steps[0].client_token);
        for (size_t a = 0; a < p1->steps[0].n_claim_tokens; a++)
                for (size_t b = 0; b < p2->steps[0].n_claim_tokens; b++)
                        assert_string_not_equal(p1->steps[0].claim_tokens[a], p2->steps[0].claim_tokens[b]);
}

/* Tokens sent so far, each with the number it was sent for. */
struct sent {
        char token[37];
        char phone[32];
};

static uint64_t rnd_state = 0x9e3779b97f4a7c15u;
static unsigned rnd(unsigned n) {
        rnd_state ^= rnd_state << 13;
        rnd_state ^= rnd_state >> 7;
        rnd_state ^= rnd_state << 17;
        return (unsigned) (rnd_state % n);
}

static struct state_number *pick(struct state *s, enum number_phase phase) {
        size_t n = 0;
        for (size_t i = 0; i < s->n_numbers; i++)
                n += s->numbers[i].phase == phase;
        if (!n)
                return NULL;
        size_t k = rnd((unsigned) n);
        for (size_t i = 0; i < s->n_numbers; i++)
                if (s->numbers[i].phase == phase && k-- == 0)
                        return &s->numbers[i];
        return NULL;
}

/* Histories of churn (counts up and down, claims that succeed or are given
 * up, releases, numbers gone or moved, time passing and pruning), each
 * claim sent with every attempt token the plan offers: no token is ever
 * offered for a second number. Numbers are never reused, so any token
 * offered twice would be a repeat. */
static void test_pruned_records_never_repeat_a_token(void **unused) {
        (void) unused;
        for (unsigned history = 0; history < 20; history++) {
                _cleanup_(state_freep) struct state *s = state_new();
                struct config *c = config_count(2);
                size_t n_sent = 0, cap = 4096;
                struct sent *sent = calloc(cap, sizeof *sent);
                assert_non_null(sent);
                uint64_t now = NOW;
                unsigned next_phone = 0, pruned_total = 0;
                assert_int_equal(lifecycle_ingest_list(s, c, TARGET, NULL, 0), 0);
                for (unsigned step = 0; step < 300; step++) {
                        struct state_number *n;
                        switch (rnd(8)) {
                        case 0:
                                config_free(c);
                                c = config_count(rnd(4));
                                break;
                        case 1:
                        case 2: {
                                _cleanup_(plan_freep) struct plan *p = NULL;
                                assert_int_equal(reconcile_plan(c, s, now, &p), 0);
                                for (size_t i = 0; i < p->n_steps; i++) {
                                        const struct plan_step *st = &p->steps[i];
                                        if (st->action != STEP_CLAIM)
                                                continue;
                                        char phone[32];
                                        snprintf(phone, sizeof phone, "+1206%07u", next_phone++);
                                        for (size_t a = 0; a < st->n_claim_tokens; a++)
                                                for (size_t k = 0; k < n_sent; k++)
                                                        if (streq(sent[k].token, st->claim_tokens[a]))
                                                                fail_msg("history %u step %u: token %s, sent for %s, "
                                                                         "offered again for %s (%u pruned)",
                                                                         history, step, st->claim_tokens[a],
                                                                         sent[k].phone, phone, pruned_total);
                                        /* Every attempt token may reach Connect. */
                                        for (size_t a = 0; a < st->n_claim_tokens && n_sent < cap; a++) {
                                                snprintf(sent[n_sent].token, sizeof sent[n_sent].token, "%s",
                                                         st->claim_tokens[a]);
                                                snprintf(sent[n_sent].phone, sizeof sent[n_sent].phone, "%s", phone);
                                                n_sent++;
                                        }
                                        bool ok = rnd(4) != 0;
                                        add(s, phone, ok ? PHASE_CLAIMED : PHASE_GIVEN_UP, ok);
                                        break; /* one claim per step */
                                }
                                break;
                        }
                        case 3:
                                if ((n = pick(s, PHASE_CLAIMED)) != NULL) {
                                        n->phase = PHASE_RELEASED;
                                        n->listed = false;
                                }
                                break;
                        case 4:
                                if ((n = pick(s, PHASE_CLAIMED)) != NULL) {
                                        n->phase = rnd(2) ? PHASE_GONE : PHASE_MOVED;
                                        n->listed = false;
                                }
                                break;
                        default: {
                                unsigned k = 0;
                                now += 2 * 86400 + rnd(5 * 86400);
                                assert_true(state_prune(s, now, &k) >= 0);
                                pruned_total += k;
                                break;
                        }
                        }
                }
                /* The histories did prune, and the state holds what is held. */
                assert_true(pruned_total > 0);
                config_free(c);
                free(sent);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_final_records),
                cmocka_unit_test(test_retention),
                cmocka_unit_test(test_pruned_release_keeps_token_fresh),
                cmocka_unit_test(test_pruned_records_never_repeat_a_token),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
