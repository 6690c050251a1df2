"""The plans list items carry next_meeting, open_actions and
overdue_actions (issue #13, screen 2 "Mine forløb"), so the UI needs no read
of each plan's document. Same values in GET /v1/plans and POST
/v1/plans/search."""

import datetime as dt

import kiptest


def _item(client, plan_id):
    listed = [i for i in kiptest.collect_all(client, "/v1/plans") if i["id"] == plan_id]
    r = client.post("/v1/plans/search", json={"q": listed[0]["citizen"]["name"]})
    assert r.status_code == 200, r.text
    searched = [i for i in r.json()["items"] if i["id"] == plan_id]
    assert searched == listed
    return listed[0]


def _meeting(client, plan, start):
    r = client.post(f"/v1/plans/{plan['id']}/meetings", json={
        "starts_at": start.isoformat(), "purpose": "Koordinering",
        "location": {"kind": "hospital", "address": "Bispebjerg Bakke 23", "room": "Lokale 4"}})
    assert r.status_code == 201, r.text
    return r.json()


def _action(client, plan, **fields):
    body = {"title": "Opgave", "area": "housing", "responsible_participant_id": plan["coordinator"]}
    body.update(fields)
    r = client.post(f"/v1/plans/{plan['id']}/actions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_new_plan_has_no_meeting_and_no_actions(coordinator, make_plan):
    plan = make_plan(coordinator)
    item = _item(coordinator, plan["id"])
    assert (item["next_meeting"], item["open_actions"], item["overdue_actions"]) == (None, 0, 0)


def test_next_meeting_and_action_counts(coordinator, make_plan):
    plan = make_plan(coordinator)
    other = make_plan(coordinator)          # its actions must not count here
    _meeting(coordinator, plan, kiptest.cph(-1, 13))             # yesterday at 13:00: past
    nxt = kiptest.cph(3, 10)                                     # in three days at 10:00
    _meeting(coordinator, plan, kiptest.cph(10, 9))              # later still
    _meeting(coordinator, plan, nxt)
    cancelled = _meeting(coordinator, plan, kiptest.cph(2, 9))   # sooner, but cancelled below
    today = kiptest.cph_today()
    _action(coordinator, plan, due_date=(today + dt.timedelta(days=7)).isoformat())    # open
    _action(coordinator, plan, due_date=(today - dt.timedelta(days=1)).isoformat())    # overdue
    done = _action(coordinator, plan, due_date=(today - dt.timedelta(days=2)).isoformat())
    r = coordinator.patch(f"/v1/actions/{done['id']}", json={"status": "done"},
                          headers={"If-Match": f'"{done["version"]}"'})
    assert r.status_code == 200, r.text
    # An action due today is not overdue (Copenhagen date).
    _action(coordinator, other, due_date=today.isoformat())
    r = coordinator.post(f"/v1/meetings/{cancelled['id']}/cancel", json={"reason": "Aflyst"},
                         headers={"If-Match": f'"{cancelled["version"]}"'})
    assert r.status_code == 200, r.text

    item = _item(coordinator, plan["id"])
    assert dt.datetime.fromisoformat(item["next_meeting"]) == nxt
    assert item["open_actions"] == 2            # the open one and the overdue one
    assert item["overdue_actions"] == 1
    o = _item(coordinator, other["id"])
    assert (o["next_meeting"], o["open_actions"], o["overdue_actions"]) == (None, 1, 0)
    # The same counts as the plan's own document says.
    doc = coordinator.get(f"/v1/plans/{plan['id']}").json()
    acts = doc["actions"]
    assert sum(a["status"] in ("open", "in_progress") for a in acts) == item["open_actions"]
    assert sum(a["overdue"] for a in acts) == item["overdue_actions"]
