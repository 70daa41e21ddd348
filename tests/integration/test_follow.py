"""Following claims costs one describe per claim (docs/design.md,
"Following claims"): with no latency learned yet, one claim probes and the
others wait for what it learns; a later run uses the latency the state
kept."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402


class Follow(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "2.0", "--rate", "0", "--burst", "1000", "--quota", "1000")

    def test_one_describe_per_claim(self):
        # The second run adds a target, so that the first one's numbers
        # need no describe: every describe follows a claim.
        targets = {}
        for name in ("first", "second"):
            targets[name] = {"arn": cnlib.instance_arn(), "quota": 100, "pools": {
                "main": {"country": "US", "type": "DID", "count": 12}}}
            cnlib.write_yaml(self.yaml, self.fake, targets)
            self.fake.reset()
            r = self.once("--wait", "1m")
            self.assertEqual(r.returncode, 0, r.stderr[-3000:])
            calls = self.calls()
            claims, describes = calls.get("ClaimPhoneNumber", 0), calls.get("DescribePhoneNumber", 0)
            self.assertEqual(claims, 12, calls)
            # At most one early look: the first claim of a run with a
            # latency learned looks at 0.8 of it, so that it can come down.
            self.assertLessEqual(describes, claims + 1, "%s run: %d describes for %d claims" % (
                name, describes, claims))


if __name__ == "__main__":
    cnlib.main()
