"""Bounded work on large or hostile accounts: describes handed to the client
a window at a time (memory does not grow with the number of unknown
numbers), repeated failures folded into one record with a count, the
progress of a long first pass saved as it goes, NextToken cycles and the
per-target cap ending a listing at once with the target left alone for the
pass. Memory is read from /proc (RssAnon) while the real binary runs."""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"


def rss_anon_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Bounds(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.1")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        self.fake.config(default_quota=1000000, rate=5000, burst=5000)

    def write(self, count=1, rate=1000, extra=""):
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "pools": {
            "main": {"country": "US", "type": "DID", "count": count}}}}, rate=rate, burst=rate, extra=extra)

    def seed(self, n, tagged=False):
        self.fake.admin("POST", "/admin/seed", {"generate": {
            "target_arn": self.inst, "country": "US", "type": "DID", "count": n,
            "tags": {TAG: "support/other"} if tagged else {}}})

    def run_sampled(self, *args, stop_after=None, timeout=600):
        """Runs the daemon, sampling RssAnon every 20 ms; SIGTERM after
        stop_after seconds if given. Returns (returncode, stderr, peak KiB)."""
        cmd = cnlib.daemon_cmd(*args, "-c", self.yaml, "--state-dir", self.state, "--log-target", "console")
        err = open(os.path.join(self.tmp, "daemon.err"), "w+")
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=err)
        peak, start = 0, time.time()
        while proc.poll() is None:
            peak = max(peak, rss_anon_kib(proc.pid))
            if stop_after is not None and time.time() - start > stop_after:
                proc.send_signal(signal.SIGTERM)
                stop_after = None
            if time.time() - start > timeout:
                proc.kill()
            time.sleep(0.02)
        err.seek(0)
        text = err.read()
        err.close()
        return proc.returncode, text, peak

    def test_describe_failures_fold_into_one_record(self):
        self.seed(300)
        self.write(count=0)
        self.fake.config(faults={"error500": 1.0, "ops": ["DescribePhoneNumber"]})
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 75, r.stderr)
        lines = [l for l in r.stderr.splitlines() if "describing a number" in l.lower() and "more calls" not in l]
        self.assertEqual(len(lines), 1, "\n".join(lines[:5]))
        self.assertRegex(r.stderr, r"299 more calls failed the same way \(describing a number")
        self.assertGreaterEqual(self.calls().get("DescribePhoneNumber", 0), 300)

    @cnlib.real_time
    def test_first_pass_progress_survives_a_kill(self):
        # 3000 unknown numbers at 40 describes/s: about 75 s of describing.
        # The progress is saved every 30 s; a kill after 40 s keeps it.
        self.seed(3000)
        self.write(count=0, rate=40)
        cmd = cnlib.daemon_cmd("--once", "--wait", "5m", "-c", self.yaml, "--state-dir", self.state,
                               "--log-target", "console")
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(40)
        self.assertIsNone(proc.poll())
        described = self.calls().get("DescribePhoneNumber", 0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertGreater(described, 1000)
        state = cnlib.read_state(self.state)
        known = [n for n in state["numbers"] if n.get("phase") not in (None, "unknown")]
        self.assertGreaterEqual(len(known), 900, "described before the kill: %d" % described)
        # The next pass does not describe those again.
        self.fake.reset()
        self.write(count=0, rate=1000)
        self.once("--wait", "2m", check=0)
        self.assertLessEqual(self.calls().get("DescribePhoneNumber", 0), 3000 - len(known))

    def test_next_token_cycle_ends_the_listing_at_once(self):
        self.seed(2500)
        self.write(count=3)
        self.fake.config(list_token_cycle=2)
        rc, err, peak = self.run_sampled("--once", "--wait", "30s", timeout=120)
        self.assertEqual(rc, 75, err[-3000:])
        lists = self.calls().get("ListPhoneNumbersV2", 0)
        self.assertLessEqual(lists, 4, err[-2000:])             # A, B, then A again: stop
        self.assertIn("NextToken", err)
        self.assertIn("support", err)
        # Unknown for the pass: no claim, no search, no release.
        for op in ("ClaimPhoneNumber", "SearchAvailablePhoneNumbers", "ReleasePhoneNumber"):
            self.assertEqual(self.calls().get(op, 0), 0, op)
        self.assertLess(peak, 64 * 1024, "peak RssAnon %d KiB" % peak)
        p = self.plan("--json", check=75)
        self.assertIn("report_unknown", p.stdout)

    def test_cap_makes_the_target_unknown(self):
        self.seed(1500)
        self.write(count=5, extra="max_numbers_per_target: 1000")
        r = self.once("--wait", "10s")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("more than 1000 numbers", r.stderr)
        for op in ("ClaimPhoneNumber", "SearchAvailablePhoneNumbers", "DescribePhoneNumber"):
            self.assertEqual(self.calls().get(op, 0), 0, op)
        # Raised, the same account converges as usual.
        self.fake.reset()
        self.write(count=0, extra="max_numbers_per_target: 2000")
        r = self.once("--wait", "2m")
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])

    @cnlib.real_time
    def test_first_pass_of_100k_numbers_stays_small(self):
        self.seed(100000)
        self.write(count=0, rate=1000)
        # Listing 100 pages and the first thousands of describes: memory is
        # flat from there on (a window of describes, not 100,000 queued).
        rc, err, peak = self.run_sampled("--once", "--wait", "5m", stop_after=25)
        self.assertIn(rc, (0, 75), err[-3000:])
        self.assertGreater(self.calls().get("DescribePhoneNumber", 0), 2000, err[-2000:])
        print("100k first pass: peak RssAnon %.1f MiB" % (peak / 1024.0), file=sys.stderr)
        self.assertLess(peak, 64 * 1024, "peak RssAnon %d KiB" % peak)


if __name__ == "__main__":
    cnlib.main()
