"""STS and several accounts: AssumeRole signed for "sts" with the trust
and external id checked, AssumeRoleWithWebIdentity against a token file,
short-lived credentials, Connect calls refused across accounts, and
throttling buckets per account (docs/credentials.md)."""

import os
import re
import tempfile
import time
import unittest

from fakeclient import EmulatorTest, instance_arn

ROLE_B = "arn:aws:iam::222233334444:role/connect-numbers"
ROLE_C = "arn:aws:iam::555566667777:role/team/connect-numbers"
ROLE_W = "arn:aws:iam::222233334444:role/web"


def xml(r, name):
    m = re.search(r"<%s>([^<]*)</%s>" % (name, name), r.data.decode())
    return m.group(1) if m else None


class StsTest(EmulatorTest, unittest.TestCase):
    fake_args = ("--rate", "0")

    def setUp(self):
        super().setUp()
        self.tokdir = tempfile.mkdtemp(prefix="fake-sts-")
        self.tokfile = os.path.join(self.tokdir, "token")
        with open(self.tokfile, "w") as f:
            f.write("eyJ.first.token\n")
        self.fake.config(roles={
            ROLE_B: {"external_id": "ext-b"},
            ROLE_C: {"external_id": "ext-c", "max_duration": 7200, "trusted": ["111122223333"]},
            ROLE_W: {"web_identity_token_file": self.tokfile, "expired_tokens": ["eyJ.old.token"]},
        }, sts_credentials_ttl=None, rate=0)
        self.sts = self.fake.client(service="sts")

    def tearDown(self):
        self.sts.close()
        super().tearDown()

    def assume(self, client, role, ext=None, duration=None, session="cn"):
        p = {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": role, "RoleSessionName": session}
        if ext is not None:
            p["ExternalId"] = ext
        if duration is not None:
            p["DurationSeconds"] = str(duration)
        return client.sts(p)

    def creds(self, r, region="us-east-1"):
        self.assertEqual(r.status, 200, r)
        return self.fake.client(akid=xml(r, "AccessKeyId"), secret=xml(r, "SecretAccessKey"),
                                token=xml(r, "SessionToken"), region=region)

    def test_assume_role_and_account_boundary(self):
        r = self.assume(self.sts, ROLE_B, "ext-b")
        self.assertEqual(r.headers.get("content-type"), "text/xml")
        self.assertIn("<AssumeRoleResponse", r.data.decode())
        self.assertEqual(xml(r, "Arn"), "arn:aws:sts::222233334444:assumed-role/connect-numbers/cn")
        exp = time.mktime(time.strptime(xml(r, "Expiration"), "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertAlmostEqual(exp - time.time(), 3600, delta=30)
        b = self.creds(r)
        # its own account: allowed; another account's instance: AccessDenied
        self.assertEqual(b.list(instance_arn(account="222233334444")).status, 200)
        r2 = b.list(instance_arn(account="111122223333"))
        self.assertError(r2, 403, "AccessDeniedException", "not authorized")
        # and the base key cannot touch account B
        self.assertError(self.c.list(instance_arn(account="222233334444")), 403, "AccessDeniedException")
        b.close()
        reqs = [q for q in self.fake.requests() if q["op"] == "ListPhoneNumbersV2"]
        self.assertEqual([q["account"] for q in reqs[-3:]], ["222233334444", "222233334444", "111122223333"])

    def test_refusals(self):
        self.assertEqual(self.assume(self.sts, ROLE_B, "wrong").status, 403)
        r = self.assume(self.sts, ROLE_B)
        self.assertEqual((r.status, xml(r, "Code")), (403, "AccessDenied"), r)
        self.assertIn(ROLE_B, xml(r, "Message"))
        self.assertEqual(xml(self.assume(self.sts, "arn:aws:iam::999999999999:role/nope"), "Code"), "AccessDenied")
        r = self.assume(self.sts, ROLE_C, "ext-c", duration=10800)
        self.assertEqual((r.status, xml(r, "Code")), (400, "ValidationError"), r)
        self.assertIn("DurationSeconds", xml(r, "Message"))
        self.assertEqual(xml(self.assume(self.sts, ROLE_B, "ext-b", duration=60), "Code"), "ValidationError")
        # signed for the wrong service, or with a bad secret
        wrong = self.fake.client(service="connect")
        self.assertEqual(xml(wrong.sts({"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": ROLE_B,
                                        "RoleSessionName": "cn", "ExternalId": "ext-b"}), "Code"),
                         "SignatureDoesNotMatch")
        wrong.close()
        bad = self.fake.client(service="sts", secret="nope")
        self.assertEqual(xml(self.assume(bad, ROLE_B, "ext-b"), "Code"), "SignatureDoesNotMatch")
        bad.close()
        self.assertEqual(xml(self.sts.sts({"Action": "GetCallerIdentity", "Version": "2011-06-15"}), "Code"),
                         "InvalidAction")

    def test_trust_and_role_chaining(self):
        b = self.fake.client(service="sts", **self.keys(self.assume(self.sts, ROLE_B, "ext-b")))
        # ROLE_C trusts account 111122223333 only
        r = self.assume(b, ROLE_C, "ext-c")
        self.assertEqual((r.status, xml(r, "Code")), (403, "AccessDenied"), r)
        # a role's credentials may assume ROLE_B again, for at most 1 h
        r = self.assume(b, ROLE_B, "ext-b", duration=7200)
        self.assertIn("role chaining", xml(r, "Message"))
        self.assertEqual(self.assume(b, ROLE_B, "ext-b", duration=3600).status, 200)
        b.close()

    def keys(self, r):
        self.assertEqual(r.status, 200, r)
        return {"akid": xml(r, "AccessKeyId"), "secret": xml(r, "SecretAccessKey"), "token": xml(r, "SessionToken")}

    def test_short_lived_credentials_expire(self):
        self.fake.config(sts_credentials_ttl=60)
        b = self.creds(self.assume(self.sts, ROLE_B, "ext-b"))
        self.assertEqual(b.list(instance_arn(account="222233334444")).status, 200)
        self.fake.clock(advance=61)
        try:
            self.assertError(b.list(instance_arn(account="222233334444"), ), 403, "ExpiredTokenException")
        finally:
            self.fake.clock(offset=0)
            b.close()
        issued = self.fake.admin("GET", "/admin/issued")["credentials"]
        self.assertTrue(any(c["role_arn"] == ROLE_B and c["account"] == "222233334444" for c in issued))

    def test_web_identity(self):
        p = {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": ROLE_W,
             "RoleSessionName": "pod", "WebIdentityToken": "eyJ.first.token"}
        anon = self.fake.client(service="sts")
        r = anon.sts(p, sign_it=False)
        self.assertEqual(r.status, 200, r)
        self.assertIn("<AssumeRoleWithWebIdentityResult>", r.data.decode())
        # the file is read at every call: a rotated token replaces the old one
        with open(self.tokfile, "w") as f:
            f.write("eyJ.second.token\n")
        self.assertEqual(xml(anon.sts(p, sign_it=False), "Code"), "InvalidIdentityToken")
        self.assertEqual(anon.sts(dict(p, WebIdentityToken="eyJ.second.token"), sign_it=False).status, 200)
        self.assertEqual(xml(anon.sts(dict(p, WebIdentityToken="eyJ.old.token"), sign_it=False), "Code"),
                         "ExpiredTokenException")
        anon.close()
        self.assertNotIn("WebIdentityToken", self.fake.requests()[-1]["body"])

    def test_buckets_per_account(self):
        self.fake.config(rate=1, burst=2)
        try:
            b = self.creds(self.assume(self.sts, ROLE_B, "ext-b"))
            codes_a = [self.c.list(instance_arn()).status for _ in range(3)]
            codes_b = [b.list(instance_arn(account="222233334444")).status for _ in range(3)]
            b.close()
        finally:
            self.fake.config(rate=0)
        self.assertEqual(codes_a, [200, 200, 429])
        self.assertEqual(codes_b, [200, 200, 429], "account B has a bucket of its own")


if __name__ == "__main__":
    unittest.main()
