"""The warnings a nurse needs (issue #13, contract item 5): each write
succeeds and answers a warnings[] entry {code, field, pointer,
participant_id, message}."""

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import kiptest

CPH = ZoneInfo("Europe/Copenhagen")
GIVEN_AT = "2025-03-01T12:00:00+01:00"


def _today():
    return dt.datetime.now(CPH).date()


def _codes(doc):
    return [w["code"] for w in doc["warnings"]]


def _only(doc, code):
    found = [w for w in doc["warnings"] if w["code"] == code]
    assert len(found) == 1, doc["warnings"]
    w = found[0]
    assert set(w) == {"code", "field", "pointer", "participant_id", "message"}, w
    assert w["message"]
    return w


def _citizen(plan):
    return next(p for p in plan["participants"] if p["kind"] == "citizen")


def _activate(client, plan):
    r = client.post(f"/v1/plans/{plan['id']}/consent",
                    json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT})
    assert r.status_code == 201, r.text


# ------------------------------------------------------------- plans

def test_duplicate_active_plan(coordinator, make_org, make_user, kipd, pg):
    cpr = kiptest.new_cpr()
    first = kiptest.create_plan(coordinator, cpr=cpr)
    # A draft is not an active plan: no warning yet.
    r = coordinator.post("/v1/plans", json=kiptest.plan_body(cpr=cpr.replace("-", "")))
    assert r.status_code == 201 and r.json()["warnings"] == [], r.text
    _activate(coordinator, first)
    rid = "dup-" + uuid.uuid4().hex
    r = coordinator.post("/v1/plans", json=kiptest.plan_body(cpr=cpr), headers={"X-Request-Id": rid})
    assert r.status_code == 201, r.text
    w = _only(r.json(), "duplicate_active_plan")
    assert w["field"] == "citizen.cpr" and w["pointer"] == "/citizen/cpr" and w["participant_id"] is None
    assert first["id"] in w["message"] and cpr not in w["message"]
    # Naming the other plan shows it exists: audited.
    rows = pg.psql(f"SELECT action || '|' || plan_id FROM kip.audit WHERE request_id = '{rid}' "
                   "ORDER BY id", db=kipd.db).splitlines()
    assert f"plan.duplicate_warning|{first['id']}" in rows, rows
    # Someone who may not see the active plan learns nothing of it.
    stranger = make_user(make_org(), ["coordinator"])
    r = stranger.post("/v1/plans", json=kiptest.plan_body(cpr=cpr))
    assert r.status_code == 201 and r.json()["warnings"] == [], r.text


# ------------------------------------------------------------- meetings

def _meeting(client, plan, start, **kw):
    body = {"starts_at": start.isoformat(), "purpose": "KIP-møde",
            "location": {"kind": "hospital", "room": "Lokale 4"}}
    body.update(kw)
    r = client.post(f"/v1/plans/{plan['id']}/meetings", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _future():
    d = _today() + dt.timedelta(days=10)
    return dt.datetime(d.year, d.month, d.day, 10, 0, tzinfo=CPH)


def test_citizen_not_invited(coordinator, make_plan):
    plan = make_plan(coordinator)
    cit = _citizen(plan)
    m = _meeting(coordinator, plan, _future(), invitees=[{"participant_id": plan["coordinator"]}])
    w = _only(m, "citizen_not_invited")
    assert w["field"] == "invitees" and w["pointer"] == "/invitees" and w["participant_id"] == cit["id"]
    # kipd's own list (no invitees sent) invites everyone: no warning.
    assert "citizen_not_invited" not in _codes(_meeting(coordinator, plan, _future() + dt.timedelta(days=1)))
    both = [{"participant_id": plan["coordinator"]}, {"participant_id": cit["id"]}]
    assert "citizen_not_invited" not in _codes(_meeting(coordinator, plan, _future() + dt.timedelta(days=2),
                                                        invitees=both))
    # A change that sends a list without the citizen warns too; one that
    # sends no list does not.
    r = coordinator.patch(f"/v1/meetings/{m['id']}", json={"invitees": both}, headers={"If-Match": "*"})
    assert r.status_code == 200 and "citizen_not_invited" not in _codes(r.json()), r.text
    r = coordinator.patch(f"/v1/meetings/{m['id']}", json={"purpose": "Nyt"}, headers={"If-Match": "*"})
    assert r.status_code == 200 and "citizen_not_invited" not in _codes(r.json()), r.text
    r = coordinator.patch(f"/v1/meetings/{m['id']}", json={"invitees": [{"participant_id": plan["coordinator"]}]},
                          headers={"If-Match": "*"})
    assert r.status_code == 200, r.text
    assert _only(r.json(), "citizen_not_invited")["participant_id"] == cit["id"]


def test_outcome_warnings(coordinator, make_plan):
    plan = make_plan(coordinator)
    cit = _citizen(plan)
    yesterday = dt.datetime.now(CPH) - dt.timedelta(days=1)
    m = _meeting(coordinator, plan, yesterday.replace(microsecond=0),
                 invitees=[{"participant_id": plan["coordinator"]}])
    next_start = (dt.datetime.now(CPH) + dt.timedelta(days=30)).replace(microsecond=0)
    body = {
        "attendance": [{"participant_id": plan["coordinator"], "attended": True},
                       {"participant_id": cit["id"], "attended": True, "mode": "in_person"}],
        "summary": "Aftalt.", "citizen_accepted": True,
        "actions": [{"title": "Søg boligstøtte", "area": "housing", "responsible_participant_id": cit["id"],
                     "due_date": (_today() - dt.timedelta(days=1)).isoformat()},
                    {"title": "Ring til lægen", "area": "somatic_health",
                     "responsible_participant_id": plan["coordinator"], "due_date": _today().isoformat()}],
        "next_meeting": {"starts_at": next_start.isoformat(), "invitees": [{"participant_id": plan["coordinator"]}]},
    }
    r = coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=body)
    assert r.status_code == 201, r.text
    doc = r.json()
    w = _only(doc, "attendance_not_invited")
    assert w["field"] == "attendance[1].participant_id" and w["pointer"] == "/attendance/1/participant_id"
    assert w["participant_id"] == cit["id"]
    w = _only(doc, "due_in_past")
    assert w["field"] == "actions[0].due_date" and w["pointer"] == "/actions/0/due_date"
    w = _only(doc, "citizen_not_invited")
    assert w["field"] == "next_meeting.invitees" and w["pointer"] == "/next_meeting/invitees"
    # The outcome is recorded all the same.
    assert coordinator.get(f"/v1/meetings/{m['id']}").json()["status"] == "held"


# ------------------------------------------------------------- actions

def test_due_in_past(coordinator, make_plan):
    plan = make_plan(coordinator)
    url = f"/v1/plans/{plan['id']}/actions"
    base = {"title": "Afklar bolig", "area": "housing", "responsible_participant_id": plan["coordinator"]}
    r = coordinator.post(url, json={**base, "due_date": (_today() - dt.timedelta(days=1)).isoformat()})
    assert r.status_code == 201, r.text
    w = _only(r.json(), "due_in_past")
    assert w["field"] == "due_date" and w["pointer"] == "/due_date" and w["participant_id"] is None
    action = r.json()
    for due in (_today(), _today() + dt.timedelta(days=7), None):
        r = coordinator.post(url, json={**base, "due_date": due.isoformat() if due else None})
        assert r.status_code == 201 and r.json()["warnings"] == [], r.text
    # A change to a past date warns; a change of something else does not.
    r = coordinator.patch(f"/v1/actions/{action['id']}", json={"title": "Nyt"}, headers={"If-Match": "*"})
    assert r.status_code == 200 and r.json()["warnings"] == [], r.text
    r = coordinator.patch(f"/v1/actions/{action['id']}",
                          json={"due_date": (_today() - dt.timedelta(days=3)).isoformat()},
                          headers={"If-Match": "*"})
    assert r.status_code == 200, r.text
    assert _only(r.json(), "due_in_past")["field"] == "due_date"
