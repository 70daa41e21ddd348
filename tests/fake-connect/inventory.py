"""inventory.py: the fake Connect's supply of phone numbers (pure, no I/O).

Owns: the numbering plan the emulator believes in (calling code, national
leading digits and length per country and number type, NANP area codes for
+1), the deterministic "is this number in Amazon's inventory" predicate, and
the per-(country, type, prefix) candidate streams that
SearchAvailablePhoneNumbers walks.

Must not: know who holds a number (the emulator filters claimed, released,
stolen and FAILED-held numbers), read the clock, or use global randomness:
everything derives from the seed so that two runs with the same seed offer
the same numbers in the same order.

Model: a number is in the inventory when it matches one of the format rules
and a keyed hash of it says so (1 in DENSITY numbers). Where several
(country, type) pairs share a format (+1 toll-free, +7, +44 for GB/GG/JE/IM,
DID/SHARED/THIRD_PARTY_DID, UIFN...) the same hash assigns the number to
exactly one of them, so a number always has one country and one type.
"""

import hashlib
import random

DENSITY = 8

# ISO 3166 alpha-2 -> E.164 country calling code, for the 237 codes of the
# model's PhoneNumberCountryCode enum. NANP members (+1) are listed in
# NANP_AREA_CODES instead.
CALLING_CODES = dict(item.split(":") for item in """
AF:93 AL:355 DZ:213 AD:376 AO:244 AQ:672 AR:54 AM:374 AW:297 AU:61 AT:43 AZ:994
BH:973 BD:880 BY:375 BE:32 BZ:501 BJ:229 BT:975 BO:591 BA:387 BW:267 BR:55 IO:246
BN:673 BG:359 BF:226 BI:257 KH:855 CM:237 CV:238 CF:236 TD:235 CL:56 CN:86 CX:61
CC:61 CO:57 KM:269 CK:682 CR:506 HR:385 CU:53 CW:599 CY:357 CZ:420 CD:243 DK:45
DJ:253 TL:670 EC:593 EG:20 SV:503 GQ:240 ER:291 EE:372 ET:251 FK:500 FO:298 FJ:679
FI:358 FR:33 PF:689 GA:241 GM:220 GE:995 DE:49 GH:233 GI:350 GR:30 GL:299 GT:502
GG:44 GN:224 GW:245 GY:592 HT:509 HN:504 HK:852 HU:36 IS:354 IN:91 ID:62 IR:98
IQ:964 IE:353 IM:44 IL:972 IT:39 CI:225 JP:81 JE:44 JO:962 KZ:7 KE:254 KI:686
KW:965 KG:996 LA:856 LV:371 LB:961 LS:266 LR:231 LY:218 LI:423 LT:370 LU:352 MO:853
MK:389 MG:261 MW:265 MY:60 MV:960 ML:223 MT:356 MH:692 MR:222 MU:230 YT:262 MX:52
FM:691 MD:373 MC:377 MN:976 ME:382 MA:212 MZ:258 MM:95 NA:264 NR:674 NP:977 NL:31
AN:599 NC:687 NZ:64 NI:505 NE:227 NG:234 NU:683 KP:850 NO:47 OM:968 PK:92 PW:680
PA:507 PG:675 PY:595 PE:51 PH:63 PN:64 PL:48 PT:351 QA:974 CG:242 RE:262 RO:40
RU:7 RW:250 BL:590 SH:290 MF:590 PM:508 WS:685 SM:378 ST:239 SA:966 SN:221 RS:381
SC:248 SL:232 SG:65 SK:421 SI:386 SB:677 SO:252 ZA:27 KR:82 ES:34 LK:94 SD:249
SR:597 SJ:47 SZ:268 SE:46 CH:41 SY:963 TW:886 TJ:992 TZ:255 TH:66 TG:228 TK:690
TO:676 TN:216 TR:90 TM:993 TV:688 UG:256 UA:380 AE:971 GB:44 UY:598 UZ:998 VU:678
VA:379 VE:58 VN:84 WF:681 EH:212 YE:967 ZM:260 ZW:263
""".split())

# North American Numbering Plan members: geographic area codes (NPA). The
# US gets every other valid geographic NPA (see _us_area_codes).
NANP_AREA_CODES = {
    "CA": "204 226 236 249 250 257 263 289 306 343 354 365 367 368 382 387 403 416 418 428 "
          "431 437 438 450 460 468 474 506 514 519 548 579 581 584 587 604 613 639 647 672 "
          "683 705 709 742 753 778 780 782 807 819 825 867 873 879 902 905 942",
    "AS": "684", "AI": "264", "AG": "268", "BS": "242", "BB": "246", "BM": "441", "VG": "284",
    "KY": "345", "DM": "767", "DO": "809 829 849", "GD": "473", "GU": "671", "JM": "876 658",
    "MS": "664", "MP": "670", "PR": "787 939", "KN": "869", "LC": "758", "VC": "784",
    "SX": "721", "TT": "868", "TC": "649", "VI": "340",
}
NANP_TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
# Toll-free NPAs are shared by the NANP; the emulator offers them for US and CA.
NANP_TOLL_FREE_COUNTRIES = ("US", "CA")

GEO_TYPES = ("DID", "SHARED", "THIRD_PARTY_DID")
TF_TYPES = ("TOLL_FREE", "THIRD_PARTY_TF")
# SHORT_CODE: no format is modelled, a search finds nothing.

# Countries with a more specific plan: (leading digits, national number
# length) for geographic and toll-free numbers. Others use _default_plan.
SPECIFIC_PLANS = {
    "GB": ([("1", 10), ("2", 10)], [("800", 10), ("808", 10)]),
    "GG": ([("1481", 10)], []),
    "JE": ([("1534", 10)], []),
    "IM": ([("1624", 10)], []),
    "DE": ([("30", 10), ("40", 10), ("69", 10), ("89", 10), ("211", 10), ("221", 10), ("711", 10)],
           [("800", 10)]),
    "FR": ([("1", 9), ("2", 9), ("3", 9), ("4", 9), ("5", 9), ("9", 9)], [("800", 9), ("805", 9)]),
    "AU": ([("2", 9), ("3", 9), ("7", 9), ("8", 9)], [("1800", 10)]),
    "JP": ([("3", 10), ("6", 10)], [("120", 9), ("800", 10)]),
    "IT": ([("02", 10), ("06", 10)], [("800", 9)]),
    "ES": ([("91", 9), ("93", 9)], [("900", 9)]),
    "NL": ([("10", 9), ("20", 9), ("30", 9)], [("800", 10)]),
    "IE": ([("1", 8)], [("1800", 10)]),
    "NZ": ([("3", 8), ("4", 8), ("6", 8), ("7", 8), ("9", 8)], [("800", 9)]),
    "SG": ([("6", 8)], [("1800", 11)]),
    "IN": ([("11", 10), ("22", 10), ("80", 10)], [("1800", 11)]),
    "BR": ([("11", 10), ("21", 10)], [("800", 10)]),
    "MX": ([("33", 10), ("55", 10), ("81", 10)], [("800", 10)]),
    "ZA": ([("10", 9), ("11", 9), ("21", 9)], [("800", 9)]),
    "RU": ([("3", 10), ("4", 10)], [("800", 10)]),
    "KZ": ([("7", 10)], [("800", 10)]),
}


def _default_plan(cc):
    n = {1: 10, 2: 9}.get(len(cc), 8)
    return ([(str(d), n) for d in range(2, 8)], [("800", n)])


def _us_area_codes():
    taken = set()
    for codes in NANP_AREA_CODES.values():
        taken.update(codes.split())
    out = []
    for npa in range(200, 1000):
        s = str(npa)
        if s[1] == "9" or s[1:] == "11" or s[1:] == "00":      # N9X expansion, N11 service, N00
            continue
        if s[:2] in ("37", "96") or s in NANP_TOLL_FREE or s[:2] == "88" or s == "822":
            continue
        if s in ("456", "500", "521", "522", "523", "524", "525", "526", "527", "528", "529",
                 "533", "544", "555", "566", "577", "588", "600", "700", "710", "900", "950",
                 "958", "959", "976") or s in taken:
            continue
        out.append(s)
    return out


class Rule:
    __slots__ = ("country", "types", "cc", "lead", "nsn_len", "nanp")

    def __init__(self, country, types, cc, lead, nsn_len, nanp=False):
        self.country = country
        self.types = types
        self.cc = cc
        self.lead = lead
        self.nsn_len = nsn_len
        self.nanp = nanp

    @property
    def fixed(self):
        return self.cc + self.lead

    @property
    def total(self):
        return len(self.cc) + self.nsn_len


def _build_rules():
    rules = []
    for country, cc in CALLING_CODES.items():
        geo, tf = SPECIFIC_PLANS.get(country) or _default_plan(cc)
        for lead, n in geo:
            rules.append(Rule(country, GEO_TYPES, cc, lead, n))
        for lead, n in tf:
            rules.append(Rule(country, TF_TYPES, cc, lead, n))
    for country, codes in NANP_AREA_CODES.items():
        for npa in codes.split():
            rules.append(Rule(country, GEO_TYPES, "1", npa, 10, nanp=True))
    for npa in _us_area_codes():
        rules.append(Rule("US", GEO_TYPES, "1", npa, 10, nanp=True))
    for country in NANP_TOLL_FREE_COUNTRIES:
        for npa in NANP_TOLL_FREE:
            rules.append(Rule(country, TF_TYPES, "1", npa, 10, nanp=True))
    # UIFN (+800 plus 8 digits) is global; every country may offer it. Each
    # country gets a two-digit block so that a search finds numbers quickly.
    for i, country in enumerate(sorted(set(CALLING_CODES) | set(NANP_AREA_CODES) | {"US"})):
        rules.append(Rule(country, ("UIFN",), "800", "%02d" % (i % 100), 8))
    return rules


RULES = _build_rules()
COUNTRIES = sorted(set(CALLING_CODES) | set(NANP_AREA_CODES) | {"US"})

_INDEX = {}          # cc -> {lead: [rules]}
_LEAD_LENS = {}      # cc -> sorted lead lengths
for _r in RULES:
    _INDEX.setdefault(_r.cc, {}).setdefault(_r.lead, []).append(_r)
    _LEAD_LENS.setdefault(_r.cc, set()).add(len(_r.lead))
_LEAD_LENS = {k: sorted(v) for k, v in _LEAD_LENS.items()}
_BY_COUNTRY_TYPE = {}
for _r in RULES:
    for _t in _r.types:
        _BY_COUNTRY_TYPE.setdefault((_r.country, _t), []).append(_r)


def _nanp_ok(national):
    # NXX: 2-9 then not N11; 555-01XX is the fictional range.
    nxx = national[3:6]
    if len(national) != 10 or nxx[0] in "01" or nxx[1:] == "11":
        return False
    if nxx == "555" and national[6:8] == "01":
        return False
    return True


def format_candidates(digits, strict=True):
    """Every (country, type) whose format matches the E.164 digits (no '+').
    strict=False skips the national-number length and the NANP exchange-code
    checks (seeded numbers such as the fictional +1 NPA 555-01XX)."""
    out = []
    for cc_len in (1, 2, 3):
        cc = digits[:cc_len]
        idx = _INDEX.get(cc)
        if not idx:
            continue
        national = digits[cc_len:]
        for ll in _LEAD_LENS[cc]:
            for rule in idx.get(national[:ll], ()):
                if strict and len(national) != rule.nsn_len:
                    continue
                if strict and rule.nanp and not _nanp_ok(national):
                    continue
                for t in rule.types:
                    out.append((rule.country, t))
    return sorted(set(out))


class Inventory:
    """The numbers Amazon would offer, for one seed."""

    def __init__(self, seed=1, size_per_stream=1000):
        self.seed = int(seed)
        self.size_per_stream = size_per_stream
        self._key = hashlib.sha256(b"fake-connect-inventory/%d" % self.seed).digest()[:32]
        self._streams = {}

    def _hash(self, digits):
        return int.from_bytes(hashlib.blake2b(digits.encode(), digest_size=8, key=self._key).digest(), "big")

    def classify(self, phone_number):
        """(country, type) of a number in the inventory, else None."""
        if not phone_number.startswith("+") or not phone_number[1:].isdigit():
            return None
        digits = phone_number[1:]
        cands = format_candidates(digits)
        if not cands:
            return None
        h = self._hash(digits)
        if h % DENSITY != 0:
            return None
        return cands[(h >> 8) % len(cands)]

    def describe_format(self, phone_number):
        """(country, type) of any well-formed number (ignoring the inventory
        predicate): used for seeded numbers given without country/type."""
        if not phone_number.startswith("+") or not phone_number[1:].isdigit():
            return None
        cands = format_candidates(phone_number[1:], strict=False)
        if not cands:
            return None
        # The first type of the format's group (DID rather than SHARED).
        # Primary types first, and the main country of a shared calling code.
        main = {"US": 0, "GB": 0, "RU": 0, "AU": 0, "NO": 0, "FR": 0, "IT": 0, "NZ": 0, "MA": 0}
        return min(cands, key=lambda ct: (ct[1] not in ("DID", "TOLL_FREE", "UIFN"), main.get(ct[0], 1), ct))

    @staticmethod
    def compatible_rules(country, ptype, prefix_digits):
        out = []
        for rule in _BY_COUNTRY_TYPE.get((country, ptype), ()):
            f = rule.fixed
            if len(prefix_digits) > rule.total:
                continue
            if f.startswith(prefix_digits) or prefix_digits.startswith(f):
                out.append(rule)
        return out

    @staticmethod
    def _draw(rng, rules, prefix_digits):
        rule = rules[rng.randrange(len(rules))]
        start = prefix_digits if len(prefix_digits) > len(rule.fixed) else rule.fixed
        rest = rule.total - len(start)
        if rest > 0:
            start += str(rng.randrange(10 ** rest)).zfill(rest)
        return "+" + start

    def stream(self, country, ptype, prefix):
        """The candidate stream object for (country, type, prefix)."""
        key = (country, ptype, prefix or "")
        s = self._streams.get(key)
        if s is None:
            digits = (prefix or "").lstrip("+")
            seed_material = "%d/%s/%s/%s" % (self.seed, country, ptype, digits)
            s = {
                "rules": self.compatible_rules(country, ptype, digits),
                "prefix": digits,
                "rng": random.Random(hashlib.sha256(seed_material.encode()).hexdigest()),
                "items": [],
                "seen": set(),
                "exhausted": False,
            }
            if not s["rules"]:
                s["exhausted"] = True
            self._streams[key] = s
        return s

    def candidate(self, country, ptype, prefix, index):
        """The index-th number of the stream (extending it as needed), or
        None when the inventory for (country, type, prefix) has fewer."""
        s = self.stream(country, ptype, prefix)
        misses = 0
        while len(s["items"]) <= index and not s["exhausted"]:
            if len(s["items"]) >= self.size_per_stream:
                s["exhausted"] = True
                break
            num = self._draw(s["rng"], s["rules"], s["prefix"])
            if num in s["seen"]:
                misses += 1
            else:
                s["seen"].add(num)
                if self.classify(num) == (country, ptype):
                    s["items"].append(num)
                    misses = 0
                    continue
                misses += 1
            # A prefix that leaves few or no numbers ends the stream.
            if misses >= 3000:
                s["exhausted"] = True
        if index < len(s["items"]):
            return s["items"][index]
        return None

    def format_numbers(self, country, ptype, count, taken, prefix="", rng=None):
        """count distinct well-formed numbers of (country, type) not in taken
        (for seeding: no inventory predicate, fast). Raises ValueError if the
        plan has no format or the space is too small."""
        digits = (prefix or "").lstrip("+")
        rules = self.compatible_rules(country, ptype, digits)
        if not rules:
            raise ValueError("no %s %s numbers%s in the emulator's numbering plan"
                             % (country, ptype, " with prefix +" + digits if digits else ""))
        rng = rng or random.Random("seed/%d/%s/%s/%s" % (self.seed, country, ptype, digits))
        out = []
        new = set()
        misses = 0
        while len(out) < count:
            num = self._draw(rng, rules, digits)
            d = num[1:]
            ok = num not in taken and num not in new
            if ok and rules[0].nanp and not _nanp_ok(d[1:]):
                ok = False
            if not ok:
                misses += 1
                if misses > 20 * count + 1000:
                    raise ValueError("not enough distinct %s %s numbers for prefix +%s" % (country, ptype, digits))
                continue
            new.add(num)
            out.append(num)
        return out
