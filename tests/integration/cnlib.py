"""Shared preamble for the integration tests: the real connect-numbersd
binary against the fake Connect over TLS, with a private temp dir per test
and journald records read back with journalctl. Standard library only."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BUILD", "build")
DAEMON = os.environ.get("CONNECT_NUMBERSD", os.path.join(ROOT, BUILD, "connect-numbersd"))
FAKE = os.path.join(ROOT, "tests", "fake-connect", "fake_connect.py")
sys.path.insert(0, os.path.dirname(FAKE))
from fakeclient import stop_process  # noqa: E402
VALGRIND = os.environ.get("VALGRIND") == "1"
# Tests that take real time (long waits, soaks, measured wall time) run
# once, in the plain build: not again under the sanitizers or valgrind.
REAL_TIME = not VALGRIND and "sanitize" not in BUILD
real_time = unittest.skipUnless(REAL_TIME, "takes real time: run in the plain build only")

MESSAGE_IDS = {
    "claimed": "fe516c5d203b4ef48e29b6edb103ba96",
    "claim_failed": "726fdf2a6b18422a90734a9771ee61ae",
    "window_expired": "fd0cb8acf5ee4275a5c6ac2fae166dd4",
    "quota": "3397924d2cd44439856474d51b94ceda",
    "no_numbers": "b1fdd874a64c4dc696b4d4d00a08fe87",
    "released": "b56b327dab6448f7b61dd61fe1dd0e4d",
    "pass": "6ae6cd9d9ba346269c909e0a010f7801",
    "config_rejected": "74a9b527b5114d6c936bc5e72a541aa2",
}

MUTATING = {"ClaimPhoneNumber", "ReleasePhoneNumber", "UpdatePhoneNumberMetadata",
            "AssociatePhoneNumberContactFlow", "TagResource", "UntagResource", "UpdatePhoneNumber",
            "DisassociatePhoneNumberContactFlow"}


def instance_arn(account="111122223333", region="us-east-1", ident=None):
    return "arn:aws:connect:%s:%s:instance/%s" % (region, account, ident or str(uuid.uuid4()))


def tdg_arn(account="111122223333", region="us-east-1", ident=None):
    return "arn:aws:connect:%s:%s:traffic-distribution-group/%s" % (region, account, ident or str(uuid.uuid4()))


class Fake:
    """The fake Connect in its own process and directory."""

    def __init__(self, workdir, *args):
        # Tests pace the daemon at 50/s (write_yaml): the fake allows more
        # unless a test asks for AWS's own 2/s.
        if "--rate" not in args:
            args = ("--rate", "100", "--burst", "200") + tuple(args)
        self.dir = os.path.join(workdir, "fake")
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(self.dir, "fake.log"), "w")
        self.proc = subprocess.Popen([sys.executable, FAKE, "--dir", self.dir] + list(args),
                                     stdout=self.log, stderr=subprocess.STDOUT)
        path = os.path.join(self.dir, "fake.json")
        deadline = time.time() + 30
        while not os.path.exists(path):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("fake Connect did not start: see %s" % self.log.name)
            time.sleep(0.05)
        time.sleep(0.05)
        with open(path) as f:
            self.info = json.load(f)

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.info["admin_url"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else {}

    def config(self, **kw):
        return self.admin("POST", "/admin/config", kw)

    def numbers(self, target_arn=None, active=True):
        out = []
        for n in self.admin("GET", "/admin/numbers")["numbers"]:
            if target_arn and n.get("target_arn") != target_arn:
                continue
            if active and (n.get("released") or n.get("status") not in ("CLAIMED", "IN_PROGRESS")):
                continue
            out.append(n)
        return out

    def calls(self):
        return self.admin("GET", "/admin/calls")

    def requests(self):
        return self.admin("GET", "/admin/requests")["requests"]

    def reset(self):
        return self.admin("POST", "/admin/reset", {})

    def clock(self, offset):
        return self.admin("POST", "/admin/clock", {"offset": offset})

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def yaml_quote(s):
    return json.dumps(s)


def write_yaml(path, fake, targets, interval="5m", rate=50, burst=100, extra=""):
    """targets: {name: {"arn":..., "quota":..., "release_excess":..., "pools": {name: {...}}}}"""
    lines = ["interval: %s" % interval,
             "endpoint_url: %s" % fake.info["endpoint_url"],
             "ca_file: %s" % fake.info["ca_file"],
             "api_rate: {default: %s, burst: %s}" % (rate, burst)]
    if extra:
        lines.append(extra.rstrip("\n"))
    lines.append("targets:")
    for tname, t in targets.items():
        lines.append("  %s:" % tname)
        for k, v in t.items():
            if k == "pools":
                continue
            lines.append("    %s: %s" % (k, yaml_value(v)))
        lines.append("    pools:")
        for pname, p in t["pools"].items():
            lines.append("      %s:" % pname)
            for k, v in p.items():
                if k == "tags":
                    lines.append("        tags:")
                    for tk, tv in v.items():
                        lines.append("          %s: %s" % (yaml_quote(tk), yaml_quote(tv)))
                else:
                    lines.append("        %s: %s" % (k, yaml_value(v)))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def yaml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return yaml_quote(v)


def clean_env(fake=None, **extra):
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("AWS_") or k in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY", "NOTIFY_SOCKET",
                                                   "JOURNAL_STREAM", "CONNECT_NUMBERS_CLOCK_OFFSET",
                                                   "SSL_CERT_FILE", "CURL_CA_BUNDLE", "WATCHDOG_USEC",
                                                   "WATCHDOG_PID"))}
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    # As root, the daemon reads /etc/connect-numbers/aws-credentials when no
    # $CREDENTIALS_DIRECTORY is set: keep the host's file out of the tests.
    env["CONNECT_NUMBERS_TEST_ROOT_CREDENTIALS"] = "/nonexistent/aws-credentials"
    env["HOME"] = extra.pop("HOME", "/nonexistent")
    if fake:
        env["AWS_ACCESS_KEY_ID"] = fake.info["access_key_id"]
        env["AWS_SECRET_ACCESS_KEY"] = fake.info["secret_access_key"]
    env.update({k: str(v) for k, v in extra.items()})
    return env


def daemon_cmd(*args):
    cmd = [DAEMON] + list(args)
    if VALGRIND:
        cmd = ["valgrind", "--quiet", "--leak-check=full", "--error-exitcode=99"] + cmd
    return cmd


def run(*args, env=None, timeout=300, check=None):
    p = subprocess.run(daemon_cmd(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True)
    if check is not None and p.returncode != check:
        raise AssertionError("%s exited %d, expected %d\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(args), p.returncode, check, p.stdout, p.stderr))
    return p


def ensure_journald():
    """Starts a standalone systemd-journald if none listens (CI machines have none)."""
    sock = "/run/systemd/journal/socket"
    if os.path.exists(sock):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.connect(sock)
            s.close()
            return True
        except OSError:
            pass
    if os.geteuid() != 0 or not os.path.exists("/lib/systemd/systemd-journald"):
        return False
    os.makedirs("/run/systemd/journal", exist_ok=True)
    subprocess.Popen(["/lib/systemd/systemd-journald"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    for _ in range(100):
        if os.path.exists(sock):
            time.sleep(0.2)
            return True
        time.sleep(0.05)
    return False


def journal_records(since_usec, **match):
    """Records of connect-numbersd since a realtime (usec), newest last."""
    subprocess.run(["journalctl", "--sync"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    args = ["journalctl", "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=connect-numbersd"]
    args += ["%s=%s" % (k, v) for k, v in match.items()]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = []
    for line in p.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if int(rec.get("__REALTIME_TIMESTAMP", "0")) >= since_usec:
            out.append(rec)
    return out


def now_usec():
    return int(time.time() * 1e6)


class DaemonTest(unittest.TestCase):
    """A temp dir, a fake Connect and helpers per test."""

    fake_args = ()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cn-it-")
        self.fake = Fake(self.tmp, *self.fake_args)
        self.state = os.path.join(self.tmp, "state")
        self.yaml = os.path.join(self.tmp, "numbers.yaml")
        self.env = clean_env(self.fake)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.fake.stop()
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)

    def once(self, *extra, check=None, env=None, state=None, timeout=300):
        return run("--once", "-c", self.yaml, "--state-dir", state or self.state, "--log-target", "console",
                   *extra, env=env or self.env, check=check, timeout=timeout)

    def plan(self, *extra, check=None, env=None, state=None):
        return run("--plan", "-c", self.yaml, "--state-dir", state or self.state, "--log-target", "console",
                   *extra, env=env or self.env, check=check)

    def status(self, *extra, check=0):
        return run("--status", "--state-dir", self.state, "-c", self.yaml, *extra, env=self.env, check=check)

    def calls(self):
        return self.fake.calls()["calls"]

    def mutating_calls(self):
        return {k: v for k, v in self.calls().items() if k in MUTATING and v}

    def assert_no_validation_failures(self):
        c = self.fake.calls()
        self.assertEqual(c.get("validation_failures", 0), 0, c.get("validation_messages"))

    def start_service(self, *extra, env=None, stdout=None):
        p = subprocess.Popen(daemon_cmd("-c", self.yaml, "--state-dir", self.state, *extra),
                             env=env or self.env, stdout=stdout or subprocess.DEVNULL,
                             stderr=subprocess.STDOUT if stdout else subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def wait_for(self, cond, timeout=60, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.1)
        self.fail("timed out waiting for %s" % what)


def main():
    unittest.main(verbosity=2)


def read_state(state_dir):
    """The daemon's state.json as one dict with a "numbers" list, whatever
    its version: 2 is a header line then one line per number, 1 (0.1.0) one
    document."""
    with open(os.path.join(state_dir, "state.json")) as f:
        first = f.readline()
        try:
            head = json.loads(first)
        except ValueError:
            head = None
        if isinstance(head, dict) and head.get("version") == 2:
            head["numbers"] = [json.loads(line) for line in f if line.strip()]
            return head
        f.seek(0)
        return json.load(f)
