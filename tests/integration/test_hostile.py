"""Answers a correct Amazon Connect never gives, from a broken or hostile
endpoint: the service must not act on them. Search results that do not fit
the pool (another country or type, or outside the prefix) are never
claimed."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"


class SearchMisfit(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.1")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        self.fake.config(default_quota=100)
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "pools": {
            "main": {"country": "US", "type": "DID", "count": 2, "prefix": "+1206"}}}})

    def claimed_numbers(self):
        return [r["body"]["PhoneNumber"] for r in self.fake.requests() if r["op"] == "ClaimPhoneNumber"]

    def check_never_claimed(self, label):
        self.fake.config(search_misfit={"country": "GB", "type": "TOLL_FREE", "label": label})
        r = self.once("--wait", "10s")
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.claimed_numbers(), [], r.stderr)
        self.assertEqual(self.fake.numbers(self.inst), [])
        self.assertGreaterEqual(self.calls().get("SearchAvailablePhoneNumbers", 0), 1)
        lines = [l for l in r.stderr.splitlines() if "skipped, never claimed" in l]
        self.assertEqual(len(lines), 1, r.stderr)            # said once, not per number
        self.assertIn("support/main", lines[0])
        self.assertIn("+1206", lines[0])
        # Once the endpoint answers correctly, the pool converges.
        self.fake.config(search_misfit=None)
        r = self.once("--wait", "10s")
        self.assertEqual(r.returncode, 0, r.stderr)
        held = [n["phone_number"] for n in self.fake.numbers(self.inst) if n["tags"].get(TAG) == "support/main"]
        self.assertEqual(len(held), 2)
        self.assertTrue(all(n.startswith("+1206") for n in held), held)

    def test_other_country_labelled_as_it_is(self):
        self.check_never_claimed("honest")

    def test_other_country_labelled_as_asked(self):
        # Labelled US DID, but outside the pool's +1206 prefix.
        self.check_never_claimed("as_asked")


if __name__ == "__main__":
    cnlib.main()
