"""GET /metrics in the Prometheus text format, read with prometheus_client's
own parser: per-route counters and latency histograms, database statement
histograms, the pool, the sealer, the daily pass, build info, and the
--metrics-token / --metrics-loopback-only flags."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import kiptest
from kiptest import Api, problem


def scrape(api):
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def value(families, family, sample_name, **labels):
    """The value of the one sample with exactly these labels (0 if absent)."""
    f = families.get(family)
    if f is None:
        return 0.0
    hits = [s.value for s in f.samples if s.name == sample_name and s.labels == labels]
    assert len(hits) <= 1, hits
    return hits[0] if hits else 0.0


def histograms(families, family):
    """{labels-without-le (frozenset): [(le, count), ...], sum, count}."""
    out = {}
    for s in families[family].samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = frozenset(labels.items())
        h = out.setdefault(key, {"buckets": [], "count": None, "sum": None})
        if s.name.endswith("_bucket"):
            h["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            h["count"] = s.value
        elif s.name.endswith("_sum"):
            h["sum"] = s.value
    return out


def check_histogram(h):
    les = [le for le, _ in h["buckets"]]
    assert les == sorted(les) and les[-1] == float("inf"), les
    counts = [c for _, c in h["buckets"]]
    assert counts == sorted(counts), f"buckets are not cumulative: {counts}"
    assert counts[-1] == h["count"], (counts[-1], h["count"])
    assert h["sum"] is not None and h["sum"] >= 0


def test_types_and_help(anon):
    fams = scrape(anon)
    assert fams["kipd_http_requests"].type == "counter"
    assert fams["kipd_http_request_duration_seconds"].type == "histogram"
    assert fams["kipd_db_statement_duration_seconds"].type == "histogram"
    for name in ("kipd_db_pool_connections_up", "kipd_db_pool_connections_busy",
                 "kipd_db_pool_connections_idle", "kipd_db_pool_queue_length"):
        assert fams[name].type == "gauge", name
        assert fams[name].documentation, name
    assert value(fams, "kipd_db_pool_connections_up", "kipd_db_pool_connections_up") >= 1


def test_route_counters_and_histograms_match_exactly(anon, coordinator, make_plan):
    plan = make_plan(coordinator)
    route = "/v1/plans/{id}"
    n_ok, n_missing, n_other = 4, 2, 3
    before = scrape(anon)
    for _ in range(n_ok):
        assert coordinator.get(f"/v1/plans/{plan['id']}").status_code == 200
    for _ in range(n_missing):
        r = coordinator.get("/v1/plans/00000000-0000-4000-8000-000000000000")
        assert r.status_code == 404
    for _ in range(n_other):
        assert anon.get("/v1/no-such-route-here").status_code == 404
    after = scrape(anon)

    def delta(**labels):
        return (value(after, "kipd_http_requests", "kipd_http_requests_total", **labels)
                - value(before, "kipd_http_requests", "kipd_http_requests_total", **labels))

    assert delta(route=route, method="GET", status="200") == n_ok
    assert delta(route=route, method="GET", status="404") == n_missing
    assert delta(route="other", method="GET", status="404") == n_other

    h_after = histograms(after, "kipd_http_request_duration_seconds")
    h_before = histograms(before, "kipd_http_request_duration_seconds")
    key = frozenset({"route": route, "method": "GET"}.items())
    prev = h_before.get(key, {"count": 0})["count"]
    assert h_after[key]["count"] - prev == n_ok + n_missing
    for h in h_after.values():
        check_histogram(h)
    other = frozenset({"route": "other", "method": "GET"}.items())
    assert h_after[other]["count"] - h_before.get(other, {"count": 0})["count"] == n_other

    # Route templates only: no concrete id, no unknown path in any label.
    text = anon.get("/metrics").text
    assert plan["id"] not in text
    assert "no-such-route-here" not in text


def test_db_statement_histogram(anon, coordinator):
    assert coordinator.get("/v1/me").status_code == 200
    fams = scrape(anon)
    hs = histograms(fams, "kipd_db_statement_duration_seconds")
    assert hs, "no statement histogram"
    for h in hs.values():
        check_histogram(h)
        assert h["count"] >= 1
    before = {dict(k)["statement"]: h["count"] for k, h in hs.items()}
    assert anon.get("/readyz").status_code == 200
    after = {dict(k)["statement"]: h["count"]
             for k, h in histograms(scrape(anon), "kipd_db_statement_duration_seconds").items()}
    assert after["health_ping"] == before.get("health_ping", 0) + 1


def test_sealer_daily_webhook_and_build_info(anon, coordinator):
    coordinator.get("/v1/me")
    deadline = time.time() + 15
    while True:
        fams = scrape(anon)
        runs = value(fams, "kipd_daily_runs", "kipd_daily_runs_total")
        sealed_at = value(fams, "kipd_audit_sealer_last_run_timestamp_seconds",
                          "kipd_audit_sealer_last_run_timestamp_seconds")
        backlog_counted = "kipd_webhook_backlog" in fams
        if (runs >= 1 and sealed_at > 0 and backlog_counted) or time.time() > deadline:
            break
        time.sleep(0.3)
    now = time.time()
    assert runs >= 1, "the daily pass (first run 2 s after start) has not been reported"
    last = value(fams, "kipd_daily_last_run_timestamp_seconds", "kipd_daily_last_run_timestamp_seconds")
    assert now - 3600 < last <= now + 5
    dur = value(fams, "kipd_daily_last_run_duration_seconds", "kipd_daily_last_run_duration_seconds")
    assert 0 < dur < 60
    assert value(fams, "kipd_daily_failures", "kipd_daily_failures_total") == 0

    assert now - 3600 < sealed_at <= now + 5
    unsealed = value(fams, "kipd_audit_unsealed_rows", "kipd_audit_unsealed_rows")
    age = value(fams, "kipd_audit_oldest_unsealed_age_seconds", "kipd_audit_oldest_unsealed_age_seconds")
    assert unsealed >= 0 and age >= 0
    if unsealed == 0:
        assert age == 0
    assert age < 3600
    assert fams["kipd_audit_unsealed_rows"].type == "gauge"

    assert fams["kipd_webhook_deliveries_sent"].type == "counter"
    assert fams["kipd_webhook_deliveries_failed"].type == "counter"
    # No subscription in this module: nothing pending.
    assert backlog_counted, "the webhook backlog was never counted"
    assert value(fams, "kipd_webhook_backlog", "kipd_webhook_backlog") == 0
    assert value(fams, "kipd_webhook_oldest_pending_age_seconds",
                 "kipd_webhook_oldest_pending_age_seconds") == 0

    info = [s for s in fams["kipd_build_info"].samples]
    assert len(info) == 1 and info[0].value == 1
    assert info[0].labels["version"] and info[0].labels["git"]


def test_metrics_token(kipd_factory):
    secret = "metrics-" + "s3cr3t" * 6
    k = kipd_factory(extra_args=["--metrics-token", secret], name="metrics-token")
    anon = Api(k.url, None)
    problem(anon.get("/metrics"), 401)
    problem(Api(k.url, "wrong-" + "x" * 40).get("/metrics"), 403)
    r = Api(k.url, secret).get("/metrics")
    assert r.status_code == 200
    assert "kipd_build_info" in r.text
    # The rest of the API is not opened by the metrics token.
    assert anon.get("/healthz").status_code == 200


def _non_loopback_ipv4():
    """An IPv4 address of this host that is not loopback (the one the kernel
    would send from towards a documentation address), or None."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))      # UDP: no packet is sent
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def test_metrics_loopback_only(pg, new_db, workroot):
    # kipd listens on every address; a trusted proxy is loopback.
    d = kiptest.make_workdir(workroot, kiptest.unique("metrics-lo-"))
    port = kiptest.free_port()
    db = new_db()
    k = kiptest.Kipd.external(d, pg.runtime_url(db), owner_url=pg.url(db), listen=False, port=port,
                              name="metrics-lo",
                              extra_args=["--listen", f"0.0.0.0:{port}", "--metrics-loopback-only",
                                          "--trusted-proxies", "127.0.0.1"])
    with kiptest.running_kipd(k):
        # The harness connects over loopback: allowed.
        r = Api(k.url, None).get("/metrics")
        assert r.status_code == 200 and "kipd_build_info" in r.text
        # An admin's token opens nothing more from a forwarded remote client.
        admin = Api(k.url, k.admin_token())
        problem(admin.get("/metrics", headers={"X-Forwarded-For": "198.51.100.4"}), 403)
        # A local proxy that forwards a remote client is refused: the client
        # it names is not loopback, although the TCP peer is.
        p = problem(Api(k.url, None).get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}), 403)
        assert p["errors"][0]["field"] == "client", p
        assert "kipd_build_info" not in p["detail"]
        # ... and one naming a loopback client is not.
        assert Api(k.url, None).get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
        # A direct connection to a non-loopback address of this host comes from
        # that address: refused, while the rest of the API answers it.
        addr = _non_loopback_ipv4()
        if addr is not None:
            other = Api(f"http://{addr}:{port}", None)
            problem(other.get("/metrics"), 403)
            assert other.get("/healthz").status_code == 200
