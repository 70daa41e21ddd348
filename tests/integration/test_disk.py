"""The state directory under I/O failure.

FullDisk: a tiny tmpfs holds the state; after a good pass it is filled to
a few KB short of what the next state needs. A pass that wants more numbers
must not crash, must say so once, must leave state.json as it was (and no
temp file), and must claim nothing it could not record. Once space is back,
a pass claims the rest. Needs root (mount); skipped otherwise.

FailingIO: tests/shim/failio.c (LD_PRELOAD) makes one call on the state
directory fail (open, write, fchmod, fsync, close, rename) at its first,
second, middle and last use in a pass, with EIO or ENOSPC. After each:
the daemon did not crash, every number the fake saw claimed is in the
state on disk (nothing claimed unrecorded), --status still reads the
state, and a clean --once ends with exactly `count`, none twice.
With an ASan build (BUILD=build-sanitize) the ASan runtime is put first in
LD_PRELOAD, as it must be; if that does not start, the shim part is skipped."""
import errno
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TAG = "connect-numbers:pool"
SHIM_SRC = os.path.join(cnlib.ROOT, "tests", "shim", "failio.c")
SHIM_CALLS = ("open", "write", "fchmod", "fsync", "close", "rename")
NO_SPACE = "No space left on device"


def crashed(r):
    return r.returncode < 0 or r.returncode > 125 or any(
        m in r.stderr for m in ("AddressSanitizer", "runtime error:", "LeakSanitizer"))


class StateDirTest(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.2", "--rate", "0", "--quota", "1000")

    def write_config(self, arn, count, name="disk"):
        cnlib.write_yaml(self.yaml, self.fake, {name: {"arn": arn, "quota": 50, "pools": {
            "main": {"country": "US", "type": "DID", "count": count}}}})

    def held(self, arn, name="disk"):
        return [n for n in self.fake.numbers(arn) if (n.get("tags") or {}).get(TAG) == name + "/main"]

    def assert_exactly(self, arn, count, name="disk", why=""):
        held = self.held(arn, name)
        phones = sorted(n["phone_number"] for n in held)
        self.assertEqual(len(held), count, "%s: held %s" % (why, phones))
        self.assertEqual(len(set(phones)), count, "%s: a number held twice" % why)
        every = self.fake.numbers(arn, active=False)
        self.assertEqual(sorted(n["phone_number"] for n in every), phones,
                         "%s: numbers claimed beyond the held ones" % why)
        self.assertTrue(all(n["claims"] == 1 for n in every), why)

    def state_numbers(self, state):
        return {n["phone_number"] for n in cnlib.read_state(state)["numbers"]}


class FullDisk(StateDirTest):

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to mount a tmpfs for the state directory")
        super().setUp()
        self.mnt = os.path.join(self.tmp, "statefs")
        os.makedirs(self.mnt)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k,mode=0755", "tmpfs", self.mnt],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            super().tearDown()
            raise unittest.SkipTest("cannot mount a tmpfs: %s" % p.stdout.strip())
        self.mounted = True
        self.state = os.path.join(self.mnt, "state")

    def tearDown(self):
        # Processes end first (they may hold the mount), then the mount, then the temp dir.
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if getattr(self, "mounted", False):
            subprocess.run(["umount", "-l", self.mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        super().tearDown()

    def fill(self, leave):
        """Fills the file system, then frees `leave` bytes (whole pages)."""
        filler = os.path.join(self.mnt, "filler")
        with open(filler, "wb", buffering=0) as f:
            chunk = b"\0" * 4096
            try:
                while True:
                    f.write(chunk)
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
        size = os.path.getsize(filler)
        os.truncate(filler, max(0, (size // 4096) * 4096 - leave))
        st = os.statvfs(self.mnt)
        return filler, st.f_bavail * st.f_frsize

    def test_full_disk(self):
        arn = cnlib.instance_arn()
        self.write_config(arn, 6)
        self.once("--wait", "20s", check=0)
        self.assert_exactly(arn, 6, why="first pass")
        path = os.path.join(self.state, "state.json")
        with open(path, "rb") as f:
            before = f.read()
        old = self.state_numbers(self.state)

        # A few KB free (whole tmpfs pages), always short of the next state,
        # which is bigger than this one: its write starts and then fails.
        filler, free = self.fill(((len(before) - 1) // 4096) * 4096)
        self.assertLess(free, len(before), "free space must be short of the next state")
        self.write_config(arn, 10)
        self.fake.reset()
        r = self.once("--wait", "10s")
        self.assertFalse(crashed(r), "crashed on a full disk: %d\n%s" % (r.returncode, r.stderr[-3000:]))
        self.assertIn(r.returncode, (1, 75), r.stderr[-3000:])
        lines = [l for l in r.stderr.splitlines() if NO_SPACE in l]
        self.assertEqual(len(lines), 1, "the full disk must be logged once per pass:\n%s" % r.stderr[-3000:])
        self.assertEqual(self.calls().get("ClaimPhoneNumber", 0), 0, "claimed what it could not record")
        self.assertEqual(len(self.held(arn)), 6)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before, "state.json changed on a full disk")
        self.assertEqual([x for x in os.listdir(self.state) if ".tmp" in x], [],
                         "temp files left in the state directory")
        st = self.status("--json")
        doc = json.loads(st.stdout)
        self.assertEqual(doc["claimed"], 6, st.stdout)
        self.assertEqual(self.state_numbers(self.state), old)

        os.unlink(filler)
        r = self.once("--wait", "20s", check=0)
        self.assertNotIn(NO_SPACE, r.stderr)
        self.assert_exactly(arn, 10, why="after space came back")
        self.assert_no_validation_failures()


class FailingIO(StateDirTest):

    @classmethod
    def setUpClass(cls):
        cls.shim_dir = None
        cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if not cc:
            raise unittest.SkipTest("no C compiler for the failio shim")
        import tempfile
        cls.shim_dir = tempfile.mkdtemp(prefix="cn-shim-")
        cls.shim = os.path.join(cls.shim_dir, "failio.so")
        p = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-std=c11", "-Wall", "-Wextra", "-o", cls.shim, SHIM_SRC,
                            "-ldl"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            raise unittest.SkipTest("cannot build the failio shim: %s" % p.stdout)
        cls.preload = cls.shim
        ldd = subprocess.run(["ldd", cnlib.DAEMON], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        asan = [l.split("=>")[1].split()[0] for l in ldd.stdout.splitlines() if "libasan" in l and "=>" in l]
        if asan:
            # ASan must be the first object loaded; the shim comes after it
            # and ASan's interceptors reach it through RTLD_NEXT.
            cls.preload = "%s:%s" % (asan[0], cls.shim)

    @classmethod
    def tearDownClass(cls):
        if cls.shim_dir:
            shutil.rmtree(cls.shim_dir, ignore_errors=True)

    def shim_env(self, state, call, after, err, trace=False):
        log = os.path.join(self.tmp, "failio.log")
        if os.path.exists(log):
            os.unlink(log)
        env = dict(self.env, LD_PRELOAD=self.preload, FAILIO_DIR=state, FAILIO_CALL=call, FAILIO_AFTER=str(after),
                   FAILIO_ERRNO=err, FAILIO_LOG=log)
        if trace:
            env["FAILIO_TRACE"] = "1"
        return env, log

    def run_case(self, i, call, after, err):
        """A good pass with 2, a failing pass wanting 4, then a clean pass."""
        name = "case%d" % i
        arn = cnlib.instance_arn()
        state = os.path.join(self.tmp, "state-%d" % i)
        os.makedirs(state)
        why = "%s failing at use %d with %s" % (call, after, err)
        self.write_config(arn, 2, name)
        self.once("--wait", "20s", state=state, check=0)
        self.write_config(arn, 4, name)
        env, log = self.shim_env(state, call, after, err)
        r = self.once("--wait", "20s", state=state, env=env)
        self.assertFalse(crashed(r), "%s: crashed (%d)\n%s" % (why, r.returncode, r.stderr[-3000:]))
        self.assertIn(r.returncode, (0, 1, 75), "%s:\n%s" % (why, r.stderr[-3000:]))
        fired = False
        if os.path.exists(log):
            with open(log) as f:
                fired = "fail " in f.read()
        claimed = {n["phone_number"] for n in self.fake.numbers(arn, active=False)}
        self.assertLessEqual(len(self.held(arn, name)), 4, why)
        self.assertLessEqual(claimed, self.state_numbers(state), "%s: claimed a number the state on disk does not "
                                                                 "record" % why)
        st = run_status(state, self.env)
        self.assertEqual(st.returncode, 0, "%s: --status cannot read the state: %s" % (why, st.stderr))
        doc = json.loads(st.stdout)
        self.assertGreaterEqual(doc["claimed"] + doc["in_progress"], 2, "%s: the old numbers are gone" % why)
        r = self.once("--wait", "20s", state=state)
        self.assertEqual(r.returncode, 0, "%s: clean pass after:\n%s" % (why, r.stderr[-3000:]))
        self.assert_exactly(arn, 4, name, why)
        return fired

    def calibrate(self):
        """Which state-directory calls a pass from 2 to 4 numbers makes."""
        arn = cnlib.instance_arn()
        state = os.path.join(self.tmp, "state-calibrate")
        os.makedirs(state)
        self.write_config(arn, 2, "calib")
        self.once("--wait", "20s", state=state, check=0)
        self.write_config(arn, 4, "calib")
        env, log = self.shim_env(state, ",".join(SHIM_CALLS), 10 ** 9, "EIO", trace=True)
        r = self.once("--wait", "20s", state=state, env=env)
        if r.returncode == 127 or "cannot be preloaded" in r.stderr or "ASan runtime does not come first" in r.stderr:
            raise unittest.SkipTest("the shim cannot be preloaded into %s: %s" % (cnlib.DAEMON, r.stderr[-500:]))
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        counts = {c: 0 for c in SHIM_CALLS}
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "pass":
                    counts[parts[1]] += 1
        return counts

    def test_every_failing_call(self):
        counts = self.calibrate()
        for c in SHIM_CALLS:
            self.assertGreater(counts[c], 0, "a pass never calls %s on the state directory? %s" % (c, counts))
        cases = []
        for c in SHIM_CALLS:
            n = counts[c]
            for after in sorted({0, 1, n // 2, n - 1}):
                cases.append((c, after))
        fired = 0
        for i, (c, after) in enumerate(cases):
            with self.subTest(call=c, after=after):
                if self.run_case(i, c, after, "ENOSPC" if i % 2 else "EIO"):
                    fired += 1
        self.assertGreaterEqual(fired, len(cases) * 3 // 4, "most injected failures must fire (%d of %d)" % (
            fired, len(cases)))


def run_status(state, env):
    return cnlib.run("--status", "--json", "--state-dir", state, env=env)


if __name__ == "__main__":
    cnlib.main()
