/* config.c: the desired-state YAML (connect-numbers.yaml(5)) -> struct config.
 * Owns the only use of libyaml (its event API), every validation rule with its
 * bounds and defaults, the problem list (line:column) and the digests that
 * tell the reconciler which part of the YAML changed.
 * Must not: log, read the clock, touch the network. The only I/O is
 * config_load() reading the file; config_parse() is pure and must survive any
 * input (it is fuzzed: tests/fuzz/fuzz-config.c).
 *
 * Shape: libyaml events are first turned into a small tree of nodes that keep
 * their marks (libyaml's document API would do, but it expands aliases and
 * keeps no scalar style). The tree is then checked level by level against
 * declarative key tables; every problem is collected, the first one does not
 * stop the check. */

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <strings.h>
#include <yaml.h>

#include "config.h"
#include "log.h"

#define CONFIG_FILE_MAX ((size_t) 1024 * 1024)
#define NODE_DEPTH_MAX 64           /* deeper YAML is refused, bounds every recursion */
#define PROBLEMS_MAX 1000           /* a garbage file stops here; one notice follows */
#define NAME_LEN_MAX 64             /* target and pool names */
#define USER_TAGS_MAX 49            /* TagMap holds 50; the ownership tag takes one */
#define ARN_ID_LEN_MAX 100          /* InstanceId: 1..100 in the service model */
#define POOL_COUNT_MAX 1000         /* count: 0..1000 */
#define E164_DIGITS_MAX 15          /* E.164: a country code and number of at most 15 digits */
#define FLOW_ARN_FORM "arn:PARTITION:connect:REGION:ACCOUNT:instance/INSTANCE_ID/contact-flow/FLOW_ID"

#define API_RATE_DEFAULT 2.0        /* api_rate defaults: 2 req/s, burst 5 */
#define API_RATE_BURST 5.0
#define INTERVAL_DEFAULT_SEC (5 * 60)
#define QUOTA_BACKOFF_DEFAULT_SEC (6 * 3600)
#define QUOTA_DEFAULT 5
#define MAX_RELEASES_DEFAULT 1
#define ROLE_SESSION_NAME_DEFAULT "connect-numbers"
#define ROLE_DURATION_DEFAULT_SEC 3600
/* STS AssumeRole DurationSeconds: 900..43200 in the service model (the
 * role's own maximum may be lower: STS then refuses the call). */
#define ROLE_DURATION_MIN_SEC 900
#define ROLE_DURATION_MAX_SEC (12 * 3600)
/* The cap on a target's list in one pass (max_numbers_per_target). AWS
 * publishes no maximum for the per-instance quota, so the cap is ours:
 * 100,000 by default. At least one full ListPhoneNumbersV2 page (1000): a
 * lower cap would make a target with a single full pool unknown. At most
 * 1,000,000: 1000 pages at the default 2 requests/s is over 8 minutes of
 * listing per pass and some hundreds of MiB of list in memory, past what
 * one pass of this service should take on. */
#define MAX_NUMBERS_PER_TARGET_DEFAULT 100000
#define MAX_NUMBERS_PER_TARGET_MIN 1000
#define MAX_NUMBERS_PER_TARGET_MAX 1000000

/* The service model's PhoneNumberCountryCode enum, in its order (237 codes). */
static const char country_codes[] =
        "AF AL DZ AS AD AO AI AQ AG AR AM AW AU AT AZ BS BH BD BB BY BE BZ BJ BM "
        "BT BO BA BW BR IO VG BN BG BF BI KH CM CA CV KY CF TD CL CN CX CC CO KM "
        "CK CR HR CU CW CY CZ CD DK DJ DM DO TL EC EG SV GQ ER EE ET FK FO FJ FI "
        "FR PF GA GM GE DE GH GI GR GL GD GU GT GG GN GW GY HT HN HK HU IS IN ID "
        "IR IQ IE IM IL IT CI JM JP JE JO KZ KE KI KW KG LA LV LB LS LR LY LI LT "
        "LU MO MK MG MW MY MV ML MT MH MR MU YT MX FM MD MC MN ME MS MA MZ MM NA "
        "NR NP NL AN NC NZ NI NE NG NU KP MP NO OM PK PW PA PG PY PE PH PN PL PT "
        "PR QA CG RE RO RU RW BL SH KN LC MF PM VC WS SM ST SA SN RS SC SL SG SX "
        "SK SI SB SO ZA KR ES LK SD SR SJ SZ SE CH SY TW TJ TZ TH TG TK TO TT TN "
        "TR TM TC TV VI UG UA AE GB US UY UZ VU VA VE VN WF EH YE ZM ZW";

/* The service model's PhoneNumberType enum. */
static const char *const phone_number_types[] = {
        "TOLL_FREE", "DID", "UIFN", "SHARED", "THIRD_PARTY_TF", "THIRD_PARTY_DID", "SHORT_CODE",
};

/* Keys of api_rate besides default and burst: the Connect operations of the
 * service model (connect-numbers.yaml(5): any operation name), the ones the daemon calls first. */
static const char *const api_rate_names[] = {
        "default",
        "burst",
        "ClaimPhoneNumber",
        "DescribePhoneNumber",
        "ListPhoneNumbersV2",
        "SearchAvailablePhoneNumbers",
        "ReleasePhoneNumber",
        "UpdatePhoneNumberMetadata",
        "AssociatePhoneNumberContactFlow",
        "TagResource",
        "UntagResource",
        "DisassociatePhoneNumberContactFlow",
        "ListTagsForResource",
        "UpdatePhoneNumber",
        "DescribeInstance",
        "ListPhoneNumbers",
        "ImportPhoneNumber",
};

/* Room for item n of an array that only grows through here. The capacity is
 * implicit (4, then the next power of two), so appends stay amortised O(1)
 * for a hostile file without a capacity field in the public structs. */
static int array_grow(void **p, size_t n, size_t size) {
        if ((n > 0 && n < 4) || (n >= 4 && (n & (n - 1)) != 0))
                return 0;
        size_t cap = n == 0 ? 4 : n * 2;
        if (cap > SIZE_MAX / size)
                return -ENOMEM;
        void *q = realloc(*p, cap * size);
        if (!q)
                return -ENOMEM;
        *p = q;
        return 0;
}
#define GROW(array, n) array_grow((void **) &(array), (n), sizeof *(array))

/* ---- problems ---------------------------------------------------------- */

static int problems_addv(struct config_problems *p, unsigned line, unsigned column, const char *fmt, va_list ap) {
        char *m = NULL;
        if (vasprintf(&m, fmt, ap) < 0)
                return -ENOMEM;
        if (GROW(p->items, p->n) < 0) {
                free(m);
                return -ENOMEM;
        }
        p->items[p->n++] = (struct config_problem) { .line = line, .column = column, .message = m };
        return 0;
}

static _printf_(4, 5) int problems_add(struct config_problems *p, unsigned line, unsigned column, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int r = problems_addv(p, line, column, fmt, ap);
        va_end(ap);
        return r;
}

/* Stable: problems at the same place keep the order they were found in. The
 * list is capped, so insertion sort is cheap enough. */
static void problems_sort(struct config_problems *p) {
        for (size_t i = 1; i < p->n; i++) {
                struct config_problem x = p->items[i];
                size_t j = i;
                while (j > 0 && (p->items[j - 1].line > x.line ||
                                 (p->items[j - 1].line == x.line && p->items[j - 1].column > x.column))) {
                        p->items[j] = p->items[j - 1];
                        j--;
                }
                p->items[j] = x;
        }
}

void config_problems_clear(struct config_problems *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n; i++)
                free(p->items[i].message);
        p->items = mfree(p->items);
        p->n = 0;
}

void config_problems_print(const struct config_problems *p, const char *filename, FILE *f) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n; i++) {
                /* line 0: the file itself (unreadable, too large), no position */
                if (p->items[i].line == 0)
                        fprintf(f, "%s: %s\n", filename, p->items[i].message);
                else
                        fprintf(f, "%s:%u:%u: %s\n", filename, p->items[i].line, p->items[i].column,
                                p->items[i].message);
        }
}

/* ---- the node tree ----------------------------------------------------- */

enum node_type {
        NODE_SCALAR,
        NODE_MAPPING,
        NODE_SEQUENCE,
        NODE_ALIAS, /* refused where it appears; later checks stay quiet about it */
};

struct node {
        enum node_type type;
        unsigned line, column;     /* 1-based, of the node's first character */
        char *value;               /* scalars: the text, NUL-terminated */
        size_t len;                /* bytes; differs from strlen() if an escape made a NUL */
        bool plain;                /* unquoted scalar: may be an integer, boolean or null */
        struct node **children;    /* mappings: key, value, key, value...; sequences: items */
        size_t n_children;
};

static struct node *node_free(struct node *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < n->n_children; i++)
                node_free(n->children[i]);
        free(n->children);
        free(n->value);
        return mfree(n);
}
DEFINE_FREEP(struct node, node_free)

/* Values that must be unique across the whole file, or that name one
 * another across targets, collected while parsing and compared once the
 * whole file is read (config_check_refs()): sorted, so O(n log n) for a
 * hostile file. */
enum ref_kind {
        REF_PIN,        /* a pool's numbers: entry */
        REF_POOL,       /* a pool's own ownership-tag value TARGET/POOL */
        REF_FROM,       /* a pool's from: entry */
        REF_ARN,        /* a target's arn */
        REF_PREVIOUS,   /* a target's previous_arns: entry */
};

struct ref {
        enum ref_kind kind;
        char *value;
        unsigned line, column;
        const char *target;  /* the target's name (owned by its target_config) */
        const char *pool;    /* the pool's name, or NULL */
};

struct parse_ctx {
        struct config_problems *problems;
        struct ref *refs;
        size_t n_refs;
        struct config *config;
        bool truncated; /* PROBLEMS_MAX reached */
        bool oom;
        bool top_role_arn_given; /* the top level has role_arn:, valid or not */
};

static _printf_(4, 5) void problem_at(struct parse_ctx *ctx, unsigned line, unsigned column, const char *fmt, ...) {
        if (ctx->problems->n >= PROBLEMS_MAX) {
                ctx->truncated = true;
                return;
        }
        va_list ap;
        va_start(ap, fmt);
        if (problems_addv(ctx->problems, line, column, fmt, ap) < 0)
                ctx->oom = true;
        va_end(ap);
}

#define problem(ctx, node, ...) problem_at((ctx), (node)->line, (node)->column, __VA_ARGS__)

static void ref_add(struct parse_ctx *ctx, enum ref_kind kind, const char *value, const struct node *at,
                    const char *target, const char *pool) {
        if (ctx->oom)
                return;
        char *v = strdup(value);
        if (!v || GROW(ctx->refs, ctx->n_refs) < 0) {
                free(v);
                ctx->oom = true;
                return;
        }
        ctx->refs[ctx->n_refs++] = (struct ref) {
                .kind = kind, .value = v, .line = at->line, .column = at->column, .target = target, .pool = pool,
        };
}

static void refs_free(struct parse_ctx *ctx) {
        for (size_t i = 0; i < ctx->n_refs; i++)
                free(ctx->refs[i].value);
        ctx->refs = mfree(ctx->refs);
        ctx->n_refs = 0;
}

/* Quotes user text for a one-line message: escapes quotes, backslashes and
 * control bytes, keeps UTF-8, cuts long text with "...". */
static const char *quote_into(char *buf, size_t size, const char *s, size_t len) {
        const size_t limit = size - 8; /* room for an escape, '...', '"' and NUL */
        size_t o = 0;
        buf[o++] = '"';
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                if (o >= limit) {
                        while (o > 1 && ((unsigned char) buf[o - 1] & 0xc0) == 0x80)
                                o--; /* do not cut a UTF-8 sequence */
                        if (o > 1 && (unsigned char) buf[o - 1] >= 0xc0)
                                o--;
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char) c;
                } else if (c == '\n') {
                        buf[o++] = '\\';
                        buf[o++] = 'n';
                } else if (c == '\t') {
                        buf[o++] = '\\';
                        buf[o++] = 't';
                } else if (c < 0x20 || c == 0x7f) {
                        buf[o++] = '\\';
                        buf[o++] = 'x';
                        hex_encode(&c, 1, buf + o);
                        o += 2;
                } else
                        buf[o++] = (char) c;
        }
        buf[o++] = '"';
        buf[o] = 0;
        return buf;
}

#define QUOTE_SIZE 96
#define QUOTE_N(s, len) quote_into((char[QUOTE_SIZE]) {}, QUOTE_SIZE, (s), (len))
#define QUOTE(s) QUOTE_N((s), strlen(s))
#define QUOTE_NODE(n) QUOTE_N((n)->value, (n)->len)

/* Byte offset -> 1-based line and column (in characters, as libyaml counts). */
static void text_position(const char *text, size_t len, size_t offset, unsigned *ret_line, unsigned *ret_column) {
        unsigned line = 1, column = 1;
        for (size_t i = 0; i < offset && i < len; i++) {
                unsigned char c = (unsigned char) text[i];
                if (c == '\n' || (c == '\r' && (i + 1 >= len || text[i + 1] != '\n'))) {
                        line++;
                        column = 1;
                } else if ((c & 0xc0) != 0x80 && c != '\r')
                        column++;
        }
        *ret_line = line;
        *ret_column = column;
}

/* The byte at a 1-based line and column (in characters), or 0 past the text. */
static char text_char_at(const char *text, size_t len, unsigned line, unsigned column) {
        size_t i = 0;
        for (unsigned l = 1; l < line; l++) {
                while (i < len && text[i] != '\n')
                        i++;
                if (i >= len)
                        return 0;
                i++;
        }
        for (unsigned c = 1; c < column && i < len; i++)
                if (i + 1 >= len || ((unsigned char) text[i + 1] & 0xc0) != 0x80)
                        c++;
        return i < len ? text[i] : 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid. Refuses
 * overlong forms, surrogates and code points past U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s, size_t left) {
        unsigned char c = s[0];
        size_t n;
        uint32_t cp;
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf)
                n = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                n = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                n = 4, cp = c & 0x07;
        else
                return 0;
        if (left < n)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

/* The text must be UTF-8 without NUL bytes before libyaml sees it, so that
 * the message names the real cause and its position. */
static bool text_check_encoding(struct parse_ctx *ctx, const char *text, size_t len) {
        for (size_t i = 0; i < len;) {
                unsigned line, column;
                if (text[i] == 0) {
                        text_position(text, len, i, &line, &column);
                        problem_at(ctx, line, column, "the file contains a NUL byte (it must be UTF-8 text)");
                        return false;
                }
                size_t n = utf8_sequence((const unsigned char *) text + i, len - i);
                if (n == 0) {
                        text_position(text, len, i, &line, &column);
                        problem_at(ctx, line, column, "invalid UTF-8 (byte 0x%02x): the file must be UTF-8 text",
                                   (unsigned char) text[i]);
                        return false;
                }
                i += n;
        }
        return true;
}

static void report_yaml_error(struct parse_ctx *ctx, const yaml_parser_t *parser, const char *text, size_t len) {
        const char *what = parser->problem ?: "invalid YAML";
        if (parser->error == YAML_MEMORY_ERROR) {
                ctx->oom = true;
                return;
        }
        if (parser->error == YAML_READER_ERROR) {
                unsigned line, column;
                text_position(text, len, parser->problem_offset, &line, &column);
                if (parser->problem_value >= 0)
                        problem_at(ctx, line, column, "syntax error: %s (character 0x%x)", what, (unsigned) parser->problem_value);
                else
                        problem_at(ctx, line, column, "syntax error: %s", what);
                return;
        }
        unsigned line = (unsigned) MIN(parser->problem_mark.line + 1, (size_t) UINT_MAX);
        unsigned column = (unsigned) MIN(parser->problem_mark.column + 1, (size_t) UINT_MAX);
        /* libyaml's words for a tab in the indentation do not say "tab" */
        const char *hint = text_char_at(text, len, line, column) == '\t' ? " (tabs are not allowed in YAML indentation)" : "";
        /* the context only helps when it points somewhere else */
        if (parser->context && !*hint && (parser->context_mark.line != parser->problem_mark.line ||
                                          parser->context_mark.column != parser->problem_mark.column))
                problem_at(ctx, line, column, "syntax error: %s (%s at line %zu column %zu)", what, parser->context,
                           parser->context_mark.line + 1, parser->context_mark.column + 1);
        else
                problem_at(ctx, line, column, "syntax error: %s%s", what, hint);
}

static struct node *node_new(enum node_type type, const yaml_mark_t *mark) {
        struct node *n = calloc(1, sizeof *n);
        if (!n)
                return NULL;
        n->type = type;
        n->line = (unsigned) MIN(mark->line + 1, (size_t) UINT_MAX);
        n->column = (unsigned) MIN(mark->column + 1, (size_t) UINT_MAX);
        return n;
}

static int node_append(struct node *parent, struct node *child) {
        if (GROW(parent->children, parent->n_children) < 0)
                return -ENOMEM;
        parent->children[parent->n_children++] = child;
        return 0;
}

/* Anchors, aliases and explicit tags have no use in this file and would make
 * positions and types ambiguous: refused, each with its position. */
static void check_node_props(struct parse_ctx *ctx, const struct node *n, const yaml_char_t *anchor, const yaml_char_t *tag) {
        if (anchor)
                problem(ctx, n, "anchors (&%.40s) are not supported: write the value out", (const char *) anchor);
        if (tag)
                problem(ctx, n, "YAML tag %s is not supported: remove it", QUOTE((const char *) tag));
}

/* Events -> tree. Returns 0 with *ret the root (NULL when the stream holds no
 * document) and *ret_ok true, or *ret_ok false after a syntax error (reported);
 * -ENOMEM. */
static int tree_build(struct parse_ctx *ctx, const char *text, size_t len, struct node **ret, bool *ret_ok) {
        yaml_parser_t parser;
        _cleanup_(node_freep) struct node *root = NULL;
        struct node *stack[NODE_DEPTH_MAX];
        size_t depth = 0;
        unsigned documents = 0;
        bool done = false, failed = false;
        int r = 0;

        if (!yaml_parser_initialize(&parser))
                return -ENOMEM;
        yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

        while (!done) {
                yaml_event_t ev;
                struct node *n = NULL;
                bool push = false;

                if (!yaml_parser_parse(&parser, &ev)) {
                        report_yaml_error(ctx, &parser, text, len);
                        failed = true;
                        break;
                }
                switch (ev.type) {
                case YAML_STREAM_END_EVENT:
                        done = true;
                        break;
                case YAML_DOCUMENT_START_EVENT:
                        if (++documents > 1) {
                                problem_at(ctx, (unsigned) ev.start_mark.line + 1, (unsigned) ev.start_mark.column + 1,
                                           "a second YAML document: the file must hold exactly one");
                                failed = done = true;
                        }
                        break;
                case YAML_ALIAS_EVENT:
                        n = node_new(NODE_ALIAS, &ev.start_mark);
                        if (n)
                                problem(ctx, n, "aliases (*%.40s) are not supported: write the value out",
                                        (const char *) ev.data.alias.anchor);
                        break;
                case YAML_SCALAR_EVENT:
                        n = node_new(NODE_SCALAR, &ev.start_mark);
                        if (!n)
                                break;
                        check_node_props(ctx, n, ev.data.scalar.anchor, ev.data.scalar.tag);
                        n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                        n->len = ev.data.scalar.length;
                        n->value = malloc(n->len + 1);
                        if (!n->value) {
                                n = node_free(n);
                                break;
                        }
                        memcpy(n->value, ev.data.scalar.value, n->len);
                        n->value[n->len] = 0;
                        break;
                case YAML_SEQUENCE_START_EVENT:
                        n = node_new(NODE_SEQUENCE, &ev.start_mark);
                        if (n)
                                check_node_props(ctx, n, ev.data.sequence_start.anchor, ev.data.sequence_start.tag);
                        push = true;
                        break;
                case YAML_MAPPING_START_EVENT:
                        n = node_new(NODE_MAPPING, &ev.start_mark);
                        if (n)
                                check_node_props(ctx, n, ev.data.mapping_start.anchor, ev.data.mapping_start.tag);
                        push = true;
                        break;
                case YAML_SEQUENCE_END_EVENT:
                case YAML_MAPPING_END_EVENT:
                        if (depth > 0)
                                depth--;
                        break;
                default:
                        break;
                }

                bool node_event = ev.type == YAML_ALIAS_EVENT || ev.type == YAML_SCALAR_EVENT ||
                                  ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT;
                if (node_event && !n) {
                        yaml_event_delete(&ev);
                        r = -ENOMEM;
                        break;
                }
                if (n) {
                        if (push && depth >= NODE_DEPTH_MAX) {
                                problem(ctx, n, "nested deeper than %d levels", NODE_DEPTH_MAX);
                                node_free(n);
                                failed = done = true;
                        } else if (depth == 0) {
                                node_free(root); /* only one document gets here */
                                root = n;
                        } else if (node_append(stack[depth - 1], n) < 0) {
                                node_free(n);
                                yaml_event_delete(&ev);
                                r = -ENOMEM;
                                break;
                        }
                        if (push && !done)
                                stack[depth++] = n;
                }
                yaml_event_delete(&ev);
        }
        yaml_parser_delete(&parser);

        if (r < 0)
                return r;
        if (ctx->oom)
                return -ENOMEM;
        *ret_ok = !failed;
        *ret = failed ? NULL : TAKE_PTR(root);
        return 0;
}

/* ---- scalar helpers ---------------------------------------------------- */

static bool node_is_null(const struct node *n) {
        if (n->type != NODE_SCALAR || !n->plain)
                return false;
        return n->len == 0 || streq(n->value, "~") || streq(n->value, "null") || streq(n->value, "Null") ||
               streq(n->value, "NULL");
}

static const char *node_describe(const struct node *n) {
        switch (n->type) {
        case NODE_MAPPING: return "a mapping";
        case NODE_SEQUENCE: return "a list";
        case NODE_ALIAS: return "an alias";
        case NODE_SCALAR: return node_is_null(n) ? "an empty value" : n->plain ? "a scalar" : "a string";
        }
        return "something else";
}

static size_t utf8_chars(const char *s, size_t len) {
        size_t n = 0;
        for (size_t i = 0; i < len; i++)
                if (((unsigned char) s[i] & 0xc0) != 0x80)
                        n++;
        return n;
}

static bool is_name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool name_valid(const char *s, size_t len) {
        if (len < 1 || len > NAME_LEN_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_name_char(s[i]))
                        return false;
        return true;
}

/* Levenshtein distance of two short strings, ignoring ASCII case. */
static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        size_t row[65];
        if (la > 64 || lb > 64)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t prev = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t cur = row[j];
                        char ca = a[i - 1], cb = b[j - 1];
                        if (ca >= 'A' && ca <= 'Z')
                                ca = (char) (ca - 'A' + 'a');
                        if (cb >= 'A' && cb <= 'Z')
                                cb = (char) (cb - 'A' + 'a');
                        size_t best = prev + (ca == cb ? 0 : 1);
                        best = MIN(best, row[j] + 1);
                        best = MIN(best, row[j - 1] + 1);
                        row[j] = best;
                        prev = cur;
                }
        }
        return row[lb];
}

/* The closest name, if close enough to be a likely typo, else NULL. */
static const char *suggest(const char *word, const char *const *names, size_t n) {
        const char *best = NULL;
        size_t best_d = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
                size_t d = edit_distance(word, names[i]);
                if (d < best_d && d <= 2 && d * 2 < strlen(names[i])) {
                        best = names[i];
                        best_d = d;
                }
        }
        return best;
}

/* " (did you mean "x"?)" or "" */
static const char *did_you_mean(char *buf, size_t size, const char *hint) {
        if (!hint)
                return "";
        snprintf(buf, size, " (did you mean \"%s\"?)", hint);
        return buf;
}
#define DID_YOU_MEAN(hint) did_you_mean((char[96]) {}, 96, (hint))

/* ---- typed values ------------------------------------------------------ */

/* Scalar that holds a value (not null, not an alias); reports the mismatch. */
static bool expect_scalar(struct parse_ctx *ctx, const struct node *n, const char *key, const char *what) {
        if (n->type == NODE_ALIAS)
                return false; /* already reported */
        if (n->type != NODE_SCALAR || node_is_null(n)) {
                problem(ctx, n, "\"%s\" must be %s, not %s", key, what, node_describe(n));
                return false;
        }
        return true;
}

static bool expect_mapping(struct parse_ctx *ctx, const struct node *n, const char *key, const char *what) {
        if (n->type == NODE_ALIAS)
                return false;
        if (n->type != NODE_MAPPING) {
                problem(ctx, n, "\"%s\" must be %s, not %s", key, what, node_describe(n));
                return false;
        }
        return true;
}

static bool expect_sequence(struct parse_ctx *ctx, const struct node *n, const char *key, const char *what) {
        if (n->type == NODE_ALIAS)
                return false;
        if (n->type != NODE_SEQUENCE) {
                problem(ctx, n, "\"%s\" must be %s, not %s", key, what, node_describe(n));
                return false;
        }
        return true;
}

/* Appends a copy of s to a counted string array. */
static int strs_append(char ***array, size_t *n, const char *s) {
        char *v = strdup(s);
        if (!v || GROW(*array, *n) < 0) {
                free(v);
                return -ENOMEM;
        }
        (*array)[(*n)++] = v;
        return 0;
}

static void strs_free(char **array, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(array[i]);
        free(array);
}

static bool value_uint(struct parse_ctx *ctx, const struct node *n, const char *key, int64_t min, int64_t max,
                       unsigned *ret) {
        if (!expect_scalar(ctx, n, key, "an integer"))
                return false;
        if (!n->plain) {
                problem(ctx, n, "\"%s\" must be a plain integer, not a quoted string (%s)", key, QUOTE_NODE(n));
                return false;
        }
        const char *s = n->value;
        bool negative = false;
        if (*s == '-' || *s == '+')
                negative = *s++ == '-';
        size_t digits = strspn(s, "0123456789");
        if (digits == 0 || s[digits] != 0 || (digits > 1 && s[0] == '0')) {
                problem(ctx, n, "\"%s\" must be a decimal integer, not %s", key, QUOTE_NODE(n));
                return false;
        }
        int64_t v = 0;
        bool overflow = false;
        for (; *s; s++) {
                if (v > (INT64_MAX - 9) / 10) {
                        overflow = true;
                        break;
                }
                v = v * 10 + (*s - '0');
        }
        if (negative)
                v = -v;
        if (overflow) {
                problem(ctx, n, "\"%s\" must be between %" PRId64 " and %" PRId64 ", not %s", key, min, max,
                        QUOTE_NODE(n));
                return false;
        }
        if (v < min || v > max) {
                problem(ctx, n, "\"%s\" must be between %" PRId64 " and %" PRId64 ", not %" PRId64, key, min, max, v);
                return false;
        }
        *ret = (unsigned) v;
        return true;
}

static bool value_bool(struct parse_ctx *ctx, const struct node *n, const char *key, bool *ret) {
        static const char *const yaml11[] = { "yes", "no", "on", "off", "y", "n", "true", "false" };
        if (!expect_scalar(ctx, n, key, "true or false"))
                return false;
        if (n->plain && streq(n->value, "true")) {
                *ret = true;
                return true;
        }
        if (n->plain && streq(n->value, "false")) {
                *ret = false;
                return true;
        }
        for (size_t i = 0; i < ELEMENTSOF(yaml11); i++)
                if (strcasecmp(n->value, yaml11[i]) == 0) {
                        problem(ctx, n, "\"%s\" must be true or false, not %s%s (use true or false)", key,
                                n->plain ? "" : "the quoted string ", QUOTE_NODE(n));
                        return false;
                }
        problem(ctx, n, "\"%s\" must be true or false, not %s", key, QUOTE_NODE(n));
        return false;
}

static bool value_duration(struct parse_ctx *ctx, const struct node *n, const char *key, int64_t min_sec,
                           int64_t max_sec, usec_t *ret) {
        char a[32], b[32];
        int64_t sec = 0;
        if (!expect_scalar(ctx, n, key, "a duration such as 90s, 5m or 1h30m"))
                return false;
        int r = parse_duration_sec(n->value, false, &sec);
        if (r == -EINVAL || strlen(n->value) != n->len) {
                const char *hint = "";
                size_t digits = strspn(n->value, "0123456789");
                if (digits > 0 && n->value[digits] == 0)
                        hint = " (add a unit: s, m or h)";
                else if (digits > 0 && n->value[digits] == 'd' && n->value[digits + 1] == 0)
                        hint = " (days are written in hours, e.g. 48h)";
                problem(ctx, n, "\"%s\" must be a duration such as 90s, 5m or 1h30m, not %s%s", key, QUOTE_NODE(n),
                        hint);
                return false;
        }
        if (r < 0 || sec < min_sec || sec > max_sec) {
                problem(ctx, n, "\"%s\" must be between %s and %s, not %.40s", key,
                        format_duration_sec((uint64_t) min_sec, a, sizeof a),
                        format_duration_sec((uint64_t) max_sec, b, sizeof b), n->value);
                return false;
        }
        *ret = (usec_t) sec * USEC_PER_SEC;
        return true;
}

/* A string of min..max characters, without NUL; check adds a rule. */
typedef bool (*string_check_fn)(struct parse_ctx *ctx, const struct node *n, const char *key);

static bool value_string(struct parse_ctx *ctx, const struct node *n, const char *key, int64_t min, int64_t max,
                         string_check_fn check, char **ret) {
        if (!expect_scalar(ctx, n, key, "a string"))
                return false;
        if (strlen(n->value) != n->len) {
                problem(ctx, n, "\"%s\" must not contain a NUL character", key);
                return false;
        }
        size_t chars = utf8_chars(n->value, n->len);
        if (chars == 0 && min > 0) {
                problem(ctx, n, "\"%s\" must not be empty", key);
                return false;
        }
        if ((int64_t) chars < min) {
                problem(ctx, n, "\"%s\" is too short: %zu characters (at least %" PRId64 ")", key, chars, min);
                return false;
        }
        if ((int64_t) chars > max) {
                problem(ctx, n, "\"%s\" is too long: %zu characters (at most %" PRId64 ")", key, chars, max);
                return false;
        }
        if (check && !check(ctx, n, key))
                return false;
        char *s = strdup(n->value);
        if (!s) {
                ctx->oom = true;
                return false;
        }
        free(*ret);
        *ret = s;
        return true;
}

/* Requests per second: a plain decimal, parsed by hand so that the locale
 * cannot change what "0.5" means. */
static bool value_rate(struct parse_ctx *ctx, const struct node *n, const char *key, double min, double max,
                       double *ret) {
        if (!expect_scalar(ctx, n, key, "a number of requests per second"))
                return false;
        if (!n->plain) {
                problem(ctx, n, "\"%s\" must be a plain number, not a quoted string (%s)", key, QUOTE_NODE(n));
                return false;
        }
        const char *s = n->value;
        size_t int_digits = strspn(s, "0123456789"), frac_digits = 0;
        if (s[int_digits] == '.')
                frac_digits = strspn(s + int_digits + 1, "0123456789");
        size_t total = int_digits + (s[int_digits] == '.' ? 1 + frac_digits : 0);
        if (int_digits + frac_digits == 0 || s[total] != 0) {
                problem(ctx, n, "\"%s\" must be a number of requests per second such as 2 or 0.5, not %s", key,
                        QUOTE_NODE(n));
                return false;
        }
        double v = 0, scale = 1;
        for (size_t i = 0; i < int_digits; i++)
                v = v * 10 + (s[i] - '0');
        uint64_t frac = 0;
        for (size_t i = 0; i < frac_digits && i < 15; i++) {
                frac = frac * 10 + (uint64_t) (s[int_digits + 1 + i] - '0');
                scale *= 10;
        }
        v += (double) frac / scale;
        if (v < min || v > max) {
                problem(ctx, n, "\"%s\" must be between %g and %g, not %.40s", key, min, max, n->value);
                return false;
        }
        *ret = v;
        return true;
}

/* ---- string rules ------------------------------------------------------ */

static bool is_lower(char c) {
        return c >= 'a' && c <= 'z';
}

/* "-[a-z]+-[0-9]" to the end */
static bool region_tail_valid(const char *s) {
        if (*s++ != '-' || !is_lower(*s))
                return false;
        while (is_lower(*s))
                s++;
        return s[0] == '-' && s[1] >= '0' && s[1] <= '9' && s[2] == 0;
}

/* [a-z]{2}(-gov)?-[a-z]+-[0-9], e.g. us-east-1, us-gov-west-1 */
static bool region_valid(const char *s) {
        if (!is_lower(s[0]) || !is_lower(s[1]))
                return false;
        if (strncmp(s + 2, "-gov-", 5) == 0 && region_tail_valid(s + 6))
                return true;
        return region_tail_valid(s + 2);
}

static bool check_region(struct parse_ctx *ctx, const struct node *n, const char *key) {
        if (region_valid(n->value))
                return true;
        problem(ctx, n, "\"%s\" must be an AWS region such as us-east-1, not %s", key, QUOTE_NODE(n));
        return false;
}

static bool check_profile(struct parse_ctx *ctx, const struct node *n, const char *key) {
        const char *s = n->value;
        for (; *s; s++)
                if (!is_name_char(*s) && *s != '.') {
                        problem(ctx, n, "\"%s\" must be a profile name of A-Z, a-z, 0-9, _, . and -, not %s", key,
                                QUOTE_NODE(n));
                        return false;
                }
        return true;
}

/* The service's working directory is /, and a reload must not change
 * where the file goes: only an absolute path of a file (not a directory)
 * is accepted. */
static bool check_metrics_file(struct parse_ctx *ctx, const struct node *n, const char *key) {
        const char *s = n->value;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f) {
                        problem(ctx, n, "\"%s\" must not contain control characters", key);
                        return false;
                }
        if (s[0] != '/') {
                problem(ctx, n, "\"%s\" must be an absolute path (starting with /), not %s", key, QUOTE_NODE(n));
                return false;
        }
        if (s[strlen(s) - 1] == '/') {
                problem(ctx, n, "\"%s\" must name a file, not the directory %s", key, QUOTE_NODE(n));
                return false;
        }
        return true;
}

/* https://HOST[:PORT][/PATH]: the service always speaks TLS, also to a test
 * endpoint, and never carries credentials in a URL. */
static bool check_endpoint_url(struct parse_ctx *ctx, const struct node *n, const char *key) {
        const char *s = n->value;
        for (const char *p = s; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f) {
                        problem(ctx, n, "\"%s\" must not contain spaces or control characters", key);
                        return false;
                }
        if (strncasecmp(s, "http://", 7) == 0) {
                problem(ctx, n, "\"%s\" must use https:// (TLS is always used and verified), not %s", key,
                        QUOTE_NODE(n));
                return false;
        }
        if (strncasecmp(s, "https://", 8) != 0) {
                problem(ctx, n, "\"%s\" must be an https:// URL, not %s", key, QUOTE_NODE(n));
                return false;
        }
        const char *auth = s + 8;
        size_t alen = strcspn(auth, "/?#");
        if (memchr(auth, '@', alen)) {
                problem(ctx, n, "\"%s\" must not contain user information (secrets never go in this file)", key);
                return false;
        }
        const char *host = auth, *port = NULL;
        size_t hlen;
        if (*auth == '[') {
                const char *close = memchr(auth, ']', alen);
                if (!close) {
                        problem(ctx, n, "\"%s\" has an unterminated IPv6 address: %s", key, QUOTE_NODE(n));
                        return false;
                }
                host = auth + 1;
                hlen = (size_t) (close - host);
                if (hlen == 0 || strspn(host, "0123456789abcdefABCDEF:.") < hlen) {
                        problem(ctx, n, "\"%s\" has an invalid IPv6 address: %s", key, QUOTE_NODE(n));
                        return false;
                }
                const char *after = close + 1;
                if (after < auth + alen) {
                        if (*after != ':') {
                                problem(ctx, n, "\"%s\" has an invalid host: %s", key, QUOTE_NODE(n));
                                return false;
                        }
                        port = after + 1;
                }
        } else {
                const char *colon = memchr(auth, ':', alen);
                hlen = colon ? (size_t) (colon - auth) : alen;
                if (colon)
                        port = colon + 1;
                if (hlen == 0) {
                        problem(ctx, n, "\"%s\" has no host: %s", key, QUOTE_NODE(n));
                        return false;
                }
                for (size_t i = 0; i < hlen; i++)
                        if (!is_name_char(host[i]) && host[i] != '.') {
                                problem(ctx, n, "\"%s\" has an invalid host: %s", key, QUOTE_NODE(n));
                                return false;
                        }
        }
        if (port) {
                size_t plen = (size_t) (auth + alen - port);
                unsigned long v = 0;
                bool ok = plen >= 1 && plen <= 5 && strspn(port, "0123456789") >= plen;
                for (size_t i = 0; ok && i < plen; i++)
                        v = v * 10 + (unsigned long) (port[i] - '0');
                if (!ok || v < 1 || v > 65535) {
                        problem(ctx, n, "\"%s\" has an invalid port: %s", key, QUOTE_NODE(n));
                        return false;
                }
        }
        return true;
}

static bool country_valid(const char *s) {
        if (strlen(s) != 2)
                return false;
        for (const char *p = country_codes; *p; p += p[2] ? 3 : 2)
                if (p[0] == s[0] && p[1] == s[1])
                        return true;
        return false;
}

static bool check_country(struct parse_ctx *ctx, const struct node *n, const char *key) {
        if (country_valid(n->value))
                return true;
        char upper[3] = {};
        if (n->len == 2) {
                for (size_t i = 0; i < 2; i++) {
                        char c = n->value[i];
                        upper[i] = (char) (c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
                }
        }
        problem(ctx, n, "\"%s\" must be a country code of the service model's PhoneNumberCountryCode such as US or GB, not %s%s",
                key, QUOTE_NODE(n), DID_YOU_MEAN(country_valid(upper) ? upper : NULL));
        return false;
}

static bool check_phone_type(struct parse_ctx *ctx, const struct node *n, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(phone_number_types); i++)
                if (streq(n->value, phone_number_types[i]))
                        return true;
        problem(ctx, n,
                "\"%s\" must be one of TOLL_FREE, DID, UIFN, SHARED, THIRD_PARTY_TF, THIRD_PARTY_DID, SHORT_CODE, not %s%s",
                key, QUOTE_NODE(n), DID_YOU_MEAN(suggest(n->value, phone_number_types, ELEMENTSOF(phone_number_types))));
        return false;
}

/* arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME: RoleArn of STS AssumeRole
 * (20..2048 characters), with a 12-digit account, so that the account
 * check against each target can read it. */
static bool role_arn_valid(const char *s, const char **ret_account) {
        const char *p;
        if (strncmp(s, "arn:aws:iam::", 13) == 0)
                p = s + 13;
        else if (strncmp(s, "arn:aws-us-gov:iam::", 20) == 0)
                p = s + 20;
        else
                return false;
        if (strspn(p, "0123456789") != 12 || strncmp(p + 12, ":role/", 6) != 0)
                return false;
        if (ret_account)
                *ret_account = p;
        const char *name = p + 18, *last = strrchr(name, '/');
        if (*name == 0 || (last && last[1] == 0))
                return false;
        for (const char *c = name; *c; c++)
                if (!is_name_char(*c) && !strchr("+=,.@/", *c))
                        return false;
        return true;
}

static bool check_role_arn(struct parse_ctx *ctx, const struct node *n, const char *key) {
        if (role_arn_valid(n->value, NULL))
                return true;
        problem(ctx, n, "\"%s\" must be an IAM role ARN such as arn:aws:iam::111122223333:role/connect-numbers, not %s",
                key, QUOTE_NODE(n));
        return false;
}

/* Characters of the STS ExternalId ([\w+=,.@:/-]*) and RoleSessionName
 * ([\w+=,.@-]*) patterns. */
static bool check_sts_chars(struct parse_ctx *ctx, const struct node *n, const char *key, const char *also) {
        for (const char *c = n->value; *c; c++)
                if (!is_name_char(*c) && !strchr(also, *c)) {
                        problem(ctx, n, "\"%s\" may hold only A-Z, a-z, 0-9 and %s, not %s", key, also,
                                QUOTE_NODE(n));
                        return false;
                }
        return true;
}

static bool check_external_id(struct parse_ctx *ctx, const struct node *n, const char *key) {
        return check_sts_chars(ctx, n, key, "_+=,.@:/-");
}

static bool check_session_name(struct parse_ctx *ctx, const struct node *n, const char *key) {
        return check_sts_chars(ctx, n, key, "_+=,.@-");
}

/* ---- mappings ---------------------------------------------------------- */

enum value_kind {
        VALUE_OTHER, /* handled by the caller after the walk */
        VALUE_DURATION,
        VALUE_UINT,
        VALUE_BOOL,
        VALUE_STRING,
};

/* One key of a mapping: its type, bounds and where its value goes. Defaults
 * are set by the constructor of the struct being filled. */
struct key_spec {
        const char *name;
        enum value_kind kind;
        bool required;
        int64_t min, max;      /* seconds, integer value, or characters */
        size_t offset;         /* of the field in the struct being filled */
        string_check_fn check; /* VALUE_STRING: extra rule */
};

#define KEYS_MAX 16

/* Which pairs of a mapping repeat an earlier key (reported there) or have a
 * key that is not a string: those are skipped by the walkers. Sorting makes
 * this O(n log n) for a hostile file with many keys. */
struct key_ref {
        const struct node *key;
        size_t index;
};

static int key_ref_compare(const void *a, const void *b) {
        const struct key_ref *x = a, *y = b;
        size_t n = MIN(x->key->len, y->key->len);
        int c = memcmp(x->key->value, y->key->value, n);
        if (c != 0)
                return c;
        if (x->key->len != y->key->len)
                return x->key->len < y->key->len ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

static bool *mapping_skip_list(struct parse_ctx *ctx, const struct node *m) {
        size_t n = m->n_children / 2, k = 0;
        bool *skip = calloc(n + 1, sizeof *skip);
        _cleanup_(freep) struct key_ref *refs = calloc(n + 1, sizeof *refs);
        if (!skip || !refs) {
                free(skip);
                ctx->oom = true;
                return NULL;
        }
        for (size_t i = 0; i < n; i++) {
                const struct node *key = m->children[2 * i];
                if (key->type == NODE_ALIAS)
                        skip[i] = true;
                else if (key->type != NODE_SCALAR) {
                        problem(ctx, key, "a key must be a string, not %s", node_describe(key));
                        skip[i] = true;
                } else
                        refs[k++] = (struct key_ref) { .key = key, .index = i };
        }
        qsort(refs, k, sizeof *refs, key_ref_compare);
        for (size_t i = 1; i < k; i++) {
                size_t first = i - 1;
                while (i < k && refs[i].key->len == refs[first].key->len &&
                       memcmp(refs[i].key->value, refs[first].key->value, refs[i].key->len) == 0) {
                        problem(ctx, refs[i].key, "duplicate key %s (first at line %u)", QUOTE_NODE(refs[i].key),
                                refs[first].key->line);
                        skip[refs[i].index] = true;
                        i++;
                }
        }
        return skip;
}

/* Checks m's keys against specs, converts the typed values into dest and
 * hands back the key and value node of each spec found (VALUE_OTHER ones
 * are for the caller). where: "in the top level", "in target \"x\"". */
static void mapping_walk(struct parse_ctx *ctx, const struct node *m, const struct key_spec *specs, size_t n_specs,
                         void *dest, const char *where, const struct node **ret_keys, const struct node **ret_values) {
        const char *names[KEYS_MAX];
        for (size_t i = 0; i < n_specs; i++) {
                if (i < KEYS_MAX)
                        names[i] = specs[i].name;
                ret_keys[i] = ret_values[i] = NULL;
        }

        _cleanup_(freep) bool *skip = mapping_skip_list(ctx, m);
        if (!skip)
                return;
        for (size_t p = 0; p < m->n_children / 2; p++) {
                const struct node *key = m->children[2 * p], *value = m->children[2 * p + 1];
                if (skip[p])
                        continue;
                size_t i;
                for (i = 0; i < n_specs; i++)
                        if (key->len == strlen(specs[i].name) && streq(key->value, specs[i].name))
                                break;
                if (i == n_specs) {
                        problem(ctx, key, "unknown key %s %s%s", QUOTE_NODE(key), where,
                                DID_YOU_MEAN(suggest(key->value, names, MIN(n_specs, (size_t) KEYS_MAX))));
                        continue;
                }
                ret_keys[i] = key;
                ret_values[i] = value;
                void *field = (char *) dest + specs[i].offset;
                switch (specs[i].kind) {
                case VALUE_DURATION:
                        value_duration(ctx, value, specs[i].name, specs[i].min, specs[i].max, field);
                        break;
                case VALUE_UINT:
                        value_uint(ctx, value, specs[i].name, specs[i].min, specs[i].max, field);
                        break;
                case VALUE_BOOL:
                        value_bool(ctx, value, specs[i].name, field);
                        break;
                case VALUE_STRING:
                        value_string(ctx, value, specs[i].name, specs[i].min, specs[i].max, specs[i].check, field);
                        break;
                case VALUE_OTHER:
                        break;
                }
        }
        for (size_t i = 0; i < n_specs; i++)
                if (specs[i].required && !ret_keys[i])
                        problem(ctx, m, "missing required key \"%s\" %s", specs[i].name, where);
}

/* ---- pools ------------------------------------------------------------- */

enum {
        POOL_COUNTRY,
        POOL_TYPE,
        POOL_COUNT,
        POOL_PREFIX,
        POOL_DESCRIPTION,
        POOL_CONTACT_FLOW,
        POOL_TAGS,
        POOL_ADOPT,
        POOL_NUMBERS,
        POOL_FROM,
        _POOL_KEYS,
};

static const struct key_spec pool_keys[_POOL_KEYS] = {
        [POOL_COUNTRY] = { "country", VALUE_STRING, true, 1, 2, offsetof(struct pool_config, country), check_country },
        [POOL_TYPE] = { "type", VALUE_STRING, true, 1, 32, offsetof(struct pool_config, type), check_phone_type },
        /* required unless numbers: is given (pool_parse()) */
        [POOL_COUNT] = { "count", VALUE_UINT, false, 0, POOL_COUNT_MAX, offsetof(struct pool_config, count), NULL },
        [POOL_PREFIX] = { "prefix", VALUE_OTHER, false, 0, 0, 0, NULL },
        [POOL_DESCRIPTION] = { "description", VALUE_STRING, false, 0, 500, offsetof(struct pool_config, description), NULL },
        [POOL_CONTACT_FLOW] = { "contact_flow", VALUE_STRING, false, 1, 500, offsetof(struct pool_config, contact_flow), NULL },
        [POOL_TAGS] = { "tags", VALUE_OTHER, false, 0, 0, 0, NULL },
        [POOL_ADOPT] = { "adopt", VALUE_BOOL, false, 0, 0, offsetof(struct pool_config, adopt), NULL },
        [POOL_NUMBERS] = { "numbers", VALUE_OTHER, false, 0, 0, 0, NULL },
        [POOL_FROM] = { "from", VALUE_OTHER, false, 0, 0, 0, NULL },
};

static void pool_config_done(struct pool_config *p) {
        free(p->name);
        free(p->country);
        free(p->type);
        free(p->prefix);
        free(p->description);
        free(p->contact_flow);
        free(p->flow_instance_id);
        strs_free(p->numbers, p->n_numbers);
        strs_free(p->from, p->n_from);
        for (size_t i = 0; i < p->n_tags; i++) {
                free(p->tags[i].key);
                free(p->tags[i].value);
        }
        free(p->tags);
        *p = (struct pool_config) {};
}

/* prefix: \+?[0-9]{1,11}, plain (1206, +1206) or quoted; kept with its '+'
 * because SearchAvailablePhoneNumbers wants it so (connect-numbers.yaml(5)). */
static void pool_parse_prefix(struct parse_ctx *ctx, const struct node *n, struct pool_config *p) {
        if (!expect_scalar(ctx, n, "prefix", "a phone number prefix such as +1206"))
                return;
        const char *s = n->value + (n->value[0] == '+');
        size_t digits = strspn(s, "0123456789");
        if (digits < 1 || digits > 11 || s[digits] != 0 || strlen(n->value) != n->len) {
                problem(ctx, n, "\"prefix\" must be 1 to 11 digits with an optional leading +, such as +1206, not %s",
                        QUOTE_NODE(n));
                return;
        }
        char *v = strprintf("+%s", s);
        if (!v) {
                ctx->oom = true;
                return;
        }
        free(p->prefix);
        p->prefix = v;
}

static bool tag_key_valid_char(const unsigned char *s, size_t left, size_t *ret_len) {
        if (*s < 0x80) {
                *ret_len = 1;
                return (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                       strchr(" _.:/=+-@", *s);
        }
        /* The model's \p{L}\p{Z}\p{N}: without Unicode tables every non-ASCII
         * character is taken, except the C1 controls (U+0080..U+009F). */
        size_t n = utf8_sequence(s, left);
        *ret_len = n ? n : 1;
        return n > 0 && !(s[0] == 0xc2 && s[1] < 0xa0);
}

static void pool_parse_tags(struct parse_ctx *ctx, const struct node *m, struct pool_config *p) {
        if (!expect_mapping(ctx, m, "tags", "a mapping of tag keys to values"))
                return;
        _cleanup_(freep) bool *skip = mapping_skip_list(ctx, m);
        if (!skip)
                return;
        size_t n_unique = 0;
        for (size_t i = 0; i < m->n_children / 2; i++) {
                const struct node *key = m->children[2 * i], *value = m->children[2 * i + 1];
                if (skip[i])
                        continue;
                if (++n_unique == USER_TAGS_MAX + 1)
                        problem(ctx, key, "too many tags: at most %d per pool (the ownership tag %s takes the 50th)",
                                USER_TAGS_MAX, OWNERSHIP_TAG_KEY);

                bool ok = true;
                size_t chars = utf8_chars(key->value, key->len);
                if (chars < 1 || chars > 128 || strlen(key->value) != key->len) {
                        problem(ctx, key, "tag key %s must be 1 to 128 characters", QUOTE_NODE(key));
                        ok = false;
                } else if (strncasecmp(key->value, "aws:", 4) == 0) {
                        problem(ctx, key, "tag key %s must not start with \"aws:\" (reserved by AWS)", QUOTE_NODE(key));
                        ok = false;
                } else if (streq(key->value, OWNERSHIP_TAG_KEY)) {
                        problem(ctx, key, "tag key %s is reserved: the service sets it on every number it claims",
                                QUOTE_NODE(key));
                        ok = false;
                } else {
                        const unsigned char *s = (const unsigned char *) key->value;
                        for (size_t off = 0, step; off < key->len; off += step)
                                if (!tag_key_valid_char(s + off, key->len - off, &step)) {
                                        problem(ctx, key,
                                                "tag key %s may only hold letters, digits, spaces and _ . : / = + - @",
                                                QUOTE_NODE(key));
                                        ok = false;
                                        break;
                                }
                }

                if (value->type == NODE_ALIAS)
                        continue;
                if (value->type != NODE_SCALAR || node_is_null(value)) {
                        problem(ctx, value, "tag %s must have a string value, not %s (write \"\" for an empty one)",
                                QUOTE_NODE(key), node_describe(value));
                        continue;
                }
                size_t vchars = utf8_chars(value->value, value->len);
                if (vchars > 256 || strlen(value->value) != value->len) {
                        problem(ctx, value, "value of tag %s must be at most 256 characters without NUL, not %zu",
                                QUOTE_NODE(key), vchars);
                        continue;
                }
                if (!ok)
                        continue;

                if (GROW(p->tags, p->n_tags) < 0) {
                        ctx->oom = true;
                        return;
                }
                char *k = strdup(key->value), *v = strdup(value->value);
                if (!k || !v) {
                        free(k);
                        free(v);
                        ctx->oom = true;
                        return;
                }
                p->tags[p->n_tags++] = (struct config_tag) { .key = k, .value = v };
        }
}

/* E.164: '+', then 1 to 15 digits, the first not 0. */
static bool e164_valid(const char *s, size_t len) {
        if (len < 2 || len > 1 + E164_DIGITS_MAX || s[0] != '+' || s[1] < '1' || s[1] > '9')
                return false;
        return strspn(s + 1, "0123456789") == len - 1;
}

/* numbers: the pinned numbers, each also a REF_PIN so that a number pinned
 * twice anywhere in the file is found. */
static void pool_parse_numbers(struct parse_ctx *ctx, const struct node *n, const struct target_config *t,
                               struct pool_config *p) {
        if (!expect_sequence(ctx, n, "numbers", "a list of E.164 phone numbers such as [\"+12065550100\"]"))
                return;
        for (size_t i = 0; i < n->n_children; i++) {
                const struct node *item = n->children[i];
                if (item->type == NODE_ALIAS)
                        continue;
                if (item->type != NODE_SCALAR || node_is_null(item)) {
                        problem(ctx, item, "a \"numbers\" entry must be an E.164 phone number such as \"+12065550100\", not %s",
                                node_describe(item));
                        continue;
                }
                if (!e164_valid(item->value, item->len)) {
                        bool digits_only = item->len > 0 && strspn(item->value, "0123456789") == item->len;
                        problem(ctx, item,
                                "pinned number %s is not E.164: + and 1 to %d digits, the first not 0, such as +12065550100%s",
                                QUOTE_NODE(item), E164_DIGITS_MAX, digits_only ? " (write its leading +)" : "");
                        continue;
                }
                if (strs_append(&p->numbers, &p->n_numbers, item->value) < 0) {
                        ctx->oom = true;
                        return;
                }
                ref_add(ctx, REF_PIN, item->value, item, t->name, p->name);
        }
}

/* TARGET/POOL, the form of an ownership tag's value. */
static bool tag_value_valid(const char *s, size_t len) {
        const char *slash = memchr(s, '/', len);
        if (!slash)
                return false;
        size_t a = (size_t) (slash - s);
        return name_valid(s, a) && name_valid(slash + 1, len - a - 1);
}

static void pool_parse_from(struct parse_ctx *ctx, const struct node *n, const struct target_config *t,
                            struct pool_config *p) {
        if (!expect_sequence(ctx, n, "from", "a list of TARGET/POOL ownership-tag values such as [old-target/main]"))
                return;
        for (size_t i = 0; i < n->n_children; i++) {
                const struct node *item = n->children[i];
                if (item->type == NODE_ALIAS)
                        continue;
                if (item->type != NODE_SCALAR || node_is_null(item)) {
                        problem(ctx, item, "a \"from\" entry must be TARGET/POOL such as old-target/main, not %s",
                                node_describe(item));
                        continue;
                }
                if (strlen(item->value) != item->len || !tag_value_valid(item->value, item->len)) {
                        problem(ctx, item,
                                "\"from\" entry %s must be TARGET/POOL (an ownership tag's value), each part 1 to %d "
                                "characters of A-Z, a-z, 0-9, _ and -",
                                QUOTE_NODE(item), NAME_LEN_MAX);
                        continue;
                }
                size_t tlen = strlen(t->name);
                if (strncmp(item->value, t->name, tlen) == 0 && item->value[tlen] == '/' &&
                    streq(item->value + tlen + 1, p->name)) {
                        problem(ctx, item, "\"from\" entry %s names this pool itself", QUOTE_NODE(item));
                        continue;
                }
                if (strs_append(&p->from, &p->n_from, item->value) < 0) {
                        ctx->oom = true;
                        return;
                }
                ref_add(ctx, REF_FROM, item->value, item, t->name, p->name);
        }
}

/* contact_flow: a flow id, or a flow ARN (FLOW_ARN_FORM), split into the
 * flow id and its instance. A traffic distribution group has no flows of
 * its own: its pools name the flow by ARN, whose instance the association
 * is made through. The ARN must be in the target's partition, region and
 * account; on an instance target, of the target's own instance. */
static void pool_resolve_contact_flow(struct parse_ctx *ctx, const struct node *n, const struct target_config *t,
                                      bool kind_known, struct pool_config *p) {
        if (!p->contact_flow)
                return; /* reported already */
        const char *s = p->contact_flow;
        if (strncmp(s, "arn:", 4) != 0) {
                if (kind_known && t->kind == TARGET_TRAFFIC_DISTRIBUTION_GROUP)
                        problem(ctx, n,
                                "a traffic distribution group's pool must name its flow by ARN (%s), not by id %s: "
                                "the association needs the flow's instance, which the ARN names (target %s)",
                                FLOW_ARN_FORM, QUOTE_NODE(n), QUOTE(t->name));
                return;
        }

        /* arn : PARTITION : connect : REGION : ACCOUNT : instance/IID/contact-flow/FID */
        const char *field[6];
        size_t flen[6], nf = 0;
        for (const char *c = s; nf < 6;) {
                const char *colon = nf < 5 ? strchr(c, ':') : NULL;
                field[nf] = c;
                flen[nf] = colon ? (size_t) (colon - c) : strlen(c);
                nf++;
                if (!colon)
                        break;
                c = colon + 1;
        }
        bool ok = nf == 6;
        char partition[16] = {}, region[64] = {}, account[13] = {};
        const char *iid = NULL, *fid = NULL;
        size_t iid_len = 0;
        if (ok) {
                ok = ((flen[1] == 3 && memcmp(field[1], "aws", 3) == 0) ||
                      (flen[1] == 10 && memcmp(field[1], "aws-us-gov", 10) == 0)) &&
                     flen[2] == 7 && memcmp(field[2], "connect", 7) == 0 && flen[3] < sizeof region &&
                     flen[4] == 12 && strspn(field[4], "0123456789") >= 12 && strncmp(field[5], "instance/", 9) == 0;
        }
        if (ok) {
                memcpy(partition, field[1], flen[1]);
                memcpy(region, field[3], flen[3]);
                memcpy(account, field[4], 12);
                iid = field[5] + 9;
                iid_len = strcspn(iid, "/");
                ok = region_valid(region) && iid_len >= 1 && iid_len <= ARN_ID_LEN_MAX &&
                     strncmp(iid + iid_len, "/contact-flow/", 14) == 0;
                for (size_t i = 0; ok && i < iid_len; i++)
                        ok = is_name_char(iid[i]) && iid[i] != '_';
        }
        if (ok) {
                fid = iid + iid_len + 14;
                ok = *fid != 0 && strcspn(fid, "/:") == strlen(fid);
        }
        if (!ok) {
                problem(ctx, n, "\"contact_flow\" %s is neither a flow id nor a flow ARN (%s)", QUOTE_NODE(n),
                        FLOW_ARN_FORM);
                return;
        }
        const char *what = !t->partition || !t->region || !t->account ? NULL
                           : !streq(partition, t->partition)                ? "partition"
                           : !streq(account, t->account)                    ? "account"
                           : !streq(region, t->region)                      ? "region"
                                                                            : NULL;
        if (what) {
                bool part = streq(what, "partition"), acc = streq(what, "account");
                problem(ctx, n,
                        "\"contact_flow\" is a flow in %s %s, target %s is in %s: a number is associated with a flow "
                        "of its own partition, account and region",
                        what, QUOTE(part ? partition : acc ? account : region), QUOTE(t->name),
                        QUOTE(part ? t->partition : acc ? t->account : t->region));
                return;
        }
        if (kind_known && t->kind == TARGET_INSTANCE && t->resource_id &&
            (strlen(t->resource_id) != iid_len || strncmp(iid, t->resource_id, iid_len) != 0)) {
                problem(ctx, n, "\"contact_flow\" is a flow of instance %s, not of target %s's instance %s",
                        QUOTE_N(iid, iid_len), QUOTE(t->name), QUOTE(t->resource_id));
                return;
        }
        char *instance = strndup(iid, iid_len), *flow = strdup(fid);
        if (!instance || !flow) {
                free(instance);
                free(flow);
                ctx->oom = true;
                return;
        }
        free(p->flow_instance_id);
        p->flow_instance_id = instance;
        free(p->contact_flow);
        p->contact_flow = flow;
}

static void pool_parse(struct parse_ctx *ctx, const struct node *key, const struct node *m,
                       const struct target_config *t, bool kind_known, struct pool_config *p) {
        const struct node *keys[_POOL_KEYS], *values[_POOL_KEYS];
        char where[256];
        snprintf(where, sizeof where, "in pool %s of target %s", QUOTE_NODE(key), QUOTE(t->name));

        /* UINT_MAX: no valid count: (the walker stores only a valid one) */
        p->count = UINT_MAX;
        mapping_walk(ctx, m, pool_keys, _POOL_KEYS, p, where, keys, values);
        if (values[POOL_PREFIX])
                pool_parse_prefix(ctx, values[POOL_PREFIX], p);
        if (values[POOL_TAGS])
                pool_parse_tags(ctx, values[POOL_TAGS], p);
        if (values[POOL_CONTACT_FLOW])
                pool_resolve_contact_flow(ctx, values[POOL_CONTACT_FLOW], t, kind_known, p);
        if (values[POOL_NUMBERS])
                pool_parse_numbers(ctx, values[POOL_NUMBERS], t, p);
        if (values[POOL_FROM])
                pool_parse_from(ctx, values[POOL_FROM], t, p);

        /* Pins occupy their own slots: count defaults to their number and
         * may not be smaller. */
        if (!keys[POOL_COUNT]) {
                p->count = 0;
                if (!keys[POOL_NUMBERS])
                        problem(ctx, m, "missing required key \"count\" %s", where);
                else if (p->n_numbers > POOL_COUNT_MAX)
                        problem(ctx, values[POOL_NUMBERS], "\"numbers\" holds %zu numbers: at most %d (the bound of count)",
                                p->n_numbers, POOL_COUNT_MAX);
                else
                        p->count = (unsigned) p->n_numbers;
        } else if (p->count == UINT_MAX)
                p->count = 0; /* reported already */
        else if (p->count < p->n_numbers)
                problem(ctx, values[POOL_COUNT],
                        "\"count\" %u is smaller than the %zu pinned \"numbers\" of the pool: pins occupy their own "
                        "slots (leave count out to hold the pins only)",
                        p->count, p->n_numbers);
}

/* ---- targets ----------------------------------------------------------- */

enum {
        TARGET_ARN,
        TARGET_QUOTA,
        TARGET_RELEASE_EXCESS,
        TARGET_MAX_RELEASES,
        TARGET_POOLS,
        TARGET_ROLE_ARN,
        TARGET_EXTERNAL_ID,
        TARGET_ROLE_SESSION_NAME,
        TARGET_ROLE_DURATION,
        TARGET_PREVIOUS_ARNS,
        _TARGET_KEYS,
};

static const struct key_spec target_keys[_TARGET_KEYS] = {
        [TARGET_ARN] = { "arn", VALUE_OTHER, true, 0, 0, 0, NULL },
        [TARGET_QUOTA] = { "quota", VALUE_UINT, false, 1, 10000, offsetof(struct target_config, quota), NULL },
        [TARGET_RELEASE_EXCESS] = { "release_excess", VALUE_BOOL, false, 0, 0, offsetof(struct target_config, release_excess), NULL },
        [TARGET_MAX_RELEASES] = { "max_releases_per_pass", VALUE_UINT, false, 1, 1000,
                                  offsetof(struct target_config, max_releases_per_pass), NULL },
        [TARGET_POOLS] = { "pools", VALUE_OTHER, true, 0, 0, 0, NULL },
        [TARGET_ROLE_ARN] = { "role_arn", VALUE_STRING, false, 20, 2048, offsetof(struct target_config, role_arn), check_role_arn },
        [TARGET_EXTERNAL_ID] = { "external_id", VALUE_STRING, false, 2, 1224, offsetof(struct target_config, external_id), check_external_id },
        [TARGET_ROLE_SESSION_NAME] = { "role_session_name", VALUE_STRING, false, 2, 64, offsetof(struct target_config, role_session_name),
                                    check_session_name },
        [TARGET_ROLE_DURATION] = { "role_duration", VALUE_DURATION, false, ROLE_DURATION_MIN_SEC, ROLE_DURATION_MAX_SEC,
                                offsetof(struct target_config, role_duration_usec), NULL },
        [TARGET_PREVIOUS_ARNS] = { "previous_arns", VALUE_OTHER, false, 0, 0, 0, NULL },
};

static void target_config_done(struct target_config *t) {
        free(t->name);
        free(t->arn);
        free(t->partition);
        free(t->region);
        free(t->account);
        free(t->resource_id);
        free(t->role_arn);
        free(t->external_id);
        free(t->role_session_name);
        strs_free(t->previous_arns, t->n_previous_arns);
        for (size_t i = 0; i < t->n_pools; i++)
                pool_config_done(&t->pools[i]);
        free(t->pools);
        *t = (struct target_config) {};
}

static int strndup_to(char **ret, const char *s, size_t n) {
        char *v = strndup(s, n);
        if (!v)
                return -ENOMEM;
        free(*ret);
        *ret = v;
        return 0;
}

/* arn:PARTITION:connect:REGION:ACCOUNT:instance/ID or
 * ...:traffic-distribution-group/ID (connect-numbers.yaml(5)). Every defect
 * is its own problem. Returns true if valid; *kind_known tells whether the
 * resource type could be read even if something else is wrong. */
/* Appends one reason to a problem's text ("; " between reasons). */
static void why_add(char *buf, size_t size, size_t *len, const char *fmt, ...) _printf_(4, 5);
static void why_add(char *buf, size_t size, size_t *len, const char *fmt, ...) {
        if (*len + 3 >= size)
                return;
        if (*len > 0) {
                memcpy(buf + *len, "; ", 2);
                *len += 2;
        }
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(buf + *len, size - *len, fmt, ap);
        va_end(ap);
        if (k > 0)
                *len = MIN(*len + (size_t) k, size - 1);
        buf[*len] = 0;
}

/* what: how the messages name the value ("\"arn\"", "a \"previous_arns\" entry"). */
static bool target_parse_arn(struct parse_ctx *ctx, const struct node *n, const char *what, struct target_config *t,
                             bool *kind_known) {
        static const char usage[] = "arn:PARTITION:connect:REGION:ACCOUNT:instance/ID";
        const char *field[6];
        size_t flen[6], nf = 0;

        *kind_known = false;
        if (!expect_scalar(ctx, n, "arn", "a Connect instance or traffic distribution group ARN"))
                return false;
        if (strlen(n->value) != n->len || n->len > 2048) {
                problem(ctx, n, "%s must be a Connect ARN (%s), not %s", what, usage, QUOTE_NODE(n));
                return false;
        }
        for (const char *s = n->value; nf < 6;) {
                const char *colon = nf < 5 ? strchr(s, ':') : NULL;
                field[nf] = s;
                flen[nf] = colon ? (size_t) (colon - s) : strlen(s);
                nf++;
                if (!colon)
                        break;
                s = colon + 1;
        }
        if (nf < 6 || flen[0] != 3 || memcmp(field[0], "arn", 3) != 0) {
                problem(ctx, n, "%s must be a Connect ARN (%s), not %s", what, usage, QUOTE_NODE(n));
                return false;
        }

        bool ok = true;
        /* One problem for one wrong value, with every reason in it. */
        char why[768] = "";
        size_t why_len = 0;
        const char *partition = NULL;
        if (flen[1] == 3 && memcmp(field[1], "aws", 3) == 0)
                partition = "aws";
        else if (flen[1] == 10 && memcmp(field[1], "aws-us-gov", 10) == 0)
                partition = "aws-us-gov";
        else {
                why_add(why, sizeof why, &why_len, "arn partition %s is not supported (expected aws or aws-us-gov)",
                        QUOTE_N(field[1], flen[1]));
                ok = false;
        }
        if (flen[2] != 7 || memcmp(field[2], "connect", 7) != 0) {
                why_add(why, sizeof why, &why_len, "arn service %s is not connect", QUOTE_N(field[2], flen[2]));
                ok = false;
        }
        char region[64] = {};
        if (flen[3] < sizeof region)
                memcpy(region, field[3], flen[3]);
        if (flen[3] >= sizeof region || !region_valid(region)) {
                why_add(why, sizeof why, &why_len, "arn region %s is not an AWS region such as us-east-1", QUOTE_N(field[3], flen[3]));
                ok = false;
        } else if (partition) {
                bool gov = strncmp(region, "us-gov-", 7) == 0;
                if (gov != streq(partition, "aws-us-gov")) {
                        why_add(why, sizeof why, &why_len, "arn region %s is not in partition %s", QUOTE(region), partition);
                        ok = false;
                }
        }
        if (flen[4] != 12 || strspn(field[4], "0123456789") < 12) {
                why_add(why, sizeof why, &why_len, "arn account %s must be 12 digits", QUOTE_N(field[4], flen[4]));
                ok = false;
        }

        const char *res = field[5], *id = NULL;
        size_t rlen = flen[5];
        enum target_kind kind = TARGET_INSTANCE;
        if (rlen > 9 && strncmp(res, "instance/", 9) == 0) {
                id = res + 9;
                kind = TARGET_INSTANCE;
        } else if (rlen > 27 && strncmp(res, "traffic-distribution-group/", 27) == 0) {
                id = res + 27;
                kind = TARGET_TRAFFIC_DISTRIBUTION_GROUP;
        } else if (streq(res, "instance/") || streq(res, "traffic-distribution-group/")) {
                why_add(why, sizeof why, &why_len, "arn resource %s has an empty id", QUOTE_N(res, rlen));
                ok = false;
        } else {
                why_add(why, sizeof why, &why_len, "arn resource %s is not instance/ID or traffic-distribution-group/ID", QUOTE_N(res, rlen));
                ok = false;
        }
        if (id) {
                *kind_known = true;
                size_t idlen = strlen(id);
                for (size_t i = 0; i < idlen; i++)
                        if (!is_name_char(id[i]) || id[i] == '_') {
                                idlen = 0;
                                break;
                        }
                if (idlen < 1 || idlen > ARN_ID_LEN_MAX) {
                        why_add(why, sizeof why, &why_len, "arn resource id %s must be 1 to %d characters of A-Z, a-z, 0-9 and -",
                                QUOTE(id), ARN_ID_LEN_MAX);
                        ok = false;
                }
        }
        t->kind = kind;
        if (!ok) {
                /* One value, one problem: a lone reason as it is, several
                 * (an ARN of another service) in one line. */
                if (strstr(why, "; "))
                        problem(ctx, n, "%s %s is not a Connect ARN (%s): %s", what, QUOTE_NODE(n), usage, why);
                else
                        problem(ctx, n, "%s", why);
                return false;
        }

        if (strndup_to(&t->arn, n->value, n->len) < 0 || strndup_to(&t->partition, partition, strlen(partition)) < 0 ||
            strndup_to(&t->region, field[3], flen[3]) < 0 || strndup_to(&t->account, field[4], flen[4]) < 0 ||
            strndup_to(&t->resource_id, id, strlen(id)) < 0) {
                ctx->oom = true;
                return false;
        }
        return true;
}

/* The entries of a mapping of names to mappings (the targets, a target's
 * pools): every name is checked, and add() is called for each entry whose
 * value is a mapping, until it fails (out of memory). what: "target" or
 * "pool"; holds: what such a mapping holds, for the message. */
typedef int (*named_entry_fn)(struct parse_ctx *ctx, const struct node *key, const struct node *value, void *userdata);

static void named_entries(struct parse_ctx *ctx, const struct node *m, const char *what, const char *holds,
                          named_entry_fn add, void *userdata) {
        _cleanup_(freep) bool *skip = mapping_skip_list(ctx, m);
        if (!skip)
                return;
        for (size_t i = 0; i < m->n_children / 2; i++) {
                const struct node *key = m->children[2 * i], *value = m->children[2 * i + 1];
                if (skip[i])
                        continue;
                if (!name_valid(key->value, key->len))
                        problem(ctx, key, "%s name %s must be 1 to %d characters of A-Z, a-z, 0-9, _ and -", what,
                                QUOTE_NODE(key), NAME_LEN_MAX);
                if (value->type == NODE_ALIAS)
                        continue;
                if (value->type != NODE_MAPPING) {
                        problem(ctx, value, "%s %s must be a mapping with %s, not %s", what, QUOTE_NODE(key), holds,
                                node_describe(value));
                        continue;
                }
                if (add(ctx, key, value, userdata) < 0) {
                        ctx->oom = true;
                        return;
                }
        }
}

struct pool_add {
        struct target_config *target;
        bool kind_known;
};

static int pool_add(struct parse_ctx *ctx, const struct node *key, const struct node *value, void *userdata) {
        struct pool_add *a = userdata;
        struct target_config *t = a->target;
        struct pool_config p = { .line = key->line };
        p.name = strdup(key->value);
        if (!p.name)
                return -ENOMEM;
        pool_parse(ctx, key, value, t, a->kind_known, &p);
        if (GROW(t->pools, t->n_pools) < 0) {
                pool_config_done(&p);
                return -ENOMEM;
        }
        t->pools[t->n_pools++] = p;
        if (name_valid(t->name, strlen(t->name)) && name_valid(p.name, strlen(p.name))) {
                _cleanup_(freep) char *tag = strprintf("%s/%s", t->name, p.name);
                if (!tag)
                        return -ENOMEM;
                ref_add(ctx, REF_POOL, tag, key, t->name, p.name);
        }
        return 0;
}

static void target_parse_pools(struct parse_ctx *ctx, const struct node *m, struct target_config *t, bool kind_known) {
        if (!expect_mapping(ctx, m, "pools", "a mapping of pool names to pools"))
                return;
        if (m->n_children == 0) {
                problem(ctx, m, "\"pools\" of target %s must hold at least one pool", QUOTE(t->name));
                return;
        }
        named_entries(ctx, m, "pool", "country, type and count", pool_add,
                      &(struct pool_add){.target = t, .kind_known = kind_known});
}

/* Fills the role settings the target leaves out from the top level, then
 * checks that the role can reach the target: Connect is called in the
 * target's own account, so the role must live there. The problem goes to
 * the target's role_arn, else (inherited) to its arn. */
static void target_resolve_role(struct parse_ctx *ctx, const struct node **keys, const struct node **values,
                                struct target_config *t) {
        const struct config *c = ctx->config;
        const char *account = NULL;

        if ((!t->role_arn && c->role_arn && !(t->role_arn = strdup(c->role_arn))) ||
            (!t->external_id && c->external_id && !(t->external_id = strdup(c->external_id))) ||
            (!t->role_session_name && !(t->role_session_name = strdup(c->role_session_name ?: ROLE_SESSION_NAME_DEFAULT)))) {
                ctx->oom = true;
                return;
        }
        if (!t->role_duration_usec)
                t->role_duration_usec = c->role_duration_usec ?: ROLE_DURATION_DEFAULT_SEC * USEC_PER_SEC;
        if (!t->role_arn && !keys[TARGET_ROLE_ARN] && !ctx->top_role_arn_given) {
                static const unsigned role_keys[] = { TARGET_EXTERNAL_ID, TARGET_ROLE_SESSION_NAME, TARGET_ROLE_DURATION };
                for (size_t i = 0; i < ELEMENTSOF(role_keys); i++)
                        if (keys[role_keys[i]])
                                problem(ctx, keys[role_keys[i]], "\"%s\" needs a \"role_arn\" (in target %s or the top level)",
                                        target_keys[role_keys[i]].name, QUOTE(t->name));
                return;
        }
        if (!t->role_arn || !t->account || !role_arn_valid(t->role_arn, &account))
                return; /* reported already */
        if (strncmp(account, t->account, 12) != 0 || strncmp(t->role_arn + 4, t->partition, strlen(t->partition)) != 0 ||
            t->role_arn[4 + strlen(t->partition)] != ':') {
                const struct node *at = values[TARGET_ROLE_ARN] ? values[TARGET_ROLE_ARN] : values[TARGET_ARN];
                problem(ctx, at,
                        "role_arn %s is not in target %s's account %s (partition %s): Connect is called in the "
                        "target's own account, with a role of that account",
                        QUOTE(t->role_arn), QUOTE(t->name), t->account, t->partition);
        }
}

/* previous_arns: where the target lived before. A move is UpdatePhoneNumber,
 * which cannot cross a partition, account or region: each entry must share
 * those with arn. Entries equal to a target's arn or listed twice are found
 * by config_check_refs(). */
static void target_parse_previous_arns(struct parse_ctx *ctx, const struct node *n, struct target_config *t) {
        if (!expect_sequence(ctx, n, "previous_arns", "a list of Connect instance or traffic distribution group ARNs"))
                return;
        for (size_t i = 0; i < n->n_children; i++) {
                const struct node *item = n->children[i];
                struct target_config prev = {};
                bool kind_known;
                if (item->type == NODE_ALIAS)
                        continue;
                if (item->type != NODE_SCALAR || node_is_null(item)) {
                        problem(ctx, item,
                                "a \"previous_arns\" entry must be a Connect instance or traffic distribution group ARN, not %s",
                                node_describe(item));
                        continue;
                }
                if (!target_parse_arn(ctx, item, "a \"previous_arns\" entry", &prev, &kind_known)) {
                        target_config_done(&prev);
                        continue;
                }
                const char *what = !t->arn                                  ? NULL
                                   : !streq(prev.partition, t->partition) ? "partition"
                                   : !streq(prev.account, t->account)     ? "account"
                                   : !streq(prev.region, t->region)       ? "region"
                                                                          : NULL;
                if (t->arn && streq(prev.arn, t->arn))
                        problem(ctx, item, "\"previous_arns\" entry is the target's own arn");
                else if (what) {
                        bool part = streq(what, "partition"), acc = streq(what, "account");
                        problem(ctx, item,
                                "\"previous_arns\" entry is in %s %s, arn in %s: a number cannot be moved across "
                                "partitions, accounts or regions",
                                what, QUOTE(part ? prev.partition : acc ? prev.account : prev.region),
                                QUOTE(part ? t->partition : acc ? t->account : t->region));
                } else if (strs_append(&t->previous_arns, &t->n_previous_arns, prev.arn) < 0)
                        ctx->oom = true;
                else
                        ref_add(ctx, REF_PREVIOUS, prev.arn, item, t->name, NULL);
                target_config_done(&prev);
        }
}

static void target_parse(struct parse_ctx *ctx, const struct node *key, const struct node *m, struct target_config *t) {
        const struct node *keys[_TARGET_KEYS], *values[_TARGET_KEYS];
        char where[160];
        bool kind_known = false;
        snprintf(where, sizeof where, "in target %s", QUOTE_NODE(key));

        mapping_walk(ctx, m, target_keys, _TARGET_KEYS, t, where, keys, values);
        if (values[TARGET_ARN] && target_parse_arn(ctx, values[TARGET_ARN], "\"arn\"", t, &kind_known)) {
                const struct config *c = ctx->config;
                ref_add(ctx, REF_ARN, t->arn, values[TARGET_ARN], t->name, NULL);
                for (size_t i = 0; i < c->n_targets; i++)
                        if (streq_ptr(c->targets[i].arn, t->arn)) {
                                problem(ctx, values[TARGET_ARN], "arn %s is already used by target %s (line %u)",
                                        QUOTE(t->arn), QUOTE(c->targets[i].name), c->targets[i].line);
                                break;
                        }
        }
        if (values[TARGET_PREVIOUS_ARNS])
                target_parse_previous_arns(ctx, values[TARGET_PREVIOUS_ARNS], t);
        if (values[TARGET_POOLS])
                target_parse_pools(ctx, values[TARGET_POOLS], t, kind_known);
        target_resolve_role(ctx, keys, values, t);
}

static int target_add(struct parse_ctx *ctx, const struct node *key, const struct node *value, void *userdata) {
        struct config *c = userdata;
        struct target_config t = {
                .quota = QUOTA_DEFAULT,
                .max_releases_per_pass = MAX_RELEASES_DEFAULT,
                .line = key->line,
        };
        t.name = strdup(key->value);
        if (!t.name)
                return -ENOMEM;
        target_parse(ctx, key, value, &t);
        if (GROW(c->targets, c->n_targets) < 0) {
                target_config_done(&t);
                return -ENOMEM;
        }
        c->targets[c->n_targets++] = t;
        return 0;
}

static void config_parse_targets(struct parse_ctx *ctx, const struct node *m) {
        struct config *c = ctx->config;
        if (!expect_mapping(ctx, m, "targets", "a mapping of target names to targets"))
                return;
        if (m->n_children == 0) {
                problem(ctx, m, "\"targets\" must hold at least one target");
                return;
        }
        named_entries(ctx, m, "target", "arn and pools", target_add, c);
}

/* ---- across targets ---------------------------------------------------- */

static int ref_compare(const void *a, const void *b) {
        const struct ref *x = a, *y = b;
        int c = strcmp(x->value, y->value);
        if (c != 0)
                return c;
        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        return x->column < y->column ? -1 : x->column > y->column;
}

/* The rules that compare values across pools and targets. Pins start with
 * '+', ARNs with "arn:", and tag values hold neither '+' nor ':', so the
 * three kinds never share a value. In each run of equal values, the first
 * one in the file is the one later ones are reported against. */
static void config_check_refs(struct parse_ctx *ctx) {
        if (ctx->n_refs == 0)
                return; /* qsort() wants an array, even an empty one */
        qsort(ctx->refs, ctx->n_refs, sizeof *ctx->refs, ref_compare);
        for (size_t i = 0, j; i < ctx->n_refs; i = j) {
                const struct ref *owner = NULL, *first_from = NULL, *first_prev = NULL, *first_pin = NULL;
                for (j = i; j < ctx->n_refs && streq(ctx->refs[j].value, ctx->refs[i].value); j++)
                        if (!owner && (ctx->refs[j].kind == REF_POOL || ctx->refs[j].kind == REF_ARN))
                                owner = &ctx->refs[j];
                for (size_t k = i; k < j; k++) {
                        const struct ref *r = &ctx->refs[k];
                        switch (r->kind) {
                        case REF_PIN:
                                if (first_pin)
                                        problem_at(ctx, r->line, r->column,
                                                   "number %s is already pinned by pool %s of target %s (line %u column "
                                                   "%u): a number may be pinned by one pool only",
                                                   QUOTE(r->value), QUOTE(first_pin->pool), QUOTE(first_pin->target),
                                                   first_pin->line, first_pin->column);
                                else
                                        first_pin = r;
                                break;
                        case REF_FROM:
                                if (owner)
                                        problem_at(ctx, r->line, r->column,
                                                   "\"from\" entry %s names pool %s of target %s, which is still in the "
                                                   "YAML (line %u): only a pool renamed or removed can be taken over",
                                                   QUOTE(r->value), QUOTE(owner->pool), QUOTE(owner->target),
                                                   owner->line);
                                else if (first_from)
                                        problem_at(ctx, r->line, r->column,
                                                   "\"from\" entry %s is already named by pool %s of target %s (line %u "
                                                   "column %u): a pool's numbers go to one pool only",
                                                   QUOTE(r->value), QUOTE(first_from->pool), QUOTE(first_from->target),
                                                   first_from->line, first_from->column);
                                else
                                        first_from = r;
                                break;
                        case REF_PREVIOUS:
                                /* its own target's arn is reported by target_parse_previous_arns() */
                                if (owner && !streq(owner->target, r->target))
                                        problem_at(ctx, r->line, r->column,
                                                   "\"previous_arns\" entry is the arn of target %s (line %u): a "
                                                   "target of the YAML is listed already",
                                                   QUOTE(owner->target), owner->line);
                                else if (!owner && first_prev)
                                        problem_at(ctx, r->line, r->column,
                                                   "\"previous_arns\" entry is already listed by target %s (line %u "
                                                   "column %u): a number's previous place belongs to one target only",
                                                   QUOTE(first_prev->target), first_prev->line, first_prev->column);
                                else if (!owner)
                                        first_prev = r;
                                break;
                        case REF_POOL:
                        case REF_ARN:
                                break;
                        }
                }
        }
}

/* ---- top level --------------------------------------------------------- */

static void config_parse_api_rate(struct parse_ctx *ctx, const struct node *m) {
        struct config *c = ctx->config;
        if (!expect_mapping(ctx, m, "api_rate", "a mapping such as {default: 2, burst: 5}"))
                return;
        _cleanup_(freep) bool *skip = mapping_skip_list(ctx, m);
        if (!skip)
                return;
        for (size_t i = 0; i < m->n_children / 2; i++) {
                const struct node *key = m->children[2 * i], *value = m->children[2 * i + 1];
                if (skip[i])
                        continue;
                size_t k;
                for (k = 0; k < ELEMENTSOF(api_rate_names); k++)
                        if (key->len == strlen(api_rate_names[k]) && streq(key->value, api_rate_names[k]))
                                break;
                if (k == ELEMENTSOF(api_rate_names)) {
                        const char *hint = suggest(key->value, api_rate_names, ELEMENTSOF(api_rate_names));
                        problem(ctx, key, "unknown key %s in api_rate (%s%s%s)", QUOTE_NODE(key),
                                hint ? "did you mean \"" : "expected default, burst or a Connect operation name",
                                hint ?: "", hint ? "\"?" : "");
                        continue;
                }
                /* A bucket smaller than one request would never let one through. */
                double v;
                if (!value_rate(ctx, value, key->value, streq(key->value, "burst") ? 1 : 0.1, 1000, &v))
                        continue;
                if (streq(key->value, "default"))
                        c->rate_default = v;
                else if (streq(key->value, "burst"))
                        c->rate_burst = v;
                else {
                        if (GROW(c->rates, c->n_rates) < 0) {
                                ctx->oom = true;
                                return;
                        }
                        c->rates[c->n_rates] = (struct config_rate) { .operation = strdup(key->value), .rate = v };
                        if (!c->rates[c->n_rates].operation) {
                                ctx->oom = true;
                                return;
                        }
                        c->n_rates++;
                }
        }
}

enum {
        TOP_INTERVAL,
        TOP_REGION,
        TOP_ENDPOINT_URL,
        TOP_CA_FILE,
        TOP_PROFILE,
        TOP_API_RATE,
        TOP_QUOTA_BACKOFF,
        TOP_MAX_NUMBERS_PER_TARGET,
        TOP_LOG_LEVEL,
        TOP_ROLE_ARN,
        TOP_EXTERNAL_ID,
        TOP_ROLE_SESSION_NAME,
        TOP_ROLE_DURATION,
        TOP_METRICS_FILE,
        TOP_TARGETS,
        _TOP_KEYS,
};

static const struct key_spec top_keys[_TOP_KEYS] = {
        [TOP_INTERVAL] = { "interval", VALUE_DURATION, false, 1, 24 * 3600, offsetof(struct config, interval_usec), NULL },
        [TOP_REGION] = { "region", VALUE_STRING, false, 1, 64, offsetof(struct config, region), check_region },
        [TOP_ENDPOINT_URL] = { "endpoint_url", VALUE_STRING, false, 1, 2048, offsetof(struct config, endpoint_url), check_endpoint_url },
        [TOP_CA_FILE] = { "ca_file", VALUE_STRING, false, 1, 4096, offsetof(struct config, ca_file), NULL },
        [TOP_PROFILE] = { "profile", VALUE_STRING, false, 1, 128, offsetof(struct config, profile), check_profile },
        [TOP_API_RATE] = { "api_rate", VALUE_OTHER, false, 0, 0, 0, NULL },
        [TOP_QUOTA_BACKOFF] = { "quota_backoff", VALUE_DURATION, false, 60, 7 * 24 * 3600,
                                offsetof(struct config, quota_backoff_usec), NULL },
        [TOP_MAX_NUMBERS_PER_TARGET] = { "max_numbers_per_target", VALUE_UINT, false, MAX_NUMBERS_PER_TARGET_MIN,
                                         MAX_NUMBERS_PER_TARGET_MAX, offsetof(struct config, max_numbers_per_target),
                                         NULL },
        [TOP_LOG_LEVEL] = { "log_level", VALUE_OTHER, false, 0, 0, 0, NULL },
        [TOP_ROLE_ARN] = { "role_arn", VALUE_STRING, false, 20, 2048, offsetof(struct config, role_arn), check_role_arn },
        [TOP_EXTERNAL_ID] = { "external_id", VALUE_STRING, false, 2, 1224, offsetof(struct config, external_id), check_external_id },
        [TOP_ROLE_SESSION_NAME] = { "role_session_name", VALUE_STRING, false, 2, 64, offsetof(struct config, role_session_name),
                                    check_session_name },
        [TOP_ROLE_DURATION] = { "role_duration", VALUE_DURATION, false, ROLE_DURATION_MIN_SEC, ROLE_DURATION_MAX_SEC,
                                offsetof(struct config, role_duration_usec), NULL },
        [TOP_METRICS_FILE] = { "metrics_file", VALUE_STRING, false, 1, 4096, offsetof(struct config, metrics_file),
                               check_metrics_file },
        [TOP_TARGETS] = { "targets", VALUE_OTHER, true, 0, 0, 0, NULL },
};

/* The journal's priority names, the ones journalctl -p takes. */
static void config_parse_log_level(struct parse_ctx *ctx, const struct node *n) {
        static const char *const names[] = { "err", "warning", "notice", "info", "debug" };
        if (!expect_scalar(ctx, n, "log_level", "one of err, warning, notice, info, debug"))
                return;
        int level = strlen(n->value) == n->len ? log_level_from_string(n->value) : -EINVAL;
        if (level < 0) {
                /* The usual other spellings are too far from the names for
                 * suggest() to find. */
                const char *hint = streq(n->value, "error") ? "err"
                                   : streq(n->value, "warn") ? "warning"
                                                             : suggest(n->value, names, ELEMENTSOF(names));
                problem(ctx, n, "\"log_level\" must be one of err, warning, notice, info, debug, not %s%s",
                        QUOTE_NODE(n), DID_YOU_MEAN(hint));
                return;
        }
        ctx->config->log_level = level;
}

static void config_parse_root(struct parse_ctx *ctx, const struct node *root) {
        const struct node *keys[_TOP_KEYS], *values[_TOP_KEYS];

        if (!root || node_is_null(root)) {
                problem_at(ctx, 1, 1, "missing required key \"targets\" in the top level (the file holds no settings)");
                return;
        }
        if (root->type == NODE_ALIAS)
                return;
        if (root->type != NODE_MAPPING) {
                problem(ctx, root, "the file must be a mapping of settings such as \"targets\", not %s",
                        node_describe(root));
                return;
        }
        mapping_walk(ctx, root, top_keys, _TOP_KEYS, ctx->config, "in the top level", keys, values);
        ctx->top_role_arn_given = keys[TOP_ROLE_ARN] != NULL;
        if (values[TOP_API_RATE])
                config_parse_api_rate(ctx, values[TOP_API_RATE]);
        if (values[TOP_LOG_LEVEL])
                config_parse_log_level(ctx, values[TOP_LOG_LEVEL]);
        if (values[TOP_TARGETS])
                config_parse_targets(ctx, values[TOP_TARGETS]);
        if (!ctx->oom)
                config_check_refs(ctx);
}

/* ---- digests ----------------------------------------------------------- */

struct buf {
        char *data;
        size_t len, size;
        bool oom;
};

static _printf_(2, 3) void buf_printf(struct buf *b, const char *fmt, ...) {
        if (b->oom)
                return;
        for (;;) {
                va_list ap;
                va_start(ap, fmt);
                int k = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->size - b->len : 0, fmt, ap);
                va_end(ap);
                if (k < 0) {
                        b->oom = true;
                        return;
                }
                if (b->data && (size_t) k < b->size - b->len) {
                        b->len += (size_t) k;
                        return;
                }
                size_t nsize = MAX(b->size * 2, b->len + (size_t) k + 256);
                char *n = realloc(b->data, nsize);
                if (!n) {
                        b->oom = true;
                        return;
                }
                b->data = n;
                b->size = nsize;
        }
}

/* name=LEN:VALUE, or name=- for NULL: unambiguous whatever the value holds */
static void buf_field(struct buf *b, const char *name, const char *value) {
        if (value)
                buf_printf(b, "%s=%zu:%s\n", name, strlen(value), value);
        else
                buf_printf(b, "%s=-\n", name);
}

static int tag_compare(const void *a, const void *b) {
        const struct config_tag *const *x = a, *const *y = b;
        return strcmp((*x)->key, (*y)->key);
}

static int str_compare(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* One line per value, sorted (their order in the YAML means nothing), and
 * nothing at all for an empty list: a YAML without the key keeps the digest
 * it had before the key existed (the state on disk holds digests). */
static void buf_sorted_fields(struct buf *b, const char *name, char *const *values, size_t n) {
        if (n == 0 || b->oom)
                return;
        _cleanup_(freep) const char **sorted = calloc(n, sizeof *sorted);
        if (!sorted) {
                b->oom = true;
                return;
        }
        for (size_t i = 0; i < n; i++)
                sorted[i] = values[i];
        qsort(sorted, n, sizeof *sorted, str_compare);
        for (size_t i = 0; i < n; i++)
                buf_field(b, name, sorted[i]);
}

/* Canonical text of every pool setting; tags sorted, since their order in
 * the YAML means nothing. */
static int pool_digest(struct pool_config *p) {
        struct buf b = {};
        _cleanup_(freep) const struct config_tag **sorted = calloc(p->n_tags + 1, sizeof *sorted);
        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_tags; i++)
                sorted[i] = &p->tags[i];
        qsort(sorted, p->n_tags, sizeof *sorted, tag_compare);

        buf_printf(&b, "pool/1\n");
        buf_field(&b, "name", p->name);
        buf_field(&b, "country", p->country);
        buf_field(&b, "type", p->type);
        buf_printf(&b, "count=%u\n", p->count);
        buf_field(&b, "prefix", p->prefix);
        buf_field(&b, "description", p->description);
        buf_field(&b, "contact_flow", p->contact_flow);
        buf_printf(&b, "adopt=%d\n", p->adopt);
        for (size_t i = 0; i < p->n_tags; i++) {
                buf_field(&b, "tag", sorted[i]->key);
                buf_field(&b, "value", sorted[i]->value);
        }
        /* Settings added after pool/1: written only when given. */
        if (p->flow_instance_id)
                buf_field(&b, "flow_instance", p->flow_instance_id);
        buf_sorted_fields(&b, "number", p->numbers, p->n_numbers);
        buf_sorted_fields(&b, "from", p->from, p->n_from);
        if (b.oom) {
                free(b.data);
                return -ENOMEM;
        }
        sha256_hex(b.data, b.len, p->digest);
        free(b.data);
        return 0;
}

static int target_digest(struct target_config *t) {
        struct buf b = {};
        buf_printf(&b, "target/1\n");
        buf_field(&b, "name", t->name);
        buf_field(&b, "arn", t->arn);
        buf_printf(&b, "quota=%u\nrelease_excess=%d\nmax_releases_per_pass=%u\n", t->quota, t->release_excess,
                   t->max_releases_per_pass);
        /* added after target/1: written only when given */
        buf_sorted_fields(&b, "previous_arn", t->previous_arns, t->n_previous_arns);
        for (size_t i = 0; i < t->n_pools; i++) {
                int r = pool_digest(&t->pools[i]);
                if (r < 0) {
                        free(b.data);
                        return r;
                }
                buf_printf(&b, "pool=%s\n", t->pools[i].digest);
        }
        if (b.oom) {
                free(b.data);
                return -ENOMEM;
        }
        sha256_hex(b.data, b.len, t->digest);
        free(b.data);
        return 0;
}

/* ---- public ------------------------------------------------------------ */

struct config *config_free(struct config *c) {
        if (!c)
                return NULL;
        free(c->region);
        free(c->endpoint_url);
        free(c->ca_file);
        free(c->profile);
        free(c->role_arn);
        free(c->external_id);
        free(c->role_session_name);
        free(c->metrics_file);
        for (size_t i = 0; i < c->n_rates; i++)
                free(c->rates[i].operation);
        free(c->rates);
        for (size_t i = 0; i < c->n_targets; i++)
                target_config_done(&c->targets[i]);
        free(c->targets);
        return mfree(c);
}

static struct config *config_new(void) {
        struct config *c = calloc(1, sizeof *c);
        if (!c)
                return NULL;
        c->interval_usec = INTERVAL_DEFAULT_SEC * USEC_PER_SEC;
        c->quota_backoff_usec = QUOTA_BACKOFF_DEFAULT_SEC * USEC_PER_SEC;
        c->max_numbers_per_target = MAX_NUMBERS_PER_TARGET_DEFAULT;
        c->rate_default = API_RATE_DEFAULT;
        c->rate_burst = API_RATE_BURST;
        c->log_level = LOG_INFO;
        return c;
}

/* problems is cleared first: after the call it holds this text's problems only. */
int config_parse(const char *text, size_t len, struct config **ret, struct config_problems *problems) {
        struct config_problems local = {};
        struct config_problems *p = problems ?: &local;
        int r = 0;

        config_problems_clear(p);
        if (!text) {
                if (len > 0)
                        return -EINVAL;
                text = "";
        }
        _cleanup_(config_freep) struct config *c = config_new();
        if (!c)
                return -ENOMEM;
        struct parse_ctx ctx = { .problems = p, .config = c };

        /* libyaml skips a byte order mark only when it guesses the encoding,
         * and we set it: UTF-16 is refused by text_check_encoding(). */
        if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
                text += 3;
                len -= 3;
        }
        if (text_check_encoding(&ctx, text, len)) {
                _cleanup_(node_freep) struct node *root = NULL;
                bool ok = false;
                r = tree_build(&ctx, text, len, &root, &ok);
                if (r == 0 && ok && !ctx.oom)
                        config_parse_root(&ctx, root);
        }
        if (r == 0 && ctx.oom)
                r = -ENOMEM;
        if (r == 0 && p->n == 0)
                for (size_t i = 0; i < c->n_targets && r == 0; i++)
                        r = target_digest(&c->targets[i]);

        problems_sort(p);
        if (ctx.truncated && p->n > 0) {
                const struct config_problem *last = &p->items[p->n - 1];
                (void) problems_add(p, last->line, last->column, "too many problems: only the first %d are shown",
                                    PROBLEMS_MAX);
        }
        if (r == 0 && p->n > 0)
                r = -EINVAL;
        config_problems_clear(&local);
        refs_free(&ctx);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int config_load(const char *path, struct config **ret, struct config_problems *problems) {
        _cleanup_(freep) char *text = NULL;
        size_t len = 0;
        int r = read_full_file(path, CONFIG_FILE_MAX, &text, &len);
        if (r < 0) {
                if (problems) {
                        config_problems_clear(problems);
                        if (r == -EFBIG)
                                (void) problems_add(problems, 0, 0, "the file is larger than 1 MiB");
                        else
                                (void) problems_add(problems, 0, 0, "cannot read the file: %s",
                                                    file_error_string(r));
                }
                return r;
        }
        return config_parse(text, len, ret, problems);
}

const struct target_config *config_find_target(const struct config *c, const char *name) {
        if (!c || !name)
                return NULL;
        for (size_t i = 0; i < c->n_targets; i++)
                if (streq(c->targets[i].name, name))
                        return &c->targets[i];
        return NULL;
}

const struct pool_config *target_find_pool(const struct target_config *t, const char *name) {
        if (!t || !name)
                return NULL;
        for (size_t i = 0; i < t->n_pools; i++)
                if (streq(t->pools[i].name, name))
                        return &t->pools[i];
        return NULL;
}

double config_rate_for(const struct config *c, const char *operation) {
        if (!c)
                return API_RATE_DEFAULT;
        for (size_t i = 0; operation && i < c->n_rates; i++)
                if (streq(c->rates[i].operation, operation))
                        return c->rates[i].rate;
        return c->rate_default;
}

unsigned config_total_wanted(const struct config *c) {
        unsigned total = 0;
        if (!c)
                return 0;
        for (size_t i = 0; i < c->n_targets; i++)
                for (size_t j = 0; j < c->targets[i].n_pools; j++)
                        total += c->targets[i].pools[j].count;
        return total;
}
