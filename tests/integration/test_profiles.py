"""Profiles of the credential chain (connect-numbersd(8) CREDENTIALS,
docs/credentials.md) against the fake Connect's STS: a source_profile chain
of two roles (and a loop), credential_source = Environment, web identity
from a token file that is rewritten while the service runs, and
credential_process: valid JSON, one that exits non-zero, one that prints
10 MB, one that hangs (cut at 60 s)."""
import json
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

ACCT_A, ACCT_B, ACCT_C = "111122223333", "222233334444", "555566667777"
R1 = "arn:aws:iam::%s:role/first" % ACCT_B
R2 = "arn:aws:iam::%s:role/second" % ACCT_C
RW = "arn:aws:iam::%s:role/pod" % ACCT_B
CREDENTIALS_FAILED = "a55259bd69e142f1826a5fee9b97dacd"


class Profiles(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.2")

    def setUp(self):
        super().setUp()
        self.fake.config(roles={R1: {"external_id": "ext-1", "trusted": [ACCT_A]},
                                R2: {"trusted": [R1]},
                                RW: {"web_identity_token": "tok-1", "expired_tokens": ["tok-old"]}})
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            self.env.pop(k, None)
        self.env["AWS_ENDPOINT_URL_STS"] = self.fake.info["endpoint_url"]
        self.env["AWS_CA_BUNDLE"] = self.fake.info["ca_file"]
        self.env["AWS_CONFIG_FILE"] = os.path.join(self.tmp, "config")
        self.env["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(self.tmp, "credentials")
        with open(self.env["AWS_SHARED_CREDENTIALS_FILE"], "w") as f:
            f.write("[base]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                    % (self.fake.info["access_key_id"], self.fake.info["secret_access_key"]))

    def setup_yaml(self, account, profile=None, **kw):
        self.arn = cnlib.instance_arn(account=account)
        cnlib.write_yaml(self.yaml, self.fake, {"t": {"arn": self.arn, "pools": {
            "p": {"country": "US", "type": "DID", "count": 2}}}},
            extra="profile: %s" % profile if profile else "", **kw)

    def config(self, text):
        with open(self.env["AWS_CONFIG_FILE"], "w") as f:
            f.write(text)

    def script(self, name, body):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("#!/usr/bin/python3\n" + body)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    def sts(self, op="AssumeRole"):
        return [q for q in self.fake.requests() if q["op"] == op]

    def issued(self):
        return {c["access_key_id"]: c for c in self.fake.admin("GET", "/admin/issued")["credentials"]}

    def assert_converged_as(self, role):
        """Two numbers claimed, every Connect call signed with credentials
        STS issued for role (or with the fake's key when role is None)."""
        self.assertEqual(len(self.fake.numbers(self.arn)), 2)
        issued = self.issued()
        connect = [q for q in self.fake.requests() if q["op"] not in ("AssumeRole", "AssumeRoleWithWebIdentity")]
        self.assertTrue(connect)
        for q in connect:
            self.assertIsNone(q["error_code"], q)
            if role is None:
                self.assertEqual(q["access_key_id"], self.fake.info["access_key_id"], q)
            else:
                self.assertEqual(issued[q["access_key_id"]]["role_arn"], role, q)

    def failed_records(self, since):
        if not cnlib.ensure_journald():
            return None
        return cnlib.journal_records(since, MESSAGE_ID=CREDENTIALS_FAILED)

    def once_journal(self, *args):
        journal = cnlib.ensure_journald()
        return cnlib.run("--once", "-c", self.yaml, "--state-dir", self.state, "--log-target",
                         "journal" if journal else "console", *args, env=self.env)

    # ------------------------------------------------------------ roles
    def test_source_profile_chain_of_two_roles(self):
        self.config("[profile first]\nrole_arn = %s\nsource_profile = base\nexternal_id = ext-1\n\n"
                    "[profile second]\nrole_arn = %s\nsource_profile = first\nrole_session_name = cn-chain\n"
                    "duration_seconds = 900\n" % (R1, R2))
        self.setup_yaml(ACCT_C, "second")
        r = self.once("--wait", "60s", check=0)
        calls = self.sts()
        self.assertEqual([q["role_arn"] for q in calls], [R1, R2], r.stderr)
        self.assertEqual(calls[0]["access_key_id"], self.fake.info["access_key_id"])
        self.assertEqual(calls[0]["external_id"], "ext-1")
        self.assertEqual(self.issued()[calls[1]["access_key_id"]]["role_arn"], R1, "R2 assumed with R1's keys")
        self.assertEqual(calls[1]["body"]["RoleSessionName"], "cn-chain")
        self.assertEqual(calls[1]["body"]["DurationSeconds"], "900")
        self.assert_converged_as(R2)

    def test_source_profile_loop_refused(self):
        self.config("[profile third]\nrole_arn = %s\nsource_profile = fourth\n\n"
                    "[profile fourth]\nrole_arn = %s\nsource_profile = third\n" % (R1, R2))
        self.setup_yaml(ACCT_C, "third")
        r = self.once("--wait", "10s", check=1)
        self.assertIn("profiles form a loop: third -> fourth -> third", r.stderr)
        self.assertEqual(self.sts(), [])

    def test_credential_source_environment(self):
        self.config("[profile envrole]\nrole_arn = %s\ncredential_source = Environment\nexternal_id = ext-1\n" % R1)
        self.setup_yaml(ACCT_B, "envrole")
        env = dict(self.env, AWS_ACCESS_KEY_ID=self.fake.info["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=self.fake.info["secret_access_key"])
        r = self.once("--wait", "60s", check=0, env=env)
        calls = self.sts()
        self.assertEqual([(q["role_arn"], q["access_key_id"]) for q in calls],
                         [(R1, self.fake.info["access_key_id"])], r.stderr)
        self.assert_converged_as(R1)

    # ------------------------------------------------------------ web identity
    def test_web_identity_token_file_rewritten_while_running(self):
        token = os.path.join(self.tmp, "token")
        with open(token, "w") as f:
            f.write("tok-1\n")
        self.env.update(AWS_WEB_IDENTITY_TOKEN_FILE=token, AWS_ROLE_ARN=RW, AWS_ROLE_SESSION_NAME="pod-7")
        self.fake.config(sts_credentials_ttl=4)
        self.setup_yaml(ACCT_B, interval="1s")
        p = self.start_service("--log-target", "console")
        self.wait_for(lambda: len(self.fake.numbers(self.arn)) == 2, 30, "the converge")
        # Kubernetes rotates the token: the old one stops working
        self.fake.config(roles={RW: {"web_identity_token": "tok-2"}})
        with open(token + ".new", "w") as f:
            f.write("tok-2\n")
        os.rename(token + ".new", token)
        rotated = len(self.sts("AssumeRoleWithWebIdentity"))
        time.sleep(6)
        self.assertIsNone(p.poll())
        p.terminate()
        p.wait(timeout=30)
        calls = self.sts("AssumeRoleWithWebIdentity")
        self.assertGreaterEqual(len(calls) - rotated, 2, "credentials of 4 s are renewed from the new token")
        for q in calls:
            self.assertEqual(q["status"], 200, q)
            self.assertEqual(q["body"]["RoleSessionName"], "pod-7")
            self.assertIsNone(q["access_key_id"], "AssumeRoleWithWebIdentity is not signed")
        self.assert_converged_as(RW)
        self.assertNotIn("ExpiredTokenException", self.fake.calls()["error_codes"])

    def test_web_identity_expired_token(self):
        token = os.path.join(self.tmp, "token")
        with open(token, "w") as f:
            f.write("tok-old")
        self.env.update(AWS_WEB_IDENTITY_TOKEN_FILE=token, AWS_ROLE_ARN=RW)
        self.setup_yaml(ACCT_B)
        since = cnlib.now_usec()
        r = self.once_journal("--wait", "10s")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual([q["error_code"] for q in self.sts("AssumeRoleWithWebIdentity")],
                         ["ExpiredTokenException"])
        recs = self.failed_records(since)
        if recs is not None:
            self.assertEqual(len(recs), 1, recs)
            self.assertEqual(recs[0].get("AWS_ERROR_CODE"), "ExpiredTokenException")
            self.assertEqual(recs[0].get("AWS_OPERATION"), "AssumeRoleWithWebIdentity")
            self.assertIn(RW, recs[0]["MESSAGE"])
            self.assertNotIn("tok-old", json.dumps(recs))

    # ------------------------------------------------------------ credential_process
    def test_credential_process_valid_json(self):
        record = os.path.join(self.tmp, "process.json")
        exe = self.script("creds.py", """import json, os, sys
with open(%r, "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "env": sorted(os.environ)}) + "\\n")
print(json.dumps({"Version": 1, "AccessKeyId": %r, "SecretAccessKey": %r,
                  "Expiration": "2099-01-01T00:00:00Z"}))
""" % (record, self.fake.info["access_key_id"], self.fake.info["secret_access_key"]))
        # words as a POSIX shell splits them, without expansions or ';'
        self.config("[profile proc]\ncredential_process = %s \"two words\" '$HOME;echo' plain\\ escaped\n" % exe)
        self.setup_yaml(ACCT_A, "proc")
        env = dict(self.env, AWS_SECRET_ACCESS_KEY="must-not-be-passed", AWS_SESSION_TOKEN="nor-this",
                   AWS_REGION="us-east-1")
        r = self.once("--wait", "60s", "-v", check=0, env=env)
        self.assert_converged_as(None)
        with open(record) as f:
            runs = [json.loads(line) for line in f]
        self.assertEqual(len(runs), 1, "credentials without a near expiry are not fetched again")
        self.assertEqual(runs[0]["argv"], ["two words", "$HOME;echo", "plain escaped"])
        self.assertNotIn("AWS_SECRET_ACCESS_KEY", runs[0]["env"])
        self.assertNotIn("AWS_SESSION_TOKEN", runs[0]["env"])
        self.assertIn("AWS_REGION", runs[0]["env"])
        self.assertNotIn(self.fake.info["secret_access_key"], r.stdout + r.stderr)

    def test_credential_process_fails(self):
        exe = self.script("fail.py", "import sys\nprint('secret-looking-output-123')\nsys.exit(3)\n")
        self.config("[profile proc]\ncredential_process = %s\n" % exe)
        self.setup_yaml(ACCT_A, "proc")
        since = cnlib.now_usec()
        r = self.once_journal("--wait", "10s")
        self.assertEqual(r.returncode, 1, r.stderr)
        recs = self.failed_records(since)
        text = r.stderr + json.dumps(recs)
        self.assertIn("exited with status 3", text)
        self.assertNotIn("secret-looking-output-123", text)
        if recs is not None:
            self.assertEqual(len(recs), 1, recs)
            self.assertEqual(recs[0].get("AWS_OPERATION"), "credential_process")
        self.assertEqual(self.fake.numbers(self.arn), [])

    def test_credential_process_prints_10_mb(self):
        exe = self.script("big.py", "import sys, time\nsys.stdout.write('{' + ' ' * (10 * 1024 * 1024))\n"
                          "sys.stdout.flush()\ntime.sleep(30)\n")
        self.config("[profile proc]\ncredential_process = %s\n" % exe)
        self.setup_yaml(ACCT_A, "proc")
        t0 = time.monotonic()
        r = self.once("--wait", "10s")
        self.assertLess(time.monotonic() - t0, 20, "the process is killed at the bound, not waited for")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("printed more than 65536 bytes and was killed", r.stderr)
        self.assertEqual(self.fake.numbers(self.arn), [])

    @cnlib.real_time
    def test_credential_process_hangs(self):
        pidfile = os.path.join(self.tmp, "hang.pid")
        exe = self.script("hang.py", "import os, time\nopen(%r, 'w').write(str(os.getpid()))\ntime.sleep(600)\n"
                          % pidfile)
        self.config("[profile proc]\ncredential_process = %s\n" % exe)
        self.setup_yaml(ACCT_A, "proc", interval="5m")
        out = open(os.path.join(self.tmp, "service.log"), "w+")
        t0 = time.monotonic()
        p = self.start_service("--log-target", "console", stdout=out)
        self.wait_for(lambda: os.path.exists(pidfile), 30, "the process to start")
        with open(pidfile) as f:
            child = int(f.read())
        self.wait_for(lambda: "did not finish within 60 s" in open(out.name).read(), 90, "the 60 s limit")
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 59)
        self.assertLess(took, 75)
        time.sleep(1)
        with self.assertRaises(ProcessLookupError, msg="the hanging process is killed"):
            os.kill(child, 0)
        self.assertIsNone(p.poll(), "the service stays alive")
        self.assertEqual(self.fake.numbers(self.arn), [], "the target is skipped")
        p.terminate()
        p.wait(timeout=30)
        out.close()


if __name__ == "__main__":
    cnlib.main()
