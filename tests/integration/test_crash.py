"""kill -9 at twenty random moments of a converge (alternately a --once
and the service), restarting each time, with one claim that ends FAILED
on the way. Never more than `count` held at any kill; at the end exactly
`count`, none claimed twice, and the FAILED number claimed again inside
its window (not replaced), its first-failure time unchanged by restarts.
CRASH_SEED=N replays one sequence of kill moments."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"
KILLS = 20
COUNT = 10


class Crash(cnlib.DaemonTest):
    # Claims spread out: 1 s IN_PROGRESS, 4 calls/s per operation.
    fake_args = ("--claim-delay", "1.0", "--rate", "4", "--burst", "4", "--quota", "50")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 30, "pools": {
            "main": {"country": "US", "type": "DID", "count": COUNT}}}}, rate=4, burst=4)
        self.seed = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 30))
        self.rng = random.Random(self.seed)

    def ctx(self, msg):
        return "%s (CRASH_SEED=%d to replay)" % (msg, self.seed)

    def held(self):
        return [n for n in self.fake.numbers(self.inst) if (n.get("tags") or {}).get(TAG) == "support/main"]

    def failed_in_state(self):
        r = self.status("--json", check=None)
        self.assertEqual(r.returncode, 0, self.ctx("--status after a kill: %s" % r.stderr))
        st = json.loads(r.stdout)
        return {f["phone_number"]: f for f in st.get("failed_claims", []) if f.get("phone_number")}

    def test_kill9_at_random_moments(self):
        failed_phone = None
        first_failure = None
        log = []
        for i in range(KILLS):
            if i == 0:
                # The first claim of the run ends FAILED, mid-converge.
                self.fake.config(fail_next_claims=1)
            service = i % 2 == 1
            args = ["-c", self.yaml, "--state-dir", self.state, "--log-target", "console"]
            if not service:
                args = ["--once", "--wait", "1m"] + args
            p = subprocess.Popen(cnlib.daemon_cmd(*args), env=self.env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
            self.procs.append(p)
            delay = self.rng.uniform(0.05, 2.5)
            time.sleep(delay)
            alive = p.poll() is None
            p.send_signal(signal.SIGKILL)
            _, err = p.communicate(timeout=30)
            log.append("%s %.2fs%s" % ("service" if service else "once", delay, "" if alive else " (had exited)"))
            if not alive:
                self.assertIn(p.returncode, (0, 75), self.ctx("run %d exited %d before its kill:\n%s" % (
                    i, p.returncode, err[-3000:])))
            for mark in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
                self.assertNotIn(mark, err, self.ctx("sanitizer report in run %d" % i))

            held = self.held()
            self.assertLessEqual(len(held), COUNT, self.ctx("more than count held after kill %d (%s): %s" % (
                i, log, sorted(n["phone_number"] for n in held))))
            if failed_phone is None:
                bad = [n for n in self.fake.numbers(self.inst, active=False) if n["status"] == "FAILED"]
                if bad:
                    failed_phone = bad[0]["phone_number"]
            # Once the state records the failure, its start never moves.
            if failed_phone is not None:
                f = self.failed_in_state().get(failed_phone)
                if f is not None:
                    if first_failure is None:
                        first_failure = f["first_failure"]
                    self.assertEqual(f["first_failure"], first_failure,
                                     self.ctx("the FAILED number's window start moved after kill %d" % i))
                    self.assertFalse(f.get("expired"), self.ctx("window expired after a few seconds"))

        cfg = self.fake.admin("GET", "/admin/config")
        self.assertEqual(cfg.get("fail_next_claims"), 0, self.ctx("no claim was made after the FAILED injection"))
        self.assertIsNotNone(failed_phone, self.ctx("the injected FAILED claim never showed"))

        # A retry of a FAILED number waits for its backoff (a minute after
        # the failure is seen): travel two minutes at a time, well inside
        # the one-day window, and finish with --once.
        shutil.copy(os.path.join(self.state, "state.json"), os.path.join(self.tmp, "state-before-final.json"))
        codes, r = [], None
        for k in range(1, 5):
            self.fake.clock(120 * k)
            env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+%ds" % (120 * k))
            r = self.once("--wait", "1m", env=env, timeout=180)
            codes.append(r.returncode)
            self.assertIn(r.returncode, (0, 75), self.ctx(r.stderr[-3000:]))
            if r.returncode == 0:
                break
        self.assertEqual(codes[-1], 0, self.ctx("final --once did not converge: %s; kills %s; last stderr:\n%s" % (
            codes, log, r.stderr[-3000:])))

        held = self.held()
        phones = sorted(n["phone_number"] for n in held)
        self.assertEqual(len(held), COUNT, self.ctx("kills: %s; held %s" % (log, phones)))
        self.assertEqual(len(set(phones)), COUNT, self.ctx("a number held twice"))
        self.assertTrue(all(n["status"] == "CLAIMED" for n in held))
        self.assertIn(failed_phone, phones, self.ctx("the FAILED number was replaced instead of claimed again"))
        every = self.fake.numbers(self.inst, active=False)
        self.assertEqual(sorted(n["phone_number"] for n in every), phones,
                         self.ctx("a number was claimed and then abandoned"))
        for n in every:
            want = 2 if n["phone_number"] == failed_phone else 1
            self.assertEqual(n["claims"], want, self.ctx("%s claimed %d times" % (n["phone_number"], n["claims"])))
        self.assertEqual(self.failed_in_state(), {}, self.ctx("a failed claim is still recorded after convergence"))
        self.assert_no_validation_failures()


if __name__ == "__main__":
    cnlib.main()
