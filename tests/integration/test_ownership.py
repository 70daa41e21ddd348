"""Ownership: thousands of untagged numbers are never touched, adopt: true
takes matching untagged numbers oldest (lowest) first, release_excess on
and off, the per-pass cap, the churn guard, orphans reported."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"


class Ownership(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.1")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        self.fake.config(default_quota=10000)

    def write(self, pools, rate=50, **target):
        t = {"arn": self.inst, "quota": 100}
        t.update(target)
        t["pools"] = pools
        cnlib.write_yaml(self.yaml, self.fake, {"support": t}, rate=rate, burst=rate * 2)

    def ours(self, pool="main"):
        return [n for n in self.fake.numbers(self.inst) if n["tags"].get(TAG) == "support/" + pool]

    def test_untagged_numbers_untouched(self):
        self.fake.admin("POST", "/admin/seed", {"generate": {"target_arn": self.inst, "country": "US", "type": "DID",
                                                              "count": 2500, "tags": {}}})
        self.fake.config(rate=1000, burst=1000)
        self.write({"main": {"country": "US", "type": "DID", "count": 2}}, rate=500)
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.ours()), 2)
        calls = self.calls()
        for op in ("TagResource", "UntagResource", "ReleasePhoneNumber", "UpdatePhoneNumberMetadata"):
            self.assertEqual(calls.get(op, 0), 0, op)
        self.assertEqual(len(self.fake.numbers(self.inst)), 2502)
        # Steady: ceil(2502/1000) = 3 list calls, nothing per number.
        self.fake.reset()
        self.once(check=0)
        self.assertEqual({k: v for k, v in self.calls().items() if v}, {"ListPhoneNumbersV2": 3})

    def test_adopt_oldest_first_up_to_count(self):
        seeded = self.fake.admin("POST", "/admin/seed", {"numbers": [
            {"target_arn": self.inst, "phone_number": "+12065550103", "country": "US", "type": "DID"},
            {"target_arn": self.inst, "phone_number": "+12065550101", "country": "US", "type": "DID"},
            {"target_arn": self.inst, "phone_number": "+12065550102", "country": "US", "type": "DID"},
            {"target_arn": self.inst, "phone_number": "+18005550100", "country": "US", "type": "TOLL_FREE"},
        ]})
        self.assertEqual(len(seeded["numbers"]), 4)
        self.write({"main": {"country": "US", "type": "DID", "count": 2, "prefix": "+1206", "adopt": True}})
        p = self.plan("--json", check=75)
        actions = [(s["action"], s.get("phone_number")) for s in json.loads(p.stdout)["steps"]]
        self.assertIn(("adopt", "+12065550101"), actions)
        self.assertIn(("adopt", "+12065550102"), actions)
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(n["phone_number"] for n in self.ours()), ["+12065550101", "+12065550102"])
        self.assertEqual(self.calls().get("ClaimPhoneNumber", 0), 0)
        untouched = [n for n in self.fake.numbers(self.inst) if n["phone_number"] in ("+12065550103", "+18005550100")]
        self.assertEqual([n["tags"].get(TAG) for n in untouched], [None, None])

    def test_release_off_then_on_with_cap_and_churn(self):
        self.write({"main": {"country": "US", "type": "DID", "count": 4}})
        self.once("--wait", "20s", check=0)
        self.assertEqual(len(self.ours()), 4)
        # Lower the count: with release_excess false, only a report.
        self.write({"main": {"country": "US", "type": "DID", "count": 1}})
        r = self.once(check=0)
        self.assertEqual(self.calls().get("ReleasePhoneNumber", 0), 0)
        self.assertIn("excess", r.stderr.lower())
        # release_excess true: newest first, one per pass.
        self.write({"main": {"country": "US", "type": "DID", "count": 1}}, release_excess=True, quota=100)
        r = self.once(check=75)
        self.assertEqual(self.calls().get("ReleasePhoneNumber", 0), 1)
        self.assertIn("can never be claimed again", r.stderr)
        self.assertEqual(len(self.ours()), 3)
        # Churn: quota 2 -> at most 4 claims+releases in 180 days; 4 claims made already.
        self.write({"main": {"country": "US", "type": "DID", "count": 1}}, release_excess=True, quota=2)
        self.fake.reset()
        r = self.once()
        self.assertEqual(self.calls().get("ReleasePhoneNumber", 0), 0, r.stderr)
        self.assertIn("churn", r.stderr.lower())

    def test_orphans_reported_never_released(self):
        self.fake.admin("POST", "/admin/seed", {"numbers": [
            {"target_arn": self.inst, "phone_number": "+12065550111", "country": "US", "type": "DID",
             "tags": {TAG: "support/gone"}}]})
        self.write({"main": {"country": "US", "type": "DID", "count": 0}}, release_excess=True)
        r = self.once(check=0)
        self.assertIn("+12065550111", r.stderr)
        self.assertEqual(self.calls().get("ReleasePhoneNumber", 0), 0)
        p = self.plan("--json")
        self.assertIn("report_orphan", [s["action"] for s in json.loads(p.stdout)["steps"]])


if __name__ == "__main__":
    cnlib.main()
