"""connect_model.py: the AWS service model (data/connect-phone-numbers.service.json)
as the fake Connect uses it: operations (method, URI, members and where each
is bound) and input validation against the shapes' constraints.

Owns: the translation of the model's constraints (required, min/max, enum,
pattern, types, unknown members) into AWS-style validation messages
("1 validation error detected: Value '11' at 'maxResults' failed to satisfy
constraint: Member must have value less than or equal to 10").

Must not: decide anything about phone numbers (the emulator does), or do
I/O beyond loading the model once.

Patterns: the model stores some patterns double-escaped (docs/connect-api.md
section 3: '\\\\+[1-9]\\\\d{1,14}$' means '\\+[1-9]\\d{1,14}$') and uses \\p{..}
classes that Python's re lacks (TagKey); both are translated here. Every
pattern is applied to the whole value (Smithy patterns are unanchored, but
Connect rejects "x+12065550100").
"""

import json
import os
import re
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_PATH = os.path.join(HERE, "data", "connect-phone-numbers.service.json")


def _tag_key_ok(v):
    if v.startswith("aws:"):
        return False
    for ch in v:
        cat = unicodedata.category(ch)
        if cat[0] in "LZN" or ch in "_.:/=+-@":
            continue
        return False
    return True


def _compile_pattern(p):
    if "\\p{" in p:
        return None                        # handled by a special predicate
    p = p.replace("\\\\", "\\")
    return re.compile(p, re.DOTALL)


class Model:
    def __init__(self, path=MODEL_PATH):
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
        self.metadata = m["metadata"]
        self.shapes = m["shapes"]
        self.operations = m["operations"]
        self._patterns = {}

    # ------------------------------------------------------------ operations
    def op(self, name):
        return self.operations[name]

    def input_shape(self, op_name):
        ref = self.operations[op_name].get("input")
        return self.shapes[ref["shape"]] if ref else {"type": "structure", "members": {}}

    def members_by_location(self, op_name):
        """{"uri": {wire name: member}, "querystring": {...}, "body": {...}}."""
        shape = self.input_shape(op_name)
        out = {"uri": {}, "querystring": {}, "header": {}, "body": {}}
        for name, ref in shape.get("members", {}).items():
            loc = ref.get("location")
            if loc is None:
                out["body"][name] = (name, ref)
            else:
                out[loc][ref.get("locationName", name)] = (name, ref)
        return out

    def enum(self, shape_name):
        return self.shapes[shape_name].get("enum", [])

    # ------------------------------------------------------------ validation
    def _pattern_ok(self, shape_name, pattern, value):
        if shape_name == "TagKey" or "\\p{" in pattern:
            return _tag_key_ok(value)
        rx = self._patterns.get(pattern)
        if rx is None:
            rx = _compile_pattern(pattern)
            self._patterns[pattern] = rx
        return rx.fullmatch(value) is not None

    def validate_value(self, shape_name, value, path, errors):
        """Appends (path, message) for every violation of shape_name by value."""
        shape = self.shapes[shape_name]
        t = shape["type"]
        if value is None:
            errors.append((path, "Value null at '%s' failed to satisfy constraint: Member must not be null" % path))
            return
        if t == "string":
            if not isinstance(value, str):
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must be of type string"
                               % (_short(value), path)))
                return
            n = len(value)
            if "min" in shape and n < shape["min"]:
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must have length "
                               "greater than or equal to %d" % (_short(value), path, shape["min"])))
            if "max" in shape and n > shape["max"]:
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must have length "
                               "less than or equal to %d" % (_short(value), path, shape["max"])))
            if "enum" in shape and value not in shape["enum"]:
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum "
                               "value set: [%s]" % (_short(value), path, ", ".join(shape["enum"]))))
            if "pattern" in shape and not self._pattern_ok(shape_name, shape["pattern"], value):
                pattern = shape["pattern"].replace("\\\\", "\\")
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular "
                               "expression pattern: %s" % (_short(value), path, pattern)))
        elif t in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must be of type integer"
                               % (_short(value), path)))
                return
            if "min" in shape and value < shape["min"]:
                errors.append((path, "Value '%d' at '%s' failed to satisfy constraint: Member must have value "
                               "greater than or equal to %d" % (value, path, shape["min"])))
            if "max" in shape and value > shape["max"]:
                errors.append((path, "Value '%d' at '%s' failed to satisfy constraint: Member must have value "
                               "less than or equal to %d" % (value, path, shape["max"])))
        elif t == "boolean":
            if not isinstance(value, bool):
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must be of type boolean"
                               % (_short(value), path)))
        elif t == "list":
            if not isinstance(value, list):
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must be a list"
                               % (_short(value), path)))
                return
            self._check_count(shape, value, path, errors)
            for i, item in enumerate(value):
                self.validate_value(shape["member"]["shape"], item, "%s.%d.member" % (path, i + 1), errors)
        elif t == "map":
            if not isinstance(value, dict):
                errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must be a map"
                               % (_short(value), path)))
                return
            self._check_count(shape, value, path, errors)
            for k, v in value.items():
                self.validate_value(shape["key"]["shape"], k, "%s.key" % path, errors)
                self.validate_value(shape["value"]["shape"], v, "%s.%s.value" % (path, k), errors)
        elif t == "structure":
            if not isinstance(value, dict):
                errors.append((path, "Value at '%s' failed to satisfy constraint: Member must be a structure" % path))
                return
            self.validate_structure(shape, value, path, errors)

    @staticmethod
    def _check_count(shape, value, path, errors):
        n = len(value)
        if "min" in shape and n < shape["min"]:
            errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must have length "
                           "greater than or equal to %d" % (_short(value), path, shape["min"])))
        if "max" in shape and n > shape["max"]:
            errors.append((path, "Value '%s' at '%s' failed to satisfy constraint: Member must have length "
                           "less than or equal to %d" % (_short(value), path, shape["max"])))

    def validate_structure(self, shape, obj, path, errors, members=None):
        members = shape.get("members", {}) if members is None else members
        for key in obj:
            if key not in members:
                errors.append((path + key, "Unknown member '%s' in the request%s"
                               % (_short(key), " at '%s'" % path.rstrip(".") if path else "")))
        for name in shape.get("required", []):
            if name in members and obj.get(name) is None:
                errors.append((_lc(path + name), "Value null at '%s' failed to satisfy constraint: Member must "
                               "not be null" % _lc(path + name)))
        for name, value in obj.items():
            if name in members and value is not None:
                self.validate_value(members[name]["shape"], value, _lc(path + name), errors)
            elif name in members:
                errors.append((_lc(path + name), "Value null at '%s' failed to satisfy constraint: Member must "
                               "not be null" % _lc(path + name)))

    def validate_input(self, op_name, uri, query, body):
        """uri: {member name: decoded str}; query: {member name: str or [str]};
        body: dict (the JSON object) or None when the operation has no body
        members. Returns a list of messages (empty when valid)."""
        shape = self.input_shape(op_name)
        members = shape.get("members", {})
        errors = []
        flat = {}
        flat.update(uri)
        flat.update(query)
        body_members = {n: r for n, r in members.items() if r.get("location") is None}
        if body is not None:
            self.validate_structure({"members": body_members, "required": []}, body, "", errors, body_members)
            flat.update(body)
        for name in shape.get("required", []):
            if flat.get(name) in (None, "", []):
                msg = "Value null at '%s' failed to satisfy constraint: Member must not be null" % _lc(name)
                if all(m != msg for _, m in errors):
                    errors.append((_lc(name), msg))
        for name, value in list(uri.items()) + list(query.items()):
            ref = members.get(name)
            if ref is not None and value not in (None, ""):
                self.validate_value(ref["shape"], value, _lc(name), errors)
        return [m for _, m in errors]


def _lc(name):
    # AWS validation messages name members in lowerCamelCase.
    return name[:1].lower() + name[1:] if name else name


def _short(v):
    s = v if isinstance(v, str) else json.dumps(v)
    return s if len(s) <= 100 else s[:100] + "..."


def format_validation(messages):
    n = len(messages)
    return "%d validation error%s detected: %s" % (n, "" if n == 1 else "s", "; ".join(messages))
