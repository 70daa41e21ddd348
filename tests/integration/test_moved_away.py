"""A number moved to another target behind the service's back is no longer
its pool's: it is reported with where it went, never released, tagged or
untagged for the old pool, and the pool claims a replacement after the
report. Releases cannot be undone, so this is tested with release_excess
on as well as off."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"
MOVED_ID = "c8f7426e7d32423ba00b32c03464e7a7"


class MovedAway(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.1")

    def setUp(self):
        super().setUp()
        self.a = cnlib.instance_arn()
        self.b = cnlib.instance_arn()
        self.fake.config(default_quota=10000)

    def write(self, count, with_b=False, **target):
        t = {"arn": self.a, "quota": 100, "pools": {"main": {"country": "US", "type": "DID", "count": count}}}
        t.update(target)
        targets = {"support": t}
        if with_b:
            targets["sales"] = {"arn": self.b, "pools": {"main": {"country": "US", "type": "DID", "count": 0}}}
        cnlib.write_yaml(self.yaml, self.fake, targets)

    def ours_on(self, arn):
        return sorted(n["phone_number"] for n in self.fake.numbers(arn)
                      if n["tags"].get(TAG) == "support/main" and n["status"] == "CLAIMED")

    def converge_two_then_move_one(self, **target):
        self.write(2, **target)
        self.once("--wait", "20s", check=0)
        held = self.ours_on(self.a)
        self.assertEqual(len(held), 2)
        moved = held[-1]
        self.fake.admin("POST", "/admin/move", {"phone_number": moved, "target_arn": self.b})
        self.assertEqual(self.ours_on(self.b), [moved])
        self.fake.reset()
        return moved

    def requests_for(self, op, phone_id):
        return [r for r in self.fake.requests() if r["op"] == op and phone_id in (r.get("path") or "") +
                json.dumps(r.get("body"))]

    def test_lowered_count_with_release_excess_never_releases_the_moved_number(self):
        moved = self.converge_two_then_move_one(release_excess=True)
        moved_id = [n["id"] for n in self.fake.numbers(self.b) if n["phone_number"] == moved][0]
        since = cnlib.now_usec()
        # The pool is lowered to 1: Connect shows one number on A, which is
        # exactly what the pool wants; the moved one serves B now.
        self.write(1, release_excess=True)
        journal = cnlib.ensure_journald()
        r = cnlib.run("--once", "--wait", "20s", "-c", self.yaml, "--state-dir", self.state, "--log-target",
                      "journal" if journal else "console", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.calls().get("ReleasePhoneNumber", 0), 0, r.stderr)
        self.assertEqual(self.ours_on(self.b), [moved])
        for op in ("TagResource", "UntagResource", "UpdatePhoneNumberMetadata", "AssociatePhoneNumberContactFlow"):
            self.assertEqual(self.requests_for(op, moved_id), [], op)
        if journal:
            recs = cnlib.journal_records(since, MESSAGE_ID=MOVED_ID)
            rec = [x for x in recs if x.get("PHONE_NUMBER") == moved]
            self.assertEqual(len(rec), 1, recs)
            self.assertIn(self.b, rec[0]["MESSAGE"])
            self.assertEqual(rec[0]["PRIORITY"], "4")
        else:
            self.assertIn(moved, r.stderr)
            self.assertIn(self.b, r.stderr)
        # And again, with the count at 0 and nothing else on A: the moved
        # number is still never released.
        self.write(0, release_excess=True, max_releases_per_pass=5)
        self.fake.reset()
        self.once("--wait", "20s")
        self.once("--wait", "20s")
        released = [n["phone_number"] for n in self.fake.numbers() if n["released"]]
        self.assertNotIn(moved, released)
        self.assertEqual(self.ours_on(self.b), [moved])

    def test_pool_claims_a_replacement_after_the_report(self):
        moved = self.converge_two_then_move_one()
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.calls().get("ClaimPhoneNumber", 0), 1, r.stderr)
        held = self.ours_on(self.a)
        self.assertEqual(len(held), 2)
        self.assertNotIn(moved, held)
        # The report comes once, before the claim, in the pass's output.
        lines = r.stderr.splitlines()
        self.assertEqual(len([l for l in lines if moved in l and "moved" in l]), 1, r.stderr)
        report = next(i for i, l in enumerate(lines) if moved in l and "moved" in l)
        claimed = next(i for i, l in enumerate(lines) if "Claimed" in l)
        self.assertLess(report, claimed, r.stderr)
        # --plan keeps reporting it, where it went, as a report (exit 0).
        p = self.plan("--json", check=0)
        steps = [s for s in json.loads(p.stdout)["steps"] if s["action"] == "report_moved"]
        self.assertEqual([s.get("phone_number") for s in steps], [moved])
        st = json.loads(self.status("--json").stdout)
        self.assertIn("support", json.dumps(st))

    def test_moved_to_another_target_of_the_yaml(self):
        self.write(2, with_b=True)
        self.once("--wait", "20s", check=0)
        moved = self.ours_on(self.a)[-1]
        self.fake.admin("POST", "/admin/move", {"phone_number": moved, "target_arn": self.b})
        self.fake.reset()
        r = self.once("--wait", "20s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.ours_on(self.a)), 2)
        self.assertEqual(self.ours_on(self.b), [moved])
        self.assertEqual(self.calls().get("ReleasePhoneNumber", 0), 0)
        self.assertEqual(self.calls().get("TagResource", 0), 0, r.stderr)
        # On B it is reported, not counted for B, never taken.
        p = self.plan("--json", check=0)
        on_b = [s for s in json.loads(p.stdout)["steps"] if s.get("target") == "sales"]
        self.assertEqual([(s["action"], s.get("phone_number")) for s in on_b], [("report_orphan", moved)])

    def test_moved_back_counts_again(self):
        moved = self.converge_two_then_move_one()
        self.once("--wait", "20s", check=0)          # replacement claimed
        self.fake.admin("POST", "/admin/move", {"phone_number": moved, "target_arn": self.a})
        self.fake.reset()
        r = self.once("--wait", "20s", check=0)
        self.assertEqual(len(self.ours_on(self.a)), 3)
        self.assertEqual(self.calls().get("ClaimPhoneNumber", 0), 0)
        self.assertIn("excess", r.stderr.lower())


if __name__ == "__main__":
    cnlib.main()
