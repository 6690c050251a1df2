"""Meetings: schedule, reschedule, cancel, responses, the outcome (atomic,
with the next meeting), overdue outcomes, the agenda (JSON and HTML) and
/v1/me/meetings. Every response is checked against api/openapi.yaml by the
client."""

import datetime as dt
import uuid

import pytest

import kiptest
from kiptest import Api, etag_version, problem


def local(days=0, hour=10, minute=0):
    """A Copenhagen wall-clock time `days` calendar days from today in
    Copenhagen, e.g. local(-1) is "yesterday at 10:00 Copenhagen time"."""
    return kiptest.cph(days, hour, minute)

def meeting_body(start, **kw):
    body = {"starts_at": start.isoformat(),
            "location": {"kind": "hospital", "address": "Bispebjerg Bakke 23", "room": "Lokale 4"},
            "purpose": "Koordinering af behandling og bolig"}
    body.update(kw)
    return body

def schedule(client, plan, start, status=201, **kw):
    r = client.post(f"/v1/plans/{plan['id']}/meetings", json=meeting_body(start, **kw))
    assert r.status_code == status, r.text
    return r.json()

def add_participant(client, plan, **kw):
    body = {"kind": "professional", "role": "general_practitioner", "name": "Læge Hansen",
            "phone": "+45 11 22 33 44", "email": "laege@example.dk"}
    body.update(kw)
    body = {k: v for k, v in body.items() if v is not None}
    r = client.post(f"/v1/plans/{plan['id']}/participants", json=body)
    assert r.status_code == 201, r.text
    return r.json()

def citizen_of(plan):
    return next(p for p in plan["participants"] if p["kind"] == "citizen")

def outcome_body(plan, **kw):
    coord = plan["coordinator"]
    body = {"attendance": [{"participant_id": coord, "attended": True},
                           {"participant_id": citizen_of(plan)["id"], "attended": True, "mode": "in_person"}],
            "observations": [{"participant_id": coord, "text": "Borgeren har tabt sig og sover dårligt."}],
            "summary": "Vi aftalte opfølgning hos egen læge.",
            "shared_assessment": "Boligsituationen er den største udfordring lige nu.",
            "citizen_accepted": True,
            "no_further_meeting": {"reason": "Forløbet er stabilt."}}
    body.update(kw)
    return body

# ------------------------------------------------------------- scheduling

def test_schedule_defaults_chair_invitees_and_plan_document(coordinator, make_plan):
    plan = make_plan(coordinator)
    m = schedule(coordinator, plan, local(7))
    assert m["status"] == "planned" and m["version"] == 1 and m["sequence"] == 0
    assert m["duration_minutes"] == 90
    assert m["chair_participant_id"] == plan["coordinator"]
    invited = {i["participant_id"] for i in m["invitees"]}
    assert invited == {p["id"] for p in plan["participants"]}
    assert all(i["response"] == "pending" for i in m["invitees"])
    assert m["warnings"] == [] and m["outcome"] is None and m["overdue_outcome"] is False
    assert dt.datetime.fromisoformat(m["ends_at"]) - dt.datetime.fromisoformat(m["starts_at"]) \
        == dt.timedelta(minutes=90)

    r = coordinator.get(f"/v1/meetings/{m['id']}")
    assert r.status_code == 200 and etag_version(r) == 1
    doc = coordinator.get(f"/v1/plans/{plan['id']}").json()
    assert [x["id"] for x in doc["meetings"]] == [m["id"]]
    assert doc["version"] > plan["version"]

def test_ninety_minute_rule(coordinator, make_plan):
    plan = make_plan(coordinator)
    r = coordinator.post(f"/v1/plans/{plan['id']}/meetings",
                         json=meeting_body(local(3), duration_minutes=89))
    problem(r, 422, "duration_minutes")
    r = coordinator.post(f"/v1/plans/{plan['id']}/meetings",
                         json=meeting_body(local(3), duration_minutes="90"))
    problem(r, 400, "duration_minutes")
    assert schedule(coordinator, plan, local(3), duration_minutes=90)["duration_minutes"] == 90
    assert schedule(coordinator, plan, local(4), duration_minutes=120)["duration_minutes"] == 120
    assert len(coordinator.get(f"/v1/plans/{plan['id']}").json()["meetings"]) == 2

def test_configured_minimum_and_next_meeting_limit(kipd_factory):
    k = kipd_factory(extra_args=["--meeting-min-minutes", "120", "--next-meeting-max-months", "2"])
    admin = Api(k.url, k.admin_token(), name="admin")
    coord = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
    plan = kiptest.create_plan(coord)
    problem(coord.post(f"/v1/plans/{plan['id']}/meetings",
                       json=meeting_body(local(3), duration_minutes=90)), 422, "duration_minutes")
    m = schedule(coord, plan, local(-1))
    assert m["duration_minutes"] == 120      # the default follows the configured minimum
    r = coord.post(f"/v1/meetings/{m['id']}/outcome",
                   json=outcome_body(plan, no_further_meeting=None,
                                     next_meeting={"starts_at": local(75).isoformat()}))
    problem(r, 422, "next_meeting.starts_at")
    r = coord.post(f"/v1/meetings/{m['id']}/outcome",
                   json=outcome_body(plan, no_further_meeting=None,
                                     next_meeting={"starts_at": local(50).isoformat()}))
    assert r.status_code == 201, r.text

def test_attendance_window_must_lie_inside_the_meeting(coordinator, make_plan):
    plan = make_plan(coordinator)
    gp = add_participant(coordinator, plan)
    start = local(5)
    inv = lambda ws, we: {"invitees": [{"participant_id": plan["coordinator"]},  # noqa: E731
                                       {"participant_id": gp["id"], "mode": "phone",
                                        "window_start": ws.isoformat(), "window_end": we.isoformat()}]}
    r = coordinator.post(f"/v1/plans/{plan['id']}/meetings",
                         json=meeting_body(start, **inv(start + dt.timedelta(minutes=80),
                                                        start + dt.timedelta(minutes=95))))
    problem(r, 422, "invitees[1].window_end")
    r = coordinator.post(f"/v1/plans/{plan['id']}/meetings",
                         json=meeting_body(start, **inv(start - dt.timedelta(minutes=5),
                                                        start + dt.timedelta(minutes=10))))
    problem(r, 422, "invitees[1].window_start")
    r = coordinator.post(f"/v1/plans/{plan['id']}/meetings",
                         json=meeting_body(start, **inv(start + dt.timedelta(minutes=30),
                                                        start + dt.timedelta(minutes=20))))
    problem(r, 422, "invitees[1].window_end")
    assert coordinator.get(f"/v1/plans/{plan['id']}").json()["meetings"] == []
    m = schedule(coordinator, plan, start, **inv(start + dt.timedelta(minutes=15),
                                                 start + dt.timedelta(minutes=30)))
    gp_inv = next(i for i in m["invitees"] if i["participant_id"] == gp["id"])
    assert gp_inv["mode"] == "phone"
    assert dt.datetime.fromisoformat(gp_inv["window_start"]) == start + dt.timedelta(minutes=15)

def test_inviting_a_participant_who_left(coordinator, make_plan):
    plan = make_plan(coordinator)
    gone = add_participant(coordinator, plan, role="caseworker", name="Tidligere sagsbehandler")
    r = coordinator.delete(f"/v1/plans/{plan['id']}/participants/{gone['id']}")
    assert r.status_code == 200, r.text
    body = meeting_body(local(2), invitees=[{"participant_id": gone["id"]}])
    problem(coordinator.post(f"/v1/plans/{plan['id']}/meetings", json=body), 422, "invitees[0].participant_id")
    body = meeting_body(local(2), invitees=[{"participant_id": str(uuid.uuid4())}])
    problem(coordinator.post(f"/v1/plans/{plan['id']}/meetings", json=body), 422, "invitees[0].participant_id")
    # The default invitation leaves out those who left.
    m = schedule(coordinator, plan, local(2))
    assert gone["id"] not in {i["participant_id"] for i in m["invitees"]}

def test_virtual_meeting_needs_a_video_link(coordinator, make_plan):
    plan = make_plan(coordinator)
    r = coordinator.post(f"/v1/plans/{plan['id']}/meetings",
                         json=meeting_body(local(2), location={"kind": "virtual"}))
    problem(r, 422, "location.video_url")
    r = coordinator.post(f"/v1/plans/{plan['id']}/meetings",
                         json=meeting_body(local(2), location={"kind": "castle"}))
    problem(r, 422, "location.kind")
    m = schedule(coordinator, plan, local(2),
                 location={"kind": "virtual", "video_url": "https://video.example.dk/kip/1"})
    assert m["location"] == {"kind": "virtual", "address": None, "room": None,
                             "video_url": "https://video.example.dk/kip/1"}

def test_a_meeting_in_the_past_is_allowed_with_a_warning(coordinator, make_plan):
    plan = make_plan(coordinator)
    m = schedule(coordinator, plan, local(-1, 13))
    assert [w["code"] for w in m["warnings"]] == ["starts_in_past"]
    assert m["warnings"][0]["field"] == "starts_at"
    assert schedule(coordinator, plan, local(1))["warnings"] == []

def test_overlap_with_a_meeting_in_another_plan_warns(coordinator, make_plan):
    plan_a = make_plan(coordinator)
    plan_b = make_plan(coordinator)
    schedule(coordinator, plan_a, local(10, 10))
    m = schedule(coordinator, plan_b, local(10, 11))          # 11:00 overlaps 10:00-11:30
    overlaps = [w for w in m["warnings"] if w["code"] == "overlap"]
    assert len(overlaps) == 1, m["warnings"]
    assert overlaps[0]["participant_id"] == plan_b["coordinator"]
    assert overlaps[0]["field"].startswith("invitees[")
    assert schedule(coordinator, plan_a, local(10, 12, 30))["warnings"] == []   # back to back

def test_closed_plan_and_other_organisations(coordinator, make_plan, make_org, make_user):
    plan = make_plan(coordinator)
    m = schedule(coordinator, plan, local(3))
    stranger = make_user(make_org(), ["coordinator"])
    problem(stranger.get(f"/v1/meetings/{m['id']}"), 404)
    problem(stranger.get(f"/v1/meetings/{m['id']}/agenda"), 404)
    problem(stranger.post(f"/v1/plans/{plan['id']}/meetings", json=meeting_body(local(3))), 404)
    problem(coordinator.get(f"/v1/meetings/{uuid.uuid4()}"), 404)
    plan_v = etag_version(coordinator.get(f"/v1/plans/{plan['id']}"))
    r = coordinator.post(f"/v1/plans/{plan['id']}/close", json={"reason": "completed"},
                         headers={"If-Match": f'"{plan_v}"'})
    assert r.status_code == 200, r.text
    problem(coordinator.post(f"/v1/plans/{plan['id']}/meetings", json=meeting_body(local(3))), 409)

# ---------------------------------------------------------------- changes

def test_reschedule_needs_if_match_and_moves_windows(coordinator, make_plan):
    plan = make_plan(coordinator)
    gp = add_participant(coordinator, plan)
    start = local(6)
    m = schedule(coordinator, plan, start, invitees=[
        {"participant_id": plan["coordinator"]},
        {"participant_id": gp["id"], "mode": "phone",
         "window_start": (start + dt.timedelta(minutes=15)).isoformat(),
         "window_end": (start + dt.timedelta(minutes=30)).isoformat()}])
    r = coordinator.put(f"/v1/meetings/{m['id']}/invitees/{gp['id']}/response", json={"response": "accepted"})
    assert r.status_code == 200 and etag_version(r) == 2
    new_start = start + dt.timedelta(days=1, hours=2)
    problem(coordinator.patch(f"/v1/meetings/{m['id']}", json={"starts_at": new_start.isoformat()}),
            428, "If-Match")
    problem(coordinator.patch(f"/v1/meetings/{m['id']}", json={"starts_at": new_start.isoformat()},
                              headers={"If-Match": '"1"'}), 412, "If-Match")
    r = coordinator.patch(f"/v1/meetings/{m['id']}", json={"starts_at": new_start.isoformat()},
                          headers={"If-Match": '"2"'})
    assert r.status_code == 200, r.text
    x = r.json()
    assert etag_version(r) == 3 and x["version"] == 3 and x["sequence"] == 1
    assert dt.datetime.fromisoformat(x["starts_at"]) == new_start
    gp_inv = next(i for i in x["invitees"] if i["participant_id"] == gp["id"])
    assert dt.datetime.fromisoformat(gp_inv["window_start"]) == new_start + dt.timedelta(minutes=15)
    assert gp_inv["response"] == "pending"        # a new time asks again
    problem(coordinator.patch(f"/v1/meetings/{m['id']}", json={"duration_minutes": 60},
                              headers={"If-Match": '"3"'}), 422, "duration_minutes")

def test_cancel_with_a_reason(coordinator, make_plan):
    plan = make_plan(coordinator)
    m = schedule(coordinator, plan, local(4))
    problem(coordinator.post(f"/v1/meetings/{m['id']}/cancel", json={"reason": "Borgeren er indlagt"}),
            428, "If-Match")
    problem(coordinator.post(f"/v1/meetings/{m['id']}/cancel", json={}, headers={"If-Match": '"1"'}),
            422, "reason")
    r = coordinator.post(f"/v1/meetings/{m['id']}/cancel", json={"reason": "Borgeren er indlagt"},
                         headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["status"] == "cancelled" and c["cancel_reason"] == "Borgeren er indlagt"
    assert c["sequence"] == 1 and c["cancelled_at"]
    problem(coordinator.post(f"/v1/meetings/{m['id']}/cancel", json={"reason": "igen"},
                             headers={"If-Match": "*"}), 409, "status")
    problem(coordinator.patch(f"/v1/meetings/{m['id']}", json={"purpose": "x"}, headers={"If-Match": "*"}),
            409, "status")
    problem(coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=outcome_body(plan)), 409)

def test_invitee_responses(coordinator, make_plan):
    plan = make_plan(coordinator)
    gp = add_participant(coordinator, plan)
    m = schedule(coordinator, plan, local(4), invitees=[{"participant_id": gp["id"]}])
    r = coordinator.put(f"/v1/meetings/{m['id']}/invitees/{gp['id']}/response", json={"response": "declined"})
    assert r.status_code == 200, r.text
    inv = {i["participant_id"]: i for i in r.json()["invitees"]}
    assert inv[gp["id"]]["response"] == "declined" and inv[gp["id"]]["responded_at"]
    assert inv[plan["coordinator"]]["response"] == "pending"     # the chair is always invited
    problem(coordinator.put(f"/v1/meetings/{m['id']}/invitees/{citizen_of(plan)['id']}/response",
                            json={"response": "accepted"}), 404)
    problem(coordinator.put(f"/v1/meetings/{m['id']}/invitees/{gp['id']}/response",
                            json={"response": "maybe"}), 422, "response")

# ---------------------------------------------------------------- outcome

def test_outcome_records_everything_and_creates_the_next_meeting(coordinator, make_plan):
    plan = make_plan(coordinator)
    gp = add_participant(coordinator, plan)
    start = local(-1)
    m = schedule(coordinator, plan, start, invitees=[
        {"participant_id": plan["coordinator"]}, {"participant_id": citizen_of(plan)["id"]},
        {"participant_id": gp["id"], "mode": "phone",
         "window_start": (start + dt.timedelta(minutes=15)).isoformat(),
         "window_end": (start + dt.timedelta(minutes=30)).isoformat()}])
    next_start = local(40, 9)
    body = outcome_body(plan, no_further_meeting=None,
                        actions=[{"title": "Bestil tid hos egen læge", "area": "somatic_health",
                                  "responsible_participant_id": gp["id"],
                                  "due_date": (kiptest.cph_today() + dt.timedelta(days=14)).isoformat()},
                                 {"title": "Søg om bolig", "area": "housing",
                                  "responsible_participant_id": plan["coordinator"]}],
                        next_meeting={"starts_at": next_start.isoformat()})
    r = coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=body)
    assert r.status_code == 201, r.text
    held = r.json()
    assert held["status"] == "held" and held["overdue_outcome"] is False
    o = held["outcome"]
    assert o["summary"] == body["summary"] and o["citizen_accepted"] is True
    assert o["shared_assessment"] == body["shared_assessment"]
    assert o["attendance"][0] == {"participant_id": plan["coordinator"], "attended": True, "mode": "in_person"}
    assert o["observations"][0]["text"] == body["observations"][0]["text"]
    assert len(o["action_ids"]) == 2 and o["no_further_meeting"] is None

    nxt = coordinator.get(f"/v1/meetings/{o['next_meeting_id']}").json()
    assert nxt["status"] == "planned" and nxt["previous_meeting_id"] == m["id"]
    assert dt.datetime.fromisoformat(nxt["starts_at"]) == next_start
    assert [i["participant_id"] for i in nxt["invitees"]] == [i["participant_id"] for i in m["invitees"]]
    gp_next = next(i for i in nxt["invitees"] if i["participant_id"] == gp["id"])
    assert dt.datetime.fromisoformat(gp_next["window_start"]) == next_start + dt.timedelta(minutes=15)
    assert nxt["location"] == m["location"] and nxt["purpose"] == m["purpose"]

    doc = coordinator.get(f"/v1/plans/{plan['id']}").json()
    assert [x["id"] for x in doc["meetings"]] == [nxt["id"], m["id"]]      # newest first
    assert doc["meetings"][1]["outcome"]["summary"] == body["summary"]
    agreed = [a for a in doc["actions"] if a["agreed_in_meeting_id"] == m["id"]]
    assert {a["title"] for a in agreed} == {"Bestil tid hos egen læge", "Søg om bolig"}

def test_an_invalid_action_rolls_the_whole_outcome_back(coordinator, make_plan):
    plan = make_plan(coordinator)
    m = schedule(coordinator, plan, local(-2))
    body = outcome_body(plan, no_further_meeting=None,
                        next_meeting={"starts_at": local(30).isoformat()},
                        actions=[{"title": "Gyldig", "area": "housing",
                                  "responsible_participant_id": plan["coordinator"]},
                                 {"title": "Ugyldig", "area": "housing",
                                  "responsible_participant_id": str(uuid.uuid4())}])
    problem(coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=body), 422,
            "actions[1].responsible_participant_id")
    doc = coordinator.get(f"/v1/plans/{plan['id']}").json()
    assert [x["id"] for x in doc["meetings"]] == [m["id"]]          # no next meeting
    assert doc["meetings"][0]["status"] == "planned" and doc["meetings"][0]["outcome"] is None
    assert doc["actions"] == []                                      # and no actions
    # A bad next meeting rolls back the actions as well.
    body["actions"] = body["actions"][:1]
    body["next_meeting"] = {"starts_at": local(30).isoformat(), "duration_minutes": 30}
    problem(coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=body), 422, "next_meeting.duration_minutes")
    assert coordinator.get(f"/v1/plans/{plan['id']}").json()["actions"] == []

def test_a_second_outcome_is_a_conflict(coordinator, make_plan):
    plan = make_plan(coordinator)
    m = schedule(coordinator, plan, local(-1))
    assert coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=outcome_body(plan)).status_code == 201
    problem(coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=outcome_body(plan)), 409, "outcome")

def test_outcome_needs_exactly_one_of_next_meeting_and_no_further_meeting(coordinator, make_plan):
    plan = make_plan(coordinator)
    m = schedule(coordinator, plan, local(-1))
    both = outcome_body(plan, next_meeting={"starts_at": local(20).isoformat()})
    problem(coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=both), 422)
    neither = outcome_body(plan, no_further_meeting=None)
    problem(coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=neither), 422, "next_meeting")
    late = outcome_body(plan, no_further_meeting=None,
                        next_meeting={"starts_at": local(7 * 31).isoformat()})
    problem(coordinator.post(f"/v1/meetings/{m['id']}/outcome", json=late), 422, "next_meeting.starts_at")
    future = schedule(coordinator, plan, local(2))
    problem(coordinator.post(f"/v1/meetings/{future['id']}/outcome", json=outcome_body(plan)), 422, "starts_at")
    assert coordinator.get(f"/v1/meetings/{m['id']}").json()["status"] == "planned"

def test_the_next_meeting_limit_counts_months_in_copenhagen(kipd_factory, pg, new_db):
    """6 months after a meeting held at 00:30 on 1 March Copenhagen time is 1
    September, whatever the database session's time zone. Counted in UTC
    (where the meeting began on 28 February at 23:30) the limit would fall on
    28 August and refuse a next meeting on 31 August."""
    db = new_db()
    pg.psql(f"ALTER DATABASE {db} SET TimeZone = 'UTC'")
    k = kipd_factory(db=db)
    admin = Api(k.url, k.admin_token(), name="admin")
    coord = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
    plan = kiptest.create_plan(coord)
    held = "2026-03-01T00:30:00+01:00"               # a meeting recorded afterwards
    late = schedule(coord, plan, dt.datetime.fromisoformat(held))
    r = coord.post(f"/v1/meetings/{late['id']}/outcome",
                   json=outcome_body(plan, no_further_meeting=None,
                                     next_meeting={"starts_at": "2026-09-01T10:00:00+02:00"}))
    p = problem(r, 422, "next_meeting.starts_at")
    assert "2026-09-01" in r.text, p
    r = coord.post(f"/v1/meetings/{late['id']}/outcome",
                   json=outcome_body(plan, no_further_meeting=None,
                                     next_meeting={"starts_at": "2026-08-31T10:00:00+02:00"}))
    assert r.status_code == 201, r.text

# --------------------------------------------------------- overdue outcomes

def test_overdue_outcome_in_the_plan_and_my_meetings(kipd_factory):
    # A kipd of its own whose timer never runs the daily pass: the module's
    # kipd runs its first pass two seconds after start, which could mark the
    # meeting before the explicit pass below and make it count 0.
    k = kipd_factory(extra_args=["--daily-pass-interval-s", "0"], name="overdue")
    admin = Api(k.url, k.admin_token(), name="admin")
    coordinator = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
    make_plan = kiptest.create_plan
    plan = make_plan(coordinator)
    past = schedule(coordinator, plan, local(-3))
    coming = schedule(coordinator, plan, local(3))
    assert coordinator.get(f"/v1/meetings/{past['id']}").json()["overdue_outcome"] is True
    doc = coordinator.get(f"/v1/plans/{plan['id']}").json()
    flags = {x["id"]: x["overdue_outcome"] for x in doc["meetings"]}
    assert flags == {past["id"]: True, coming["id"]: False}
    r = coordinator.get("/v1/me/meetings")
    mine = {x["id"]: x for x in r.json()["items"]}
    assert mine[past["id"]]["overdue_outcome"] is True and mine[coming["id"]]["overdue_outcome"] is False
    assert mine[past["id"]]["my_participant_id"] == plan["coordinator"]
    assert mine[past["id"]]["citizen"]["cpr"].endswith("-****")

    r = admin.post("/v1/admin/daily-pass")
    assert r.status_code == 200, r.text
    assert r.json()["meeting.outcome_overdue"] >= 1
    assert admin.post("/v1/admin/daily-pass").json()["meeting.outcome_overdue"] == 0

    assert coordinator.post(f"/v1/meetings/{past['id']}/outcome", json=outcome_body(plan)).status_code == 201
    assert coordinator.get(f"/v1/meetings/{past['id']}").json()["overdue_outcome"] is False

def test_my_meetings_range_and_who_sees_them(coordinator, make_plan, make_user):
    plan = make_plan(coordinator)
    colleague = make_user(coordinator.org, ["caseworker"])
    add_participant(coordinator, plan, user_id=colleague.user["id"], role="caseworker", name=None,
                    phone=None, email=None)
    a = schedule(coordinator, plan, local(5))
    b = schedule(coordinator, plan, local(20), invitees=[{"participant_id": plan["coordinator"]}])
    day = lambda n: (kiptest.cph_today() + dt.timedelta(days=n)).isoformat()  # noqa: E731
    ids = [x["id"] for x in coordinator.get("/v1/me/meetings", params={"from": day(0), "to": day(30)})
           .json()["items"]]
    assert ids == [a["id"], b["id"]]
    ids = [x["id"] for x in coordinator.get("/v1/me/meetings", params={"from": day(0), "to": day(5)})
           .json()["items"]]
    assert ids == [a["id"]]
    # The colleague is invited to the first only (default invitees) and the
    # second invited only the tovholder.
    ids = [x["id"] for x in colleague.get("/v1/me/meetings", params={"from": day(0), "to": day(30)})
           .json()["items"]]
    assert ids == [a["id"]]
    problem(coordinator.get("/v1/me/meetings", params={"from": day(5), "to": day(0)}), 422, "to")
    problem(coordinator.get("/v1/me/meetings", params={"from": "tomorrow"}), 422, "from")

# ------------------------------------------------------------------ agenda

def test_agenda_lists_open_actions_and_what_the_last_meeting_agreed(coordinator, make_plan):
    plan = make_plan(coordinator, goals=[{"text": "Stabil bolig", "owner": "citizen"}])
    gp = add_participant(coordinator, plan)
    r = coordinator.post(f"/v1/plans/{plan['id']}/actions",
                         json={"title": "Afklar økonomi", "area": "finances",
                               "responsible_participant_id": gp["id"],
                               "due_date": (kiptest.cph_today() - dt.timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.text
    loose = r.json()
    first = schedule(coordinator, plan, local(-7))
    r = coordinator.post(f"/v1/meetings/{first['id']}/outcome", json=outcome_body(
        plan, no_further_meeting=None, next_meeting={"starts_at": local(7).isoformat()},
        actions=[{"title": "Henvis til misbrugsbehandling", "area": "substances",
                  "responsible_participant_id": plan["coordinator"]}]))
    assert r.status_code == 201, r.text
    nxt = r.json()["outcome"]["next_meeting_id"]

    r = coordinator.get(f"/v1/meetings/{nxt}/agenda")
    assert r.status_code == 200, r.text
    ag = r.json()
    titles = {a["title"]: a for a in ag["open_actions"]}
    assert set(titles) == {"Afklar økonomi", "Henvis til misbrugsbehandling"}
    assert titles["Afklar økonomi"]["overdue"] is True
    assert titles["Afklar økonomi"]["responsible_name"] == "Læge Hansen"
    assert titles["Afklar økonomi"]["id"] == loose["id"]
    assert ag["previous_meeting"]["meeting_id"] == first["id"]
    assert [a["title"] for a in ag["previous_meeting"]["agreed_actions"]] == ["Henvis til misbrugsbehandling"]
    assert ag["goals"][0]["text"] == "Stabil bolig"
    gp_row = next(p for p in ag["participants"] if p["participant_id"] == gp["id"])
    assert gp_row["phone"] == "+45 11 22 33 44" and gp_row["role"] == "general_practitioner"
    assert ag["citizen"]["name"] == plan["citizen"]["name"] and "cpr" not in ag["citizen"]
    assert ag["local"]["start"] == "10:00"
    # The first meeting has no earlier one.
    assert coordinator.get(f"/v1/meetings/{first['id']}/agenda").json()["previous_meeting"] is None

def test_agenda_as_printable_html_escapes_every_value(coordinator, make_plan):
    cpr = kiptest.new_cpr()
    plan = make_plan(coordinator, name="Jens <b>Hansen</b> & Søn", cpr=cpr)
    m = schedule(coordinator, plan, local(2), purpose="<script>alert('x')</script> \"Bolig\" & rusmidler")
    r = coordinator.get(f"/v1/meetings/{m['id']}/agenda", headers={"Accept": "text/html"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    # The page may use its own inline style sheet and nothing else: no script, no frames.
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp, csp
    assert "script-src" not in csp and "frame-ancestors 'none'" in csp, csp
    page = r.text
    assert page.startswith("<!DOCTYPE html>") and '<html lang="da">' in page
    assert "Dagsorden for KIP-møde" in page and "Deltagere" in page and "Åbne indsatser" in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &quot;Bolig&quot; &amp; rusmidler" in page
    assert "<script>" not in page and "<b>Hansen" not in page
    assert "Jens &lt;b&gt;Hansen&lt;/b&gt; &amp; Søn" in page
    assert cpr not in page and cpr.replace("-", "") not in page
    assert "Bispebjerg Bakke 23" in page and "10:00" in page
    # JSON stays the default, and wins when preferred.
    r = coordinator.get(f"/v1/meetings/{m['id']}/agenda",
                        headers={"Accept": "application/json, text/html;q=0.5"})
    assert r.headers["Content-Type"].startswith("application/json")
    r = coordinator.get(f"/v1/meetings/{m['id']}/agenda", headers={"Accept": "text/html;q=0"})
    assert r.headers["Content-Type"].startswith("application/json")
