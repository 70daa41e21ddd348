"""Throttling (a token bucket per operation and region, docs/connect-api.md §6)
and injected faults: 500, dropped connections before and after the action,
truncated answers, slow answers."""

import http.client
import ssl
import time
import unittest
import uuid

from fakeclient import EmulatorTest, instance_arn

DROPPED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ssl.SSLError,
           http.client.IncompleteRead, ConnectionAbortedError)


class Throttling(EmulatorTest, unittest.TestCase):
    fake_args = ("--rate", "0.01", "--burst", "5")

    def test_burst_then_429(self):
        t = instance_arn()
        for i in range(5):
            self.assertEqual(self.c.list(t).status, 200, "call %d" % (i + 1))
        r = self.c.list(t)
        self.assertError(r, 429, "ThrottlingException")
        self.assertEqual(r.message, "Rate exceeded")
        # Per operation, and per region.
        self.assertEqual(self.c.search(t, max_results=1).status, 200)
        west = self.fake.client(region="us-west-2")
        self.assertEqual(west.list().status, 200)
        west.close()
        calls = self.fake.calls()
        self.assertEqual(calls["throttled"], {"ListPhoneNumbersV2": 1})
        self.assertEqual(calls["calls"]["ListPhoneNumbersV2"], 7)

    def test_refill(self):
        self.fake.config(rate=4, burst=1)
        try:
            self.assertEqual(self.c.describe(str(uuid.uuid4())).status, 404)
            self.assertEqual(self.c.describe(str(uuid.uuid4())).status, 429)
            time.sleep(0.3)
            self.assertEqual(self.c.describe(str(uuid.uuid4())).status, 404)
            self.fake.config(rates={"DescribePhoneNumber": 0})
            for _ in range(10):
                self.assertEqual(self.c.describe(str(uuid.uuid4())).status, 404)
        finally:
            self.fake.config(rate=0.01, burst=5, rates={})

    def test_throttle_fault(self):
        self.fake.config(faults={"throttle": 1.0, "ops": ["DescribePhoneNumber"]})
        try:
            self.assertError(self.c.describe(str(uuid.uuid4())), 429, "ThrottlingException")
        finally:
            self.fake.config(faults={})


class Faults(EmulatorTest, unittest.TestCase):
    fake_args = ("--rate", "0", "--claim-delay", "0")

    def tearDown(self):
        self.fake.config(faults={}, fault_next=[])
        super().tearDown()

    def numbers(self, phone):
        return [n for n in self.fake.numbers() if n["phone_number"] == phone]

    def test_error500_before_the_action(self):
        t = instance_arn()
        num = self.first_available(t)[0]
        tok = str(uuid.uuid4())
        self.fake.config(fault_next=[{"fault": "error500", "op": "ClaimPhoneNumber"}])
        r = self.c.claim(t, num, token=tok)
        self.assertError(r, 500, "InternalServiceException")
        self.assertEqual(self.numbers(num), [], "a 500 leaves nothing done")
        r = self.c.claim(t, num, token=tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.numbers(num)[0]["claims"], 1)

    def test_drop_before_the_action(self):
        t = instance_arn()
        num = self.first_available(t)[0]
        self.fake.config(fault_next=[{"fault": "drop", "op": "ClaimPhoneNumber"}])
        with self.assertRaises(DROPPED):
            self.c.claim(t, num)
        self.assertEqual(self.numbers(num), [])
        self.assertEqual(self.c.claim(t, num).status, 200)
        req = [q for q in self.fake.requests() if q["op"] == "ClaimPhoneNumber"]
        self.assertEqual([(q["status"], q["fault"]) for q in req[-2:]], [(0, "drop"), (200, None)])

    def test_drop_after_the_action_and_token_replay(self):
        t = instance_arn()
        num = self.first_available(t)[0]
        tok = str(uuid.uuid4())
        self.fake.config(fault_next=[{"fault": "drop_after", "op": "ClaimPhoneNumber"}])
        with self.assertRaises(DROPPED):
            self.c.claim(t, num, token=tok)
        held = self.numbers(num)
        self.assertEqual(len(held), 1, "the claim was applied before the drop")
        r = self.c.claim(t, num, token=tok)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["PhoneNumberId"], held[0]["id"])
        self.assertEqual(self.numbers(num)[0]["claims"], 1)
        # A new token for the same number: it is ours already, not available.
        self.assertError(self.c.claim(t, num), 404, "ResourceNotFoundException")

    def test_drop_after_probability(self):
        self.fake.config(faults={"drop_after": 1.0})
        # Read-only operations are not affected by drop_after.
        self.assertEqual(self.c.list(instance_arn()).status, 200)

    def test_truncate(self):
        t = instance_arn()
        self.fake.config(fault_next=[{"fault": "truncate", "op": "SearchAvailablePhoneNumbers"}])
        r = self.c.search(t)
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.headers["content-length"]), len(r.data))
        with self.assertRaises(ValueError):
            r.json
        # An empty answer is cut by closing early.
        num = self.first_available(t)[0]
        pid = self.c.claim(t, num).json["PhoneNumberId"]
        self.fake.config(fault_next=[{"fault": "truncate", "op": "ReleasePhoneNumber"}])
        with self.assertRaises(DROPPED):
            self.c.release(pid)

    def test_slow(self):
        self.fake.config(faults={"slow": 1.0, "slow_seconds": 0.4, "ops": ["DescribePhoneNumber"]})
        t0 = time.monotonic()
        self.assertEqual(self.c.describe(str(uuid.uuid4())).status, 404)
        self.assertGreaterEqual(time.monotonic() - t0, 0.35)
        t0 = time.monotonic()
        self.assertEqual(self.c.list().status, 200)
        self.assertLess(time.monotonic() - t0, 0.35, "other operations are not slowed")

    def test_error500_probability_and_admin_unaffected(self):
        self.fake.config(faults={"error500": 1.0})
        for _ in range(3):
            self.assertError(self.c.list(), 500, "InternalServiceException")
        self.assertEqual(self.fake.calls()["faults"]["ListPhoneNumbersV2"]["error500"], 3)
        self.assertIn("numbers", self.fake.admin("GET", "/admin/numbers"))


if __name__ == "__main__":
    unittest.main()
