"""The HTTP layer: routing by method and path, restJson1 errors, headers on
every response, keep-alive, and validation against the service model
(docs/connect-api.md §1, 2, 3)."""

import unittest
import uuid

from fakeclient import EmulatorTest, enc, instance_arn


class Wire(EmulatorTest, unittest.TestCase):
    fake_args = ("--rate", "0", "--claim-delay", "0")

    def test_keep_alive(self):
        for _ in range(20):
            self.assertEqual(self.c.list(instance_arn()).status, 200)
        self.assertEqual(self.c.connections_opened, 1)

    def test_headers_on_every_response(self):
        t = instance_arn()
        responses = [
            self.c.list(t),                                              # 200 JSON
            self.c.call("GET", "/nowhere"),                              # 404 unknown route
            self.c.describe(str(uuid.uuid4())),                          # 404 not found
            self.c.call("POST", "/phone-number/list", {"Bogus": 1}),     # 400
        ]
        bad = self.fake.client(secret="wrong")
        responses.append(bad.list(t))                                   # 403
        bad.close()
        ids = set()
        for r in responses:
            self.assertIn("content-length", r.headers, r)
            self.assertEqual(int(r.headers["content-length"]), len(r.data))
            self.assertRegex(r.headers.get("x-amzn-requestid", ""), r"^[0-9a-f-]{36}$")
            ids.add(r.headers["x-amzn-requestid"])
            self.assertEqual(r.headers.get("content-type"), "application/json")
            if r.status != 200:
                self.assertTrue(r.error, r)
                self.assertEqual(list(r.json)[:1], ["Message"])
        self.assertEqual(len(ids), len(responses))

    def test_unknown_routes(self):
        for method, path in [("GET", "/phone-number/x/y/z"), ("PATCH", "/phone-number/x"),
                             ("POST", "/phone-number/list/"), ("GET", "/"), ("POST", "/phone-numbers/claim"),
                             ("GET", "/phone-number/arn:aws:connect:us-east-1:111122223333:phone-number/abc")]:
            r = self.c.call(method, path, {} if method == "POST" else None)
            self.assertError(r, 404, "UnknownOperationException")
        calls = self.fake.calls()["calls"]
        self.assertNotIn("UnknownOperation", calls)

    def test_percent_decoded_labels(self):
        # '/phone-number/claim' by GET is DescribePhoneNumber of id "claim".
        self.assertError(self.c.call("GET", "/phone-number/claim"), 404, "ResourceNotFoundException")
        t = instance_arn()
        num = self.first_available(t)[0]
        arn = self.c.claim(t, num).json["PhoneNumberArn"]
        self.assertEqual(self.c.call("GET", "/phone-number/" + enc(arn)).status, 200)
        # Only ':' left raw is still one segment.
        self.assertEqual(self.c.call("GET", "/phone-number/" + arn.replace("/", "%2F")).status, 200)
        # Double-encoded: not the number.
        self.assertError(self.c.call("GET", "/phone-number/" + enc(enc(arn))), 404, "ResourceNotFoundException")

    def test_expect_100_continue(self):
        r = self.c.raw("POST", "/phone-number/list", body={"TargetArn": instance_arn()},
                       headers={"expect": "100-continue"})
        self.assertEqual(r.status, 200, r)


class Validation(EmulatorTest, unittest.TestCase):
    """Every case is a 400 InvalidParameterException counted in /admin/calls."""
    fake_args = ("--rate", "0")

    def claim_body(self, **kw):
        b = {"TargetArn": instance_arn(), "PhoneNumber": "+12065550123", "ClientToken": str(uuid.uuid4())}
        b.update(kw)
        return {k: v for k, v in b.items() if v is not ...}

    def cases(self):
        t = instance_arn()
        search = {"TargetArn": t, "PhoneNumberCountryCode": "US", "PhoneNumberType": "DID"}
        pid = str(uuid.uuid4())
        return [
            ("token upper-case", "POST", "/phone-number/claim",
             self.claim_body(ClientToken=str(uuid.uuid4()).upper()), ""),
            ("token not a uuid", "POST", "/phone-number/claim", self.claim_body(ClientToken="token-1"), ""),
            ("token too long", "POST", "/phone-number/claim", self.claim_body(ClientToken="a" * 501), ""),
            ("search MaxResults 11", "POST", "/phone-number/search-available", dict(search, MaxResults=11), ""),
            ("search MaxResults 0", "POST", "/phone-number/search-available", dict(search, MaxResults=0), ""),
            ("search MaxResults string", "POST", "/phone-number/search-available", dict(search, MaxResults="5"), ""),
            ("list MaxResults 1001", "POST", "/phone-number/list", {"TargetArn": t, "MaxResults": 1001}, ""),
            ("unknown member", "POST", "/phone-number/claim", self.claim_body(Foo="bar"), ""),
            ("uri member in body", "POST", "/phone-number/list", {"PhoneNumberId": pid}, ""),
            ("bad country", "POST", "/phone-number/search-available", dict(search, PhoneNumberCountryCode="XX"), ""),
            ("bad type", "POST", "/phone-number/search-available", dict(search, PhoneNumberType="MOBILE"), ""),
            ("missing country", "POST", "/phone-number/search-available",
             {"TargetArn": t, "PhoneNumberType": "DID"}, ""),
            ("missing PhoneNumber", "POST", "/phone-number/claim", self.claim_body(PhoneNumber=...), ""),
            ("PhoneNumber without +", "POST", "/phone-number/claim", self.claim_body(PhoneNumber="12065550123"), ""),
            ("PhoneNumber junk prefix", "POST", "/phone-number/claim",
             self.claim_body(PhoneNumber="x+12065550123"), ""),
            ("prefix without +", "POST", "/phone-number/search-available", dict(search, PhoneNumberPrefix="1206"), ""),
            ("prefix too long", "POST", "/phone-number/search-available",
             dict(search, PhoneNumberPrefix="+123456789012"), ""),
            ("51 tags", "POST", "/phone-number/claim", self.claim_body(Tags={"k%d" % i: "v" for i in range(51)}), ""),
            ("aws: tag", "POST", "/phone-number/claim", self.claim_body(Tags={"aws:x": "v"}), ""),
            ("empty tags", "POST", "/phone-number/claim", self.claim_body(Tags={}), ""),
            ("description 501", "POST", "/phone-number/claim", self.claim_body(PhoneNumberDescription="d" * 501), ""),
            ("null member", "POST", "/phone-number/claim", self.claim_body(PhoneNumberDescription=None), ""),
            ("too many types", "POST", "/phone-number/list", {"PhoneNumberTypes": ["DID"] * 7}, ""),
            ("body is a list", "POST", "/phone-number/list", [], ""),
            ("body not JSON", "POST", "/phone-number/list", b"{nope", ""),
            ("empty body", "POST", "/phone-number/list", b"", ""),
            ("duplicate member", "POST", "/phone-number/list", b'{"MaxResults":1,"MaxResults":2}', ""),
            ("body on GET", "GET", "/phone-number/" + pid, b"{}", ""),
            ("untag without keys", "DELETE", "/tags/" + enc("arn:aws:connect:us-east-1:111122223333:phone-number/"
                                                              + pid), None, ""),
            ("disassociate without instanceId", "DELETE", "/phone-number/%s/contact-flow" % pid, None, ""),
            ("release token too long", "DELETE", "/phone-number/" + pid, None, "clientToken=" + "a" * 501),
            ("associate without flow", "PUT", "/phone-number/%s/contact-flow" % pid,
             {"InstanceId": str(uuid.uuid4())}, ""),
        ]

    def test_invalid_requests(self):
        before = self.fake.calls()["validation_failures"]
        cases = self.cases()
        for name, method, path, body, query in cases:
            with self.subTest(case=name):
                r = self.c.call(method, path, body, query=query)
                self.assertError(r, 400, "InvalidParameterException")
        calls = self.fake.calls()
        self.assertEqual(calls["validation_failures"] - before, len(cases))
        self.assertTrue(any("maxResults" in m and "less than or equal to 10" in m
                            for m in calls["validation_messages"]), calls["validation_messages"])
        self.assertTrue(any(m.startswith("ClaimPhoneNumber: ") and "Foo" in m for m in calls["validation_messages"]))

    def test_wrong_content_type(self):
        before = self.fake.calls()["validation_failures"]
        r = self.c.raw("POST", "/phone-number/list", body=b"{}", content_type="text/plain")
        self.assertError(r, 400, "InvalidParameterException", "application/json")
        r = self.c.raw("POST", "/phone-number/list", body=b"{}", content_type=None)
        self.assertError(r, 400, "InvalidParameterException")
        r = self.c.raw("POST", "/phone-number/list", body=b"{}", content_type="application/json; charset=utf-8")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.fake.calls()["validation_failures"] - before, 2)

    def test_valid_edge_values_pass(self):
        t = instance_arn()
        s = {"TargetArn": t, "PhoneNumberCountryCode": "AN", "PhoneNumberType": "UIFN", "MaxResults": 1}
        self.assertEqual(self.c.call("POST", "/phone-number/search-available", s).status, 200)
        self.assertEqual(self.c.list(t, max_results=1000).status, 200)
        self.assertEqual(self.c.list(t, max_results=1).status, 200)
        ok = {"TargetArn": t, "PhoneNumberCountryCode": "US", "PhoneNumberType": "DID", "PhoneNumberPrefix": "+1"}
        self.assertEqual(self.c.call("POST", "/phone-number/search-available", ok).status, 200)


if __name__ == "__main__":
    unittest.main()
