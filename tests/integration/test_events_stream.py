"""The live event stream, GET /v1/events (issue 14, "Live events for the web
UI"; docs/events-stream.md).

Server-Sent Events fed by LISTEN/NOTIFY on one connection per kipd (kipd
NOTIFYs on it after each write request, never in the writing transaction), resumed
with Last-Event-ID from the outbox, filtered by the access rule, with a
heartbeat. Real kipd processes, a real PostgreSQL, real sockets.
"""

import http.client
import json
import queue
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid

import pytest
import requests

import kiptest
from kiptest import problem

STREAM_WAIT = 10.0   # an event must reach an open stream within this


class Stream:
    """One open GET /v1/events over a real socket (http.client), read by a
    thread into a queue of messages: ("event", {"id", "event", "data"}),
    ("comment", text), ("end", None)."""

    def __init__(self, base_url, token=None, headers=None, params=None, cookies=None):
        h = {"Accept": "text/event-stream"}
        if token:
            h["Authorization"] = f"Bearer {token}"
        if cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        h.update(headers or {})
        url = urllib.parse.urlsplit(base_url)
        path = "/v1/events" + ("?" + urllib.parse.urlencode(params) if params else "")
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()
        self.status_code = self.resp.status
        self.headers = self.resp.headers
        self.messages = queue.Queue()
        if self.status_code == 200:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        else:
            self.text = self.resp.read().decode("utf-8", "replace")

    def _read(self):
        fields = {}
        try:
            while True:
                raw = self.resp.fp.readline()
                if not raw:
                    break
                line = raw.decode("utf-8").rstrip("\n").rstrip("\r")
                if line == "":
                    if "data" in fields or "id" in fields:
                        fields["data"] = json.loads(fields["data"]) if "data" in fields else None
                        self.messages.put(("event", fields))
                    fields = {}
                elif line.startswith(":"):
                    self.messages.put(("comment", line[1:].strip()))
                else:
                    name, _, value = line.partition(":")
                    fields[name] = value[1:] if value.startswith(" ") else value
        except (OSError, ValueError, AttributeError):
            pass
        self.messages.put(("end", None))

    def next(self, kinds=("event", "end"), timeout=STREAM_WAIT):
        """The next message of one of these kinds; None after timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                kind, value = self.messages.get(timeout=left)
            except queue.Empty:
                return None
            if kind in kinds:
                return kind, value

    def event(self, timeout=STREAM_WAIT):
        m = self.next(("event",), timeout)
        assert m is not None, "no event arrived on the stream in time"
        return m[1]

    def events_until(self, predicate, timeout=STREAM_WAIT):
        """Events up to and including the first one predicate accepts."""
        got = []
        while True:
            ev = self.event(timeout)
            got.append(ev)
            if predicate(ev):
                return got

    def ended(self, timeout=STREAM_WAIT):
        """True once the server has closed the stream (no event before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.next(("event", "end"), deadline - time.monotonic())
            if m is None:
                return False
            if m[0] == "end":
                return True
            raise AssertionError(f"an event arrived on a stream that should have ended: {m[1]}")
        return False

    def close(self):
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conn.close()


def _join(client, plan, user):
    r = client.post(f"/v1/plans/{plan['id']}/participants",
                    json={"kind": "professional", "role": "caseworker", "user_id": user.user["id"]})
    assert r.status_code == 201, r.text
    return r.json()


def _action(client, plan, responsible=None):
    """Create an action (one action.assigned event); return it."""
    r = client.post(f"/v1/plans/{plan['id']}/actions",
                    json={"title": f"Opgave {uuid.uuid4().hex[:6]}", "area": "housing",
                          "responsible_participant_id": responsible or plan["coordinator"]})
    assert r.status_code == 201, r.text
    return r.json()


def _plan_events(pg, db, plan, after):
    """[(id, type)] of the plan's events after the id `after`, from the outbox."""
    out = pg.psql(f"SELECT id || ' ' || kind FROM kip.events WHERE plan_id = '{plan['id']}' "
                  f"AND id > {int(after)} ORDER BY id", db=db)
    return [tuple(line.split(" ", 1)) for line in out.splitlines() if line]


def _is_assigned(action):
    return lambda ev: ev["event"] == "action.assigned" and ev["data"]["resource_id"] == action["id"]


def _opened(stream, proxied=False):
    assert stream.status_code == 200, getattr(stream, "text", "")
    h = stream.headers
    assert h["Content-Type"].startswith("text/event-stream")
    assert h["Cache-Control"] == "no-store"
    if not proxied:   # nginx takes X-Accel-Buffering for itself
        assert h["X-Accel-Buffering"] == "no"
    assert "Content-Length" not in h
    assert h.get("X-Request-Id")
    # The first bytes come at once: a comment and the retry hint.
    m = stream.next(("comment",), timeout=5)
    assert m is not None and m[1] == "kipd events"
    return stream


def _envelope_ok(ev):
    d = ev["data"]
    assert set(d) == {"id", "type", "occurred_at", "plan_id", "resource_id", "data"}
    assert d["id"] == ev["id"] and d["type"] == ev["event"]
    assert ev["id"].isdigit()


@pytest.fixture
def team(coordinator, make_plan):
    return coordinator, make_plan(coordinator)


def test_an_event_made_through_a_second_kipd_arrives(kipd, kipd_factory, team, pg):
    tov, plan = team
    other = kipd_factory(db=kipd.db, name="second")
    via_other = kiptest.Api(other.url, tov.token, name="tov-on-second")
    s = _opened(Stream(kipd.url, tov.token))
    try:
        action = _action(via_other, plan)
        ev = s.events_until(_is_assigned(action))[-1]
        _envelope_ok(ev)
        assert ev["data"]["plan_id"] == plan["id"]
        assert ev["data"]["data"]["action_id"] == action["id"]
        want = pg.psql(f"SELECT id FROM kip.events WHERE kind = 'action.assigned' "
                       f"AND resource_id = '{action['id']}'", db=kipd.db)
        assert ev["id"] == want
    finally:
        s.close()


def test_last_event_id_resumes_with_exactly_the_missed_events_in_order(kipd, team, pg):
    tov, plan = team
    s = _opened(Stream(kipd.url, tov.token))
    first = _action(tov, plan)
    seen = s.events_until(_is_assigned(first))[-1]
    s.close()

    missed = [_action(tov, plan) for _ in range(3)]
    want = _plan_events(pg, kipd.db, plan, seen["id"])
    assert len(want) >= 3

    s2 = _opened(Stream(kipd.url, tov.token, headers={"Last-Event-ID": seen["id"]}))
    try:
        got = [s2.event() for _ in want]
        assert [(e["id"], e["event"]) for e in got] == want
        assert {a["id"] for a in missed} <= {e["data"]["resource_id"] for e in got}
        for e in got:
            _envelope_ok(e)
        # Nothing else was missed: what follows is new.
        marker = _action(tov, plan)
        nxt = s2.event()
        assert int(nxt["id"]) > int(want[-1][0]) and nxt["data"]["resource_id"] == marker["id"]
    finally:
        s2.close()

    # ?after= is the same for a client that cannot send the header.
    want = _plan_events(pg, kipd.db, plan, seen["id"])
    s3 = _opened(Stream(kipd.url, tov.token, params={"after": seen["id"]}))
    try:
        got = [s3.event() for _ in want]
        assert [(e["id"], e["event"]) for e in got] == want
    finally:
        s3.close()


def test_without_a_position_the_stream_starts_with_new_events(kipd, team, pg):
    tov, plan = team
    old = _action(tov, plan)
    # The start is the newest event of the transactions that have ended
    # below every running one (kip_api.events_open); while a transaction that
    # began before old's (the audit sealer's, the daily pass's) still runs,
    # old's events would rightly come too. Open once they are final.
    kiptest.wait_until(lambda: pg.psql(
        f"SELECT bool_and(xid < pg_snapshot_xmin(pg_current_snapshot())) FROM kip.events "
        f"WHERE resource_id = '{old['id']}'", db=kipd.db) == "t", 10, what="old's events final")
    s = _opened(Stream(kipd.url, tov.token))
    try:
        new = _action(tov, plan)
        assert s.event()["data"]["resource_id"] == new["id"] != old["id"]
    finally:
        s.close()


def test_a_user_without_access_to_the_plan_gets_none_of_its_events(kipd, team, make_org, make_user,
                                                                   make_plan):
    tov, plan = team
    stranger = make_user(make_org(), ["coordinator"])
    own_plan = make_plan(stranger)
    admin_stream = _opened(Stream(kipd.url, kipd.admin_token()))
    s = _opened(Stream(kipd.url, stranger.token))
    try:
        hidden = [_action(tov, plan) for _ in range(3)]
        marker = _action(stranger, own_plan)
        # The stranger's first event is their own: the others' were skipped.
        ev = s.event()
        assert ev["data"]["resource_id"] == marker["id"], [h["id"] for h in hidden]
        assert ev["data"]["plan_id"] == own_plan["id"]
        # An admin sees no plan, so no plan's events either.
        assert admin_stream.next(("event",), timeout=1.5) is None
    finally:
        s.close()
        admin_stream.close()


def test_a_participant_from_another_organisation_follows_while_the_consent_covers_it(
        kipd, team, make_org, make_user):
    tov, plan = team
    job = make_org(sector="municipality_jobcenter")
    caseworker = make_user(job, ["caseworker"])
    r = tov.post(f"/v1/plans/{plan['id']}/consent",
                 json={"kip_consent": True, "form": "written", "given_at": "2025-03-01T12:00:00+01:00",
                       "contact_organisation_ids": [job["id"]]})
    assert r.status_code == 201, r.text
    _join(tov, plan, caseworker)
    s = _opened(Stream(kipd.url, caseworker.token))
    try:
        a = _action(tov, plan)
        s.events_until(_is_assigned(a))
        r = tov.post(f"/v1/plans/{plan['id']}/consent/withdraw", json={"note": "Borgeren trækker samtykket tilbage"})
        assert r.status_code in (200, 201), r.text
        hidden = _action(tov, plan)
        # Withdrawn: checked when the event is sent, so nothing more arrives.
        m = s.next(("event",), timeout=2)
        assert m is None or m[1]["data"]["resource_id"] != hidden["id"], m
    finally:
        s.close()


def test_a_heartbeat_comment_arrives(kipd, kipd_factory, team):
    tov, _ = team
    beating = kipd_factory(db=kipd.db, name="heartbeat", extra_args=["--events-heartbeat-s", "1"])
    s = _opened(Stream(beating.url, tov.token))
    try:
        t0 = time.monotonic()
        m = s.next(("comment",), timeout=5)
        assert m == ("comment", "heartbeat")
        m = s.next(("comment",), timeout=5)
        assert m == ("comment", "heartbeat")
        assert time.monotonic() - t0 < 4
    finally:
        s.close()


def test_a_revoked_token_ends_its_stream_at_the_next_heartbeat(kipd, kipd_factory, admin, team,
                                                               make_user):
    tov, _ = team
    mate = make_user(tov.org, ["coordinator"])
    beating = kipd_factory(db=kipd.db, name="heartbeat", extra_args=["--events-heartbeat-s", "1"])
    s = _opened(Stream(beating.url, mate.token))
    try:
        assert s.next(("comment",), timeout=5) == ("comment", "heartbeat")
        r = admin.delete(f"/v1/tokens/{mate.token_id}")
        assert r.status_code == 204, r.text
        # No event is made: the check at every second heartbeat ends the stream.
        assert s.ended(timeout=8)
    finally:
        s.close()


def test_head_answers_the_head_and_holds_nothing_open(kipd, team):
    tov, _ = team
    r = requests.head(f"{kipd.url}/v1/events", headers={"Authorization": f"Bearer {tov.token}"}, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")


def test_without_credentials_401(anon):
    r = anon.get("/v1/events")
    problem(r, 401)
    r = requests.get(f"{anon.base_url}/v1/events", headers={"Authorization": "Bearer not-a-token"},
                     timeout=10)
    assert r.status_code == 401
    assert r.headers["Content-Type"].startswith("application/problem+json")


def test_a_bad_position_is_a_problem(team, kipd):
    tov, _ = team
    r = tov.get("/v1/events", headers={"Last-Event-ID": "12abc"})
    problem(r, 400, field="Last-Event-ID")
    r = tov.get("/v1/events", params={"after": "-1"})
    problem(r, 422, field="after", code="invalid_format")


def test_the_stream_ends_when_its_token_is_revoked(kipd, admin, team, make_user):
    tov, plan = team
    mate = make_user(tov.org, ["coordinator"])
    s = _opened(Stream(kipd.url, mate.token))
    try:
        a = _action(tov, plan)
        s.events_until(_is_assigned(a))
        r = admin.delete(f"/v1/tokens/{mate.token_id}")
        assert r.status_code == 204, r.text
        _action(tov, plan)
        assert s.ended(), "the stream stayed open after its token was revoked"
    finally:
        s.close()


def test_the_stream_ends_when_the_session_signs_out(kipd, admin, make_org, make_user, make_plan):
    org = make_org()
    password = "Et langt og hemmeligt kodeord " + uuid.uuid4().hex[:6]
    nurse = make_user(org, ["coordinator"], password=password)
    plan = make_plan(nurse)
    web = requests.Session()
    kiptest.remember_secret(password)
    r = web.post(f"{kipd.url}/v1/session", json={"username": nurse.user["username"], "password": password},
                 timeout=30)
    assert r.status_code == 201, r.text
    csrf = r.json()["csrf_token"]
    s = _opened(Stream(kipd.url, cookies=web.cookies.get_dict()))
    try:
        a = _action(nurse, plan)
        s.events_until(_is_assigned(a))
        r = web.delete(f"{kipd.url}/v1/session", headers={"X-CSRF-Token": csrf}, timeout=10)
        assert r.status_code == 204, r.text
        _action(nurse, plan)
        assert s.ended(), "the stream stayed open after sign-out"
    finally:
        s.close()


def _listen_backends(pg, db):
    out = pg.psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}' "
                  f"AND application_name = 'kipd-events' ORDER BY pid")
    return [int(x) for x in out.split()] if out else []


def _own_kipd_with_a_stream(kipd_factory, name, extra_args=None):
    """A kipd of the test's own (its LISTEN connection is the test's to
    break), a tovholder with a plan there, and the tovholder's open stream."""
    k = kipd_factory(name=name, extra_args=extra_args) if extra_args else kipd_factory(name=name)
    admin = kiptest.Api(k.url, k.admin_token(), name="admin")
    tov = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
    plan = kiptest.create_plan(tov)
    return k, tov, plan, _opened(Stream(k.url, tov.token))


def test_a_terminated_listen_connection_reconnects_and_no_event_is_lost(kipd_factory, new_db, pg):
    k, tov, plan, s = _own_kipd_with_a_stream(kipd_factory, "listen")
    try:
        a = _action(tov, plan)
        last = s.events_until(_is_assigned(a))[-1]["id"]
        for ev_id, _ in _plan_events(pg, k.db, plan, last):   # the rest of a's events
            last = s.event()["id"]
            assert last == ev_id
        before = kiptest.wait_until(lambda: _listen_backends(pg, k.db), 5, what="the LISTEN backend")
        assert len(before) == 1
        pg.psql(f"SELECT pg_terminate_backend({before[0]})")
        # Changes while the listener is away: their NOTIFYs reach nobody.
        lost = [_action(tov, plan) for _ in range(3)]
        want = _plan_events(pg, k.db, plan, last)
        got = [s.event() for _ in want]
        assert [(e["id"], e["event"]) for e in got] == want
        assert {x["id"] for x in lost} <= {e["data"]["resource_id"] for e in got}
        after = kiptest.wait_until(lambda: [p for p in _listen_backends(pg, k.db) if p not in before], 10,
                                   what="a new LISTEN backend")
        assert len(after) == 1
        kiptest.wait_until(lambda: any("listener reconnected" in str(rec.get("msg", ""))
                                       for rec in k.log_records()), 10, what="the reconnect log line")
        metrics = requests.get(f"{k.url}/metrics", timeout=5).text
        assert "kipd_event_listener_up 1" in metrics
        assert "kipd_event_listener_reconnects_total 1" in metrics
        assert "kipd_event_streams_open 1" in metrics
        later = _action(tov, plan)
        assert s.events_until(_is_assigned(later))[0]["data"]["resource_id"] == later["id"]
    finally:
        s.close()


def test_while_the_listen_connection_is_down_a_change_through_this_kipd_reaches_its_streams(
        kipd_factory, pg):
    """kipd announces its own changes by a NOTIFY on its LISTEN connection.
    While that connection is down (and cannot come back: the database takes
    no new connections), a change made through the same kipd still reaches
    its streams at once, not at the heartbeat's fetch (30 s here)."""
    k, tov, plan, s = _own_kipd_with_a_stream(kipd_factory, "nolisten", ["--events-heartbeat-s", "20"])
    try:
        a = _action(tov, plan)
        s.events_until(_is_assigned(a))
        before = kiptest.wait_until(lambda: _listen_backends(pg, k.db), 5, what="the LISTEN backend")
        assert len(before) == 1
        pg.psql(f"ALTER DATABASE {k.db} WITH ALLOW_CONNECTIONS false")
        try:
            pg.psql(f"SELECT pg_terminate_backend({before[0]})")
            kiptest.wait_until(lambda: "kipd_event_listener_up 0" in requests.get(f"{k.url}/metrics", timeout=5).text,
                               5, what="the listener down")
            t0 = time.monotonic()
            b = _action(tov, plan)        # the pool's connections are open already
            s.events_until(_is_assigned(b), timeout=5)
            assert time.monotonic() - t0 < 5
            assert _listen_backends(pg, k.db) == []      # it came without the LISTEN connection
            assert "kipd_event_listener_up 0" in requests.get(f"{k.url}/metrics", timeout=5).text
        finally:
            pg.psql(f"ALTER DATABASE {k.db} WITH ALLOW_CONNECTIONS true")
        kiptest.wait_until(lambda: _listen_backends(pg, k.db), 15, what="the LISTEN backend back")
        c = _action(tov, plan)
        s.events_until(_is_assigned(c))
    finally:
        s.close()


def test_many_streams_while_other_requests_are_served(kipd, team):
    tov, plan = team
    streams = []
    try:
        for _ in range(40):
            streams.append(_opened(Stream(kipd.url, tov.token)))
        t0 = time.monotonic()
        for _ in range(20):
            r = tov.get("/v1/me")
            assert r.status_code == 200
            assert requests.get(f"{kipd.url}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - t0 < 5
        a = _action(tov, plan)
        for s in streams:
            assert s.event()["data"]["resource_id"] == a["id"]
    finally:
        for s in streams:
            s.close()


def test_open_streams_end_cleanly_when_kipd_stops(kipd_factory, kipd, team):
    tov, _ = team
    k = kipd_factory(db=kipd.db, name="stopping")
    streams = [_opened(Stream(k.url, tov.token)) for _ in range(3)]
    t0 = time.monotonic()
    k.stop()   # SIGTERM; exit code 0 asserted
    assert time.monotonic() - t0 < 5
    for s in streams:
        assert s.ended(timeout=5)
        s.close()


def test_opening_a_stream_is_audited_once(kipd, team, pg):
    tov, plan = team
    s = _opened(Stream(kipd.url, tov.token))
    try:
        for _ in range(2):
            a = _action(tov, plan)
            s.events_until(_is_assigned(a))
    finally:
        s.close()
    rows = pg.psql(f"SELECT action || '|' || coalesce(plan_id::text, '-') FROM kip.audit "
                   f"WHERE user_id = '{tov.user['id']}' AND action LIKE 'events.%'", db=kipd.db)
    assert rows.split() == ["events.stream|-"]


# ------------------------------------------------------------ through nginx

def _nginx_conf(prefix, kipd_port, listen_port):
    """docs/deploy.md's nginx configuration, as written, with only what a test
    must change: the upstream's port, plain HTTP on a free port instead of
    TLS on 443, the files in prefix, and no port-80 redirect server."""
    text = (kiptest.ROOT / "docs" / "deploy.md").read_text()
    block = text.split("```nginx\n", 1)[1].split("```", 1)[0]
    assert "location = /v1/events" in block, "docs/deploy.md has no location for the event stream"
    block = block.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{kipd_port};")
    block = block.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{listen_port};")
    block = "\n".join(line for line in block.splitlines() if not line.strip().startswith("ssl_"))
    block = block.replace("/var/log/nginx/", f"{prefix}/")
    second = block.rindex("server {")
    assert "listen 80;" in block[second:]
    block = block[:second]
    return f"""
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
{block}
}}
"""


@pytest.fixture
def nginx(kipd, tmp_path):
    binary = "/usr/sbin/nginx"
    assert kiptest.Path(binary).exists(), "nginx is missing: scripts/deps.sh installs nginx-light"
    prefix = tmp_path / "nginx"
    (prefix / "tmp").mkdir(parents=True)
    prefix.chmod(0o777)
    (prefix / "tmp").chmod(0o777)
    port = kiptest.free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(_nginx_conf(prefix, kipd.port, port))
    proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        kiptest.wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/v1/openapi.yaml", timeout=2).ok,
                           10, what="nginx in front of kipd")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_through_nginx_as_deploy_md_configures_it(nginx, kipd, team):
    tov, plan = team
    s = _opened(Stream(nginx, tov.token), proxied=True)   # the first bytes pass at once
    try:
        t0 = time.monotonic()
        a = _action(tov, plan)
        ev = s.events_until(_is_assigned(a), timeout=5)[-1]
        _envelope_ok(ev)
        assert time.monotonic() - t0 < 3
        # And resuming through the proxy.
        s2 = _opened(Stream(nginx, tov.token, headers={"Last-Event-ID": str(int(ev["id"]) - 1)}),
                     proxied=True)
        try:
            assert s2.event(timeout=5)["id"] == ev["id"]
        finally:
            s2.close()
    finally:
        s.close()


def test_an_event_that_commits_late_is_sent_first_never_skipped(kipd, team, pg):
    """A transaction that wrote an event (a lower id) and is still open holds
    back the events committed after it; when it commits, the stream gets its
    event and then the later ones, in the outbox's order (kip.events_after),
    so a client resuming from the last id it got misses nothing."""
    from test_outbox import Psql
    tov, plan = team
    s = _opened(Stream(kipd.url, tov.token))
    slow = Psql(pg, kipd.db)
    try:
        slow.run("BEGIN;")
        (late,) = slow.run(f"SELECT kip.emit('plan.changed', '{plan['id']}', '{plan['id']}', "
                           "'{\"status\": \"active\", \"fields\": []}');")
        action = _action(tov, plan)                       # committed, with higher ids
        with pytest.raises(AssertionError):
            s.event(timeout=1.5)                          # held behind the open transaction
        slow.run("COMMIT;")
        first = s.event()
        assert first["id"] == late and first["event"] == "plan.changed"
        rest = s.events_until(_is_assigned(action))
        assert all(int(e["id"]) > int(late) for e in rest)
    finally:
        slow.close()
        s.close()
