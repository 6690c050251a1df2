"""One client cannot starve the rest (issue #16).

The rule: at most --max-connections-per-address open connections from one
client address; the next gets a 503 problem+json and is closed. Addresses in
--trusted-proxies are exempt (many clients arrive through a proxy); loopback
is not. Past the global --max-connections every new connection gets the
same 503, never a TCP reset, also when the open file limit is lower than
--max-connections (kipd then lowers the limit to fit and says so).

Client sockets are bound to 127.0.0.2, 127.0.0.3, ... (all loopback on
Linux), so one test machine plays several clients.
"""

import json
import socket
import stat

import kiptest
from kiptest import Api, Kipd, RawHttp


def _open(port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(kiptest.HTTP_TIMEOUT)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return RawHttp(sock=s)


def _served(raw):
    return raw.request("GET", "/healthz").status == 200


def _refused_503(raw):
    """The connection gets a 503 problem+json (Retry-After: 1) and is closed;
    a reset instead of the answer fails the test."""
    raw.send(kiptest.build_request("GET", "/healthz"))
    resp = raw.read_response()
    assert resp.status == 503, resp
    assert resp.header("Content-Type") == "application/problem+json"
    assert resp.header("Retry-After") == "1"
    body = resp.json()
    assert body["status"] == 503 and body["errors"][0]["field"] == "request", body
    assert raw.wait_closed(5) is not None
    return body


def test_per_address_cap_leaves_other_clients_served(kipd_factory):
    k = kipd_factory(["--max-connections-per-address", "8", "--max-connections", "40",
                      "--trusted-proxies", "127.0.0.5"])
    held = []
    try:
        for _ in range(8):
            raw = _open(k.port, "127.0.0.2")
            held.append(raw)
            assert _served(raw)
        for _ in range(3):                       # more from the same address: 503, each
            with _open(k.port, "127.0.0.2") as extra:
                body = _refused_503(extra)
                assert "Too many connections from this address" in body["detail"]
        with _open(k.port, "127.0.0.3") as other:
            assert _served(other), "a second address must still be served"
        assert Api(k.url).get("/healthz").status_code == 200
        for _ in range(12):                      # the trusted proxy is exempt
            raw = _open(k.port, "127.0.0.5")
            held.append(raw)
            assert _served(raw)
        assert all(_served(raw) for raw in held[:8]), "the held ones are still served"
        held.pop(0).close()                      # a closed one frees its slot
        deadline = kiptest.time.monotonic() + 5
        while True:
            with _open(k.port, "127.0.0.2") as again:
                again.send(kiptest.build_request("GET", "/healthz"))
                if again.read_response().status == 200:
                    break
            assert kiptest.time.monotonic() < deadline, "the slot was never released"
            kiptest.time.sleep(0.05)
    finally:
        for raw in held:
            raw.close()


def test_global_limit_answers_503_not_a_reset(kipd_factory):
    k = kipd_factory(["--max-connections", "12", "--max-connections-per-address", "4"])
    held = []
    try:
        for i in range(12):
            raw = _open(k.port, f"127.0.0.{10 + i // 4}")
            held.append(raw)
            assert _served(raw)
        for src in ("127.0.0.20", "127.0.0.21", "127.0.0.1"):
            with _open(k.port, src) as extra:
                body = _refused_503(extra)
                assert "connection limit" in body["detail"]
        assert _served(held[0])
        held.pop().close()
        deadline = kiptest.time.monotonic() + 5
        while Api(k.url).get("/healthz").status_code != 200:
            assert kiptest.time.monotonic() < deadline
            kiptest.time.sleep(0.05)
    finally:
        for raw in held:
            raw.close()


def test_low_open_file_limit_lowers_max_connections_and_still_answers_503(pg, workroot, new_db):
    """With `ulimit -n 600` and --max-connections 10000, kipd warns and lowers
    the limit (600 - 256 refusals - 256 reserve = 88), so the 89th connection
    gets the 503 rather than a reset from a failed accept."""
    db = new_db()
    workdir = kiptest.make_workdir(workroot, kiptest.unique("fdlimit-"))
    wrapper = workdir / "kipd-ulimit"
    wrapper.write_text(f'#!/bin/sh\nulimit -n 600 || exit 97\nexec "{kiptest.KIPD_BIN}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    k = Kipd.external(workdir, pg.runtime_url(db), owner_url=pg.url(db), binary=wrapper,
                      extra_args=["--max-connections", "10000", "--max-connections-per-address", "0"],
                      name="fdlimit")
    held = []
    with kiptest.running_kipd(k):
        warn = [json.loads(line) for line in k.stderr_lines() if "RLIMIT_NOFILE" in line]
        assert warn and warn[0]["max_connections"] == 88 and warn[0]["configured"] == 10000, warn
        try:
            for _ in range(88):
                raw = _open(k.port, "127.0.0.1")
                held.append(raw)
                assert _served(raw)
            for _ in range(20):
                with _open(k.port, "127.0.0.1") as extra:
                    _refused_503(extra)
        finally:
            for raw in held:
                raw.close()
