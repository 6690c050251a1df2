"""Participants: professionals, relatives, consent rules, leaving."""

import pytest

from kiptest import UUID_RE, problem

GIVEN_AT = "2025-03-01T12:00:00+01:00"


@pytest.fixture
def plan(coordinator, make_plan):
    return make_plan(coordinator)


def _url(plan, suffix=""):
    return f"/v1/plans/{plan['id']}/participants{suffix}"


def _consent(client, plan, **fields):
    body = {"kip_consent": True, "form": "written", "given_at": GIVEN_AT}
    body.update(fields)
    r = client.post(f"/v1/plans/{plan['id']}/consent", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_add_professional_from_own_organisation(coordinator, plan, make_user):
    colleague = make_user(coordinator.org, ["caseworker"], display_name="Birgitte Ærenlund",
                          email="birgitte@example.dk")
    r = coordinator.post(_url(plan), json={"kind": "professional", "user_id": colleague.user["id"],
                                           "role": "caseworker", "role_title": "Socialrådgiver",
                                           "default_attendance": "video"})
    assert r.status_code == 201, r.text
    p = r.json()
    assert UUID_RE.match(p["id"])
    assert p["plan_id"] == plan["id"]
    assert p["kind"] == "professional"
    assert p["user_id"] == colleague.user["id"]
    assert p["name"] == "Birgitte Ærenlund"              # defaults to the user's
    assert p["organisation_id"] == coordinator.org["id"]  # defaults to the user's
    assert p["role"] == "caseworker" and p["role_title"] == "Socialrådgiver"
    assert p["default_attendance"] == "video"
    assert p["active"] is True and p["left_at"] is None and p["joined_at"]

    assert coordinator.get(_url(plan, f"/{p['id']}")).json() == p
    listed = coordinator.get(_url(plan)).json()["items"]
    assert p["id"] in [x["id"] for x in listed]
    doc = coordinator.get(f"/v1/plans/{plan['id']}").json()
    assert p in doc["participants"]


def test_professional_without_account(coordinator, plan):
    r = coordinator.post(_url(plan), json={"kind": "professional", "name": "Dr. Ole Vinding",
                                           "role": "general_practitioner", "organisation_id": coordinator.org["id"],
                                           "phone": "33 12 34 56"})
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] is None and r.json()["name"] == "Dr. Ole Vinding"
    problem(coordinator.post(_url(plan), json={"kind": "professional", "role": "other"}), 422, "name")


def test_professional_from_other_organisation_needs_consent(coordinator, plan, make_org, make_user):
    other = make_org(sector="region_psychiatry")
    psych = make_user(other, ["caseworker"])
    body = {"kind": "professional", "user_id": psych.user["id"], "role": "psychiatry"}
    problem(coordinator.post(_url(plan), json=body), 422, "organisation_id", "validation")
    # A consent that names other organisations only is not enough.
    _consent(coordinator, plan, contact_organisation_ids=[make_org()["id"]])
    problem(coordinator.post(_url(plan), json=body), 422, "organisation_id")
    _consent(coordinator, plan, contact_organisation_ids=[other["id"]])
    r = coordinator.post(_url(plan), json=body)
    assert r.status_code == 201, r.text
    assert r.json()["organisation_id"] == other["id"]


def test_professional_without_account_from_other_organisation_needs_consent(coordinator, plan, make_org):
    other = make_org(sector="civil_society")
    body = {"kind": "professional", "name": "Kirkens Korshær", "role": "support_contact_person",
            "organisation_id": other["id"]}
    problem(coordinator.post(_url(plan), json=body), 422, "organisation_id")
    _consent(coordinator, plan, contact_organisation_ids=[other["id"]])
    assert coordinator.post(_url(plan), json=body).status_code == 201


def test_relative_needs_relatives_allowed(coordinator, plan):
    body = {"kind": "relative", "name": "Søster Åse", "role": "relative", "phone": "40 50 60 70"}
    problem(coordinator.post(_url(plan), json=body), 422, "kind")
    _consent(coordinator, plan, relatives_allowed=False)
    problem(coordinator.post(_url(plan), json=body), 422, "kind")
    _consent(coordinator, plan, relatives_allowed=True)
    r = coordinator.post(_url(plan), json=body)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "relative" and r.json()["name"] == "Søster Åse"


@pytest.mark.parametrize("body,field", [
    ({"kind": "citizen", "name": "X", "role": "citizen"}, "kind"),
    ({"kind": "friend", "name": "X", "role": "relative"}, "kind"),
    ({"kind": "professional", "name": "X", "role": "wizard"}, "role"),
    ({"kind": "professional", "name": "X", "role": "other", "default_attendance": "telepathy"},
     "default_attendance"),
    ({"kind": "professional", "name": "X"}, "role"),
    ({"kind": "professional", "role": "other", "user_id": "6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11"}, "user_id"),
])
def test_invalid_participant(coordinator, plan, body, field):
    problem(coordinator.post(_url(plan), json=body), 422, field)


def test_unknown_participant_field_is_400(coordinator, plan):
    problem(coordinator.post(_url(plan), json={"kind": "professional", "name": "X", "role": "other",
                                               "shoe_size": 42}), 400, "shoe_size")


def test_inactive_user_cannot_be_added(admin, coordinator, plan, make_user):
    colleague = make_user(coordinator.org, ["caseworker"])
    assert admin.patch(f"/v1/users/{colleague.user['id']}", json={"active": False}).status_code == 200
    problem(coordinator.post(_url(plan), json={"kind": "professional", "user_id": colleague.user["id"],
                                               "role": "caseworker"}), 422, "user_id")


def test_same_user_twice_is_409(coordinator, plan, make_user):
    colleague = make_user(coordinator.org, ["caseworker"])
    body = {"kind": "professional", "user_id": colleague.user["id"], "role": "caseworker"}
    r = coordinator.post(_url(plan), json=body)
    assert r.status_code == 201
    problem(coordinator.post(_url(plan), json=body), 409, "user_id", "conflict")
    # The tovholder is already a participant too.
    problem(coordinator.post(_url(plan), json=dict(body, user_id=coordinator.user["id"])), 409, "user_id")
    # After leaving, the user may join again.
    assert coordinator.delete(_url(plan, f"/{r.json()['id']}")).status_code == 200
    r2 = coordinator.post(_url(plan), json=body)
    assert r2.status_code == 201 and r2.json()["active"] is True


def test_patch_participant(coordinator, plan):
    r = coordinator.post(_url(plan), json={"kind": "professional", "name": "Hanne Lund", "role": "other",
                                           "email": "hanne@example.dk"})
    pid = r.json()["id"]
    r = coordinator.patch(_url(plan, f"/{pid}"), json={"role": "addiction_counsellor",
                                                       "role_title": "Misbrugskonsulent",
                                                       "phone": "22 33 44 55", "email": None})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["role"] == "addiction_counsellor" and p["role_title"] == "Misbrugskonsulent"
    assert p["phone"] == "22 33 44 55" and p["email"] is None and p["name"] == "Hanne Lund"
    assert coordinator.get(_url(plan, f"/{pid}")).json() == p
    problem(coordinator.patch(_url(plan, f"/{pid}"), json={"role": "wizard"}), 422, "role")
    problem(coordinator.patch(_url(plan, f"/{pid}"), json={"kind": "relative"}), 400, "kind")


def test_stale_if_match_on_participant_writes_is_412(coordinator, plan):
    url = f"/v1/plans/{plan['id']}"
    r = coordinator.patch(url, json={"reason": "Ny"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200
    body = {"kind": "professional", "name": "Per", "role": "other"}
    problem(coordinator.post(_url(plan), json=body, headers={"If-Match": '"1"'}), 412)
    r = coordinator.post(_url(plan), json=body, headers={"If-Match": '"2"'})
    assert r.status_code == 201, r.text


def test_delete_participant_keeps_the_record(coordinator, plan):
    r = coordinator.post(_url(plan), json={"kind": "professional", "name": "Per Holm", "role": "other"})
    pid = r.json()["id"]
    r = coordinator.delete(_url(plan, f"/{pid}"))
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["id"] == pid and p["active"] is False and p["left_at"] is not None
    listed = {x["id"]: x for x in coordinator.get(_url(plan)).json()["items"]}
    assert pid in listed and listed[pid]["active"] is False and listed[pid]["left_at"] == p["left_at"]
    assert coordinator.get(_url(plan, f"/{pid}")).json() == p
    problem(coordinator.delete(_url(plan, f"/{pid}")), 409)               # already left
    problem(coordinator.patch(_url(plan, f"/{pid}"), json={"name": "X"}), 409)


def test_tovholder_and_citizen_cannot_leave(coordinator, plan):
    problem(coordinator.delete(_url(plan, f"/{plan['coordinator']}")), 409, type_suffix="conflict")
    citizen = next(p for p in plan["participants"] if p["kind"] == "citizen")
    problem(coordinator.delete(_url(plan, f"/{citizen['id']}")), 409)
    parts = {p["id"]: p for p in coordinator.get(_url(plan)).json()["items"]}
    assert parts[plan["coordinator"]]["active"] is True
    assert parts[citizen["id"]]["active"] is True


def test_other_org_participant_can_work_on_the_plan(coordinator, plan, make_org, make_user):
    other = make_org()
    worker = make_user(other, ["caseworker"])
    _consent(coordinator, plan, contact_organisation_ids=[other["id"]], relatives_allowed=True)
    assert coordinator.post(_url(plan), json={"kind": "professional", "user_id": worker.user["id"],
                                              "role": "caseworker"}).status_code == 201
    r = worker.post(_url(plan), json={"kind": "relative", "name": "Far", "role": "relative"})
    assert r.status_code == 201, r.text
    doc = worker.get(f"/v1/plans/{plan['id']}").json()
    r = worker.patch(f"/v1/plans/{plan['id']}", json={"reason": "Opdateret af jobcentret"},
                     headers={"If-Match": f'"{doc["version"]}"'})
    assert r.status_code == 200, r.text
