"""Files the daemon reads that are not what they should be. A FIFO as the
YAML or as the credentials file is refused at once with a message naming
the file (opening one for reading would wait for a writer forever), and a
state file the daemon cannot trust whole is either refused untouched (a
newer version) or loses only its damaged records."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402

# A refusal takes milliseconds; valgrind is slower. A hang is forever: the
# timeout ends it so that the test fails instead of waiting.
FAST_SEC = 10 if cnlib.VALGRIND else 1


class FifoFiles(cnlib.DaemonTest):
    def setUp(self):
        super().setUp()
        self.fifo = os.path.join(self.tmp, "fifo")
        os.mkfifo(self.fifo)

    def run_fast(self, *args, env=None):
        start = time.monotonic()
        try:
            r = cnlib.run(*args, env=env or self.env, timeout=FAST_SEC * 5)
        except subprocess.TimeoutExpired:
            self.fail("%s hung on a FIFO" % " ".join(args))
        self.assertLess(time.monotonic() - start, FAST_SEC)
        return r

    def test_fifo_as_yaml_check_config(self):
        r = self.run_fast("--check-config", "-c", self.fifo)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(self.fifo, r.stderr)
        self.assertIn("not a regular file", r.stderr)

    def test_fifo_as_yaml_once(self):
        r = self.run_fast("--once", "-c", self.fifo, "--state-dir", self.state, "--log-target", "console")
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(self.fifo, r.stderr)
        self.assertIn("not a regular file", r.stderr)

    def test_fifo_as_credentials_file(self):
        cnlib.write_yaml(self.yaml, self.fake, {
            "t": {"arn": cnlib.instance_arn(), "pools": {"p": {"country": "US", "type": "DID", "count": 1}}}})
        env = cnlib.clean_env(None, AWS_SHARED_CREDENTIALS_FILE=self.fifo)
        r = self.run_fast("--once", "-c", self.yaml, "--state-dir", self.state, "--log-target", "console",
                          env=env)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.fifo, r.stderr)
        self.assertIn("not a regular file", r.stderr)
        self.assertEqual(self.mutating_calls(), {})


    def test_fifo_as_ca_file(self):
        cnlib.write_yaml(self.yaml, self.fake, {
            "t": {"arn": cnlib.instance_arn(), "pools": {"p": {"country": "US", "type": "DID", "count": 1}}}})
        with open(self.yaml) as f:
            text = f.read().replace(self.fake.info["ca_file"], self.fifo)
        with open(self.yaml, "w") as f:
            f.write(text)
        r = self.run_fast("--once", "-c", self.yaml, "--state-dir", self.state, "--log-target", "console")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(self.fifo, r.stderr)
        self.assertIn("not a regular file", r.stderr)
        self.assertEqual(self.mutating_calls(), {})


class StateFiles(cnlib.DaemonTest):
    def setUp(self):
        super().setUp()
        cnlib.write_yaml(self.yaml, self.fake, {
            "t": {"arn": cnlib.instance_arn(), "quota": 10,
                  "pools": {"p": {"country": "US", "type": "DID", "count": 3}}}})

    def state_path(self):
        return os.path.join(self.state, "state.json")

    def test_newer_version_refused_untouched(self):
        os.makedirs(self.state)
        text = b'{"version":99,"targets":[{"name":"t","churn":[{"at":1}]}]}\n{"phone_number":"+1","x":1}\n'
        with open(self.state_path(), "wb") as f:
            f.write(text)
        r = self.once()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(self.state_path(), r.stderr)
        self.assertIn("newer version", r.stderr)
        self.assertIn("left untouched", r.stderr)
        with open(self.state_path(), "rb") as f:
            self.assertEqual(f.read(), text)
        self.assertEqual(sorted(n for n in os.listdir(self.state) if n.startswith("state.json")), ["state.json"])
        self.assertEqual(self.mutating_calls(), {})
        # --status says the same and changes nothing either.
        r = self.status(check=1)
        self.assertIn("newer version", r.stderr)

    def test_damaged_line_loses_one_record(self):
        self.once(check=0)
        before = cnlib.read_state(self.state)
        self.assertEqual(len(before["numbers"]), 3)
        churn = before["targets"][0]["churn"]
        with open(self.state_path()) as f:
            lines = f.readlines()
        self.assertEqual(len(lines), 4)
        lost = json.loads(lines[2])["phone_number"]
        lines[2] = lines[2][:len(lines[2]) // 2] + "\n"
        with open(self.state_path(), "w") as f:
            f.writelines(lines)

        # Read alone, the file gives two records and a warning naming line 3.
        r = self.status("--json")
        self.assertIn("line 3: not valid JSON", r.stderr)
        self.assertIn("skipped 1 damaged record", r.stderr)
        self.assertEqual(json.loads(r.stdout)["pools"][0]["claimed"], 2)

        self.fake.reset()
        r = self.once(check=0)
        self.assertIn("line 3: not valid JSON", r.stderr)
        self.assertIn("the other records are kept", r.stderr)
        self.assertNotIn("ClaimPhoneNumber", self.mutating_calls())
        after = cnlib.read_state(self.state)
        # The header (churn ledger) was kept whole; the lost record came
        # back from what Connect shows.
        self.assertEqual(after["targets"][0]["churn"], churn)
        self.assertEqual(sorted(n["phone_number"] for n in after["numbers"]),
                         sorted(n["phone_number"] for n in before["numbers"]))
        self.assertIn(lost, [n["phone_number"] for n in after["numbers"]])
        self.assertEqual(len([n for n in os.listdir(self.state) if n.startswith("state.json.damaged-")]), 1)


if __name__ == "__main__":
    cnlib.main()
