"""HTTP/1.1 behaviour, on raw sockets where it matters."""

import json
import socket
import time

import pytest

import kiptest
from kiptest import UUID_RE, RawHttp, check_raw, problem


def test_keep_alive_two_requests_on_one_connection(kipd, coordinator):
    with RawHttp(kipd.port) as raw:
        r1 = raw.request("GET", "/healthz", {"X-Request-Id": "ka-1"})
        assert r1.status == 200 and r1.header("X-Request-Id") == "ka-1"
        assert (r1.header("Connection") or "").lower() != "close"
        r2 = raw.request("GET", "/v1/me", {"X-Request-Id": "ka-2",
                                           "Authorization": f"Bearer {coordinator.token}"})
        assert r2.status == 200 and r2.header("X-Request-Id") == "ka-2"
        assert r2.json()["id"] == coordinator.user["id"]
        check_raw(r2, "GET", "/v1/me")
        r3 = raw.request("GET", "/v1/nope", {"X-Request-Id": "ka-3"})
        assert r3.status == 404                 # an error does not end the connection
        r4 = raw.request("GET", "/healthz", {"X-Request-Id": "ka-4"})
        assert r4.status == 200


def test_pipelined_requests_are_answered_in_order(kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    auth = {"Authorization": f"Bearer {coordinator.token}"}
    # A slow-ish database request first, then fast ones: the answers must
    # still come back in request order.
    data = (kiptest.build_request("GET", f"/v1/plans/{plan['id']}", dict(auth, **{"X-Request-Id": "pipe-1"}))
            + kiptest.build_request("GET", "/healthz", {"X-Request-Id": "pipe-2"})
            + kiptest.build_request("GET", "/v1/nope", {"X-Request-Id": "pipe-3"})
            + kiptest.build_request("GET", "/healthz", {"X-Request-Id": "pipe-4"}))
    with RawHttp(kipd.port) as raw:
        raw.send(data)
        answers = [raw.read_response() for _ in range(4)]
    assert [a.header("X-Request-Id") for a in answers] == ["pipe-1", "pipe-2", "pipe-3", "pipe-4"]
    assert [a.status for a in answers] == [200, 200, 404, 200]
    assert answers[0].json()["id"] == plan["id"]


def test_chunked_request_body(kipd, coordinator):
    body = json.dumps(kiptest.plan_body(name="Chunk Ågesen")).encode()
    with RawHttp(kipd.port) as raw:
        resp = raw.request("POST", "/v1/plans", {"Authorization": f"Bearer {coordinator.token}",
                                                 "Content-Type": "application/json"}, body, chunked=True)
    assert resp.status == 201, resp
    check_raw(resp, "POST", "/v1/plans")
    assert resp.json()["citizen"]["name"] == "Chunk Ågesen"


def test_http_1_0_request_is_answered_and_closed(kipd):
    with RawHttp(kipd.port) as raw:
        raw.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        resp = raw.read_response()
        assert resp.status == 200
        assert raw.wait_closed(5) is not None, "HTTP/1.0 without keep-alive must be closed"


def test_connection_close_is_honoured(kipd):
    with RawHttp(kipd.port) as raw:
        resp = raw.request("GET", "/healthz", {"Connection": "close"})
        assert resp.status == 200
        assert raw.wait_closed(5) is not None


def test_garbage_request_gets_400_and_close(kipd, anon):
    with RawHttp(kipd.port) as raw:
        raw.send(b"THIS IS NOT HTTP\r\n\r\n")
        try:
            resp = raw.read_response()
            assert resp.status == 400, resp
        except (EOFError, ConnectionResetError):
            pass                                # closing at once is acceptable
        assert raw.wait_closed(5) is not None
    assert anon.get("/healthz").status_code == 200


def test_unknown_path_is_404_problem(anon, coordinator):
    for client in (anon, coordinator):
        problem(client.get("/v1/nothing-here"), 404, type_suffix="not-found")
        problem(client.get("/v1"), 404)   # outside /v1 the web UI answers (test_web.py)
        problem(client.post("/v1/nothing", json={}), 404)


@pytest.mark.parametrize("method,path,allowed", [
    ("PUT", "/v1/plans", {"GET", "POST"}),
    ("DELETE", "/v1/plans/6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11", {"GET", "PATCH"}),
    ("GET", "/v1/plans/6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11/close", {"POST"}),
    ("POST", "/healthz", {"GET"}),
])
def test_wrong_method_is_405_with_allow(coordinator, method, path, allowed):
    r = coordinator.request(method, path, json={} if method in ("POST", "PUT") else None)
    problem(r, 405, type_suffix="method-not-allowed")
    allow = {m.strip().upper() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow, f"Allow: {r.headers.get('Allow')!r}"
    assert method not in allow


def test_request_id_is_echoed_when_sane(anon):
    r = anon.get("/healthz", headers={"X-Request-Id": "Abc.123_x-y"})
    assert r.headers["X-Request-Id"] == "Abc.123_x-y"
    for insane in ("has space", "x" * 65, "semi;colon", "æøå"):
        r = anon.get("/healthz", headers={"X-Request-Id": insane.encode("utf-8")})
        rid = r.headers["X-Request-Id"]
        assert UUID_RE.match(rid), f"{insane!r} -> {rid!r}"
    r1, r2 = anon.get("/healthz"), anon.get("/healthz")
    assert UUID_RE.match(r1.headers["X-Request-Id"])
    assert r1.headers["X-Request-Id"] != r2.headers["X-Request-Id"]


def test_problem_carries_the_request_id(anon):
    r = anon.get("/v1/me", headers={"X-Request-Id": "trace-me-401"})
    body = problem(r, 401)
    assert body["request_id"] == "trace-me-401"


# ----------------------------------------------------------------- slowloris

@pytest.fixture(scope="module")
def quick_kipd(pg, new_db, workroot):
    """A kipd whose read timeout is 1 s."""
    k = kiptest.Kipd.external(kiptest.make_workdir(workroot, kiptest.unique("readtimeout-")),
                              pg.url(new_db()), ["--http-read-timeout-ms", "1000"], name="readtimeout")
    with kiptest.running_kipd(k):
        yield k


def test_slowloris_partial_header_is_closed(quick_kipd):
    with RawHttp(quick_kipd.port) as raw:
        t0 = time.monotonic()
        raw.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        closed_after = raw.wait_closed(6)
        assert closed_after is not None, "kipd kept a half-sent request open for 6 s (read timeout 1 s)"
        assert closed_after >= 0.5, f"closed after {closed_after:.2f}s, before the read timeout"
        elapsed = time.monotonic() - t0
        assert elapsed < 4, elapsed
    # kipd still serves
    assert kiptest.Api(quick_kipd.url).get("/healthz").status_code == 200


def test_slowloris_trickling_header_is_closed(quick_kipd):
    """Bytes that keep arriving must not extend the deadline."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    with RawHttp(quick_kipd.port) as raw:
        t0 = time.monotonic()
        closed = False
        for byte in request:
            try:
                raw.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if raw.wait_closed(0.2) is not None:
                closed = True
                break
            if time.monotonic() - t0 > 6:
                break
        elapsed = time.monotonic() - t0
    assert closed, f"kipd kept a trickling request open for {elapsed:.1f}s (read timeout 1 s)"
    assert elapsed < 4, elapsed


def test_slow_body_is_closed(quick_kipd):
    with RawHttp(quick_kipd.port) as raw:
        raw.send(b"POST /v1/plans HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"citizen\":")
        assert raw.wait_closed(6) is not None, "kipd waited forever for a body"


def test_idle_keepalive_connection_survives_read_timeout(quick_kipd):
    """The read timeout is for requests in progress, not idle keep-alive."""
    with RawHttp(quick_kipd.port) as raw:
        assert raw.request("GET", "/healthz").status == 200
        assert raw.wait_closed(1.8) is None, "an idle keep-alive connection was closed by the read timeout"
        assert raw.request("GET", "/healthz").status == 200


def test_many_connections_at_once(kipd):
    socks = []
    try:
        for _ in range(100):
            socks.append(socket.create_connection(("127.0.0.1", kipd.port), timeout=5))
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in socks:
            raw = RawHttp(sock=s, timeout=10)
            assert raw.read_response().status == 200
    finally:
        for s in socks:
            s.close()


def _security_headers_of(resp):
    for name, want in kiptest.SECURITY_HEADERS.items():
        got = resp.header(name)
        assert got is not None, f"{resp.status}: no {name} header"
        if want is not None:
            assert got == want, f"{resp.status}: {name}: {got!r}"
    assert "default-src 'none'" in resp.header("Content-Security-Policy")


def test_security_headers_on_answers_from_the_http_layer(kipd):
    """The HTTP layer's own answers (before any route runs) carry the same
    security headers as the API's: 413, 404 and 400 here."""
    with RawHttp(kipd.port) as raw:
        resp = raw.request("POST", "/v1/plans", {"Content-Type": "application/json",
                                                 "Authorization": "Bearer x"},
                           body=b"{" + b" " * (1024 * 1024 + 10) + b"}")
        assert resp.status == 413, resp
        _security_headers_of(resp)
    with RawHttp(kipd.port) as raw:
        resp = raw.request("GET", "/v1/no/such/thing")  # outside /v1 the web UI answers
        assert resp.status == 404
        _security_headers_of(resp)
        resp = raw.request("GET", "/healthz")
        assert resp.status == 200
        _security_headers_of(resp)
    with RawHttp(kipd.port) as raw:
        raw.send(b"THIS IS NOT HTTP\r\n\r\n")
        try:
            resp = raw.read_response()
        except (EOFError, ConnectionResetError):
            resp = None
        if resp is not None:
            _security_headers_of(resp)
