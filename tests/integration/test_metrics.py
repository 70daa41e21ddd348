"""The metrics file: written after a --once pass (and after each of the
service's), never by --plan; the gauges match what the fake holds, the
claim counters what happened (a quota refusal, claims), the API counters
the fake's own request log (throttled attempts included); promtool
accepts it. A metrics file that cannot be written is not fatal."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"
ACCOUNT = "111122223333"
SAMPLE = re.compile(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')
FAMILIES = ["desired", "claimed", "in_progress", "failed_pending", "excess", "moving", "pins_missing", "orphans",
            "quota_paused", "claims_total", "releases_total", "moves_total", "api_calls_total",
            "pass_duration_seconds", "last_pass_timestamp_seconds", "last_success_timestamp_seconds",
            "last_pass_exit_status", "start_time_seconds"]


def parse(text):
    """{name: {frozenset(labels): value}} and the families with HELP and TYPE."""
    samples, helped, typed = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            typed[line.split()[2]] = line.split()[3]
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, "not a sample line: %r" % line
            labels = frozenset(LABEL.findall(m.group(2) or ""))
            samples.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return samples, helped, typed


def value(samples, name, **labels):
    return samples["connect_numbers_" + name][frozenset(labels.items())]


def promtool_check(test, path):
    promtool = shutil.which("promtool")
    if not promtool:
        if os.environ.get("CI") == "1":
            test.fail("promtool is missing (Debian package prometheus): under CI=1 the check must run")
        test.skipTest("promtool not installed (Debian package prometheus)")
    with open(path, "rb") as f:
        p = subprocess.run([promtool, "check", "metrics"], stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    test.assertEqual(p.returncode, 0, p.stdout)
    test.assertEqual(p.stdout.strip(), "", "promtool complains:\n" + p.stdout)


class Metrics(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.3")

    def setUp(self):
        super().setUp()
        self.support = cnlib.instance_arn()
        self.sales = cnlib.instance_arn()
        self.rundir = os.path.join(self.tmp, "run")
        os.makedirs(self.rundir)
        self.metrics = os.path.join(self.rundir, "metrics.prom")
        self.env["RUNTIME_DIRECTORY"] = self.rundir
        self.write(count=3)

    def write(self, count, extra=""):
        cnlib.write_yaml(self.yaml, self.fake, {
            "support": {"arn": self.support, "quota": 10, "pools": {
                "main": {"country": "US", "type": "DID", "count": count}}},
            "sales": {"arn": self.sales, "pools": {
                "uk": {"country": "GB", "type": "DID", "count": 2}}},
        }, extra=extra)

    def read(self):
        with open(self.metrics) as f:
            text = f.read()
        samples, helped, typed = parse(text)
        for fam in FAMILIES:
            name = "connect_numbers_" + fam
            self.assertIn(name, helped, "no # HELP for %s" % name)
            self.assertIn(name, typed, "no # TYPE for %s" % name)
        return samples, typed

    def held(self, arn, pool):
        return [n for n in self.fake.numbers(arn) if (n.get("tags") or {}).get(TAG) == pool]

    def expected_api(self):
        """{(op, outcome): n} from the fake's request log."""
        out = {}
        for q in self.fake.requests():
            st = q["status"]
            outcome = "ok" if 200 <= st <= 299 else "throttled" if st == 429 else "error"
            out[(q["op"], outcome)] = out.get((q["op"], outcome), 0) + 1
        return out

    def assert_api(self, samples):
        api = samples["connect_numbers_api_calls_total"]
        got = {}
        for labels, v in api.items():
            d = dict(labels)
            self.assertEqual(d["account"], ACCOUNT, d)
            self.assertEqual(d["region"], "us-east-1", d)
            if v:
                got[(d["operation"], d["outcome"])] = int(v)
        self.assertEqual(got, self.expected_api())

    def test_once_quota_and_throttling(self):
        # support's third claim ends FAILED on the quota; 30 % of the calls
        # are throttled first.
        self.fake.config(quotas={self.support: 2}, faults={"throttle": 0.3})
        self.fake.reset()
        t0 = time.time()
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 75, r.stderr[-3000:])
        self.assertIn("throttle", str(self.fake.calls().get("faults")), "the throttling did not happen")
        samples, typed = self.read()

        self.assertEqual(typed["connect_numbers_claims_total"], "counter")
        self.assertEqual(typed["connect_numbers_claimed"], "gauge")
        # Gauges, per pool, as the fake holds them.
        self.assertEqual(value(samples, "desired", target="support", pool="main"), 3)
        self.assertEqual(value(samples, "claimed", target="support", pool="main"),
                         len(self.held(self.support, "support/main")))
        self.assertEqual(value(samples, "claimed", target="support", pool="main"), 2)
        self.assertEqual(value(samples, "failed_pending", target="support", pool="main"), 1)
        self.assertEqual(value(samples, "in_progress", target="support", pool="main"), 0)
        self.assertEqual(value(samples, "excess", target="support", pool="main"), 0)
        self.assertEqual(value(samples, "desired", target="sales", pool="uk"), 2)
        self.assertEqual(value(samples, "claimed", target="sales", pool="uk"), len(self.held(self.sales, "sales/uk")))
        self.assertEqual(value(samples, "claimed", target="sales", pool="uk"), 2)
        self.assertEqual(value(samples, "moving", target="sales", pool="uk"), 0)
        self.assertEqual(value(samples, "pins_missing", target="sales", pool="uk"), 0)
        self.assertEqual(value(samples, "quota_paused", target="support"), 1)
        self.assertEqual(value(samples, "quota_paused", target="sales"), 0)
        # Counters of this process: the claims as they ended.
        self.assertEqual(value(samples, "claims_total", target="support", outcome="claimed"), 2)
        self.assertEqual(value(samples, "claims_total", target="support", outcome="failed"), 1)
        self.assertEqual(value(samples, "claims_total", target="sales", outcome="claimed"), 2)
        self.assertEqual(value(samples, "claims_total", target="sales", outcome="failed"), 0)
        self.assertEqual(value(samples, "releases_total", target="sales"), 0)
        self.assertEqual(value(samples, "moves_total", target="support"), 0)
        self.assert_api(samples)
        # The pass.
        self.assertEqual(value(samples, "last_pass_exit_status"), 75)
        last = value(samples, "last_pass_timestamp_seconds")
        self.assertGreaterEqual(last, t0 - 1)
        self.assertLessEqual(last, time.time() + 1)
        self.assertEqual(value(samples, "last_success_timestamp_seconds"), last)
        self.assertLessEqual(value(samples, "start_time_seconds"), last)
        self.assertGreaterEqual(value(samples, "start_time_seconds"), t0 - 1)
        self.assertGreater(value(samples, "pass_duration_seconds"), 0)
        self.assertLess(value(samples, "pass_duration_seconds"), time.time() - t0 + 1)
        promtool_check(self, self.metrics)
        # Only the file itself in the directory: the temporary one is gone.
        self.assertEqual(os.listdir(self.rundir), ["metrics.prom"])

    def test_release_and_orphan_counts(self):
        self.once("--wait", "20s", check=0)
        # A pool removed: its numbers are orphans (reported, kept);
        # release_excess on the other releases one.
        cnlib.write_yaml(self.yaml, self.fake, {
            "support": {"arn": self.support, "quota": 10, "pools": {
                "other": {"country": "US", "type": "DID", "count": 0}}},
            "sales": {"arn": self.sales, "release_excess": True, "pools": {
                "uk": {"country": "GB", "type": "DID", "count": 1}}},
        })
        self.fake.reset()
        r = self.once("--wait", "20s")
        self.assertIn(r.returncode, (0, 75), r.stderr[-3000:])
        samples, _ = self.read()
        self.assertEqual(value(samples, "orphans", target="support", pool="main"), 3)
        self.assertEqual(value(samples, "releases_total", target="sales"),
                         len([q for q in self.fake.requests() if q["op"] == "ReleasePhoneNumber"
                              and q["status"] == 200]))
        self.assertEqual(value(samples, "releases_total", target="sales"), 1)
        self.assertEqual(value(samples, "claimed", target="sales", pool="uk"), 1)
        self.assertEqual(value(samples, "desired", target="support", pool="other"), 0)
        self.assert_api(samples)
        promtool_check(self, self.metrics)

    def test_plan_never_writes_and_metrics_file_key(self):
        self.plan(check=75)
        self.assertFalse(os.path.exists(self.metrics), "--plan wrote the metrics file")
        # metrics_file: wins over $RUNTIME_DIRECTORY.
        other = os.path.join(self.tmp, "textfile", "connect-numbers.prom")
        os.makedirs(os.path.dirname(other))
        self.write(count=1, extra="metrics_file: %s" % other)
        self.once("--wait", "20s", check=0)
        self.assertFalse(os.path.exists(self.metrics))
        with open(other) as f:
            samples, _, _ = parse(f.read())
        self.assertEqual(value(samples, "claimed", target="support", pool="main"), 1)
        self.assertEqual(value(samples, "last_pass_exit_status"), 0)
        self.assertEqual(oct(os.stat(other).st_mode & 0o777), "0o644")
        # Without either, no file and no complaint.
        env = dict(self.env)
        del env["RUNTIME_DIRECTORY"]
        self.write(count=1)
        r = self.once("--wait", "20s", env=env, check=0)
        self.assertFalse(os.path.exists(self.metrics))
        self.assertNotIn("metrics", r.stderr.lower())

    def test_unwritable_file_is_not_fatal(self):
        self.write(count=1, extra="metrics_file: %s" % os.path.join(self.tmp, "missing", "metrics.prom"))
        r = self.once("--wait", "20s", check=0)
        self.assertEqual(r.stderr.count("Cannot write the metrics file"), 1, r.stderr[-3000:])

    def test_service_rewrites_after_each_pass(self):
        self.write(count=1)
        p = self.start_service("--log-target", "console")
        self.wait_for(lambda: os.path.exists(self.metrics), what="the first metrics file")
        samples, _ = self.read()
        first = value(samples, "last_pass_timestamp_seconds")
        self.assertEqual(value(samples, "claims_total", target="support", outcome="claimed"), 1)
        time.sleep(1.1)
        p.send_signal(signal.SIGUSR1)

        def newer():
            s, _ = self.read()
            return value(s, "last_pass_timestamp_seconds") > first and s
        samples = self.wait_for(newer, what="a second metrics file")
        # The counters go on across passes; the start time stays.
        self.assertEqual(value(samples, "claims_total", target="support", outcome="claimed"), 1)
        self.assertEqual(value(samples, "last_pass_exit_status"), 0)
        self.assert_api(samples)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=30), 0)
        promtool_check(self, self.metrics)


if __name__ == "__main__":
    cnlib.main()
