"""The operator's interface beside a running service: --plan and --status
read the state the service saved (no lock, nothing written) while --once
is refused; log_level: in the YAML, -v over it, changed on reload;
--check-config warns about a file the service's dynamic user cannot read;
the root credentials file stands in for $CREDENTIALS_DIRECTORY/aws."""
import datetime
import json
import os
import re
import signal
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402
import test_service  # noqa: E402  (its Notify; its tests do not run here)


def tree_snapshot(d):
    """Every file under d with its content and mtime: what a reader must
    leave as it found it."""
    out = {}
    for base, _, files in os.walk(d):
        for name in files:
            p = os.path.join(base, name)
            with open(p, "rb") as f:
                out[p] = (f.read(), os.stat(p).st_mtime_ns)
    return out


class NotifyTest(cnlib.DaemonTest):
    """A target ARN and a NOTIFY_SOCKET of the test's own."""

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        self.notify = test_service.Notify(os.path.join(self.tmp, "notify"))
        self.addCleanup(self.notify.sock.close)


class Readers(NotifyTest):

    def write(self, count, extra=""):
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": count}}}}, interval="1h", extra=extra)

    def test_plan_and_status_beside_the_service(self):
        """The service holds the lock and remembers a claim that failed on
        the quota: --plan and --status show it, write nothing; --once is
        refused."""
        self.write(3)
        self.fake.config(quotas={self.inst: 2})
        p = self.start_service("--log-target", "console", env=dict(self.env, NOTIFY_SOCKET=self.notify.path))
        self.notify.wait("READY=1")
        self.notify.wait("quota reached")  # the STATUS= of the first pass
        before = tree_snapshot(self.state)
        calls_before = self.mutating_calls()

        r = self.plan("--json")
        self.assertEqual(r.returncode, 0, r.stderr)  # reports only: nothing would call a mutating API
        plan = json.loads(r.stdout)
        # The failed claim is the service's memory: from an empty state the
        # plan would claim a third number instead.
        self.assertEqual([s["action"] for s in plan["steps"] if s["action"] == "claim"], [], plan)
        self.assertEqual([(x["claimed"], x["failed_pending"]) for x in plan["pools"]], [(2, 1)], plan)
        self.assertNotIn("another", r.stderr.lower())

        r = self.status("--json")
        pool = json.loads(r.stdout)
        text = json.dumps(pool)
        self.assertIn('"claimed": 2', text, text)
        self.assertIn('"desired": 3', text, text)
        r = self.status()
        self.assertIn("quota", r.stdout.lower(), r.stdout)

        self.assertEqual(tree_snapshot(self.state), before, "a reader wrote in the service's state directory")
        self.assertEqual(self.mutating_calls(), calls_before)

        r = self.once()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("Another connect-numbersd process is working on the state directory", r.stderr)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)

    def test_plan_never_writes(self):
        """No state directory: none is made. An empty state file is the
        owner's to set aside: --plan leaves it where it is."""
        self.write(1)
        missing = os.path.join(self.tmp, "no-such-state")
        r = self.plan(state=missing)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertFalse(os.path.exists(missing), "--plan made the state directory")
        os.makedirs(self.state)
        open(os.path.join(self.state, "state.json"), "w").close()
        r = self.plan()
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("empty", r.stderr)
        self.assertEqual(sorted(os.listdir(self.state)), ["state.json"], "--plan changed the state directory")
        self.assertEqual(self.mutating_calls(), {})


class StatusTimes(NotifyTest):
    def test_status_says_when_not_how_long(self):
        """STATUS= stays true after it is sent: the next pass's local time,
        not a countdown frozen at the end of the pass."""
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": 1}}}}, interval="1h")
        p = self.start_service("--log-target", "console", env=dict(self.env, NOTIFY_SOCKET=self.notify.path))
        msg = self.notify.wait("next pass")
        now = datetime.datetime.now()
        status = [x for x in msg.splitlines() if x.startswith("STATUS=")][0]
        self.assertNotIn("next pass in", status)
        # HH:MM, with the date when the next pass is not today.
        m = re.search(r"; next pass (\d{4}-\d\d-\d\d )?(\d\d:\d\d)$", status)
        self.assertTrue(m, status)
        at = datetime.datetime.strptime((m.group(1) or now.strftime("%Y-%m-%d ")) + m.group(2), "%Y-%m-%d %H:%M")
        # interval 1h with its +-10 % jitter: 54 to 66 minutes from now.
        self.assertTrue(datetime.timedelta(minutes=53) <= at - now <= datetime.timedelta(minutes=67),
                        (status, now))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)


class LogLevel(NotifyTest):
    def write(self, level):
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": 1}}}}, interval="1h",
            extra="log_level: %s" % level if level else "")

    @staticmethod
    def priorities(text):
        return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}

    def test_once_follows_log_level_and_v_wins(self):
        self.write("warning")
        r = self.once(check=0)
        self.assertFalse(self.priorities(r.stderr) & {"info", "notice", "debug"}, r.stderr)
        self.write("debug")
        r = self.once(check=0)
        self.assertIn("debug", self.priorities(r.stderr), r.stderr)
        self.write("err")
        r = self.once("-v", check=0)
        self.assertIn("debug", self.priorities(r.stderr), "-v must win over log_level: err")
        self.write(None)
        r = self.once(check=0)
        self.assertIn("info", self.priorities(r.stderr), r.stderr)
        self.assertNotIn("debug", self.priorities(r.stderr), "the default is info")

    def run_service(self, *extra):
        logpath = os.path.join(self.tmp, "service.log")
        with open(logpath, "w") as out:
            p = self.start_service("--log-target", "console", *extra,
                                   env=dict(self.env, NOTIFY_SOCKET=self.notify.path), stdout=out)
        self.notify.wait("next pass")

        def log():
            with open(logpath) as f:
                return f.read()
        return p, log

    def reload(self, p, level):
        self.write(level)
        self.notify.messages.clear()
        p.send_signal(signal.SIGHUP)
        self.notify.wait("RELOADING=1")
        self.notify.wait("next pass")  # the pass that a reload runs

    def test_service_reload_changes_the_level(self):
        self.write("warning")
        p, log = self.run_service()
        self.assertFalse(self.priorities(log()) & {"info", "notice", "debug"}, log())
        self.reload(p, "debug")
        self.assertIn("debug", self.priorities(log()), log())
        mark = len(log())
        self.reload(p, "err")
        self.assertFalse(self.priorities(log()[mark:]) & {"info", "notice", "debug", "warning"}, log()[mark:])
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)

    def test_service_v_wins_over_reload(self):
        self.write("err")
        p, log = self.run_service("-v")
        self.assertIn("debug", self.priorities(log()), log())
        mark = len(log())
        self.reload(p, "warning")
        self.assertIn("debug", self.priorities(log()[mark:]), "-v must win over a reloaded log_level:")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)


class CheckConfigReadable(unittest.TestCase):
    """root reads any file; the service's dynamic user reads it through
    the "other" bits only."""

    def setUp(self):
        self.env = cnlib.clean_env()
        self.dir = tempfile.mkdtemp(prefix="cn-it-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        self.yaml = os.path.join(self.dir, "etc", "numbers.yaml")
        os.makedirs(os.path.dirname(self.yaml))
        os.chmod(os.path.dirname(self.yaml), 0o755)
        shutil.copy(os.path.join(cnlib.ROOT, "config", "numbers.example.yaml"), self.yaml)

    def check(self):
        r = cnlib.run("--check-config", "-c", self.yaml, env=self.env, check=0)
        self.assertEqual(r.stdout.splitlines()[0], "configuration OK")
        return r.stderr

    def test_readable_file_no_warning(self):
        os.chmod(self.yaml, 0o644)
        self.assertEqual(self.check(), "")

    def test_mode_0600_warns(self):
        os.chmod(self.yaml, 0o600)
        err = self.check()
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("warning", err)
        self.assertIn(self.yaml, err)
        self.assertIn("0600", err)

    def test_closed_directory_warns(self):
        os.chmod(self.yaml, 0o644)
        os.chmod(os.path.dirname(self.yaml), 0o750)
        err = self.check()
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("warning", err)
        self.assertIn(os.path.dirname(self.yaml) + " (mode 0750)", err)


@unittest.skipUnless(os.geteuid() == 0, "the root credentials file is for root only")
class RootCredentials(cnlib.DaemonTest):
    """As root without $CREDENTIALS_DIRECTORY, the file the unit hands to
    the service with LoadCredential= takes its place in the chain."""

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": 1}}}})
        self.creds = os.path.join(self.tmp, "aws-credentials")
        with open(self.creds, "w") as f:
            f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (
                self.fake.info["access_key_id"], self.fake.info["secret_access_key"]))
        os.chmod(self.creds, 0o600)
        self.env = cnlib.clean_env()  # no AWS_* keys

    def test_root_file_used_by_plan_and_once(self):
        r = self.plan()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no AWS credentials", r.stderr)
        env = dict(self.env, CONNECT_NUMBERS_TEST_ROOT_CREDENTIALS=self.creds)
        r = self.plan(env=env)
        self.assertEqual(r.returncode, 75, r.stderr)  # one claim to make
        r = self.once("--wait", "20s", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.fake.numbers(self.inst)), 1)
        self.assert_no_validation_failures()

    def test_service_credentials_directory_wins(self):
        """Under systemd ($CREDENTIALS_DIRECTORY set) the root file plays no part."""
        creddir = os.path.join(self.tmp, "creds")
        os.makedirs(creddir)
        env = dict(self.env, CONNECT_NUMBERS_TEST_ROOT_CREDENTIALS=self.creds, CREDENTIALS_DIRECTORY=creddir)
        r = self.plan(env=env)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no AWS credentials", r.stderr)


if __name__ == "__main__":
    cnlib.main()
