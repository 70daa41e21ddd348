"""The emulator's numbering plan and inventory (inventory.py, pure): every
country of the model has numbers, in valid E.164, deterministic per seed,
restricted by a prefix, and each number belongs to one country and type."""

import json
import os
import re
import unittest

import inventory

HERE = os.path.dirname(os.path.abspath(__file__))
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def model_enum(shape):
    with open(os.path.join(HERE, "data", "connect-phone-numbers.service.json")) as f:
        return json.load(f)["shapes"][shape]["enum"]


class Plan(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inv = inventory.Inventory(seed=1)

    def test_every_model_country_is_planned(self):
        countries = model_enum("PhoneNumberCountryCode")
        self.assertEqual(len(countries), 237)
        self.assertEqual(set(countries), set(inventory.COUNTRIES))

    def test_every_country_offers_did(self):
        for c in inventory.COUNTRIES:
            with self.subTest(country=c):
                nums = [self.inv.candidate(c, "DID", None, i) for i in range(3)]
                self.assertTrue(all(nums), nums)
                for n in nums:
                    self.assertRegex(n, E164)
                    self.assertEqual(self.inv.classify(n), (c, "DID"))

    def test_toll_free_and_other_types(self):
        for c, t in [("US", "TOLL_FREE"), ("CA", "TOLL_FREE"), ("GB", "TOLL_FREE"), ("DE", "TOLL_FREE"),
                     ("US", "UIFN"), ("US", "SHARED"), ("GB", "THIRD_PARTY_DID"), ("US", "THIRD_PARTY_TF")]:
            n = self.inv.candidate(c, t, None, 0)
            self.assertIsNotNone(n, (c, t))
            self.assertEqual(self.inv.classify(n), (c, t))
        self.assertIsNone(self.inv.candidate("US", "SHORT_CODE", None, 0))
        self.assertIsNone(self.inv.candidate("JM", "TOLL_FREE", None, 0))

    def test_nanp_numbers(self):
        us_tf = ("800", "833", "844", "855", "866", "877", "888")
        for i in range(200):
            n = self.inv.candidate("US", "DID", None, i)
            npa, nxx = n[2:5], n[5:8]
            self.assertEqual(len(n), 12)
            self.assertIn(npa[0], "23456789")
            self.assertNotEqual(npa[1:], "11")
            self.assertNotEqual(npa[1], "9")
            self.assertNotIn(npa, us_tf)
            self.assertIn(nxx[0], "23456789")
            self.assertNotEqual(nxx[1:], "11")
            t = self.inv.candidate("US", "TOLL_FREE", None, i)
            self.assertIn(t[2:5], us_tf)
        # Canadian area codes are Canada's.
        self.assertIsNone(self.inv.candidate("US", "DID", "+1416", 0))
        self.assertTrue(self.inv.candidate("CA", "DID", "+1416", 0).startswith("+1416"))

    def test_prefix(self):
        for c, p in [("US", "+1206"), ("US", "+1"), ("GB", "+4420"), ("DE", "+4930"), ("US", "+12065")]:
            for i in range(20):
                n = self.inv.candidate(c, "DID", p, i)
                self.assertTrue(n.startswith(p), (c, p, n))
        for c, p in [("US", "+44"), ("GB", "+1"), ("US", "+1800"), ("DE", "+4980"), ("US", "+1206555012345")]:
            self.assertIsNone(self.inv.candidate(c, "DID", p, 0), (c, p))

    def test_deterministic_per_seed(self):
        a = [inventory.Inventory(seed=7).candidate("FR", "DID", None, i) for i in range(5)]
        b = [inventory.Inventory(seed=7).candidate("FR", "DID", None, i) for i in range(5)]
        c = [inventory.Inventory(seed=8).candidate("FR", "DID", None, i) for i in range(5)]
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)

    def test_distinct_and_bounded(self):
        inv = inventory.Inventory(seed=3, size_per_stream=50)
        nums = [inv.candidate("US", "DID", "+1312", i) for i in range(60)]
        self.assertEqual(len(set(nums[:50])), 50)
        self.assertEqual(nums[50:], [None] * 10)

    def test_made_up_numbers_are_mostly_not_inventory(self):
        made_up = ["+1206%07d" % (2000000 + i) for i in range(400)]
        hits = sum(1 for n in made_up if self.inv.classify(n))
        self.assertLess(hits, 100)
        self.assertGreater(hits, 10)

    def test_format_numbers_for_seeding(self):
        nums = self.inv.format_numbers("US", "DID", 5000, set())
        self.assertEqual(len(set(nums)), 5000)
        self.assertTrue(all(E164.match(n) and n.startswith("+1") for n in nums))
        with self.assertRaises(ValueError):
            self.inv.format_numbers("US", "SHORT_CODE", 1, set())


if __name__ == "__main__":
    unittest.main()
