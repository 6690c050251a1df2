"""Hostile input, black-box against a running kipd (issue 16), with a
concurrent probe that must be served throughout and a check that nothing was
written:

  - invalid UTF-8 and NUL bytes in every string field of every write body;
  - SQL-injection strings in every string field and in every list filter;
  - JSON nested 100,000 levels deep, huge numbers, duplicate keys;
  - method overrides (headers and query) that must change nothing;
  - wrong content types;
  - 10,000 concurrent connections from one address (past its cap: 503 and
    a close, never a reset), while another address is served.

Raw HTTP cases (smuggling pairs, obs-fold, ...) are in test_http_strict.py,
path traversal in the static routes in test_web.py, oversized heads, URLs
and bodies in test_validation.py.
"""

import json
import resource
import socket
import time

import pytest

import kiptest
from kiptest import Api, RawHttp, Traffic, problem

TABLES = ("plans", "participants", "consents", "actions", "meetings", "meeting_outcomes")

INJECTIONS = [
    "'; DROP TABLE kip.plans; --",
    "' OR '1'='1",
    "Robert'); DELETE FROM kip.actions; --",
    "\\'; SELECT pg_sleep(5); --",
    "1; UPDATE kip.users SET roles = '{admin}'",
    "$$; DROP SCHEMA kip CASCADE; $$",
    "%' AND 1=0 UNION SELECT token_hash FROM kip.tokens --",
]


@pytest.fixture(scope="module")
def world(kipd, admin):
    hospital = kiptest.create_org(admin, "region_hospital")
    nurse = kiptest.create_user(admin, hospital, ["coordinator"])
    plan = kiptest.create_plan(nurse)
    return {"nurse": nurse, "plan": plan}


@pytest.fixture(scope="module")
def probe(kipd):
    """/healthz and a read of a plan, every 20 ms, for the whole module."""
    t = Traffic(lambda: Api(kipd.url, None, name="probe"), "GET", "/healthz", pause=0.02)
    t.start()
    yield t
    t.stop()
    t.assert_clean(allowed=(200,), max_duration=3.0)
    assert t.summary().get(200, 0) > 20


def _counts(pg, kipd):
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM kip.{t}" for t in TABLES)
    return dict(line.split("|") for line in pg.psql(sql, db=kipd.db).splitlines())


def _bodies(plan):
    """Every write body with its route: (name, method, path, body)."""
    return [
        ("plan", "POST", "/v1/plans", kiptest.plan_body(name="Hostile Hansen")),
        ("participant", "POST", f"/v1/plans/{plan['id']}/participants",
         {"kind": "professional", "role": "general_practitioner", "name": "Læge Hansen",
          "phone": "+45 11 22 33 44", "email": "laege@example.dk"}),
        ("action", "POST", f"/v1/plans/{plan['id']}/actions",
         {"title": "Søge boligstøtte", "area": "housing", "description": "Med hjælp fra SKP",
          "responsible_participant_id": plan["coordinator"]}),
        ("meeting", "POST", f"/v1/plans/{plan['id']}/meetings",
         {"starts_at": kiptest.iso(kiptest.cph(7, 10)), "purpose": "Koordinering",
          "location": {"kind": "hospital", "address": "Bispebjerg Bakke 23", "room": "Lokale 4"}}),
        ("plan-patch", "PATCH", f"/v1/plans/{plan['id']}", {"reason": "Ny begrundelse"}),
    ]


def _string_paths(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _string_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _string_paths(v, path + (i,))
    elif isinstance(obj, str):
        yield path


def _with(obj, path, value):
    obj = json.loads(json.dumps(obj))
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


def _send(client, method, path, raw, plan_version=None):
    headers = {"Content-Type": "application/json"}
    if method == "PATCH":
        headers["If-Match"] = f'"{plan_version}"'
    return client.request(method, path, data=raw, headers=headers, validate=False)


def _cases(world, mutate):
    for name, method, path, body in _bodies(world["plan"]):
        for sp in _string_paths(body):
            yield name, method, path, sp, mutate(body, sp)


def _marker_bytes(body, sp):
    """The body with the string at sp replaced by one holding an invalid
    UTF-8 sequence (a lone continuation byte, an overlong NUL, a surrogate)."""
    marker = "\u2603HOSTILE\u2603"
    text = json.dumps(_with(body, sp, marker), ensure_ascii=False).encode()
    return text.replace(marker.encode(), b"ab\x80c\xc0\x80\xed\xa0\x80d")


def test_invalid_utf8_in_every_string_field_is_400_and_writes_nothing(pg, kipd, world, probe):
    before = _counts(pg, kipd)
    nurse = world["nurse"]
    n = 0
    for name, method, path, sp, raw in _cases(world, _marker_bytes):
        r = _send(nurse, method, path, raw, plan_version=world["plan"]["version"])
        assert r.status_code == 400, f"{name} {sp}: {r.status_code} {r.text[:200]}"
        assert r.headers["Content-Type"].startswith("application/problem+json")
        n += 1
    assert n >= 15
    assert _counts(pg, kipd) == before


def test_nul_in_every_string_field_is_refused_and_writes_nothing(pg, kipd, world, probe):
    before = _counts(pg, kipd)
    nurse = world["nurse"]
    for name, method, path, sp, raw in _cases(
            world, lambda body, sp: json.dumps(_with(body, sp, "før\u0000efter")).encode()):
        r = _send(nurse, method, path, raw, plan_version=world["plan"]["version"])
        assert r.status_code in (400, 422), f"{name} {sp}: {r.status_code} {r.text[:200]}"
        body = r.json()
        assert body.get("errors"), body
    assert _counts(pg, kipd) == before


def test_sql_injection_in_every_string_field_is_data_never_sql(pg, kipd, world, probe):
    nurse = world["nurse"]
    stored = []
    for payload in INJECTIONS:
        for name, method, path, sp, raw in _cases(
                world, lambda body, sp, payload=payload: json.dumps(_with(body, sp, payload)).encode()):
            version = nurse.get(f"/v1/plans/{world['plan']['id']}", validate=False).json()["version"]
            r = _send(nurse, method, path, raw, plan_version=version)
            # Either a validation answer (an enum, a CPR, a phone, a date, an e-mail), or
            # stored exactly as sent.
            assert r.status_code in (200, 201, 400, 422), f"{name} {sp} {payload!r}: {r.status_code} {r.text[:200]}"
            if r.status_code in (200, 201):
                stored.append((r.json(), sp, payload))
    assert stored, "no injection string was accepted as text anywhere"
    for doc, sp, payload in stored:
        if sp[0] == "citizen" and sp[-1] == "name":
            assert doc["citizen"]["name"] == payload
    # The schema and its rows are intact, and the token table was not read out.
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'kip' AND tablename = 'plans'",
                   db=kipd.db) == "1"
    assert nurse.get(f"/v1/plans/{world['plan']['id']}").status_code == 200
    assert nurse.get("/v1/me").json()["roles"] == ["coordinator"]


def test_sql_injection_in_every_list_filter_is_refused_or_harmless(kipd, world, probe):
    nurse = world["nurse"]
    filters = {
        "/v1/plans": ["q", "status", "cursor", "limit", "coordinator", "organisation_id"],
        "/v1/me/actions": ["status", "overdue", "cursor", "limit", "due_before"],
        "/v1/me/meetings": ["from", "to", "cursor", "limit"],
        f"/v1/plans/{world['plan']['id']}/history": ["cursor", "limit"],
    }
    for path, params in filters.items():
        for param in params:
            for payload in INJECTIONS:
                r = nurse.get(path, params={param: payload}, validate=False)
                assert r.status_code in (200, 400, 422), f"{path}?{param}={payload!r}: {r.status_code} {r.text[:200]}"
                if r.status_code == 200:
                    assert r.json()["items"] == [] or param in ("q",), f"{path}?{param}={payload!r} matched rows"


def test_deep_nesting_huge_numbers_and_duplicate_keys(pg, kipd, world, probe):
    nurse = world["nurse"]
    before = _counts(pg, kipd)
    for raw in (b"[" * 100000 + b"]" * 100000,
                b'{"citizen": ' + b'{"a": ' * 100000 + b"1" + b"}" * 100000 + b"}",
                b'{"reason": "x", "citizen": {"name": "A", "cpr": "0101901234", "name": "B"}}',
                b'{"reason": "x", "reason": "y", "citizen": {"name": "A", "cpr": "0101901234"}}'):
        t = time.monotonic()
        r = _send(nurse, "POST", "/v1/plans", raw)
        assert r.status_code == 400, (raw[:40], r.status_code, r.text[:200])
        assert time.monotonic() - t < 5
    plan = world["plan"]
    for number in ("1e400", "-1e400", "123456789012345678901234567890", "1.0000000000000000000000001",
                   "9223372036854775808", "-0", "NaN", "Infinity"):
        raw = ('{"title": "Tal", "area": "housing", "responsible_participant_id": "%s", '
               '"due_date": %s}' % (plan["coordinator"], number)).encode()
        r = _send(nurse, "POST", f"/v1/plans/{plan['id']}/actions", raw)
        assert r.status_code in (400, 422), (number, r.status_code, r.text[:200])
        for param in ("limit",):
            r = nurse.get("/v1/plans", params={param: number}, validate=False)
            assert r.status_code in (400, 422), (param, number, r.status_code)
    assert _counts(pg, kipd) == before


def test_method_overrides_change_nothing(pg, kipd, world, probe):
    nurse = world["nurse"]
    plan = world["plan"]
    before = _counts(pg, kipd)
    doc = nurse.get(f"/v1/plans/{plan['id']}").json()
    for header in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
        for verb in ("DELETE", "PATCH", "PUT"):
            r = nurse.get(f"/v1/plans/{plan['id']}", headers={header: verb}, validate=False)
            assert r.status_code == 200 and r.json() == doc, (header, verb, r.status_code)
            r = nurse.post(f"/v1/plans/{plan['id']}/close", headers={header: "GET"}, json={}, validate=False)
            assert r.status_code in (400, 403, 409, 422, 428), (header, r.status_code)
    r = nurse.get(f"/v1/plans/{plan['id']}", params={"_method": "DELETE"}, validate=False)
    assert r.status_code in (200, 400)
    assert nurse.get(f"/v1/plans/{plan['id']}").json()["status"] == doc["status"]
    assert _counts(pg, kipd) == before


def test_wrong_content_types_are_415(pg, kipd, world, probe):
    nurse = world["nurse"]
    before = _counts(pg, kipd)
    body = json.dumps(kiptest.plan_body()).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/xml", "application/json-patch+json", "text/json", "application/jsonx"):
        r = nurse.post("/v1/plans", data=body, headers={"Content-Type": ctype}, validate=False)
        problem(r, 415)
    assert _counts(pg, kipd) == before


def test_ten_thousand_connections_from_one_address(kipd, probe):
    """One address opens 10,000 connections. Those past its cap get 503 and a
    close (never a reset, never a hang); a client on another address is
    served all along."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 10000 + 512
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    socks, refused_connect = [], 0
    try:
        for _ in range(10000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(True)
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", kipd.port))
            except OSError:
                refused_connect += 1
                s.close()
                continue
            socks.append(s)
        assert refused_connect == 0, f"{refused_connect} connections were not even accepted"
        # Another address is served while the 10,000 are open.
        other = RawHttp(sock=socket.create_connection(("127.0.0.1", kipd.port), timeout=5,
                                                      source_address=("127.0.0.2", 0)))
        with other:
            assert other.request("GET", "/healthz").status == 200
        # Each of the 10,000 is a live connection, or was answered 503 and
        # closed, or (waiting past the read deadline without sending a byte,
        # or past the refusals kipd answers at once) closed: never reset,
        # never another answer.
        seen = {"live": 0, "503": 0, "closed": 0}
        for s in socks:
            s.settimeout(0.01)
            try:
                data = s.recv(4096)
            except socket.timeout:
                seen["live"] += 1
                continue
            if data == b"":
                seen["closed"] += 1
            else:
                assert data.startswith(b"HTTP/1.1 503"), data[:80]
                seen["503"] += 1
        assert seen["503"] > 0 and sum(seen.values()) == 10000, seen
    finally:
        for s in socks:
            s.close()
    # And everything is released: a fresh client is served at once.
    kiptest.wait_until(lambda: Api(kipd.url).get("/healthz").status_code == 200, 10, what="served again")
