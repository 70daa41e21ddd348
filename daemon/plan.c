/* plan.c: the plan as data: its steps' names, freeing it, the tags a
 * claim sends, and the plan's two printed forms (a table for people, JSON
 * for scripts). Pure. */
#include "plan.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

/* The tags a claim of pool p sends: the ownership tag first, then the
 * pool's own (connect-numbers.yaml(5)). */
int plan_pool_claim_tags(const struct target_config *t, const struct pool_config *p, struct config_tag **ret,
                         size_t *ret_n) {
        size_t n = p->n_tags + 1;
        struct config_tag *tags = calloc(n, sizeof *tags);
        if (!tags)
                return -ENOMEM;
        tags[0].key = strdup(OWNERSHIP_TAG_KEY);
        tags[0].value = strprintf("%s/%s", t->name, p->name);
        for (size_t i = 0; i < p->n_tags; i++) {
                tags[i + 1].key = strdup(p->tags[i].key);
                tags[i + 1].value = strdup(p->tags[i].value ? p->tags[i].value : "");
        }
        for (size_t i = 0; i < n; i++)
                if (!tags[i].key || !tags[i].value) {
                        for (size_t k = 0; k < n; k++) {
                                free(tags[k].key);
                                free(tags[k].value);
                        }
                        free(tags);
                        return -ENOMEM;
                }
        *ret = tags;
        *ret_n = n;
        return 0;
}

void plan_tags_free(struct config_tag *t, size_t n) {
        if (!t)
                return;
        for (size_t i = 0; i < n; i++) {
                free(t[i].key);
                free(t[i].value);
        }
        free(t);
}

static const char *const action_names[_STEP_ACTION_MAX] = {
        [STEP_CLAIM] = "claim",
        [STEP_RETRY_CLAIM] = "retry_claim",
        [STEP_REPLAY_CLAIM] = "replay_claim",
        [STEP_GIVE_UP] = "give_up",
        [STEP_UPDATE_DESCRIPTION] = "update_description",
        [STEP_TAG] = "tag",
        [STEP_UNTAG] = "untag",
        [STEP_ASSOCIATE_FLOW] = "associate_flow",
        [STEP_ADOPT] = "adopt",
        [STEP_RELEASE] = "release",
        [STEP_REPORT_EXCESS] = "report_excess",
        [STEP_REPORT_ORPHAN] = "report_orphan",
        [STEP_REPORT_MISMATCH] = "report_mismatch",
        [STEP_REPORT_UNMANAGED] = "report_unmanaged",
        [STEP_REPORT_QUOTA] = "report_quota",
        [STEP_REPORT_UNKNOWN] = "report_unknown",
        [STEP_REPORT_MOVED] = "report_moved",
        [STEP_MOVE] = "move",
        [STEP_CLAIM_PINNED] = "claim_pinned",
        [STEP_TAKE_OVER] = "take_over",
        [STEP_REPORT_WAITING] = "report_waiting",
};

const char *step_action_name(enum step_action a) {
        if ((size_t) a >= ELEMENTSOF(action_names))
                return NULL;
        return action_names[a];
}

bool step_action_is_change(enum step_action a) {
        switch (a) {
        case STEP_CLAIM:
        case STEP_RETRY_CLAIM:
        case STEP_REPLAY_CLAIM:
        case STEP_GIVE_UP:
        case STEP_UPDATE_DESCRIPTION:
        case STEP_TAG:
        case STEP_UNTAG:
        case STEP_ASSOCIATE_FLOW:
        case STEP_ADOPT:
        case STEP_RELEASE:
        case STEP_MOVE:
        case STEP_CLAIM_PINNED:
        case STEP_TAKE_OVER:
                return true;
        default:
                return false;
        }
}

struct plan *plan_free(struct plan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_steps; i++) {
                struct plan_step *s = &p->steps[i];
                free(s->target);
                free(s->target_arn);
                free(s->source);
                free(s->source_arn);
                free(s->region);
                free(s->pool);
                free(s->phone_number);
                free(s->phone_number_id);
                free(s->phone_number_arn);
                free(s->description);
                plan_tags_free(s->tags, s->n_tags);
                strv_free(s->keys);
                free(s->contact_flow);
                free(s->instance_id);
                free(s->country);
                free(s->type);
                free(s->prefix);
                free(s->detail);
        }
        free(p->steps);
        for (size_t i = 0; i < p->n_pools; i++) {
                free(p->pools[i].target);
                free(p->pools[i].pool);
        }
        free(p->pools);
        free(p);
        return NULL;
}

size_t plan_count_changes(const struct plan *p) {
        size_t n = 0;
        for (size_t i = 0; p && i < p->n_steps; i++)
                if (step_action_is_change(p->steps[i].action))
                        n++;
        return n;
}

/* Steps that call a mutating API: a give_up changes only the state. */
size_t plan_count_api_changes(const struct plan *p) {
        size_t n = 0;
        for (size_t i = 0; p && i < p->n_steps; i++)
                if (step_action_is_change(p->steps[i].action) && p->steps[i].action != STEP_GIVE_UP)
                        n++;
        return n;
}

int plan_format_text(const struct plan *p, char **ret) {
        if (!p || p->n_steps == 0) {
                char *s = strdup("nothing to do\n");
                if (!s)
                        return -ENOMEM;
                *ret = s;
                return 0;
        }
        size_t w_action = strlen("ACTION"), w_where = strlen("TARGET/POOL"), w_num = strlen("NUMBER");
        for (size_t i = 0; i < p->n_steps; i++) {
                const struct plan_step *s = &p->steps[i];
                w_action = MAX(w_action, strlen(step_action_name(s->action)));
                w_where = MAX(w_where, strlen(s->target ? s->target : "-") + 1 + strlen(s->pool ? s->pool : "-"));
                w_num = MAX(w_num, strlen(s->phone_number ? s->phone_number : "-"));
        }
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "%-*s  %-*s  %-*s  %s\n", (int) w_action, "ACTION", (int) w_where, "TARGET/POOL", (int) w_num,
                "NUMBER", "DETAIL");
        for (size_t i = 0; i < p->n_steps; i++) {
                const struct plan_step *s = &p->steps[i];
                _cleanup_(freep) char *where = strprintf("%s/%s", s->target ? s->target : "-", s->pool ? s->pool : "-");
                fprintf(f, "%-*s  %-*s  %-*s  %s\n", (int) w_action, step_action_name(s->action), (int) w_where,
                        where ? where : "?", (int) w_num, s->phone_number ? s->phone_number : "-",
                        s->detail ? s->detail : "");
        }
        size_t changes = plan_count_changes(p);
        if (changes)
                fprintf(f, "%zu change%s pending\n", changes, changes == 1 ? "" : "s");
        else
                fprintf(f, "no changes pending (reports only)\n");
        if (fclose(f) != 0 || !buf) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}

static json_t *json_str_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

json_t *pool_figures_json(const char *target, const char *pool, const struct pool_figures *f) {
        json_t *o = json_pack("{s:s?, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "target", target, "pool", pool,
                              "desired", (json_int_t) f->desired, "claimed", (json_int_t) f->claimed, "in_progress",
                              (json_int_t) f->in_progress, "failed_pending", (json_int_t) f->failed_pending, "moving",
                              (json_int_t) f->moving, "pins_missing", (json_int_t) f->pins_missing, "excess",
                              (json_int_t) f->excess);
        if (!o)
                return NULL;
        char b[32];
        json_object_set_new(o, "next_retry",
                            f->next_retry_at ? json_string(format_timestamp_sec(f->next_retry_at, b, sizeof b)) : json_null());
        json_object_set_new(o, "retry_deadline",
                            f->earliest_deadline ? json_string(format_timestamp_sec(f->earliest_deadline, b, sizeof b))
                                                 : json_null());
        return o;
}

int plan_format_json(const struct plan *p, char **ret) {
        json_t *root = json_object(), *steps = json_array(), *pools = json_array();
        int r = 0;
        if (!root || !steps || !pools) {
                json_decref(root);
                json_decref(steps);
                json_decref(pools);
                return -ENOMEM;
        }
        json_object_set_new(root, "steps", steps);
        json_object_set_new(root, "pools", pools);
        for (size_t i = 0; p && i < p->n_steps && r >= 0; i++) {
                const struct plan_step *s = &p->steps[i];
                json_t *o = json_object();
                if (!o || json_array_append_new(steps, o) < 0) {
                        r = -ENOMEM;
                        break;
                }
                json_object_set_new(o, "action", json_string(step_action_name(s->action)));
                json_object_set_new(o, "target", json_str_or_null(s->target));
                json_object_set_new(o, "target_arn", json_str_or_null(s->target_arn));
                json_object_set_new(o, "pool", json_str_or_null(s->pool));
                if (s->phone_number)
                        json_object_set_new(o, "phone_number", json_string(s->phone_number));
                if (s->phone_number_id)
                        json_object_set_new(o, "phone_number_id", json_string(s->phone_number_id));
                if (s->action == STEP_MOVE) {
                        json_object_set_new(o, "from_target", json_str_or_null(s->source));
                        json_object_set_new(o, "from_arn", json_str_or_null(s->source_arn));
                }
                if (s->action == STEP_CLAIM || s->action == STEP_REPLAY_CLAIM)
                        json_object_set_new(o, "slot", json_integer(s->slot));
                if (s->action == STEP_CLAIM) {
                        json_object_set_new(o, "country", json_str_or_null(s->country));
                        json_object_set_new(o, "type", json_str_or_null(s->type));
                        if (s->prefix)
                                json_object_set_new(o, "prefix", json_string(s->prefix));
                }
                if (s->description && (s->action == STEP_CLAIM || s->action == STEP_UPDATE_DESCRIPTION))
                        json_object_set_new(o, "description", json_string(s->description));
                if (s->n_tags) {
                        json_t *t = json_object();
                        for (size_t k = 0; t && k < s->n_tags; k++)
                                json_object_set_new(t, s->tags[k].key, json_str_or_null(s->tags[k].value));
                        json_object_set_new(o, "tags", t ? t : json_null());
                }
                if (s->keys) {
                        json_t *a = json_array();
                        for (char **k = s->keys; a && *k; k++)
                                json_array_append_new(a, json_string(*k));
                        json_object_set_new(o, "keys", a ? a : json_null());
                }
                if (s->contact_flow)
                        json_object_set_new(o, "contact_flow", json_string(s->contact_flow));
                json_object_set_new(o, "detail", json_str_or_null(s->detail));
        }
        for (size_t i = 0; p && i < p->n_pools && r >= 0; i++) {
                const struct pool_summary *ps = &p->pools[i];
                json_t *o = pool_figures_json(ps->target, ps->pool, &ps->f);
                if (!o || json_array_append_new(pools, o) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0)
                json_object_set_new(root, "changes", json_integer((json_int_t) plan_count_changes(p)));
        char *text = r >= 0 ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(root);
        if (!text)
                return r < 0 ? r : -ENOMEM;
        *ret = text;
        return 0;
}
