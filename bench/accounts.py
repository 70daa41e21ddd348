#!/usr/bin/env python3
"""accounts.py: do two accounts converge side by side? The fake Connect at
Amazon Connect's default limits (2 requests/s per operation, burst 5,
claims IN_PROGRESS for 3 s), sped up by a factor F, throttles each account
on its own buckets, as Connect does. One run converges 40 numbers in one
account (the chain's own credentials); the other 40 numbers in each of two
accounts, the second through STS AssumeRole (role_arn: with an external
id). Pacing is kept per account, region and operation, so the second run
should take about as long as the first: the goal is wall(two) / wall(one)
<= 1.15 (medians of --runs runs, each from empty against a fresh fake).
Two variants of the two-account run: both accounts want US DID numbers
(the pass shares one search feed per kind of number between all pools, and
deals it in turn, one number per pool and round), and the second account wants GB DID numbers
(its own feed), which isolates the pacing per account.

Writes bench/results/accounts.md and prints it. Standard library only;
reuses the integration tests' helpers (tests/integration/cnlib.py).
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import cnlib  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")
AWS_RATE, AWS_BURST, AWS_CLAIM_SEC = 2.0, 5, 3.0
ACCT_A, ACCT_B = "111122223333", "222233334444"
ROLE_B = "arn:aws:iam::%s:role/connect-numbers" % ACCT_B
GOAL = 1.15


def log(msg):
    sys.stderr.write("accounts: %s\n" % msg)
    sys.stderr.flush()


def converge(work, F, accounts, per_account, countries=("US", "US")):
    """Wall seconds of one --once --wait converge, scaled back by F, and
    the fake's throttled count."""
    rate, burst, claim_delay = AWS_RATE * F, int(AWS_BURST * F), AWS_CLAIM_SEC / F
    fake = cnlib.Fake(work, "--rate", str(rate), "--burst", str(burst), "--claim-delay", str(claim_delay),
                      "--quota", "1000")
    try:
        fake.config(roles={ROLE_B: {"external_id": "bench-b", "trusted": [ACCT_A]}})
        targets = {}
        for acct, country in zip(accounts, countries):
            t = {"arn": cnlib.instance_arn(account=acct), "quota": 100,
                 "pools": {"main": {"country": country, "type": "DID", "count": per_account}}}
            if acct != ACCT_A:
                t["role_arn"] = ROLE_B
                t["external_id"] = "bench-b"
            targets["t" + acct[:1]] = t
        yaml = os.path.join(work, "accounts.yaml")
        cnlib.write_yaml(yaml, fake, targets, interval="1h", rate=rate, burst=burst)
        env = cnlib.clean_env(fake, AWS_ENDPOINT_URL_STS=fake.info["endpoint_url"],
                              AWS_CA_BUNDLE=fake.info["ca_file"])
        t0 = time.monotonic()
        r = cnlib.run("--once", "--wait", "10m", "-c", yaml, "--state-dir", os.path.join(work, "state"),
                      "--log-target", "console", env=env, timeout=900)
        wall = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError("converge exited %d: %s" % (r.returncode, r.stderr[-2000:]))
        for t in targets.values():
            held = len(fake.numbers(t["arn"]))
            if held != per_account:
                raise RuntimeError("%s holds %d numbers, not %d" % (t["arn"], held, per_account))
        c = fake.calls()
        return wall * F, sum(c["throttled"].values()), c["calls"]
    finally:
        fake.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--factor", type=int, default=5, help="time scale F (default 5: the fake at 10/s burst 25)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each case (default 3); medians are compared")
    ap.add_argument("--numbers", type=int, default=40, help="numbers per account (default 40)")
    args = ap.parse_args()
    F = args.factor
    work = tempfile.mkdtemp(prefix="cn-bench-accounts-")
    try:
        one, two, twod, thr1, thr2, thr3, calls2 = [], [], [], [], [], [], None
        for i in range(args.runs):
            w, t, _ = converge(os.path.join(work, "one-%d" % i), F, [ACCT_A], args.numbers)
            one.append(w)
            thr1.append(t)
            log("one account, run %d: %.1f s (scaled), %d throttled" % (i + 1, w, t))
            w, t, calls2 = converge(os.path.join(work, "two-%d" % i), F, [ACCT_A, ACCT_B], args.numbers)
            two.append(w)
            thr2.append(t)
            log("two accounts, run %d: %.1f s (scaled), %d throttled" % (i + 1, w, t))
            w, t, _ = converge(os.path.join(work, "twod-%d" % i), F, [ACCT_A, ACCT_B], args.numbers, ("US", "GB"))
            twod.append(w)
            thr3.append(t)
            log("two accounts, distinct inventory, run %d: %.1f s (scaled), %d throttled" % (i + 1, w, t))
        m1, m2, m3 = statistics.median(one), statistics.median(two), statistics.median(twod)
        ratio, ratio_d = m2 / m1, m3 / m1
        lines = [
            "# Two accounts side by side",
            "",
            "`bench/accounts.py --factor %d --runs %d --numbers %d`, %s, %d CPUs. The fake at %g req/s per "
            "operation and account, burst %d, claims IN_PROGRESS %.2f s (Amazon Connect's defaults sped up "
            "%dx); times scaled back." % (F, args.runs, args.numbers, time.strftime("%Y-%m-%d %H:%M"),
                                          os.cpu_count(), AWS_RATE * F, int(AWS_BURST * F), AWS_CLAIM_SEC / F, F),
            "",
            "| case | wall (median) | runs | throttled calls |",
            "| --- | ---: | --- | ---: |",
            "| one account, %d numbers | %.1f s | %s | %d |" % (args.numbers, m1, ", ".join("%.1f" % x for x in one),
                                                               sum(thr1)),
            "| two accounts, %d US numbers each | %.1f s | %s | %d |" % (args.numbers, m2,
                                                                       ", ".join("%.1f" % x for x in two), sum(thr2)),
            "| two accounts, %d US + %d GB numbers | %.1f s | %s | %d |" % (
                args.numbers, args.numbers, m3, ", ".join("%.1f" % x for x in twod), sum(thr3)),
            "| **ratio two / one, same inventory** | **%.3f** | goal <= %.2f | %s |" % (
                ratio, GOAL, "met" if ratio <= GOAL else "NOT MET"),
            "| **ratio two / one, distinct inventory** | **%.3f** | goal <= %.2f | %s |" % (
                ratio_d, GOAL, "met" if ratio_d <= GOAL else "NOT MET"),
            "",
            "Calls of the last two-account run: %s." % ", ".join("%s %d" % kv for kv in sorted(calls2.items())
                                                                 if kv[1]),
        ]
        text = "\n".join(lines) + "\n"
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "accounts.md"), "w") as f:
            f.write(text)
        sys.stdout.write(text)
        return 0 if ratio <= GOAL and ratio_d <= GOAL else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
