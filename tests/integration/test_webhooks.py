"""Webhooks (issue 14): subscriptions, signed deliveries from inside kipd,
retries, the access rule at delivery time, several kipd instances on one
database, kill -9 during a delivery, the outbound URL policy, and a loop
that a receiver which never answers cannot slow down.

Every receiver is a real HTTP server the test starts on 127.0.0.1 (Python's
http.server in a thread); kipd runs with --webhook-allow-loopback so that
it may reach it over http, and with short poll and retry intervals.
"""

import hashlib
import hmac
import json
import socket
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import requests

import kiptest
from kiptest import Api, Kipd

FAST = ["--webhook-allow-loopback", "--webhook-poll-ms", "100", "--webhook-retry-base-ms", "200",
        "--webhook-retry-window-s", "120", "--webhook-timeout-ms", "3000",
        "--webhook-connect-timeout-ms", "1000"]
GIVEN_AT = "2025-03-01T12:00:00+01:00"


# ---------------------------------------------------------------- receiver

class Receiver:
    """An HTTP endpoint on 127.0.0.1. `answers` is a list of statuses to give
    in turn (then `default`); with `hang` set, requests wait until released
    (or the receiver stops) without an answer."""

    def __init__(self, port=0):
        self.requests = []          # (headers dict, raw body bytes, status answered or None)
        self.answers = []
        self.default = 200
        self.location = None
        self.hang = False
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.port = port
        self.server = None

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with receiver.lock:
                    entry = [dict(self.headers), body, None]
                    receiver.requests.append(entry)
                    hang = receiver.hang
                    status = receiver.answers.pop(0) if receiver.answers else receiver.default
                if hang:
                    receiver.release.wait(60)
                    return
                entry[2] = status
                self.send_response(status)
                if receiver.location and 300 <= status < 400:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self, answered_ok=None):
        """The envelopes received (answered_ok: only those answered 2xx)."""
        with self.lock:
            got = list(self.requests)
        return [json.loads(b) for h, b, s in got
                if answered_ok is None or (s is not None and 200 <= s < 300) == answered_ok]

    def of_event(self, event_id):
        with self.lock:
            return [(h, b, s) for h, b, s in self.requests if json.loads(b)["id"] == event_id]


@pytest.fixture
def receiver():
    made = []

    def make(port=0):
        r = Receiver(port).start()
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


# ------------------------------------------------------------------ kipds

@pytest.fixture(scope="module")
def wk(pg, workroot, new_db):
    """The module's kipd, with fast webhook settings."""
    db = new_db()
    workdir = kiptest.make_workdir(workroot, kiptest.unique("webhooks-"))
    k = Kipd.external(workdir, pg.runtime_url(db), extra_args=FAST, name="webhooks", owner_url=pg.url(db))
    k.db = db
    with kiptest.running_kipd(k):
        yield k


@pytest.fixture(scope="module")
def wadmin(wk):
    return Api(wk.url, wk.admin_token(), name="admin")


def _ok(resp, status=None):
    assert resp.status_code == (status or resp.status_code) and resp.status_code < 300, resp.text
    return resp.json() if resp.content else None


def _team(admin):
    """A hospital with a tovholder and an integration user, and a plan."""
    org = kiptest.create_org(admin, "region_hospital")
    tov = kiptest.create_user(admin, org, ["coordinator"], display_name="Tove Tovholder")
    integ = kiptest.create_user(admin, org, ["integration"], display_name="Hospitalets system")
    plan = kiptest.create_plan(tov)
    return SimpleNamespace(org=org, tov=tov, integ=integ, plan=plan)


def _subscribe(client, url, types=("action.assigned",)):
    r = client.post("/v1/webhooks", json={"url": url, "event_types": list(types), "description": "test"})
    assert r.status_code == 201, r.text
    doc = r.json()
    kiptest.remember_secret(doc["secret"])
    assert r.headers["Location"] == f"/v1/webhooks/{doc['id']}"
    return doc


def _action(tov, plan, title="Afklar boligsituationen"):
    """An action for the tovholder: one action.assigned event."""
    return _ok(tov.post(f"/v1/plans/{plan['id']}/actions", json={
        "title": title, "area": "housing", "responsible_participant_id": plan["coordinator"]}), 201)


def _arrived(rcv, action_id, ok=True):
    return [e for e in rcv.events(answered_ok=ok if ok else None)
            if e["type"] == "action.assigned" and e["resource_id"] == action_id]


def _deliveries(client, hook, **params):
    return _ok(client.get(f"/v1/webhooks/{hook['id']}/deliveries", params=params))["items"]


def _verify(secret, headers, body):
    sig = headers["X-KIP-Signature"]
    parts = dict(p.split("=", 1) for p in sig.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(int(parts["t"]) - time.time()) < 300


# ------------------------------------------------------------------ tests

def test_signed_delivery(wk, wadmin, receiver, pg):
    """The envelope arrives signed with the subscription's secret, once, and
    is listed as delivered and audited like a read."""
    rcv = receiver()
    t = _team(wadmin)
    hook = _subscribe(t.integ, rcv.url)
    assert hook["event_types"] == ["action.assigned"] and hook["organisation_id"] == t.org["id"]
    action = _action(t.tov, t.plan)
    got = kiptest.wait_until(lambda: _arrived(rcv, action["id"]), 15, what="the delivery")
    event = got[0]
    assert event["plan_id"] == t.plan["id"] and event["data"]["action_id"] == action["id"]
    assert set(event) == {"id", "type", "occurred_at", "plan_id", "resource_id", "data"}
    (headers, body, status), = rcv.of_event(event["id"])
    assert headers["Content-Type"] == "application/json"
    assert headers["X-KIP-Event-Id"] == event["id"]
    assert _verify(hook["secret"], headers, body)
    assert not _verify("whsec_" + "x" * 43, headers, body)
    # Listed as delivered, under the id sent.
    items = kiptest.wait_until(lambda: [d for d in _deliveries(t.integ, hook) if d["status"] == "delivered"],
                               10, what="delivered in the list")
    assert items[0]["id"] == headers["X-KIP-Delivery-Id"]
    assert items[0]["event_id"] == event["id"] and items[0]["attempts"] == 1 and items[0]["last_status"] == 200
    # The secret is never shown again.
    listed = _ok(t.integ.get("/v1/webhooks"))["items"]
    assert [w["id"] for w in listed] == [hook["id"]] and "secret" not in listed[0]
    # Audited like a read, by the subscriber, naming the plan.
    rows = pg.psql(f"SELECT user_id, organisation_id, plan_id FROM kip.audit "
                   f"WHERE action = 'webhook.deliver' AND request_id = 'webhook-{items[0]['id']}'", db=wk.db)
    assert rows == f"{t.integ.user['id']}|{t.org['id']}|{t.plan['id']}"


def test_retry_after_500(wk, wadmin, receiver):
    rcv = receiver()
    rcv.answers = [500]
    t = _team(wadmin)
    hook = _subscribe(t.integ, rcv.url)
    action = _action(t.tov, t.plan)
    kiptest.wait_until(lambda: _arrived(rcv, action["id"]), 15, what="the retried delivery")
    tries = rcv.of_event(_arrived(rcv, action["id"])[0]["id"])
    assert [s for _, _, s in tries] == [500, 200]
    assert tries[0][0]["X-KIP-Delivery-Id"] == tries[1][0]["X-KIP-Delivery-Id"]
    d = kiptest.wait_until(lambda: [d for d in _deliveries(t.integ, hook) if d["status"] == "delivered"], 10,
                           what="delivered")[0]
    assert d["attempts"] == 2 and d["last_status"] == 200 and d["last_error"] is None


def test_receiver_down_then_back(wk, wadmin, receiver):
    port = kiptest.free_port()   # nobody listens there yet
    t = _team(wadmin)
    hook = _subscribe(t.integ, f"http://127.0.0.1:{port}/hook")
    action = _action(t.tov, t.plan)
    d = kiptest.wait_until(lambda: [d for d in _deliveries(t.integ, hook) if d["attempts"] >= 2], 15,
                           what="failed attempts")[0]
    assert d["status"] == "pending" and d["last_status"] is None and d["last_error"]
    assert d["next_attempt_at"] is not None
    rcv = receiver(port)
    kiptest.wait_until(lambda: _arrived(rcv, action["id"]), 30, what="the delivery once the receiver is back")
    kiptest.wait_until(lambda: _deliveries(t.integ, hook)[0]["status"] == "delivered", 10, what="delivered")


def test_failed_after_the_window_then_redelivered(kipd_factory, receiver):
    args = [a for a in FAST]
    args[args.index("--webhook-retry-window-s") + 1] = "1"
    k = kipd_factory(extra_args=args)
    admin = Api(k.url, k.admin_token(), name="admin")
    rcv = receiver()
    rcv.default = 503
    t = _team(admin)
    hook = _subscribe(t.integ, rcv.url)
    _action(t.tov, t.plan)
    d = kiptest.wait_until(lambda: _deliveries(t.integ, hook, status="failed"), 20, what="failed")[0]
    assert d["attempts"] >= 2 and d["last_status"] == 503 and "503" in d["last_error"]
    assert d["next_attempt_at"] is None
    rcv.default = 200
    again = _ok(t.integ.post(f"/v1/webhooks/{hook['id']}/deliveries/{d['id']}/redeliver"), 202)
    assert again["id"] == d["id"] and again["status"] == "pending"
    kiptest.wait_until(lambda: _deliveries(t.integ, hook, status="delivered"), 15, what="redelivered")
    assert rcv.events(answered_ok=True)[0]["id"] == d["event_id"]
    # Someone else's delivery, or a made-up one, is 404.
    other = kiptest.create_user(admin, kiptest.create_org(admin), ["integration"])
    assert other.post(f"/v1/webhooks/{hook['id']}/deliveries/{d['id']}/redeliver").status_code == 404
    kiptest.problem(t.integ.post(f"/v1/webhooks/{hook['id']}/deliveries/{hook['id']}/redeliver"), 404)


def test_no_event_for_a_rolled_back_change(wk, wadmin, receiver, pg):
    rcv = receiver()
    t = _team(wadmin)
    hook = _subscribe(t.integ, rcv.url)
    # A change whose transaction rolls back: its event (and its delivery) never existed.
    pg.psql(f"BEGIN; INSERT INTO kip.events (kind, plan_id, resource_id, dedupe_key) "
            f"VALUES ('action.assigned', '{t.plan['id']}', '{t.plan['id']}', 'rolled-back-{hook['id']}'); "
            f"ROLLBACK;", db=wk.db)
    # A request that fails writes nothing either.
    bad = t.tov.post(f"/v1/plans/{t.plan['id']}/actions", json={
        "title": "Uden ansvarlig", "area": "housing", "responsible_participant_id": t.plan["id"]})
    assert bad.status_code >= 400
    action = _action(t.tov, t.plan)
    kiptest.wait_until(lambda: _arrived(rcv, action["id"]), 15, what="the committed event")
    time.sleep(1.0)
    assert [e["resource_id"] for e in rcv.events()] == [action["id"]]
    assert pg.psql(f"SELECT count(*) FROM kip.webhook_deliveries WHERE webhook_id = '{hook['id']}'",
                   db=wk.db) == "1"


def test_no_event_for_a_plan_outside_access(wk, wadmin, receiver, pg):
    mine, theirs = receiver(), receiver()
    t = _team(wadmin)
    own_hook = _subscribe(t.integ, mine.url, types=())
    other_org = kiptest.create_org(wadmin, "municipality_jobcenter")
    other = kiptest.create_user(wadmin, other_org, ["integration"])
    other_hook = _subscribe(other, theirs.url, types=())
    assert other_hook["event_types"] == []
    action = _action(t.tov, t.plan)
    kiptest.wait_until(lambda: _arrived(mine, action["id"]), 15, what="the owner's delivery")
    time.sleep(1.0)
    assert theirs.events() == []
    assert _deliveries(other, other_hook) == []
    assert pg.psql(f"SELECT count(*) FROM kip.webhook_deliveries WHERE webhook_id = '{other_hook['id']}'",
                   db=wk.db) == "0"
    # Nor may they see or touch the owner's subscription.
    assert other.get(f"/v1/webhooks/{own_hook['id']}/deliveries").status_code == 404
    assert other.delete(f"/v1/webhooks/{own_hook['id']}").status_code == 404
    assert [w["id"] for w in _ok(other.get("/v1/webhooks"))["items"]] == [other_hook["id"]]


def test_withdrawal_stops_delivery(wk, wadmin, receiver, pg):
    """A municipality's system, a participant of the plan through the consent,
    gets its events; once the consent is withdrawn, a delivery still pending
    is withheld and new events are not delivered."""
    rcv = receiver()
    t = _team(wadmin)
    cov = kiptest.create_org(wadmin, "municipality_jobcenter")
    cov_system = kiptest.create_user(wadmin, cov, ["integration"])
    url = f"/v1/plans/{t.plan['id']}"
    _ok(t.tov.post(f"{url}/consent", json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT,
                                          "relatives_allowed": True, "contact_organisation_ids": [cov["id"]]}))
    _ok(t.tov.post(f"{url}/participants", json={"kind": "professional", "user_id": cov_system.user["id"],
                                               "role": "jobcenter_caseworker"}))
    hook = _subscribe(cov_system, rcv.url)
    first = _action(t.tov, t.plan, "Før tilbagekaldelsen")
    kiptest.wait_until(lambda: _arrived(rcv, first["id"]), 15, what="delivery while consented")
    rcv.default = 503          # the receiver fails for a while: the next one stays pending
    second = _action(t.tov, t.plan, "Mens modtageren fejler")
    kiptest.wait_until(lambda: _arrived(rcv, second["id"], ok=False), 15, what="a failed attempt")
    _ok(t.tov.post(f"{url}/consent/withdraw", json={}))
    time.sleep(1.0)            # an attempt claimed just before the withdrawal may still land
    seen = len(_arrived(rcv, second["id"], ok=False))
    rcv.default = 200
    third = _action(t.tov, t.plan, "Efter tilbagekaldelsen")
    time.sleep(2.5)
    assert len(_arrived(rcv, second["id"], ok=False)) == seen
    assert _arrived(rcv, second["id"]) == [] and _arrived(rcv, third["id"], ok=False) == []
    status = pg.psql(f"SELECT d.status FROM kip.webhook_deliveries d JOIN kip.events e ON e.id = d.event_id "
                     f"WHERE d.webhook_id = '{hook['id']}' AND e.resource_id = '{second['id']}'", db=wk.db)
    assert status == "withheld"
    assert [d["event_type"] for d in _deliveries(cov_system, hook)] == ["action.assigned"]


def test_two_instances_deliver_each_event_once(wk, wadmin, receiver, kipd_factory):
    second = kipd_factory(db=wk.db, extra_args=FAST, name="webhooks-2")
    rcv = receiver()
    t = _team(wadmin)
    _subscribe(t.integ, rcv.url)
    actions = [_action(t.tov, t.plan, f"Handling {i}") for i in range(16)]
    want = {a["id"] for a in actions}
    kiptest.wait_until(lambda: want <= {e["resource_id"] for e in rcv.events()}, 30, what="every delivery")
    time.sleep(1.5)
    ids = [e["id"] for e in rcv.events()]
    assert len(ids) == len(set(ids)) == 16, sorted(ids)
    assert second.alive()


def test_kill_9_during_delivery_loses_nothing(kipd_factory, receiver):
    args = FAST + ["--webhook-timeout-ms", "2000", "--webhook-connect-timeout-ms", "500"]
    first = kipd_factory(extra_args=args)
    admin = Api(first.url, first.admin_token(), name="admin")
    rcv = receiver()
    rcv.hang = True
    t = _team(admin)
    _subscribe(t.integ, rcv.url)
    action = _action(t.tov, t.plan)
    kiptest.wait_until(lambda: _arrived(rcv, action["id"], ok=None), 15, what="the delivery in flight")
    first.kill()                         # kill -9 while the receiver holds the request
    rcv.hang = False
    rcv.release.set()
    second = kipd_factory(db=first.db, extra_args=args, name="after-kill")
    assert second.alive()
    kiptest.wait_until(lambda: _arrived(rcv, action["id"]), 30, what="the delivery after the kill")
    # The first attempt never got an answer; the second instance sent it again.
    assert len(_arrived(rcv, action["id"], ok=None)) >= 2


def test_a_receiver_that_never_answers_does_not_slow_healthz(kipd_factory, receiver):
    args = FAST + ["--webhook-timeout-ms", "30000"]
    k = kipd_factory(extra_args=args)
    admin = Api(k.url, k.admin_token(), name="admin")
    rcv = receiver()
    rcv.hang = True
    t = _team(admin)
    _subscribe(t.integ, rcv.url)
    for i in range(12):
        _action(t.tov, t.plan, f"Handling {i}")
    kiptest.wait_until(lambda: len(rcv.events()) >= 12, 20, what="12 requests hanging at the receiver")
    times = []
    for _ in range(40):
        start = time.monotonic()
        r = requests.get(f"{k.url}/healthz", timeout=5)
        times.append(time.monotonic() - start)
        assert r.status_code == 200
    assert statistics.median(times) < 0.05, times
    assert max(times) < 1.0, times
    assert all(s is None for _, _, s in rcv.requests)   # still hanging while measured


def test_url_policy(wk, wadmin):
    t = _team(wadmin)
    cases = [
        ("http://example.com/hook", "invalid_url"),
        ("ftp://example.com/hook", "invalid_url"),
        ("https://user:secret@example.com/hook", "invalid_url"),
        ("not a url at all", "invalid_url"),
        ("https://10.1.2.3/hook", "url_not_allowed"),
        ("https://192.168.1.10/hook", "url_not_allowed"),
        ("https://172.16.0.1/hook", "url_not_allowed"),
        ("https://169.254.169.254/latest/meta-data", "url_not_allowed"),
        ("https://0.0.0.0/hook", "url_not_allowed"),
        ("https://224.0.0.1/hook", "url_not_allowed"),
        ("https://[fd00::1]/hook", "url_not_allowed"),
        ("https://[fe80::1]/hook", "url_not_allowed"),
        ("https://[::ffff:10.0.0.1]/hook", "url_not_allowed"),
    ]
    for url, code in cases:
        kiptest.problem(t.integ.post("/v1/webhooks", json={"url": url}), 422, field="url", code=code)
    kiptest.problem(t.integ.post("/v1/webhooks", json={"url": "https://example.com/hook",
                                                        "event_types": ["Not A Type"]}),
                    422, field="event_types[0]", code="invalid_format")
    kiptest.problem(t.integ.post("/v1/webhooks", json={"url": "https://example.com/hook",
                                                        "event_types": ["action.assigned", "plan.craeted"]}),
                    422, field="event_types[1]", code="not_allowed_value")
    # Only the integration role and admins subscribe.
    caseworker = kiptest.create_user(wadmin, t.org, ["caseworker"])
    kiptest.problem(caseworker.post("/v1/webhooks", json={"url": "https://example.com/hook"}), 403)
    kiptest.problem(t.tov.get("/v1/webhooks"), 403)
    org_admin = kiptest.create_user(wadmin, t.org, ["admin"])
    hook = _subscribe(org_admin, "https://example.com/hook", types=())
    assert [w["id"] for w in _ok(t.integ.get("/v1/webhooks"))["items"]] == [hook["id"]]
    assert t.integ.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
    assert _ok(t.integ.get("/v1/webhooks"))["items"] == []
    assert t.integ.delete(f"/v1/webhooks/{hook['id']}").status_code == 404


def test_redirects_are_not_followed(wk, wadmin, receiver):
    target, redirector = receiver(), receiver()
    redirector.default = 307
    redirector.location = target.url
    t = _team(wadmin)
    hook = _subscribe(t.integ, redirector.url)
    action = _action(t.tov, t.plan)
    kiptest.wait_until(lambda: len(_arrived(redirector, action["id"], ok=None)) >= 2, 15,
                       what="two attempts at the redirecting receiver")
    assert target.events() == []
    d = _deliveries(t.integ, hook)[0]
    assert d["status"] == "pending" and d["last_status"] == 307


def test_resolved_address_is_checked_at_connect_time(kipd_factory):
    """Without --webhook-allow-loopback: http:// and loopback literals are
    refused at subscription time, and a host name that resolves to loopback
    is subscribed but refused when connecting: not even a TCP connection
    reaches the listener."""
    k = kipd_factory()
    admin = Api(k.url, k.admin_token(), name="admin")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(3.0)
    port = listener.getsockname()[1]
    try:
        t = _team(admin)
        kiptest.problem(t.integ.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/hook"}), 422,
                        field="url", code="invalid_url")
        kiptest.problem(t.integ.post("/v1/webhooks", json={"url": f"https://127.0.0.1:{port}/hook"}), 422,
                        field="url", code="url_not_allowed")
        kiptest.problem(t.integ.post("/v1/webhooks", json={"url": f"https://[::1]:{port}/hook"}), 422,
                        field="url", code="url_not_allowed")
        hook = _subscribe(t.integ, f"https://localhost:{port}/hook")
        _action(t.tov, t.plan)
        d = kiptest.wait_until(lambda: [d for d in _deliveries(t.integ, hook) if d["attempts"] >= 1
                                        and d["last_error"]], 30, what="a refused attempt")[0]
        assert d["status"] == "pending" and d["last_status"] is None
        assert "not allowed" in d["last_error"], d
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()


def _webhook_metrics(k):
    from prometheus_client.parser import text_string_to_metric_families
    r = Api(k.url, None).get("/metrics")
    assert r.status_code == 200
    out = {}
    for f in text_string_to_metric_families(r.text):
        for s in f.samples:
            if s.name.startswith("kipd_webhook_"):
                out[s.name] = s.value
    return out


def test_metrics_count_deliveries_and_the_backlog(kipd_factory, receiver):
    """/metrics: one 2xx delivery is sent_total + 1, one 500 answer is
    failed_total + 1; the backlog counts the delivery left pending. On a kipd
    of its own: the module's kipd keeps retrying the earlier tests'
    deliveries, which would move the counters too."""
    wk = kipd_factory(extra_args=FAST, name="webhook-metrics")
    wadmin = Api(wk.url, wk.admin_token(), name="admin")
    rcv = receiver()
    rcv.answers = [500]
    t = _team(wadmin)
    _subscribe(t.integ, rcv.url)
    before = _webhook_metrics(wk)
    action = _action(t.tov, t.plan)
    kiptest.wait_until(lambda: _arrived(rcv, action["id"], ok=False), 15, what="the failed attempt")
    kiptest.wait_until(lambda: _webhook_metrics(wk)["kipd_webhook_deliveries_failed_total"]
                       == before["kipd_webhook_deliveries_failed_total"] + 1, 10, what="failed_total + 1")
    kiptest.wait_until(lambda: _arrived(rcv, action["id"]), 30, what="the retried delivery")
    after = kiptest.wait_until(
        lambda: (m := _webhook_metrics(wk))["kipd_webhook_deliveries_sent_total"]
        == before["kipd_webhook_deliveries_sent_total"] + 1 and m, 10, what="sent_total + 1")
    assert after["kipd_webhook_deliveries_failed_total"] == before["kipd_webhook_deliveries_failed_total"] + 1
    assert after["kipd_webhook_backlog"] >= 0 and after["kipd_webhook_oldest_pending_age_seconds"] >= 0
