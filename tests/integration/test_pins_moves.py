"""Numbers that keep their identity: pinned numbers (numbers:), and moves
with UpdatePhoneNumber (previous_arns:, from:). A move must never lose a
number nor make a second one, across kills and a second instance; a pin
is never replaced by another number and never released."""
import json
import os
import random
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"
MOVED_ID = "c8f7426e7d32423ba00b32c03464e7a7"
PIN_ID = "869c57ce438f44c88e13d31666e19092"


class PinsAndMoves(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.1")

    def setUp(self):
        super().setUp()
        self.a = cnlib.instance_arn()
        self.b = cnlib.instance_arn()
        self.t = cnlib.tdg_arn()
        self.fake.config(default_quota=10000)

    # -- helpers ----------------------------------------------------------
    def on(self, arn):
        return {n["phone_number"]: n for n in self.fake.numbers(arn) if n["status"] == "CLAIMED"}

    def ops(self, op):
        return [r for r in self.fake.requests() if r["op"] == op]

    def inventory(self, n=3):
        return self.fake.admin("GET", "/admin/inventory?country=US&type=DID&count=%d" % n)["numbers"]

    def flow(self):
        return "%s/contact-flow/7c1a8bde-2f3a-4c55-9d1e-0a6b4c2d9e10" % self.a

    def two_pools(self, arn, **target):
        t = {"arn": arn, "quota": 100,
             "pools": {"main": {"country": "US", "type": "DID", "count": 12, "contact_flow": self.flow()},
                       "support": {"country": "US", "type": "DID", "count": 8}}}
        t.update(target)
        cnlib.write_yaml(self.yaml, self.fake, {"support": t})

    def converge_on_a(self, **target):
        self.two_pools(self.a, **target)
        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stderr)
        before = self.on(self.a)
        self.assertEqual(len(before), 20)
        self.fake.reset()
        return before

    # -- migration: an instance's numbers into its TDG --------------------
    def migrate(self, release_excess):
        before = self.converge_on_a(release_excess=release_excess)
        self.two_pools(self.t, previous_arns=[self.a], release_excess=release_excess)
        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.on(self.t)
        self.assertEqual(sorted(after), sorted(before), "the same E.164 numbers, on the TDG")
        self.assertEqual(self.on(self.a), {})
        calls = self.calls()
        self.assertEqual(calls.get("UpdatePhoneNumber", 0), 20, calls)
        self.assertEqual(calls.get("ClaimPhoneNumber", 0), 0, calls)
        self.assertEqual(calls.get("ReleasePhoneNumber", 0), 0, calls)
        for phone, n in after.items():
            self.assertEqual(n["tags"].get(TAG), before[phone]["tags"].get(TAG), "each keeps its pool")
            self.assertEqual(n.get("moves"), 1, phone)
            # A move does not carry the flow: the pool's is associated again,
            # through the instance its ARN names.
            want = "7c1a8bde-2f3a-4c55-9d1e-0a6b4c2d9e10" if n["tags"].get(TAG) == "support/main" else None
            self.assertEqual(n.get("contact_flow"), want, phone)
        assoc = self.ops("AssociatePhoneNumberContactFlow")
        self.assertEqual(len(assoc), 12)
        self.assertEqual({q["body"]["InstanceId"] for q in assoc}, {self.a.rsplit("/", 1)[1]})
        # A second pass has nothing to do.
        self.fake.reset()
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.mutating_calls(), {})
        return r

    def test_migration_to_a_traffic_distribution_group(self):
        self.migrate(release_excess=False)

    def test_migration_with_release_excess_releases_nothing(self):
        self.migrate(release_excess=True)

    def test_plan_shows_moves(self):
        self.converge_on_a()
        self.two_pools(self.t, previous_arns=[self.a])
        p = self.plan("--json", check=75)
        steps = [s for s in json.loads(p.stdout)["steps"] if s["action"] == "move"]
        self.assertEqual(len(steps), 20, p.stdout)
        self.assertEqual({s["from_arn"] for s in steps}, {self.a})
        self.assertEqual({s["target_arn"] for s in steps}, {self.t})
        self.assertEqual(self.mutating_calls(), {})

    # -- rename with from: --------------------------------------------------
    def test_renamed_pool_keeps_its_numbers(self):
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.a, "pools": {
            "main": {"country": "US", "type": "DID", "count": 3}}}})
        self.once("--wait", "30s", check=0)
        before = sorted(self.on(self.a))
        self.fake.reset()
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.a, "pools": {
            "primary": {"country": "US", "type": "DID", "count": 3, "from": ["support/main"]}}}})
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.on(self.a)
        self.assertEqual(sorted(after), before)
        self.assertEqual({n["tags"].get(TAG) for n in after.values()}, {"support/primary"})
        calls = self.calls()
        self.assertEqual(calls.get("ClaimPhoneNumber", 0), 0, calls)
        self.assertEqual(calls.get("UpdatePhoneNumber", 0), 0, calls)
        self.assertEqual(calls.get("ReleasePhoneNumber", 0), 0, calls)

    def test_from_another_target_is_moved_and_retagged(self):
        cnlib.write_yaml(self.yaml, self.fake, {"old": {"arn": self.b, "pools": {
            "main": {"country": "US", "type": "DID", "count": 2}}}})
        self.once("--wait", "30s", check=0)
        before = sorted(self.on(self.b))
        self.fake.reset()
        cnlib.write_yaml(self.yaml, self.fake, {
            "old": {"arn": self.b, "pools": {"spare": {"country": "US", "type": "DID", "count": 0}}},
            "support": {"arn": self.a, "pools": {
                "main": {"country": "US", "type": "DID", "count": 2, "from": ["old/main"]}}}})
        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.on(self.a)
        self.assertEqual(sorted(after), before)
        self.assertEqual({n["tags"].get(TAG) for n in after.values()}, {"support/main"})
        calls = self.calls()
        self.assertEqual(calls.get("UpdatePhoneNumber", 0), 2, calls)
        self.assertEqual(calls.get("ClaimPhoneNumber", 0), 0, calls)

    # -- pins -----------------------------------------------------------------
    def pin_yaml(self, pins, count, **pool):
        p = {"country": "US", "type": "DID", "count": count, "numbers": pins}
        p.update(pool)
        targets = {"support": {"arn": self.a, "quota": 100, "pools": {"main": p}}}
        return targets

    def test_pin_in_inventory_is_claimed_by_number(self):
        pin = self.inventory(5)[-1]
        cnlib.write_yaml(self.yaml, self.fake, self.pin_yaml([pin], 2))
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 0, r.stderr)
        held = self.on(self.a)
        self.assertIn(pin, held)
        self.assertEqual(len(held), 2)
        claims = [q["body"]["PhoneNumber"] for q in self.ops("ClaimPhoneNumber")]
        self.assertEqual(claims.count(pin), 1)
        self.assertEqual(len(claims), 2, claims)

    def test_pin_on_another_target_is_moved(self):
        cnlib.write_yaml(self.yaml, self.fake, {"sales": {"arn": self.b, "pools": {
            "main": {"country": "US", "type": "DID", "count": 1}}}})
        self.once("--wait", "30s", check=0)
        pin = list(self.on(self.b))[0]
        self.fake.reset()
        targets = self.pin_yaml([pin], 1)
        targets["sales"] = {"arn": self.b, "pools": {"main": {"country": "US", "type": "DID", "count": 0}}}
        cnlib.write_yaml(self.yaml, self.fake, targets)
        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(pin, self.on(self.a))
        self.assertEqual(self.on(self.a)[pin]["tags"].get(TAG), "support/main")
        calls = self.calls()
        self.assertEqual(calls.get("UpdatePhoneNumber", 0), 1, calls)
        self.assertEqual(calls.get("ClaimPhoneNumber", 0), 0, calls)
        self.assertIn("Moved %s" % pin, r.stderr)

    def test_pin_moved_away_by_someone_else_is_moved_back(self):
        cnlib.write_yaml(self.yaml, self.fake, {"sales": {"arn": self.b, "pools": {
            "main": {"country": "US", "type": "DID", "count": 0}}}})
        pin = self.inventory(3)[-1]
        targets = self.pin_yaml([pin], 1)
        targets["sales"] = {"arn": self.b, "pools": {"main": {"country": "US", "type": "DID", "count": 0}}}
        cnlib.write_yaml(self.yaml, self.fake, targets)
        self.once("--wait", "30s", check=0)
        self.assertIn(pin, self.on(self.a))
        self.fake.admin("POST", "/admin/move", {"phone_number": pin, "target_arn": self.b})
        self.fake.reset()
        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(pin, self.on(self.a))
        self.assertIn("Pinned number %s of support/main was moved to %s" % (pin, self.b), r.stderr)
        calls = self.calls()
        self.assertEqual(calls.get("UpdatePhoneNumber", 0), 1, calls)
        self.assertEqual(calls.get("ClaimPhoneNumber", 0), 0, calls)
        self.assertEqual(calls.get("ReleasePhoneNumber", 0), 0, calls)

    def test_pin_taken_by_someone_else_waits_an_hour(self):
        pin, other = self.inventory(2)
        self.fake.admin("POST", "/admin/steal", {"phone_number": pin})
        cnlib.write_yaml(self.yaml, self.fake, self.pin_yaml([pin], 2))
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertEqual(r.stderr.count("Pinned number %s" % pin), 1, r.stderr)
        self.assertIn("quotas increase form", r.stderr)
        st = json.loads(self.status("--json").stdout)
        self.assertEqual([(p["phone_number"], p["state"]) for p in st["pins"]], [(pin, "unavailable")])
        self.assertEqual(st["pools"][0]["pins_missing"], 1)
        held = self.on(self.a)
        self.assertNotIn(pin, held)
        self.assertEqual(len(held), 1, "the pool's other slot is filled")
        # Right after: the pin is not tried again, nothing is logged again.
        self.fake.reset()
        r = self.once("--wait", "10s")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertEqual([q for q in self.ops("ClaimPhoneNumber")], [])
        self.assertNotIn("Pinned number %s" % pin, r.stderr)
        # An hour later it is tried again (still taken: the same episode).
        self.fake.clock(3700)
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+3700s")
        r = self.once("--wait", "10s", env=env)
        self.assertEqual([q["body"]["PhoneNumber"] for q in self.ops("ClaimPhoneNumber")], [pin])
        self.assertNotIn("Pinned number %s" % pin, r.stderr)
        self.assertEqual(len(self.on(self.a)), 1, "never replaced by a searched number")

    def test_pinned_claim_failed_past_its_window_is_not_replaced(self):
        pin = self.inventory(3)[-1]
        self.fake.config(fail_claims=[{"phone_number": pin, "times": 1000}])
        cnlib.write_yaml(self.yaml, self.fake, self.pin_yaml([pin], 1))
        r = self.once("--wait", "10s")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.fake.clock(25 * 3600)
        self.fake.reset()
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+25h")
        r = self.once("--wait", "10s", env=env)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("<3>", r.stderr.split("Pinned number %s" % pin)[0].splitlines()[-1] + "<3>")
        self.assertIn("could not be claimed within its one-day retry window", r.stderr)
        claims = [q["body"]["PhoneNumber"] for q in self.ops("ClaimPhoneNumber")]
        self.assertEqual(set(claims) - {pin}, set(), "no other number replaces a pin")
        self.assertEqual(self.calls().get("SearchAvailablePhoneNumbers", 0), 0)

    def test_lowering_count_never_releases_a_pin(self):
        pin = self.inventory(4)[-1]
        cnlib.write_yaml(self.yaml, self.fake, self.pin_yaml([pin], 3))
        self.once("--wait", "30s", check=0)
        self.assertEqual(len(self.on(self.a)), 3)
        targets = self.pin_yaml([pin], 1)
        targets["support"].update(release_excess=True, max_releases_per_pass=5)
        cnlib.write_yaml(self.yaml, self.fake, targets)
        self.fake.reset()
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(list(self.on(self.a)), [pin])
        released = [n["phone_number"] for n in self.fake.numbers(active=False) if n["released"]]
        self.assertEqual(len(released), 2)
        self.assertNotIn(pin, released)

    def test_count_zero_with_a_pin_is_refused(self):
        cnlib.write_yaml(self.yaml, self.fake, self.pin_yaml(["+12065550100"], 0))
        r = cnlib.run("--check-config", "-c", self.yaml, env=self.env)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("count", r.stderr)

    def test_pin_record_is_catalogued_in_the_journal(self):
        journal = cnlib.ensure_journald()
        if not journal:
            self.skipTest("no journald")
        pin = self.inventory(2)[0]
        self.fake.admin("POST", "/admin/steal", {"phone_number": pin})
        cnlib.write_yaml(self.yaml, self.fake, self.pin_yaml([pin], 1))
        since = cnlib.now_usec()
        r = cnlib.run("--once", "--wait", "10s", "-c", self.yaml, "--state-dir", self.state, "--log-target",
                      "journal", env=self.env)
        self.assertEqual(r.returncode, 75, r.stderr)
        recs = [x for x in cnlib.journal_records(since, MESSAGE_ID=PIN_ID) if x.get("PHONE_NUMBER") == pin]
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0]["PRIORITY"], "4")
        self.assertIn("quotas increase form", recs[0]["MESSAGE"])

    # -- crashes and a second instance -----------------------------------
    @cnlib.real_time
    def test_kill_during_moves_loses_none_and_moves_none_twice(self):
        self.fake.config(claim_delay=0.4)
        before = self.converge_on_a()
        self.two_pools(self.t, previous_arns=[self.a])
        rng = random.Random(14)
        for _ in range(20):
            p = subprocess.Popen(cnlib.daemon_cmd("--once", "--wait", "60s", "-c", self.yaml, "--state-dir",
                                                  self.state, "--log-target", "console"),
                                 env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.05, 1.2))
            p.send_signal(signal.SIGKILL)
            p.wait()
        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.on(self.t)
        self.assertEqual(sorted(after), sorted(before), "every number on the TDG, none lost")
        for phone, n in after.items():
            self.assertEqual(n.get("moves"), 1, "%s moved more than once" % phone)
        calls = self.calls()
        self.assertEqual(calls.get("ClaimPhoneNumber", 0), 0, calls)
        self.assertEqual(calls.get("ReleasePhoneNumber", 0), 0, calls)

    def test_two_instances_during_a_migration(self):
        self.fake.config(claim_delay=0.3)
        before = self.converge_on_a()
        self.two_pools(self.t, previous_arns=[self.a])
        other = os.path.join(self.tmp, "state-b")
        # The second instance starts from the same history (a copy of the
        # state), as a standby of the first would.
        subprocess.run(["cp", "-a", self.state, other], check=True)
        cmd = lambda st: cnlib.daemon_cmd("--once", "--wait", "60s", "-c", self.yaml, "--state-dir", st,
                                          "--log-target", "console")
        ps = [subprocess.Popen(cmd(st), env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
              for st in (self.state, other)]
        for p in ps:
            p.communicate(timeout=120)
        after = self.on(self.t)
        self.assertEqual(sorted(after), sorted(before))
        for phone, n in after.items():
            self.assertEqual(n.get("moves"), 1, "%s moved twice" % phone)
        self.assertEqual(self.calls().get("ClaimPhoneNumber", 0), 0)

    def test_failed_move_counts_as_moving_and_is_retried(self):
        before = self.converge_on_a()
        self.fake.config(fail_next_moves=1)
        self.two_pools(self.t, previous_arns=[self.a])
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("moving", r.stderr)
        self.assertEqual(len(self.on(self.t)), 19)
        self.assertEqual(self.calls().get("ClaimPhoneNumber", 0), 0, "no replacement for a moving number")
        self.fake.clock(120)
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+2m")
        r = self.once("--wait", "30s", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(self.on(self.t)), sorted(before))


if __name__ == "__main__":
    cnlib.main()
