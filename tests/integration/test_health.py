"""/healthz, /readyz and /metrics."""

import re

from kiptest import Api


def _counter_sum(text, name):
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m and m.group(1) == name:
            total += float(m.group(3))
            found = True
    assert found, f"{name} not in /metrics"
    return total


def test_healthz(anon):
    r = anon.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz(anon):
    r = anon.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "audit": {"append_only": True}}


def test_health_needs_no_token_and_ignores_a_bad_one(kipd):
    bad = Api(kipd.url, "kipd_" + "B" * 43)
    assert bad.get("/healthz").status_code == 200
    assert bad.get("/readyz").status_code == 200


def test_metrics(anon, coordinator):
    r = anon.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    for name in ("kipd_http_requests_total", "kipd_http_connections_open",
                 "kipd_db_pool_connections_up", "kipd_db_pool_queue_length"):
        assert re.search(rf"^{name}(\{{|\s)", text, re.M), f"{name} missing from /metrics"
    assert re.search(r"^# TYPE kipd_http_requests_total counter$", text, re.M)
    before = _counter_sum(text, "kipd_http_requests_total")
    for _ in range(3):
        assert coordinator.get("/v1/me").status_code == 200
    after = _counter_sum(anon.get("/metrics").text, "kipd_http_requests_total")
    assert after >= before + 3, (before, after)
    assert _counter_sum(text, "kipd_db_pool_connections_up") >= 1


def test_metrics_hold_no_personal_data(anon, coordinator, make_plan):
    plan = make_plan(coordinator, cpr="010190-1234")
    coordinator.get(f"/v1/plans/{plan['id']}")
    text = anon.get("/metrics").text
    assert plan["id"] not in text, "metrics labels must use route templates, not concrete ids"
    assert "010190" not in text
    assert coordinator.token not in text
