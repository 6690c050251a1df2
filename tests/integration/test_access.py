"""The foundation access rule: who sees which plan (everything else is 404)."""

import uuid

import pytest

import kiptest
from kiptest import problem

GIVEN_AT = "2025-03-01T12:00:00+01:00"


def _ids(client, **params):
    return [p["id"] for p in kiptest.collect_all(client, "/v1/plans", params)]


def _hidden(client, plan_id):
    """Every plan route answers this client exactly as for a plan that does
    not exist, and the answer to reads is 404."""
    missing = str(uuid.uuid4())
    calls = [
        ("GET", "", None, {}),
        ("PATCH", "", {"reason": "x"}, {"If-Match": '"1"'}),
        ("PATCH", "", {"reason": "x"}, {}),
        ("POST", "/close", {"reason": "completed"}, {"If-Match": "*"}),
        ("GET", "/participants", None, {}),
        ("POST", "/participants", {"kind": "relative", "name": "X", "role": "relative"}, {}),
        ("GET", "/history", None, {}),
        ("GET", "/consent", None, {}),
        ("POST", "/consent", {"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT}, {}),
        ("POST", "/consent/withdraw", {}, {}),
    ]
    for method, suffix, body, headers in calls:
        r = client.request(method, f"/v1/plans/{plan_id}{suffix}", json=body, headers=headers)
        r_missing = client.request(method, f"/v1/plans/{missing}{suffix}", json=body, headers=headers)
        assert r.status_code == r_missing.status_code, (
            f"{method} {suffix or '/'}: a hidden plan answers {r.status_code}, a missing one "
            f"{r_missing.status_code}")
        assert r.json().get("errors") == r_missing.json().get("errors")
        if not (method == "PATCH" and "If-Match" not in headers):     # (that one may be 428)
            problem(r, 404, type_suffix="not-found")
    assert plan_id not in _ids(client)


def test_other_organisation_sees_nothing(coordinator, make_org, make_user, make_plan):
    plan = make_plan(coordinator)
    stranger = make_user(make_org(), ["coordinator", "caseworker"])
    _hidden(stranger, plan["id"])
    r = stranger.post("/v1/plans/search", json={"cpr": plan["citizen"]["cpr"]})
    assert r.status_code == 200 and r.json()["items"] == [], r.text
    # The owner still sees an unchanged plan.
    doc = coordinator.get(f"/v1/plans/{plan['id']}").json()
    assert doc["version"] == 1 and doc["reason"] == plan["reason"]


def test_same_organisation_caseworker_sees_the_plan(coordinator, make_user, make_plan):
    plan = make_plan(coordinator)
    colleague = make_user(coordinator.org, ["caseworker"])
    assert colleague.get(f"/v1/plans/{plan['id']}").status_code == 200
    assert plan["id"] in _ids(colleague)


@pytest.mark.parametrize("roles", [["admin"], ["auditor"]])
def test_admin_and_auditor_see_no_plan(admin, coordinator, make_user, make_plan, roles):
    plan = make_plan(coordinator)
    client = admin if roles == ["admin"] else make_user(coordinator.org, roles)
    problem(client.get(f"/v1/plans/{plan['id']}"), 404)
    problem(client.get(f"/v1/plans/{plan['id']}/participants"), 404)
    r = client.get("/v1/plans")
    assert r.status_code == 200
    assert r.json() == {"items": [], "next_cursor": None}


def test_admin_in_the_owning_organisation_sees_no_plan(coordinator, make_user, make_plan):
    plan = make_plan(coordinator)
    org_admin = make_user(coordinator.org, ["admin"])
    problem(org_admin.get(f"/v1/plans/{plan['id']}"), 404)
    assert org_admin.get("/v1/plans").json()["items"] == []


def test_participant_from_other_organisation_gains_and_loses_access(coordinator, make_org, make_user,
                                                                  make_plan):
    plan = make_plan(coordinator)
    url = f"/v1/plans/{plan['id']}"
    other_org = make_org(sector="general_practice")
    gp = make_user(other_org, ["caseworker"])
    third_org = make_org(sector="municipality_social")
    outsider = make_user(third_org, ["caseworker"])
    integration = make_user(other_org, ["integration"])
    _hidden(gp, plan["id"])

    r = coordinator.post(f"{url}/consent", json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT,
                                                 "contact_organisation_ids": [other_org["id"]]})
    assert r.status_code == 201, r.text
    # The consent covers the GP's organisation: its coordinators and caseworkers
    # may see the plan (the organisation clause of the access rule) ...
    r = gp.get(url)
    assert r.status_code == 200, r.text
    assert r.json()["citizen"]["cpr"] == plan["citizen"]["cpr"]
    assert plan["id"] in _ids(gp)
    # ... but an organisation the consent does not name still may not, and an
    # integration of the covered organisation needs to be a participant.
    _hidden(outsider, plan["id"])
    _hidden(integration, plan["id"])

    r = coordinator.post(f"{url}/participants", json={"kind": "professional", "user_id": gp.user["id"],
                                                      "role": "general_practitioner"})
    assert r.status_code == 201, r.text
    part = r.json()
    assert part["organisation_id"] == other_org["id"]
    assert gp.get(f"{url}/participants").status_code == 200

    # Withdrawal takes the access away at once, participant or not.
    r = coordinator.post(f"{url}/consent/withdraw", json={})
    assert r.status_code == 200, r.text
    _hidden(gp, plan["id"])


def test_withdrawn_consent_removes_other_organisations(coordinator, make_org, make_user, make_plan):
    plan = make_plan(coordinator)
    url = f"/v1/plans/{plan['id']}"
    other_org = make_org(sector="municipality_jobcenter")
    jc = make_user(other_org, ["caseworker"])
    assert coordinator.post(f"{url}/consent", json={
        "kip_consent": True, "form": "written", "given_at": GIVEN_AT,
        "contact_organisation_ids": [other_org["id"]]}).status_code == 201
    assert coordinator.post(f"{url}/participants", json={
        "kind": "professional", "user_id": jc.user["id"], "role": "jobcenter_caseworker"}).status_code == 201
    assert jc.get(url).status_code == 200
    r = coordinator.post(f"{url}/consent/withdraw", json={"note": "Borgeren ønsker ikke KIP"})
    assert r.status_code == 200, r.text
    problem(jc.get(url), 404)
    assert plan["id"] not in _ids(jc)
    # The owner keeps the plan.
    assert coordinator.get(url).json()["status"] == "awaiting_consent"


def test_missing_and_malformed_ids_are_404(coordinator, anon):
    problem(coordinator.get(f"/v1/plans/{uuid.uuid4()}"), 404)
    problem(coordinator.patch(f"/v1/plans/{uuid.uuid4()}", json={"reason": "x"}, headers={"If-Match": "*"}), 404)
    for bad in ("not-a-uuid", "12345", "6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a1", "6f1c1f7e6a3e4a379d335b8f7f0d2a11x"):
        problem(coordinator.get(f"/v1/plans/{bad}"), 404)
        problem(coordinator.get(f"/v1/plans/{bad}/participants"), 404)
    plan_id = kiptest.create_plan(coordinator)["id"]
    problem(coordinator.get(f"/v1/plans/{plan_id}/participants/nope"), 404)
    problem(coordinator.get(f"/v1/plans/{plan_id}/participants/{uuid.uuid4()}"), 404)
    # The id check comes before authentication.
    problem(anon.get("/v1/plans/not-a-uuid"), 404)


def test_participant_of_another_plan_is_404(coordinator, make_plan):
    p1 = make_plan(coordinator)
    p2 = make_plan(coordinator)
    problem(coordinator.get(f"/v1/plans/{p1['id']}/participants/{p2['coordinator']}"), 404)
    problem(coordinator.patch(f"/v1/plans/{p1['id']}/participants/{p2['coordinator']}",
                              json={"role_title": "x"}), 404)
