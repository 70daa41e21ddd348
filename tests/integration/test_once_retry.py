"""`--once --wait D` does what falls due before D ends: a FAILED claim whose
retry (a minute after the failure) falls due inside the wait is retried in
the same run, which then exits 0; one whose retry falls after it is left
for the next run (exit 75)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

POOL = "support/main"


class OnceRetry(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.2")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": 2}}}})

    def held(self):
        return [n for n in self.fake.numbers(self.inst) if n["tags"].get("connect-numbers:pool") == POOL
                and n["status"] == "CLAIMED"]

    def claims_of(self, phone):
        return [q for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"
                and (q["body"] or {}).get("PhoneNumber") == phone]

    @cnlib.real_time
    def test_failed_claim_retried_within_wait(self):
        self.fake.config(fail_next_claims=1)
        r = self.once("--wait", "90s", timeout=150)
        self.assertEqual(r.returncode, 0, "the retry fell due 60 s into a 90 s wait: " + r.stderr[-3000:])
        failed = [n["phone_number"] for n in self.fake.numbers(self.inst, active=False) if n["status"] == "FAILED"]
        held = self.held()
        self.assertEqual(len(held), 2)
        # The FAILED number itself was claimed again (the fake's record of it
        # is CLAIMED now), with a second claim call.
        retried = [n["phone_number"] for n in held if len(self.claims_of(n["phone_number"])) == 2]
        self.assertEqual(len(retried), 1, "one number claimed twice: %s (FAILED now: %s)" % (retried, failed))
        self.assertIn("falls due before --wait ends", r.stderr)

    def test_retry_after_the_wait_is_left_for_the_next_run(self):
        self.fake.config(fail_next_claims=1)
        r = self.once("--wait", "10s")
        self.assertEqual(r.returncode, 75, r.stderr[-3000:])
        self.assertEqual(len(self.held()), 1)
        self.assertNotIn("falls due before --wait ends", r.stderr)


if __name__ == "__main__":
    cnlib.main()
