"""The fake's SigV4 verifier (sigv4_verify.py) against the public AWS SigV4
test suite (tests/data/sigv4-testsuite, as vendored in botocore) and the
botocore-computed Connect vectors (tests/data/connect-sigv4-vectors.json); the
tests' own signer (fakeclient.sign) against the same Connect vectors; and
the verifier's refusals."""

import calendar
import json
import os
import time
import unittest

import fakeclient
import sigv4_verify as sv

HERE = os.path.dirname(os.path.abspath(__file__))
# One copy of the SigV4 data serves the fake's tests and the C unit tests.
DATA = os.path.join(HERE, os.pardir, "data")
SUITE = os.path.join(DATA, "sigv4-testsuite")
VECTORS = os.path.join(DATA, "connect-sigv4-vectors.json")
AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TIME = calendar.timegm((2015, 8, 30, 12, 36, 0))


def parse_req(raw):
    """A .req file -> (method, path, query, [(name, value)], body). The
    request line is decoded as ISO-8859-1, as http.server does."""
    text = raw.decode("latin-1")
    head, sep, body = text.partition("\n\n")
    lines = head.split("\n")
    first = lines[0]
    method, rest = first.split(" ", 1)
    target = rest.rsplit(" ", 1)[0]
    path, _, query = target.partition("?")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + "\n" + line)
            continue
        name, _, value = line.partition(":")
        headers.append((name, value))
    return method, path, query, headers, body.encode("latin-1")


def suite_cases():
    out = []
    for root, dirs, files in os.walk(SUITE):
        for f in files:
            if f.endswith(".req"):
                name = f[:-4]
                out.append((name, os.path.join(root, name)))
    return sorted(out)


def read(path):
    with open(path, "rb") as f:
        return f.read()


class OfficialSuite(unittest.TestCase):
    """Every case of the old AWS suite: canonical request, string to sign,
    signature, and a full verify() at the suite's time."""

    def test_case_count(self):
        self.assertEqual(len(suite_cases()), 34)

    def test_every_case(self):
        for name, base in suite_cases():
            with self.subTest(case=name):
                # The .sreq holds every header sent (a session token too);
                # its Authorization is replaced by the .authz reference.
                method, path, query, headers, body = parse_req(read(base + ".sreq"))
                headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
                authz = read(base + ".authz").decode().strip()
                a = sv.parse_authorization(authz)
                creq = sv.canonical_request(method, path, query, headers, a["signed_headers"], body)
                self.assertEqual(creq, read(base + ".creq").decode())
                hd = dict((k.lower(), v.strip()) for k, v in headers)
                sts = sv.string_to_sign(hd["x-amz-date"], a["scope"], creq)
                self.assertEqual(sts, read(base + ".sts").decode())
                sig = sv.compute_signature(SECRET, a["date"], a["region"], a["service"], sts)
                self.assertEqual(sig, a["signature"])
                token = hd.get("x-amz-security-token")

                def lookup(akid, token=token):
                    return {"secret": SECRET, "token": token, "expiration": None} if akid == AKID else None
                signed = headers + [("Authorization", authz)]
                if name == "post-sts-header-after":
                    # Connect wants the token signed (docs/connect-api.md §7):
                    # added after signing, it is refused.
                    with self.assertRaises(sv.AuthError) as e:
                        sv.verify(method, path, query, signed, body, SUITE_TIME, lookup, service="service")
                    self.assertEqual(e.exception.code, "InvalidSignatureException")
                    continue
                ident = sv.verify(method, path, query, signed, body, SUITE_TIME, lookup, service="service")
                self.assertEqual(ident.region, "us-east-1")
                self.assertEqual(ident.temporary, token is not None)

    def test_normalize_path(self):
        for raw, want in [("/example/..", "/"), ("/./", "/"), ("//example//", "/example/"), ("/./example", "/example"),
                          ("/a/b/../c/./d", "/a/c/d"), ("", "/"), ("/phone-number/claim", "/phone-number/claim")]:
            self.assertEqual(sv.remove_dot_segments(raw), want, raw)


class ConnectVectors(unittest.TestCase):
    """botocore-signed Connect requests: double-encoded ARN paths, query
    lists, session token."""

    @classmethod
    def setUpClass(cls):
        with open(VECTORS) as f:
            cls.v = json.load(f)
        cls.when = calendar.timegm(time.strptime(cls.v["x_amz_date"], "%Y%m%dT%H%M%SZ"))

    def case_headers(self, c):
        h = [("Host", "connect.us-east-1.amazonaws.com")] + list(c["headers"].items())
        return h

    def lookup(self, token):
        def f(akid):
            if akid != self.v["access_key_id"]:
                return None
            return {"secret": self.v["secret_access_key"], "token": token, "expiration": None}
        return f

    def test_vectors_verify(self):
        self.assertGreaterEqual(len(self.v["cases"]), 8)
        for c in self.v["cases"]:
            with self.subTest(case=c["name"]):
                a = sv.parse_authorization(c["authorization"])
                body = c["body"].encode() if c["body"] else b""
                creq = sv.canonical_request(c["method"], c["path"], c["query"], self.case_headers(c),
                                            a["signed_headers"], body)
                self.assertEqual(creq, c["canonical_request"])
                self.assertEqual(sv.string_to_sign(self.v["x_amz_date"], a["scope"], creq), c["string_to_sign"])
                headers = self.case_headers(c) + [("Authorization", c["authorization"])]
                sv.verify(c["method"], c["path"], c["query"], headers, body, self.when, self.lookup(c["session_token"]))

    def test_arn_paths_are_double_encoded(self):
        c = [c for c in self.v["cases"] if c["name"] == "describe-phone-number-by-arn"][0]
        self.assertIn("arn%253Aaws%253Aconnect", c["canonical_request"])
        self.assertIn("arn%253Aaws%253Aconnect", sv.canonical_uri(c["path"]))
        # A signer that encodes the path only once is refused.
        a = sv.parse_authorization(c["authorization"])
        creq = c["canonical_request"].replace("%25", "%")
        sts = sv.string_to_sign(self.v["x_amz_date"], a["scope"], creq)
        bad = sv.compute_signature(self.v["secret_access_key"], a["date"], a["region"], "connect", sts)
        headers = self.case_headers(c) + [("Authorization", c["authorization"].replace(a["signature"], bad))]
        with self.assertRaises(sv.AuthError) as e:
            sv.verify(c["method"], c["path"], c["query"], headers, b"", self.when, self.lookup(None))
        self.assertEqual(e.exception.code, "InvalidSignatureException")

    def test_test_client_signer_matches_botocore(self):
        for c in self.v["cases"]:
            with self.subTest(case=c["name"]):
                h = {k.lower(): v for k, v in self.case_headers(c)}
                body = c["body"].encode() if c["body"] else b""
                authz, creq, sts = fakeclient.sign(c["method"], c["path"], c["query"], h, body,
                                                   self.v["access_key_id"], self.v["secret_access_key"],
                                                   self.v["region"], self.v["x_amz_date"])
                self.assertEqual(creq, c["canonical_request"])
                self.assertEqual(authz, c["authorization"])


class Refusals(unittest.TestCase):
    """What the verifier refuses, with AWS's codes."""

    NOW = 1800000000.0

    def signed(self, method="POST", path="/phone-number/claim", query="", body=b'{"a":1}', when=None,
               akid="AKIDTEST", secret="secret", region="us-west-2", token=None, extra=None, service="connect"):
        amz = sv.format_amz_date(self.NOW if when is None else when)
        h = {"host": "127.0.0.1:4443", "x-amz-date": amz, "content-type": "application/json"}
        if token:
            h["x-amz-security-token"] = token
        h.update(extra or {})
        authz, _, _ = fakeclient.sign(method, path, query, h, body, akid, secret, region, amz, service=service)
        return method, path, query, list(h.items()) + [("Authorization", authz)], body

    def keys(self, akid):
        return {"AKIDTEST": {"secret": "secret", "token": None, "expiration": None},
                "ASIATEMP": {"secret": "tsecret", "token": "TOKEN1", "expiration": self.NOW + 600}}.get(akid)

    def verify(self, req, now=None):
        m, p, q, h, b = req
        return sv.verify(m, p, q, h, b, self.NOW if now is None else now, self.keys)

    def refused(self, req, code, now=None):
        with self.assertRaises(sv.AuthError) as e:
            self.verify(req, now)
        self.assertEqual(e.exception.code, code, e.exception.message)
        self.assertEqual(e.exception.status, 403)
        return e.exception.message

    def test_good(self):
        ident = self.verify(self.signed())
        self.assertEqual(ident.region, "us-west-2")
        self.assertFalse(ident.temporary)

    def test_tampering(self):
        m, p, q, h, b = self.signed(query="clientToken=x")
        for req in [("PUT", p, q, h, b), (m, "/phone-number/list", q, h, b), (m, p, "clientToken=y", h, b),
                    (m, p, q, h, b'{"a":2}'), (m, p, q, [(k, v + "x" if k == "content-type" else v) for k, v in h], b)]:
            msg = self.refused(req, "InvalidSignatureException")
            self.assertTrue(msg.startswith("The request signature we calculated does not match the signature you "
                                           "provided. Check your AWS Secret Access Key and signing method."))

    def test_wrong_secret(self):
        self.refused(self.signed(secret="other"), "InvalidSignatureException")

    def test_unknown_key(self):
        msg = self.refused(self.signed(akid="AKIDUNKNOWN"), "UnrecognizedClientException")
        self.assertEqual(msg, "The security token included in the request is invalid.")

    def test_skew(self):
        self.verify(self.signed(when=self.NOW - 299))
        self.verify(self.signed(when=self.NOW + 299))
        msg = self.refused(self.signed(when=self.NOW - 301), "InvalidSignatureException")
        self.assertTrue(msg.startswith("Signature expired: "), msg)
        msg = self.refused(self.signed(when=self.NOW + 301), "InvalidSignatureException")
        self.assertTrue(msg.startswith("Signature not yet current: "), msg)

    def test_scope(self):
        self.refused(self.signed(service="execute-api"), "InvalidSignatureException")
        self.refused(self.signed(region="nowhere"), "InvalidSignatureException")
        m, p, q, h, b = self.signed()
        h = [(k, v.replace("/us-west-2/connect/aws4_request", "/us-west-2/connect/aws5_request")
              if k == "Authorization" else v) for k, v in h]
        self.refused((m, p, q, h, b), "IncompleteSignatureException")
        h = [(k, v.replace("Credential=AKIDTEST/", "Credential=AKIDTEST/20000101/") if k == "Authorization" else v)
             for k, v in h]
        self.refused((m, p, q, h, b), "IncompleteSignatureException")

    def test_scope_date_must_match(self):
        m, p, q, h, b = self.signed()
        amz = sv.format_amz_date(self.NOW)
        h = [(k, v.replace("/%s/" % amz[:8], "/20200101/") if k == "Authorization" else v) for k, v in h]
        self.refused((m, p, q, h, b), "InvalidSignatureException")

    def test_missing_or_unsigned(self):
        m, p, q, h, b = self.signed()
        self.refused((m, p, q, [x for x in h if x[0] != "Authorization"], b), "MissingAuthenticationTokenException")
        self.refused((m, p, q, [x for x in h if x[0] != "x-amz-date"], b), "IncompleteSignatureException")
        # host and x-amz-date must be signed
        amz = sv.format_amz_date(self.NOW)
        hd = {"x-amz-date": amz}
        authz, _, _ = fakeclient.sign(m, p, q, hd, b, "AKIDTEST", "secret", "us-west-2", amz)
        self.refused((m, p, q, [("host", "127.0.0.1"), ("x-amz-date", amz), ("Authorization", authz)], b),
                     "InvalidSignatureException")
        hd = {"host": "127.0.0.1"}
        authz, _, _ = fakeclient.sign(m, p, q, hd, b, "AKIDTEST", "secret", "us-west-2", amz)
        self.refused((m, p, q, [("host", "127.0.0.1"), ("x-amz-date", amz), ("Authorization", authz)], b),
                     "InvalidSignatureException")

    def test_malformed_header(self):
        m, p, q, h, b = self.signed()
        for bad in ["AWS4-HMAC-SHA1 Credential=a/b/c/d/e, SignedHeaders=host, Signature=00",
                    "AWS4-HMAC-SHA256 Credential=AKIDTEST/x, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
                    "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=" + "0" * 64]:
            h2 = [(k, bad if k == "Authorization" else v) for k, v in h]
            self.refused((m, p, q, h2, b), "IncompleteSignatureException")

    def test_temporary_credentials(self):
        self.assertTrue(self.verify(self.signed(akid="ASIATEMP", secret="tsecret", token="TOKEN1")).temporary)
        self.refused(self.signed(akid="ASIATEMP", secret="tsecret"), "UnrecognizedClientException")
        self.refused(self.signed(akid="ASIATEMP", secret="tsecret", token="TOKEN2"), "UnrecognizedClientException")
        self.refused(self.signed(akid="ASIATEMP", secret="tsecret", token="TOKEN1", when=self.NOW + 601),
                     "ExpiredTokenException", now=self.NOW + 601)
        # The token must be signed: add it after signing.
        m, p, q, h, b = self.signed(akid="ASIATEMP", secret="tsecret")
        self.refused((m, p, q, h + [("X-Amz-Security-Token", "TOKEN1")], b), "InvalidSignatureException")
        # A long-term key with a session token is refused.
        self.refused(self.signed(token="TOKEN1"), "UnrecognizedClientException")

    def test_dot_segments_normalised(self):
        m, p, q, h, b = self.signed(path="/phone-number/claim")
        self.verify((m, "/phone-number/./x/../claim", q, h, b))


if __name__ == "__main__":
    unittest.main()
