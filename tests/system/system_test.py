"""system_test.py: connect-numbers as an operator gets it. The .deb is
installed in a minimal Debian 12 root that boots a real systemd in
systemd-nspawn; the service runs there under its shipped unit (dynamic user,
sandbox, Type=notify, LoadCredential=) against the fake Connect, which runs
on the host: the container shares the host's network namespace, so the
fake's 127.0.0.1 endpoint is reachable from inside.

How commands run inside: the container is booted with --register=no (no
machined on a host without systemd), so machinectl and systemd-run
--machine are out. Commands enter the container's namespaces with
nsenter(1) -t LEADER (the container's PID 1 as the host sees it, the child
of the nspawn process): mount, UTS, IPC, network, PID and cgroup, with the
container's root and working directory, under a clean environment.

Started by tests/system/run.sh, which checks root and the tools and builds
the .deb. Standard library only. Prints "system: N passed, M failed".
"""

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import socket
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FAKE = os.environ.get("CONNECT_NUMBERS_FAKE", os.path.join(ROOT_DIR, "tests", "fake-connect", "fake_connect.py"))
sys.path.insert(0, os.path.dirname(FAKE))
from fakeclient import stop_process  # noqa: E402
SUITE = "bookworm"
# prometheus-node-exporter: the operator's scraper of the metrics file.
INCLUDE = ("systemd,systemd-sysv,dbus,procps,libcurl4,libyaml-0-2,libjansson4,ca-certificates,"
           "prometheus-node-exporter")
UNIT = "connect-numbersd.service"

MSG = {
    "claimed": "fe516c5d203b4ef48e29b6edb103ba96",
    "claim_failed": "726fdf2a6b18422a90734a9771ee61ae",
    "quota": "3397924d2cd44439856474d51b94ceda",
    "pass": "6ae6cd9d9ba346269c909e0a010f7801",
    "config_rejected": "74a9b527b5114d6c936bc5e72a541aa2",
    "moved": "c8f7426e7d32423ba00b32c03464e7a7",
    "pin": "869c57ce438f44c88e13d31666e19092",
}
QUOTA_TEXT = "You've reached the limit of Phone Numbers. To increase the limit, contact support."
DYNAMIC_UID_MIN, DYNAMIC_UID_MAX = 61184, 65519


def log(msg):
    print(msg, flush=True)


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, name, detail=""):
        if cond:
            self.passed += 1
            log("ok - %s" % name)
        else:
            self.failed += 1
            log("not ok - %s" % name)
            if detail:
                for line in str(detail).rstrip().splitlines()[-40:]:
                    log("    " + line)
        return bool(cond)


# ---- the cached Debian root ----------------------------------------------

def apt_mirror():
    """The Debian mirror apt uses here for SUITE (deb822 .sources or
    one-line .list), so that debootstrap goes where apt goes."""
    cands = []
    for d, names in (("/etc/apt", ["sources.list"]), ("/etc/apt/sources.list.d", None)):
        try:
            names = names or sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            path = os.path.join(d, name)
            try:
                text = open(path).read()
            except OSError:
                continue
            if name.endswith(".sources"):
                for stanza in text.split("\n\n"):
                    fields = {}
                    for line in stanza.splitlines():
                        if line.startswith("#") or ":" not in line:
                            continue
                        k, v = line.split(":", 1)
                        fields[k.strip().lower()] = v.split()
                    if ("deb" in fields.get("types", []) and SUITE in fields.get("suites", [])
                            and fields.get("enabled", ["yes"])[0] != "no"):
                        cands += fields.get("uris", [])
            elif name.endswith(".list") or name == "sources.list":
                for line in text.splitlines():
                    parts = line.split("#", 1)[0].split()
                    if parts and parts[0] == "deb":
                        parts = [p for p in parts[1:] if not p.startswith("[")]
                        if len(parts) >= 2 and parts[1] == SUITE:
                            cands.append(parts[0])
    for uri in cands:
        if uri.startswith(("http://", "https://", "file:/")):
            return uri
    return "http://deb.debian.org/debian"


def cached_root(cache_dir):
    """Returns the cached Debian root, made with debootstrap if missing or
    made with other arguments. Holds a lock while building."""
    os.makedirs(cache_dir, exist_ok=True)
    stamp = "debootstrap --variant=minbase --include=%s %s\n" % (INCLUDE, SUITE)
    # One root per package list: runs of branches with another list (the
    # same cache, one machine) keep theirs instead of rebuilding in turn.
    root = os.path.join(cache_dir, "%s-%s" % (SUITE, hashlib.sha256(stamp.encode()).hexdigest()[:12]))
    stamp_path = root + ".stamp"
    lock = open(os.path.join(cache_dir, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        if os.path.isdir(root) and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
            return root, lock
        mirror = apt_mirror()
        log("# building the cached %s root in %s from %s (takes a minute or more)" % (SUITE, root, mirror))
        tmp = root + ".new"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        with open(os.path.join(cache_dir, "debootstrap.log"), "w") as out:
            r = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + INCLUDE, SUITE, tmp, mirror],
                               stdout=out, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise RuntimeError("debootstrap failed; see %s/debootstrap.log" % cache_dir)
        os.rename(tmp, root)
        with open(stamp_path, "w") as f:
            f.write(stamp)
        return root, lock
    except BaseException:
        lock.close()
        raise


# ---- the container -------------------------------------------------------

class Container:
    def __init__(self, root, name, logfile):
        self.root = root
        self.name = name
        self.logfile = logfile
        self.proc = None
        self.leader = None

    def boot(self):
        out = open(self.logfile, "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--console=read-only",
             "--link-journal=no", "--machine=" + self.name, "-D", self.root, "-b"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()

    def find_leader(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline and self.proc.poll() is None:
            try:
                with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            for k in kids:
                try:
                    if open("/proc/%s/comm" % k).read().strip() == "systemd":
                        self.leader = int(k)
                        return True
                except OSError:
                    pass
            time.sleep(0.2)
        return False

    def run(self, *cmd, timeout=60, input=None):
        full = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "-r", "-w", "--",
                "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "TERM=dumb",
                "SYSTEMD_COLORS=0", "SYSTEMD_PAGER=", "SYSTEMD_LESS=", "COLUMNS=200"] + list(cmd)
        try:
            return subprocess.run(full, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(full, 124, e.stdout or "", "timed out after %ss" % timeout)

    def out(self, *cmd, **kw):
        return self.run(*cmd, **kw).stdout.strip()

    def wait_booted(self, timeout=90):
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline and self.proc.poll() is None:
            state = self.out("systemctl", "is-system-running")
            if state in ("running", "degraded"):
                return state
            time.sleep(0.5)
        return state

    def poweroff(self, timeout=60):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        if self.leader:
            self.run("systemctl", "poweroff", "--no-block", timeout=10)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        # nspawn turns SIGTERM into an orderly shutdown of the container.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return None


# ---- the fake Connect ----------------------------------------------------

class Fake:
    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "fake")
        os.makedirs(self.dir)
        self.logf = open(os.path.join(workdir, "fake.log"), "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.proc = subprocess.Popen([sys.executable, FAKE, "--dir", self.dir], stdout=self.logf,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        path = os.path.join(self.dir, "fake.json")
        deadline = time.time() + 30
        while not os.path.exists(path):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the fake Connect did not start; see %s" % self.logf.name)
            time.sleep(0.05)
        time.sleep(0.1)
        self.info = json.load(open(path))

    def admin(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.info["admin_url"] + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else {}

    def held(self, target_arn, pool_tag):
        """Phone numbers CLAIMED (not released) for target_arn with our tag."""
        return sorted(n["phone_number"] for n in self.admin("GET", "/admin/numbers")["numbers"]
                      if n.get("target_arn") == target_arn and n.get("status") == "CLAIMED"
                      and not n.get("released") and (n.get("tags") or {}).get("connect-numbers:pool") == pool_tag)

    def claim_requests(self):
        return [r for r in self.admin("GET", "/admin/requests")["requests"] if r.get("op") == "ClaimPhoneNumber"]

    def stop(self):
        stop_process(self.proc)
        self.logf.close()


def wait_for(pred, timeout, abort=None, step=1.0):
    """Polls pred() until it returns a true value or timeout; abort() true
    stops early (the unit failed). Returns pred's last value."""
    deadline = time.time() + timeout
    while True:
        try:
            v = pred()
        except (OSError, ValueError, KeyError):
            v = None
        if v or time.time() > deadline or (abort and abort()):
            return v
        time.sleep(step)


# ---- the test ------------------------------------------------------------

def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def yaml_text(fake, arn_main, arn_small, count_a):
    return """# written by tests/system/system_test.py
interval: 10s
endpoint_url: %s
ca_file: /etc/connect-numbers/fake-ca.pem
api_rate: {default: 20, burst: 40}
targets:
  main:
    arn: %s
    pools:
      a: {country: US, type: DID, count: %d, description: system test}
      b: {country: US, type: TOLL_FREE, count: 1}
  small:
    arn: %s
    pools:
      p: {country: US, type: DID, count: 2}
""" % (fake.info["endpoint_url"], arn_main, count_a, arn_small)


def journal_json(c, *args):
    p = c.run("journalctl", "-o", "json", "--no-pager", *args)
    recs = []
    for line in p.stdout.splitlines():
        try:
            recs.append(json.loads(line))
        except ValueError:
            pass
    return recs


def proc_status(c, pid):
    st = {}
    for line in c.out("cat", "/proc/%s/status" % pid).splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            st[k] = v.split()
    return st


def diagnose(c, res):
    if res.failed and c.leader:
        log("# systemctl status %s" % UNIT)
        for line in c.out("systemctl", "status", "--no-pager", "-l", UNIT).splitlines()[-25:]:
            log("#   " + line)
        log("# journalctl -u %s (last 30)" % UNIT)
        for line in c.out("journalctl", "-u", UNIT, "--no-pager", "-n", "30").splitlines():
            log("#   " + line)


def free_port():
    """A loopback port free now: the container shares the host's network,
    so node_exporter's usual 9100 may be taken there."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def setup_node_exporter(root, port):
    """Debian's node_exporter reads the service's metrics file, on loopback only."""
    write(os.path.join(root, "etc", "default", "prometheus-node-exporter"),
          'ARGS="--web.listen-address=127.0.0.1:%d --collector.textfile.directory=/run/connect-numbersd"\n' % port)


SCRAPED = re.compile(r'^(connect_numbers_[a-z_]+)\{([^}]*)\} (\S+)$', re.M)


def scrape(port):
    """connect_numbers_* samples that node_exporter serves at /metrics, with
    curl: {(name, frozenset(labels)): value}, or None."""
    p = subprocess.run(["curl", "-fsS", "--max-time", "10", "http://127.0.0.1:%d/metrics" % port],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return None
    out = {}
    for name, labels, v in SCRAPED.findall(p.stdout):
        out[(name, frozenset(re.findall(r'([a-z_]+)="([^"]*)"', labels)))] = float(v)
    errors = re.search(r'^node_textfile_scrape_error (\S+)$', p.stdout, re.M)
    out[("node_textfile_scrape_error", frozenset())] = float(errors.group(1)) if errors else -1
    return out


def metrics_checks(c, res, port, failed):
    """The service's metrics through node_exporter, as Prometheus gets them."""
    res.check(c.out("systemctl", "is-active", "prometheus-node-exporter.service") == "active",
              "prometheus-node-exporter is active in the container",
              c.out("systemctl", "status", "--no-pager", "prometheus-node-exporter.service"))
    res.check(c.out("stat", "-c", "%a", "/run/connect-numbersd/metrics.prom") == "644",
              "the service wrote /run/connect-numbersd/metrics.prom (mode 0644)")

    def g(m, name, **labels):
        return m.get(("connect_numbers_" + name, frozenset(labels.items()))) if m else None

    def settled():
        m = scrape(port)
        return m if (g(m, "claimed", target="main", pool="a") == 2 and g(m, "quota_paused", target="small") == 1
                     and g(m, "claimed", target="small", pool="p") == 1) else None
    m = wait_for(settled, 60, failed) or scrape(port)
    res.check(m is not None, "curl http://127.0.0.1:%d/metrics answers" % port)
    if not m:
        return
    res.check(g(m, "desired", target="main", pool="a") == 2 and g(m, "claimed", target="main", pool="a") == 2
              and g(m, "claimed", target="main", pool="b") == 1,
              "node_exporter serves connect_numbers_desired/claimed of main/a and main/b",
              sorted(k for k in m)[:80])
    res.check(g(m, "quota_paused", target="small") == 1 and g(m, "quota_paused", target="main") == 0
              and g(m, "claimed", target="small", pool="p") == 1,
              "connect_numbers_quota_paused: small 1, main 0; small/p holds 1")
    api = [k for k in m if k[0] == "connect_numbers_api_calls_total"
           and ("account", "111122223333") in k[1] and ("region", "us-east-1") in k[1]]
    res.check(bool(api) and (g(m, "claims_total", target="main", outcome="claimed") or 0) >= 3,
              "API call and claim counters are served (%d api series)" % len(api))
    res.check(m[("node_textfile_scrape_error", frozenset())] == 0, "node_textfile_scrape_error 0")


def service_checks(c, fake, res, root, ca_src, exporter_port):
    arn_main = "arn:aws:connect:us-east-1:111122223333:instance/%s" % uuid.uuid4()
    arn_small = "arn:aws:connect:us-east-1:111122223333:instance/%s" % uuid.uuid4()
    fake.admin("POST", "/admin/config", {"default_quota": 10, "quotas": {arn_small: 1}})

    def failed():
        return c.out("systemctl", "show", "-p", "ActiveState", "--value", UNIT) == "failed"

    # Operator steps: the CA of "Connect", the YAML, the credentials file and
    # the shipped LoadCredential= drop-in example, IMDS off (no traffic may
    # leave loopback should the credentials not load).
    etc = os.path.join(root, "etc", "connect-numbers")
    shutil.copy(ca_src, os.path.join(etc, "fake-ca.pem"))
    os.chmod(os.path.join(etc, "fake-ca.pem"), 0o644)
    write(os.path.join(etc, "numbers.yaml"), yaml_text(fake, arn_main, arn_small, 2))
    write(os.path.join(etc, "aws-credentials"), "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (
        fake.info["access_key_id"], fake.info["secret_access_key"]), 0o600)
    dropins = os.path.join(root, "etc", "systemd", "system", UNIT + ".d")
    example = os.path.join(root, "usr", "share", "doc", "connect-numbers", "examples", "credentials.conf")
    os.makedirs(dropins, exist_ok=True)
    shutil.copy(example, os.path.join(dropins, "credentials.conf"))
    write(os.path.join(dropins, "system-test.conf"), "[Service]\nEnvironment=AWS_EC2_METADATA_DISABLED=true\n")

    p = c.run("connect-numbersd", "--check-config")
    res.check(p.returncode == 0 and p.stdout.startswith("configuration OK"),
              "connect-numbersd --check-config accepts the YAML inside the container", p.stdout + p.stderr)

    c.run("systemctl", "daemon-reload")
    p = c.run("systemctl", "enable", "--now", UNIT, timeout=120)
    res.check(p.returncode == 0, "systemctl enable --now %s" % UNIT, p.stdout + p.stderr)
    active = c.out("systemctl", "is-active", UNIT)
    if not res.check(active == "active", "the service is active (READY=1 reached systemd)", active):
        return

    # Desired state: main/a 2, main/b 1; small/p holds 1 and hits its quota.
    def converged():
        return (len(fake.held(arn_main, "main/a")) == 2 and len(fake.held(arn_main, "main/b")) == 1
                and len(fake.held(arn_small, "small/p")) == 1)
    res.check(wait_for(converged, 120, failed), "the fake holds main/a=2, main/b=1, small/p=1 CLAIMED",
              json.dumps(fake.admin("GET", "/admin/numbers"), indent=1)[-3000:])
    quota = wait_for(lambda: journal_json(c, "-u", UNIT, "MESSAGE_ID=" + MSG["quota"]), 60, failed)
    res.check(c.out("systemctl", "is-active", UNIT) == "active", "still active after the first passes")
    status_text = wait_for(lambda: c.out("systemctl", "show", "-p", "StatusText", "--value", UNIT), 30)
    res.check(bool(status_text), "StatusText is set: %r" % status_text)

    # journald fields. The fake may show CLAIMED a moment before the
    # service has described the number and logged it: wait for the records.
    want = {("main", "a", n, arn_main) for n in fake.held(arn_main, "main/a")}
    want |= {("main", "b", n, arn_main) for n in fake.held(arn_main, "main/b")}
    want |= {("small", "p", n, arn_small) for n in fake.held(arn_small, "small/p")}

    def claimed_records():
        recs = journal_json(c, "-u", UNIT, "MESSAGE_ID=" + MSG["claimed"])
        seen = {(r.get("TARGET"), r.get("POOL"), r.get("PHONE_NUMBER"), r.get("TARGET_ARN")) for r in recs}
        return recs if want <= seen else None
    claimed = wait_for(claimed_records, 60, failed) or journal_json(c, "-u", UNIT, "MESSAGE_ID=" + MSG["claimed"])
    seen = {(r.get("TARGET"), r.get("POOL"), r.get("PHONE_NUMBER"), r.get("TARGET_ARN")) for r in claimed}
    res.check(len(want) == 4 and want <= seen,
              "every claimed number has a record with TARGET, POOL, PHONE_NUMBER, TARGET_ARN",
              "want %s\nseen %s" % (sorted(want), sorted(seen)))
    res.check(all(r.get("SYSLOG_IDENTIFIER") == "connect-numbersd" and r.get("PRIORITY") in ("5", "6")
                  for r in claimed),
              "%d claimed records, all with SYSLOG_IDENTIFIER=connect-numbersd, PRIORITY notice or info"
              % len(claimed))
    res.check(bool(quota) and any(r.get("TARGET") == "small" and r.get("PRIORITY") == "3"
                                  and QUOTA_TEXT in r.get("MESSAGE", "") for r in quota),
              "quota record: MESSAGE_ID %s, TARGET=small, PRIORITY=3, the support text" % MSG["quota"],
              json.dumps(quota, indent=1)[-2000:])
    xq = c.out("journalctl", "-x", "--no-pager", "-u", UNIT, "MESSAGE_ID=" + MSG["quota"])
    res.check("Phone-number quota of small reached" in xq and "Phone numbers per instance" in xq
              and "quota_backoff" in xq, "journalctl -x shows the catalog entry for the quota event", xq[-2000:])
    passes = journal_json(c, "-u", UNIT, "MESSAGE_ID=" + MSG["pass"])
    res.check(len(passes) >= 1, "pass-completed records (%d)" % len(passes))
    metrics_checks(c, res, exporter_port, failed)
    everything = c.out("journalctl", "-o", "export", "--no-pager")
    res.check(fake.info["secret_access_key"] not in everything and "Signature=" not in everything,
              "no secret key and no signature anywhere in the journal")

    # The sandbox, as the kernel sees it.
    pid = c.out("systemctl", "show", "-p", "MainPID", "--value", UNIT)
    st = proc_status(c, pid)
    pid1 = proc_status(c, 1)
    uid = st.get("Uid", ["0"])
    res.check(len(set(uid)) == 1 and DYNAMIC_UID_MIN <= int(uid[0]) <= DYNAMIC_UID_MAX,
              "runs as a dynamic user (Uid %s)" % " ".join(uid))
    res.check(st.get("NoNewPrivs") == ["1"], "NoNewPrivs: 1", st.get("NoNewPrivs"))
    res.check(st.get("Seccomp") == ["2"] and int(st.get("Seccomp_filters", ["0"])[0])
              > int(pid1.get("Seccomp_filters", ["0"])[0]),
              "seccomp filters beyond the container's own (%s > %s)" % (
                  st.get("Seccomp_filters"), pid1.get("Seccomp_filters")))
    res.check(st.get("CapEff") == ["0000000000000000"] and st.get("CapBnd") == ["0000000000000000"],
              "no capabilities (CapEff %s, CapBnd %s)" % (st.get("CapEff"), st.get("CapBnd")))
    mounts = [line.split() for line in c.out("cat", "/proc/%s/mountinfo" % pid).splitlines()]
    root_ro = [m for m in mounts if len(m) > 5 and m[4] == "/" and "ro" in m[5].split(",")]
    res.check(bool(root_ro), "the root file system is read-only for the service (ProtectSystem=strict)")
    res.check(any(len(m) > 4 and m[4] == "/tmp" for m in mounts), "a private /tmp (PrivateTmp=yes)")
    owner = c.out("stat", "-c", "%u %a", "/var/lib/private/connect-numbers")
    res.check(owner == "%s 700" % uid[0] and c.out("readlink", "/var/lib/connect-numbers") == "private/connect-numbers",
              "state directory /var/lib/private/connect-numbers owned by the dynamic user, mode 0700 (%s)" % owner)
    res.check(c.run("test", "-s", "/var/lib/private/connect-numbers/state.json").returncode == 0,
              "state.json written")

    # The readers beside the running service, as root at a shell after the
    # README's credentials steps: --plan finds the keys that LoadCredential=
    # hands the service, neither reader needs the lock; --once is refused.
    p = c.run("connect-numbersd", "--plan", timeout=120)
    res.check(p.returncode in (0, 75) and "Another connect-numbersd" not in p.stderr
              and "no AWS credentials" not in p.stderr,
              "connect-numbersd --plan as root beside the service (exit %d)" % p.returncode, p.stdout + p.stderr)
    p = c.run("connect-numbersd", "--status")
    res.check(p.returncode == 0 and "main" in p.stdout and "small" in p.stdout,
              "connect-numbersd --status beside the service", p.stdout + p.stderr)
    p = c.run("connect-numbersd", "--once", "--wait", "0s", timeout=120)
    res.check(p.returncode == 1 and "Another connect-numbersd process is working on the state directory" in p.stderr,
              "connect-numbersd --once beside the service exits 1 and says why (exit %d)" % p.returncode,
              p.stdout + p.stderr)

    # Reload with a higher count: one more claim for main/a.
    write(os.path.join(etc, "numbers.yaml"), yaml_text(fake, arn_main, arn_small, 3))
    p = c.run("systemctl", "reload", UNIT)
    res.check(p.returncode == 0, "systemctl reload", p.stdout + p.stderr)
    res.check(wait_for(lambda: len(fake.held(arn_main, "main/a")) == 3, 90, failed),
              "after the reload the fake holds main/a=3")
    res.check(c.out("systemctl", "is-active", UNIT) == "active", "still active after the reload")
    held_a = set(fake.held(arn_main, "main/a"))
    claimed2 = wait_for(lambda: {r.get("PHONE_NUMBER") for r in journal_json(
        c, "-u", UNIT, "MESSAGE_ID=" + MSG["claimed"], "POOL=a", "TARGET=main")} >= held_a, 60, failed)
    res.check(len(held_a) == 3 and claimed2, "a claimed record for each of the 3 numbers of main/a")

    # An invalid file: the unit checks it before it signals, so the reload
    # fails and the service, never signalled, keeps its desired state.
    good_yaml = yaml_text(fake, arn_main, arn_small, 3)
    pid_before = c.out("systemctl", "show", "-p", "MainPID", "--value", UNIT)
    write(os.path.join(etc, "numbers.yaml"), good_yaml.replace("count: 3, description", "count: many, description"))
    p = c.run("systemctl", "reload", UNIT)
    res.check(p.returncode != 0, "systemctl reload with an invalid file fails (exit %d)" % p.returncode,
              p.stdout + p.stderr)
    res.check(c.out("systemctl", "is-active", UNIT) == "active"
              and c.out("systemctl", "show", "-p", "MainPID", "--value", UNIT) == pid_before,
              "the service stays active, the same process")
    c.run("systemctl", "kill", "-s", "USR1", "--kill-who=main", UNIT)
    time.sleep(3)
    res.check(len(fake.held(arn_main, "main/a")) == 3 and c.out("systemctl", "is-active", UNIT) == "active",
              "after the failed reload a pass keeps main/a=3 (the previous desired state)")
    write(os.path.join(etc, "numbers.yaml"), good_yaml)
    p = c.run("systemctl", "reload", UNIT)
    res.check(p.returncode == 0, "systemctl reload with the good file again", p.stdout + p.stderr)

    # Restart: the state survives, nothing is claimed again.
    before_numbers = fake.admin("GET", "/admin/numbers")["numbers"]
    before_claims = len(fake.claim_requests())
    old_pid = c.out("systemctl", "show", "-p", "MainPID", "--value", UNIT)
    p = c.run("systemctl", "restart", UNIT, timeout=90)
    res.check(p.returncode == 0 and c.out("systemctl", "is-active", UNIT) == "active", "systemctl restart",
              p.stdout + p.stderr)
    new_pid = c.out("systemctl", "show", "-p", "MainPID", "--value", UNIT)
    res.check(new_pid not in ("", "0", old_pid), "a new main process (%s -> %s)" % (old_pid, new_pid))
    c.run("systemctl", "kill", "-s", "USR1", "--kill-who=main", UNIT)
    res.check(wait_for(lambda: journal_json(c, "-u", UNIT, "MESSAGE_ID=" + MSG["pass"], "_PID=" + new_pid), 60, failed),
              "the restarted service completes a pass")
    after_claims = len(fake.claim_requests())
    after_numbers = fake.admin("GET", "/admin/numbers")["numbers"]
    res.check(after_claims == before_claims and len(after_numbers) == len(before_numbers),
              "no claim after the restart (ClaimPhoneNumber %d -> %d, numbers %d -> %d)" % (
                  before_claims, after_claims, len(before_numbers), len(after_numbers)))

    # Pins: one number that small holds is pinned by a new pool of main (a
    # move, MESSAGE_ID moved), one that another customer took (not
    # available, MESSAGE_ID pin); journalctl -x explains both.
    moved = fake.held(arn_small, "small/p")[0]
    taken = [n for n in fake.admin("GET", "/admin/inventory?country=US&type=DID&count=5")["numbers"]][-1]
    fake.admin("POST", "/admin/steal", {"phone_number": taken})
    write(os.path.join(etc, "numbers.yaml"), good_yaml.replace(
        "  small:\n", "      pinned: {country: US, type: DID, numbers: [\"%s\", \"%s\"]}\n  small:\n" % (moved, taken)))
    p = c.run("systemctl", "reload", UNIT)
    res.check(p.returncode == 0, "systemctl reload with pinned numbers", p.stdout + p.stderr)
    res.check(wait_for(lambda: moved in fake.held(arn_main, "main/pinned"), 90, failed),
              "the pinned number moved from small to main (UpdatePhoneNumber), retagged main/pinned")
    for kind, phone, subject in (("moved", moved, "moved between targets"), ("pin", taken, "cannot be had now")):
        recs = wait_for(lambda: [r for r in journal_json(c, "-u", UNIT, "MESSAGE_ID=" + MSG[kind])
                                 if r.get("PHONE_NUMBER") == phone], 60, failed) or []
        res.check(len(recs) == 1, "one %s record (MESSAGE_ID %s) for %s" % (kind, MSG[kind], phone),
                  json.dumps(recs, indent=1)[-2000:])
        xq = c.out("journalctl", "-x", "--no-pager", "-u", UNIT, "MESSAGE_ID=" + MSG[kind])
        res.check(subject in xq and "man:connect-numbersd(8)" in xq,
                  "journalctl -x shows the catalog entry of %s (%s)" % (MSG[kind], subject), xq[-2000:])

    # Clean stop.
    p = c.run("systemctl", "stop", UNIT, timeout=60)
    show = c.out("systemctl", "show", "-p", "ActiveState,Result,ExecMainStatus", UNIT)
    res.check(p.returncode == 0 and "ActiveState=inactive" in show and "ExecMainStatus=0" in show
              and "Result=success" in show, "systemctl stop: clean exit", show)
    p = c.run("connect-numbersd", "--status")
    res.check(p.returncode == 0 and "main" in p.stdout and "small" in p.stdout,
              "connect-numbersd --status reads the state", p.stdout + p.stderr)

    # A start with an invalid file exits 78 and is not restarted.
    write(os.path.join(etc, "numbers.yaml"), good_yaml.replace("count: 2}", "count: many}"))
    p = c.run("systemctl", "start", UNIT, timeout=60)
    time.sleep(1)
    show = c.out("systemctl", "show", "-p", "ActiveState,ExecMainStatus,NRestarts", UNIT)
    res.check(p.returncode != 0 and "ActiveState=failed" in show and "ExecMainStatus=78" in show
              and "NRestarts=0" in show, "an invalid file at start: exit 78, failed, no restart loop", show)
    write(os.path.join(etc, "numbers.yaml"), good_yaml)
    c.run("systemctl", "reset-failed", UNIT)

    # Purge leaves no state behind (DynamicUser= keeps it under
    # /var/lib/private, which is no file of the package).
    p = c.run("apt-get", "purge", "-y", "connect-numbers", timeout=120)
    leftover = [d for d in ("/var/lib/private/connect-numbers", "/var/lib/connect-numbers")
                if c.run("test", "-e", d).returncode == 0 or c.run("test", "-L", d).returncode == 0]
    res.check(p.returncode == 0 and not leftover, "apt purge removes the state (left: %s)" % leftover,
              p.stdout + p.stderr)


def main(res):
    ap = argparse.ArgumentParser()
    ap.add_argument("--deb", required=True)
    ap.add_argument("--cache", default=os.environ.get("CONNECT_NUMBERS_SYSTEM_CACHE",
                                                      "/var/cache/connect-numbers-system-test"))
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    args = ap.parse_args()
    t0 = time.time()

    cache, lock = cached_root(args.cache)
    run_dir = tempfile.mkdtemp(prefix="connect-numbers-system.", dir="/var/tmp")
    root = os.path.join(run_dir, "root")
    c = Container(root, "cn-system-%d" % os.getpid(), os.path.join(run_dir, "console.log"))
    fake = None
    try:
        r = subprocess.run(["cp", "-a", "--reflink=auto", cache, root])
        lock.close()
        if not res.check(r.returncode == 0, "fresh copy of the cached %s root" % SUITE):
            return res

        # Install the package as dpkg would on a real machine (no systemd
        # running in a chroot: the postinst enables but cannot start).
        shutil.copy(args.deb, os.path.join(root, "tmp", "connect-numbers.deb"))
        p = subprocess.run(["chroot", root, "dpkg", "-i", "/tmp/connect-numbers.deb"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                                "DEBIAN_FRONTEND": "noninteractive"})
        if not res.check(p.returncode == 0, "dpkg -i %s" % os.path.basename(args.deb), p.stdout):
            return res
        res.check(os.path.islink(os.path.join(root, "etc/systemd/system/multi-user.target.wants", UNIT)),
                  "the package enabled the unit")
        res.check(not os.path.exists(os.path.join(root, "etc/connect-numbers/numbers.yaml"))
                  and os.path.isdir(os.path.join(root, "etc/connect-numbers")),
                  "no numbers.yaml shipped; /etc/connect-numbers exists")
        p = subprocess.run(["chroot", root, "journalctl", "--list-catalog"], stdout=subprocess.PIPE, text=True)
        res.check(all(m in p.stdout for m in MSG.values()),
                  "systemd's dpkg trigger compiled the catalog (journalctl --list-catalog)")

        exporter_port = free_port()
        setup_node_exporter(root, exporter_port)

        try:
            fake = Fake(run_dir)
        except RuntimeError as e:
            res.check(False, "the fake Connect starts (%s)" % FAKE, str(e))

        c.boot()
        if not res.check(c.find_leader(), "systemd-nspawn starts the container's systemd",
                         open(c.logfile).read()[-2000:]):
            return res
        state = c.wait_booted()
        if not res.check(state in ("running", "degraded"), "the container boots (is-system-running: %s)" % state,
                         c.out("systemctl", "--failed", "--no-pager") + open(c.logfile).read()[-2000:]):
            return res

        # Enabled, but skipped at boot while there is no configuration.
        show = c.out("systemctl", "show", "-p", "ActiveState,ConditionResult,UnitFileState", UNIT)
        res.check("ActiveState=inactive" in show and "ConditionResult=no" in show and "UnitFileState=enabled" in show,
                  "without numbers.yaml the enabled unit is skipped at boot, not failed", show)

        if fake:
            service_checks(c, fake, res, root, fake.info["ca_file"], exporter_port)
        diagnose(c, res)
    finally:
        rc = c.poweroff()
        if c.proc:
            res.check(rc == 0, "the container powers off cleanly (nspawn exit %s)" % rc)
        if fake:
            fake.stop()
        if args.keep or os.environ.get("KEEP"):
            log("# kept %s" % run_dir)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        log("# %.0f s" % (time.time() - t0))
    return res


if __name__ == "__main__":
    res = Results()
    try:
        main(res)
    except Exception as e:  # a harness error is a failure, with its reason
        res.check(False, "system test harness: %s: %s" % (type(e).__name__, e))
    print("system: %d passed, %d failed" % (res.passed, res.failed))
    sys.exit(0 if res.failed == 0 else 1)
