"""A fresh converge over two targets (one a traffic distribution group) and
three pools; then a steady pass that only lists; --plan before and after;
--status; exit statuses."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402


class Converge(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.3")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        self.tdg = cnlib.tdg_arn()
        cnlib.write_yaml(self.yaml, self.fake, {
            "support-us": {"arn": self.inst, "quota": 10, "pools": {
                "main": {"country": "US", "type": "DID", "count": 3, "prefix": "+1206",
                         "description": "Support main line", "tags": {"team": "support"}},
                "tollfree": {"country": "US", "type": "TOLL_FREE", "count": 1},
            }},
            "global": {"arn": self.tdg, "pools": {
                "uk": {"country": "GB", "type": "DID", "count": 2},
            }},
        })

    def test_converge_then_steady(self):
        p = self.plan("--json", check=75)
        plan = json.loads(p.stdout)
        claims = [s for s in plan["steps"] if s["action"] == "claim"]
        self.assertEqual(len(claims), 6, p.stdout)
        for s in claims:
            for k in ("action", "target", "target_arn", "pool"):
                self.assertIn(k, s)
        self.assertEqual(self.mutating_calls(), {}, "--plan must not change anything")

        r = self.once("--wait", "60s")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        inst = self.fake.numbers(self.inst)
        tdg = self.fake.numbers(self.tdg)
        self.assertEqual(len(inst), 4)
        self.assertEqual(len(tdg), 2)
        for n in inst + tdg:
            self.assertEqual(n["status"], "CLAIMED")
        main = [n for n in inst if n["tags"].get("connect-numbers:pool") == "support-us/main"]
        self.assertEqual(len(main), 3)
        for n in main:
            self.assertTrue(n["phone_number"].startswith("+1206"), n)
            self.assertEqual(n["description"], "Support main line")
            self.assertEqual(n["tags"].get("team"), "support")
        self.assertEqual(len([n for n in tdg if n["tags"].get("connect-numbers:pool") == "global/uk"]), 2)
        self.assert_no_validation_failures()

        # Steady: one list call per target, nothing else.
        self.fake.reset()
        r = self.once(check=0)
        calls = {k: v for k, v in self.calls().items() if v}
        self.assertEqual(calls, {"ListPhoneNumbersV2": 2}, r.stderr)

        self.fake.reset()
        p = self.plan("--json", check=0)
        plan = json.loads(p.stdout)
        self.assertEqual([s for s in plan["steps"] if not s["action"].startswith("report")], [])
        self.assertEqual(self.mutating_calls(), {})

        st = self.status("--json")
        status = json.loads(st.stdout)
        pools = {(x["target"], x["pool"]): x for x in status["pools"]}
        self.assertEqual(pools[("support-us", "main")]["claimed"], 3)
        self.assertEqual(pools[("support-us", "main")]["desired"], 3)
        self.assertEqual(pools[("global", "uk")]["claimed"], 2)
        text = self.status().stdout
        self.assertIn("support-us", text)


if __name__ == "__main__":
    cnlib.main()
