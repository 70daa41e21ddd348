"""fakeclient.py: test helpers for the fake Connect's own tests: start the
emulator in a temp dir, and a small SigV4 client over real TLS.

The signer here is written independently of sigv4_verify.py (it is checked
against the botocore-computed Connect vectors in test_sigv4.py), so that a
bug in the verifier cannot hide behind the same bug in the client.
"""

import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from urllib.parse import quote, urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_connect.py")
ACCOUNT = "111122223333"


def stop_process(proc, timeout=10, sig=signal.SIGTERM):
    """Stops proc with sig, then kills it if it has not exited after
    timeout seconds; returns its exit status. Shared by every suite that
    starts the fake or the daemon (integration, system, bench)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def instance_arn(region="us-east-1", account=ACCOUNT, ident=None):
    return "arn:aws:connect:%s:%s:instance/%s" % (region, account, ident or str(uuid.uuid4()))


def tdg_arn(region="us-east-1", account=ACCOUNT, ident=None):
    return "arn:aws:connect:%s:%s:traffic-distribution-group/%s" % (region, account, ident or str(uuid.uuid4()))


def enc(label):
    """Path label encoding as botocore does (safe: unreserved only)."""
    return quote(label, safe="-._~")


# ---------------------------------------------------------------- signer

def _h(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sign(method, path, query, headers, body, akid, secret, region, amz_date, service="connect"):
    """Returns (authorization, canonical_request, string_to_sign). headers:
    {lowercase name: value}, every one of them signed."""
    names = sorted(headers)
    creq = "\n".join([
        method,
        quote(path, safe="/~"),
        "&".join(sorted(query.split("&"))) if query else "",
        "".join("%s:%s\n" % (n, " ".join(str(headers[n]).split())) for n in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    scope = "%s/%s/%s/aws4_request" % (amz_date[:8], region, service)
    sts = "AWS4-HMAC-SHA256\n%s\n%s\n%s" % (amz_date, scope, hashlib.sha256(creq.encode()).hexdigest())
    k = _h(("AWS4" + secret).encode(), amz_date[:8])
    k = _h(_h(_h(k, region), service), "aws4_request")
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    authz = "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (akid, scope, ";".join(names), sig)
    return authz, creq, sts


class Response:
    def __init__(self, status, headers, data):
        self.status = status
        self.headers = headers
        self.data = data

    @property
    def json(self):
        return json.loads(self.data) if self.data else None

    @property
    def error(self):
        return self.headers.get("x-amzn-errortype")

    @property
    def message(self):
        j = self.json
        return j.get("Message") if isinstance(j, dict) else None

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.error or "", self.data[:300])


class Client:
    """One keep-alive TLS connection to the emulator, SigV4-signed calls."""

    def __init__(self, info, region="us-east-1", akid=None, secret=None, token=None, clock_offset=0.0,
                 timeout=30, service="connect"):
        self.info = info
        self.service = service
        self.region = region
        self.akid = akid or info["access_key_id"]
        self.secret = secret or info["secret_access_key"]
        self.token = token
        self.clock_offset = clock_offset
        self.timeout = timeout
        hostport = info["endpoint_url"][len("https://"):]
        self.host, port = hostport.rsplit(":", 1)
        self.port = int(port)
        self.ctx = ssl.create_default_context(cafile=info["ca_file"])
        self.conn = None
        self.connections_opened = 0

    def _connect(self):
        self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
        self.connections_opened += 1

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None

    def raw(self, method, path, query="", body=None, headers=None, sign_it=True, content_type="application/json",
            amz_date=None, tamper=None, region=None, signed_extra=None, sign_path=None):
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b""
        amz_date = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + self.clock_offset))
        h = {"host": "%s:%d" % (self.host, self.port), "x-amz-date": amz_date}
        if data and content_type:
            h["content-type"] = content_type
        if self.token:
            h["x-amz-security-token"] = self.token
        h.update(signed_extra or {})
        send = dict(h)
        if sign_it:
            authz, _, _ = sign(method, sign_path or path, query, h, data, self.akid, self.secret,
                               region or self.region, amz_date, service=self.service)
            send["authorization"] = authz
        send.update(headers or {})
        if tamper:
            tamper(send)
        if self.conn is None:
            self._connect()
        url = path + ("?" + query if query else "")
        try:
            self.conn.putrequest(method, url, skip_host=True, skip_accept_encoding=True)
            for k, v in send.items():
                self.conn.putheader(k, v)
            if data or method in ("POST", "PUT", "DELETE"):
                self.conn.putheader("content-length", str(len(data)))
            self.conn.endheaders(data if data else None)
            r = self.conn.getresponse()
            out = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        except (OSError, http.client.HTTPException):
            # No retry here: the tests must see dropped connections.
            self.close()
            raise
        if r.will_close:
            self.close()
        return out

    def sts(self, params, sign_it=True, **kw):
        """An STS Query-protocol call (POST / with a form body); the client
        signs for its service (make it with service="sts")."""
        body = urlencode(params)
        return self.raw("POST", "/", body=body, sign_it=sign_it,
                        content_type="application/x-www-form-urlencoded; charset=utf-8", **kw)

    def call(self, method, path, body=None, query="", **kw):
        return self.raw(method, path, query=query, body=body, **kw)

    # Convenience wrappers, wire forms from docs/connect-api.md §4.
    def claim(self, target, phone, token=None, tags=None, description=None, **extra):
        b = {"TargetArn": target, "PhoneNumber": phone, "ClientToken": token or str(uuid.uuid4())}
        if tags:
            b["Tags"] = tags
        if description is not None:
            b["PhoneNumberDescription"] = description
        b.update(extra)
        return self.call("POST", "/phone-number/claim", b)

    def describe(self, ident):
        return self.call("GET", "/phone-number/" + enc(ident))

    def search(self, target, country="US", ptype="DID", prefix=None, max_results=None, next_token=None):
        b = {"TargetArn": target, "PhoneNumberCountryCode": country, "PhoneNumberType": ptype}
        if prefix:
            b["PhoneNumberPrefix"] = prefix
        if max_results is not None:
            b["MaxResults"] = max_results
        if next_token:
            b["NextToken"] = next_token
        return self.call("POST", "/phone-number/search-available", b)

    def list(self, target=None, max_results=None, next_token=None, **filters):
        b = {}
        if target:
            b["TargetArn"] = target
        if max_results is not None:
            b["MaxResults"] = max_results
        if next_token:
            b["NextToken"] = next_token
        b.update(filters)
        return self.call("POST", "/phone-number/list", b)

    def release(self, ident, token=None):
        return self.call("DELETE", "/phone-number/" + enc(ident),
                         query="clientToken=" + enc(token) if token else "")

    def metadata(self, ident, description, token=None):
        b = {"PhoneNumberDescription": description}
        if token:
            b["ClientToken"] = token
        return self.call("PUT", "/phone-number/%s/metadata" % enc(ident), b)

    def associate(self, ident, instance_id, flow):
        return self.call("PUT", "/phone-number/%s/contact-flow" % enc(ident),
                         {"InstanceId": instance_id, "ContactFlowId": flow})

    def disassociate(self, ident, instance_id):
        return self.call("DELETE", "/phone-number/%s/contact-flow" % enc(ident), query="instanceId=" + enc(instance_id))

    def tag(self, arn, tags):
        return self.call("POST", "/tags/" + enc(arn), {"tags": tags})

    def untag(self, arn, keys):
        return self.call("DELETE", "/tags/" + enc(arn), query="&".join("tagKeys=" + enc(k) for k in keys))

    def list_tags(self, arn):
        return self.call("GET", "/tags/" + enc(arn))


# ---------------------------------------------------------------- emulator process

class Fake:
    """The emulator in its own process and temp dir."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="fake-connect-test-")
        self.proc = subprocess.Popen([sys.executable, FAKE, "--dir", self.dir] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read()
            raise RuntimeError("fake Connect did not start: %s" % err)
        self.info = json.loads(line)

    def admin(self, method, path, body=None, expect=200):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.info["admin_url"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        if expect is not None and status != expect:
            raise AssertionError("admin %s %s -> %d %s" % (method, path, status, text[:300]))
        return json.loads(text) if text else {}

    def config(self, **kw):
        return self.admin("POST", "/admin/config", kw)

    def clock(self, **kw):
        return self.admin("POST", "/admin/clock", kw)

    def calls(self):
        return self.admin("GET", "/admin/calls")

    def requests(self):
        return self.admin("GET", "/admin/requests")["requests"]

    def numbers(self):
        return self.admin("GET", "/admin/numbers")["numbers"]

    def client(self, **kw):
        return Client(self.info, **kw)

    def stop(self):
        stop_process(self.proc)
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_status(client, ident, want, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        r = client.describe(ident)
        st = r.json["ClaimedPhoneNumberSummary"]["PhoneNumberStatus"]["Status"] if r.status == 200 else None
        if st == want or time.time() > deadline:
            return r
        time.sleep(0.05)


class EmulatorTest:
    """Mixin for unittest.TestCase: one emulator per test class."""

    fake_args = ()

    @classmethod
    def setUpClass(cls):
        cls.fake = Fake(*cls.fake_args)
        cls.info = cls.fake.info

    @classmethod
    def tearDownClass(cls):
        cls.fake.stop()

    def setUp(self):
        self.c = self.fake.client()

    def tearDown(self):
        self.c.close()

    def assertError(self, r, status, code, contains=None):
        self.assertEqual((r.status, r.error), (status, code), r)
        self.assertEqual(r.headers.get("content-type"), "application/json")
        self.assertIn("Message", r.json)
        if contains:
            self.assertIn(contains.lower(), r.message.lower())

    def first_available(self, target, n=1, **kw):
        r = self.c.search(target, max_results=max(n, 1), **kw)
        self.assertEqual(r.status, 200, r)
        nums = [x["PhoneNumber"] for x in r.json["AvailableNumbersList"]]
        self.assertEqual(len(nums), n, r)
        return nums


def wait_settled(client, ident, timeout=10.0):
    """Describes until the number is no longer IN_PROGRESS."""
    deadline = time.time() + timeout
    while True:
        r = client.describe(ident)
        st = r.json["ClaimedPhoneNumberSummary"]["PhoneNumberStatus"]["Status"] if r.status == 200 else None
        if st != "IN_PROGRESS" or time.time() > deadline:
            return r
        time.sleep(0.05)
