"""Faults on the wire: throttling, 5xx, dropped and truncated answers and
slow calls on every operation, then a claim that is applied but whose
answer never arrives. Repeated --once passes must never crash, must end
with exactly `count` numbers, none claimed twice, and every request the
daemon sent must be one the real API would accept."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
                   "==ERROR", "Segmentation fault")
TAG = "connect-numbers:pool"
MAX_RUNS = 12


class Faults(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.3", "--rate", "20", "--burst", "20", "--quota", "50")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()

    def config(self, count):
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 20, "pools": {
            "main": {"country": "US", "type": "DID", "count": count}}}}, rate=20, burst=20)

    def held(self):
        return [n for n in self.fake.numbers(self.inst) if (n.get("tags") or {}).get(TAG) == "support/main"]

    def converge(self, count, wait="20s"):
        """--once until exit 0; every run must end 0 or 75, with no sanitizer report."""
        codes = []
        for _ in range(MAX_RUNS):
            r = self.once("--wait", wait, timeout=120)
            codes.append(r.returncode)
            self.assertIn(r.returncode, (0, 75), "run %d crashed or failed hard:\n%s" % (len(codes), r.stderr[-4000:]))
            for mark in SANITIZER_MARKS:
                self.assertNotIn(mark, r.stderr, "sanitizer report in run %d" % len(codes))
            held = self.held()
            self.assertLessEqual(len(held), count, "more than count held after run %d: %s" % (
                len(codes), sorted(n["phone_number"] for n in held)))
            if r.returncode == 0:
                return codes
        self.fail("not converged after %d runs (exit codes %s)" % (MAX_RUNS, codes))

    def assert_exactly(self, count):
        held = self.held()
        phones = [n["phone_number"] for n in held]
        self.assertEqual(len(held), count, sorted(phones))
        self.assertEqual(len(set(phones)), count, "a number is held twice")
        self.assertTrue(all(n["status"] == "CLAIMED" for n in held), [(n["phone_number"], n["status"]) for n in held])
        # Every record the fake ever made for this target is one of the held
        # numbers, claimed once: no second claim, nothing claimed and lost.
        every = self.fake.numbers(self.inst, active=False)
        self.assertEqual(sorted(n["phone_number"] for n in every), sorted(phones),
                         "numbers claimed beyond the held ones")
        self.assertTrue(all(n["claims"] == 1 for n in every), [(n["phone_number"], n["claims"]) for n in every])
        self.assert_no_validation_failures()

    def test_random_faults_converge(self):
        count = 8
        self.config(count)
        self.fake.config(faults={"throttle": 0.3, "error500": 0.1, "drop": 0.05, "truncate": 0.1, "slow": 0.05,
                                 "slow_seconds": 1})
        self.converge(count)
        faults = self.fake.calls().get("faults", {})
        kinds = {k for per_op in faults.values() for k in per_op}
        self.assertTrue({"throttle", "error500"} <= kinds, "the faults did not fire: %s" % faults)
        self.assert_exactly(count)
        # The faults off: the next pass changes nothing.
        self.fake.config(faults={})
        self.fake.reset()
        self.once("--wait", "10s", check=0)
        self.assertEqual(self.mutating_calls(), {})
        self.assert_exactly(count)

    def test_claim_applied_answer_dropped(self):
        count = 6
        self.config(count)
        # Three claims are applied by the fake and their connection is then
        # dropped: the daemon cannot know the outcome and must replay the
        # same ClientToken, getting the same number back.
        self.fake.config(fault_next=[{"fault": "drop_after", "op": "ClaimPhoneNumber", "count": 3}],
                         faults={"drop_after": 0.2, "ops": ["ClaimPhoneNumber"]})
        self.converge(count)
        faults = self.fake.calls().get("faults", {})
        self.assertGreaterEqual(faults.get("ClaimPhoneNumber", {}).get("drop_after", 0), 3, faults)
        self.assert_exactly(count)
        # The replays carried the dropped claims' tokens: some token was sent twice.
        tokens = [q["client_token"] for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"]
        self.assertLess(len(set(tokens)), len(tokens), "no ClientToken was replayed after a dropped answer")


if __name__ == "__main__":
    cnlib.main()
