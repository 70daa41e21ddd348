"""Errors an operator meets, and their exit statuses: no credentials, a
wrong secret (signature does not match), a CA the server is not signed by
(TLS verification, nothing sent in clear), access denied, throttling that
outlasts its retries (75), credentials from $CREDENTIALS_DIRECTORY/aws."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402


class Errors(cnlib.DaemonTest):
    def setUp(self):
        super().setUp()
        self.inst = cnlib.instance_arn()
        cnlib.write_yaml(self.yaml, self.fake, {"support": {"arn": self.inst, "pools": {
            "main": {"country": "US", "type": "DID", "count": 1}}}})

    def test_no_credentials(self):
        env = cnlib.clean_env()
        r = self.once(env=env)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("no AWS credentials", r.stderr)
        self.assertEqual(self.fake.requests(), [])

    def test_wrong_secret(self):
        env = cnlib.clean_env(self.fake, AWS_SECRET_ACCESS_KEY="not-the-secret")
        r = self.once(env=env)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("signature", r.stderr.lower())
        self.assertNotIn("not-the-secret", r.stdout + r.stderr)

    def test_unverified_tls_sends_nothing(self):
        with open(self.yaml) as f:
            text = f.read()
        with open(self.yaml, "w") as f:
            f.write("\n".join(x for x in text.splitlines() if not x.startswith("ca_file:")) + "\n")
        r = self.once()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr.lower(), "certificate|tls|ssl")
        self.assertEqual(self.fake.requests(), [], "no request may reach the server unverified")

    def test_aws_ca_bundle_is_used(self):
        with open(self.yaml) as f:
            text = f.read()
        with open(self.yaml, "w") as f:
            f.write("\n".join(x for x in text.splitlines() if not x.startswith("ca_file:")) + "\n")
        env = dict(self.env, AWS_CA_BUNDLE=self.fake.info["ca_file"])
        r = self.once("--wait", "20s", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_credentials_directory(self):
        creds = os.path.join(self.tmp, "creds")
        os.makedirs(creds)
        with open(os.path.join(creds, "aws"), "w") as f:
            f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (
                self.fake.info["access_key_id"], self.fake.info["secret_access_key"]))
        env = cnlib.clean_env(CREDENTIALS_DIRECTORY=creds)
        r = self.once("--wait", "20s", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_throttling_outlasting_retries_is_75(self):
        self.fake.config(faults={"throttle": 1.0})
        # Throttled calls are retried until the pass's time is up (at least
        # 30 s), never given up earlier: then the pass ends with 75.
        r = self.once("--wait", "5s")
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertIn("Throttling", r.stderr)


if __name__ == "__main__":
    cnlib.main()
