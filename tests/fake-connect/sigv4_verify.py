"""sigv4_verify.py: server-side AWS Signature Version 4 verification for the
fake Connect service (standard library only: hashlib, hmac).

Owns: parsing the Authorization header, rebuilding the canonical request the
way AWS does for every service but S3 (normalised path encoded once more,
docs/connect-api.md §7), the string to sign, the signing key, and the
checks that decide between the AWS error codes a real endpoint returns
(InvalidSignatureException, IncompleteSignatureException,
UnrecognizedClientException, ExpiredTokenException,
MissingAuthenticationTokenException).

Must not: know about Connect operations, read the clock (the time is an
argument), or keep any state (key lookup is a callback).
"""

import calendar
import hashlib
import hmac
import re
import time
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# docs/connect-api.md §11: the skew tolerance commonly cited (5 minutes).
MAX_SKEW_SEC = 300

_AMZ_DATE_RE = re.compile(r"^\d{8}T\d{6}Z$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class AuthError(Exception):
    """An authentication failure, as AWS reports it (403 + error code)."""

    def __init__(self, code, message, status=403):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# ---------------------------------------------------------------- canonical form

def remove_dot_segments(path):
    """RFC 3986 5.2.4 plus the AWS rule that empty segments collapse (as
    botocore's remove_dot_segments). Keeps a leading and a trailing '/'."""
    if not path:
        return "/"
    out = []
    for seg in path.split("/"):
        if not seg or seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and out else ""
    result = first + "/".join(out) + last
    return result or "/"


def _to_bytes(s):
    # http.server decodes the request line as ISO-8859-1: get the wire bytes back.
    if isinstance(s, bytes):
        return s
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def canonical_uri(wire_path, double_encode=True):
    """The canonical URI of a non-S3 service: the wire path (labels already
    percent-encoded), dot segments removed, encoded once more (safe '/~')."""
    path = remove_dot_segments(wire_path or "/")
    if not double_encode:
        return path
    return quote(_to_bytes(path), safe="/~")


def _uri_encode(b):
    return quote(b, safe="-_.~")


def parse_query(raw_query):
    """[(key, value)] decoded as AWS does: split on '&' and the first '=',
    percent-decode (a '+' stays a '+'), empty parts skipped."""
    pairs = []
    if not raw_query:
        return pairs
    for part in raw_query.split("&"):
        if part == "":
            continue
        k, sep, v = part.partition("=")
        pairs.append((unquote_to_bytes(_to_bytes(k)), unquote_to_bytes(_to_bytes(v))))
    return pairs


def canonical_query(raw_query):
    enc = [(_uri_encode(k), _uri_encode(v)) for k, v in parse_query(raw_query)]
    enc.sort()
    return "&".join("%s=%s" % kv for kv in enc)


def canonical_header_value(values):
    """Repeated headers are joined with ',', each value trimmed and its
    internal whitespace runs collapsed to one space."""
    return ",".join(" ".join(v.split()) for v in values)


def collect_headers(header_pairs):
    """{lowercase name: [values in order]} from [(name, value)]."""
    out = {}
    for name, value in header_pairs:
        out.setdefault(name.strip().lower(), []).append(value)
    return out


def canonical_request(method, wire_path, raw_query, header_pairs, signed_headers, body,
                      double_encode=True, payload_hash=None):
    headers = collect_headers(header_pairs)
    lines = []
    for name in signed_headers:
        lines.append("%s:%s\n" % (name, canonical_header_value(headers.get(name, []))))
    if payload_hash is None:
        payload_hash = hashlib.sha256(body or b"").hexdigest()
    return "\n".join([
        method.upper(),
        canonical_uri(wire_path, double_encode),
        canonical_query(raw_query),
        "".join(lines),
        ";".join(signed_headers),
        payload_hash,
    ])


def string_to_sign(amz_date, scope, creq):
    return "\n".join([ALGORITHM, amz_date, scope,
                      hashlib.sha256(creq.encode("utf-8")).hexdigest()])


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = _hmac(("AWS4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def compute_signature(secret, date, region, service, sts):
    return hmac.new(signing_key(secret, date, region, service), sts.encode("utf-8"),
                    hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- Authorization

def parse_authorization(value):
    """Splits 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'.
    Raises AuthError with AWS's codes for malformed headers."""
    if value is None or value.strip() == "":
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    value = value.strip()
    alg, _, rest = value.partition(" ")
    if alg != ALGORITHM:
        raise AuthError("IncompleteSignatureException",
                        "Unsupported AWS 'algorithm': '%s'" % alg[:64])
    fields = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise AuthError("IncompleteSignatureException",
                            "'%s' not a valid key=value pair (missing equal-sign) in "
                            "Authorization header: '%s'." % (part[:64], _redact(value)))
        fields[k.strip()] = v.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise AuthError("IncompleteSignatureException",
                        "Authorization header requires '%s' parameter. Authorization=%s"
                        % (missing[0], _redact(value)))
    cred = fields["Credential"].split("/")
    if len(cred) != 5:
        raise AuthError("IncompleteSignatureException",
                        "Credential should have 5 parts (AKID/date/region/service/aws4_request), "
                        "got %d." % len(cred))
    akid, date, region, service, term = cred
    signed = fields["SignedHeaders"].split(";") if fields["SignedHeaders"] else []
    if signed != sorted(signed) or any(h != h.lower() or not h for h in signed):
        raise AuthError("InvalidSignatureException",
                        "SignedHeaders must be lower-case header names sorted and separated by ';'.")
    if not re.fullmatch(r"[0-9a-f]{64}", fields["Signature"]):
        raise AuthError("InvalidSignatureException",
                        "The request signature we calculated does not match the signature you "
                        "provided. Check your AWS Secret Access Key and signing method.")
    return {
        "access_key_id": akid, "date": date, "region": region, "service": service,
        "terminator": term, "signed_headers": signed, "signature": fields["Signature"],
        "scope": "/".join(cred[1:]),
    }


def _redact(authz):
    # Never echo a signature back in full (it is not secret, but keeps logs short).
    return re.sub(r"Signature=[0-9a-fA-F]+", "Signature=...", authz)[:300]


def parse_amz_date(s):
    if not s or not _AMZ_DATE_RE.match(s):
        return None
    try:
        return calendar.timegm(time.strptime(s, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return None


def format_amz_date(t):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


# ---------------------------------------------------------------- verification

class Identity:
    def __init__(self, access_key_id, region, service, temporary):
        self.access_key_id = access_key_id
        self.region = region
        self.service = service
        self.temporary = temporary


SIGNATURE_MISMATCH = ("The request signature we calculated does not match the signature you "
                      "provided. Check your AWS Secret Access Key and signing method. "
                      "Consult the service documentation for details.")


def verify(method, wire_path, raw_query, header_pairs, body, now, lookup_key,
           service="connect", max_skew=MAX_SKEW_SEC):
    """Verifies a signed request. lookup_key(akid) returns None (unknown key)
    or a dict {"secret": str, "token": str|None, "expiration": float|None}.
    now: the verifier's clock (epoch seconds). Returns an Identity or raises
    AuthError."""
    headers = collect_headers(header_pairs)
    authz_values = headers.get("authorization")
    if not authz_values:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    if len(authz_values) > 1:
        raise AuthError("IncompleteSignatureException", "Only one Authorization header is allowed.")
    a = parse_authorization(authz_values[0])

    if a["terminator"] != "aws4_request":
        raise AuthError("IncompleteSignatureException",
                        "Credential should be scoped with a valid terminator: 'aws4_request', "
                        "not '%s'." % a["terminator"][:64])
    if a["service"] != service:
        raise AuthError("InvalidSignatureException",
                        "Credential should be scoped to correct service: '%s'. " % service)
    if not _REGION_RE.match(a["region"]):
        raise AuthError("InvalidSignatureException",
                        "Credential should be scoped to a valid region, not '%s'. " % a["region"][:64])

    if "host" not in a["signed_headers"]:
        raise AuthError("InvalidSignatureException",
                        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    amz_dates = headers.get("x-amz-date")
    if not amz_dates:
        raise AuthError("IncompleteSignatureException",
                        "Authorization header requires existence of either a 'X-Amz-Date' or a "
                        "'Date' header. Authorization=%s" % _redact(authz_values[0]))
    amz_date = amz_dates[0].strip()
    if "x-amz-date" not in a["signed_headers"]:
        raise AuthError("InvalidSignatureException",
                        "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
    t = parse_amz_date(amz_date)
    if t is None:
        raise AuthError("IncompleteSignatureException",
                        "Date must be in ISO-8601 'basic format'. Got '%s'. See "
                        "http://en.wikipedia.org/wiki/ISO_8601" % amz_date[:64])
    if amz_date[:8] != a["date"]:
        raise AuthError("InvalidSignatureException",
                        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                        "date from HTTP: '%s' != '%s', from '%s'." % (a["date"][:16], amz_date[:8], amz_date))
    for h in a["signed_headers"]:
        if h not in headers:
            raise AuthError("InvalidSignatureException",
                            "The request signature we calculated does not match the signature you "
                            "provided. Signed header '%s' is missing from the request." % h[:64])

    key = lookup_key(a["access_key_id"])
    if key is None:
        raise AuthError("UnrecognizedClientException",
                        "The security token included in the request is invalid.")

    if t < now - max_skew:
        raise AuthError("InvalidSignatureException",
                        "Signature expired: %s is now earlier than %s (%s - 5 min.)"
                        % (amz_date, format_amz_date(now - max_skew), format_amz_date(now)))
    if t > now + max_skew:
        raise AuthError("InvalidSignatureException",
                        "Signature not yet current: %s is still later than %s (%s + 5 min.)"
                        % (amz_date, format_amz_date(now + max_skew), format_amz_date(now)))

    tokens = headers.get("x-amz-security-token")
    token = tokens[0].strip() if tokens else None
    if key.get("token"):
        # Temporary credentials: the session token must come with them, be the
        # one issued with the key, and be signed (botocore signs it).
        if token is None or not hmac.compare_digest(token, key["token"]):
            raise AuthError("UnrecognizedClientException",
                            "The security token included in the request is invalid.")
        if "x-amz-security-token" not in a["signed_headers"]:
            raise AuthError("InvalidSignatureException",
                            "The request signature we calculated does not match the signature you "
                            "provided. 'X-Amz-Security-Token' must be a 'SignedHeader'.")
        exp = key.get("expiration")
        if exp is not None and now >= exp:
            raise AuthError("ExpiredTokenException",
                            "The security token included in the request is expired")
    elif token is not None:
        raise AuthError("UnrecognizedClientException",
                        "The security token included in the request is invalid.")

    creq = canonical_request(method, wire_path, raw_query, header_pairs, a["signed_headers"], body)
    sts = string_to_sign(amz_date, a["scope"], creq)
    expected = compute_signature(key["secret"], a["date"], a["region"], a["service"], sts)
    if not hmac.compare_digest(expected, a["signature"]):
        # Like AWS, say what was expected: it is what makes a signing bug
        # findable (neither string holds a secret).
        raise AuthError("InvalidSignatureException",
                        SIGNATURE_MISMATCH + "\n\nThe Canonical String for this request should have been\n'"
                        + creq + "'\n\nThe String-to-Sign should have been\n'" + sts + "'\n")
    return Identity(a["access_key_id"], a["region"], a["service"], bool(key.get("token")))
