"""Two simulated years of churn (CONNECT_NUMBERS_CLOCK_OFFSET, 15 days per
run): the pool grown and shrunk with release_excess, claims failing and
given up, numbers taken away to another target. The state keeps only what
can still matter (daemon/prune.c): its size follows the numbers held, not
the history, and so does the memory of a run."""
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"
DAY = 86400
STEP_DAYS = 15
STEPS = 2 * 365 // STEP_DAYS + 1          # 49 runs over two years
COUNTS = [6, 10, 4, 8, 3, 9, 5]


def peak_anon(proc, out):
    """Samples RssAnon (KiB) of proc until it exits; the peak in out[0]."""
    while proc.poll() is None:
        try:
            with open("/proc/%d/status" % proc.pid) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        out[0] = max(out[0], int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)


class Soak(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.1", "--rate", "0", "--burst", "1000", "--quota", "1000")

    @cnlib.real_time
    def test_two_years_of_churn(self):
        inst = cnlib.instance_arn()
        elsewhere = cnlib.instance_arn()        # not in the YAML: numbers taken away go there
        state_file = os.path.join(self.state, "state.json")
        rows = []                               # (step, held, records, bytes, peak RssAnon KiB)
        ever = set()
        for step in range(STEPS):
            days = step * STEP_DAYS
            count = COUNTS[step % len(COUNTS)]
            cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": inst, "quota": 200, "release_excess": True,
                                                                "max_releases_per_pass": 10,
                                                                "pools": {"main": {"country": "US", "type": "DID",
                                                                                   "count": count}}}})
            self.fake.clock(days * DAY)
            held = [n for n in self.fake.numbers(inst) if (n.get("tags") or {}).get(TAG) == "support/main"
                    and n["status"] == "CLAIMED"]
            if step % 4 == 3 and held:
                self.fake.admin("POST", "/admin/move", {"phone_number": held[0]["phone_number"],
                                                        "target_arn": elsewhere})
            self.fake.config(fail_next_claims=1 if step % 3 == 1 else 0)
            env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+%dh" % (days * 24))
            p = subprocess.Popen([cnlib.DAEMON, "--once", "-c", self.yaml, "--state-dir", self.state,
                                  "--log-target", "console", "--wait", "20s"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            peak = [0]
            sampler = threading.Thread(target=peak_anon, args=(p, peak), daemon=True)
            sampler.start()
            _, err = p.communicate(timeout=120)
            sampler.join()
            self.assertIn(p.returncode, (0, 75), "day %d: %s" % (days, err[-3000:]))
            held = [n for n in self.fake.numbers(inst) if (n.get("tags") or {}).get(TAG) == "support/main"
                    and n["status"] == "CLAIMED"]
            ever |= {q["body"]["PhoneNumber"] for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"}
            with open(state_file) as f:
                records = sum(1 for _ in f) - 1
            rows.append((step, len(held), records, os.path.getsize(state_file), peak[0]))
        if os.environ.get("SOAK_KEEP"):         # SOAK_KEEP=path: a copy of the last state file
            shutil.copyfile(state_file, os.environ["SOAK_KEEP"])
        table = "\n".join("day %3d: held %2d, records %3d, %6d bytes, peak RssAnon %d KiB" % (
            r[0] * STEP_DAYS, r[1], r[2], r[3], r[4]) for r in rows)
        sys.stderr.write("\n" + table + "\n")
        # History is much longer than what is held...
        self.assertGreater(len(ever), 100, table)
        # ...but the state holds what is held, plus what ended in the last
        # two runs (kept PRUNE_RETENTION_SEC, 7 days, once seen ended).
        for step, held, records, _, _ in rows:
            self.assertLessEqual(records, held + 16, "day %d\n%s" % (step * STEP_DAYS, table))
        # The second year's files are no bigger than the first year's second
        # half (the churn ledger is full by then: 180 days), nor its memory.
        first = [r for r in rows if 180 <= r[0] * STEP_DAYS < 365]
        second = [r for r in rows if r[0] * STEP_DAYS >= 365]
        self.assertLessEqual(max(r[3] for r in second), 1.25 * max(r[3] for r in first), table)
        self.assertLessEqual(max(r[4] for r in second), max(r[4] for r in first) + 512, table)


if __name__ == "__main__":
    cnlib.main()
