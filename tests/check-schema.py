#!/usr/bin/python3
"""check-schema.py: config/numbers.schema.json against the desired-state files.

- every file under tests/data/config/good/ and config/numbers.example.yaml
  (also with its commented-out keys uncommented, as test-config.c does)
  must be accepted;
- every file under tests/data/config/bad/ must be listed exactly once:
  in REJECTED (the schema must refuse it) or in BEYOND (with the reason a
  schema cannot express its problem; the schema must then accept it, or the
  file must not even load as YAML, unless ALSO_REJECTED names what else in
  it the schema catches);
- the schema's key names, enums and integer bounds must be those of
  daemon/config.c, so that the two cannot drift apart.

YAML is read as the editors' language servers read it: the YAML 1.2 core
schema (NO is a string, 010 is ten, yes is a string, True is a boolean),
with mapping keys kept as their text. Needs python3-jsonschema and
python3-yaml (Debian). Exits 0 when every check passes.
"""

import json
import os
import re
import sys

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(ROOT, "config", "numbers.schema.json")
EXAMPLE = os.path.join(ROOT, "config", "numbers.example.yaml")
CONFIG_C = os.path.join(ROOT, "daemon", "config.c")
GOOD = os.path.join(ROOT, "tests", "data", "config", "good")
BAD = os.path.join(ROOT, "tests", "data", "config", "bad")

# The bad files whose problem the schema expresses (a comment where a file
# holds further problems that it does not).
REJECTED = [
    "api-rate-bounds", "api-rate-not-mapping",
    "arn-account", "arn-gov-mismatch", "arn-not-arn", "arn-not-scalar", "arn-partition-cn", "arn-region",
    "arn-other-service", "arn-resource", "arn-service",
    "bool-variants",  # but for its True, a YAML 1.2 boolean that the daemon refuses
    "bool-yes",
    "ca-file-empty", "contact-flow-empty", "contact-flow-tdg",
    "count-high", "count-mapping", "count-negative",
    "count-not-integer",  # but for its 010, ten in YAML 1.2, refused by the daemon for the leading zero
    "count-quoted", "country-bad",
    "description-long", "description-not-string",
    "empty-document", "empty-file",
    "endpoint-bad-port", "endpoint-http", "endpoint-no-host", "endpoint-userinfo",
    "interval-bad", "interval-low", "interval-no-unit",
    "log-level-case", "log-level-error", "log-level-null", "log-level-number", "log-level-sequence",
    "log-level-typo", "log-level-unknown",
    "max-numbers-high", "max-numbers-low", "max-numbers-not-integer", "max-releases-bounds",
    "metrics-file-directory", "metrics-file-empty", "metrics-file-relative", "metrics-file-sequence",
    "missing-all-pool-keys", "missing-arn", "missing-count", "missing-country", "missing-pools",
    "missing-targets", "missing-type",
    "nul-in-string",
    "pool-name-bad", "pool-not-mapping", "pools-empty", "pools-list",
    "prefix-bad", "profile-bad",
    "quota-backoff-days", "quota-high", "quota-low",
    "region-bad", "role-arn-bad",
    "several-errors",  # but for its duplicate "region" key
    "tag-key-aws", "tag-key-bad", "tag-key-reserved", "tag-value-long", "tag-value-null",
    "tags-not-mapping", "tags-too-many",
    "target-name-bad", "target-not-mapping", "targets-empty", "targets-list", "targets-null",
    "top-not-mapping", "top-scalar", "type-bad",
    "unknown-key-api-rate", "unknown-key-pool", "unknown-key-suggestion-case", "unknown-key-target",
    "unknown-key-top",
    "contact-flow-arn-bad", "from-malformed", "numbers-not-list", "pin-not-e164", "previous-arns-bad",
    "pin-duplicate-same-pool", "previous-arns-duplicate",  # uniqueItems: one list, not across lists
]

DUPLICATE = "a duplicate key: YAML loaders keep one of the two, the schema sees one key"
NOT_YAML = "not YAML the editor can load: its YAML parser reports it, before any schema"
ACROSS = "a schema cannot compare values across members"
ACROSS_ARNS = "previous_arns entries against arn and the other targets: " + ACROSS
COUNT_PINS = "count against the number of pins: a schema cannot compare a value with another member's length"
SUM = "a duration is a sum of parts (1h30m = 90m = 5400s): a pattern cannot bound the sum"
BEYOND = {
    "anchors-aliases": "anchors and aliases are resolved by the loader: the schema sees the values written out",
    "deep-nesting": "the nesting limit is the parser's, not a property of the data",
    "duplicate-arn": "the same ARN under two target names: a schema cannot compare values across members",
    "role-account": "the role's account against the target's: a schema cannot compare values across members",
    "role-keys-without-role": "a role_arn may come from the top level: a schema cannot require it across levels",
    "duplicate-key-api-rate": DUPLICATE,
    "duplicate-key-pool": DUPLICATE,
    "duplicate-key-target": DUPLICATE,
    "duplicate-key-top": DUPLICATE,
    "log-level-duplicate": DUPLICATE,
    "duplicate-pool-name": DUPLICATE,
    "duplicate-tag-key": DUPLICATE,
    "duplicate-target-name": DUPLICATE,
    "interval-high": SUM,
    "invalid-utf8": NOT_YAML + " (not UTF-8)",
    "key-not-scalar": "a key that is a list has no JSON form (the loader refuses it)",
    "latin1-bom": NOT_YAML + " (not UTF-8)",
    "nul-byte": NOT_YAML + " (a raw NUL byte)",
    "quota-backoff-high": SUM,
    "quota-backoff-low": SUM,
    "syntax-flow": NOT_YAML,
    "syntax-indent": NOT_YAML,
    "syntax-tab": NOT_YAML,
    "two-documents": NOT_YAML + " (two documents)",
    "yaml-tag": "an explicit tag (!!int 3) is resolved by the loader: the schema sees the value",
    "pin-duplicate": "a number pinned by two pools: a schema cannot compare values across members",
    "pin-count-smaller": COUNT_PINS,
    "pin-count-zero": COUNT_PINS,
    "from-self": "a from: entry against the pool's own names: a schema cannot compare values with keys",
    "from-still-in-yaml": "a from: entry against the pools of the file: a schema cannot compare values with keys",
    "from-twice": "one source named by two pools: a schema cannot compare values across members",
    "previous-arns-elsewhere": ACROSS_ARNS,
    "previous-arns-own": ACROSS_ARNS,
    "previous-arns-other-target": ACROSS_ARNS,
    "contact-flow-arn-elsewhere": "the flow ARN's account, region and instance against the target's arn: " + ACROSS,
}

# BEYOND files that the schema refuses all the same, for something else in them.
ALSO_REJECTED = {
    "anchors-aliases": "its anchor sits under the unknown key \"defaults\"",
    "deep-nesting": "its nested lists stand where \"targets\" wants a mapping",
}


class Loader(yaml.SafeLoader):
    """YAML 1.2 core schema; mapping keys are their text, as in config.c."""


Loader.yaml_implicit_resolvers = {}
for tag, regexp, first in (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
):
    Loader.add_implicit_resolver(tag, re.compile(regexp), first)


def _int(loader, node):
    v = loader.construct_scalar(node)
    if v.startswith("0o"):
        return int(v[2:], 8)
    if v.startswith("0x"):
        return int(v[2:], 16)
    return int(v, 10)


def _bool(loader, node):
    return loader.construct_scalar(node).lower() == "true"


def _mapping(loader, node, deep=False):
    loader.flatten_mapping(node)
    out = {}
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(None, None, "a key must be a string", k.start_mark)
        out[k.value] = loader.construct_object(v, deep=deep)
    return out


Loader.add_constructor("tag:yaml.org,2002:int", _int)
Loader.add_constructor("tag:yaml.org,2002:bool", _bool)
Loader.add_constructor("tag:yaml.org,2002:map", _mapping)


class NotUTF8(yaml.YAMLError):
    pass


def load(data):
    # As the daemon does: UTF-8 only (a UTF-16 byte order mark is not
    # guessed at), a UTF-8 one skipped.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise NotUTF8(str(e))
    return yaml.load(text, Loader=Loader)


def schema_errors(validator, data):
    return sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))


def describe(e):
    return "/".join(str(p) for p in e.absolute_path) + ": " + e.message[:160]


def c_tables(text):
    """Key names and (min, max) of daemon/config.c's key tables, by table."""
    defines = dict(re.findall(r"#define (\w+) \(?([0-9]+)\)?\s", text))

    def value(expr):
        expr = expr.strip()
        for name, v in defines.items():
            expr = re.sub(r"\b%s\b" % name, v, expr)
        if not re.fullmatch(r"[0-9 *]+", expr):
            raise ValueError("cannot evaluate %r" % expr)
        result = 1
        for factor in expr.split("*"):
            result *= int(factor)
        return result

    tables = {}
    for table, body in re.findall(r"static const struct key_spec (\w+)\[\w+\] = \{(.*?)\n\};", text, re.S):
        keys = {}
        for name, kind, lo, hi in re.findall(
            r'\{ "(\w+)", (VALUE_\w+), (?:true|false),\s*([^,]+),\s*([^,]+),', body
        ):
            keys[name] = (kind, value(lo), value(hi))
        tables[table] = keys
    return tables


def check_against_config_c(schema, problems):
    text = open(CONFIG_C, encoding="utf-8").read()
    pool = schema["$defs"]["pool"]["properties"]
    target = schema["$defs"]["target"]["properties"]
    top = schema["properties"]

    m = re.search(r"country_codes\[\] =(.*?);", text, re.S)
    codes = re.findall(r"\b[A-Z]{2}\b", m.group(1))
    if pool["country"]["enum"] != codes:
        problems.append("schema: country enum differs from config.c's country_codes")
    m = re.search(r"phone_number_types\[\] = \{(.*?)\};", text, re.S)
    if pool["type"]["enum"] != re.findall(r'"(\w+)"', m.group(1)):
        problems.append("schema: type enum differs from config.c's phone_number_types")
    m = re.search(r"api_rate_names\[\] = \{(.*?)\};", text, re.S)
    if sorted(top["api_rate"]["properties"]) != sorted(re.findall(r'"(\w+)"', m.group(1))):
        problems.append("schema: api_rate keys differ from config.c's api_rate_names")

    tables = c_tables(text)
    for table, props in (("top_keys", top), ("target_keys", target), ("pool_keys", pool)):
        keys = tables.get(table)
        if not keys:
            problems.append("config.c: key table %s not found" % table)
            continue
        if sorted(keys) != sorted(props):
            problems.append("schema: keys of %s are %s, config.c has %s" % (table, sorted(props), sorted(keys)))
        for name, (kind, lo, hi) in keys.items():
            p = props.get(name, {})
            if kind == "VALUE_UINT" and (p.get("minimum"), p.get("maximum")) != (lo, hi):
                problems.append("schema: %s must be %d..%d as in config.c" % (name, lo, hi))
            if kind == "VALUE_STRING" and name not in ("country", "type"):
                if (p.get("minLength", 0), p.get("maxLength")) != (lo, hi):
                    problems.append("schema: %s must be %d..%d characters as in config.c" % (name, lo, hi))
            if kind == "VALUE_BOOL" and p.get("type") != "boolean":
                problems.append("schema: %s must be a boolean" % name)
            if kind == "VALUE_DURATION" and p.get("$ref") != "#/$defs/duration":
                problems.append("schema: %s must be a duration" % name)


def uncomment(text):
    return re.sub(r"(?m)^(\s*)#(\S)", r"\1\2", text)


def main():
    problems = []
    schema = json.load(open(SCHEMA, encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    check_against_config_c(schema, problems)

    example = open(EXAMPLE, "rb").read()
    if not example.startswith(b"# yaml-language-server: $schema=/usr/share/connect-numbers/numbers.schema.json\n"):
        problems.append("numbers.example.yaml: the first line must name the schema for YAML language servers")
    goods = [(os.path.join("good", f), open(os.path.join(GOOD, f), "rb").read()) for f in sorted(os.listdir(GOOD))]
    goods += [("numbers.example.yaml", example),
              ("numbers.example.yaml, uncommented", uncomment(example.decode("utf-8")).encode("utf-8"))]
    for name, data in goods:
        try:
            errors = schema_errors(validator, load(data))
        except yaml.YAMLError as e:
            problems.append("%s: does not load: %s" % (name, e))
            continue
        for e in errors:
            problems.append("%s: refused by the schema: %s" % (name, describe(e)))

    bad = sorted(f[:-5] for f in os.listdir(BAD) if f.endswith(".yaml"))
    listed = REJECTED + list(BEYOND)
    for name in sorted(set(listed)):
        if listed.count(name) > 1:
            problems.append("bad/%s.yaml: listed more than once" % name)
        if name not in bad:
            problems.append("bad/%s.yaml: listed but there is no such file" % name)
    for name in sorted(ALSO_REJECTED):
        if name not in BEYOND:
            problems.append("bad/%s.yaml: in ALSO_REJECTED but not in BEYOND" % name)
    for name in bad:
        if name not in listed:
            problems.append("bad/%s.yaml: in neither REJECTED nor BEYOND: say whether a schema can express it" % name)
            continue
        try:
            errors = schema_errors(validator, load(open(os.path.join(BAD, name + ".yaml"), "rb").read()))
        except yaml.YAMLError as e:
            if name in REJECTED:
                problems.append("bad/%s.yaml: does not load, so the schema cannot refuse it: %s" % (name, e))
            continue
        if name in REJECTED and not errors:
            problems.append("bad/%s.yaml: accepted by the schema" % name)
        elif name in BEYOND and name not in ALSO_REJECTED and errors:
            problems.append("bad/%s.yaml: listed as beyond a schema but refused by it (%s): move it to REJECTED"
                            % (name, describe(errors[0])))
        elif name in ALSO_REJECTED and not errors:
            problems.append("bad/%s.yaml: expected a refusal for %s" % (name, ALSO_REJECTED[name]))

    for p in problems:
        print("check-schema: " + p, file=sys.stderr)
    if problems:
        return 1
    print("check-schema: ok (%d good files, %d bad refused, %d beyond a schema)"
          % (len(goods), len(REJECTED), len(BEYOND)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
