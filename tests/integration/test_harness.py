"""Self-tests of the harness: run with `pytest tests/integration -k harness`.

They need PostgreSQL but not kipd: a fake daemon stands in for it, and a
synthetic OpenAPI document exercises the contract checker.
"""

import json
import os
import socket
import textwrap

import pytest
import yaml

import kiptest
from kiptest import Api, Kipd, PgCluster, RawHttp
from openapi_check import ContractError, OpenApi


# ---------------------------------------------------------------------------
# PostgreSQL

def test_harness_pg_session_cluster(pg, new_db):
    assert pg.psql("select 1") == "1"
    assert pg.psql("show server_version_num").startswith("15")
    assert pg.psql("show listen_addresses") == ""
    assert pg.psql("show unix_socket_directories") == str(pg.sockdir)
    db = new_db()
    pg.psql("create table t (x text); insert into t values ('Ærø')", db=db)
    assert pg.psql("select upper(x) from t", db=db) == "ÆRØ"
    assert pg.psql("select current_user", db=db) == "postgres"
    if kiptest.IS_ROOT:
        assert os.stat(pg.datadir).st_uid == kiptest._pg_user_ids()[0]


def test_harness_private_cluster_stop_immediate_and_restart(workroot):
    c = PgCluster(workroot / kiptest.unique("pgtest-")).init().start()
    try:
        pid = c.postmaster_pid()
        assert pid and kiptest.pid_alive(pid)
        c.psql("create table survive (x int); insert into survive values (42)")
        c.stop("immediate")
        assert not c.running()
        kiptest.wait_until(lambda: not kiptest.pid_alive(pid), 10, what="postmaster exit")
        c.start()
        assert c.psql("select x from survive") == "42"
    finally:
        c.stop("fast", check=False)
    assert not c.running()


# ---------------------------------------------------------------------------
# the contract checker, on a synthetic document

SYNTHETIC_30 = yaml.safe_load(textwrap.dedent("""
    openapi: 3.0.3
    info: {title: t, version: "1"}
    paths:
      /healthz:
        get:
          responses:
            "200":
              description: ok
              content:
                application/json:
                  schema: {type: object, required: [status], properties: {status: {type: string}}}
      /v1/plans/{id}:
        get:
          responses:
            200:
              description: plan
              content:
                application/json:
                  schema: {$ref: '#/components/schemas/Plan'}
            "404": {$ref: '#/components/responses/Problem'}
            4XX: {$ref: '#/components/responses/Problem'}
      /v1/plans/{id}/participants/{pid}:
        delete:
          responses:
            "200":
              description: participant
              content:
                application/json:
                  schema: {type: object, required: [id], properties: {id: {type: string, format: uuid}}}
      /v1/plans/{id}/consent/withdraw:
        post:
          responses:
            "204": {description: none}
    components:
      responses:
        Problem:
          description: problem
          content:
            application/problem+json:
              schema: {$ref: '#/components/schemas/Problem'}
      schemas:
        Problem:
          type: object
          required: [type, title, status, errors]
          properties:
            type: {type: string}
            title: {type: string}
            status: {type: integer}
            errors:
              type: array
              items: {type: object, required: [field, message],
                      properties: {field: {type: string}, message: {type: string}}}
        Plan:
          type: object
          additionalProperties: false
          required: [id, version, closed_at, status]
          properties:
            id: {type: string, format: uuid}
            version: {type: integer, minimum: 1}
            closed_at: {type: string, format: date-time, nullable: true}
            status: {type: string, enum: [draft, active], nullable: false}
            score: {type: number, minimum: 0, exclusiveMinimum: true}
            coordinator: {allOf: [{$ref: '#/components/schemas/Id'}], nullable: true}
        Id: {type: string, format: uuid}
    """))

PLAN_OK = {"id": "6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11", "version": 1, "closed_at": None,
           "status": "draft", "coordinator": None}
PROBLEM_OK = {"type": "https://kipd.dk/problems/not-found", "title": "Not found", "status": 404,
              "errors": []}


def _check(contract, method, path, status, ctype, obj):
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    contract.check(method, path, status, ctype, body)


@pytest.mark.parametrize("version", ["3.0.3", "3.1.0"])
def test_harness_contract_checker_accepts_valid(version):
    spec = json.loads(json.dumps(SYNTHETIC_30))
    if version.startswith("3.1"):
        spec["openapi"] = version
        plan = spec["components"]["schemas"]["Plan"]["properties"]
        plan["closed_at"] = {"type": ["string", "null"], "format": "date-time"}
        plan["status"] = {"type": "string", "enum": ["draft", "active"]}
        plan["score"] = {"type": "number", "exclusiveMinimum": 0}
        plan["coordinator"] = {"anyOf": [{"$ref": "#/components/schemas/Id"}, {"type": "null"}]}
    c = OpenApi(spec=spec)
    _check(c, "GET", "/v1/plans/6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11", 200,
           "application/json; charset=utf-8", PLAN_OK)
    _check(c, "GET", "/v1/plans/x", 200, "application/json",
           dict(PLAN_OK, closed_at="2026-12-01T09:00:00+01:00", score=0.5,
                coordinator="6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11"))
    _check(c, "GET", "/v1/plans/x", 404, "application/problem+json", PROBLEM_OK)
    _check(c, "GET", "/v1/plans/x", 409, "application/problem+json", dict(PROBLEM_OK, status=409))
    _check(c, "DELETE", "/v1/plans/a/participants/b", 200, "application/json",
           {"id": "6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11"})
    _check(c, "POST", "/v1/plans/a/consent/withdraw", 204, None, b"")
    # Unknown path / unknown method: only a problem is acceptable.
    _check(c, "GET", "/nope", 404, "application/problem+json", PROBLEM_OK)
    _check(c, "PUT", "/v1/plans/a", 405, "application/problem+json", dict(PROBLEM_OK, status=405))


@pytest.mark.parametrize("case", [
    ("bad uuid", 200, "application/json", dict(PLAN_OK, id="nope")),
    ("bad date-time", 200, "application/json", dict(PLAN_OK, closed_at="2026-12-01 9:00")),
    ("date-time without offset", 200, "application/json", dict(PLAN_OK, closed_at="2026-12-01T09:00:00")),
    ("enum", 200, "application/json", dict(PLAN_OK, status="closed")),
    ("null not allowed", 200, "application/json", dict(PLAN_OK, status=None)),
    ("exclusiveMinimum", 200, "application/json", dict(PLAN_OK, score=0)),
    ("extra property", 200, "application/json", dict(PLAN_OK, extra=1)),
    ("missing required", 200, "application/json", {"id": PLAN_OK["id"]}),
    ("undocumented status", 500, "application/problem+json", dict(PROBLEM_OK, status=500)),
    ("wrong media type", 200, "text/html", b"<html></html>"),
    ("problem shape", 404, "application/problem+json", {"status": 404}),
    ("not json", 200, "application/json", b"{nope"),
    ("empty body", 200, "application/json", b""),
])
def test_harness_contract_checker_rejects(case):
    _, status, ctype, body = case
    c = OpenApi(spec=SYNTHETIC_30)
    with pytest.raises(ContractError):
        _check(c, "GET", "/v1/plans/6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11", status, ctype, body)


def test_harness_contract_checker_rejects_unknown_things():
    c = OpenApi(spec=SYNTHETIC_30)
    with pytest.raises(ContractError):   # a 200 on a path the contract lacks
        _check(c, "GET", "/v1/secret", 200, "application/json", {})
    with pytest.raises(ContractError):   # a body where the contract has none
        _check(c, "POST", "/v1/plans/a/consent/withdraw", 204, "application/json", {})
    with pytest.raises(ContractError):   # a problem that breaks the Problem schema
        _check(c, "GET", "/nope", 404, "application/problem+json", {"status": 404})


def test_harness_real_contract_loads():
    """api/openapi.yaml parses, every $ref resolves, and the routes the
    suite uses are in it."""
    c = OpenApi(kiptest.OPENAPI_PATH).load()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                c.pointer(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(c.spec)
    pid = "6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11"
    for method, path in [
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
        ("POST", "/v1/organisations"), ("GET", "/v1/organisations"), ("POST", "/v1/users"),
        ("PATCH", f"/v1/users/{pid}"), ("POST", f"/v1/users/{pid}/tokens"),
        ("GET", f"/v1/users/{pid}/tokens"), ("DELETE", f"/v1/tokens/{pid}"), ("GET", "/v1/me"),
        ("POST", "/v1/plans"), ("GET", "/v1/plans"), ("GET", f"/v1/plans/{pid}"),
        ("PATCH", f"/v1/plans/{pid}"), ("POST", f"/v1/plans/{pid}/close"),
        ("GET", f"/v1/plans/{pid}/history"), ("POST", f"/v1/plans/{pid}/participants"),
        ("GET", f"/v1/plans/{pid}/participants"), ("GET", f"/v1/plans/{pid}/participants/{pid}"),
        ("PATCH", f"/v1/plans/{pid}/participants/{pid}"),
        ("DELETE", f"/v1/plans/{pid}/participants/{pid}"),
        ("POST", f"/v1/plans/{pid}/consent"), ("GET", f"/v1/plans/{pid}/consent"),
        ("POST", f"/v1/plans/{pid}/consent/withdraw"),
    ]:
        template, item = c.match_path(path)
        assert template is not None, f"{path} is not in the contract"
        assert method.lower() in item, f"{method} {template} is not in the contract"
    assert c.problem_schema() is not None, "the contract has no Problem schema"
    # A synthetic problem for a documented 404 passes, a broken one does not.
    problem = {"type": "https://kipd.dk/problems/not-found", "title": "Not found", "status": 404,
               "detail": "no such plan", "errors": [], "request_id": "abc"}
    c.check("GET", f"/v1/plans/{pid}", 404, "application/problem+json", json.dumps(problem).encode())
    with pytest.raises(ContractError):
        c.check("GET", f"/v1/plans/{pid}", 404, "application/problem+json", b'{"status": "404"}')


# ---------------------------------------------------------------------------
# the process wrapper and client, against a fake daemon

FAKE_KIPD = r'''#!/usr/bin/python3
import json, signal, sys, threading, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
args = sys.argv[1:]
if "--exit" in args:
    sys.stderr.write(json.dumps({"ts": "x", "level": "error", "msg": "refusing"}) + "\n")
    sys.exit(int(args[args.index("--exit") + 1]))
host, port = args[args.index("--listen") + 1].rsplit(":", 1)
def log(**kw):
    sys.stderr.write(json.dumps(dict({"ts": "t", "level": "info"}, **kw)) + "\n"); sys.stderr.flush()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        rid = self.headers.get("X-Request-Id") or str(uuid.uuid4())
        if self.path == "/healthz":
            body, status, ctype = b'{"status":"ok"}', 200, "application/json"
        else:
            body = json.dumps({"type": "https://kipd.dk/problems/not-found", "title": "Not found",
                               "status": 404, "errors": [], "request_id": rid}).encode()
            status, ctype = 404, "application/problem+json"
        self.send_response(status)
        if "/no-rid" not in self.path:
            self.send_header("X-Request-Id", rid)
        for name, value in (("Content-Security-Policy", "default-src 'none'"),
                            ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
                            ("Cache-Control", "no-store"), ("X-Frame-Options", "DENY")):
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log(msg="request", request_id=rid, method="GET", route=self.path, status=status, duration_ms=0.1)
    def log_message(self, *a): pass
srv = ThreadingHTTPServer((host, int(port)), H)
def term(*_):
    threading.Thread(target=srv.shutdown).start()
signal.signal(signal.SIGTERM, term)
log(msg="listening", url=f"http://{host}:{port}")
srv.serve_forever()
sys.exit(0)
'''


@pytest.fixture
def fake_kipd(workroot, monkeypatch):
    d = kiptest.make_workdir(workroot, kiptest.unique("fake-"))
    exe = d / "fake-kipd"
    exe.write_text(FAKE_KIPD)
    exe.chmod(0o755)
    monkeypatch.setattr(kiptest, "CONTRACT", OpenApi(spec=SYNTHETIC_30))
    return d, exe


def test_harness_kipd_wrapper_lifecycle(fake_kipd):
    d, exe = fake_kipd
    k = Kipd(d, [], binary=exe, name="fake")
    try:
        k.start()
        pid1 = k.pid
        api = Api(k.url, None)
        r = api.get("/healthz", headers={"X-Request-Id": "harness-1"})
        assert r.status_code == 200 and r.headers["X-Request-Id"] == "harness-1"
        assert api.get("/nope").status_code == 404
        with pytest.raises(ContractError):
            api.get("/no-rid")           # a response without X-Request-Id fails
        recs = k.log_records()
        assert any(r.get("msg") == "listening" and str(k.port) in r.get("url", "") for r in recs)
        kiptest.wait_until(lambda: any(r.get("request_id") == "harness-1" for r in k.log_records()),
                           5, what="request log line")
        k.kill()
        assert not k.alive()
        k.start()
        assert k.pid != pid1 and len(k.runs) == 2
        assert k.stop() == 0
        assert any("listening" in line for line in k.stderr_lines(all_runs=False))
    finally:
        k.cleanup()


def test_harness_kipd_wrapper_reports_early_exit(fake_kipd):
    d, exe = fake_kipd
    k = Kipd(d, ["--exit", "3"], binary=exe, name="fake", listen=False)
    with pytest.raises(kiptest.KipdDied, match="exited with 3"):
        k.start()
    k.cleanup()


def test_harness_secret_scan(fake_kipd):
    d, exe = fake_kipd
    k = Kipd(d, [], binary=exe, name="fake")
    try:
        k.start()
        Api(k.url, None).get("/healthz", headers={"X-Request-Id": "0101901234"})
        kiptest.wait_until(lambda: "0101901234" in k.output_text(), 5, what="log line")
        k.stop()
        with pytest.raises(AssertionError, match="logged secrets"):
            k.assert_no_secrets_logged(extra=["0101901234"])
    finally:
        k.cleanup()


# ---------------------------------------------------------------------------
# raw HTTP parsing

def test_harness_raw_http_parses_pipelined_and_chunked():
    a, b = socket.socketpair()
    try:
        b.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Request-Id: one\r\n\r\nhi"
                  b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-Request-Id: two\r\n\r\n"
                  b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                  b"HTTP/1.1 204 No Content\r\nX-Request-Id: three\r\n\r\n")
        raw = RawHttp(sock=a, timeout=2)
        r1, r2, r3 = raw.read_response(), raw.read_response(), raw.read_response()
        assert (r1.status, r1.body, r1.header("x-request-id")) == (200, b"hi", "one")
        assert (r2.status, r2.body, r2.header("X-Request-Id")) == (201, b"abcde", "two")
        assert (r3.status, r3.body) == (204, b"")
        b.close()
        assert raw.wait_closed(2) is not None
    finally:
        a.close()
        b.close()


def test_harness_build_request_chunked():
    req = kiptest.build_request("POST", "/v1/plans", {"Content-Type": "application/json"},
                                b'{"a": "0123456789"}', chunked=True)
    head, body = req.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert body.endswith(b"0\r\n\r\n")


def test_harness_cpr_generator():
    seen = {kiptest.new_cpr() for _ in range(500)}
    assert len(seen) == 500
    for cpr in seen:
        dd, mm = int(cpr[:2]), int(cpr[2:4])
        assert 1 <= dd <= 28 and 1 <= mm <= 12 and cpr[6] == "-" and cpr[7] in "0123"
