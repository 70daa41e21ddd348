"""Journald records name the code that logged them: every record of a
--once run at debug level carries exactly one CODE_FILE, CODE_LINE and
CODE_FUNC, and they point into the daemon's sources at the caller, never
at the logging wrapper (daemon/log.c)."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402


class JournalLocation(cnlib.DaemonTest):
    fake_args = ("--claim-delay", "0.2")

    def test_records_carry_the_callers_location(self):
        if not cnlib.ensure_journald():
            self.skipTest("no journald")
        inst = cnlib.instance_arn()
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": inst, "quota": 10, "pools": {
            "main": {"country": "US", "type": "DID", "count": 1}}}}, interval="1h")
        since = cnlib.now_usec()
        # Popen for the pid: only this process's records count (other
        # test runs may log to the same journal at the same time).
        p = subprocess.Popen(cnlib.daemon_cmd("--once", "-c", self.yaml, "--state-dir", self.state,
                                              "--log-target", "journal", "-v", "--wait", "20s"),
                             env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=300)
        self.assertEqual(p.returncode, 0, out + err)
        recs = [x for x in cnlib.journal_records(since) if x.get("_PID") == str(p.pid)]
        self.assertTrue(recs, "no journal records")
        funcs = set()
        for x in recs:
            what = "%s (%s)" % (x.get("MESSAGE"), x.get("CODE_FILE"))
            for k in ("CODE_FILE", "CODE_LINE", "CODE_FUNC"):
                # journalctl -o json shows a field sent twice as a list.
                self.assertIsInstance(x.get(k), str, "%s: %s is %r" % (what, k, x.get(k)))
            self.assertNotEqual(os.path.basename(x["CODE_FILE"]), "log.c", what)
            self.assertNotIn(x["CODE_FUNC"], ("log_fields_at", "log_fieldsv_at", "log_fields", "log_fieldsv"), what)
            self.assertRegex(x["CODE_LINE"], r"^[1-9][0-9]*$", what)
            src = os.path.join(cnlib.ROOT, x["CODE_FILE"])
            self.assertTrue(os.path.exists(src), what)
            with open(src) as f:
                lines = f.read().split("\n")
            line = int(x["CODE_LINE"])
            self.assertLessEqual(line, len(lines), what)
            # The caller's function is defined above the line it logged
            # from, and a log call sits at (or just before) that line.
            above = "\n".join(lines[:line])
            self.assertRegex(above, r"\b%s\s*\(" % re.escape(x["CODE_FUNC"]), what)
            near = "\n".join(lines[max(0, line - 8):line])
            self.assertRegex(near, r"\blog_\w+\s*\(", what)
            funcs.add(x["CODE_FUNC"])
        # More than one caller, so the location is not a constant.
        self.assertGreater(len(funcs), 1, funcs)


if __name__ == "__main__":
    cnlib.main()
