"""The command line as an operator meets it: --help, --version, usage
errors, --check-config on the example and on every bad file of the config
suite (exit 78, FILE:LINE:COLUMN), --status on an empty state."""
import glob
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402


class Cli(unittest.TestCase):
    def setUp(self):
        self.env = cnlib.clean_env()

    def test_help_and_version(self):
        r = cnlib.run("--help", env=self.env, check=0)
        for opt in ("--check-config", "--plan", "--once", "--status", "--state-dir", "--log-target", "--wait",
                    "--json", "--version"):
            self.assertIn(opt, r.stdout)
        r = cnlib.run("--version", env=self.env, check=0)
        self.assertRegex(r.stdout, r"^connect-numbersd \d+\.\d+")
        self.assertEqual(cnlib.run("-V", env=self.env, check=0).stdout, r.stdout)
        self.assertIn("-V, --version", cnlib.run("--help", env=self.env, check=0).stdout)

    def test_usage_errors_exit_2_with_hint(self):
        """Usage errors exit 2 (the getopt convention, apart from 1 for an
        error at run time): what is wrong, then where to look."""
        for args in (["--bogus"], ["-x"], ["--config"], ["--once", "--plan"], ["-V", "--help"],
                     ["--wait", "5m"], ["--once", "--wait", "25h"], ["--log-target", "syslog"],
                     ["--status", "extra"], ["--check-config", "--json"]):
            r = cnlib.run(*args, env=self.env)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(r.stdout, "", args)
            lines = r.stderr.splitlines()
            self.assertEqual(len(lines), 2, (args, r.stderr))
            self.assertEqual(lines[-1], "Try 'connect-numbersd --help'.", args)

    def test_example_config_ok(self):
        path = os.path.join(cnlib.ROOT, "config", "numbers.example.yaml")
        r = cnlib.run("--check-config", "-c", path, env=self.env, check=0)
        self.assertEqual(r.stdout.splitlines()[0], "configuration OK")

    def test_bad_configs_exit_78_with_positions(self):
        bad = sorted(glob.glob(os.path.join(cnlib.ROOT, "tests", "data", "config", "bad", "*.yaml")))
        self.assertGreaterEqual(len(bad), 40)
        for path in bad:
            r = cnlib.run("--check-config", "-c", path, env=self.env)
            self.assertEqual(r.returncode, 78, path)
            self.assertEqual(r.stdout, "", path)
            lines = [x for x in r.stderr.splitlines() if x.strip()]
            self.assertTrue(lines, path)
            for line in lines:
                self.assertRegex(line, r"^" + path.replace(".", r"\.") + r":\d+:\d+: ", path)
            expected = path[:-5] + ".expected"
            if os.path.exists(expected):
                with open(expected) as f:
                    want = [x.split(":", 1)[1] for x in f.read().splitlines() if x.strip()]
                got = [x[len(path):] for x in lines]
                self.assertEqual([":" + w for w in want], got, path)

    def test_missing_config_exits_78(self):
        r = cnlib.run("--check-config", "-c", "/nonexistent/numbers.yaml", env=self.env)
        self.assertEqual(r.returncode, 78)
        self.assertIn("/nonexistent/numbers.yaml", r.stderr)

    def test_status_empty_and_missing(self):
        with tempfile.TemporaryDirectory() as d:
            r = cnlib.run("--status", "--state-dir", d, "-c", "/nonexistent", env=self.env, check=0)
            r = cnlib.run("--status", "--json", "--state-dir", d, env=self.env, check=0)
            self.assertIn('"pools"', r.stdout)
            with open(os.path.join(d, "state.json"), "w") as f:
                f.write("{not json")
            r = cnlib.run("--status", "--state-dir", d, env=self.env)
            self.assertEqual(r.returncode, 1)
        r = cnlib.run("--status", "--state-dir", "/nonexistent/state", env=self.env)
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    cnlib.main()
