"""What an operator reads, reviewed once and kept: a scripted scenario runs
the real binary against the fake Connect (claims, a FAILED claim retried,
a window given up, the quota, throttling, a release, a check of a bad
file, bad credentials) and every console line is compared, with its
volatile parts masked (times, ids, request ids, phone numbers, ARNs), to
tests/data/transcript/operator.txt. Changing a message means reviewing
the transcript's diff: run with UPDATE_TRANSCRIPT=1 to rewrite it.

Within one step the order of lines from calls in flight at once is not
fixed, so each step's lines are compared sorted; the steps keep their
order, and every line must be there as many times as reviewed."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

TRANSCRIPT = os.path.join(cnlib.ROOT, "tests", "data", "transcript", "operator.txt")

MASKS = [
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"), "<time>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\+\d{8,15}\b"), "<phone>"),
    (re.compile(r"/tmp/cn-it-[^/\s]+"), "<tmp>"),
    (re.compile(r"\b\d+(\.\d+)? ?(ms|s)\b"), "<duration>"),
]


def mask(line):
    for rx, repl in MASKS:
        line = rx.sub(repl, line)
    return line


class Transcript(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.1", "--seed", "7")

    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn(ident="0b5e3e1a-1a7b-4f59-9c7f-8e2f8f6f3c11")
        self.steps = []

    def write(self, count, quota=10, release_excess=False):
        cnlib.write_yaml(self.yaml, self.fake, {"support": {
            "arn": self.inst, "quota": quota, "release_excess": release_excess,
            "pools": {"main": {"country": "US", "type": "DID", "count": count, "prefix": "+1206",
                               "description": "Support main line"}}}})

    def step(self, title, r):
        lines = [mask(l) for l in (r.stdout + r.stderr).splitlines() if l.strip()]
        self.steps.append(["## %s (exit status %d)" % (title, r.returncode)] + sorted(lines))

    def test_operator_transcript(self):
        # 1. Claims, one of them FAILED.
        self.write(2)
        self.fake.config(fail_next_claims=1)
        self.step("claims, one FAILED", self.once("--wait", "20s"))
        # 2. The FAILED claim retried inside its window.
        self.fake.clock(120)
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+2m")
        self.step("the FAILED claim retried", self.once("--wait", "20s", env=env))
        # 3. A claim that keeps failing, given up when its window ends.
        self.write(3)
        self.fake.config(fail_next_claims=100)
        self.step("a third claim FAILED", self.once("--wait", "20s", env=env))
        self.fake.config(fail_next_claims=0)
        self.fake.clock(25 * 3600)
        env = dict(self.env, CONNECT_NUMBERS_CLOCK_OFFSET="+25h")
        self.step("its window given up", self.once("--wait", "20s", env=env))
        # 4. The quota: 3 held, a fourth wanted.
        self.write(4)
        self.fake.config(default_quota=3)
        self.step("the quota", self.once("--wait", "20s", env=env))
        # 5. Throttling answered by retries: nothing for the operator to read.
        self.fake.config(fault_next=[{"fault": "throttle", "op": "ListPhoneNumbersV2", "count": 2}])
        self.step("throttled, then answered", self.once("--wait", "20s", env=env))
        # 6. A release: the count lowered with release_excess.
        self.fake.config(default_quota=10)
        self.write(2, release_excess=True)
        self.step("a release", self.once("--wait", "20s", env=env))
        # 7. A bad file, checked.
        with open(self.yaml, "a") as f:
            f.write("bogus_key: 1\n")
        self.step("a bad file", cnlib.run("--check-config", "-c", self.yaml, env=self.env))
        # 8. Bad credentials.
        self.write(2)
        bad = dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret")
        self.step("bad credentials", self.once("--wait", "5s", env=bad))
        # 9. --status at the end.
        self.step("--status", self.status())

        got = "\n\n".join("\n".join(s) for s in self.steps) + "\n"
        if os.environ.get("UPDATE_TRANSCRIPT") == "1":
            os.makedirs(os.path.dirname(TRANSCRIPT), exist_ok=True)
            with open(TRANSCRIPT, "w") as f:
                f.write(got)
        with open(TRANSCRIPT) as f:
            want = f.read()
        self.maxDiff = None
        self.assertEqual(got, want, "the operator transcript changed: review the diff, then run with "
                                    "UPDATE_TRANSCRIPT=1")


if __name__ == "__main__":
    cnlib.main()
