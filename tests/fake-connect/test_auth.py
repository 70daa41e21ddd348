"""Authentication on the wire: SigV4 refusals with AWS's codes, temporary
credentials from the emulator's IMDSv2 and container endpoints (docs/connect-api.md
7, 9)."""

import json
import time
import unittest
import urllib.error
import urllib.request
from urllib.parse import unquote

import fakeclient
from fakeclient import EmulatorTest, enc, instance_arn

MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method.")


def http(method, url, headers=None, data=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class SigV4OnTheWire(EmulatorTest, unittest.TestCase):
    fake_args = ("--rate", "0")

    def setUp(self):
        super().setUp()
        self.fake.clock(offset=0)

    def test_good_signature(self):
        r = self.c.list(instance_arn())
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("x-amzn-requestid"))

    def test_bad_signature(self):
        c = self.fake.client(secret="not-the-secret")
        r = c.list(instance_arn())
        self.assertError(r, 403, "InvalidSignatureException")
        self.assertTrue(r.message.startswith(MISMATCH), r.message)
        self.assertTrue(r.headers.get("x-amzn-requestid"))
        c.close()

    def authz_for(self, body, service="connect"):
        amz = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        h = {"host": "%s:%d" % (self.c.host, self.c.port), "x-amz-date": amz, "content-type": "application/json"}
        authz, _, _ = fakeclient.sign("POST", "/phone-number/list", "", h, body, self.c.akid, self.c.secret,
                                      "us-east-1", amz, service=service)
        return {"authorization": authz, "x-amz-date": amz}

    def test_tampered_body(self):
        # Sign one body, send another: the payload hash differs.
        r = self.c.raw("POST", "/phone-number/list", body=b'{"MaxResults":5}', sign_it=False,
                       headers=self.authz_for(b"{}"))
        self.assertError(r, 403, "InvalidSignatureException")
        r = self.c.raw("POST", "/phone-number/list", body=b"{}", sign_it=False, headers=self.authz_for(b"{}"))
        self.assertEqual(r.status, 200, r)

    def test_single_encoded_arn_path_is_refused(self):
        arn = "arn:aws:connect:us-east-1:111122223333:phone-number/5f0c6b7e-2d1a-4c53-9a8e-1b2c3d4e5f60"
        wire = "/phone-number/" + enc(arn)
        r = self.c.raw("GET", wire)
        self.assertError(r, 404, "ResourceNotFoundException")       # signature fine, number unknown
        r = self.c.raw("GET", wire, sign_path=unquote(wire))          # canonical URI encoded once only
        self.assertError(r, 403, "InvalidSignatureException")

    def test_unknown_key(self):
        c = self.fake.client(akid="AKIDUNKNOWN000000000")
        r = c.list()
        self.assertError(r, 403, "UnrecognizedClientException")
        self.assertEqual(r.message, "The security token included in the request is invalid.")
        c.close()
        self.fake.config(credentials=[{"access_key_id": "AKIDSECOND0000000000", "secret_access_key": "s2"}])
        try:
            c = self.fake.client(akid="AKIDSECOND0000000000", secret="s2")
            self.assertEqual(c.list().status, 200)
            c.close()
        finally:
            self.fake.config(credentials=[])

    def test_clock_skew(self):
        for off, start in ((-400, "Signature expired: "), (400, "Signature not yet current: ")):
            c = self.fake.client(clock_offset=off)
            r = c.list()
            self.assertError(r, 403, "InvalidSignatureException")
            self.assertTrue(r.message.startswith(start), r.message)
            c.close()
        c = self.fake.client(clock_offset=-200)
        self.assertEqual(c.list().status, 200)
        c.close()
        # The emulator's clock is the reference: move it, a client that did not is refused.
        self.fake.clock(offset=600)
        r = self.c.list()
        self.assertError(r, 403, "InvalidSignatureException", "Signature expired")
        c = self.fake.client(clock_offset=600)
        self.assertEqual(c.list().status, 200)
        c.close()

    def test_missing_authorization(self):
        r = self.c.raw("POST", "/phone-number/list", body={}, sign_it=False)
        self.assertError(r, 403, "MissingAuthenticationTokenException")

    def test_wrong_service_in_scope(self):
        r = self.c.raw("POST", "/phone-number/list", body=b"{}", sign_it=False,
                       headers=self.authz_for(b"{}", service="execute-api"))
        self.assertError(r, 403, "InvalidSignatureException", "connect")


class TemporaryCredentials(EmulatorTest, unittest.TestCase):
    fake_args = ("--rate", "0", "--temp-credentials-ttl", "900")

    def setUp(self):
        super().setUp()
        self.fake.clock(offset=0)
        self.admin = self.info["imds_endpoint"]

    def imds_creds(self):
        st, h, tok = http("PUT", self.admin + "/latest/api/token",
                          {"x-aws-ec2-metadata-token-ttl-seconds": "21600"})
        self.assertEqual(st, 200)
        self.assertEqual(h.get("x-aws-ec2-metadata-token-ttl-seconds"), "21600")
        hdr = {"x-aws-ec2-metadata-token": tok.decode()}
        st, _, role = http("GET", self.admin + "/latest/meta-data/iam/security-credentials/", hdr)
        self.assertEqual(st, 200)
        st, _, doc = http("GET", self.admin + "/latest/meta-data/iam/security-credentials/" + role.decode(), hdr)
        self.assertEqual(st, 200)
        return json.loads(doc)

    def test_imdsv2_token_flow(self):
        st, _, _ = http("PUT", self.admin + "/latest/api/token")
        self.assertEqual(st, 400, "the TTL header is required")
        st, _, _ = http("GET", self.admin + "/latest/meta-data/iam/security-credentials/")
        self.assertEqual(st, 401, "IMDSv1 is refused")
        st, _, _ = http("GET", self.admin + "/latest/meta-data/iam/security-credentials/",
                        {"x-aws-ec2-metadata-token": "forged"})
        self.assertEqual(st, 401)
        doc = self.imds_creds()
        self.assertEqual(doc["Code"], "Success")
        self.assertTrue(doc["AccessKeyId"].startswith("ASIA"))
        self.assertTrue(doc["Token"] and doc["SecretAccessKey"])
        self.assertRegex(doc["Expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        c = self.fake.client(akid=doc["AccessKeyId"], secret=doc["SecretAccessKey"], token=doc["Token"])
        self.assertEqual(c.list().status, 200)
        c.close()

    def test_session_token_required(self):
        doc = self.imds_creds()
        c = self.fake.client(akid=doc["AccessKeyId"], secret=doc["SecretAccessKey"])
        self.assertError(c.list(), 403, "UnrecognizedClientException")
        c.close()
        c = self.fake.client(akid=doc["AccessKeyId"], secret=doc["SecretAccessKey"], token=doc["Token"] + "x")
        self.assertError(c.list(), 403, "UnrecognizedClientException")
        c.close()

    def test_expiry_and_rotation(self):
        doc = self.imds_creds()
        self.assertEqual(self.imds_creds()["AccessKeyId"], doc["AccessKeyId"], "same set while fresh")
        self.fake.clock(offset=901)
        c = self.fake.client(akid=doc["AccessKeyId"], secret=doc["SecretAccessKey"], token=doc["Token"],
                             clock_offset=901)
        self.assertError(c.list(), 403, "ExpiredTokenException")
        c.close()
        new = self.imds_creds()
        self.assertNotEqual(new["AccessKeyId"], doc["AccessKeyId"])
        c = self.fake.client(akid=new["AccessKeyId"], secret=new["SecretAccessKey"], token=new["Token"],
                             clock_offset=901)
        self.assertEqual(c.list().status, 200)
        c.close()

    def test_container_credentials(self):
        uri = self.info["container_full_uri"]
        st, _, body = http("GET", uri, {"Accept": "application/json"})
        self.assertEqual(st, 200, "no token configured: open")
        self.fake.config(container_token="Bearer s3cr3t")
        try:
            st, _, _ = http("GET", uri)
            self.assertEqual(st, 401)
            st, _, _ = http("GET", uri, {"Authorization": "Bearer wrong"})
            self.assertEqual(st, 401)
            st, _, body = http("GET", uri, {"Authorization": "Bearer s3cr3t"})
            self.assertEqual(st, 200)
        finally:
            self.fake.config(container_token=None)
        doc = json.loads(body)
        for k in ("AccessKeyId", "SecretAccessKey", "Token", "Expiration"):
            self.assertIn(k, doc)
        c = self.fake.client(akid=doc["AccessKeyId"], secret=doc["SecretAccessKey"], token=doc["Token"])
        self.assertEqual(c.list().status, 200)
        c.close()


if __name__ == "__main__":
    unittest.main()
