"""The outbox (issue 14): every change a subscriber cares about writes its
event into kip.events in the transaction of the change; a change that fails
leaves none; payloads hold ids, statuses, versions, dates and field names,
never a name, free text, phone, e-mail or CPR number. The writing
transaction never NOTIFYs (the notify lock would serialise every commit,
issue 12); kipd sends NOTIFY kip_events, with no payload, on its LISTEN
connection after a write request that succeeded, and after none that failed.
docs/integration.md ("Events") and the `Event` schema of api/openapi.yaml
list the types; the tests hold them to the events the code writes."""

import json
import os
import re
import select
import subprocess
import time
import uuid

import pytest
import yaml

import kiptest
from kiptest import PG_BINDIR, problem

# Written by the daily pass (its own timer may run at any moment), so left
# out where a test compares exactly what one request wrote.
DAILY = {"action.overdue", "consent.review_due", "plan.follow_up_due", "meeting.outcome_overdue",
         "action.needs_responsible"}

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GIVEN_AT = "2025-03-01T12:00:00+01:00"
STAR = {"If-Match": "*"}


class Outbox:
    """Reads kip.events of one kipd's database as consumers see them
    (kip.event_json), and what is new since the last look."""

    def __init__(self, pg, kipd):
        self.pg, self.kipd = pg, kipd
        self.seen = self.last_id()

    def last_id(self):
        return int(self.pg.psql("SELECT coalesce(max(id), 0) FROM kip.events", db=self.kipd.db))

    def events(self, plan_id=None, after=0):
        where = f"e.id > {int(after)}"
        if plan_id is not None:
            where += f" AND e.plan_id = '{uuid.UUID(plan_id)}'"
        text = self.pg.psql(f"SELECT coalesce(json_agg(kip.event_json(e) ORDER BY e.id), '[]') "
                            f"FROM kip.events e WHERE {where}", db=self.kipd.db)
        return json.loads(text)

    def take(self, plan_id):
        """The events of plan_id written since the last take, without the
        daily pass's."""
        new = self.events(plan_id, self.seen)
        self.seen = max([self.seen] + [int(e["id"]) for e in self.events(None, self.seen)])
        return [e for e in new if e["type"] not in DAILY]


def _expect(got, *expected):
    """got holds exactly the expected events, in order: (type, resource_id,
    {payload members that must have these values}). Returns them by type."""
    assert [(e["type"], e["resource_id"]) for e in got] == [(t, r) for t, r, _ in expected], \
        json.dumps(got, indent=1)
    for e, (_, _, data) in zip(got, expected):
        assert UUID.match(e["plan_id"]) and e["id"].isdigit() and e["occurred_at"]
        for k, v in data.items():
            assert k in e["data"], (k, e)
            if v is not ...:
                assert e["data"][k] == v, (k, e)
    return {e["type"]: e for e in got}


def _ok(resp, status=200):
    assert resp.status_code == status, resp.text
    return resp.json()


def _etag(resp):
    return {"If-Match": resp.headers["ETag"]}


@pytest.fixture
def outbox(pg, kipd):
    return Outbox(pg, kipd)


def _scenario(coordinator, make_org, make_user, admin, outbox):
    """One plan through every change a subscriber cares about, each checked
    for exactly the events it writes. Returns the plan id and every personal
    value or free text the scenario sent."""
    other_org = make_org(sector="region_psychiatry")
    colleague = make_user(coordinator.org, ["caseworker"], display_name="Birgitte Ærenlund",
                          email="birgitte.aerenlund@example.dk", phone="+45 21 43 65 87")
    psychiatrist = make_user(other_org, ["caseworker"], display_name="Poul Psykiatersen",
                             email="poul@region.example.dk")
    cpr = kiptest.new_cpr()
    texts = {
        "citizen": "Jens Outboxsen Hansen", "cpr": cpr, "cpr_plain": cpr.replace("-", ""),
        "address": "Nørrebrogade 17, 2200 København N", "phone": "+45 31 41 59 26",
        "phone2": "+45 27 18 28 18", "reason": "Misbrug og hjemløshed, flere sektorer",
        "reason2": "Ny vurdering efter indlæggelse", "coord_phone": "+45 70 10 20 30",
        "gp": "Dr. Ole Vinding", "gp_phone": "33 12 34 56", "gp_email": "ole.vinding@laege.example.dk",
        "role_title": "Praktiserende læge i Valby", "colleague": "Birgitte Ærenlund",
        "colleague_email": "birgitte.aerenlund@example.dk", "psychiatrist": "Poul Psykiatersen",
        "title": "Søg boligstøtte hos kommunen", "description": "Husk lønsedler fra tre måneder",
        "title2": "Søg boligstøtte og særlig støtte", "purpose": "Koordinering af behandling og bolig",
        "purpose2": "Opfølgning på boligsituationen", "room": "Lokale 4711", "street": "Bispebjerg Bakke 23",
        "cancel": "Borgeren er indlagt på Bispebjerg", "summary": "Vi aftalte opfølgning hos egen læge",
        "observation": "Borgeren har tabt sig og sover dårligt", "assessment": "Boligen er den største udfordring",
        "none_reason": "Forløbet er stabilt nu", "agreed": "Bestil tid hos egen læge om blodprøver",
        "withdraw": "Borgeren ønsker ikke længere samarbejde", "close": "Flyttet til Aarhus Kommune",
        "late": "Send ansøgning om førtidspension", "sw": "Karen Kommunesen",
        "sw_task": "Følg op på bostøtten",
    }
    P = "/v1/plans"

    # -- plan created: the plan and its two first participants
    r = coordinator.post(P, json={
        "citizen": {"name": texts["citizen"], "cpr": cpr, "phone": texts["phone"], "address": texts["address"]},
        "coordinator": {"phone": texts["coord_phone"]},
        "reason": texts["reason"], "follow_up_date": kiptest.cph_today().isoformat()})
    plan = _ok(r, 201)
    pid = plan["id"]
    citizen = next(p for p in plan["participants"] if p["kind"] == "citizen")
    coord = plan["coordinator"]
    got = outbox.take(pid)
    _expect(got[:1], ("plan.created", pid, {"status": "draft", "version": plan["version"],
                                            "owner_organisation_id": coordinator.org["id"],
                                            "coordinator_participant_id": coord,
                                            "follow_up_date": plan["follow_up_date"]}))
    added = {e["resource_id"]: e["data"] for e in got[1:] if e["type"] == "participant.added"}
    assert len(got) == 3 and set(added) == {coord, citizen["id"]}, got
    assert added[coord]["kind"] == "professional" and added[coord]["role"] == "social_nurse"
    assert added[citizen["id"]]["kind"] == "citizen" and added[citizen["id"]]["role"] == "citizen"

    # -- plan changed (and the citizen participant follows the citizen)
    r = coordinator.patch(f"{P}/{pid}", json={"reason": texts["reason2"],
                                              "citizen": {"phone": texts["phone2"]},
                                              "follow_up_date": kiptest.cph(-30).date().isoformat()},
                          headers={"If-Match": f'"{plan["version"]}"'})
    doc = _ok(r)
    _expect(outbox.take(pid),
            ("participant.changed", citizen["id"], {"fields": ["phone"]}),
            ("plan.changed", pid, {"status": "draft", "previous_status": "draft", "version": doc["version"],
                                   "fields": ["follow_up_date", "reason", "citizen.phone"]}))

    # -- consent given, then a professional from the consented organisation
    c = _ok(coordinator.post(f"{P}/{pid}/consent", json={
        "kip_consent": True, "form": "written", "given_at": GIVEN_AT, "review_by": "2025-09-01",
        "relatives_allowed": True, "contact_organisation_ids": [other_org["id"]]}), 201)
    _expect(outbox.take(pid), ("consent.given", c["id"], {
        "consent_id": c["id"], "kip_consent": True, "relatives_allowed": True,
        "contact_organisation_ids": [other_org["id"]], "form": "written", "review_by": "2025-09-01",
        "plan_status": "active", "plan_version": ...}))

    # -- participants added and changed
    pa_col = _ok(coordinator.post(f"{P}/{pid}/participants", json={
        "kind": "professional", "user_id": colleague.user["id"], "role": "caseworker"}), 201)
    _expect(outbox.take(pid), ("participant.added", pa_col["id"], {
        "participant_id": pa_col["id"], "kind": "professional", "role": "caseworker",
        "organisation_id": coordinator.org["id"], "user_id": colleague.user["id"],
        "default_attendance": "in_person"}))
    pa_gp = _ok(coordinator.post(f"{P}/{pid}/participants", json={
        "kind": "professional", "name": texts["gp"], "role": "general_practitioner",
        "phone": texts["gp_phone"], "email": texts["gp_email"]}), 201)
    _expect(outbox.take(pid), ("participant.added", pa_gp["id"], {"user_id": None, "kind": "professional"}))
    pa_psy = _ok(coordinator.post(f"{P}/{pid}/participants", json={
        "kind": "professional", "user_id": psychiatrist.user["id"], "role": "psychiatry"}), 201)
    _expect(outbox.take(pid), ("participant.added", pa_psy["id"], {"organisation_id": other_org["id"]}))
    _ok(coordinator.patch(f"{P}/{pid}/participants/{pa_gp['id']}", json={
        "role_title": texts["role_title"], "phone": texts["gp_phone"] + "0", "default_attendance": "phone"}))
    _expect(outbox.take(pid), ("participant.changed", pa_gp["id"], {
        "participant_id": pa_gp["id"], "role": "general_practitioner", "default_attendance": "phone",
        "fields": ["default_attendance", "phone", "role_title"]}))

    # -- an action: created (and assigned), changed, re-assigned, each status
    a = _ok(coordinator.post(f"{P}/{pid}/actions", json={
        "title": texts["title"], "description": texts["description"], "area": "housing",
        "responsible_participant_id": pa_col["id"], "due_date": kiptest.cph(14).date().isoformat()}), 201)
    _expect(outbox.take(pid),
            ("action.created", a["id"], {"action_id": a["id"], "status": "open", "version": 1, "area": "housing",
                                         "due_date": a["due_date"], "responsible_participant_id": pa_col["id"],
                                         "agreed_in_meeting_id": None}),
            ("action.assigned", a["id"], {"responsible_participant_id": pa_col["id"],
                                          "previous_responsible_participant_id": None}))
    a = _ok(coordinator.patch(f"/v1/actions/{a['id']}", json={"title": texts["title2"],
                                                             "due_date": kiptest.cph(21).date().isoformat()}, headers=STAR))
    _expect(outbox.take(pid), ("action.changed", a["id"], {"fields": ["due_date", "title"],
                                                           "due_date": a["due_date"], "version": a["version"]}))
    a = _ok(coordinator.patch(f"/v1/actions/{a['id']}", json={"responsible_participant_id": pa_gp["id"]}, headers=STAR))
    _expect(outbox.take(pid), ("action.assigned", a["id"], {
        "responsible_participant_id": pa_gp["id"], "previous_responsible_participant_id": pa_col["id"],
        "version": a["version"]}))
    for status, kind, before in (("in_progress", "action.started", "open"),
                                 ("done", "action.completed", "in_progress"),
                                 ("open", "action.reopened", "done")):
        a = _ok(coordinator.patch(f"/v1/actions/{a['id']}", json={"status": status}, headers=STAR))
        _expect(outbox.take(pid), (kind, a["id"], {"status": status, "previous_status": before,
                                                   "version": a["version"]}))
    late = _ok(coordinator.post(f"{P}/{pid}/actions", json={
        "title": texts["late"], "area": "employment", "responsible_participant_id": pa_col["id"],
        "due_date": kiptest.cph(-3).date().isoformat()}), 201)
    outbox.take(pid)

    # -- meetings: scheduled, changed, rescheduled, an answer, cancelled
    m = _ok(coordinator.post(f"{P}/{pid}/meetings", json={
        "starts_at": kiptest.cph(7).isoformat(), "purpose": texts["purpose"],
        "location": {"kind": "hospital", "address": texts["street"], "room": texts["room"]}}), 201)
    _expect(outbox.take(pid), ("meeting.scheduled", m["id"], {
        "meeting_id": m["id"], "status": "planned", "version": 1, "sequence": 0,
        "starts_at": ..., "duration_minutes": 90, "chair_participant_id": coord,
        "previous_meeting_id": None}))
    m = _ok(coordinator.patch(f"/v1/meetings/{m['id']}", json={"purpose": texts["purpose2"]}, headers=STAR))
    _expect(outbox.take(pid), ("meeting.changed", m["id"], {"fields": ["purpose"], "sequence": m["sequence"],
                                                            "version": m["version"]}))
    m = _ok(coordinator.patch(f"/v1/meetings/{m['id']}", json={"starts_at": kiptest.cph(8).isoformat()}, headers=STAR))
    _expect(outbox.take(pid), ("meeting.rescheduled", m["id"], {"fields": ["starts_at"],
                                                                "sequence": m["sequence"]}))
    m = _ok(coordinator.put(f"/v1/meetings/{m['id']}/invitees/{citizen['id']}/response",
                            json={"response": "accepted"}))
    _expect(outbox.take(pid), ("meeting.invitee_responded", m["id"], {
        "meeting_id": m["id"], "participant_id": citizen["id"], "response": "accepted",
        "previous_response": "pending", "version": m["version"]}))
    m = _ok(coordinator.post(f"/v1/meetings/{m['id']}/cancel", json={"reason": texts["cancel"]},
                             headers=STAR))
    _expect(outbox.take(pid), ("meeting.cancelled", m["id"], {"status": "cancelled", "version": m["version"],
                                                              "cancelled_at": ...}))

    # -- a meeting held yesterday: its agreed action and the next meeting
    held = _ok(coordinator.post(f"{P}/{pid}/meetings", json={
        "starts_at": kiptest.cph(-1).isoformat(), "location": {"kind": "citizen_home"},
        "purpose": "Status"}), 201)
    outbox.take(pid)
    r = coordinator.post(f"/v1/meetings/{held['id']}/outcome", json={
        "attendance": [{"participant_id": coord, "attended": True},
                       {"participant_id": citizen["id"], "attended": True, "mode": "in_person"}],
        "observations": [{"participant_id": coord, "text": texts["observation"]}],
        "summary": texts["summary"], "shared_assessment": texts["assessment"], "citizen_accepted": True,
        "actions": [{"title": texts["agreed"], "area": "somatic_health", "responsible_participant_id": pa_col["id"]}],
        "next_meeting": {"starts_at": kiptest.cph(14).isoformat()}})
    _ok(r, 201)
    got = outbox.take(pid)
    agreed = got[0]["resource_id"]
    nxt = got[2]["resource_id"]
    _expect(got, ("action.created", agreed, {"agreed_in_meeting_id": held["id"]}),
            ("action.assigned", agreed, {"responsible_participant_id": pa_col["id"]}),
            ("meeting.scheduled", nxt, {"previous_meeting_id": held["id"]}),
            ("meeting.held", held["id"], {"status": "held", "next_meeting_id": nxt, "no_further_meeting": False,
                                          "citizen_accepted": True, "action_ids": [agreed]}))

    # -- a participant leaves; their open actions go to another
    r = coordinator.delete(f"{P}/{pid}/participants/{pa_col['id']}",
                           params={"reassign_to": pa_psy["id"]})
    _ok(r)
    got = outbox.take(pid)
    moved = sorted([late["id"], agreed])
    assert sorted(e["resource_id"] for e in got[:2]) == moved
    _expect(got, *[("action.assigned", e["resource_id"], {"responsible_participant_id": pa_psy["id"],
                                                          "previous_responsible_participant_id": pa_col["id"]})
                   for e in got[:2]],
            ("participant.left", pa_col["id"], {"participant_id": pa_col["id"], "left_at": ...,
                                                "reassigned_to": pa_psy["id"]}))
    assert sorted(got[2]["data"]["reassigned_action_ids"]) == moved

    # -- the tovholder hands over; an action is cancelled
    _ok(coordinator.post(f"{P}/{pid}/coordinator", json={"participant_id": pa_psy["id"]},
                         headers={"If-Match": "*"}))
    _expect(outbox.take(pid), ("plan.coordinator_changed", pid, {"participant_id": pa_psy["id"],
                                                                "previous_participant_id": coord,
                                                                "version": ...}))
    a = _ok(coordinator.patch(f"/v1/actions/{a['id']}", json={"status": "cancelled"}, headers=STAR))
    _expect(outbox.take(pid), ("action.cancelled", a["id"], {"status": "cancelled", "previous_status": "open"}))

    # -- the daily pass: the late action, the consent review, the follow-up,
    # a meeting two days ago that has no outcome
    missed = _ok(coordinator.post(f"{P}/{pid}/meetings", json={
        "starts_at": kiptest.cph(-2).isoformat(), "location": {"kind": "citizen_home"},
        "purpose": "Status"}), 201)
    outbox.take(pid)
    _ok(admin.post("/v1/admin/daily-pass"))
    due = {e["type"]: e for e in outbox.events(pid) if e["type"] in DAILY}
    assert due["action.overdue"]["resource_id"] == late["id"]
    assert due["consent.review_due"]["resource_id"] == c["id"]
    assert due["consent.review_due"]["data"]["review_by"] == "2025-09-01"
    assert due["plan.follow_up_due"]["resource_id"] == pid
    assert due["meeting.outcome_overdue"]["resource_id"] == missed["id"]

    # -- consent withdrawn: the consented organisation's participant leaves
    # with it (the tovholder stays), and their open action is raised by the
    # daily pass until it gets a new responsible
    pa_sw = _ok(coordinator.post(f"{P}/{pid}/participants", json={
        "kind": "professional", "name": texts["sw"], "role": "caseworker",
        "organisation_id": other_org["id"]}), 201)
    orphan = _ok(coordinator.post(f"{P}/{pid}/actions", json={
        "title": texts["sw_task"], "area": "housing", "responsible_participant_id": pa_sw["id"]}), 201)
    outbox.take(pid)
    r = _ok(coordinator.post(f"{P}/{pid}/consent/withdraw", json={"note": texts["withdraw"]}))
    assert r["needs_responsible"] == [orphan["id"]]
    _expect(outbox.take(pid), ("consent.withdrawn", c["id"], {"consent_id": c["id"], "withdrawn_at": ...,
                                                              "plan_status": "awaiting_consent"}),
            ("participant.left", pa_sw["id"], {"participant_id": pa_sw["id"], "left_at": ...,
                                               "reassigned_to": None, "reassigned_action_ids": []}))
    _ok(admin.post("/v1/admin/daily-pass"))
    _expect([e for e in outbox.events(pid) if e["type"] == "action.needs_responsible"],
            ("action.needs_responsible", orphan["id"], {"action_id": orphan["id"],
                                                        "responsible_participant_id": pa_sw["id"],
                                                        "coordinator_participant_id": pa_psy["id"]}))
    c2 = _ok(coordinator.post(f"{P}/{pid}/consent", json={"kip_consent": False, "form": "verbal",
                                                          "given_at": GIVEN_AT}), 201)
    _expect(outbox.take(pid), ("consent.refused", c2["id"], {"kip_consent": False}))
    r = coordinator.post(f"{P}/{pid}/close", json={"reason": "transferred", "note": texts["close"]},
                         headers={"If-Match": "*"})
    closed = _ok(r)
    _expect(outbox.take(pid), ("plan.closed", pid, {"status": "closed", "close_reason": "transferred",
                                                   "closed_at": ..., "version": closed["version"]}))
    return pid, texts


def test_every_change_writes_its_event(coordinator, make_org, make_user, admin, outbox):
    _scenario(coordinator, make_org, make_user, admin, outbox)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_no_payload_holds_a_name_free_text_or_cpr(coordinator, make_org, make_user, admin, outbox, pg, kipd):
    pid, texts = _scenario(coordinator, make_org, make_user, admin, outbox)
    events = outbox.events(pid)
    assert len(events) >= 40
    # Every value is an id, a status, a date or time, a number, a boolean or a
    # field name; every member name is one the catalogue uses.
    token = re.compile(r"^[a-z_]+(\.[a-z_]+)?$")
    moment = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}(:\d{2})?|Z)?)?$")
    for e in events:
        for s in _strings(e["data"]):
            assert UUID.match(s) or token.match(s) or moment.match(s), (s, e)
            for secret in texts.values():
                assert secret.lower() not in s.lower(), (secret, e)
        for k in e["data"]:
            assert k == "close_reason" or not re.search(
                r"name|title|text|note|phone|email|cpr|address|reason|summary|description|purpose|"
                r"observation|assessment", k), (k, e)
    # Each envelope is the contract's Event.
    contract = kiptest.CONTRACT.load()
    for e in events:
        contract._validate_json("Event", {"$ref": "#/components/schemas/Event"}, e, f"event {e['type']}")
    # And nothing of it anywhere in the rows, dedupe keys included.
    rows = pg.psql(f"SELECT e::text FROM kip.events e WHERE e.plan_id = '{pid}'", db=kipd.db)
    for secret in texts.values():
        assert secret.lower() not in rows.lower(), secret


def _catalogue():
    """docs/integration.md's table: {type: set of data members}."""
    doc = (kiptest.ROOT / "docs" / "integration.md").read_text()
    section = doc.split("## Events", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for t, cell in re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|.*\| (.*) \|$", section, re.M):
        rows[t] = cell
    out = {}
    for t, cell in rows.items():
        same = re.match(r"as `([a-z_.]+)`", cell)
        cell = rows[same.group(1)] if same else cell
        out[t] = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cell)))
    return out


def test_the_catalogue_lists_every_type_and_member(coordinator, make_org, make_user, admin, outbox, pg, kipd):
    """Every type the code writes is in the openapi enum and in the table of
    docs/integration.md with exactly the data members it has, and they list
    nothing else."""
    pid, _ = _scenario(coordinator, make_org, make_user, admin, outbox)
    catalogue = _catalogue()
    spec = yaml.safe_load((kiptest.ROOT / "api" / "openapi.yaml").read_text())
    enum = set(spec["components"]["schemas"]["Event"]["properties"]["type"]["enum"])
    assert set(catalogue) == enum
    # kip.event_types(), what a webhook subscription may name, is the same list.
    listed = pg.psql("SELECT array_to_string(kip.event_types(), ' ')", db=kipd.db).split()
    assert sorted(listed) == sorted(enum) and len(listed) == len(set(listed))
    members = set(spec["components"]["schemas"]["EventData"]["properties"])
    assert set().union(*catalogue.values()) == members
    written = set()
    for e in outbox.events(pid):
        written.add(e["type"])
        assert set(e["data"]) == catalogue[e["type"]], e
    assert written == enum


# ----------------------------------------------------------- failed changes

def test_a_failed_change_leaves_no_event(coordinator, make_plan, make_org, outbox):
    plan = make_plan(coordinator)
    pid = plan["id"]
    outbox.take(pid)
    coord = plan["coordinator"]
    # 412: a stale If-Match, after the check nothing is written.
    problem(coordinator.patch(f"/v1/plans/{pid}", json={"reason": "Ny"}, headers={"If-Match": '"999"'}), 412)
    # 422 before any write: no such responsible participant.
    problem(coordinator.post(f"/v1/plans/{pid}/actions",
                             json={"title": "X", "area": "other", "responsible_participant_id": str(uuid.uuid4())}),
            422, "responsible_participant_id")
    # 422 from the consent rules.
    problem(coordinator.post(f"/v1/plans/{pid}/participants", json={
        "kind": "professional", "name": "Fremmed", "role": "other", "organisation_id": make_org()["id"]}),
        422, "organisation_id")
    assert outbox.take(pid) == []

    # 422 late in a transaction that has already written: the outcome's
    # agreed action (and its events) is made before next_meeting fails.
    held = _ok(coordinator.post(f"/v1/plans/{pid}/meetings", json={
        "starts_at": kiptest.cph(-1).isoformat(), "location": {"kind": "citizen_home"},
        "purpose": "Status"}), 201)
    before = outbox.take(pid)
    assert [e["type"] for e in before] == ["meeting.scheduled"]
    r = coordinator.post(f"/v1/meetings/{held['id']}/outcome", json={
        "attendance": [{"participant_id": coord, "attended": True}], "citizen_accepted": True,
        "summary": "Kort", "shared_assessment": "Kort",
        "actions": [{"title": "Aftalt", "area": "other", "responsible_participant_id": coord}],
        "next_meeting": {"starts_at": kiptest.cph(300).isoformat()}})
    problem(r, 422, "next_meeting.starts_at")
    assert outbox.take(pid) == []
    assert coordinator.get(f"/v1/plans/{pid}/actions").json()["items"] == []

    # 409: leaving with open actions and no one to take them.
    gp = _ok(coordinator.post(f"/v1/plans/{pid}/participants", json={
        "kind": "professional", "name": "Læge", "role": "general_practitioner"}), 201)
    _ok(coordinator.post(f"/v1/plans/{pid}/actions", json={"title": "Y", "area": "other", "responsible_participant_id": gp["id"]}),
        201)
    outbox.take(pid)
    problem(coordinator.delete(f"/v1/plans/{pid}/participants/{gp['id']}"), 409, "reassign_to")
    # 409: a transition the action does not allow.
    a = coordinator.get(f"/v1/plans/{pid}/actions").json()["items"][0]
    _ok(coordinator.patch(f"/v1/actions/{a['id']}", json={"status": "cancelled"}, headers=STAR))
    assert [e["type"] for e in outbox.take(pid)] == ["action.cancelled"]
    problem(coordinator.patch(f"/v1/actions/{a['id']}", json={"status": "done"}, headers=STAR), 409, "status")
    assert outbox.take(pid) == []


def test_a_rolled_back_transaction_leaves_no_event(pg, kipd, outbox):
    before = outbox.last_id()
    pg.psql("BEGIN; SELECT kip.emit('test.rolled_back', NULL, NULL, '{}'); ROLLBACK;", db=kipd.db)
    assert int(pg.psql("SELECT count(*) FROM kip.events WHERE kind = 'test.rolled_back'", db=kipd.db)) == 0
    assert all(e["type"] in DAILY for e in outbox.events(None, before))


def test_emit_makes_unique_keys_and_honours_a_given_one(pg, kipd):
    ids = pg.psql("SELECT kip.emit('test.probe', NULL, NULL, '{\"n\": 1}'); "
                  "SELECT kip.emit('test.probe', NULL, NULL, '{\"n\": 2}')", db=kipd.db).split()
    assert len(set(ids)) == 2
    key = f"test.probe:{uuid.uuid4()}"
    pg.psql(f"SELECT kip.emit('test.probe', NULL, NULL, '{{}}', '{key}')", db=kipd.db)
    with pytest.raises(RuntimeError, match="duplicate key"):
        pg.psql(f"SELECT kip.emit('test.probe', NULL, NULL, '{{}}', '{key}')", db=kipd.db)
    env = json.loads(pg.psql(f"SELECT kip.event_json(e) FROM kip.events e WHERE id = {ids[1]}", db=kipd.db))
    assert env == {"id": ids[1], "type": "test.probe", "occurred_at": env["occurred_at"], "plan_id": None,
                   "resource_id": None, "data": {"n": 2}}


# ------------------------------------------------------------------- NOTIFY

class Psql:
    """An interactive psql session: statements go in one by one, and what it
    prints (results and "Asynchronous notification" lines) comes back."""

    def __init__(self, pg, db):
        argv = [str(PG_BINDIR / "psql"), "-h", str(pg.sockdir), "-U", "postgres", "-d", db,
                "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.pending = b""
        self.n = 0

    def run(self, sql, timeout=10):
        """Send sql; return the lines it printed (up to a marker). The pipe is
        read with os.read, not a buffered readline, so select() sees every
        byte that has not been taken yet."""
        self.n += 1
        marker = f"-- done {self.n} --".encode()
        self.proc.stdin.write(f"{sql}\n\\echo '{marker.decode()}'\n".encode())
        self.proc.stdin.flush()
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while marker + b"\n" not in self.pending:
            left = deadline - time.monotonic()
            assert left > 0, f"psql did not answer {sql!r}: {self.pending!r}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, f"psql ended: {self.pending!r}"
                self.pending += chunk
        out, self.pending = self.pending.split(marker + b"\n", 1)
        return out.decode().splitlines()

    def notifications(self):
        """The kip_events payloads delivered since the last call ("" for
        none; psql prints what arrived after each statement it runs)."""
        out = self.run("SELECT 1;")
        return [m.group(1) or "" for m in
                (re.search(r'notification "kip_events"(?: with payload "([^"]*)")? received', l) for l in out)
                if m]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def listener(pg, kipd):
    s = Psql(pg, kipd.db)
    s.run("LISTEN kip_events;")
    yield s
    s.close()


def _wait_notifications(listener, expected, timeout=5):
    got = []
    deadline = time.monotonic() + timeout
    while not set(expected) <= set(got) and time.monotonic() < deadline:
        got += listener.notifications()
        time.sleep(0.05)
    return got


def _daily_pass_done(admin):
    """Wait for the first daily pass of the module's kipd (its timer runs it
    2 s after start): it writes events and then NOTIFYs too."""
    def done():
        m = re.search(r"^kipd_daily_last_run_timestamp_seconds (\S+)$", admin.get("/metrics").text, re.M)
        return m is not None and float(m.group(1)) > 0
    kiptest.wait_until(done, 15, what="the first daily pass")


def test_a_write_transaction_never_notifies(pg, kipd, admin, listener):
    """kip.emit in a transaction sends no NOTIFY, neither before nor at
    commit: the writer never takes PostgreSQL's notify lock. (A change
    written outside kipd is therefore not announced; the streams find it
    at their next fetch.)"""
    _daily_pass_done(admin)
    # No trigger or function of kipd's schemas notifies.
    assert pg.psql("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                   "WHERE n.nspname LIKE 'kip%' AND p.prosrc ~* 'notify\\s*\\(|\\mnotify\\s+kip'",
                   db=kipd.db) == "0"
    listener.notifications()
    writer = Psql(pg, kipd.db)
    try:
        writer.run("BEGIN;")
        (first,) = writer.run("SELECT kip.emit('test.notify', NULL, NULL, '{}');")
        writer.run("COMMIT;")
        (second,) = writer.run("SELECT kip.emit('test.notify', NULL, NULL, '{}');")
        assert int(second) > int(first)
        time.sleep(0.5)
        assert listener.notifications() == []
    finally:
        writer.close()


def test_a_change_through_kipd_is_announced_after_it_commits_and_a_failed_one_is_not(
        coordinator, make_plan, admin, listener, outbox):
    _daily_pass_done(admin)
    plan = make_plan(coordinator)
    pid = plan["id"]
    outbox.take(pid)
    listener.notifications()
    r = coordinator.post(f"/v1/plans/{pid}/actions", json={"title": "Z", "area": "other", "responsible_participant_id":
                                                           plan["coordinator"]})
    assert r.status_code == 201, r.text
    assert len(outbox.take(pid)) == 2        # committed when the response came
    # One NOTIFY per change at most (coalesced), with no payload: listeners
    # read the outbox from their own position.
    got = _wait_notifications(listener, [""])
    assert got and set(got) == {""}
    time.sleep(0.3)
    listener.notifications()
    # A change that fails, and a read, announce nothing.
    problem(coordinator.post(f"/v1/plans/{pid}/actions",
                             json={"title": "Z", "area": "other", "responsible_participant_id": str(uuid.uuid4())}), 422)
    assert coordinator.get(f"/v1/plans/{pid}/actions").status_code == 200
    time.sleep(0.5)
    assert listener.notifications() == []
    assert outbox.take(pid) == []


# ------------------------------------------------------- paging the outbox

def test_events_after_never_skips_an_event_that_commits_late(pg, kipd, outbox):
    """An event with a lower id whose transaction is still open holds back
    the ones after it: a consumer that pages with kip.events_after() and
    resumes from the last id it got misses nothing."""
    start = outbox.last_id()

    def page(after):
        return pg.psql(f"SELECT string_agg(id::text, ',' ORDER BY xid, id) FROM kip.events_after({after}, 1000) "
                       f"WHERE kind = 'test.after'", db=kipd.db).split(",")

    slow = Psql(pg, kipd.db)
    try:
        slow.run("BEGIN;")
        (late,) = slow.run("SELECT kip.emit('test.after', NULL, NULL, '{}');")
        early = pg.psql("SELECT kip.emit('test.after', NULL, NULL, '{}')", db=kipd.db)
        assert int(late) < int(early)
        # The committed event is visible, but handing it out now would let a
        # consumer resume past `late`.
        assert pg.psql(f"SELECT count(*) FROM kip.events WHERE id = {early}", db=kipd.db) == "1"
        assert page(start) == [""]
        slow.run("COMMIT;")
        kiptest.wait_until(lambda: page(start) == [late, early], 10, what="both events handed out")
        assert page(late) == [early]
        assert page(early) == [""]
    finally:
        slow.close()
    # A rolled-back id resumes with the higher ids.
    gone = pg.psql("BEGIN; SELECT kip.emit('test.after', NULL, NULL, '{}'); ROLLBACK;", db=kipd.db)
    after = pg.psql("SELECT kip.emit('test.after', NULL, NULL, '{}')", db=kipd.db)
    kiptest.wait_until(lambda: page(gone) == [after], 10, what="the event after a rolled-back id")
