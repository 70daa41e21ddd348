#!/usr/bin/env python3
"""bench.py: measures connect-numbersd against the fake Connect with Amazon
Connect's default API limits (2 requests/s per operation, burst 5, claims
IN_PROGRESS for 2 s); --factor F speeds the fake's rate and claim delay up
(never its burst) and scales every measured time back by F.

Scenarios:
  converge  40 numbers over 2 targets, then 200 over 4, from empty,
            `--once --wait 10m`: wall time over the true lower bound
            (max over operations of (minimum calls - burst) / rate, plus
            one claim latency, from the fake's configured figures),
            describes over claims, throttled calls
  idle      the service (interval 1h, WatchdogSec 30 s) on the converged
            state: wakeups and CPU over 60 s once the first pass is done
  steady    10,000 numbers over 10 targets seeded as ours: a warm-up pass,
            then a measured --once pass, the service's start to READY=1
            and its first pass, then 3 passes of the running service (one
            SIGUSR1 each): CPU, peak RssAnon and calls per pass, which the
            steady-state goals apply to (the --once figures also include
            process start and loading the whole state file)

Writes bench/results/results.md, results.csv, converge.csv and converge.png
(gnuplot), and prints the table. Standard library only; reuses the
integration tests' helpers (tests/integration/cnlib.py).
"""
import argparse
import csv
import glob
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import cnlib  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")
TAG = "connect-numbers:pool"

# AWS's defaults (docs/connect-api.md §6) and a realistic claim latency.
AWS_RATE = 2.0
AWS_BURST = 5
AWS_CLAIM_SEC = 2.0


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ------------------------------------------------------------------ process

def proc_status(pid):
    """VmHWM, VmRSS, RssAnon, RssFile (KiB) and context switches of pid
    (switches summed over its threads); None once it is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(v.split()[0])
        vol = nonvol = 0
        for st in glob.glob("/proc/%d/task/*/status" % pid):
            with open(st) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        nonvol += int(line.split()[1])
        out["voluntary"] = vol
        out["nonvoluntary"] = nonvol
    except (OSError, ValueError, IndexError):
        return None
    return out


def proc_cpu_sec(pid):
    """utime + stime of pid so far, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Measured:
    """A child run to its end with its rusage (CPU, peak RSS) and the peak
    RssAnon sampled from /proc as often as `every` seconds allows."""

    def __init__(self, cmd, env, logpath, every=0.002):
        self.logf = open(logpath, "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.logf, stderr=subprocess.STDOUT)
        self.peak_anon_kib = 0
        self.peak_hwm_kib = 0
        self.done = threading.Event()
        self.every = every
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _sample(self):
        while not self.done.is_set():
            st = proc_status(self.proc.pid)
            if st:
                self.peak_anon_kib = max(self.peak_anon_kib, st.get("RssAnon", 0))
                self.peak_hwm_kib = max(self.peak_hwm_kib, st.get("VmHWM", 0))
            time.sleep(self.every)

    def wait(self, timeout=900):
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                pid, status, ru = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.002)
        self.wall = time.monotonic() - self.t0
        self.done.set()
        self.sampler.join()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.returncode = self.proc.returncode
        self.cpu_sec = ru.ru_utime + ru.ru_stime
        self.maxrss_kib = ru.ru_maxrss
        self.logf.close()
        return self


class Notify:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET: keeps
    every message with the monotonic time it arrived."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []          # (monotonic time, text)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._recv, daemon=True)
        self.thread.start()

    def _recv(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode(errors="replace")))

    def wait(self, pred, timeout, since=0):
        """First message from index `since` on that satisfies pred: (index, time, text)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for i in range(since, len(self.messages)):
                    t, text = self.messages[i]
                    if pred(text):
                        return i, t, text
            time.sleep(0.001)
        return None

    def count(self, pred, t_from, t_to):
        with self.lock:
            return sum(1 for t, text in self.messages if t_from <= t <= t_to and pred(text))

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


def is_ready(text):
    return "READY=1" in text.split("\n")


def is_pass_status(text):
    lines = text.split("\n")
    return any(l.startswith("STATUS=") for l in lines) and "READY=1" not in lines and \
        not any(l.startswith("STATUS=Stopping") for l in lines)


def is_watchdog(text):
    return "WATCHDOG=1" in text.split("\n")


class HeldSampler:
    """Polls /admin/numbers: held numbers over time and the peak per pool."""

    def __init__(self, fake, counts, total, every=0.5):
        self.fake = fake
        self.counts = counts        # {"target/pool": count}
        self.total = total
        self.converged_at = None    # monotonic time all `total` were first seen CLAIMED
        self.every = every
        self.samples = []           # (t, claimed, in_progress)
        self.peak_over = 0          # most numbers held above count by one pool at one sample
        self.t0 = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def snapshot(self):
        claimed = in_progress = 0
        per_pool = {}
        for n in self.fake.admin("GET", "/admin/numbers")["numbers"]:
            if n.get("released") or n.get("expired"):
                continue
            tag = (n.get("tags") or {}).get(TAG)
            if n["status"] == "CLAIMED":
                claimed += 1
            elif n["status"] == "IN_PROGRESS":
                in_progress += 1
            else:
                continue
            if tag:
                per_pool[tag] = per_pool.get(tag, 0) + 1
        over = max([0] + [v - self.counts.get(k, 0) for k, v in per_pool.items()])
        return claimed, in_progress, over

    def _run(self):
        while True:
            t = time.monotonic() - self.t0
            try:
                c, ip, over = self.snapshot()
                if c >= self.total and ip == 0 and self.converged_at is None:
                    self.converged_at = time.monotonic()
                self.samples.append((t, c, ip))
                self.peak_over = max(self.peak_over, over)
            except OSError:
                pass
            if self.stop.wait(self.every):
                break

    def finish(self):
        self.stop.set()
        self.thread.join()
        c, ip, over = self.snapshot()
        self.samples.append((time.monotonic() - self.t0, c, ip))
        self.peak_over = max(self.peak_over, over)


# ------------------------------------------------------------------ results

class Results:
    def __init__(self):
        self.rows = []              # scenario, metric, value, unit, goal, ok

    def add(self, scenario, metric, value, unit="", goal="", ok=None):
        if isinstance(value, float):
            value = round(value, 3)
        self.rows.append({"scenario": scenario, "metric": metric, "value": value, "unit": unit, "goal": goal,
                          "ok": "" if ok is None else ("yes" if ok else "NO")})

    def write(self, header):
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "results.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["scenario", "metric", "value", "unit", "goal", "ok"])
            w.writeheader()
            for r in self.rows:
                w.writerow(r)
        lines = ["# connect-numbersd benchmark", ""] + header + ["",
                 "| scenario | metric | value | unit | goal | met |",
                 "| --- | --- | ---: | --- | --- | --- |"]
        for r in self.rows:
            lines.append("| %s | %s | %s | %s | %s | %s |" % (r["scenario"], r["metric"], r["value"], r["unit"],
                                                             r["goal"], r["ok"]))
        text = "\n".join(lines) + "\n"
        with open(os.path.join(RESULTS, "results.md"), "w") as f:
            f.write(text)
        return text


# ------------------------------------------------------------------ helpers

def pool_yaml(fake, targets, rate, burst, interval="1h"):
    return lambda path: cnlib.write_yaml(path, fake, targets, interval=interval, rate=rate, burst=burst)


def daemon(*args):
    return [cnlib.DAEMON] + list(args)


def kib_to_mib(k):
    return k / 1024.0


def perf_available():
    if not shutil.which("perf"):
        return False
    p = subprocess.run(["perf", "stat", "-x,", "-e", "syscalls:sys_enter_epoll_wait", "--", "true"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return p.returncode == 0 and "not supported" not in p.stderr and "event syntax error" not in p.stderr


def perf_count_wakeups(pid, seconds):
    """epoll waits of pid over `seconds` with perf (None when perf cannot)."""
    events = ["syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait", "syscalls:sys_enter_epoll_pwait2"]
    p = subprocess.run(["perf", "stat", "-x,", "-e", ",".join(events), "-p", str(pid), "--", "sleep",
                        str(seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return None
    total, seen = 0, False
    for line in p.stderr.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[2].startswith("syscalls:"):
            if parts[0].strip().isdigit():
                total += int(parts[0])
                seen = True
            elif parts[0].startswith("<not counted>"):
                seen = True
    return total if seen else None


def pass_calls(fake, arns):
    """The calls the fake saw since its last reset: answered list calls per
    target (in the order of arns), list calls refused (throttled or failed),
    and every other call (describe, claim, ...)."""
    lists_by_arn, refused_lists = {}, 0
    for q in fake.requests():
        if q["op"] == "ListPhoneNumbersV2":
            if q.get("status") != 200:
                refused_lists += 1
                continue
            body = q.get("body") or {}
            arn = body.get("TargetArn") if isinstance(body, dict) else None
            lists_by_arn[arn] = lists_by_arn.get(arn, 0) + 1
    calls = fake.calls()["calls"]
    others = sum(v for k, v in calls.items() if k != "ListPhoneNumbersV2")
    return [lists_by_arn.get(a, 0) for a in arns], refused_lists, others


class AnonPeak:
    """Samples RssAnon of a running pid every `every` seconds until stop():
    the peak seen (KiB)."""

    def __init__(self, pid, every=0.0005):
        self.pid = pid
        self.every = every
        self.peak_kib = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _sample(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                        return
        except (OSError, ValueError, IndexError):
            pass

    def _run(self):
        while not self.done.is_set():
            self._sample()
            time.sleep(self.every)

    def stop(self):
        self.done.set()
        self.thread.join()
        self._sample()
        return self.peak_kib


# ------------------------------------------------------------------ scenarios

def true_lower_bound(minimum, rate, burst, claim_delay):
    """The least wall time any client can converge in against buckets of
    `rate` calls/s and `burst` tokens per operation: for each operation, the
    calls beyond the burst at the bucket's rate, the slowest operation
    deciding; plus one claim latency (the last claim must still settle and be
    seen). Every figure is the fake's configured one, none is measured."""
    return max(max(0, v - burst) / rate for v in minimum.values()) + claim_delay


def scenario_converge(res, work, F, mode, n_targets=4, per_target=50, idle_sec=60, run_idle=True):
    # Time scales by F, tokens do not: the fake's rate and claim delay are
    # scaled, its burst stays AWS's 5, so the bound scales exactly by 1/F.
    rate, burst, claim_delay = AWS_RATE * F, AWS_BURST, AWS_CLAIM_SEC / F
    fake = cnlib.Fake(work + "/fake-%dx%d" % (n_targets, per_target), "--rate", str(rate), "--burst", str(burst),
                      "--claim-delay", str(claim_delay), "--quota", "1000")
    try:
        targets, counts = {}, {}
        for i in range(n_targets):
            name = "conv%d" % i
            targets[name] = {"arn": cnlib.instance_arn(), "quota": max(100, 2 * per_target),
                             "pools": {"main": {"country": "US", "type": "DID", "count": per_target}}}
            counts[name + "/main"] = per_target
        total = n_targets * per_target
        yaml = os.path.join(work, "converge-%d.yaml" % total)
        cnlib.write_yaml(yaml, fake, targets, interval="1h", rate=rate, burst=burst)
        state = os.path.join(work, "state-converge-%d" % total)
        env = cnlib.clean_env(fake)

        minimum = {"ClaimPhoneNumber": total,
                   "SearchAvailablePhoneNumbers": n_targets * math.ceil(per_target / 10),
                   "DescribePhoneNumber": total, "ListPhoneNumbersV2": n_targets}
        lb_min = true_lower_bound(minimum, rate, burst, claim_delay)
        lb_text = "bound %.1f s = max over operations of (calls - %d) / %g/s + %g s claim latency" % (
            lb_min * F, burst, AWS_RATE, AWS_CLAIM_SEC)
        log("converge (%s): %d numbers over %d targets, F=%g (fake rate %g burst %d, claim %.2fs)" % (
            mode, total, n_targets, F, rate, burst, claim_delay))
        sampler = HeldSampler(fake, counts, total=total, every=0.5 if mode == "once" else 0.2)
        if mode == "once":
            m = Measured(daemon("--once", "-c", yaml, "--state-dir", state, "--log-target", "console",
                                "--wait", "10m"), env, os.path.join(work, "converge.log")).wait()
            wall = m.wall
            converged = m.returncode == 0
        else:
            m = Measured(daemon("-c", yaml, "--state-dir", state, "--log-target", "console"), env,
                         os.path.join(work, "converge.log"))
            # Three times the bound: a service that has not converged by then
            # is waiting for its next interval (1 h) and would never finish.
            deadline = time.monotonic() + max(60.0, 3 * lb_min)
            while sampler.converged_at is None and time.monotonic() < deadline and m.proc.poll() is None:
                time.sleep(0.05)
            converged = sampler.converged_at is not None
            wall = (sampler.converged_at if converged else time.monotonic()) - m.t0
            if m.proc.poll() is None:
                m.proc.send_signal(signal.SIGTERM)
            m.wait(120)
        sampler.finish()
        calls = fake.calls()
        held = [n for n in fake.numbers() if (n.get("tags") or {}).get(TAG) in counts]
        per_pool = {}
        for n in held:
            per_pool[n["tags"][TAG]] = per_pool.get(n["tags"][TAG], 0) + 1
        over_final = sum(max(0, v - counts[k]) for k, v in per_pool.items())
        phones = [n["phone_number"] for n in held]

        got = calls["calls"]
        s = "converge %d/%d" % (total, n_targets)
        res.add(s, "exit status" + (" (--once)" if mode == "once" else " (service, after SIGTERM)"), m.returncode,
                "", "0", m.returncode == 0)
        res.add(s, "numbers held at the end", len(held), "", str(total), len(held) == total and
                len(set(phones)) == len(phones))
        res.add(s, "wall time to converge (scaled to AWS rates)", wall * F, "s",
                "" if converged else "did not converge")
        res.add(s, "true lower bound (from the fake's rates: max over operations of (minimum calls - burst) / "
                "rate, plus one claim latency; scaled)", lb_min * F, "s")
        res.add(s, "wall / true lower bound (%s)" % lb_text, wall / lb_min, "", "<= 1.10",
                converged and wall / lb_min <= 1.10)
        total_calls = 0
        for op in ("ClaimPhoneNumber", "SearchAvailablePhoneNumbers", "DescribePhoneNumber", "ListPhoneNumbersV2"):
            n = got.get(op, 0)
            total_calls += n
            ratio = n / minimum[op]
            res.add(s, "%s calls (minimum %d)" % (op, minimum[op]), n, "calls", "<= 1.3 x minimum",
                    converged and ratio <= 1.3)
        claims = got.get("ClaimPhoneNumber", 0)
        describes = got.get("DescribePhoneNumber", 0)
        res.add(s, "describes / claims (%d / %d)" % (describes, claims), describes / max(1, claims), "", "<= 1.05",
                claims > 0 and describes / claims <= 1.05)
        others = {k: v for k, v in got.items() if k not in minimum}
        for op, n in sorted(others.items()):
            res.add(s, "%s calls (minimum 0)" % op, n, "calls", "0", n == 0)
        res.add(s, "all calls / minimum", total_calls / sum(minimum.values()), "", "<= 1.3",
                converged and total_calls / sum(minimum.values()) <= 1.3)
        thr = sum(calls.get("throttled", {}).values())
        res.add(s, "throttled calls", thr, "calls", "0", thr == 0)
        res.add(s, "5xx/other errors", sum(calls.get("errors", {}).values()), "calls")
        res.add(s, "over-claims (final)", over_final, "numbers", "0", over_final == 0)
        res.add(s, "over-claims (peak during the run, 0.5 s samples)", sampler.peak_over, "numbers", "0",
                sampler.peak_over == 0)
        res.add(s, "validation failures at the fake", calls.get("validation_failures", 0), "", "0",
                calls.get("validation_failures", 0) == 0)
        res.add(s, "peak RSS (ru_maxrss)", kib_to_mib(m.maxrss_kib), "MiB")
        res.add(s, "peak RssAnon (sampled)", kib_to_mib(m.peak_anon_kib), "MiB")
        res.add(s, "CPU (user+sys, getrusage)", m.cpu_sec, "s")
        write_converge_plot(sampler.samples, F, total, n_targets, lb_min * F)
        if not (converged and len(held) == total):
            # Top up with more --once passes so that idle still has a
            # converged state to run on; how many it took is a result too.
            extra = 0
            while extra < 20:
                extra += 1
                r = subprocess.run(daemon("--once", "-c", yaml, "--state-dir", state, "--log-target", "console",
                                          "--wait", "10m"), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                if r.returncode == 0:
                    break
            n_held = len([n for n in fake.numbers() if (n.get("tags") or {}).get(TAG) in counts])
            res.add(s, "extra --once passes until converged (not counted above)", extra, "passes", "0", False)
            if r.returncode != 0 or n_held != total:
                log("converge never finished (%d/%d held): idle skipped" % (n_held, total))
                return
        if run_idle:
            scenario_idle(res, work, fake, yaml, state, idle_sec)
    finally:
        fake.stop()


def start_service(yaml, state, env, work, name):
    logf = open(os.path.join(work, name + ".log"), "w")
    t0 = time.monotonic()
    p = subprocess.Popen(daemon("-c", yaml, "--state-dir", state, "--log-target", "console"), env=env,
                         stdout=logf, stderr=subprocess.STDOUT)
    return p, t0, logf


def stop_service(p, logf):
    rc = cnlib.stop_process(p, timeout=60)
    logf.close()
    return rc


def scenario_idle(res, work, fake, yaml, state, idle_sec):
    s = "idle"
    sock = os.path.join(work, "notify-idle.sock")
    notify = Notify(sock)
    env = cnlib.clean_env(fake, NOTIFY_SOCKET=sock, WATCHDOG_USEC=30000000)
    p, t0, logf = start_service(yaml, state, env, work, "idle")
    try:
        log("idle: service on the converged state, WATCHDOG_USEC=30s, %d s" % idle_sec)
        ready = notify.wait(is_ready, 30)
        done = notify.wait(is_pass_status, 120, since=ready[0] + 1 if ready else 0)
        if not ready or not done:
            res.add(s, "service reached READY=1 and finished its first pass", "no", "", "yes", False)
            return
        res.add(s, "first pass on the converged state", "%.3f" % (done[1] - t0), "s (unscaled)")
        res.add(s, "first pass STATUS", done[2].split("STATUS=", 1)[1].split("\n")[0])
        time.sleep(1.0)             # let the pass's own tail (state save) settle
        fake.reset()
        before = proc_status(p.pid)
        cpu0 = proc_cpu_sec(p.pid)
        w0 = time.monotonic()
        wakeups = perf_count_wakeups(p.pid, idle_sec) if perf_available() else None
        if wakeups is None:
            time.sleep(max(0, idle_sec - (time.monotonic() - w0)))
        w1 = time.monotonic()
        after = proc_status(p.pid)
        cpu1 = proc_cpu_sec(p.pid)
        minutes = (w1 - w0) / 60.0
        dogs = notify.count(is_watchdog, w0, w1)
        calls = sum(fake.calls()["calls"].values())
        vol = after["voluntary"] - before["voluntary"]
        res.add(s, "measured window", w1 - w0, "s")
        res.add(s, "WATCHDOG=1 messages", dogs / minutes, "per min", "2.7-4 (every 15-22.5 s for WatchdogSec 30 s)")
        if wakeups is not None:
            res.add(s, "epoll waits (perf syscalls:sys_enter_epoll_*)", wakeups / minutes, "per min",
                    "no more than the watchdog pings", wakeups <= dogs + minutes)
        res.add(s, "voluntary context switches", vol / minutes, "per min", "no more than the watchdog pings",
                vol <= dogs + minutes)
        res.add(s, "API calls while idle", calls, "calls", "0", calls == 0)
        res.add(s, "CPU while idle", (cpu1 - cpu0) * 1000.0, "ms")
        res.add(s, "RssAnon while idle", kib_to_mib(after.get("RssAnon", 0)), "MiB")
        res.add(s, "VmHWM (peak RSS since start)", kib_to_mib(after.get("VmHWM", 0)), "MiB")
    finally:
        rc = stop_service(p, logf)
        notify.close()
        res.add(s, "exit status after SIGTERM", rc, "", "0", rc == 0)


def scenario_steady(res, work, n_targets=10, per_target=1000):
    s = "steady"
    fake = cnlib.Fake(work + "/steady", "--rate", "0", "--burst", "1000", "--claim-delay", "0.5",
                      "--quota", "2000")
    try:
        targets, arns = {}, {}
        for i in range(n_targets):
            name = "st%d" % i
            arn = cnlib.instance_arn()
            arns[arn] = name
            targets[name] = {"arn": arn, "quota": 1000,
                             "pools": {"main": {"country": "US", "type": "DID", "count": per_target}}}
            fake.admin("POST", "/admin/seed", {"generate": {"target_arn": arn, "country": "US", "type": "DID",
                                                            "count": per_target, "tags": {TAG: name + "/main"}}})
        total = n_targets * per_target
        yaml = os.path.join(work, "steady.yaml")
        state = os.path.join(work, "state-steady")
        env = cnlib.clean_env(fake)

        log("steady: warm-up pass over %d seeded numbers (fast rates)" % total)
        cnlib.write_yaml(yaml, fake, targets, interval="1h", rate=1000, burst=1000)
        warm = Measured(daemon("--once", "-c", yaml, "--state-dir", state, "--log-target", "console",
                               "--wait", "5m"), env, os.path.join(work, "steady-warmup.log")).wait(900)
        wc = fake.calls()["calls"]
        res.add(s, "warm-up exit status", warm.returncode, "", "0", warm.returncode == 0)
        res.add(s, "warm-up wall time (fake unlimited, api_rate 1000)", warm.wall, "s")
        res.add(s, "warm-up DescribePhoneNumber calls", wc.get("DescribePhoneNumber", 0), "calls", str(total))
        res.add(s, "warm-up CPU", warm.cpu_sec, "s")
        try:
            res.add(s, "state.json size", os.path.getsize(os.path.join(state, "state.json")) / 1048576.0, "MiB")
        except OSError:
            pass
        if warm.returncode != 0:
            log("warm-up failed (exit %d): see %s" % (warm.returncode, os.path.join(work, "steady-warmup.log")))
            return

        # The measured pass runs at AWS's own limits.
        fake.config(rate=AWS_RATE, burst=AWS_BURST)
        cnlib.write_yaml(yaml, fake, targets, interval="1h", rate=AWS_RATE, burst=AWS_BURST)
        fake.reset()
        log("steady: measured --once pass")
        m = Measured(daemon("--once", "-c", yaml, "--state-dir", state, "--log-target", "console", "--wait", "1m"),
                     env, os.path.join(work, "steady.log"), every=0.0005).wait()
        want_lists = math.ceil(per_target / 1000)
        lists, throttled_lists, per_number = pass_calls(fake, arns)
        res.add(s, "exit status", m.returncode, "", "0", m.returncode == 0)
        res.add(s, "answered list calls per target (min..max)", "%d..%d" % (min(lists), max(lists)), "calls",
                "%d (ceil(n/1000))" % want_lists, min(lists) == max(lists) == want_lists)
        res.add(s, "list calls refused (throttled or failed) and retried", throttled_lists, "calls")
        res.add(s, "other calls (describe, claim, ...)", per_number, "calls", "0", per_number == 0)
        res.add(s, "wall time", m.wall * 1000.0, "ms")
        res.add(s, "--once CPU (user+sys, getrusage; --once: includes process start and loading the whole "
                "state file)", m.cpu_sec * 1000.0, "ms")
        res.add(s, "--once peak RSS (ru_maxrss)", kib_to_mib(m.maxrss_kib), "MiB")
        res.add(s, "--once peak RssAnon (sampled every 0.5 ms; --once: includes process start and loading the "
                "whole state file)", kib_to_mib(m.peak_anon_kib), "MiB")

        # Service mode: start to READY=1, then its first (steady) pass.
        sock = os.path.join(work, "notify-steady.sock")
        notify = Notify(sock)
        fake.reset()
        senv = cnlib.clean_env(fake, NOTIFY_SOCKET=sock)
        p, t0, logf = start_service(yaml, state, senv, work, "steady-service")
        try:
            ready = notify.wait(is_ready, 30)
            if not ready:
                res.add(s, "service READY=1", "never", "", "<= 20 ms", False)
                return
            ms = (ready[1] - t0) * 1000.0
            res.add(s, "service start to READY=1", ms, "ms", "<= 20", ms <= 20)
            done = notify.wait(is_pass_status, 120, since=ready[0] + 1)
            if done:
                res.add(s, "service start to first pass done", (done[1] - t0) * 1000.0, "ms")
                st = proc_status(p.pid) or {}
                res.add(s, "service VmHWM after the pass", kib_to_mib(st.get("VmHWM", 0)), "MiB")
                res.add(s, "service RssAnon after the first pass", kib_to_mib(st.get("RssAnon", 0)), "MiB")
                res.add(s, "service CPU for start + first pass", proc_cpu_sec(p.pid) * 1000.0, "ms")
                sc = fake.calls()["calls"]
                res.add(s, "service first pass: calls other than list",
                        sum(v for k, v in sc.items() if k != "ListPhoneNumbersV2"), "calls", "0",
                        sum(v for k, v in sc.items() if k != "ListPhoneNumbersV2") == 0)
                service_steady_passes(res, s, p, notify, fake, arns, want_lists, done[0] + 1)
            else:
                res.add(s, "service finished its first pass", "no", "", "yes", False)
        finally:
            stop_service(p, logf)
            notify.close()
    finally:
        fake.stop()


def service_steady_passes(res, s, p, notify, fake, arns, want_lists, since, passes=3):
    """The product's steady state: passes of the running service after its
    first one (state already in memory), each started by SIGUSR1. The CPU
    and peak RssAnon goals apply here."""
    time.sleep(0.5)                 # the first pass's tail (pass info, malloc_trim)
    rows = []                       # (cpu ms, peak RssAnon KiB, wall ms, lists, refused, others)
    for i in range(passes):
        fake.reset()
        with notify.lock:
            since = max(since, len(notify.messages))
        cpu0 = proc_cpu_sec(p.pid)
        sampler = AnonPeak(p.pid)
        t0 = time.monotonic()
        p.send_signal(signal.SIGUSR1)
        done = notify.wait(is_pass_status, 120, since=since)
        if not done:
            sampler.stop()
            log("steady: service pass %d never finished" % (i + 1))
            res.add(s, "service steady pass %d finished" % (i + 1), "no", "", "yes", False)
            return
        wall_ms = (done[1] - t0) * 1000.0
        since = done[0] + 1
        # STATUS goes out before the pass's tail (pass info file, malloc_trim):
        # count that too.
        time.sleep(0.1)
        peak = sampler.stop()
        cpu_ms = (proc_cpu_sec(p.pid) - cpu0) * 1000.0
        lists, refused, others = pass_calls(fake, arns)
        rows.append((cpu_ms, peak, wall_ms, lists, refused, others))
        log("steady: service pass %d: CPU %.0f ms, peak RssAnon %.2f MiB, wall %.0f ms, lists %d..%d, other %d" % (
            i + 1, cpu_ms, kib_to_mib(peak), wall_ms, min(lists), max(lists), others))
        time.sleep(0.5)
    between = (proc_status(p.pid) or {}).get("RssAnon", 0)

    cpus = sorted(r[0] for r in rows)
    peaks = [kib_to_mib(r[1]) for r in rows]
    lmin = min(min(r[3]) for r in rows)
    lmax = max(max(r[3]) for r in rows)
    others = max(r[5] for r in rows)
    what = "service steady pass (SIGUSR1 after the first pass; CPU from /proc utime+stime, %d ms ticks)" % (
        1000 // os.sysconf("SC_CLK_TCK"))
    res.add(s, what + ": CPU per pass", ", ".join("%.0f" % r[0] for r in rows), "ms")
    res.add(s, "service steady pass CPU (max of %d)" % passes, cpus[-1], "ms", "<= 50", cpus[-1] <= 50)
    res.add(s, "service steady pass CPU (median of %d)" % passes, cpus[len(cpus) // 2], "ms")
    res.add(s, "service steady pass peak RssAnon per pass (sampled every 0.5 ms)",
            ", ".join("%.2f" % v for v in peaks), "MiB")
    res.add(s, "service steady pass peak RssAnon (max of %d)" % passes, max(peaks), "MiB", "<= 8", max(peaks) <= 8)
    res.add(s, "service RssAnon between passes (after the last)", kib_to_mib(between), "MiB")
    res.add(s, "service steady pass wall time per pass (SIGUSR1 to STATUS)",
            ", ".join("%.0f" % r[2] for r in rows), "ms")
    res.add(s, "service steady pass list calls per target (answered, min..max over targets and passes)",
            "%d..%d" % (lmin, lmax), "calls", "%d (ceil(n/1000))" % want_lists, lmin == lmax == want_lists)
    res.add(s, "service steady pass list calls refused (throttled or failed), per pass",
            ", ".join(str(r[4]) for r in rows), "calls")
    res.add(s, "service steady pass other calls (max of %d)" % passes, others, "calls", "0", others == 0)


def write_converge_plot(samples, F, total, n_targets, bound_sec):
    os.makedirs(RESULTS, exist_ok=True)
    suffix = "" if total == 200 else "-%d" % total
    data = os.path.join(RESULTS, "converge%s.csv" % suffix)
    with open(data, "w") as f:
        f.write("# seconds (scaled to AWS rates),claimed,in_progress\n")
        for t, c, ip in samples:
            f.write("%.2f,%d,%d\n" % (t * F, c, ip))
    if not shutil.which("gnuplot"):
        log("gnuplot missing: no converge.png")
        return
    xmax = max([bound_sec * 1.15] + [t * F * 1.02 for t, _, _ in samples])
    script = """set terminal png size 900,540 noenhanced
set output '%s'
set datafile separator ','
set title 'Converge: %d numbers over %d targets from empty (times scaled to AWS rates, F=%g)'
set xlabel 'seconds'
set ylabel 'numbers'
set xrange [0:%.1f]
set yrange [0:%d]
set key left top
set grid
set arrow from %.1f, graph 0 to %.1f, graph 1 nohead dashtype 2 lc rgb 'gray40'
set label 'lower bound' at %.1f, graph 0.05 offset 0.5,0 tc rgb 'gray40'
plot '%s' using 1:2 with lines lw 2 title 'CLAIMED', \\
     '%s' using 1:3 with lines lw 1 title 'IN_PROGRESS', \\
     %d with lines dashtype 3 lc rgb 'black' title 'desired'
""" % (os.path.join(RESULTS, "converge%s.png" % suffix), total, n_targets, F, xmax, int(total * 1.1) + 1, bound_sec, bound_sec, bound_sec,
       data, data, total)
    p = subprocess.run(["gnuplot"], input=script, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        log("gnuplot failed: %s" % p.stderr.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factor", type=float, default=1,
                    help="time scale F (default 1: AWS's own 2/s; F=5 runs the fake at 10/s, still burst 5, "
                    "claims 0.4 s, and scales the times back)")
    ap.add_argument("--idle-seconds", type=int, default=60, help="idle measurement window (default 60)")
    ap.add_argument("--converge-mode", choices=("once", "service"), default="once",
                    help="converge with one --once --wait 10m (default) or the service until all are claimed")
    ap.add_argument("--converge", default="40/2,200/4",
                    help="converge scenarios as numbers/targets, comma-separated (default 40/2,200/4); the idle "
                    "scenario runs on the last")
    ap.add_argument("--only", choices=("converge", "steady"), help="run one scenario (converge includes idle)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if not os.access(cnlib.DAEMON, os.X_OK):
        sys.exit("bench: %s is missing: run make" % cnlib.DAEMON)
    F = args.factor
    work = tempfile.mkdtemp(prefix="cn-bench-")
    res = Results()
    t0 = time.monotonic()
    try:
        if args.only in (None, "converge"):
            sizes = [tuple(int(x) for x in c.split("/")) for c in args.converge.split(",") if c]
            for i, (total, n_targets) in enumerate(sizes):
                scenario_converge(res, work, F, args.converge_mode, n_targets=n_targets,
                                  per_target=total // n_targets, idle_sec=args.idle_seconds,
                                  run_idle=i == len(sizes) - 1)
        if args.only in (None, "steady"):
            scenario_steady(res, work)
    finally:
        if args.keep:
            log("work directory kept: %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    ver = subprocess.run([cnlib.DAEMON, "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    header = [
        "%s, %s; %s, %d CPUs; bench took %.0f s." % (ver, cnlib.DAEMON.replace(ROOT + "/", ""),
                                                     time.strftime("%Y-%m-%d %H:%M"), os.cpu_count(),
                                                     time.monotonic() - t0),
        "Converge runs at F=%g times AWS's default limits (fake: rate %g/s, burst %d per operation, claims "
        "IN_PROGRESS %.2f s; daemon api_rate {default: %g, burst: %d}); its times are scaled back by F. Its "
        "lower bound is the true one: max over operations of (minimum calls - burst) / rate, plus one claim "
        "latency, from the fake's configured figures." % (
            F, AWS_RATE * F, AWS_BURST, AWS_CLAIM_SEC / F, AWS_RATE * F, AWS_BURST),
        "Steady state runs at AWS's own limits (2/s, burst 5), unscaled: a measured --once pass after a warm-up "
        "one, then the service: start to READY=1, its first pass, and 3 passes started by SIGUSR1 (the steady "
        "state the CPU and peak RssAnon goals apply to).",
        "Idle counts wakeups over a window once the service's first pass is done (WATCHDOG_USEC=30 s).",
    ]
    text = res.write(header)
    print(text)
    bad = [r for r in res.rows if r["ok"] == "NO"]
    if bad:
        log("%d goal(s) not met" % len(bad))
    return 0


if __name__ == "__main__":
    sys.exit(main())
