"""Many accounts from one service (connect-numbers.yaml(5) role_arn:,
docs/credentials.md): targets in three accounts, two reached through
AssumeRole with an external id and one with the chain's own credentials,
against the fake Connect's STS, which refuses Connect calls signed with
another account's credentials. Also: short-lived role credentials across a
long run, a wrong external id, and no secret anywhere it could leak."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

ACCT_A, ACCT_B, ACCT_C = "111122223333", "222233334444", "555566667777"
ROLE_B = "arn:aws:iam::%s:role/connect-numbers" % ACCT_B
ROLE_C = "arn:aws:iam::%s:role/team/connect-numbers" % ACCT_C
EXT_B, EXT_C = "ext-b-2026", "ext-c-2026"
CREDENTIALS_FAILED = "a55259bd69e142f1826a5fee9b97dacd"


class Accounts(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.2")

    def setUp(self):
        super().setUp()
        self.fake.config(roles={ROLE_B: {"external_id": EXT_B, "trusted": [ACCT_A]},
                                ROLE_C: {"external_id": EXT_C, "trusted": [ACCT_A]}})
        self.env["AWS_ENDPOINT_URL_STS"] = self.fake.info["endpoint_url"]
        self.env["AWS_CA_BUNDLE"] = self.fake.info["ca_file"]
        self.arns = {}
        targets = {}
        for acct, role, ext in ((ACCT_A, None, None), (ACCT_B, ROLE_B, EXT_B), (ACCT_C, ROLE_C, EXT_C)):
            for i in (1, 2):
                name = "t%s-%d" % (acct[:1], i)
                arn = cnlib.instance_arn(account=acct)
                self.arns[name] = (acct, arn)
                t = {"arn": arn, "pools": {"p": {"country": "US", "type": "DID", "count": 2}}}
                if role:
                    t["role_arn"] = role
                    t["external_id"] = ext
                targets[name] = t
        self.targets = targets

    def write(self, **kw):
        cnlib.write_yaml(self.yaml, self.fake, self.targets, **kw)

    def sts_calls(self, role=None):
        return [q for q in self.fake.requests() if q["op"] == "AssumeRole" and (not role or q["role_arn"] == role)]

    def assert_converged(self, count=2):
        for name, (acct, arn) in self.arns.items():
            held = self.fake.numbers(arn)
            self.assertEqual(len(held), count, "%s: %r" % (name, held))
            for n in held:
                self.assertEqual(n["status"], "CLAIMED")

    def assert_signed_by_account(self):
        """Every Connect call went out with credentials of the account it
        was about: the fake refuses any other, so no AccessDenied, and the
        calls about B and C used credentials STS issued for their roles."""
        issued = {c["access_key_id"]: c for c in self.fake.admin("GET", "/admin/issued")["credentials"]}
        seen = set()
        for q in self.fake.requests():
            if q["op"] in ("AssumeRole", "AssumeRoleWithWebIdentity", "STS"):
                continue
            self.assertNotEqual(q["error_code"], "AccessDeniedException", q)
            self.assertNotEqual(q["error_code"], "ExpiredTokenException", q)
            body = q["body"] if isinstance(q["body"], dict) else {}
            m = re.match(r"arn:aws:connect:[^:]+:(\d{12}):", body.get("TargetArn") or "")
            if not m:
                continue
            acct = m.group(1)
            seen.add(acct)
            self.assertEqual(q["account"], acct, q)
            if acct == ACCT_A:
                self.assertEqual(q["access_key_id"], self.fake.info["access_key_id"])
            else:
                k = issued.get(q["access_key_id"])
                self.assertIsNotNone(k, "calls about %s must use STS credentials: %r" % (acct, q))
                self.assertEqual(k["role_arn"], ROLE_B if acct == ACCT_B else ROLE_C)
        self.assertEqual(seen, {ACCT_A, ACCT_B, ACCT_C})

    def test_three_accounts_converge(self):
        self.write()
        r = self.once("--wait", "60s", "-v")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assert_converged()
        self.assert_signed_by_account()
        self.assert_no_validation_failures()
        # one AssumeRole per role (two targets share it), each with its external id
        for role, ext in ((ROLE_B, EXT_B), (ROLE_C, EXT_C)):
            calls = self.sts_calls(role)
            self.assertEqual(len(calls), 1, calls)
            self.assertEqual(calls[0]["external_id"], ext)
            self.assertEqual(calls[0]["access_key_id"], self.fake.info["access_key_id"])
            self.assertEqual(calls[0]["status"], 200)
        # steady pass: still exact, still per account
        r = self.once(check=0)
        self.assert_converged()
        self.assert_signed_by_account()


    def test_audit_after_a_restart_describes_each_number_in_its_account(self):
        # A new process knows no number's account from a claim: the daily
        # audit describes every number, each with its own account's
        # credentials, and none is taken for gone. (An interval of a day
        # lets one pass audit every number.)
        self.write(interval="24h")
        self.once("--wait", "60s", check=0)
        self.assert_converged()
        self.fake.clock(25 * 3600)
        self.fake.reset()
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+25h")
        r = self.once("--wait", "60s", env=env)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        calls = self.calls()
        self.assertEqual(calls.get("DescribePhoneNumber", 0), 12, calls)
        self.assertEqual(calls.get("ClaimPhoneNumber", 0), 0, r.stderr[-3000:])
        self.assertNotIn("no longer in Amazon Connect", r.stderr)
        self.assert_converged()

    def test_sts_trusts_the_yaml_ca_file(self):
        # ca_file: is used instead of the system's trust store for every
        # HTTPS call, STS included: no AWS_CA_BUNDLE needed.
        del self.env["AWS_CA_BUNDLE"]
        self.write()
        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assert_converged()
        self.assertEqual(len(self.sts_calls(ROLE_B)), 1)

    def test_wrong_external_id_skips_that_account_only(self):
        self.fake.config(roles={ROLE_B: {"external_id": "the-real-one", "trusted": [ACCT_A]},
                                ROLE_C: {"external_id": EXT_C, "trusted": [ACCT_A]}})
        self.write()
        journal = cnlib.ensure_journald()
        since = cnlib.now_usec()
        r = cnlib.run("--once", "--wait", "60s", "-c", self.yaml, "--state-dir", self.state, "--log-target",
                      "journal" if journal else "console", env=self.env)
        self.assertEqual(r.returncode, 1, r.stderr[-3000:])
        if os.environ.get("DEBUG_ACCOUNTS"):
            print(r.stderr, self.once("-v").stderr)
        for name, (acct, arn) in self.arns.items():
            held = self.fake.numbers(arn)
            self.assertEqual(len(held), 0 if acct == ACCT_B else 2, "%s: %r" % (name, held))
        # B's targets made no Connect call at all: nothing was signed with the
        # wrong account's credentials, nothing was refused
        for q in self.fake.requests():
            self.assertNotEqual(q["error_code"], "AccessDeniedException", q)
            self.assertNotIn(ACCT_B, json.dumps(q.get("body")) if q["op"] != "AssumeRole" else "", q)
        self.assertEqual([q["error_code"] for q in self.sts_calls(ROLE_B)], ["AccessDenied"])
        if journal:
            recs = cnlib.journal_records(since, MESSAGE_ID=CREDENTIALS_FAILED)
            self.assertEqual(len(recs), 1, recs)
            rec = recs[0]
            self.assertIn(ROLE_B, rec["MESSAGE"])
            self.assertEqual(rec.get("AWS_ERROR_CODE"), "AccessDenied", rec)
            self.assertIn(rec.get("TARGET_ARN"), [self.arns["t2-1"][1], self.arns["t2-2"][1]])
            self.assertEqual(rec["PRIORITY"], "3")
        else:
            self.assertEqual(r.stderr.count(ROLE_B + " with external id"), 1, r.stderr)
            self.assertIn("AccessDenied", r.stderr)
        # the next pass asks STS again, and with the right id B converges
        self.fake.config(roles={ROLE_B: {"external_id": EXT_B, "trusted": [ACCT_A]},
                                ROLE_C: {"external_id": EXT_C, "trusted": [ACCT_A]}})
        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertEqual([q["status"] for q in self.sts_calls(ROLE_B)], [403, 200])
        self.assert_converged()

    def test_no_secret_anywhere(self):
        """Keys, session tokens and the fake's issued secrets never reach a
        log at -v, --status, the state directory or the metrics file."""
        metrics = os.path.join(self.tmp, "metrics.prom")
        self.write(extra="metrics_file: %s" % metrics)
        journal = cnlib.ensure_journald()
        since = cnlib.now_usec()
        r = cnlib.run("--once", "-v", "--wait", "60s", "-c", self.yaml, "--state-dir", self.state, "--log-target",
                      "journal" if journal else "console", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        texts = {"stdout/stderr": r.stdout + r.stderr}
        r2 = self.once("-v")
        texts["console -v"] = r2.stdout + r2.stderr
        if journal:
            texts["journal"] = json.dumps(cnlib.journal_records(since))
        for args in ((), ("--json",)):
            st = self.status(*args)
            texts["--status %s" % " ".join(args)] = st.stdout + st.stderr
        for d in (self.state, os.path.dirname(metrics)):
            for root, _, files in os.walk(d):
                for f in files:
                    if root.startswith(self.fake.dir):
                        continue
                    p = os.path.join(root, f)
                    if p == self.yaml:
                        continue
                    with open(p, "rb") as fh:
                        texts[p] = fh.read().decode("utf-8", "replace")
        self.assertTrue(os.path.exists(metrics), "metrics_file was not written")
        issued = self.fake.admin("GET", "/admin/issued")["credentials"]
        self.assertGreaterEqual(len(issued), 2)
        secrets = [self.fake.info["secret_access_key"]]
        for c in issued:
            secrets += [c["secret_access_key"], c["session_token"], c["session_token"][:40]]
        for where, text in texts.items():
            for s in secrets:
                self.assertNotIn(s, text, "a secret in %s" % where)
        # the journal did get the run's records (the grep looked at something)
        if journal:
            self.assertIn(ROLE_B, texts["journal"] + texts["console -v"])

    def run_service_with_expiring_credentials(self, ttl, seconds, interval):
        """The service, shifted in time with CONNECT_NUMBERS_CLOCK_OFFSET
        (and the fake with it), while STS hands out credentials that last
        ttl s. Returns the service's output."""
        self.fake.config(sts_credentials_ttl=ttl)
        self.fake.clock(7200)
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+2h")
        self.write(interval="%ds" % interval)
        out = open(os.path.join(self.tmp, "service.log"), "w+")
        p = self.start_service("--log-target", "console", env=env, stdout=out)
        time.sleep(seconds)
        self.assertIsNone(p.poll(), "the service died")
        p.terminate()
        p.wait(timeout=30)
        out.seek(0)
        text = out.read()
        out.close()
        return text

    def check_expiring_run(self, log, ttl, seconds):
        self.assert_converged()
        self.assert_signed_by_account()
        c = self.fake.calls()
        self.assertNotIn("ExpiredTokenException", c["error_codes"], log[-3000:])
        self.assertEqual(c["errors"], {}, log[-3000:])
        lists = c["calls"].get("ListPhoneNumbersV2", 0)
        self.assertGreaterEqual(lists, 6 * 3, "too few passes to mean anything: %r" % c)
        for role in (ROLE_B, ROLE_C):
            n = len(self.sts_calls(role))
            # renewed at half their life: twice per lifetime, plus the first
            # (and slack for a pass that starts just before the renewal)
            expiries = seconds / ttl
            self.assertGreaterEqual(n, expiries, "%s: %d AssumeRole in %ds" % (role, n, seconds))
            self.assertLessEqual(n, 2 * expiries + 2, "%s: %d AssumeRole in %ds (not per call)" % (role, n, seconds))
            self.assertLess(n, lists / 3, "STS must not be called per Connect call")
            sys.stderr.write("[%s: %d AssumeRole, %d lists in %ds, credentials of %ds] " % (role[13:25], n, lists,
                                                                                              seconds, ttl))

    def test_short_lived_credentials_quick(self):
        """The same as the 5-minute run below, scaled down: 6 s credentials,
        passes every second, for 18 s."""
        log = self.run_service_with_expiring_credentials(ttl=6, seconds=18, interval=1)
        self.check_expiring_run(log, 6, 18)

    @cnlib.real_time
    def test_short_lived_credentials_five_minutes(self):
        """Credentials that expire every 60 s across a 5-minute run: no
        call refused, STS asked about once per expiry per role."""
        log = self.run_service_with_expiring_credentials(ttl=60, seconds=300, interval=10)
        self.check_expiring_run(log, 60, 300)


if __name__ == "__main__":
    cnlib.main()
