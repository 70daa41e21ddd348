"""Living with the account's real limits: throttling is retried for as long
as --wait allows, whatever its share of the calls, and the client's
adaptive rate leaves room for another client of the same account that
takes half of every bucket, without being throttled much itself and
without converging much slower than the capacity left to it allows."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnlib  # noqa: E402
import fakeclient  # noqa: E402

TAG = "connect-numbers:pool"
FLOW = "7c1a8bde-1111-4222-8333-444455556666"


def pool(count, name):
    return {"country": "US", "type": "DID", "count": count, "contact_flow": FLOW,
            "description": "%s line" % name, "tags": {"team": name}}


@cnlib.real_time
class RandomThrottling(cnlib.DaemonTest):
    """Fault injection: a share of every call is answered 429 whatever the
    rate. The fake itself allows 100/s; the daemon paces at 20/s (random
    throttles say nothing about the rate, so the adaptive rate sinks to its
    floor, a quarter of api_rate: the test keeps that floor high enough to
    end in about a minute)."""
    fake_args = ("--claim-delay", "0.3", "--quota", "100")

    def converge_under(self, share):
        a, b = cnlib.instance_arn(), cnlib.instance_arn()
        cnlib.write_yaml(self.yaml, self.fake, {
            "support": {"arn": a, "quota": 30, "pools": {"main": pool(20, "support")}},
            "sales": {"arn": b, "quota": 30, "pools": {"main": pool(20, "sales")}},
        }, rate=20, burst=5)
        self.fake.config(faults={"throttle": share})
        start = time.monotonic()
        r = self.once("--wait", "10m", timeout=700)
        took = time.monotonic() - start
        calls = self.fake.calls()
        thr = sum(calls.get("throttled", {}).values())
        total = sum(calls["calls"].values())
        sys.stderr.write("\n  throttle %.0f %%: exit %d in %.1f s, %d calls, %d throttled (%.0f %%)\n" % (
            100 * share, r.returncode, took, total, thr, 100.0 * thr / max(total, 1)))
        self.assertEqual(r.returncode, 0, r.stderr[-4000:])
        for arn, name in ((a, "support"), (b, "sales")):
            held = [n for n in self.fake.numbers(arn) if (n.get("tags") or {}).get(TAG) == name + "/main"]
            self.assertEqual(len(held), 20, name)
            self.assertEqual(len({n["phone_number"] for n in held}), 20)
            for n in held:
                self.assertEqual(n["status"], "CLAIMED")
                self.assertEqual((n.get("tags") or {}).get("team"), name)
                self.assertEqual(n.get("description"), name + " line")
                self.assertIn(FLOW, str(n.get("contact_flows") or n.get("contact_flow") or n))
            every = self.fake.numbers(arn, active=False)
            self.assertEqual(len(every), 20, "numbers claimed beyond the held ones")
        self.assert_no_validation_failures()

    def test_30_percent_throttled(self):
        self.converge_under(0.3)

    def test_60_percent_throttled(self):
        self.converge_under(0.6)


class Competitor:
    """Another client of the same account: every `period` seconds, one
    call to each operation, whether or not it is throttled. The calls fail
    after taking their token (unknown ids), changing nothing."""

    def __init__(self, info, target, rate):
        self.info, self.target, self.period = info, target, 1.0 / rate
        self.calls, self.throttled = {}, {}
        self.stop = threading.Event()
        bogus = "00000000-0000-4000-8000-000000000000"
        bogus_arn = target.replace(":instance/", ":phone-number/")[:target.rindex(":") + 1] + \
            "phone-number/" + bogus
        self.ops = {
            "ClaimPhoneNumber": lambda c: c.claim(target, "+19999999999"),
            "DescribePhoneNumber": lambda c: c.describe(bogus),
            "SearchAvailablePhoneNumbers": lambda c: c.search(target, prefix="+1999999"),
            "ListPhoneNumbersV2": lambda c: c.list(target=cnlib.instance_arn(), max_results=1),
            "AssociatePhoneNumberContactFlow": lambda c: c.associate(bogus, target.rsplit("/", 1)[1], FLOW),
            "UpdatePhoneNumberMetadata": lambda c: c.metadata(bogus, "x"),
            "TagResource": lambda c: c.tag(bogus_arn, {"a": "b"}),
            "UntagResource": lambda c: c.untag(bogus_arn, ["a"]),
            "ReleasePhoneNumber": lambda c: c.release(bogus),
        }
        self.threads = [threading.Thread(target=self.loop, args=(op, f), daemon=True) for op, f in self.ops.items()]

    def loop(self, op, f):
        client = fakeclient.Client(self.info)
        t = time.monotonic()
        while not self.stop.is_set():
            try:
                r = f(client)
                self.calls[op] = self.calls.get(op, 0) + 1
                if r.status == 429:
                    self.throttled[op] = self.throttled.get(op, 0) + 1
            except OSError:
                client.close()
            t += self.period
            self.stop.wait(max(0.0, t - time.monotonic()))
        client.close()

    def start(self):
        for th in self.threads:
            th.start()

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(10)


@cnlib.real_time
class SharedBucket(cnlib.DaemonTest):
    """The fake at AWS's default limits (2/s, burst 5 per operation); the
    daemon configured for them too."""
    fake_args = ("--rate", "2", "--burst", "5", "--quota", "300")

    def test_half_of_every_bucket_taken(self):
        rate, burst, share, claim_latency = 2.0, 5, 0.5, 0.5
        a = cnlib.instance_arn()
        cnlib.write_yaml(self.yaml, self.fake, {
            "support": {"arn": a, "quota": 250, "pools": {"main": {"country": "US", "type": "DID", "count": 200}}},
        }, rate=2, burst=5)
        comp = Competitor(self.fake.info, a, rate * share)
        comp.start()
        time.sleep(2)  # the competitor has taken its burst share
        start = time.monotonic()
        try:
            r = self.once("--wait", "20m", timeout=1300)
        finally:
            took = time.monotonic() - start
            comp.finish()
        calls = self.fake.calls()
        svc_calls, svc_thr, bounds = {}, {}, {}
        for op, n in calls["calls"].items():
            svc_calls[op] = n - comp.calls.get(op, 0)
        for op, n in calls.get("throttled", {}).items():
            svc_thr[op] = n - comp.throttled.get(op, 0)
        # The capacity left: (1 - share) of the rate and of the burst.
        left_rate, left_burst = rate * (1 - share), burst * (1 - share)
        for op, n in svc_calls.items():
            ok = n - svc_thr.get(op, 0)
            bounds[op] = max(0.0, (ok - left_burst) / left_rate)
        bound = max(bounds.values()) + claim_latency
        total, thr = sum(svc_calls.values()), sum(svc_thr.values())
        sys.stderr.write("\n  shared bucket: exit %d in %.1f s, lower bound %.1f s (ratio %.2f); service %d calls, "
                         "%d throttled (%.1f %%); per op %s; competitor %s calls, %s throttled\n" % (
                             r.returncode, took, bound, took / bound, total, thr, 100.0 * thr / max(total, 1),
                             {op: (svc_calls[op], svc_thr.get(op, 0)) for op in svc_calls if svc_calls[op]},
                             sum(comp.calls.values()), sum(comp.throttled.values())))
        self.assertEqual(r.returncode, 0, r.stderr[-4000:])
        held = [n for n in self.fake.numbers(a) if (n.get("tags") or {}).get(TAG) == "support/main"]
        self.assertEqual(len(held), 200)
        self.assertLessEqual(thr, 0.10 * total, "the service was throttled on more than 10 %% of its calls")
        self.assertLessEqual(took, 1.15 * bound, "slower than 1.15 x the lower bound")


if __name__ == "__main__":
    cnlib.main()
