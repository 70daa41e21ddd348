#!/usr/bin/env python3
"""fake_connect.py: a strict loopback emulator of the Amazon Connect
phone-number API (restJson1 over HTTPS, SigV4), plus an admin API, EC2
IMDSv2 and container-credential endpoints, for the connect-numbers tests.

Owns: the HTTPS and admin servers, routing by method and path, the
emulated account (claimed numbers, idempotency tokens, throttling buckets,
temporary credentials), fault injection, and the request log.
Must not: listen on anything but 127.0.0.1, talk to the network, or be
lenient: a request AWS would refuse is refused, with AWS's error code.

Every behaviour cites docs/connect-api.md (the project's wire notes); the README
next to this file lists them and the assumptions. Standard library only,
plus the openssl CLI for the certificates.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import connect_model  # noqa: E402
import inventory as inventory_mod  # noqa: E402
import sigv4_verify  # noqa: E402

ACCESS_KEY_ID = "AKIDFAKECONNECT00001"
SECRET_ACCESS_KEY = "fakeSecretKey/0123456789abcdefEXAMPLE"
DEFAULT_ACCOUNT = "111122223333"
ROLE_NAME = "fake-connect-role"
FAILED_WINDOW_SEC = 24 * 3600          # docs/connect-api.md §5: one day to retry a FAILED claim

UUID_RE = re.compile(r"^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}"
TARGET_ARN_RE = re.compile(r"^arn:(aws|aws-us-gov):connect:(%s):(\d{12}):(instance|traffic-distribution-group)/"
                           r"([a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12})$" % _REGION)
PN_ARN_RE = re.compile(r"^arn:(aws|aws-us-gov):connect:(%s):(\d{12}):phone-number/(.+)$" % _REGION)
LEGACY_PN_ARN_RE = re.compile(r"^arn:(aws|aws-us-gov):connect:(%s):(\d{12}):instance/[^/]+/phone-number/.+$"
                              % _REGION)
FLOW_ARN_RE = re.compile(r"^arn:(aws|aws-us-gov):connect:(%s):(\d{12}):instance/([^/]+)/contact-flow/(.+)$"
                         % _REGION)
CLAIM_TOKEN_RE = UUID_RE               # docs/connect-api.md §3: ClaimPhoneNumber ClientToken pattern

MUTATING = {"ClaimPhoneNumber", "ReleasePhoneNumber", "UpdatePhoneNumber", "UpdatePhoneNumberMetadata",
            "AssociatePhoneNumberContactFlow", "DisassociatePhoneNumberContactFlow", "TagResource",
            "UntagResource", "ImportPhoneNumber"}

# docs/connect-api.md §4: method + path template per operation. Labels are one
# path segment each (an ARN arrives with ':' and '/' percent-encoded).
ROUTES = [
    ("POST", ("phone-number", "claim"), "ClaimPhoneNumber"),
    ("POST", ("phone-number", "list"), "ListPhoneNumbersV2"),
    ("POST", ("phone-number", "search-available"), "SearchAvailablePhoneNumbers"),
    ("POST", ("phone-number", "import"), "ImportPhoneNumber"),
    ("GET", ("phone-number", "{PhoneNumberId}"), "DescribePhoneNumber"),
    ("DELETE", ("phone-number", "{PhoneNumberId}"), "ReleasePhoneNumber"),
    ("PUT", ("phone-number", "{PhoneNumberId}"), "UpdatePhoneNumber"),
    ("PUT", ("phone-number", "{PhoneNumberId}", "metadata"), "UpdatePhoneNumberMetadata"),
    ("PUT", ("phone-number", "{PhoneNumberId}", "contact-flow"), "AssociatePhoneNumberContactFlow"),
    ("DELETE", ("phone-number", "{PhoneNumberId}", "contact-flow"), "DisassociatePhoneNumberContactFlow"),
    ("POST", ("tags", "{resourceArn}"), "TagResource"),
    ("DELETE", ("tags", "{resourceArn}"), "UntagResource"),
    ("GET", ("tags", "{resourceArn}"), "ListTagsForResource"),
    ("GET", ("phone-numbers-summary", "{InstanceId}"), "ListPhoneNumbers"),
    ("GET", ("instance", "{InstanceId}"), "DescribeInstance"),
]

FAULT_KINDS = ("throttle", "error500", "drop", "drop_after", "truncate", "slow")

CONFIG_DEFAULTS = {
    "claim_delay": 0.5,
    "metadata_delay": 0.2,
    "rate": 2.0,
    "burst": 5,
    "rates": {},
    "default_quota": 5,
    "quotas": {},
    "faults": {},
    "fault_next": [],
    "fail_claims": [],
    "fail_next_claims": 0,
    # UpdatePhoneNumber outcomes: FAILED after the claim delay, the number left where it was.
    "fail_moves": [],                # [{"phone_number": "+1...", "times": 1, "message": "..."}]
    "fail_next_moves": 0,
    "steal_after_search": False,
    "search_misfit": None,
    "no_inventory": [],
    "missing_targets": [],
    "credentials": [],
    "container_token": None,
    "temp_credentials_ttl": 3600,
    "roles": {},
    "sts_credentials_ttl": None,
    "list_hides_in_progress": False,
    "list_token_cycle": 0,
    "list_order": "stable",
    "remember_refused_claims": False,
    "token_ttl": 86400,
    "max_skew": 300,
    "verbose": False,
}


class ApiError(Exception):
    """An AWS error answer: HTTP status, x-amzn-ErrorType, body members."""

    STATUS = {
        "InvalidParameterException": 400, "InvalidRequestException": 400, "AccessDeniedException": 403,
        "ResourceNotFoundException": 404, "IdempotencyException": 409, "ResourceInUseException": 409,
        "ThrottlingException": 429, "InternalServiceException": 500, "UnknownOperationException": 404,
        "ServiceQuotaExceededException": 402,
    }

    def __init__(self, code, message, status=None, validation=False, **members):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or self.STATUS.get(code, 400)
        self.members = members
        self.validation = validation

    def body(self):
        b = {"Message": self.message}
        b.update(self.members)
        return b


def invalid(message):
    return ApiError("InvalidParameterException", message, validation=True)


def not_found(message):
    return ApiError("ResourceNotFoundException", message)


def iso8601(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ==================================================================== state

class Number:
    """One phone number this account holds or held (a claim's record)."""

    __slots__ = ("seq", "id", "arn", "phone_number", "country", "type", "target_arn", "region", "account",
                 "partition", "status", "status_message", "tags", "description", "contact_flow", "released",
                 "released_at", "claims", "claimed_at", "failed_at", "expired", "pending", "fail_kind", "moves")

    def __init__(self, seq, phone_number, country, ptype, target):
        self.seq = seq
        self.id = str(uuid.uuid4())
        self.phone_number = phone_number
        self.moves = 0                 # UpdatePhoneNumber calls that moved it (idempotent replays excluded)
        self.country = country
        self.type = ptype
        self.set_target(target)
        self.arn = "arn:%s:connect:%s:%s:phone-number/%s" % (self.partition, self.region, self.account, self.id)
        self.status = "IN_PROGRESS"
        self.status_message = None
        self.tags = {}
        self.description = None
        self.contact_flow = None
        self.released = False
        self.released_at = None
        self.claims = 0
        self.claimed_at = None
        self.failed_at = None          # start of the FAILED window (first failure in a row)
        self.expired = False           # FAILED window over: back to Amazon's inventory
        self.pending = None            # {"kind", "until", "outcome", "message", ...}
        self.fail_kind = None          # "claim" or "update" when status is FAILED

    def set_target(self, target):
        self.target_arn = target["arn"]
        self.region = target["region"]
        self.account = target["account"]
        self.partition = target["partition"]

    @property
    def instance_id(self):
        m = TARGET_ARN_RE.match(self.target_arn)
        return m.group(5) if m and m.group(4) == "instance" else None

    @property
    def is_tdg(self):
        return ":traffic-distribution-group/" in self.target_arn

    def gone(self):
        return self.released or self.expired

    def held(self):
        """Counts against the quota and is listed: CLAIMED or IN_PROGRESS (a
        FAILED UpdatePhoneNumber leaves the number where it was)."""
        if self.gone():
            return False
        return self.status in ("CLAIMED", "IN_PROGRESS") or (self.status == "FAILED" and self.fail_kind == "update")

    def summary(self):
        s = {
            "PhoneNumberId": self.id,
            "PhoneNumberArn": self.arn,
            "PhoneNumber": self.phone_number,
            "PhoneNumberCountryCode": self.country,
            "PhoneNumberType": self.type,
            "TargetArn": self.target_arn,
        }
        if self.instance_id:
            s["InstanceId"] = self.instance_id
        if self.description is not None:
            s["PhoneNumberDescription"] = self.description
        return s

    def described(self):
        s = self.summary()
        s["Tags"] = dict(self.tags)
        st = {"Status": self.status}
        if self.status_message:
            st["Message"] = self.status_message
        s["PhoneNumberStatus"] = st
        return s

    def admin(self):
        return {
            "id": self.id, "arn": self.arn, "phone_number": self.phone_number, "country": self.country,
            "type": self.type, "target_arn": self.target_arn, "instance_id": self.instance_id,
            "region": self.region, "status": self.status, "status_message": self.status_message,
            "tags": dict(self.tags), "description": self.description, "contact_flow": self.contact_flow,
            "released": self.released, "released_at": self.released_at, "claims": self.claims,
            "claimed_at": self.claimed_at, "failed_at": self.failed_at, "expired": self.expired,
            "moves": self.moves,
        }


class Bucket:
    """Token bucket on the monotonic clock (docs/connect-api.md §6)."""

    def __init__(self, rate, burst):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last = time.monotonic()

    def take(self):
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Emulator:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.model = connect_model.Model()
        self.account = args.account_id
        self.offset = float(args.clock_offset)
        self.inventory = inventory_mod.Inventory(args.seed, args.inventory_size)
        self.rng = random.Random(args.seed)
        self.token_secret = secrets.token_bytes(32)
        self.config = json.loads(json.dumps(CONFIG_DEFAULTS))
        self.config.update({"claim_delay": args.claim_delay, "metadata_delay": args.metadata_delay,
                            "rate": args.rate, "burst": args.burst, "default_quota": args.quota,
                            "temp_credentials_ttl": args.temp_credentials_ttl, "verbose": args.verbose})
        self.seq = 0
        self.numbers = []              # every record, creation order
        self.by_id = {}
        self.by_phone = {}             # phone number -> its latest record
        self.by_target = {}            # target ARN -> [records]
        self.stolen = set()            # numbers another customer holds
        self.caller_account = None     # the account of the call being answered (under the lock)
        self.tokens = {}               # (op, token) -> {"fp", "status", "body", "expires"}
        self.buckets = {}
        self.temp_keys = {}            # ASIA key -> {"secret", "token", "expiration", "source"}
        self.current_temp = {}         # source -> ASIA key handed out now
        self.imds_tokens = {}          # token -> expiry
        self.reset_counters()

    # ------------------------------------------------------------ basics
    def now(self):
        return time.time() + self.offset

    def reset_counters(self):
        with self.lock:
            self.calls = {}
            self.throttled = {}
            self.errors = {}
            self.error_codes = {}
            self.faults_done = {}
            self.validation_failures = 0
            self.validation_messages = []
            self.requests = []

    def count(self, table, op, n=1):
        table[op] = table.get(op, 0) + n

    def quota_of(self, target_arn):
        return int(self.config["quotas"].get(target_arn, self.config["default_quota"]))

    # ------------------------------------------------------------ credentials
    def lookup_key(self, akid):
        if akid == ACCESS_KEY_ID:
            return {"secret": SECRET_ACCESS_KEY, "token": None, "expiration": None, "account": self.account}
        for c in self.config["credentials"]:
            if c.get("access_key_id") == akid:
                return {"secret": c.get("secret_access_key", ""), "token": None, "expiration": None,
                        "account": c.get("account", self.account)}
        k = self.temp_keys.get(akid)
        if k:
            return {"secret": k["secret"], "token": k["token"], "expiration": k["expiration"],
                    "account": k.get("account", self.account), "role_arn": k.get("role_arn")}
        return None

    def temp_credentials(self, source):
        """The credentials an IMDS or container endpoint hands out now: the
        current set while more than half its life remains, else a new one
        (old sets stay valid until they expire, as on EC2)."""
        with self.lock:
            now = self.now()
            ttl = float(self.config["temp_credentials_ttl"])
            akid = self.current_temp.get(source)
            k = self.temp_keys.get(akid) if akid else None
            if k is None or k["expiration"] - now < ttl / 2:
                akid = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))
                k = {"secret": base64.b64encode(secrets.token_bytes(30)).decode(),
                     "token": "FQoGZXIvYXdzE" + base64.b64encode(secrets.token_bytes(180)).decode(),
                     "expiration": now + ttl, "source": source}
                self.temp_keys[akid] = k
                self.current_temp[source] = akid
            return {"AccessKeyId": akid, "SecretAccessKey": k["secret"], "Token": k["token"],
                    "Expiration": iso8601(k["expiration"])}

    # ------------------------------------------------------------ state machine
    def settle(self, rec, now=None):
        """Applies what time has decided: an IN_PROGRESS operation that is
        done, a FAILED claim whose one-day window is over."""
        now = self.now() if now is None else now
        p = rec.pending
        if p is not None and now >= p["until"]:
            rec.pending = None
            if p["kind"] == "claim":
                if p["outcome"] == "CLAIMED":
                    rec.status, rec.status_message, rec.failed_at, rec.fail_kind = "CLAIMED", None, None, None
                else:
                    rec.status, rec.status_message, rec.fail_kind = "FAILED", p["message"], "claim"
                    if rec.failed_at is None:
                        rec.failed_at = p["until"]
            elif p["kind"] == "metadata":
                rec.status, rec.status_message = "CLAIMED", None
                if p.get("description") is not None:
                    rec.description = p["description"]
            elif p["kind"] == "update":
                if p["outcome"] == "CLAIMED":
                    self._move(rec, p["target"])
                    rec.contact_flow = None        # docs/connect-api.md §4.6: the flow is not carried
                    rec.status, rec.status_message, rec.fail_kind = "CLAIMED", None, None
                else:
                    rec.status, rec.status_message, rec.fail_kind = "FAILED", p["message"], "update"
        if (rec.status == "FAILED" and rec.fail_kind == "claim" and not rec.gone()
                and rec.failed_at is not None and now >= rec.failed_at + FAILED_WINDOW_SEC):
            rec.expired = True

    def _move(self, rec, target):
        lst = self.by_target.get(rec.target_arn)
        if lst and rec in lst:
            lst.remove(rec)
        rec.set_target(target)
        self.by_target.setdefault(rec.target_arn, []).append(rec)

    def new_record(self, phone, country, ptype, target):
        self.seq += 1
        rec = Number(self.seq, phone, country, ptype, target)
        self.numbers.append(rec)
        self.by_id[rec.id] = rec
        self.by_phone[phone] = rec
        self.by_target.setdefault(rec.target_arn, []).append(rec)
        self.stolen.discard(phone)
        return rec

    def target_count(self, target_arn, exclude=None):
        n = 0
        now = self.now()
        for rec in self.by_target.get(target_arn, ()):
            if rec is exclude:
                continue
            self.settle(rec, now)
            if not rec.gone() and rec.status in ("CLAIMED", "IN_PROGRESS"):
                n += 1
        return n

    def in_no_inventory(self, country, ptype, number_or_prefix):
        for e in self.config["no_inventory"]:
            if e.get("country") not in (None, country):
                continue
            if e.get("type") not in (None, ptype):
                continue
            p = e.get("prefix")
            if p and not (number_or_prefix or "+").startswith("+" + p.lstrip("+")):
                continue
            return True
        return False

    def available(self, phone, country, ptype, now):
        """May this account claim phone now (a search may offer it)?"""
        if phone in self.stolen:
            return False
        rec = self.by_phone.get(phone)
        if rec is not None:
            self.settle(rec, now)
            return False
        return not self.in_no_inventory(country, ptype, phone)

    def target_missing(self, arn):
        for t in self.config["missing_targets"]:
            if t == arn or (UUID_RE.match(t or "") and arn.endswith("/" + t)):
                return True
        return False


# ==================================================================== API

class Api:
    """The operations. Each handler runs under the emulator lock and
    returns (status, body dict or None) or raises ApiError."""

    def __init__(self, emu):
        self.emu = emu

    # ------------------------------------------------------------ helpers
    def parse_target(self, arn, region, op, missing_code="ResourceNotFoundException"):
        m = TARGET_ARN_RE.match(arn or "")
        if not m:
            raise invalid("TargetArn '%s' is not a valid instance or traffic distribution group ARN."
                          % (arn or "")[:200])
        partition, t_region, account, kind, ident = m.groups()
        if (partition == "aws-us-gov") != t_region.startswith("us-gov-"):
            raise invalid("TargetArn '%s' has a partition that does not match its Region." % arn)
        target = {"arn": arn, "partition": partition, "region": t_region, "account": account, "kind": kind,
                  "id": ident}
        if t_region != region:
            # docs/connect-api.md §4.1, 5: Connect must be called in the target's Region.
            if kind == "traffic-distribution-group" or missing_code == "InvalidParameterException":
                raise invalid("The request must be made in the Region of the target %s (%s), not %s."
                              % (arn, t_region, region))
            raise not_found("Instance %s was not found in Region %s." % (ident, region))
        if self.emu.target_missing(arn):
            label = "Instance" if kind == "instance" else "TrafficDistributionGroup"
            raise ApiError(missing_code, "%s %s not found." % (label, arn))
        return target

    def target_from_instance_id(self, instance_id, region, op, missing_code="ResourceNotFoundException"):
        if TARGET_ARN_RE.match(instance_id or "") and ":instance/" in instance_id:
            return self.parse_target(instance_id, region, op, missing_code)
        if not UUID_RE.match(instance_id or ""):
            raise invalid("InstanceId '%s' is not a valid instance identifier." % (instance_id or "")[:100])
        arn = "arn:%s:connect:%s:%s:instance/%s" % ("aws-us-gov" if region.startswith("us-gov-") else "aws",
                                                     region, self.emu.account, instance_id)
        return self.parse_target(arn, region, op, missing_code)

    def one_target(self, body, region, op, required=True, missing_code="ResourceNotFoundException"):
        t, i = body.get("TargetArn"), body.get("InstanceId")
        if t is not None and i is not None:
            raise invalid("Specify either InstanceId or TargetArn, not both.")
        if t is None and i is None:
            if required:
                raise invalid("You must enter InstanceId or TargetArn")
            return None
        if t is not None:
            return self.parse_target(t, region, op, missing_code)
        return self.target_from_instance_id(i, region, op, missing_code)

    def resolve(self, ident, region, allow_gone=False):
        """A PhoneNumberId (UUID or phone-number ARN) -> record, in region."""
        emu = self.emu
        rec = None
        if UUID_RE.match(ident):
            rec = emu.by_id.get(ident)
            # A bare id names a number of the caller's own account: another
            # account's number is not found (its ARN would say whose it is).
            caller = getattr(emu, "caller_account", None)
            if rec is not None and caller and rec.account != caller:
                rec = None
        else:
            m = PN_ARN_RE.match(ident)
            if m and not LEGACY_PN_ARN_RE.match(ident):
                cand = emu.by_id.get(m.group(4))
                if cand is not None and cand.arn == ident:
                    rec = cand
        if rec is None or rec.region != region:
            raise not_found("Phone number %s not found." % ident[:300])
        emu.settle(rec)
        if not allow_gone and rec.gone():
            raise not_found("Phone number %s not found." % ident[:300])
        return rec

    def idempotent(self, op, token, fingerprint):
        """(status, body) of an earlier identical request, None if new;
        IdempotencyException if the token was used with other parameters."""
        if not token:
            return None
        key = (op, token)
        entry = self.emu.tokens.get(key)
        if entry is None:
            return None
        if self.emu.now() >= entry["expires"]:
            del self.emu.tokens[key]
            return None
        if entry["fp"] != fingerprint:
            raise ApiError("IdempotencyException",
                           "An entity with the same name already exists. The ClientToken %s was already used "
                           "with different request parameters." % token)
        if entry.get("error") is not None:
            raise entry["error"]
        return entry["status"], entry["body"]

    def remember(self, op, token, fingerprint, status, body, error=None):
        if token:
            self.emu.tokens[(op, token)] = {"fp": fingerprint, "status": status, "body": body, "error": error,
                                            "expires": self.emu.now() + float(self.emu.config["token_ttl"])}

    def refuse_claim(self, token, fingerprint, error):
        """Raises a claim refusal; with remember_refused_claims the token
        keeps it (the pessimistic reading of AWS's undocumented token
        lifetimes: the same token then replays the refusal, and another
        number with it is an IdempotencyException)."""
        if self.emu.config["remember_refused_claims"]:
            self.remember("ClaimPhoneNumber", token, fingerprint, error.status, None, error=error)
        raise error

    @staticmethod
    def fingerprint(region, params):
        return hashlib.sha256(json.dumps([region, params], sort_keys=True).encode()).hexdigest()

    def in_use(self, rec):
        return ApiError("ResourceInUseException",
                        "The phone number %s has an operation in progress (IN_PROGRESS). Try again when it "
                        "completes." % rec.phone_number, ResourceType="PHONE_NUMBER", ResourceId=rec.arn)

    def sign_token(self, payload):
        raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        mac = hmac.new(self.emu.token_secret, raw, hashlib.sha256).hexdigest()[:32]
        return base64.urlsafe_b64encode(raw).decode().rstrip("=") + "." + mac

    def open_token(self, token, kind, fp):
        try:
            raw_b64, mac = token.rsplit(".", 1)
            raw = base64.urlsafe_b64decode(raw_b64 + "=" * (-len(raw_b64) % 4))
            good = hmac.new(self.emu.token_secret, raw, hashlib.sha256).hexdigest()[:32]
            if not hmac.compare_digest(good, mac):
                raise ValueError
            payload = json.loads(raw)
            if payload.get("k") != kind or payload.get("f") != fp or not isinstance(payload.get("o"), int):
                raise ValueError
            return payload["o"]
        except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
            raise invalid("The NextToken is not valid for this request.")

    # ------------------------------------------------------------ operations
    def ClaimPhoneNumber(self, ctx):
        emu, b = self.emu, ctx["body"]
        token = b.get("ClientToken")
        if token is not None and not CLAIM_TOKEN_RE.match(token):
            raise invalid("1 validation error detected: Value '%s' at 'clientToken' failed to satisfy "
                          "constraint: Member must satisfy regular expression pattern: "
                          "^[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$" % token[:100])
        target = self.one_target(b, ctx["region"], "ClaimPhoneNumber")
        params = {k: v for k, v in b.items() if k != "ClientToken"}
        fp = self.fingerprint(ctx["region"], params)
        done = self.idempotent("ClaimPhoneNumber", token, fp)
        if done:
            return done
        phone = b["PhoneNumber"]
        now = emu.now()
        unavailable = not_found("PhoneNumber %s is not available. It may have been claimed by another customer, "
                                "or released." % phone)
        rec = emu.by_phone.get(phone)
        if rec is not None:
            emu.settle(rec, now)
            # docs/connect-api.md §5: a FAILED claim may be retried for one day;
            # a released number can never be claimed again.
            if rec.gone() or rec.status != "FAILED" or rec.fail_kind != "claim":
                self.refuse_claim(token, fp, unavailable)
            country, ptype = rec.country, rec.type
        else:
            cls = emu.inventory.classify(phone)
            if phone in emu.stolen or cls is None or emu.in_no_inventory(cls[0], cls[1], phone):
                self.refuse_claim(token, fp, unavailable)
            country, ptype = cls
        # The outcome is decided now and seen after claim_delay.
        outcome, message = "CLAIMED", None
        if emu.target_count(target["arn"], exclude=rec) >= emu.quota_of(target["arn"]):
            where = "instance" if target["kind"] == "instance" else "traffic distribution group"
            outcome, message = "FAILED", ("You've reached the limit of Phone Numbers for this %s. To increase the "
                                          "limit, contact support." % where)
        else:
            for e in emu.config["fail_claims"]:
                if e.get("phone_number") == phone and int(e.get("times", 1)) > 0:
                    e["times"] = int(e.get("times", 1)) - 1
                    outcome, message = "FAILED", e.get("message") or (
                        "The phone number could not be claimed because of a temporary provider error. Retry the "
                        "claim.")
                    break
            else:
                if int(emu.config["fail_next_claims"]) > 0:
                    emu.config["fail_next_claims"] = int(emu.config["fail_next_claims"]) - 1
                    outcome, message = "FAILED", ("The phone number could not be claimed because of a temporary "
                                                  "provider error. Retry the claim.")
        if rec is None:
            rec = emu.new_record(phone, country, ptype, target)
        elif rec.target_arn != target["arn"]:
            emu._move(rec, target)
        rec.status, rec.status_message, rec.fail_kind = "IN_PROGRESS", None, None
        rec.tags = dict(b.get("Tags") or {})
        rec.description = b.get("PhoneNumberDescription")
        rec.claims += 1
        rec.claimed_at = now
        rec.pending = {"kind": "claim", "until": now + float(emu.config["claim_delay"]), "outcome": outcome,
                       "message": message}
        emu.settle(rec, now)
        body = {"PhoneNumberId": rec.id, "PhoneNumberArn": rec.arn}
        self.remember("ClaimPhoneNumber", token, fp, 200, body)
        return 200, body

    def DescribePhoneNumber(self, ctx):
        rec = self.resolve(ctx["uri"]["PhoneNumberId"], ctx["region"])
        return 200, {"ClaimedPhoneNumberSummary": rec.described()}

    def ListPhoneNumbersV2(self, ctx):
        emu, b = self.emu, ctx["body"]
        target = self.one_target(b, ctx["region"], "ListPhoneNumbersV2", required=False)
        prefix = b.get("PhoneNumberPrefix")
        if prefix is not None and not prefix.startswith("+"):
            raise invalid("PhoneNumberPrefix must contain + as part of the country code.")
        countries = b.get("PhoneNumberCountryCodes") or None
        types = b.get("PhoneNumberTypes") or None
        max_results = b.get("MaxResults", 100)
        fp = self.fingerprint(ctx["region"], [target and target["arn"], prefix, countries, types])[:16]
        offset = 0
        if b.get("NextToken") is not None:
            offset = self.open_token(b["NextToken"], "list", fp)
        now = emu.now()
        source = emu.by_target.get(target["arn"], ()) if target else emu.numbers
        hide_ip = emu.config["list_hides_in_progress"]
        rows = []
        for rec in source:
            emu.settle(rec, now)
            if not rec.held() or rec.region != ctx["region"]:
                continue
            if hide_ip and rec.status == "IN_PROGRESS" and rec.claims and rec.pending and \
                    rec.pending["kind"] == "claim":
                continue
            if countries and rec.country not in countries:
                continue
            if types and rec.type not in types:
                continue
            if prefix and not rec.phone_number.startswith(prefix):
                continue
            rows.append(rec)
        page = rows[offset:offset + max_results]
        summaries = [r.summary() for r in page]
        if emu.config["list_order"] == "shuffle":
            # Nothing documents a stable order: each answer lists the
            # page's entries in another order (pages stay disjoint).
            random.shuffle(summaries)
        out = {"ListPhoneNumbersSummaryList": summaries}
        cycle = int(emu.config["list_token_cycle"] or 0)
        if cycle:
            # Fault injection: after `cycle` pages the NextToken points back
            # to the second page, the same token as before (A -> B -> A), for
            # ever; tokens are deterministic so that the repeat is exact.
            nxt = offset + max_results
            if nxt >= cycle * max_results:
                nxt = max_results
            out["NextToken"] = self.sign_token({"k": "list", "f": fp, "o": nxt, "s": "cycle"})
        elif offset + max_results < len(rows):
            out["NextToken"] = self.sign_token({"k": "list", "f": fp, "o": offset + max_results,
                                                "s": secrets.token_hex(4)})
        return 200, out

    def SearchAvailablePhoneNumbers(self, ctx):
        emu, b = self.emu, ctx["body"]
        target = self.one_target(b, ctx["region"], "SearchAvailablePhoneNumbers",
                                 missing_code="InvalidParameterException")
        prefix = b.get("PhoneNumberPrefix")
        if prefix is not None and not prefix.startswith("+"):
            raise invalid("PhoneNumberPrefix must contain + as part of the country code.")
        country, ptype = b["PhoneNumberCountryCode"], b["PhoneNumberType"]
        max_results = b.get("MaxResults", 10)
        fp = self.fingerprint(ctx["region"], [target["arn"], country, ptype, prefix])[:16]
        index = 0
        if b.get("NextToken") is not None:
            index = self.open_token(b["NextToken"], "search", fp)
        now = emu.now()
        found = []
        # A broken or hostile endpoint (fault injection): numbers of another
        # country and type, labelled as they are or as the request asked.
        misfit = emu.config["search_misfit"]
        s_country, s_type, s_prefix = country, ptype, prefix
        if misfit:
            s_country, s_type, s_prefix = misfit["country"], misfit["type"], None
        if not emu.in_no_inventory(country, ptype, prefix):
            while len(found) < max_results:
                num = emu.inventory.candidate(s_country, s_type, s_prefix, index)
                if num is None:
                    break
                index += 1
                if emu.available(num, s_country, s_type, now):
                    found.append(num)
        label = (s_country, s_type) if misfit and misfit.get("label", "honest") == "honest" else (country, ptype)
        out = {"AvailableNumbersList": [{"PhoneNumber": n, "PhoneNumberCountryCode": label[0],
                                         "PhoneNumberType": label[1]} for n in found]}
        if len(found) == max_results and emu.inventory.candidate(country, ptype, prefix, index) is not None:
            out["NextToken"] = self.sign_token({"k": "search", "f": fp, "o": index, "s": secrets.token_hex(4)})
        if emu.config["steal_after_search"]:
            # docs/connect-api.md §4.4: another customer may take a number between
            # the search and the claim.
            emu.stolen.update(found)
        return 200, out

    def ReleasePhoneNumber(self, ctx):
        emu = self.emu
        ident = ctx["uri"]["PhoneNumberId"]
        token = ctx["query"].get("ClientToken")
        fp = self.fingerprint(ctx["region"], {"PhoneNumberId": ident})
        done = self.idempotent("ReleasePhoneNumber", token, fp)
        if done:
            return done
        rec = self.resolve(ident, ctx["region"])
        if rec.status == "IN_PROGRESS":
            raise self.in_use(rec)
        rec.released = True
        rec.released_at = emu.now()
        rec.pending = None
        rec.contact_flow = None
        self.remember("ReleasePhoneNumber", token, fp, 200, None)
        return 200, None

    def UpdatePhoneNumber(self, ctx):
        emu, b = self.emu, ctx["body"]
        ident = ctx["uri"]["PhoneNumberId"]
        token = b.get("ClientToken")
        target = self.one_target(b, ctx["region"], "UpdatePhoneNumber")
        fp = self.fingerprint(ctx["region"], [ident, {k: v for k, v in b.items() if k != "ClientToken"}])
        done = self.idempotent("UpdatePhoneNumber", token, fp)
        if done:
            return done
        rec = self.resolve(ident, ctx["region"])
        if rec.status == "IN_PROGRESS":
            raise self.in_use(rec)
        # A FAILED move leaves the number CLAIMED where it was (shown FAILED
        # until the next update); it may be moved again.
        if rec.status != "CLAIMED" and not (rec.status == "FAILED" and rec.fail_kind == "update"):
            raise invalid("The phone number %s is not CLAIMED." % rec.phone_number)
        if target.get("region", rec.region) != rec.region:
            raise invalid("The phone number and the target must be in the same AWS Region.")
        outcome, message = "CLAIMED", None
        if target["arn"] != rec.target_arn and \
                emu.target_count(target["arn"]) >= emu.quota_of(target["arn"]):
            outcome, message = "FAILED", "You've reached the limit of Phone Numbers for this %s. To increase the " \
                                         "limit, contact support." % ("instance" if target["kind"] == "instance"
                                                                      else "traffic distribution group")
        else:
            for e in emu.config["fail_moves"]:
                if e.get("phone_number") in (None, rec.phone_number) and int(e.get("times", 1)) > 0:
                    e["times"] = int(e.get("times", 1)) - 1
                    outcome, message = "FAILED", e.get("message") or "The phone number could not be moved. Retry."
                    break
            else:
                if int(emu.config["fail_next_moves"]) > 0:
                    emu.config["fail_next_moves"] = int(emu.config["fail_next_moves"]) - 1
                    outcome, message = "FAILED", "The phone number could not be moved. Retry."
        rec.moves += 1
        now = emu.now()
        rec.status = "IN_PROGRESS"
        rec.pending = {"kind": "update", "until": now + float(emu.config["claim_delay"]), "outcome": outcome,
                       "message": message, "target": target}
        emu.settle(rec, now)
        body = {"PhoneNumberId": rec.id, "PhoneNumberArn": rec.arn}
        self.remember("UpdatePhoneNumber", token, fp, 200, body)
        return 200, body

    def UpdatePhoneNumberMetadata(self, ctx):
        emu, b = self.emu, ctx["body"]
        ident = ctx["uri"]["PhoneNumberId"]
        token = b.get("ClientToken")
        fp = self.fingerprint(ctx["region"], [ident, {k: v for k, v in b.items() if k != "ClientToken"}])
        done = self.idempotent("UpdatePhoneNumberMetadata", token, fp)
        if done:
            return done
        rec = self.resolve(ident, ctx["region"])
        if rec.status == "IN_PROGRESS":
            raise self.in_use(rec)
        if rec.status != "CLAIMED":
            raise ApiError("InvalidRequestException", "The phone number %s is not CLAIMED." % rec.phone_number)
        now = emu.now()
        rec.status = "IN_PROGRESS"
        rec.pending = {"kind": "metadata", "until": now + float(emu.config["metadata_delay"]),
                       "description": b.get("PhoneNumberDescription")}
        emu.settle(rec, now)
        self.remember("UpdatePhoneNumberMetadata", token, fp, 200, None)
        return 200, None

    def _flow_number(self, ctx, instance_id):
        rec = self.resolve(ctx["uri"]["PhoneNumberId"], ctx["region"])
        given = instance_id
        m = TARGET_ARN_RE.match(given)
        if m:
            if m.group(4) != "instance" or m.group(2) != rec.region or m.group(3) != rec.account:
                raise not_found("Phone number %s not found in instance %s." % (rec.phone_number, given))
            given = m.group(5)
        # A traffic distribution group's number is associated through one of
        # the group's instances (the one its flow belongs to): the fake knows
        # no membership, so any well-formed instance id of the account is taken.
        if rec.is_tdg:
            if not UUID_RE.match(given or ""):
                raise not_found("Phone number %s not found in instance %s." % (rec.phone_number, given))
        elif given != rec.instance_id:
            raise not_found("Phone number %s not found in instance %s." % (rec.phone_number, given))
        if rec.status != "CLAIMED":
            raise invalid("The phone number %s is %s: only a CLAIMED number can be associated with a contact "
                          "flow." % (rec.phone_number, rec.status))
        return rec

    def AssociatePhoneNumberContactFlow(self, ctx):
        b = ctx["body"]
        rec = self._flow_number(ctx, b["InstanceId"])
        flow = b["ContactFlowId"]
        m = FLOW_ARN_RE.match(flow)
        if m:
            if m.group(4) != (rec.instance_id or b["InstanceId"]):
                raise not_found("Contact flow %s not found in instance %s." % (flow, rec.instance_id))
            flow = m.group(5)
        if not flow or self.emu.target_missing(flow):
            raise not_found("Contact flow %s not found." % flow)
        rec.contact_flow = flow
        return 200, None

    def DisassociatePhoneNumberContactFlow(self, ctx):
        rec = self._flow_number(ctx, ctx["query"]["InstanceId"])
        rec.contact_flow = None
        return 200, None

    def _tag_target(self, ctx):
        arn = ctx["uri"]["resourceArn"]
        if LEGACY_PN_ARN_RE.match(arn) or not PN_ARN_RE.match(arn):
            # docs/connect-api.md §3: the legacy instance/.../phone-number/ form is refused.
            raise not_found("Resource %s not found." % arn[:300])
        return self.resolve(arn, ctx["region"])

    def TagResource(self, ctx):
        rec = self._tag_target(ctx)
        tags = ctx["body"]["tags"]
        merged = dict(rec.tags)
        merged.update(tags)
        if len(merged) > 50:
            raise invalid("A resource can have at most 50 tags; this request would give it %d." % len(merged))
        rec.tags = merged
        return 200, None

    def UntagResource(self, ctx):
        rec = self._tag_target(ctx)
        for k in ctx["query"]["tagKeys"]:
            rec.tags.pop(k, None)
        return 200, None

    def ListTagsForResource(self, ctx):
        rec = self._tag_target(ctx)
        return 200, {"tags": dict(rec.tags)}

    def DescribeInstance(self, ctx):
        target = self.target_from_instance_id(ctx["uri"]["InstanceId"], ctx["region"], "DescribeInstance")
        if target["kind"] != "instance":
            raise not_found("Instance not found.")
        return 200, {"Instance": {
            "Id": target["id"], "Arn": target["arn"], "IdentityManagementType": "CONNECT_MANAGED",
            "InstanceAlias": "fake-" + target["id"][:8], "CreatedTime": 1700000000,
            "ServiceRole": "arn:%s:iam::%s:role/aws-service-role/connect.amazonaws.com/AWSServiceRoleForAmazonConnect"
                           % (target["partition"], target["account"]),
            "InstanceStatus": "ACTIVE", "InboundCallsEnabled": True, "OutboundCallsEnabled": True,
            "InstanceAccessUrl": "https://fake-%s.my.connect.aws" % target["id"][:8], "Tags": {}}}

    def ListPhoneNumbers(self, ctx):
        emu, q = self.emu, ctx["query"]
        target = self.target_from_instance_id(ctx["uri"]["InstanceId"], ctx["region"], "ListPhoneNumbers")
        types = q.get("PhoneNumberTypes") or None
        countries = q.get("PhoneNumberCountryCodes") or None
        max_results = q.get("MaxResults", 100)
        fp = self.fingerprint(ctx["region"], [target["arn"], types, countries])[:16]
        offset = self.open_token(q["NextToken"], "v1", fp) if q.get("NextToken") else 0
        now = emu.now()
        rows = []
        for rec in emu.by_target.get(target["arn"], ()):
            emu.settle(rec, now)
            if not rec.held():
                continue
            # docs/connect-api.md §4.11: v1 reports the newer types as TOLL_FREE or DID.
            t = rec.type if rec.type in ("DID", "TOLL_FREE") else ("TOLL_FREE" if "TF" in rec.type else "DID")
            if types and t not in types or countries and rec.country not in countries:
                continue
            rows.append({"Id": rec.id, "Arn": "arn:%s:connect:%s:%s:instance/%s/phone-number/%s" % (
                rec.partition, rec.region, rec.account, rec.instance_id, rec.id),
                "PhoneNumber": rec.phone_number, "PhoneNumberType": t, "PhoneNumberCountryCode": rec.country})
        out = {"PhoneNumberSummaryList": rows[offset:offset + max_results]}
        if offset + max_results < len(rows):
            out["NextToken"] = self.sign_token({"k": "v1", "f": fp, "o": offset + max_results,
                                                "s": secrets.token_hex(4)})
        return 200, out

    def ImportPhoneNumber(self, ctx):
        self.target_from_instance_id(ctx["body"]["InstanceId"], ctx["region"], "ImportPhoneNumber")
        raise not_found("Source phone number %s not found." % ctx["body"]["SourcePhoneNumberArn"][:300])


# ==================================================================== HTTP

def split_target(raw_path):
    path, _, query = raw_path.partition("?")
    return path, query


def match_route(method, path):
    if not path.startswith("/"):
        return None, None
    segs = path[1:].split("/")
    for m, tmpl, op in ROUTES:
        if m != method or len(tmpl) != len(segs):
            continue
        labels = {}
        for t, s in zip(tmpl, segs):
            if t.startswith("{"):
                if s == "":
                    break
                labels[t[1:-1]] = unquote(s, errors="strict") if "%" in s else s
            elif t != s:
                break
        else:
            return op, labels
    return None, None


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-connect"
    timeout = 120                      # idle keep-alive connections end after this

    def log_message(self, fmt, *args):
        if self.server.emu.config.get("verbose"):
            sys.stderr.write("fake-connect: %s\n" % (fmt % args))

    def version_string(self):
        return self.server_version

    def do_GET(self):
        self.handle_api()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # ------------------------------------------------------------ wire
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = self.headers.get("Content-Length")
        if n is None:
            return b""
        n = int(n)
        if n < 0 or n > 16 * 1024 * 1024:
            raise ValueError("bad Content-Length")
        return self.rfile.read(n)

    def send_json(self, status, body, request_id, error_code=None, truncate=False, extra=None):
        data = b"" if body is None else json.dumps(body).encode()
        announced = len(data)
        if truncate:
            if data:
                data = data[:max(1, len(data) // 2)]
                announced = len(data)          # a well-framed but cut JSON document
            else:
                announced, data = 16, b'{"Message":'  # fewer bytes than announced, then close
                self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(announced))
        self.send_header("x-amzn-RequestId", request_id)
        if error_code:
            self.send_header("x-amzn-ErrorType", error_code)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body in one write: no Nagle/delayed-ACK stall.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.flush_headers()
        if truncate and announced != len(data):
            self.drop()

    def drop(self):
        """Closes the connection without (a complete) answer."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------ one request
    def handle_api(self):
        emu = self.server.emu
        api = self.server.api
        rid = str(uuid.uuid4())
        raw_path, raw_query = split_target(self.path)
        try:
            body_bytes = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send_json(400, {"Message": "Could not read the request body."}, rid,
                           "SerializationException")
            return
        headers = list(self.headers.items())
        if raw_path == "/" and self.command == "POST":
            return sts_handle(self, raw_path, raw_query, headers, body_bytes, rid)
        try:
            op, labels = match_route(self.command, raw_path)
        except UnicodeDecodeError:
            op, labels = None, None
        rec = {"op": op or "UnknownOperation", "method": self.command, "path": raw_path, "query": raw_query,
               "status": None, "error_code": None, "time": emu.now(), "body": parse_body_for_log(body_bytes),
               "client_token": None, "request_id": rid, "region": None, "access_key_id": None, "fault": None}
        if isinstance(rec["body"], dict) and isinstance(rec["body"].get("ClientToken"), str):
            rec["client_token"] = rec["body"]["ClientToken"]
        qpairs = parse_query_pairs(raw_query)
        if op == "ReleasePhoneNumber":
            for k, v in qpairs:
                if k == "clientToken":
                    rec["client_token"] = v
        with emu.lock:
            emu.requests.append(rec)
            if op:
                emu.count(emu.calls, op)

        def finish(status, body, code=None, validation=None, truncate=False, extra=None):
            with emu.lock:
                rec["status"] = status
                rec["error_code"] = code
                if code:
                    emu.count(emu.errors, op or "UnknownOperation")
                    emu.count(emu.error_codes, code)
                if validation:
                    emu.validation_failures += 1
                    emu.validation_messages.append("%s: %s" % (op, validation))
            self.send_json(status, body, rid, code, truncate=truncate, extra=extra)
            if emu.config.get("verbose"):
                sys.stderr.write("fake-connect: %s %s -> %s %s\n" % (op, raw_path, status, code or ""))

        if op is None:
            finish(404, {"Message": "No operation matches %s %s" % (self.command, raw_path[:200])},
                   "UnknownOperationException")
            return

        # 1. SigV4 (docs/connect-api.md §7)
        try:
            with emu.lock:
                ident = sigv4_verify.verify(self.command, raw_path, raw_query, headers, body_bytes, emu.now(),
                                            emu.lookup_key, max_skew=float(emu.config["max_skew"]))
        except sigv4_verify.AuthError as e:
            finish(e.status, {"Message": e.message}, e.code)
            return
        rec["region"] = ident.region
        rec["access_key_id"] = ident.access_key_id
        with emu.lock:
            caller = emu.lookup_key(ident.access_key_id) or {}
        caller_account = caller.get("account", emu.account)
        rec["account"] = caller_account

        # 2. throttling (docs/connect-api.md §6) and faults decided before the action
        with emu.lock:
            faults = self.server.pick_faults(op)
            throttled = "throttle" in faults
            if not throttled:
                key = (caller_account, ident.region, op)
                rate = float(emu.config["rates"].get(op, emu.config["rate"]))
                b = emu.buckets.get(key)
                if b is None or b.rate != rate or b.burst != emu.config["burst"]:
                    b = emu.buckets[key] = Bucket(rate, emu.config["burst"])
                throttled = not b.take()
            if throttled:
                emu.count(emu.throttled, op)
        if throttled:
            finish(429, {"Message": "Rate exceeded"}, "ThrottlingException")
            return
        if "error500" in faults:
            rec["fault"] = "error500"
            finish(500, {"Message": "An internal error occurred. Try again."}, "InternalServiceException")
            return
        if "drop" in faults:
            rec["fault"] = "drop"
            with emu.lock:
                rec["status"] = 0
            self.drop()
            return

        # 3. decoding and validation against the model, then the action
        try:
            ctx = self.decode(op, labels, qpairs, body_bytes, ident.region)
            with emu.lock:
                check_caller_account(emu, op, ctx, caller_account, caller)
                emu.caller_account = caller_account
                try:
                    status, body = getattr(api, op)(ctx)
                finally:
                    emu.caller_account = None
        except ApiError as e:
            fault_after = self.post_faults(faults, op, rec)
            if fault_after == "drop":
                return
            finish(e.status, e.body(), e.code, validation=e.message if e.validation else None,
                   truncate=fault_after == "truncate")
            return
        fault_after = self.post_faults(faults, op, rec)
        if fault_after == "drop":
            return
        finish(status, body, truncate=fault_after == "truncate")

    def post_faults(self, faults, op, rec):
        emu = self.server.emu
        if "slow" in faults:
            rec["fault"] = "slow"
            time.sleep(float(emu.config["faults"].get("slow_seconds", 5)))
        if "drop_after" in faults and op in MUTATING:
            rec["fault"] = "drop_after"
            with emu.lock:
                rec["status"] = 0
            self.drop()
            return "drop"
        if "truncate" in faults:
            rec["fault"] = "truncate"
            return "truncate"
        return None

    def decode(self, op, labels, qpairs, body_bytes, region):
        """Request -> {"uri", "query", "body", "region"} (member names), or
        InvalidParameterException (docs/connect-api.md §1, 3)."""
        emu = self.server.emu
        model = emu.model
        loc = model.members_by_location(op)
        query = {}
        for k, v in qpairs:
            if k not in loc["querystring"]:
                # Unknown query parameters are ignored by AWS front ends.
                continue
            name, ref = loc["querystring"][k]
            shape = model.shapes[ref["shape"]]
            if shape["type"] == "list":
                query.setdefault(name, []).append(v)
            elif name in query:
                raise invalid("Query parameter '%s' given more than once." % k)
            elif shape["type"] == "integer":
                try:
                    query[name] = int(v)
                except ValueError:
                    raise invalid("Value '%s' at '%s' failed to satisfy constraint: Member must be an integer"
                                  % (v[:50], k))
            else:
                query[name] = v
        uri = {loc["uri"][k][0]: v for k, v in labels.items()}
        body = None
        if loc["body"]:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise invalid("The request body must be JSON with Content-Type: application/json (got '%s')."
                              % ctype[:100])
            try:
                body = json.loads(body_bytes.decode("utf-8"), object_pairs_hook=_no_duplicates)
            except (ValueError, UnicodeDecodeError) as e:
                raise invalid("The request body is not valid JSON: %s" % str(e)[:200])
            if not isinstance(body, dict):
                raise invalid("The request body must be a JSON object.")
        elif body_bytes:
            raise invalid("%s takes no request body." % op)
        msgs = model.validate_input(op, uri, query, body)
        if msgs:
            raise invalid(connect_model.format_validation(msgs))
        return {"uri": uri, "query": query, "body": body or {}, "region": region}


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate member '%s'" % k[:100])
        d[k] = v
    return d


def parse_query_pairs(raw_query):
    out = []
    for k, v in sigv4_verify.parse_query(raw_query):
        out.append((k.decode("utf-8", "replace"), v.decode("utf-8", "replace")))
    return out


def parse_body_for_log(b):
    if not b:
        return None
    try:
        return json.loads(b.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return b.decode("utf-8", "replace")


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ctx, emu):
        self.ssl_ctx = ctx
        self.emu = emu
        self.api = Api(emu)
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's thread, not in accept().
        request.settimeout(30)
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            request.close()
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if self.emu.config.get("verbose"):
            super().handle_error(request, client_address)

    def pick_faults(self, op):
        """The set of faults this request gets (under the lock)."""
        emu = self.emu
        out = set()
        nxt = emu.config["fault_next"]
        for e in list(nxt):
            if e.get("op") not in (None, op):
                continue
            kind = e.get("fault")
            if kind == "drop_after" and op not in MUTATING:
                continue
            out.add(kind)
            e["count"] = int(e.get("count", 1)) - 1
            if e["count"] <= 0:
                nxt.remove(e)
            break
        f = emu.config["faults"]
        ops = f.get("ops")
        if not ops or op in ops:
            for kind in FAULT_KINDS:
                p = float(f.get(kind, 0) or 0)
                if p > 0 and emu.rng.random() < p:
                    out.add(kind)
        for kind in out:
            emu.faults_done.setdefault(op, {}).setdefault(kind, 0)
            emu.faults_done[op][kind] += 1
        return out


# ==================================================================== accounts and STS
#
# Several accounts: every key belongs to one (the built-in key and the
# "credentials" entries without "account" to --account-id; credentials from
# STS to the role's account). Connect calls are throttled per (caller
# account, region, operation), and a call that names a resource of another
# account is refused with AccessDeniedException, as Connect does without a
# resource policy. STS (Query protocol, docs/credentials.md): POST / with a
# form body; AssumeRole is SigV4-signed for service "sts" and checks the
# role's trust ("trusted": accounts or key ids) and its "external_id";
# AssumeRoleWithWebIdentity is unsigned and checks the token against the
# role's "web_identity_token" or the current contents of its
# "web_identity_token_file". Answers are XML.

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
STS_VERSION = "2011-06-15"
CONNECT_ARN_ACCOUNT_RE = re.compile(r"^arn:[a-z-]+:connect:[a-z0-9-]*:(\d{12}):")
IAM_ROLE_ARN_RE = re.compile(r"^arn:(aws|aws-us-gov|aws-cn):iam::(\d{12}):role/((?:[\w+=,.@-]+/)*)([\w+=,.@-]{1,64})$")
SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
# sigv4_verify speaks Connect's codes; STS names the same refusals so.
STS_AUTH_CODES = {
    "UnrecognizedClientException": "InvalidClientTokenId",
    "InvalidSignatureException": "SignatureDoesNotMatch",
    "ExpiredTokenException": "ExpiredToken",
    "MissingAuthenticationTokenException": "MissingAuthenticationToken",
    "IncompleteSignatureException": "IncompleteSignature",
}


class StsError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def xml_text(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def caller_arn(key, akid):
    if key.get("role_arn"):
        m = IAM_ROLE_ARN_RE.match(key["role_arn"])
        name = m.group(4) if m else "role"
        return "arn:aws:sts::%s:assumed-role/%s/%s" % (key.get("account"), name, key.get("session") or "session")
    return "arn:aws:iam::%s:user/fake-user-%s" % (key.get("account"), akid[-4:])


def resource_accounts(emu, ctx):
    """The accounts of the resources a Connect call names (ARNs, or a
    phone number id this emulator knows)."""
    out = set()
    for part in (ctx["uri"], ctx["query"], ctx["body"]):
        for v in part.values():
            if isinstance(v, str):
                m = CONNECT_ARN_ACCOUNT_RE.match(v)
                if m:
                    out.add(m.group(1))
    pid = ctx["uri"].get("PhoneNumberId")
    if pid and not pid.startswith("arn:"):
        rec = emu.by_id.get(pid)
        if rec is not None:
            out.add(rec.account)
    return out


def check_caller_account(emu, op, ctx, account, key):
    """AccessDeniedException when the call names a resource of an account
    other than the caller's."""
    for acct in sorted(resource_accounts(emu, ctx)):
        if acct != account:
            raise ApiError("AccessDeniedException",
                           "User: %s is not authorized to perform: connect:%s on resource: arn:aws:connect:*:%s:* "
                           "because no resource-based policy allows the connect:%s action"
                           % (caller_arn(key, "????"), op, acct, op))


def issue_sts_credentials(emu, role_arn, account, session, ttl):
    """New temporary credentials of a role (under the lock)."""
    akid = "ASIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    k = {"secret": base64.b64encode(secrets.token_bytes(30)).decode(),
         "token": "IQoJb3JpZ2luX2VjE" + base64.b64encode(secrets.token_bytes(180)).decode(),
         "expiration": emu.now() + ttl, "source": "sts", "account": account, "role_arn": role_arn,
         "session": session}
    emu.temp_keys[akid] = k
    return akid, k


def sts_send(handler, status, text, rid):
    data = text.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "text/xml")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("x-amzn-RequestId", rid)
    handler._headers_buffer.append(b"\r\n")
    handler._headers_buffer.append(data)
    handler.flush_headers()


def sts_params(handler, body_bytes):
    ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise StsError("InvalidParameterValue", "The request must be a form (application/x-www-form-urlencoded), "
                       "got '%s'." % ctype[:100])
    try:
        pairs = parse_qsl(body_bytes.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body_bytes))
    except (ValueError, UnicodeDecodeError):
        raise StsError("MalformedQueryString", "The request body is not a valid form.")
    params = {}
    for k, v in pairs:
        if k in params:
            raise StsError("InvalidParameterValue", "Parameter %s given more than once." % k[:100])
        params[k] = v
    return params


def sts_validate(params, name, member, pattern, required=True):
    v = params.get(name)
    if v is None:
        if required:
            raise StsError("ValidationError", "1 validation error detected: Value null at '%s' failed to satisfy "
                           "constraint: Member must not be null" % member)
        return None
    if not pattern.match(v):
        raise StsError("ValidationError", "1 validation error detected: Value '%s' at '%s' failed to satisfy "
                       "constraint: Member must satisfy regular expression pattern: %s"
                       % (v[:100], member, pattern.pattern))
    return v


def sts_role(emu, params, action, who):
    role_arn = sts_validate(params, "RoleArn", "roleArn", re.compile(r"^[\x09\x0A\x0D\x20-\x7E]{20,2048}$"))
    session = sts_validate(params, "RoleSessionName", "roleSessionName", SESSION_NAME_RE)
    m = IAM_ROLE_ARN_RE.match(role_arn)
    role = emu.config["roles"].get(role_arn)
    if not m or role is None:
        raise StsError("AccessDenied", "User: %s is not authorized to perform: sts:%s on resource: %s"
                       % (who, action, role_arn), 403)
    return role_arn, session, m.group(2), role


def sts_duration(params, role, chained):
    d = params.get("DurationSeconds")
    if d is None:
        return 3600
    if not re.match(r"^\d{1,6}$", d) or not 900 <= int(d) <= 43200:
        raise StsError("ValidationError", "1 validation error detected: Value '%s' at 'durationSeconds' failed to "
                       "satisfy constraint: Member must have value between 900 and 43200" % d[:20])
    d = int(d)
    if chained and d > 3600:
        raise StsError("ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for "
                       "roles assumed by role chaining.")
    if d > int(role.get("max_duration", 3600)):
        raise StsError("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set for "
                       "this role.")
    return d


def sts_assume_role(handler, emu, params, rec, raw_path, raw_query, headers, body_bytes):
    try:
        with emu.lock:
            ident = sigv4_verify.verify("POST", raw_path, raw_query, headers, body_bytes, emu.now(), emu.lookup_key,
                                        service="sts", max_skew=float(emu.config["max_skew"]))
    except sigv4_verify.AuthError as e:
        raise StsError(STS_AUTH_CODES.get(e.code, e.code), e.message, e.status)
    rec["region"] = ident.region
    rec["access_key_id"] = ident.access_key_id
    with emu.lock:
        key = emu.lookup_key(ident.access_key_id) or {}
        who = caller_arn(key, ident.access_key_id)
        rec["account"] = key.get("account")
        role_arn, session, account, role = sts_role(emu, params, "AssumeRole", who)
        rec["role_arn"] = role_arn
        ext = sts_validate(params, "ExternalId", "externalId", EXTERNAL_ID_RE, required=False)
        rec["external_id"] = ext
        duration = sts_duration(params, role, bool(key.get("role_arn")))
        trusted = role.get("trusted")
        if trusted is not None and key.get("account") not in trusted and ident.access_key_id not in trusted \
                and key.get("role_arn") not in trusted:
            raise StsError("AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s"
                           % (who, role_arn), 403)
        if role.get("external_id") is not None and ext != role["external_id"]:
            raise StsError("AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s"
                           % (who, role_arn), 403)
        ttl = emu.config.get("sts_credentials_ttl") or duration
        return issue_sts_credentials(emu, role_arn, account, session, float(ttl)) + (role_arn, session, account)


def sts_assume_role_web_identity(handler, emu, params, rec):
    with emu.lock:
        role_arn, session, account, role = sts_role(emu, params, "AssumeRoleWithWebIdentity",
                                                    "an anonymous web identity")
        rec["role_arn"] = role_arn
        token = params.get("WebIdentityToken")
        if not token or len(token) < 4 or len(token) > 20000:
            raise StsError("ValidationError", "1 validation error detected: Value at 'webIdentityToken' failed to "
                           "satisfy constraint: Member must have length between 4 and 20000")
        duration = sts_duration(params, role, False)
        want = role.get("web_identity_token")
        if role.get("web_identity_token_file"):
            try:
                with open(role["web_identity_token_file"]) as f:
                    want = f.read().strip()
            except OSError:
                want = None
        if token in role.get("expired_tokens", []):
            raise StsError("ExpiredTokenException", "Token expired: current date/time %s must be before the "
                           "expiration date/time." % iso8601(emu.now()))
        if want is None or not hmac.compare_digest(token.encode(), want.encode()):
            raise StsError("InvalidIdentityToken", "Couldn't verify the web identity token: its signature does not "
                           "match a key of the identity provider.")
        rec["web_identity_token_ok"] = True
        ttl = emu.config.get("sts_credentials_ttl") or duration
        return issue_sts_credentials(emu, role_arn, account, session, float(ttl)) + (role_arn, session, account)


def sts_handle(handler, raw_path, raw_query, headers, body_bytes, rid):
    """One STS request (POST / on the API port)."""
    emu = handler.server.emu
    rec = {"op": "STS", "method": "POST", "path": raw_path, "query": raw_query, "status": None, "error_code": None,
           "time": emu.now(), "body": None, "client_token": None, "request_id": rid, "region": None,
           "access_key_id": None, "fault": None, "account": None, "role_arn": None, "external_id": None,
           "issued_access_key_id": None}
    with emu.lock:
        emu.requests.append(rec)
    action = None
    try:
        params = sts_params(handler, body_bytes)
        rec["body"] = {k: v for k, v in params.items() if k != "WebIdentityToken"}
        action = params.get("Action")
        if action not in ("AssumeRole", "AssumeRoleWithWebIdentity"):
            raise StsError("InvalidAction" if action else "MissingAction",
                           "Could not find operation %s for version %s" % ((action or "")[:100], STS_VERSION)
                           if action else "Missing Action")
        rec["op"] = action
        with emu.lock:
            emu.count(emu.calls, action)
        if params.get("Version") != STS_VERSION:
            raise StsError("InvalidAction", "Could not find operation %s for version %s"
                           % (action, (params.get("Version") or "NO_VERSION_SPECIFIED")[:40]))
        with emu.lock:
            faults = handler.server.pick_faults(action)
        if "throttle" in faults:
            raise StsError("Throttling", "Rate exceeded")
        if "error500" in faults:
            raise StsError("InternalFailure", "An internal error occurred.", 500)
        if action == "AssumeRole":
            akid, k, role_arn, session, account = sts_assume_role(handler, emu, params, rec, raw_path, raw_query,
                                                                  headers, body_bytes)
        else:
            akid, k, role_arn, session, account = sts_assume_role_web_identity(handler, emu, params, rec)
    except StsError as e:
        with emu.lock:
            rec["status"] = e.status
            rec["error_code"] = e.code
            emu.count(emu.errors, action or "STS")
            emu.count(emu.error_codes, e.code)
        sts_send(handler, e.status,
                 '<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>Sender</Type>\n    <Code>%s</Code>\n'
                 '    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n'
                 % (STS_NS, xml_text(e.code), xml_text(e.message), rid), rid)
        return
    with emu.lock:
        rec["status"] = 200
        rec["issued_access_key_id"] = akid
    name = IAM_ROLE_ARN_RE.match(role_arn).group(4)
    extra = ""
    if action == "AssumeRoleWithWebIdentity":
        extra = ("    <SubjectFromWebIdentityToken>system:serviceaccount:fake:connect-numbers"
                 "</SubjectFromWebIdentityToken>\n    <Audience>sts.amazonaws.com</Audience>\n")
    sts_send(handler, 200,
             '<%sResponse xmlns="%s">\n  <%sResult>\n%s'
             '    <AssumedRoleUser>\n      <AssumedRoleId>AROAFAKE%s:%s</AssumedRoleId>\n'
             '      <Arn>arn:aws:sts::%s:assumed-role/%s/%s</Arn>\n    </AssumedRoleUser>\n'
             '    <Credentials>\n      <AccessKeyId>%s</AccessKeyId>\n      <SecretAccessKey>%s</SecretAccessKey>\n'
             '      <SessionToken>%s</SessionToken>\n      <Expiration>%s</Expiration>\n    </Credentials>\n'
             '  </%sResult>\n  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n'
             '</%sResponse>\n'
             % (action, STS_NS, action, extra, account[-4:], xml_text(session), account, xml_text(name),
                xml_text(session), akid, xml_text(k["secret"]), xml_text(k["token"]), iso8601(k["expiration"]),
                action, rid, action), rid)


def admin_issued(emu, body, q):
    """Every temporary credential handed out (STS, IMDS, container), with
    its secrets: for tests that look for them where they must not be."""
    with emu.lock:
        out = [{"access_key_id": akid, "secret_access_key": k["secret"], "session_token": k["token"],
                "expiration": k["expiration"], "source": k.get("source"), "account": k.get("account"),
                "role_arn": k.get("role_arn")} for akid, k in emu.temp_keys.items()]
    return 200, {"credentials": out}


# ==================================================================== admin

class AdminHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-connect-admin"
    timeout = 120

    def log_message(self, fmt, *args):
        if self.server.emu.config.get("verbose"):
            sys.stderr.write("fake-connect admin: %s\n" % (fmt % args))

    def version_string(self):
        return self.server_version

    def reply(self, status, body, ctype="application/json", extra=None):
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(data)
        self.flush_headers()

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw.strip():
            return {}
        v = json.loads(raw.decode("utf-8"))
        if not isinstance(v, dict):
            raise ValueError("a JSON object is expected")
        return v

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_GET

    def dispatch(self):
        path, query = split_target(self.path)
        q = dict(parse_query_pairs(query))
        try:
            body = self.body_json() if self.command in ("POST", "PUT") else {}
        except (ValueError, UnicodeDecodeError) as e:
            self.reply(400, {"error": "bad JSON: %s" % e})
            return
        try:
            if path.startswith("/latest/"):
                return self.imds(path)
            if path.startswith("/container-credentials"):
                return self.container()
            handler = ADMIN_ROUTES.get((self.command, path))
            if handler is None:
                self.reply(404, {"error": "no admin route %s %s" % (self.command, path)})
                return
            status, out = handler(self.server.emu, body, q)
            self.reply(status, out)
        except AdminError as e:
            self.reply(e.status, {"error": str(e)})

    # ------------------------------------------------------------ IMDSv2
    def imds(self, path):
        emu = self.server.emu
        if path == "/latest/api/token":
            if self.command != "PUT":
                self.reply(405, "", "text/plain")
                return
            if self.headers.get("X-Forwarded-For"):
                self.reply(403, "", "text/plain")
                return
            ttl = self.headers.get("x-aws-ec2-metadata-token-ttl-seconds")
            try:
                ttl = int(ttl)
                if not 1 <= ttl <= 21600:
                    raise ValueError
            except (TypeError, ValueError):
                self.reply(400, "", "text/plain")
                return
            token = "AQAEA" + base64.urlsafe_b64encode(secrets.token_bytes(36)).decode()
            with emu.lock:
                emu.imds_tokens[token] = emu.now() + ttl
            self.reply(200, token, "text/plain", {"x-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
            return
        if self.command != "GET":
            self.reply(405, "", "text/plain")
            return
        token = self.headers.get("x-aws-ec2-metadata-token")
        with emu.lock:
            exp = emu.imds_tokens.get(token or "")
            ok = exp is not None and emu.now() < exp
        if not ok:
            # IMDSv2 only (HttpTokens=required): no or a stale token is 401.
            self.reply(401, "", "text/plain")
            return
        base = "/latest/meta-data/iam/security-credentials"
        if path in (base, base + "/"):
            self.reply(200, ROLE_NAME, "text/plain")
        elif path == base + "/" + ROLE_NAME:
            creds = emu.temp_credentials("imds")
            doc = {"Code": "Success", "LastUpdated": iso8601(emu.now()), "Type": "AWS-HMAC"}
            doc.update(creds)
            self.reply(200, doc)
        elif path == "/latest/meta-data/placement/region":
            self.reply(200, "us-east-1", "text/plain")
        else:
            self.reply(404, "", "text/plain")

    def container(self):
        emu = self.server.emu
        want = emu.config.get("container_token")
        if want is not None and self.headers.get("Authorization") != want:
            self.reply(401, {"code": "InvalidToken", "message": "The Authorization header is missing or wrong."})
            return
        creds = emu.temp_credentials("container")
        creds["RoleArn"] = "arn:aws:iam::%s:role/%s" % (emu.account, ROLE_NAME)
        creds["AccountId"] = emu.account
        self.reply(200, creds)


class AdminError(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def admin_calls(emu, body, q):
    with emu.lock:
        return 200, {"calls": dict(emu.calls), "throttled": dict(emu.throttled), "errors": dict(emu.errors),
                     "error_codes": dict(emu.error_codes), "faults": json.loads(json.dumps(emu.faults_done)),
                     "validation_failures": emu.validation_failures,
                     "validation_messages": list(emu.validation_messages)}


def admin_requests(emu, body, q):
    with emu.lock:
        reqs = [dict(r) for r in emu.requests if not q.get("op") or r["op"] == q["op"]]
    return 200, {"requests": reqs}


def admin_numbers(emu, body, q):
    with emu.lock:
        now = emu.now()
        out = []
        for rec in emu.numbers:
            emu.settle(rec, now)
            if q.get("target_arn") and rec.target_arn != q["target_arn"]:
                continue
            if q.get("phone_number") and rec.phone_number != q["phone_number"]:
                continue
            out.append(rec.admin())
    return 200, {"numbers": out}


def admin_get_config(emu, body, q):
    with emu.lock:
        return 200, json.loads(json.dumps(emu.config))


def admin_config(emu, body, q):
    with emu.lock:
        for k, v in body.items():
            if k not in CONFIG_DEFAULTS:
                raise AdminError("unknown config key '%s' (known: %s)" % (k, ", ".join(sorted(CONFIG_DEFAULTS))))
            if k == "faults":
                if not isinstance(v, dict):
                    raise AdminError("faults must be an object")
                for fk in v:
                    if fk not in FAULT_KINDS + ("slow_seconds", "ops"):
                        raise AdminError("unknown fault '%s'" % fk)
            if k == "fault_next":
                if not isinstance(v, list) or any(e.get("fault") not in FAULT_KINDS for e in v):
                    raise AdminError("fault_next: a list of {fault: %s, op?, count?}" % "|".join(FAULT_KINDS))
            if k == "list_order" and v not in ("stable", "shuffle"):
                raise AdminError("list_order must be \"stable\" or \"shuffle\"")
            if k in ("quotas", "rates", "roles") and not isinstance(v, dict):
                raise AdminError("%s must be an object" % k)
            if k in ("fail_claims", "no_inventory", "missing_targets", "credentials") and not isinstance(v, list):
                raise AdminError("%s must be a list" % k)
            emu.config[k] = json.loads(json.dumps(v))
            if k in ("rate", "burst", "rates"):
                emu.buckets.clear()
        return 200, json.loads(json.dumps(emu.config))


def admin_clock(emu, body, q):
    with emu.lock:
        if "offset" in body:
            emu.offset = float(body["offset"])
        if "advance" in body:
            emu.offset += float(body["advance"])
        return 200, {"offset": emu.offset, "now": emu.now()}


def admin_get_clock(emu, body, q):
    with emu.lock:
        return 200, {"offset": emu.offset, "now": emu.now()}


def _seed_target(arn):
    m = TARGET_ARN_RE.match(arn or "")
    if not m:
        raise AdminError("target_arn '%s' is not an instance or traffic distribution group ARN" % arn)
    return {"arn": arn, "partition": m.group(1), "region": m.group(2), "account": m.group(3), "kind": m.group(4)}


def _seed_one(emu, spec, phone, country, ptype, target, now):
    status = spec.get("status", "CLAIMED")
    if status not in ("CLAIMED", "IN_PROGRESS", "FAILED"):
        raise AdminError("status must be CLAIMED, IN_PROGRESS or FAILED")
    old = emu.by_phone.get(phone)
    if old is not None and not old.gone():
        raise AdminError("%s is already held (%s)" % (phone, old.id), 409)
    rec = emu.new_record(phone, country, ptype, target)
    rec.tags = dict(spec.get("tags") or {})
    rec.description = spec.get("description")
    rec.contact_flow = spec.get("contact_flow")
    rec.claims = 1
    rec.claimed_at = now
    if status == "CLAIMED":
        rec.status = "CLAIMED"
    elif status == "FAILED":
        rec.status, rec.fail_kind, rec.failed_at = "FAILED", "claim", now
        rec.status_message = spec.get("status_message") or "Seeded as FAILED."
    else:
        rec.pending = {"kind": "claim", "until": now + float(emu.config["claim_delay"]), "outcome": "CLAIMED",
                       "message": None}
    return rec.id


def admin_seed(emu, body, q):
    ids = []
    with emu.lock:
        now = emu.now()
        for spec in body.get("numbers", []):
            target = _seed_target(spec.get("target_arn"))
            phone = spec.get("phone_number")
            country, ptype = spec.get("country"), spec.get("type")
            if phone is None:
                if not country or not ptype:
                    raise AdminError("country and type are required when phone_number is not given")
                try:
                    phone = emu.inventory.format_numbers(country, ptype, 1, emu.by_phone.keys() | emu.stolen,
                                                         spec.get("prefix"), rng=emu.rng)[0]
                except ValueError as e:
                    raise AdminError(str(e))
            elif not re.fullmatch(r"\+[1-9]\d{1,14}", phone):
                raise AdminError("phone_number must be E.164")
            if not country or not ptype:
                cls = emu.inventory.describe_format(phone)
                if cls is None and (not country or not ptype):
                    raise AdminError("cannot tell the country and type of %s: give them" % phone)
                country, ptype = country or cls[0], ptype or cls[1]
            ids.append(_seed_one(emu, spec, phone, country, ptype, target, now))
        gen = body.get("generate")
        if gen:
            target = _seed_target(gen.get("target_arn"))
            n = int(gen.get("count", 1))
            try:
                phones = emu.inventory.format_numbers(gen["country"], gen["type"], n,
                                                      emu.by_phone.keys() | emu.stolen, gen.get("prefix"),
                                                      rng=emu.rng)
            except (KeyError, ValueError) as e:
                raise AdminError("generate: %s" % e)
            for phone in phones:
                ids.append(_seed_one(emu, gen, phone, gen["country"], gen["type"], target, now))
    return 200, {"numbers": ids}


def admin_steal(emu, body, q):
    phone = body.get("phone_number")
    if not phone:
        raise AdminError("phone_number is required")
    with emu.lock:
        rec = emu.by_phone.get(phone)
        if rec is not None:
            emu.settle(rec)
            if not rec.gone() and rec.status != "FAILED":
                raise AdminError("%s is held by this account (%s)" % (phone, rec.status), 409)
            if rec.status == "FAILED" and not rec.gone():
                rec.expired = True     # another customer got it: our FAILED hold ends
        emu.stolen.add(phone)
    return 200, {"phone_number": phone, "stolen": True}


def admin_move(emu, body, q):
    """Moves a held number to another target at once, keeping its tags and
    description: what the console or another tool does behind the back of
    the service under test (its flow association does not follow)."""
    phone, arn = body.get("phone_number"), body.get("target_arn")
    if not phone or not arn:
        raise AdminError("phone_number and target_arn are required")
    target = _seed_target(arn)
    with emu.lock:
        rec = emu.by_phone.get(phone)
        if rec is None or rec.gone():
            raise AdminError("%s is not held by this account" % phone, 404)
        emu.settle(rec)
        emu._move(rec, target)
        rec.contact_flow = None
    return 200, {"phone_number": phone, "target_arn": arn}


def admin_reset(emu, body, q):
    emu.reset_counters()
    return 200, {"reset": True}


def admin_inventory(emu, body, q):
    """The next numbers a search would offer (no call counted)."""
    country, ptype, prefix = q.get("country"), q.get("type"), q.get("prefix") or None
    n = int(q.get("count", 10))
    out = []
    with emu.lock:
        now = emu.now()
        i = 0
        while len(out) < n:
            num = emu.inventory.candidate(country, ptype, prefix, i)
            if num is None:
                break
            i += 1
            if emu.available(num, country, ptype, now):
                out.append(num)
    return 200, {"numbers": out}


def admin_health(emu, body, q):
    return 200, {"ok": True}


ADMIN_ROUTES = {
    ("GET", "/admin/calls"): admin_calls,
    ("GET", "/admin/requests"): admin_requests,
    ("GET", "/admin/numbers"): admin_numbers,
    ("GET", "/admin/config"): admin_get_config,
    ("POST", "/admin/config"): admin_config,
    ("GET", "/admin/clock"): admin_get_clock,
    ("POST", "/admin/clock"): admin_clock,
    ("POST", "/admin/seed"): admin_seed,
    ("POST", "/admin/steal"): admin_steal,
    ("POST", "/admin/move"): admin_move,
    ("POST", "/admin/reset"): admin_reset,
    ("GET", "/admin/inventory"): admin_inventory,
    ("GET", "/admin/health"): admin_health,
    ("GET", "/admin/issued"): admin_issued,
}


class AdminServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, emu):
        self.emu = emu
        super().__init__(addr, handler)

    def handle_error(self, request, client_address):
        if self.emu.config.get("verbose"):
            super().handle_error(request, client_address)


# ==================================================================== start

def make_certificates(d):
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost,
    made with the openssl CLI. Returns (ca.pem, server.pem, server.key)."""
    ca_key, ca_pem = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr, pem = os.path.join(d, "server.key"), os.path.join(d, "server.csr"), os.path.join(d, "server.pem")
    ext = os.path.join(d, "server.ext")

    def run(*cmd):
        subprocess.run(["openssl"] + list(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca_pem, "-days", "3650", "-subj", "/CN=fake-connect test CA/O=connect-numbers",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
        "-out", csr, "-subj", "/CN=127.0.0.1/O=connect-numbers")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n")
    run("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-set_serial",
        str(int.from_bytes(secrets.token_bytes(8), "big")), "-days", "825", "-sha256", "-extfile", ext, "-out", pem)
    for p in (csr, ext):
        os.unlink(p)
    os.chmod(ca_key, 0o600)
    os.chmod(key, 0o600)
    return ca_pem, pem, key


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fake.json.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.rename(tmp, path)


HELP_EPILOG = """
Endpoints (all on 127.0.0.1, ports chosen at start unless given):
  HTTPS  the Connect API (restJson1, SigV4 service "connect", any region):
         ClaimPhoneNumber, DescribePhoneNumber, ListPhoneNumbersV2,
         SearchAvailablePhoneNumbers, ReleasePhoneNumber, UpdatePhoneNumber,
         UpdatePhoneNumberMetadata, Associate/DisassociatePhoneNumberContactFlow,
         TagResource, UntagResource, ListTagsForResource, ListPhoneNumbers,
         DescribeInstance (ImportPhoneNumber always finds no source number).
         STS (Query protocol, POST /): AssumeRole (SigV4 service "sts"),
         AssumeRoleWithWebIdentity (unsigned).
  HTTP   admin API, EC2 IMDSv2 and container credentials:
         GET  /admin/calls /admin/requests[?op=] /admin/numbers[?target_arn=]
              /admin/config /admin/clock /admin/inventory?country=&type=&prefix=&count=
              /admin/health /admin/issued
         POST /admin/config /admin/clock /admin/seed /admin/steal /admin/move /admin/reset
         PUT  /latest/api/token, GET /latest/meta-data/iam/security-credentials/[ROLE]
         GET  /container-credentials

When ready it writes DIR/fake.json and prints the same JSON on one line:
  endpoint_url, admin_url, ca_file, access_key_id, secret_access_key,
  imds_endpoint, container_full_uri (and account_id, pid).

POST /admin/config keys (each replaces its current value):
  claim_delay s, metadata_delay s, rate, burst, rates {Op: rate},
  default_quota, quotas {target_arn: n},
  faults {throttle, error500, drop, drop_after, truncate, slow: probability,
          slow_seconds: s, ops: [Op...] (default all)},
  fault_next [{fault, op?, count?}] (deterministic one-shot faults),
  fail_claims [{phone_number, times, message?}], fail_next_claims n,
  steal_after_search bool, no_inventory [{country, type?, prefix?}],
  search_misfit {country, type, label: honest|as_asked} (searches offer
  numbers of that country and type, labelled as they are or as asked),
  missing_targets [arn], credentials [{access_key_id, secret_access_key}],
  container_token s, temp_credentials_ttl s, list_hides_in_progress bool,
  roles {role_arn: {external_id?, trusted?, max_duration?, web_identity_token?,
         web_identity_token_file?, expired_tokens?}}, sts_credentials_ttl s,
  list_token_cycle n (after n pages, NextToken goes back to page 2: A->B->A),
  list_order "stable" | "shuffle" (each list answer in another order),
  remember_refused_claims bool,
  token_ttl s (ClientToken memory), max_skew s (SigV4), verbose bool.
POST /admin/clock {"advance": s} | {"offset": s}: the emulator clock (FAILED
  window, credential expiry, SigV4 skew, IN_PROGRESS delays).
POST /admin/seed {"numbers": [{target_arn, phone_number?, country, type,
  tags, description, status}]} or {"generate": {target_arn, country, type,
  count, tags, prefix?}}.
POST /admin/steal {"phone_number"}; POST /admin/reset (counters and log).
POST /admin/move {"phone_number", "target_arn"}: moves a held number to
  another target at once, tags kept, flow association dropped (a move made
  behind the back of the client under test).

See README.md next to this file for the AWS behaviours modelled.
"""


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="fake_connect.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A strict loopback emulator of the Amazon Connect phone-number API for tests.",
        epilog=HELP_EPILOG)
    ap.add_argument("--dir", required=True, help="directory for ca.pem, the server certificate and fake.json")
    ap.add_argument("--claim-delay", type=float, default=0.5,
                    help="seconds a claim (or UpdatePhoneNumber) stays IN_PROGRESS (default 0.5)")
    ap.add_argument("--metadata-delay", type=float, default=0.2,
                    help="seconds UpdatePhoneNumberMetadata keeps a number IN_PROGRESS (default 0.2)")
    ap.add_argument("--rate", type=float, default=2.0,
                    help="requests/s per operation and region, token bucket (default 2; 0 = unlimited)")
    ap.add_argument("--burst", type=int, default=5, help="token bucket size (default 5)")
    ap.add_argument("--quota", type=int, default=5, help="phone numbers per target (default 5)")
    ap.add_argument("--seed", type=int, default=1, help="inventory and fault randomness seed (default 1)")
    ap.add_argument("--inventory-size", type=int, default=1000,
                    help="numbers per (country, type, prefix) a search can ever offer (default 1000)")
    ap.add_argument("--temp-credentials-ttl", type=float, default=3600,
                    help="lifetime of IMDS/container credentials in seconds (default 3600)")
    ap.add_argument("--account-id", default=DEFAULT_ACCOUNT,
                    help="account used when a request names an instance by id only (default %s)" % DEFAULT_ACCOUNT)
    ap.add_argument("--clock-offset", type=float, default=0, help="initial emulator clock offset in seconds")
    ap.add_argument("--port", type=int, default=0, help="HTTPS port (default: chosen at start)")
    ap.add_argument("--admin-port", type=int, default=0, help="admin port (default: chosen at start)")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)
    try:
        os.unlink(os.path.join(d, "fake.json"))
    except FileNotFoundError:
        pass
    try:
        ca_pem, cert, key = make_certificates(d)
    except (OSError, subprocess.CalledProcessError) as e:
        err = getattr(e, "stderr", b"") or b""
        sys.stderr.write("fake-connect: openssl failed: %s %s\n" % (e, err.decode(errors="replace")))
        return 1

    emu = Emulator(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    api_srv = TLSServer(("127.0.0.1", args.port), ApiHandler, ctx, emu)
    admin_srv = AdminServer(("127.0.0.1", args.admin_port), AdminHandler, emu)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
               for s in (api_srv, admin_srv)]
    for t in threads:
        t.start()

    admin_url = "http://127.0.0.1:%d" % admin_srv.server_address[1]
    info = {
        "endpoint_url": "https://127.0.0.1:%d" % api_srv.server_address[1],
        "admin_url": admin_url,
        "ca_file": ca_pem,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "imds_endpoint": admin_url,
        "container_full_uri": admin_url + "/container-credentials",
        "account_id": args.account_id,
        "pid": os.getpid(),
    }
    text = json.dumps(info)
    write_atomic(os.path.join(d, "fake.json"), text + "\n")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    # An inherited "ignore SIGINT" (a background job of a script) is kept,
    # so that a Ctrl-C meant for the foreground job leaves the fake running.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(0.5):
        pass
    for s in (api_srv, admin_srv):
        s.shutdown()
        s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
