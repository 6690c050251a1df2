"""Cheap live polling of an open plan: GET /v1/plans/{id} with
If-None-Match (issue #13, contract item 8)."""

import uuid

import kiptest
from kiptest import problem


def _audit_rows(pg, kipd, rid):
    return pg.psql(f"SELECT count(*) FROM kip.audit WHERE request_id = '{rid}'", db=kipd.db).strip()


def _poll(client, plan_id, etag):
    rid = "poll-" + uuid.uuid4().hex
    r = client.get(f"/v1/plans/{plan_id}", headers={"If-None-Match": etag, "X-Request-Id": rid})
    return r, rid


def test_unchanged_plan_answers_304_without_an_audit_row(coordinator, make_plan, kipd, pg):
    plan = make_plan(coordinator)
    r = coordinator.get(f"/v1/plans/{plan['id']}")
    etag = r.headers["ETag"]
    assert etag == f'"{plan["version"]}"'
    for form in (etag, "W/" + etag, f'"999999", {etag}', "*"):
        r, rid = _poll(coordinator, plan["id"], form)
        assert r.status_code == 304, (form, r.status_code, r.text)
        assert r.content == b""
        assert r.headers["ETag"] == etag
        assert r.headers["Cache-Control"] == "no-store"
        assert _audit_rows(pg, kipd, rid) == "0", "a 304 wrote an audit row"


def test_a_change_anywhere_in_the_plan_is_seen(coordinator, make_plan, kipd, pg):
    plan = make_plan(coordinator)
    etag = coordinator.get(f"/v1/plans/{plan['id']}").headers["ETag"]
    cit = next(p for p in plan["participants"] if p["kind"] == "citizen")
    r = coordinator.post(f"/v1/plans/{plan['id']}/actions", json={
        "title": "Ring til boligkontoret", "area": "housing", "responsible_participant_id": cit["id"]})
    assert r.status_code == 201, r.text
    r, rid = _poll(coordinator, plan["id"], etag)
    assert r.status_code == 200
    assert r.headers["ETag"] != etag
    assert any(a["title"] == "Ring til boligkontoret" for a in r.json()["actions"])
    # The full answer is audited as ever.
    assert _audit_rows(pg, kipd, rid) == "1"
    # A stale or unreadable header just gets the document.
    for form in ('"0"', "3", '"abc"', "W/", ""):
        r, _ = _poll(coordinator, plan["id"], form)
        assert r.status_code == 200, form


def test_the_access_rule_runs_before_304(coordinator, make_plan, make_org, make_user, anon):
    plan = make_plan(coordinator)
    etag = coordinator.get(f"/v1/plans/{plan['id']}").headers["ETag"]
    stranger = make_user(make_org(), ["caseworker", "coordinator"])
    for form in (etag, "*"):
        problem(_poll(stranger, plan["id"], form)[0], 404)
        problem(_poll(anon, plan["id"], form)[0], 401)
    problem(_poll(coordinator, str(uuid.uuid4()), "*")[0], 404)
