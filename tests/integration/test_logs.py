"""Logs: one JSON object per line, one line per request, no secrets."""

import re
import uuid

import kiptest
from kiptest import problem

ROUTE_PLAN = re.compile(r"^/v1/plans/\{[A-Za-z_]+\}$")
ROUTE_PARTICIPANT = re.compile(r"^/v1/plans/\{[A-Za-z_]+\}/participants/\{[A-Za-z_]+\}$")


def _settle(kipd, anon):
    """Make a sentinel request and wait for its log line: since kipd logs
    from one loop, every earlier request's line is out by then."""
    rid = f"sentinel-{uuid.uuid4().hex[:8]}"
    assert anon.get("/healthz", headers={"X-Request-Id": rid}).status_code == 200
    kiptest.wait_until(lambda: any(r.get("request_id") == rid for r in kipd.log_records()), 5,
                       what="the sentinel request's log line")
    return kipd.log_records()


def _lines_for(records, rid):
    return [r for r in records if r.get("request_id") == rid and "status" in r]


def test_every_line_is_a_json_object(kipd, anon):
    records = _settle(kipd, anon)
    assert records
    for r in records:
        assert {"ts", "level", "msg"} <= set(r), r
        assert r["level"] in ("debug", "info", "warn", "error"), r
    listening = [r for r in records if r.get("msg") == "listening"]
    assert len(listening) == 1
    assert f"127.0.0.1:{kipd.port}" in listening[0]["url"]


def test_one_line_per_request_with_fields(kipd, admin, anon, coordinator, make_plan):
    plan = make_plan(coordinator, cpr="010190-1234")
    part_id = plan["coordinator"]
    cases = []   # (request id, response, expected route regex or string, user id or None)

    def do(client, method, path, route, user, **kw):
        rid = f"logtest-{uuid.uuid4().hex[:10]}"
        headers = dict(kw.pop("headers", {}), **{"X-Request-Id": rid})
        r = client.request(method, path, headers=headers, **kw)
        cases.append((rid, r, route, user))
        return r

    do(anon, "GET", "/healthz", "/healthz", None)
    do(admin, "GET", "/v1/me", "/v1/me", admin.get("/v1/me").json()["id"])
    do(coordinator, "POST", "/v1/plans", "/v1/plans", coordinator.user["id"],
       json=kiptest.plan_body(cpr="0101901234"))
    do(coordinator, "GET", f"/v1/plans/{plan['id']}", ROUTE_PLAN, coordinator.user["id"])
    do(coordinator, "GET", f"/v1/plans/{uuid.uuid4()}", ROUTE_PLAN, coordinator.user["id"])
    do(coordinator, "PATCH", f"/v1/plans/{plan['id']}", ROUTE_PLAN, coordinator.user["id"],
       json={"citizen": {"cpr": "020280-1234"}}, headers={"If-Match": '"1"'})
    do(coordinator, "GET", f"/v1/plans/{plan['id']}/participants/{part_id}", ROUTE_PARTICIPANT,
       coordinator.user["id"])
    do(coordinator, "POST", "/v1/plans", "/v1/plans", coordinator.user["id"],
       json=kiptest.plan_body(cpr="320190-1234"))                                      # 422
    do(anon, "GET", "/v1/me", "/v1/me", None)                                          # 401
    do(anon, "GET", "/v1/does-not-exist", None, None)                                  # 404

    records = _settle(kipd, anon)
    for rid, resp, route, user in cases:
        assert resp.headers["X-Request-Id"] == rid
        lines = _lines_for(records, rid)
        what = f"{resp.request.method} {resp.request.path_url}"
        assert len(lines) == 1, f"{what}: {len(lines)} log lines for request {rid}"
        line = lines[0]
        assert line["method"] == resp.request.method, (what, line)
        assert line["status"] == resp.status_code, (what, line)
        assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0, (what, line)
        if route is not None:
            if isinstance(route, str):
                assert line.get("route") == route, (what, line)
            else:
                assert route.match(line.get("route") or ""), (what, line)
        if user is not None:
            assert line.get("user_id") == user, (what, line)
        else:
            assert line.get("user_id") is None, (what, line)
        assert plan["id"] not in str(line.get("route")), "route must be the template"


def test_generated_request_id_is_logged(kipd, anon):
    r = anon.get("/healthz")
    rid = r.headers["X-Request-Id"]
    records = _settle(kipd, anon)
    assert len(_lines_for(records, rid)) == 1


def test_raw_errors_are_logged_too(kipd, anon):
    with kiptest.RawHttp(kipd.port) as raw:
        raw.send(kiptest.build_request("GET", "/healthz", {"X-Padding": "a" * (17 * 1024),
                                                           "X-Request-Id": "logtest-431"}))
        resp = raw.read_response()
    assert resp.status == 431
    records = _settle(kipd, anon)
    lines = [r for r in records if r.get("status") == 431]
    assert lines, "the 431 answer was not logged"


def test_no_tokens_or_cpr_numbers_in_the_logs(kipd, admin, coordinator, make_plan, anon):
    make_plan(coordinator, cpr="010190-1234")
    make_plan(coordinator, cpr="0101901234")
    problem(coordinator.post("/v1/plans", json=kiptest.plan_body(cpr="310290-1234")), 422, "citizen.cpr")
    # a token sent in a bad place must not be echoed into the logs either
    anon.get("/v1/me", headers={"Authorization": f"Bearer {coordinator.token}x"})
    anon.get("/v1/plans", params={"q": "0101901234"}, headers={"Authorization": f"Bearer {coordinator.token}"})
    _settle(kipd, anon)
    text = kipd.output_text()
    for secret in (kipd.admin_token(), coordinator.token, "010190-1234", "0101901234", "310290-1234"):
        assert secret not in text, f"{secret[:10]}… appears in kipd's output"
    kipd.assert_no_secrets_logged()
