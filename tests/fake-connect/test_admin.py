"""The process and the admin API: fake.json, certificates, SIGTERM, --help,
seed, steal, config, clock, calls, requests, numbers, reset."""

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest
import uuid

from fakeclient import FAKE, EmulatorTest, Fake, enc, instance_arn, tdg_arn

CONTRACT_KEYS = {"endpoint_url", "admin_url", "ca_file", "access_key_id", "secret_access_key", "imds_endpoint",
                 "container_full_uri"}


class Process(unittest.TestCase):
    def test_fake_json_certificates_and_sigterm(self):
        f = Fake("--rate", "0")
        try:
            with open(os.path.join(f.dir, "fake.json")) as fh:
                on_disk = json.load(fh)
            self.assertEqual(on_disk, f.info)
            self.assertTrue(CONTRACT_KEYS <= set(on_disk))
            self.assertEqual(on_disk["access_key_id"], "AKIDFAKECONNECT00001")
            self.assertEqual(on_disk["secret_access_key"], "fakeSecretKey/0123456789abcdefEXAMPLE")
            self.assertEqual(on_disk["ca_file"], os.path.join(f.dir, "ca.pem"))
            self.assertEqual(on_disk["imds_endpoint"], on_disk["admin_url"])
            self.assertEqual(on_disk["container_full_uri"], on_disk["admin_url"] + "/container-credentials")
            self.assertRegex(on_disk["endpoint_url"], r"^https://127\.0\.0\.1:\d+$")
            self.assertRegex(on_disk["admin_url"], r"^http://127\.0\.0\.1:\d+$")
            port = int(on_disk["endpoint_url"].rsplit(":", 1)[1])
            ctx = ssl.create_default_context(cafile=on_disk["ca_file"])
            for name in ("127.0.0.1", "localhost"):
                with socket.create_connection(("127.0.0.1", port)) as s:
                    with ctx.wrap_socket(s, server_hostname=name) as tls:
                        self.assertTrue(tls.version() in ("TLSv1.2", "TLSv1.3"))
            with socket.create_connection(("127.0.0.1", port)) as s:
                with self.assertRaises(ssl.SSLCertVerificationError):
                    ctx.wrap_socket(s, server_hostname="connect.us-east-1.amazonaws.com")
            with socket.create_connection(("127.0.0.1", port)) as s:
                with self.assertRaises(ssl.SSLCertVerificationError):
                    ssl.create_default_context(cafile=None, capath="/nonexistent").wrap_socket(
                        s, server_hostname="127.0.0.1")
            f.proc.send_signal(signal.SIGTERM)
            self.assertEqual(f.proc.wait(10), 0)
        finally:
            f.stop()

    def test_help(self):
        out = subprocess.run([sys.executable, FAKE, "--help"], stdout=subprocess.PIPE, text=True, check=True).stdout
        for word in ("--dir", "--claim-delay", "--rate", "--burst", "--quota", "/admin/seed", "fail_next_claims",
                     "steal_after_search", "drop_after", "IMDSv2", "container-credentials", "fake.json"):
            self.assertIn(word, out)

    def test_bad_dir_fails(self):
        with tempfile.NamedTemporaryFile() as tmp:
            p = subprocess.run([sys.executable, FAKE, "--dir", tmp.name], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            self.assertNotEqual(p.returncode, 0)


class Admin(EmulatorTest, unittest.TestCase):
    fake_args = ("--rate", "0", "--claim-delay", "0")

    def test_seed_explicit_and_generated(self):
        t, g = instance_arn(), tdg_arn()
        ids = self.fake.admin("POST", "/admin/seed", {"numbers": [
            {"target_arn": t, "phone_number": "+12065550123", "tags": {"a": "1"}, "description": "d"},
            {"target_arn": t, "country": "GB", "type": "TOLL_FREE", "status": "FAILED"},
        ]})["numbers"]
        self.assertEqual(len(ids), 2)
        d = self.c.describe(ids[0]).json["ClaimedPhoneNumberSummary"]
        self.assertEqual((d["PhoneNumber"], d["PhoneNumberCountryCode"], d["PhoneNumberType"]),
                         ("+12065550123", "US", "DID"))
        self.assertEqual((d["Tags"], d["PhoneNumberDescription"]), ({"a": "1"}, "d"))
        d = self.c.describe(ids[1]).json["ClaimedPhoneNumberSummary"]
        self.assertEqual(d["PhoneNumberStatus"]["Status"], "FAILED")
        self.assertTrue(d["PhoneNumber"].startswith("+44800") or d["PhoneNumber"].startswith("+44808"))
        gen = self.fake.admin("POST", "/admin/seed", {"generate": {"target_arn": g, "country": "DE", "type": "DID",
                                                                   "count": 300, "tags": {"x": "y"}}})["numbers"]
        self.assertEqual(len(set(gen)), 300)
        rows = self.c.list(g, max_results=1000).json["ListPhoneNumbersSummaryList"]
        self.assertEqual(len(rows), 300)
        self.assertTrue(all(r["PhoneNumber"].startswith("+49") for r in rows))
        # A held number cannot be seeded twice.
        self.fake.admin("POST", "/admin/seed", {"numbers": [{"target_arn": t, "phone_number": "+12065550123"}]},
                        expect=409)

    def test_numbers_fields(self):
        t = instance_arn()
        num = self.first_available(t)[0]
        pid = self.c.claim(t, num, tags={"k": "v"}, description="x").json["PhoneNumberId"]
        n = [x for x in self.fake.numbers() if x["id"] == pid][0]
        for k in ("id", "arn", "phone_number", "country", "type", "target_arn", "status", "status_message", "tags",
                  "description", "contact_flow", "released", "claims", "claimed_at"):
            self.assertIn(k, n)
        self.assertEqual((n["phone_number"], n["target_arn"], n["tags"], n["description"], n["claims"]),
                         (num, t, {"k": "v"}, "x", 1))
        filtered = self.fake.admin("GET", "/admin/numbers?target_arn=" + enc(t))["numbers"]
        self.assertEqual([x["id"] for x in filtered], [pid])

    def test_requests_and_calls_and_reset(self):
        self.fake.admin("POST", "/admin/reset", {})
        t = instance_arn()
        num = self.first_available(t)[0]
        tok = str(uuid.uuid4())
        pid = self.c.claim(t, num, token=tok).json["PhoneNumberId"]
        rtok = str(uuid.uuid4())
        self.c.release(pid, rtok)
        self.c.call("POST", "/phone-number/list", {"Nope": 1})
        reqs = self.fake.requests()
        self.assertEqual([q["op"] for q in reqs], ["SearchAvailablePhoneNumbers", "ClaimPhoneNumber",
                                                   "ReleasePhoneNumber", "ListPhoneNumbersV2"])
        for q in reqs:
            for k in ("op", "method", "path", "query", "status", "error_code", "time", "body", "client_token"):
                self.assertIn(k, q)
        claim, release, bad = reqs[1], reqs[2], reqs[3]
        self.assertEqual((claim["method"], claim["path"], claim["status"], claim["client_token"]),
                         ("POST", "/phone-number/claim", 200, tok))
        self.assertEqual(claim["body"]["PhoneNumber"], num)
        self.assertEqual((release["method"], release["query"], release["client_token"]),
                         ("DELETE", "clientToken=" + rtok, rtok))
        self.assertEqual((bad["status"], bad["error_code"]), (400, "InvalidParameterException"))
        calls = self.fake.calls()
        self.assertEqual(calls["calls"], {"SearchAvailablePhoneNumbers": 1, "ClaimPhoneNumber": 1,
                                          "ReleasePhoneNumber": 1, "ListPhoneNumbersV2": 1})
        self.assertEqual(calls["errors"], {"ListPhoneNumbersV2": 1})
        self.assertEqual(calls["validation_failures"], 1)
        self.assertEqual(len(calls["validation_messages"]), 1)
        only = self.fake.admin("GET", "/admin/requests?op=ClaimPhoneNumber")["requests"]
        self.assertEqual([q["op"] for q in only], ["ClaimPhoneNumber"])
        self.fake.admin("POST", "/admin/reset", {})
        calls = self.fake.calls()
        self.assertEqual((calls["calls"], calls["validation_failures"], self.fake.requests()), ({}, 0, []))

    def test_config_and_clock(self):
        self.fake.admin("POST", "/admin/config", {"no_such_key": 1}, expect=400)
        self.fake.admin("POST", "/admin/config", {"faults": {"explode": 1}}, expect=400)
        cfg = self.fake.config(default_quota=7, quotas={"arn:x": 1})
        self.assertEqual((cfg["default_quota"], cfg["quotas"]), (7, {"arn:x": 1}))
        self.fake.config(default_quota=5, quotas={})
        self.assertEqual(self.fake.clock(offset=100)["offset"], 100)
        self.assertEqual(self.fake.clock(advance=50)["offset"], 150)
        self.assertEqual(self.fake.clock(offset=0)["offset"], 0)

    def test_inventory_preview_matches_search(self):
        t = instance_arn()
        prev = self.fake.admin("GET", "/admin/inventory?country=US&type=TOLL_FREE&count=3")["numbers"]
        self.assertEqual(prev, self.first_available(t, 3, ptype="TOLL_FREE"))

    def test_steal_refuses_our_numbers(self):
        t = instance_arn()
        num = self.first_available(t)[0]
        self.c.claim(t, num)
        self.fake.admin("POST", "/admin/steal", {"phone_number": num}, expect=409)


if __name__ == "__main__":
    unittest.main()
