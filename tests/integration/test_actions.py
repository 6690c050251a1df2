"""Agreed actions (issue 4): creating them, status moves, overdue in
Europe/Copenhagen, history, the /v1/me/actions worklist, leaving with open
actions, the tovholder handover, and the daily pass (run twice, and by two
kipd instances on one database, still making each event once)."""

import datetime
import threading
import uuid
from types import SimpleNamespace

import pytest

import kiptest
from kiptest import UUID_RE, Api, collect_all, etag_version, mask_cpr, parse_time, problem

GIVEN_AT = "2025-03-01T12:00:00+01:00"
DAY = datetime.timedelta(days=1)
ALLOWED_MOVES = {"open": ["cancelled", "done", "in_progress"], "in_progress": ["cancelled", "done"],
                 "done": ["open"], "cancelled": []}


# ---------------------------------------------------------------------------
# helpers

# Today's date in Copenhagen (not UTC: between 22:00/23:00 UTC and midnight
# the two differ), as kipd counts overdue.
cph_today = kiptest.cph_today


def _consent(client, plan, **fields):
    body = {"kip_consent": True, "form": "written", "given_at": GIVEN_AT}
    body.update(fields)
    r = client.post(f"/v1/plans/{plan['id']}/consent", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _join(client, plan, user=None, **fields):
    """Add a professional (linked to `user`'s account when given)."""
    body = {"kind": "professional", "role": "caseworker"}
    if user is not None:
        body["user_id"] = user.user["id"]
    else:
        body["name"] = f"Fagperson {uuid.uuid4().hex[:6]}"
    body.update(fields)
    r = client.post(f"/v1/plans/{plan['id']}/participants", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _leave(client, plan, pid, **params):
    return client.delete(f"/v1/plans/{plan['id']}/participants/{pid}", params=params)


def _action(client, plan, responsible, **fields):
    """POST an action (201 asserted); responsible is a participant id."""
    body = {"title": f"Opgave {uuid.uuid4().hex[:6]}", "area": "housing",
            "responsible_participant_id": responsible}
    body.update(fields)
    r = client.post(f"/v1/plans/{plan['id']}/actions", json=body)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert isinstance(doc.pop("warnings"), list)   # the write's warnings; the action is the rest
    return doc


def _get(client, action_id):
    r = client.get(f"/v1/actions/{action_id}")
    assert r.status_code == 200, r.text
    return r.json()


def _patch(client, action_id, body, version):
    return client.patch(f"/v1/actions/{action_id}", json=body, headers={"If-Match": f'"{version}"'})


def _set(client, action, **body):
    """PATCH at the action's current version; 200 asserted; the new action."""
    current = _get(client, action["id"])
    r = _patch(client, action["id"], body, current["version"])
    assert r.status_code == 200, r.text
    assert etag_version(r) == r.json()["version"] == current["version"] + 1
    doc = r.json()
    assert isinstance(doc.pop("warnings"), list)
    return doc


def _history(client, action_id):
    return collect_all(client, f"/v1/actions/{action_id}/history")


def _my(client, **params):
    r = client.get("/v1/me/actions", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["next_cursor"] is None, "a worklist this small must fit on one page"
    return body["items"]


def _ids(items):
    return [x["id"] for x in items]


def _sql(pg, kipd, query):
    return pg.psql(query, db=kipd.db)


def _event_count(pg, kipd, kind, resource_id):
    return int(_sql(pg, kipd, f"SELECT count(*) FROM kip.events WHERE kind = '{kind}' "
                              f"AND resource_id = '{resource_id}'"))


def _public(item):
    """A worklist item without the worklist's extra members."""
    return {k: v for k, v in item.items() if k not in ("plan", "responsible")}


@pytest.fixture
def team(coordinator, make_user, make_plan):
    """One plan; the tovholder, a responsible caseworker and a second
    caseworker who is a participant but neither tovholder nor responsible,
    all in the tovholder's organisation."""
    plan = make_plan(coordinator)
    mate = make_user(coordinator.org, ["caseworker"], display_name="Mette Ansvarlig")
    other = make_user(coordinator.org, ["caseworker"], display_name="Ole Tilskuer")
    return SimpleNamespace(plan=plan, tov=coordinator, tov_pid=plan["coordinator"],
                           mate=mate, mate_pid=_join(coordinator, plan, mate)["id"],
                           other=other, other_pid=_join(coordinator, plan, other)["id"])


# ---------------------------------------------------------------------------
# creating and reading

def test_create_and_read_an_action(team):
    plan, tov = team.plan, team.tov
    due = (cph_today() + 14 * DAY).isoformat()
    r = tov.post(f"/v1/plans/{plan['id']}/actions",
                 json={"title": "Søg om boligstøtte", "description": "Sammen med borgeren på borger.dk",
                       "area": "finances", "responsible_participant_id": team.mate_pid,
                       "due_date": due})
    assert r.status_code == 201, r.text
    a = r.json()
    assert UUID_RE.match(a["id"])
    assert r.headers.get("Location", "").endswith(f"/v1/actions/{a['id']}")
    assert etag_version(r) == a["version"] == 1
    assert a["plan_id"] == plan["id"]
    assert a["title"] == "Søg om boligstøtte"
    assert a["description"] == "Sammen med borgeren på borger.dk"
    assert a["area"] == "finances"
    assert a["responsible_participant_id"] == team.mate_pid
    assert a["due_date"] == due
    assert a["status"] == "open"
    assert a["agreed_in_meeting_id"] is None
    assert a["completed_at"] is None
    assert a["overdue"] is False
    assert a["created_at"] and a["updated_at"]
    assert a.pop("warnings") == []

    r = tov.get(f"/v1/actions/{a['id']}")
    assert r.status_code == 200 and r.json() == a
    assert etag_version(r) == 1
    assert team.mate.get(f"/v1/actions/{a['id']}").json() == a
    listed = tov.get(f"/v1/plans/{plan['id']}/actions").json()
    assert listed["items"] == [a] and listed["next_cursor"] is None
    assert tov.get(f"/v1/plans/{plan['id']}").json()["actions"] == [a]


def test_plan_actions_are_listed_oldest_first(team):
    made = [_action(team.tov, team.plan, team.mate_pid, title=f"Nr. {i}") for i in range(3)]
    listed = team.tov.get(f"/v1/plans/{team.plan['id']}/actions").json()["items"]
    assert _ids(listed) == _ids(made)
    assert _ids(team.tov.get(f"/v1/plans/{team.plan['id']}").json()["actions"]) == _ids(made)


def test_every_area_is_accepted(team):
    """Every needs area and `other` are accepted; anything else is 422."""
    for area in ("substances", "somatic_health", "mental_health", "housing", "finances", "employment",
                 "crime", "family_children", "network", "other"):
        assert _action(team.tov, team.plan, team.mate_pid, area=area)["area"] == area


def test_an_action_without_a_responsible_is_422(team):
    url = f"/v1/plans/{team.plan['id']}/actions"
    problem(team.tov.post(url, json={"title": "Ingen ansvarlig", "area": "housing"}),
            422, "responsible_participant_id", "validation")
    assert team.tov.get(url).json()["items"] == []


@pytest.mark.parametrize("body,field", [
    ({"area": "housing"}, "title"),
    ({"title": "", "area": "housing"}, "title"),
    ({"title": "X" * 201, "area": "housing"}, "title"),
    ({"title": "Have", "area": "garden"}, "area"),
    ({"title": "Uden område"}, "area"),
    ({"title": "Dato", "area": "housing", "due_date": "2026-02-30"}, "due_date"),
    ({"title": "Dato", "area": "housing", "due_date": "01-03-2026"}, "due_date"),
])
def test_invalid_action_is_422(team, body, field):
    body = dict(body, responsible_participant_id=team.mate_pid)
    problem(team.tov.post(f"/v1/plans/{team.plan['id']}/actions", json=body), 422, field)
    assert team.tov.get(f"/v1/plans/{team.plan['id']}/actions").json()["items"] == []


def test_unknown_action_field_is_400(team):
    problem(team.tov.post(f"/v1/plans/{team.plan['id']}/actions",
                          json={"title": "X", "area": "other", "responsible_participant_id": team.mate_pid,
                                "priority": "high"}), 400, "priority")


def test_responsible_from_another_plan_or_unknown_is_422(team, make_plan):
    other_plan = make_plan(team.tov)
    foreign = _join(team.tov, other_plan)["id"]
    url = f"/v1/plans/{team.plan['id']}/actions"
    for responsible in (foreign, other_plan["coordinator"], str(uuid.uuid4()), "not-a-uuid"):
        problem(team.tov.post(url, json={"title": "Forkert plan", "area": "other",
                                         "responsible_participant_id": responsible}),
                422, "responsible_participant_id")
    assert team.tov.get(url).json()["items"] == []
    assert team.tov.get(f"/v1/plans/{other_plan['id']}/actions").json()["items"] == []


def test_a_responsible_who_has_left_is_422(team):
    a = _action(team.tov, team.plan, team.mate_pid)
    gone = _join(team.tov, team.plan)["id"]
    assert _leave(team.tov, team.plan, gone).status_code == 200
    problem(team.tov.post(f"/v1/plans/{team.plan['id']}/actions",
                          json={"title": "Til en der er gået", "area": "other",
                                "responsible_participant_id": gone}), 422, "responsible_participant_id")
    # Nor can an existing action be handed to them.
    problem(_patch(team.tov, a["id"], {"responsible_participant_id": gone}, 1), 422,
            "responsible_participant_id")
    assert _get(team.tov, a["id"]) == a


def test_reassign_by_patch_to_another_plans_participant_is_422(team, make_plan):
    a = _action(team.tov, team.plan, team.mate_pid)
    foreign = _join(team.tov, make_plan(team.tov))["id"]
    for responsible in (foreign, str(uuid.uuid4())):
        problem(_patch(team.tov, a["id"], {"responsible_participant_id": responsible}, 1), 422,
                "responsible_participant_id")
    assert _get(team.tov, a["id"]) == a
    b = _set(team.tov, a, responsible_participant_id=team.other_pid)
    assert b["responsible_participant_id"] == team.other_pid


def test_agreed_in_meeting_id_must_be_a_meeting_of_the_plan(team):
    problem(team.tov.post(f"/v1/plans/{team.plan['id']}/actions",
                          json={"title": "Fra et møde der ikke findes", "area": "other",
                                "responsible_participant_id": team.mate_pid,
                                "agreed_in_meeting_id": str(uuid.uuid4())}), 422, "agreed_in_meeting_id")


def test_closed_plan_takes_no_new_actions(team):
    a = _action(team.tov, team.plan, team.mate_pid)
    version = team.tov.get(f"/v1/plans/{team.plan['id']}").json()["version"]
    r = team.tov.post(f"/v1/plans/{team.plan['id']}/close", json={"reason": "completed"},
                      headers={"If-Match": f'"{version}"'})
    assert r.status_code == 200, r.text
    problem(team.tov.post(f"/v1/plans/{team.plan['id']}/actions",
                          json={"title": "For sent", "area": "other",
                                "responsible_participant_id": team.mate_pid}), 409)
    problem(_patch(team.tov, a["id"], {"title": "For sent"}, 1), 409)
    assert _get(team.tov, a["id"])["title"] == a["title"]


# ---------------------------------------------------------------------------
# status moves

def test_open_in_progress_done(team):
    a = _action(team.tov, team.plan, team.mate_pid)
    assert a["status"] == "open" and a["completed_at"] is None
    b = _set(team.mate, a, status="in_progress")
    assert b["status"] == "in_progress" and b["completed_at"] is None
    before = kiptest.now_utc()
    c = _set(team.mate, b, status="done")
    assert c["status"] == "done" and c["completed_at"] is not None
    assert abs((parse_time(c["completed_at"]) - before).total_seconds()) < 60
    assert _get(team.tov, a["id"]) == c
    # The tovholder sees the change in the plan too.
    embedded = {x["id"]: x for x in team.tov.get(f"/v1/plans/{team.plan['id']}").json()["actions"]}
    assert embedded[a["id"]] == c


def test_open_to_done_directly(team):
    a = _action(team.tov, team.plan, team.mate_pid)
    c = _set(team.mate, a, status="done")
    assert c["status"] == "done" and c["completed_at"] is not None


@pytest.mark.parametrize("path", [["cancelled"], ["in_progress", "cancelled"]])
def test_cancel(team, path):
    a = _action(team.tov, team.plan, team.mate_pid)
    for status in path:
        a = _set(team.tov, a, status=status)
    assert a["status"] == "cancelled" and a["completed_at"] is None and a["overdue"] is False


@pytest.mark.parametrize("who", ["tovholder", "responsible"])
def test_reopen_by_tovholder_or_responsible(pg, kipd, team, who):
    client = team.tov if who == "tovholder" else team.mate
    yesterday = (cph_today() - DAY).isoformat()
    a = _action(team.tov, team.plan, team.mate_pid, due_date=yesterday)
    assert a["overdue"] is True
    done = _set(team.mate, a, status="done")
    assert done["completed_at"] is not None and done["overdue"] is False
    reopened = _set(client, done, status="open")
    assert reopened["status"] == "open"
    assert reopened["completed_at"] is None
    assert reopened["overdue"] is True, "a reopened action past its due date is overdue again"
    # Recorded: in the history, by whom, and as an event.
    hist = _history(team.tov, a["id"])
    status_changes = [(h["before"], h["after"], h["user_id"]) for h in hist
                      if h["field"] == "status" and h["operation"] == "update"]
    assert status_changes == [("open", "done", team.mate.user["id"]), ("done", "open", client.user["id"])]
    completed = [(h["before"] is None, h["after"] is None) for h in hist
                 if h["field"] == "completed_at" and h["operation"] == "update"]
    assert completed == [(True, False), (False, True)]
    assert _event_count(pg, kipd, "action.completed", a["id"]) == 1
    assert _event_count(pg, kipd, "action.reopened", a["id"]) == 1
    # Done again: a fresh completed_at.
    again = _set(team.mate, reopened, status="done")
    assert again["completed_at"] is not None


def test_reopen_by_another_participant_is_403(team, make_user):
    a = _set(team.mate, _action(team.tov, team.plan, team.mate_pid), status="done")
    # Another participant may not change an action that is not theirs at all.
    problem(_patch(team.other, a["id"], {"status": "open"}, a["version"]), 403, "Authorization", "forbidden")
    # A caseworker of the owning organisation who is no participant may not change the plan.
    outsider = make_user(team.tov.org, ["caseworker"])
    problem(_patch(outsider, a["id"], {"status": "open"}, a["version"]), 403, "Authorization")
    # A coordinator of the owning organisation may change actions, but reopening a done one
    # is for the tovholder and the responsible participant only.
    lead = make_user(team.tov.org, ["coordinator"])
    problem(_patch(lead, a["id"], {"status": "open"}, a["version"]), 403, "status")
    assert _get(team.tov, a["id"]) == a
    b = _set(lead, _action(team.tov, team.plan, team.mate_pid), status="in_progress")
    assert b["status"] == "in_progress"
    # The other participant works on the actions they are responsible for.
    c = _set(team.other, _action(team.tov, team.plan, team.other_pid), status="in_progress")
    assert c["status"] == "in_progress"


@pytest.mark.parametrize("path,target", [
    (["in_progress"], "open"),
    (["cancelled"], "open"),
    (["cancelled"], "in_progress"),
    (["cancelled"], "done"),
    (["in_progress", "cancelled"], "open"),
    (["done"], "in_progress"),
    (["done"], "cancelled"),
])
def test_forbidden_status_move_is_409(team, path, target):
    a = _action(team.tov, team.plan, team.mate_pid)
    for status in path:
        a = _set(team.tov, a, status=status)
    body = problem(_patch(team.tov, a["id"], {"status": target}, a["version"]), 409, "status", "conflict")
    assert "allowed_status" in body, body
    assert sorted(body["allowed_status"]) == ALLOWED_MOVES[path[-1]], body
    assert _get(team.tov, a["id"]) == a


def test_a_cancelled_action_cannot_be_edited(team):
    a = _set(team.tov, _action(team.tov, team.plan, team.mate_pid), status="cancelled")
    for body in ({"title": "Ny titel"}, {"due_date": "2030-01-01"},
                 {"responsible_participant_id": team.other_pid}):
        problem(_patch(team.tov, a["id"], body, a["version"]), 409, "status")
    assert _get(team.tov, a["id"]) == a


def test_unknown_status_is_422(team):
    a = _action(team.tov, team.plan, team.mate_pid)
    problem(_patch(team.tov, a["id"], {"status": "finished"}, 1), 422, "status")
    problem(_patch(team.tov, a["id"], {"overdue": True}, 1), 400, "overdue")
    problem(_patch(team.tov, a["id"], {"completed_at": "2026-01-01T00:00:00Z"}, 1), 400, "completed_at")
    assert _get(team.tov, a["id"]) == a


def test_patch_needs_if_match(team):
    a = _action(team.tov, team.plan, team.mate_pid, title="Før")
    url = f"/v1/actions/{a['id']}"
    problem(team.tov.patch(url, json={"title": "Uden If-Match"}), 428, "If-Match", "precondition-required")
    assert _get(team.tov, a["id"]) == a
    b = _set(team.tov, a, title="Efter")
    hist_before = _history(team.tov, a["id"])
    problem(team.tov.patch(url, json={"title": "Forældet"}, headers={"If-Match": '"1"'}), 412, "If-Match",
            "precondition-failed")
    problem(team.tov.patch(url, json={"status": "done"}, headers={"If-Match": '"1"'}), 412)
    assert _get(team.tov, a["id"]) == b, "a stale PATCH changed the action"
    assert _history(team.tov, a["id"]) == hist_before, "a stale PATCH left history"
    # Unquoted and `*` are accepted as the conventions say.
    r = team.tov.patch(url, json={"title": "Uden anførselstegn"}, headers={"If-Match": "2"})
    assert r.status_code == 200, r.text
    r = team.tov.patch(url, json={"title": "Stjerne"}, headers={"If-Match": "*"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 4 and r.json()["title"] == "Stjerne"


# ---------------------------------------------------------------------------
# overdue, counted in Europe/Copenhagen

def test_overdue_is_derived_in_copenhagen(team):
    for _ in range(2):                       # retried once if the test straddles midnight
        today = cph_today()
        made = {
            "yesterday": _action(team.tov, team.plan, team.mate_pid, due_date=(today - DAY).isoformat()),
            "long_ago": _action(team.tov, team.plan, team.mate_pid, due_date="2020-01-31"),
            "today": _action(team.tov, team.plan, team.mate_pid, due_date=today.isoformat()),
            "tomorrow": _action(team.tov, team.plan, team.mate_pid, due_date=(today + DAY).isoformat()),
            "no_date": _action(team.tov, team.plan, team.mate_pid),
            "in_progress": _action(team.tov, team.plan, team.mate_pid, due_date=(today - DAY).isoformat()),
            "done": _action(team.tov, team.plan, team.mate_pid, due_date=(today - DAY).isoformat()),
            "cancelled": _action(team.tov, team.plan, team.mate_pid, due_date="2020-01-31"),
        }
        made["in_progress"] = _set(team.mate, made["in_progress"], status="in_progress")
        made["done"] = _set(team.mate, made["done"], status="done")
        made["cancelled"] = _set(team.mate, made["cancelled"], status="cancelled")
        read = {k: _get(team.tov, v["id"]) for k, v in made.items()}
        embedded = {a["id"]: a for a in team.tov.get(f"/v1/plans/{team.plan['id']}").json()["actions"]}
        worklist = {a["id"]: a for a in _my(team.mate)}
        if cph_today() == today:
            break
    expected = {"yesterday": True, "long_ago": True, "today": False, "tomorrow": False, "no_date": False,
                "in_progress": True, "done": False, "cancelled": False}
    assert {k: v["overdue"] for k, v in read.items()} == expected
    assert {k: embedded[v["id"]]["overdue"] for k, v in made.items()} == expected
    assert {k: worklist[v["id"]]["overdue"] for k, v in made.items()} == expected
    # Moving the due date back changes it on the next read; nothing is stored.
    moved = _set(team.tov, read["today"], due_date=(today - DAY).isoformat())
    assert moved["overdue"] is True
    moved = _set(team.tov, moved, due_date=None)
    assert moved["overdue"] is False


@pytest.mark.parametrize("due,at,overdue,today", [
    # Winter time (CET, UTC+1): 23:00 UTC is midnight in Copenhagen.
    ("2026-03-28", "2026-03-28T22:59:59Z", False, "2026-03-28"),
    ("2026-03-28", "2026-03-28T23:00:00Z", True, "2026-03-29"),
    ("2026-01-15", "2026-01-15T22:59:59.999Z", False, "2026-01-15"),
    ("2026-01-15", "2026-01-15T23:00:00Z", True, "2026-01-16"),
    # Summer time (CEST, UTC+2): 22:00 UTC is midnight.
    ("2026-07-01", "2026-07-01T21:59:59Z", False, "2026-07-01"),
    ("2026-07-01", "2026-07-01T22:00:00Z", True, "2026-07-02"),
    ("2026-07-01", "2026-07-01T23:30:00Z", True, "2026-07-02"),   # still 1 July in UTC
    # The nights the clocks change.
    ("2026-03-29", "2026-03-29T21:59:59Z", False, "2026-03-29"),
    ("2026-03-29", "2026-03-29T22:00:00Z", True, "2026-03-30"),
    ("2026-10-24", "2026-10-24T21:59:59Z", False, "2026-10-24"),
    ("2026-10-24", "2026-10-24T22:00:00Z", True, "2026-10-25"),
    ("2026-10-25", "2026-10-25T22:59:59Z", False, "2026-10-25"),
    ("2026-10-25", "2026-10-25T23:00:00Z", True, "2026-10-26"),
    # An instant given with another offset means the same moment.
    ("2026-03-28", "2026-03-29T00:00:00+01:00", True, "2026-03-29"),
    ("2026-03-28", "2026-03-28T18:59:59-04:00", False, "2026-03-28"),
])
def test_overdue_boundary_in_sql(pg, kipd, due, at, overdue, today):
    # The session's own time zone must not matter.
    for tz in ("UTC", "Europe/Copenhagen", "America/New_York", "Pacific/Auckland"):
        out = _sql(pg, kipd, f"SET TimeZone = '{tz}'; "
                             f"SELECT kip.action_overdue('{due}', 'open', '{at}') || ',' "
                             f"|| kip.action_overdue('{due}', 'in_progress', '{at}') || ',' "
                             f"|| kip.action_overdue('{due}', 'done', '{at}') || ',' "
                             f"|| kip.action_overdue('{due}', 'cancelled', '{at}') || ',' "
                             f"|| coalesce(kip.action_overdue(NULL, 'open', '{at}'), false) || ',' "
                             f"|| kip.today('{at}')")
        t = "true" if overdue else "false"
        assert out == f"{t},{t},false,false,false,{today}", f"TimeZone={tz}: {out}"


def test_sql_today_matches_copenhagen_now(pg, kipd):
    for _ in range(2):
        before = cph_today()
        got = _sql(pg, kipd, "SET TimeZone = 'Pacific/Kiritimati'; SELECT kip.today()")
        if cph_today() == before:
            break
    assert got == before.isoformat()


# ---------------------------------------------------------------------------
# history

def test_history_records_every_change(team):
    tov, mate = team.tov, team.mate
    due1 = (cph_today() + 7 * DAY).isoformat()
    due2 = (cph_today() + 10 * DAY).isoformat()
    a = _action(tov, team.plan, team.mate_pid, title="Kontakt lægen", due_date=due1, area="somatic_health")
    a = _set(mate, a, title="Kontakt egen læge")
    a = _set(tov, a, due_date=due2)
    a = _set(mate, a, status="in_progress")
    a = _set(tov, a, responsible_participant_id=team.other_pid)
    a = _set(team.other, a, description="Ring mandag", area="mental_health")
    a = _set(team.other, a, status="done")

    hist = _history(tov, a["id"])
    assert all(h["resource"] == "action" and h["resource_id"] == a["id"] for h in hist)
    assert all(UUID_RE.match(h["user_id"]) for h in hist)
    assert [parse_time(h["at"]) for h in hist] == sorted(parse_time(h["at"]) for h in hist)
    created = {h["field"]: h for h in hist if h["operation"] == "create"}
    assert created["title"]["after"] == "Kontakt lægen" and created["title"]["before"] is None
    assert created["title"]["user_id"] == tov.user["id"]
    assert created["due_date"]["after"] == due1
    assert created["status"]["after"] == "open"
    assert created["responsible_participant_id"]["after"] == team.mate_pid
    updates = [(h["field"], h["before"], h["after"], h["user_id"]) for h in hist if h["operation"] == "update"]
    expected = [
        ("title", "Kontakt lægen", "Kontakt egen læge", mate.user["id"]),
        ("due_date", due1, due2, tov.user["id"]),
        ("status", "open", "in_progress", mate.user["id"]),
        ("responsible_participant_id", team.mate_pid, team.other_pid, tov.user["id"]),
        ("description", None, "Ring mandag", team.other.user["id"]),
        ("area", "somatic_health", "mental_health", team.other.user["id"]),
        ("status", "in_progress", "done", team.other.user["id"]),
    ]
    for change in expected:
        assert change in updates, f"{change} missing from the history: {updates}"
    # Nothing else: completed_at is the only other field that changed.
    others = [u for u in updates if u not in expected]
    assert [u[0] for u in others] == ["completed_at"], others
    assert others[0][1] is None and others[0][2] == a["completed_at"] and others[0][3] == team.other.user["id"]
    # Oldest first, and pages of one give the same list.
    assert collect_all(tov, f"/v1/actions/{a['id']}/history", limit=1) == hist
    assert [u for u in updates if u[0] == "status"] == [expected[2], expected[6]]


def test_history_of_an_untouched_action_and_bad_cursor(team):
    a = _action(team.tov, team.plan, team.mate_pid)
    hist = _history(team.tov, a["id"])
    assert hist and all(h["operation"] == "create" for h in hist)
    problem(team.tov.get(f"/v1/actions/{a['id']}/history", params={"cursor": "nonsense!"}), 400, "cursor")
    problem(team.tov.get(f"/v1/actions/{a['id']}/history", params={"limit": "0"}), 422, "limit")


# ---------------------------------------------------------------------------
# access

def test_an_action_in_a_plan_you_cannot_see_is_404(team, make_org, make_user):
    a = _action(team.tov, team.plan, team.mate_pid)
    stranger = make_user(make_org(), ["coordinator", "caseworker"])
    missing = str(uuid.uuid4())
    for action_id in (a["id"], missing):
        problem(stranger.get(f"/v1/actions/{action_id}"), 404, type_suffix="not-found")
        problem(_patch(stranger, action_id, {"title": "Kapret"}, 1), 404)
        problem(_patch(stranger, action_id, {"status": "cancelled"}, 1), 404)
        problem(stranger.get(f"/v1/actions/{action_id}/history"), 404)
    problem(stranger.get(f"/v1/plans/{team.plan['id']}/actions"), 404)
    problem(stranger.post(f"/v1/plans/{team.plan['id']}/actions",
                          json={"title": "X", "area": "other", "responsible_participant_id": team.mate_pid}),
            404)
    assert _get(team.tov, a["id"]) == a
    assert stranger.get("/v1/me/actions", params={"scope": "organisation"}).json()["items"] == []
    problem(team.tov.get(f"/v1/actions/{missing}"), 404)


def test_admin_sees_no_action(admin, team):
    a = _action(team.tov, team.plan, team.mate_pid)
    problem(admin.get(f"/v1/actions/{a['id']}"), 404)
    problem(admin.get(f"/v1/actions/{a['id']}/history"), 404)


def test_actions_need_authentication(anon, team):
    a = _action(team.tov, team.plan, team.mate_pid)
    for r in (anon.get(f"/v1/actions/{a['id']}"), anon.get("/v1/me/actions"),
              anon.get(f"/v1/actions/{a['id']}/history"), anon.post("/v1/admin/daily-pass")):
        problem(r, 401)
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")


# ---------------------------------------------------------------------------
# /v1/me/actions

@pytest.fixture
def jobcentre(coordinator, make_org, make_user, make_plan):
    """Two plans owned by the tovholder's organisation. Their consents cover
    a jobcentre; its caseworker takes part in both and is responsible for
    eight actions, in every status and with every kind of due date. A
    colleague of theirs in the jobcentre takes part in nothing."""
    job = make_org(sector="municipality_jobcenter")
    worker = make_user(job, ["caseworker"], display_name="Jonas Jobcenter")
    colleague = make_user(job, ["caseworker"], display_name="Lise Teamleder")
    today = cph_today()
    plans, pids = [], []
    for who in ("Anna Ærø", "Bo Østergaard"):
        plan = kiptest.create_plan(coordinator, name=f"{who} {uuid.uuid4().hex[:4]}")
        _consent(coordinator, plan, contact_organisation_ids=[job["id"]])
        pid = _join(coordinator, plan, worker, role="jobcenter_caseworker")["id"]
        plans.append(coordinator.get(f"/v1/plans/{plan['id']}").json())
        pids.append(pid)
    A, B = plans

    def mk(plan, pid, due, status=None):
        a = _action(coordinator, plan, pid, due_date=due.isoformat() if due else None, area="employment")
        if status:
            a = _set(worker, a, status=status)
        return a

    acts = {
        "a_late3": mk(A, pids[0], today - 3 * DAY),
        "a_plus5": mk(A, pids[0], today + 5 * DAY),
        "a_nodate": mk(A, pids[0], None),
        "a_done": mk(A, pids[0], today - DAY, "done"),
        "b_late1": mk(B, pids[1], today - DAY, "in_progress"),
        "b_plus2": mk(B, pids[1], today + 2 * DAY),
        "b_plus5": mk(B, pids[1], today + 5 * DAY),
        "b_cancelled": mk(B, pids[1], today + DAY, "cancelled"),
    }
    # The tovholder's own action is nobody else's business on these lists.
    own = _action(coordinator, A, A["coordinator"], due_date=(today - 2 * DAY).isoformat())

    def key(a):
        return (0 if a["overdue"] else 1, a["due_date"] or "9999-12-31", a["id"])

    order = [a["id"] for a in sorted((_get(coordinator, a["id"]) for a in acts.values()), key=key)]
    return SimpleNamespace(job=job, worker=worker, colleague=colleague, tov=coordinator, plans=plans,
                           pids=pids, acts=acts, own=own, order=order, today=today)


def test_my_actions_for_a_caseworker_of_another_organisation(jobcentre):
    w = jobcentre
    r = w.worker.get("/v1/me/actions")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert r.json()["next_cursor"] is None
    assert set(_ids(items)) == {a["id"] for a in w.acts.values()}, "not exactly the caller's actions"
    for plan in w.plans:
        cpr = plan["citizen"]["cpr"]
        assert cpr not in r.text and cpr.replace("-", "") not in r.text, "the full CPR is in the worklist"
    by_plan = {p["id"]: (p, pid) for p, pid in zip(w.plans, w.pids)}
    for item in items:
        plan, pid = by_plan[item["plan_id"]]
        assert _public(item) == _get(w.worker, item["id"])
        assert item["plan"]["id"] == plan["id"]
        assert item["plan"]["status"] == "active"
        assert item["plan"]["citizen"] == {"name": plan["citizen"]["name"], "cpr": mask_cpr(plan["citizen"]["cpr"])}
        assert item["plan"]["citizen"]["cpr"].endswith("-****")
        assert item["plan"]["coordinator"]["participant_id"] == plan["coordinator"]
        assert item["plan"]["coordinator"]["name"] == w.tov.user["display_name"]
        assert item["responsible"] == {"participant_id": pid, "name": "Jonas Jobcenter",
                                       "organisation_id": w.job["id"]}


def test_my_actions_order_overdue_first_then_due_date_none_last(jobcentre):
    w = jobcentre
    items = _my(w.worker)
    assert _ids(items) == w.order
    acts = w.acts
    # Spelled out, to catch a wrong key in both places at once.
    assert _ids(items)[:2] == [acts["a_late3"]["id"], acts["b_late1"]["id"]]
    assert _ids(items)[2] == acts["a_done"]["id"]                 # due yesterday but done: not overdue
    assert _ids(items)[3:5] == [acts["b_cancelled"]["id"], acts["b_plus2"]["id"]]
    assert set(_ids(items)[5:7]) == {acts["a_plus5"]["id"], acts["b_plus5"]["id"]}
    assert _ids(items)[7] == acts["a_nodate"]["id"]
    assert [x["overdue"] for x in items] == [True, True] + [False] * 6


def test_my_actions_filters(jobcentre):
    w = jobcentre
    acts, order = w.acts, w.order

    def expect(names):
        wanted = {acts[n]["id"] for n in names}
        return [i for i in order if i in wanted]

    assert _ids(_my(w.worker, status="open")) == expect(["a_late3", "a_plus5", "a_nodate", "b_plus2", "b_plus5"])
    assert _ids(_my(w.worker, status="in_progress")) == expect(["b_late1"])
    assert _ids(_my(w.worker, status="done")) == expect(["a_done"])
    assert _ids(_my(w.worker, status="cancelled")) == expect(["b_cancelled"])
    assert _ids(_my(w.worker, overdue="true")) == expect(["a_late3", "b_late1"])
    assert _ids(_my(w.worker, overdue="false")) == expect(["a_plus5", "a_nodate", "a_done", "b_plus2",
                                                           "b_plus5", "b_cancelled"])
    # due_before is strict and leaves out actions without a due date.
    cut = (w.today + 2 * DAY).isoformat()
    assert _ids(_my(w.worker, due_before=cut)) == expect(["a_late3", "a_done", "b_late1", "b_cancelled"])
    assert _ids(_my(w.worker, due_before="2000-01-01")) == []
    assert _ids(_my(w.worker, status="open", overdue="true")) == expect(["a_late3"])
    assert _ids(_my(w.worker, status="open", due_before=cut, scope="mine")) == expect(["a_late3"])
    for params, field in (({"status": "finished"}, "status"), ({"overdue": "maybe"}, "overdue"),
                          ({"due_before": "2026-13-01"}, "due_before"), ({"scope": "everyone"}, "scope"),
                          ({"limit": "0"}, "limit"), ({"limit": "501"}, "limit")):
        problem(w.worker.get("/v1/me/actions", params=params), 422, field)
    problem(w.worker.get("/v1/me/actions", params={"cursor": "not-a-cursor"}), 400, "cursor")


def test_my_actions_paging(jobcentre):
    w = jobcentre
    assert _ids(collect_all(w.worker, "/v1/me/actions", limit=1)) == w.order
    assert _ids(collect_all(w.worker, "/v1/me/actions", limit=3)) == w.order
    r = w.worker.get("/v1/me/actions", params={"limit": 8})
    assert _ids(r.json()["items"]) == w.order and r.json()["next_cursor"] is None
    # A filter holds across pages.
    assert _ids(collect_all(w.worker, "/v1/me/actions", params={"overdue": "false"}, limit=1)) == \
        [i for i in w.order if i not in (w.acts["a_late3"]["id"], w.acts["b_late1"]["id"])]


def test_my_actions_reflect_changes_at_once(jobcentre):
    """The jobcentre caseworker works through the list: in progress, done;
    the tovholder sees who did it."""
    w = jobcentre
    target = w.acts["b_plus2"]
    b = _set(w.worker, target, status="in_progress")
    b = _set(w.worker, b, status="done")
    mine = {x["id"]: x for x in _my(w.worker)}
    assert mine[target["id"]]["status"] == "done" and mine[target["id"]]["completed_at"] == b["completed_at"]
    assert _ids(_my(w.worker, status="open")).count(target["id"]) == 0
    plan = w.tov.get(f"/v1/plans/{target['plan_id']}").json()
    assert {a["id"]: a for a in plan["actions"]}[target["id"]] == b
    hist = _history(w.tov, target["id"])
    assert [(h["before"], h["after"], h["user_id"]) for h in hist if h["field"] == "status"
            and h["operation"] == "update"] == [("open", "in_progress", w.worker.user["id"]),
                                                ("in_progress", "done", w.worker.user["id"])]
    # ... and in the plan's history, which holds its actions' changes too.
    plan_hist = collect_all(w.tov, f"/v1/plans/{target['plan_id']}/history")
    assert [(h["before"], h["after"], h["user_id"]) for h in plan_hist
            if h["resource"] == "action" and h["resource_id"] == target["id"] and h["field"] == "status"
            and h["operation"] == "update"] == [("open", "in_progress", w.worker.user["id"]),
                                                ("in_progress", "done", w.worker.user["id"])]


def test_my_overdue_actions_follow_the_responsible_participant_and_its_user(jobcentre, pg, kipd):
    """?overdue=true reads the caller's open actions through the user kept on
    each action (migrations/027, kip.actions_responsible_user): handing an
    action to someone else, and linking the responsible participant to
    another user, move it between worklists at once, and the derived column
    never shows in the history."""
    w = jobcentre
    late3, late1 = w.acts["a_late3"], w.acts["b_late1"]
    assert _ids(_my(w.worker, overdue="true")) == [late3["id"], late1["id"]]
    assert _ids(collect_all(w.worker, "/v1/me/actions", params={"overdue": "true"}, limit=1)) == \
        [late3["id"], late1["id"]]
    tov_own = [w.own["id"]]
    assert _ids(_my(w.tov, overdue="true")) == tov_own
    # Handed to the tovholder: off the caseworker's list, onto the tovholder's, in due-date order.
    moved = _set(w.tov, late3, responsible_participant_id=w.plans[0]["coordinator"])
    assert _ids(_my(w.worker, overdue="true")) == [late1["id"]]
    assert _ids(_my(w.tov, overdue="true")) == [late3["id"], w.own["id"]]
    _set(w.tov, moved, responsible_participant_id=w.pids[0])
    assert _ids(_my(w.worker, overdue="true")) == [late3["id"], late1["id"]]
    # No route changes a participant's user; the column follows one anyway.
    _sql(pg, kipd, f"UPDATE kip.participants SET user_id = '{w.colleague.user['id']}' WHERE id = '{w.pids[1]}'")
    assert _ids(_my(w.worker, overdue="true")) == [late3["id"]]
    assert _ids(_my(w.colleague, overdue="true")) == [late1["id"]]
    assert _sql(pg, kipd, "SELECT count(*) FROM kip.actions a JOIN kip.participants pa "
                          "ON pa.id = a.responsible_participant_id "
                          "WHERE a.responsible_user_id IS DISTINCT FROM pa.user_id") == "0"
    for a in (late3, late1):
        assert all(h["field"] != "responsible_user_id" for h in _history(w.tov, a["id"]))
        assert "responsible_user_id" not in _get(w.tov, a["id"])


def test_scope_organisation_for_a_colleague(jobcentre):
    w = jobcentre
    # Not a participant anywhere: nothing of their own ...
    assert _my(w.colleague) == []
    assert _my(w.colleague, scope="mine") == []
    # ... but the organisation's work, for re-balancing it.
    items = _my(w.colleague, scope="organisation")
    assert _ids(items) == w.order
    assert all(x["responsible"]["organisation_id"] == w.job["id"] for x in items)
    assert _ids(_my(w.colleague, scope="organisation", overdue="true")) == w.order[:2]
    assert _ids(collect_all(w.colleague, "/v1/me/actions", params={"scope": "organisation"}, limit=1)) == w.order
    assert _ids(_my(w.worker, scope="organisation")) == w.order
    # The tovholder's organisation: only the tovholder's own action.
    assert _ids(_my(w.tov, scope="organisation")) == [w.own["id"]]
    assert _ids(_my(w.tov)) == [w.own["id"]]


def test_an_unrelated_organisation_sees_nothing(jobcentre, make_org, make_user):
    w = jobcentre
    stranger_org = make_org(sector="municipality_jobcenter")
    for roles in (["caseworker"], ["coordinator"], ["caseworker", "coordinator", "integration"]):
        stranger = make_user(stranger_org, roles)
        assert _my(stranger) == []
        assert _my(stranger, scope="organisation") == []
        problem(stranger.get(f"/v1/actions/{w.acts['a_late3']['id']}"), 404)


def test_withdrawn_consent_hides_the_plan_from_the_other_organisation(jobcentre):
    w = jobcentre
    A, B = w.plans
    r = w.tov.post(f"/v1/plans/{A['id']}/consent/withdraw", json={"note": "Borgeren trækker samtykket"})
    assert r.status_code == 200, r.text
    only_b = [i for i in w.order if i in {a["id"] for a in w.acts.values() if a["plan_id"] == B["id"]}]
    assert only_b and len(only_b) < len(w.order)
    assert _ids(_my(w.worker)) == only_b
    assert _ids(_my(w.colleague, scope="organisation")) == only_b
    hidden = w.acts["a_late3"]["id"]
    problem(w.worker.get(f"/v1/actions/{hidden}"), 404)
    problem(_patch(w.worker, hidden, {"status": "done"}, 1), 404)
    problem(w.worker.get(f"/v1/actions/{hidden}/history"), 404)
    assert _get(w.tov, hidden)["status"] == "open"
    # The owning organisation still sees them.
    assert hidden in _ids(w.tov.get(f"/v1/plans/{A['id']}/actions").json()["items"])


# ---------------------------------------------------------------------------
# leaving with open actions

def test_leave_blocked_by_open_actions_then_reassigned(pg, kipd, team):
    tov, plan = team.tov, team.plan
    open_a = _action(tov, plan, team.mate_pid, title="Åben", due_date="2030-05-01")
    busy = _set(team.mate, _action(tov, plan, team.mate_pid, title="I gang"), status="in_progress")
    done = _set(team.mate, _action(tov, plan, team.mate_pid, title="Færdig"), status="done")
    dropped = _set(team.mate, _action(tov, plan, team.mate_pid, title="Aflyst"), status="cancelled")
    unrelated = _action(tov, plan, team.other_pid, title="En andens")

    body = problem(_leave(tov, plan, team.mate_pid), 409, "reassign_to", "conflict")
    assert "open_actions" in body, body
    listed = sorted(body["open_actions"], key=lambda x: x["id"])
    assert listed == sorted([{"id": open_a["id"], "title": "Åben", "status": "open", "due_date": "2030-05-01"},
                             {"id": busy["id"], "title": "I gang", "status": "in_progress", "due_date": None}],
                            key=lambda x: x["id"])
    me = tov.get(f"/v1/plans/{plan['id']}/participants/{team.mate_pid}").json()
    assert me["active"] is True and me["left_at"] is None

    # reassign_to must be another active participant of this plan.
    gone = _join(tov, plan)["id"]
    assert _leave(tov, plan, gone).status_code == 200
    for target in (gone, team.mate_pid, str(uuid.uuid4())):
        problem(_leave(tov, plan, team.mate_pid, reassign_to=target), 422, "reassign_to")
    problem(_leave(tov, plan, team.mate_pid, reassign_to="not-a-uuid"), 422, "reassign_to")
    assert tov.get(f"/v1/plans/{plan['id']}/participants/{team.mate_pid}").json()["active"] is True
    assert _get(tov, open_a["id"]) == open_a and _get(tov, busy["id"]) == busy

    r = _leave(tov, plan, team.mate_pid, reassign_to=team.other_pid)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == team.mate_pid and r.json()["active"] is False and r.json()["left_at"]
    for a in (open_a, busy):
        now = _get(tov, a["id"])
        assert now["responsible_participant_id"] == team.other_pid
        assert now["status"] == a["status"] and now["title"] == a["title"]
        changes = [(h["before"], h["after"], h["user_id"]) for h in _history(tov, a["id"])
                   if h["field"] == "responsible_participant_id" and h["operation"] == "update"]
        assert changes == [(team.mate_pid, team.other_pid, tov.user["id"])]
    # Finished actions keep who did them.
    assert _get(tov, done["id"])["responsible_participant_id"] == team.mate_pid
    assert _get(tov, dropped["id"])["responsible_participant_id"] == team.mate_pid
    assert _get(tov, unrelated["id"]) == unrelated
    assert set(_ids(_my(team.other, status="open"))) >= {open_a["id"], unrelated["id"]}
    assert busy["id"] in _ids(_my(team.other))


def test_leave_without_open_actions_needs_no_reassign(team):
    a = _set(team.mate, _action(team.tov, team.plan, team.mate_pid), status="done")
    r = _leave(team.tov, team.plan, team.mate_pid)
    assert r.status_code == 200, r.text
    assert r.json()["active"] is False
    assert _get(team.tov, a["id"])["responsible_participant_id"] == team.mate_pid


# ---------------------------------------------------------------------------
# tovholder handover

def test_tovholder_handover(pg, kipd, team):
    tov, plan = team.tov, team.plan
    old = plan["coordinator"]
    v0 = tov.get(f"/v1/plans/{plan['id']}").json()["version"]
    r = tov.post(f"/v1/plans/{plan['id']}/coordinator", json={"participant_id": team.mate_pid})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["coordinator"] == team.mate_pid
    assert doc["version"] > v0 and etag_version(r) == doc["version"]
    coords = doc["coordinators"]
    assert [c["participant_id"] for c in coords] == [old, team.mate_pid]
    assert coords[0]["ended_at"] is not None and coords[1]["ended_at"] is None
    assert parse_time(coords[0]["started_at"]) <= parse_time(coords[0]["ended_at"])
    assert parse_time(coords[0]["ended_at"]) <= parse_time(coords[1]["started_at"])
    assert tov.get(f"/v1/plans/{plan['id']}").json() == doc
    # The plan history records it, with who did it.
    hist = collect_all(tov, f"/v1/plans/{plan['id']}/history")
    assert [(h["before"], h["after"], h["user_id"]) for h in hist
            if h["resource"] == "plan" and h["field"] == "coordinator" and h["operation"] == "update"] == \
        [(old, team.mate_pid, tov.user["id"])]
    assert int(_sql(pg, kipd, f"SELECT count(*) FROM kip.events WHERE kind = 'plan.coordinator_changed' "
                              f"AND plan_id = '{plan['id']}'")) == 1

    # Handing it back makes a third entry; the second one ends.
    r = team.mate.post(f"/v1/plans/{plan['id']}/coordinator", json={"participant_id": old})
    assert r.status_code == 200, r.text
    coords = r.json()["coordinators"]
    assert [c["participant_id"] for c in coords] == [old, team.mate_pid, old]
    assert [c["ended_at"] is None for c in coords] == [False, False, True]
    assert coords[0]["ended_at"] == doc["coordinators"][0]["ended_at"]


def test_handover_to_a_non_professional_or_left_participant_is_422(team):
    tov, plan = team.tov, team.plan
    _consent(tov, plan, relatives_allowed=True)
    relative = tov.post(f"/v1/plans/{plan['id']}/participants",
                        json={"kind": "relative", "name": "Søster Åse", "role": "relative"}).json()["id"]
    citizen = next(p["id"] for p in plan["participants"] if p["kind"] == "citizen")
    gone = _join(tov, plan)["id"]
    assert _leave(tov, plan, gone).status_code == 200
    other_plan = kiptest.create_plan(tov)
    before = tov.get(f"/v1/plans/{plan['id']}").json()
    for target in (relative, citizen, gone, other_plan["coordinator"], str(uuid.uuid4())):
        problem(tov.post(f"/v1/plans/{plan['id']}/coordinator", json={"participant_id": target}),
                422, "participant_id")
    problem(tov.post(f"/v1/plans/{plan['id']}/coordinator", json={}), 422, "participant_id")
    problem(tov.post(f"/v1/plans/{plan['id']}/coordinator", json={"participant_id": team.mate_pid, "x": 1}),
            400, "x")
    # To the current tovholder: a conflict.
    problem(tov.post(f"/v1/plans/{plan['id']}/coordinator", json={"participant_id": plan["coordinator"]}),
            409, "participant_id")
    after = tov.get(f"/v1/plans/{plan['id']}").json()
    assert after["coordinator"] == plan["coordinator"] and after["version"] == before["version"]
    assert after["coordinators"] == before["coordinators"] and len(after["coordinators"]) == 1


def test_handover_with_a_stale_if_match_is_412(team):
    url = f"/v1/plans/{team.plan['id']}"
    v = team.tov.get(url).json()["version"]
    problem(team.tov.post(url + "/coordinator", json={"participant_id": team.mate_pid},
                          headers={"If-Match": f'"{v - 1}"'}), 412)
    assert team.tov.get(url).json()["coordinator"] == team.plan["coordinator"]
    r = team.tov.post(url + "/coordinator", json={"participant_id": team.mate_pid},
                      headers={"If-Match": f'"{v}"'})
    assert r.status_code == 200, r.text


def test_reopen_rights_follow_the_tovholder(team):
    """After the handover the new tovholder may reopen; the old one, who is
    still a participant, may not."""
    a = _set(team.other, _action(team.tov, team.plan, team.other_pid), status="done")
    r = team.tov.post(f"/v1/plans/{team.plan['id']}/coordinator", json={"participant_id": team.mate_pid})
    assert r.status_code == 200, r.text
    problem(_patch(team.tov, a["id"], {"status": "open"}, a["version"]), 403, "status")
    b = _set(team.mate, a, status="open")
    assert b["status"] == "open" and b["completed_at"] is None
    # The old tovholder may now leave; the new one may not.
    assert _leave(team.mate, team.plan, team.tov_pid).status_code == 200
    problem(_leave(team.mate, team.plan, team.mate_pid), 409)


def test_the_worklist_names_the_current_tovholder(team):
    a = _action(team.tov, team.plan, team.other_pid)
    item = next(x for x in _my(team.other) if x["id"] == a["id"])
    assert item["plan"]["coordinator"]["participant_id"] == team.tov_pid
    assert team.tov.post(f"/v1/plans/{team.plan['id']}/coordinator",
                         json={"participant_id": team.mate_pid}).status_code == 200
    item = next(x for x in _my(team.other) if x["id"] == a["id"])
    assert item["plan"]["coordinator"] == {"participant_id": team.mate_pid, "name": "Mette Ansvarlig"}


# ---------------------------------------------------------------------------
# the daily pass

def _overdue_events(pg, k, action_ids):
    rows = _sql(pg, k, "SELECT resource_id || ':' || count(*) FROM kip.events WHERE kind = 'action.overdue' "
                       "GROUP BY resource_id")
    counts = dict(line.split(":") for line in rows.splitlines() if line)
    return {a: int(counts.get(a, 0)) for a in action_ids}


def test_daily_pass_twice_makes_each_event_once(pg, kipd, admin, team):
    tov, plan = team.tov, team.plan
    today = cph_today()
    late = _action(tov, plan, team.mate_pid, due_date=(today - DAY).isoformat())
    late2 = _set(team.mate, _action(tov, plan, team.mate_pid, due_date=(today - 5 * DAY).isoformat()),
                 status="in_progress")
    due_today = _action(tov, plan, team.mate_pid, due_date=today.isoformat())
    done = _set(team.mate, _action(tov, plan, team.mate_pid, due_date=(today - DAY).isoformat()), status="done")
    dropped = _set(team.mate, _action(tov, plan, team.mate_pid, due_date=(today - DAY).isoformat()),
                   status="cancelled")
    v = tov.get(f"/v1/plans/{plan['id']}").json()["version"]
    r = tov.patch(f"/v1/plans/{plan['id']}", json={"follow_up_date": (today - DAY).isoformat()},
                  headers={"If-Match": f'"{v}"'})
    assert r.status_code == 200, r.text

    ids = [late["id"], late2["id"], due_today["id"], done["id"], dropped["id"]]
    expected = {late["id"]: 1, late2["id"]: 1, due_today["id"]: 0, done["id"]: 0, dropped["id"]: 0}
    r = admin.post("/v1/admin/daily-pass")
    assert r.status_code == 200, r.text
    # (The start-up pass of this module's kipd may have run too; the exact
    # counts of a first run are checked in the two-instance test.)
    assert _overdue_events(pg, kipd, ids) == expected
    r = admin.post("/v1/admin/daily-pass")
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["action.overdue"] == 0, second
    assert second["plan.follow_up_due"] == 0 and second["consent.review_due"] == 0, second
    assert second["as_of"] == cph_today().isoformat()

    assert _overdue_events(pg, kipd, ids) == expected
    assert _event_count(pg, kipd, "action.overdue", late["id"]) == 1
    assert _event_count(pg, kipd, "plan.follow_up_due", plan["id"]) == 1
    # Overdue is still derived on read: the pass stores no flag.
    assert _get(tov, due_today["id"])["overdue"] is False
    assert _get(tov, late["id"])["overdue"] is True


def test_daily_pass_is_for_admins_only(team, make_user):
    for roles in (["coordinator"], ["caseworker"], ["auditor"], ["integration"]):
        client = make_user(team.tov.org, roles)
        problem(client.post("/v1/admin/daily-pass"), 403, type_suffix="forbidden")


def _world_on(k, n_plans=3, per_plan=4):
    """Organisation, tovholder and overdue actions, through kipd `k`."""
    admin = Api(k.url, k.admin_token(), name="admin")
    nurse = kiptest.create_user(admin, kiptest.create_org(admin, "region_hospital"), ["coordinator"])
    today = cph_today()
    late, fine = [], []
    for _ in range(n_plans):
        plan = kiptest.create_plan(nurse)
        for i in range(per_plan):
            late.append(_action(nurse, plan, plan["coordinator"], due_date=(today - (i + 1) * DAY).isoformat()))
        fine.append(_action(nurse, plan, plan["coordinator"], due_date=today.isoformat()))
    return admin, late, fine


def test_two_instances_run_the_pass_at_once(pg, kipd_factory):
    k1 = kipd_factory(extra_args=["--daily-pass-interval-s", "0"], name="pass-a")
    k2 = kipd_factory(extra_args=["--daily-pass-interval-s", "0"], db=k1.db, name="pass-b")
    admin1, late, fine = _world_on(k1)
    admin2 = Api(k2.url, k1.admin_token(), name="admin-b")
    assert _overdue_events(pg, k1, [a["id"] for a in late]) == {a["id"]: 0 for a in late}

    rounds = 3
    barrier = threading.Barrier(2 * rounds)
    results, errors = [], []

    def run(client):
        try:
            barrier.wait(timeout=20)
            r = client.post("/v1/admin/daily-pass")
            results.append((r.status_code, r.json()))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(c,)) for c in (admin1, admin2) for _ in range(rounds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert [s for s, _ in results] == [200] * (2 * rounds), results
    assert sum(body["action.overdue"] for _, body in results) == len(late), results
    counts = _overdue_events(pg, k1, [a["id"] for a in late + fine])
    assert counts == {**{a["id"]: 1 for a in late}, **{a["id"]: 0 for a in fine}}
    # Once more on each: nothing new.
    for client in (admin1, admin2):
        assert client.post("/v1/admin/daily-pass").json()["action.overdue"] == 0
    assert int(_sql(pg, k1, "SELECT count(*) FROM kip.events WHERE kind = 'action.overdue'")) == len(late)


def test_the_daily_pass_runs_on_its_own(pg, kipd_factory):
    """kipd runs the pass by itself shortly after start-up (a libuv timer)."""
    k1 = kipd_factory(extra_args=["--daily-pass-interval-s", "0"], name="no-timer")
    _, late, fine = _world_on(k1, n_plans=1, per_plan=2)
    k2 = kipd_factory(db=k1.db, name="timer")
    kiptest.wait_until(lambda: all(v == 1 for v in _overdue_events(pg, k1, [a["id"] for a in late]).values()),
                       20, interval=0.2, what="the start-up daily pass to record the overdue actions")
    assert _overdue_events(pg, k1, [a["id"] for a in fine]) == {a["id"]: 0 for a in fine}
    record = kiptest.wait_until(
        lambda: next((rec for rec in k2.log_records() if rec.get("msg") == "daily pass"), None), 10,
        what="the daily pass log line")
    assert record["level"] == "info"
