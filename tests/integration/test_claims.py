"""The life of a claim against the fake: FAILED then claimed again inside
the window, window expiry, a number taken between search and claim, the
quota, kill -9 mid-claim, and two instances at once."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402


class Claims(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.2")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()

    def config(self, count=2, quota=10, **pool):
        p = {"country": "US", "type": "DID", "count": count}
        p.update(pool)
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": quota, "pools": {"main": p}}})

    def held(self):
        return [n for n in self.fake.numbers(self.inst) if n["tags"].get("connect-numbers:pool") == "support/main"]

    def test_failed_then_reclaimed_inside_window(self):
        self.config(count=2)
        self.fake.config(fail_next_claims=1)
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("failed", r.stderr.lower())
        self.assertEqual(len([n for n in self.held() if n["status"] == "CLAIMED"]), 1)
        failed = [n for n in self.fake.numbers(self.inst, active=False) if n["status"] == "FAILED"]
        self.assertEqual(len(failed), 1)
        st = json.loads(self.status("--json").stdout)
        self.assertEqual(len(st["failed_claims"]), 1)
        # A retry is due a minute later: travel 2 minutes.
        self.fake.clock(120)
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+2m")
        r = self.once("--wait", "30s", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        held = self.held()
        self.assertEqual(len(held), 2)
        self.assertIn(failed[0]["phone_number"], [n["phone_number"] for n in held],
                      "the FAILED number must be claimed again, not replaced")
        tokens = [q["client_token"] for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"
                  and json.loads(json.dumps(q["body"])).get("PhoneNumber") == failed[0]["phone_number"]]
        self.assertEqual(len(tokens), 2)
        self.assertNotEqual(tokens[0], tokens[1], "a new claim attempt uses a new ClientToken")

    def test_window_expiry_gives_up_and_replaces(self):
        self.config(count=1)
        self.fake.config(fail_next_claims=100)
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 75)
        first = [n for n in self.fake.numbers(self.inst, active=False) if n["status"] == "FAILED"][0]["phone_number"]
        self.fake.config(fail_next_claims=0)
        # 23h: still inside the window -> the same number is claimed again.
        self.fake.clock(23 * 3600)
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+23h")
        self.fake.config(fail_next_claims=1)
        self.once("--wait", "20s", env=env)
        claims = [q for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"]
        self.assertEqual(claims[-1]["body"]["PhoneNumber"], first)
        # 25h: past the window -> given up, another number claimed.
        self.fake.clock(25 * 3600)
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+25h")
        r = self.once("--wait", "20s", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Gave up on %s" % first, r.stderr)
        held = self.held()
        self.assertEqual(len(held), 1)
        self.assertNotEqual(held[0]["phone_number"], first)
        claims = [q for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"]
        self.assertFalse(any(q["body"]["PhoneNumber"] == first for q in claims[-1:]))

    def test_number_taken_between_search_and_claim(self):
        self.config(count=2)
        self.fake.config(steal_after_search=True)
        r = self.once("--wait", "10s")
        self.assertEqual(len(self.held()), 0)
        self.fake.config(steal_after_search=False)
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.held()), 2)

    def test_refused_token_never_sent_again(self):
        # docs/design.md (rule 11): a process never reuses its own refused token. With a
        # Connect that remembers the token of a refused claim, a later pass
        # (same view, same slots) reusing it would get IdempotencyException
        # for ever.
        self.config(count=2)
        self.fake.config(steal_after_search=True, remember_refused_claims=True)
        self.once("--wait", "10s")
        self.assertEqual(len(self.held()), 0)
        refused = {q["client_token"] for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"}
        self.assertTrue(refused)
        self.fake.config(steal_after_search=False)
        self.fake.reset()
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.held()), 2)
        claims = [q for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"]
        self.assertFalse(refused & {q["client_token"] for q in claims}, "a refused token was sent again")
        self.assertEqual(self.fake.calls()["error_codes"].get("IdempotencyException", 0), 0)

    def test_quota_reached_once_no_hammering(self):
        self.config(count=4, quota=5)
        self.fake.config(quotas={self.inst: 2})
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("You've reached the limit of Phone Numbers. To increase the limit, contact support.", r.stderr)
        self.assertEqual(r.stderr.count("You've reached the limit of Phone Numbers. To increase the limit"), 1)
        self.assertEqual(len([n for n in self.held() if n["status"] == "CLAIMED"]), 2)
        self.fake.reset()
        r = self.once("--wait", "5s")
        self.assertEqual(r.returncode, 75)
        self.assertEqual(self.calls().get("ClaimPhoneNumber", 0), 0, "no claim while the quota pause holds")
        self.assertNotIn("You've reached the limit of Phone Numbers", r.stderr, "one quota episode, one record")

    def test_quota_failed_stops_further_claims(self):
        # Claims pass the quota as FAILED statuses (not errors): once one is
        # seen, the rest of the pass claims nothing more for the target.
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 30, "pools": {
            "main": {"country": "US", "type": "DID", "count": 25}}}}, rate=2, burst=5)
        self.fake.config(quotas={self.inst: 3}, default_quota=100, rate=2, burst=5, claim_delay=1.0)
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 75, r.stderr)
        claims = self.calls().get("ClaimPhoneNumber", 0)
        self.assertLessEqual(claims, 10, "one batch of candidates at most, then the pause")
        self.assertEqual(r.stderr.count("You've reached the limit of Phone Numbers. To increase the limit"), 1)

    def test_kill9_mid_claims_then_restart(self):
        self.config(count=6)
        self.fake.config(claim_delay=1.0, rate=3, burst=3, default_quota=20)
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": 6}}}}, rate=3, burst=3)
        for delay in (0.4, 0.9, 1.5):
            p = subprocess.Popen(cnlib.daemon_cmd("--once", "-c", self.yaml, "--state-dir", self.state,
                                                  "--log-target", "console"), env=self.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.send_signal(signal.SIGKILL)
            p.wait()
        self.fake.config(rate=50, burst=100)
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": 6}}}})
        r = self.once("--wait", "30s")
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 0, r.stderr)
        held = self.held()
        self.assertEqual(len(held), 6, [n["phone_number"] for n in held])
        self.assertEqual(len({n["phone_number"] for n in held}), 6)
        self.assertEqual(len(self.fake.numbers(self.inst)), 6, "no number claimed beyond the count")

    def test_two_instances_never_above_count(self):
        self.config(count=3)
        s1, s2 = self.state + "-a", self.state + "-b"
        procs = [subprocess.Popen(cnlib.daemon_cmd("--once", "-c", self.yaml, "--state-dir", s, "--log-target",
                                                   "console", "--wait", "20s"), env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for s in (s1, s2)]
        for p in procs:
            p.wait(120)
        for _ in range(2):
            for s in (s1, s2):
                self.once("--wait", "20s", state=s)
        self.assertEqual(len(self.fake.numbers(self.inst)), 3)

    def test_lock_refuses_second_process(self):
        self.config(count=1)
        p = self.start_service("--log-target", "console")
        self.wait_for(lambda: os.path.exists(os.path.join(self.state, "lock")), what="service lock")
        time.sleep(0.5)
        r = self.once()
        self.assertEqual(r.returncode, 1)
        self.assertIn("another", r.stderr.lower())
        p.terminate()
        self.assertEqual(p.wait(30), 0)


if __name__ == "__main__":
    cnlib.main()
