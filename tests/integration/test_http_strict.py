"""HTTP parsing as strict as RFC 9112 (issue #16), on raw sockets.

Each hostile head is a place where kipd and a proxy in front of it could
read one request two ways. Each must get a 400 (505 for a foreign major
version) as problem+json naming the header, and a closed connection, while
a concurrent probe keeps being served. The smuggling pairs aimed at a write
route must write nothing.
"""

import json

import pytest

import kiptest
from kiptest import Api, RawHttp, Traffic

CASES = [
    # (id, raw request, status, problem field)
    ("no-version", b"GET /healthz\r\n\r\n", 400, "request"),
    ("no-version-with-host", b"GET /healthz\r\nHost: 127.0.0.1\r\n\r\n", 400, "request"),
    ("no-host", b"GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "host"),
    ("duplicate-host", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host"),
    ("space-before-colon", b"GET /healthz HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", 400, "request"),
    ("space-before-colon-authorization",
     b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer nope\r\n\r\n", 400, "request"),
    ("obs-fold", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, "headers"),
    ("obs-fold-in-transfer-encoding",
     b"POST /v1/plans HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
     400, "headers"),
    ("two-authorization",
     b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
     400, "authorization"),
    ("two-cookie", b"GET /v1/me HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n", 400, "cookie"),
    ("two-transfer-encoding",
     b"POST /v1/plans HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n", 400, "request"),
    ("content-length-and-transfer-encoding",
     b"POST /v1/plans HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400, "request"),
    ("doubled-content-length",
     b"POST /v1/plans HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400, "request"),
    ("http-2-request-line", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "request"),
]


def _hostile(port, data):
    with RawHttp(port) as raw:
        raw.send(data)
        resp = raw.read_response()
        closed = raw.wait_closed(5)
    return resp, closed


@pytest.mark.parametrize("name,data,status,field", CASES, ids=[c[0] for c in CASES])
def test_strict_head_is_refused_while_a_probe_is_served(kipd, name, data, status, field):
    probe = Traffic(lambda: Api(kipd.url, None, name="probe"), "GET", "/healthz", pause=0.01)
    probe.start()
    try:
        with RawHttp(kipd.port) as keep:   # a keep-alive neighbour, opened before
            assert keep.request("GET", "/healthz").status == 200
            for _ in range(3):
                resp, closed = _hostile(kipd.port, data)
                assert resp.status == status, resp
                assert resp.header("Content-Type") == "application/problem+json"
                body = resp.json()
                assert body["status"] == status
                assert [e["field"] for e in body["errors"]] == [field], body
                assert body["request_id"] == resp.header("X-Request-Id")
                assert closed is not None, f"{name}: the connection must be closed"
                assert keep.request("GET", "/healthz").status == 200
    finally:
        probe.stop()
    assert probe.records, "the probe sent nothing"
    probe.assert_clean(allowed=(200,))


def test_http_1_0_without_host_is_still_served(kipd):
    with RawHttp(kipd.port) as raw:
        raw.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert raw.read_response().status == 200


def _smuggle(token, body, framing):
    head = (f"POST /v1/plans HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\n").encode()
    if framing == "cl+te":
        chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        return head + f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + chunk
    if framing == "te+cl":
        chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        return head + f"Transfer-Encoding: chunked\r\nContent-Length: {len(chunk)}\r\n\r\n".encode() + chunk
    if framing == "cl+cl":
        return head + f"Content-Length: {len(body)}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    if framing == "te-fold":
        chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        return head + b"Transfer-Encoding:\r\n chunked\r\n\r\n" + chunk
    raise AssertionError(framing)


@pytest.mark.parametrize("framing", ["cl+te", "te+cl", "cl+cl", "te-fold"])
def test_smuggling_pair_writes_nothing(kipd, coordinator, framing):
    name = kiptest.unique("Smugglet ")
    body = json.dumps(kiptest.plan_body(name=name)).encode()
    resp, closed = _hostile(kipd.port, _smuggle(coordinator.token, body, framing))
    assert resp.status == 400, resp
    assert closed is not None
    # The same request, framed once, is accepted: the refusal was the framing.
    listing = coordinator.get("/v1/plans", params={"q": name})
    assert listing.status_code == 200
    assert listing.json()["items"] == [], "a refused request must write nothing"
    good = coordinator.post("/v1/plans", json=json.loads(body))
    assert good.status_code == 201, good.text
    again = coordinator.get("/v1/plans", params={"q": name})
    assert [p["citizen"]["name"] for p in again.json()["items"]] == [name], "the search must find it now"
