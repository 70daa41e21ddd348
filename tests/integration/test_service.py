"""Service mode: sd_notify on a test-owned NOTIFY_SOCKET (READY, STATUS,
WATCHDOG, RELOADING, STOPPING), SIGHUP with a broken and a changed file,
SIGUSR1, SIGTERM during claims, journald fields and MESSAGE_IDs, and no
secret in any log at the highest verbosity."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402


class Notify:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def drain(self):
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                return self.messages

    def wait(self, needle, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.drain()
            for m in self.messages:
                if needle in m:
                    return m
        raise AssertionError("no %r in %r" % (needle, self.messages))


class Service(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.3")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        self.write(2)
        self.notify = Notify(os.path.join(self.tmp, "notify"))
        self.addCleanup(self.notify.sock.close)

    def write(self, count, interval="1h"):
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": count}}}}, interval=interval)

    def held(self):
        return [n for n in self.fake.numbers(self.inst) if n["status"] == "CLAIMED"]

    def test_notify_reload_usr1_term(self):
        # WATCHDOG_PID left unset: sd_watchdog_enabled() then accepts any pid.
        env = dict(self.env, NOTIFY_SOCKET=self.notify.path, WATCHDOG_USEC="2000000")
        p = self.start_service("--log-target", "console", env=env)
        self.notify.wait("READY=1")
        self.notify.wait("WATCHDOG=1")
        self.wait_for(lambda: len(self.held()) == 2, what="2 claimed")
        status = self.notify.wait("STATUS=2 of 2 numbers claimed")
        self.assertIn("next pass", status)

        # A broken file: reported, old desired state stays.
        with open(self.yaml, "a") as f:
            f.write("bogus_key: 1\n")
        self.notify.messages.clear()
        p.send_signal(signal.SIGHUP)
        self.notify.wait("RELOADING=1")
        self.notify.wait("READY=1")
        time.sleep(1)
        self.assertEqual(len(self.held()), 2)
        self.assertIsNone(p.poll())

        # A higher count claims more.
        self.write(3)
        p.send_signal(signal.SIGHUP)
        self.wait_for(lambda: len(self.held()) == 3, what="3 claimed after reload")

        # SIGUSR1 runs a pass now (one more list call).
        time.sleep(1)
        before = self.calls().get("ListPhoneNumbersV2", 0)
        p.send_signal(signal.SIGUSR1)
        self.wait_for(lambda: self.calls().get("ListPhoneNumbersV2", 0) > before, what="a pass after SIGUSR1")

        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)
        self.notify.wait("STOPPING=1")

    def test_unchanged_list_skipped_changed_list_taken_in(self):
        """A steady pass whose list answer is byte-identical to the last one
        (and the state unchanged since) does not take it in again; a list
        that changed is taken in at once, and so is one after a reload."""
        env = dict(self.env, NOTIFY_SOCKET=self.notify.path)
        logpath = os.path.join(self.tmp, "service.log")
        with open(logpath, "w") as out:
            p = self.start_service("--log-target", "console", "-v", env=env, stdout=out)
        self.wait_for(lambda: len(self.held()) == 2, what="2 claimed")
        self.notify.wait("STATUS=2 of 2 numbers claimed")

        def log():
            with open(logpath) as f:
                return f.read()

        def run_pass(sig=signal.SIGUSR1):
            self.notify.messages.clear()
            p.send_signal(sig)
            self.notify.wait("next pass")  # the STATUS of a finished pass

        # The pass that claimed changed the state; the next one takes the
        # list in again; only the one after may skip it.
        unchanged = "The list of support is unchanged since the last pass"
        run_pass()
        self.assertNotIn(unchanged, log(), "a list skipped after a pass that changed the state")
        run_pass()
        self.wait_for(lambda: unchanged in log(), timeout=10, what="an unchanged list skipped")

        # Someone puts a number of this pool on the instance: the list
        # changes, the number is described and reported as an excess.
        self.fake.reset()
        seeded = self.fake.admin("POST", "/admin/seed", {"numbers": [{
            "target_arn": self.inst, "country": "US", "type": "DID",
            "tags": {"connect-numbers:pool": "support/main"}}]})["numbers"]
        skipped = log().count(unchanged)
        run_pass()
        self.assertEqual(log().count(unchanged), skipped, "a changed list was skipped")
        described = [q for q in self.fake.requests() if q["op"] == "DescribePhoneNumber"]
        self.assertEqual(len(described), 1, described)
        self.assertIn(seeded[0], described[0]["path"])

        # After a reload (which runs a pass) the list is taken in again,
        # even if unchanged.
        run_pass()
        run_pass()
        skipped = log().count(unchanged)
        self.assertGreater(skipped, 0)
        run_pass(signal.SIGHUP)
        self.assertEqual(log().count(unchanged), skipped, "a list skipped right after a reload")
        run_pass()
        self.assertEqual(log().count(unchanged), skipped + 1)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)

    def test_unchanged_list_skipped_whatever_the_order(self):
        """Nothing documents that Connect returns a list in a stable order:
        the same numbers in another order are the same list."""
        self.fake.admin("POST", "/admin/seed", {"generate": {
            "target_arn": self.inst, "country": "US", "type": "DID", "count": 40, "tags": {}}})
        self.fake.config(list_order="shuffle", default_quota=1000)
        env = dict(self.env, NOTIFY_SOCKET=self.notify.path)
        logpath = os.path.join(self.tmp, "service.log")
        with open(logpath, "w") as out:
            p = self.start_service("--log-target", "console", "-v", env=env, stdout=out)
        self.notify.wait("STATUS=2 of 2 numbers claimed")
        unchanged = "The list of support is unchanged since the last pass"
        for _ in range(3):
            self.notify.messages.clear()
            p.send_signal(signal.SIGUSR1)
            self.notify.wait("next pass")
        with open(logpath) as f:
            self.assertGreaterEqual(f.read().count(unchanged), 1, "a shuffled, unchanged list was taken in again")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(30), 0)

    def test_sigterm_during_claims_then_restart(self):
        self.write(5)
        self.fake.config(claim_delay=2.0)
        p = self.start_service("--log-target", "console")
        self.wait_for(lambda: self.calls().get("ClaimPhoneNumber", 0) >= 1, what="claims started")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(40), 0)
        self.fake.config(claim_delay=0.2)
        r = self.once("--wait", "30s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.fake.numbers(self.inst)), 5)

    def test_journal_fields_and_no_secrets(self):
        if not cnlib.ensure_journald():
            self.skipTest("no journald")
        since = cnlib.now_usec()
        self.write(3)
        self.fake.config(quotas={self.inst: 2})
        r = cnlib.run("--once", "-c", self.yaml, "--state-dir", self.state, "--log-target", "journal", "-v",
                      "--wait", "20s", env=self.env)
        recs = cnlib.journal_records(since)
        ids = {x.get("MESSAGE_ID") for x in recs}
        self.assertIn(cnlib.MESSAGE_IDS["pass"], ids)
        quota = [x for x in recs if x.get("MESSAGE_ID") == cnlib.MESSAGE_IDS["quota"]]
        self.assertEqual(len(quota), 1, [x["MESSAGE"] for x in recs])
        q = quota[0]
        self.assertEqual(q["PRIORITY"], "3")
        self.assertEqual(q["TARGET"], "support")
        self.assertEqual(q["TARGET_ARN"], self.inst)
        self.assertIn("You've reached the limit of Phone Numbers. To increase the limit, contact support.",
                      q["MESSAGE"])
        for x in recs:
            self.assertEqual(x["SYSLOG_IDENTIFIER"], "connect-numbersd")
            self.assertIn("PRIORITY", x)
        # journalctl -x explains the record from the catalog (installed on
        # this throwaway host, as the package does).
        if os.geteuid() == 0:
            os.makedirs("/usr/lib/systemd/catalog", exist_ok=True)
            shutil.copy(os.path.join(cnlib.ROOT, "systemd", "connect-numbers.catalog"),
                        "/usr/lib/systemd/catalog/connect-numbers.catalog")
            subprocess.run(["journalctl", "--update-catalog"], check=True)
            x = subprocess.run(["journalctl", "-x", "--no-pager", "-o", "short",
                                "MESSAGE_ID=" + cnlib.MESSAGE_IDS["quota"], "TARGET_ARN=" + self.inst],
                               stdout=subprocess.PIPE, text=True).stdout
            self.assertIn("Amazon Connect service quotas increase form", x)
            self.assertIn("Phone numbers per instance", x)
            self.assertIn("200 %", x)
        blob = json.dumps(recs) + r.stdout + r.stderr
        self.assertNotIn(self.fake.info["secret_access_key"], blob)
        self.assertNotIn("Signature=", blob)

    def test_console_debug_has_no_secrets(self):
        env = dict(self.env, AWS_SESSION_TOKEN="")
        r = self.once("-v", "--wait", "20s", env=env)
        out = r.stdout + r.stderr
        self.assertIn("debug", out)
        self.assertNotIn(self.fake.info["secret_access_key"], out)
        self.assertNotIn("Signature=", out)


if __name__ == "__main__":
    cnlib.main()
