"""Drift: a description, tag or contact flow changed in the YAML is put back
on the numbers (described because their pool settings changed); a pool
with no available numbers is logged once with the catalogued id."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"


class Drift(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.1")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()

    def write(self, **pool):
        p = {"country": "US", "type": "DID", "count": 2}
        p.update(pool)
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "pools": {"main": p}}})

    def test_description_tags_flow_put_back(self):
        self.write(description="Old text", tags={"team": "a", "cost": "1"})
        self.once("--wait", "20s", check=0)
        self.write(description="New text", tags={"team": "b"}, contact_flow="7c1a8bde-0000-4000-8000-000000000001")
        self.fake.reset()
        r = self.once("--wait", "20s")
        self.assertIn(r.returncode, (0, 75), r.stderr)
        r = self.once("--wait", "20s", "-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        for n in self.fake.numbers(self.inst):
            self.assertEqual(n["description"], "New text")
            self.assertEqual(n["tags"].get("team"), "b")
            self.assertNotIn("cost", n["tags"], "a tag key this service set and the YAML dropped is removed")
            self.assertEqual(n["tags"].get(TAG), "support/main")
            self.assertEqual(n["contact_flow"], "7c1a8bde-0000-4000-8000-000000000001")
        calls = self.calls()
        self.assertEqual(calls.get("UpdatePhoneNumberMetadata", 0), 2)
        self.assertEqual(calls.get("AssociatePhoneNumberContactFlow", 0), 2)
        self.assertGreaterEqual(calls.get("TagResource", 0), 2)
        self.assertGreaterEqual(calls.get("UntagResource", 0), 2)
        self.fake.reset()
        self.once(check=0)
        self.assertEqual({k: v for k, v in self.calls().items() if v}, {"ListPhoneNumbersV2": 1})

    def test_flow_associated_in_the_claiming_pass(self):
        self.write(contact_flow="7c1a8bde-0000-4000-8000-000000000002")
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 0, r.stderr)
        nums = self.fake.numbers(self.inst)
        self.assertEqual(len(nums), 2)
        for n in nums:
            self.assertEqual(n["contact_flow"], "7c1a8bde-0000-4000-8000-000000000002")

    def test_no_numbers_logged_once(self):
        self.write(prefix="+1999")
        self.fake.config(no_inventory=[{"country": "US", "type": "DID", "prefix": "+1999"}])
        r1 = self.once()
        self.assertEqual(r1.returncode, 75)
        self.assertIn("No phone numbers available", r1.stderr)
        self.assertIn("service quotas increase form", r1.stderr)
        r2 = self.once()
        self.assertEqual(r2.returncode, 75)
        self.assertNotIn("No phone numbers available", r2.stderr, "logged once, not every pass")


if __name__ == "__main__":
    cnlib.main()
