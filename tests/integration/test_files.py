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


if __name__ == "__main__":
    cnlib.main()
