"""PATCH /v1/plans/{id}, status moves and POST /v1/plans/{id}/close."""

import pytest

import kiptest
from kiptest import etag_version, problem

GIVEN_AT = "2025-03-01T12:00:00+01:00"


@pytest.fixture
def plan(coordinator, make_plan):
    return make_plan(coordinator, name="Mette Bødker", cpr="010190-1234")


def _get(client, plan):
    r = client.get(f"/v1/plans/{plan['id']}")
    assert r.status_code == 200
    return r.json()


def test_patch_without_if_match_is_428(coordinator, plan):
    r = coordinator.patch(f"/v1/plans/{plan['id']}", json={"reason": "Ny begrundelse"})
    problem(r, 428, "If-Match", "precondition-required")
    assert _get(coordinator, plan)["reason"] == plan["reason"]


@pytest.mark.parametrize("value", ['"abc"', "version-1", "-1"])
def test_patch_with_malformed_if_match_is_400(coordinator, plan, value):
    r = coordinator.patch(f"/v1/plans/{plan['id']}", json={"reason": "Ny"}, headers={"If-Match": value})
    problem(r, 400, "If-Match")


def test_patch_stale_is_412_and_changes_nothing(coordinator, plan):
    url = f"/v1/plans/{plan['id']}"
    r = coordinator.patch(url, json={"reason": "Anden"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200
    r = coordinator.patch(url, json={"reason": "Tredje", "citizen": {"phone": "11223344"}},
                          headers={"If-Match": '"1"'})
    problem(r, 412, type_suffix="precondition-failed")
    now = _get(coordinator, plan)
    assert now["version"] == 2
    assert now["reason"] == "Anden"
    assert now["citizen"]["phone"] is None
    r = coordinator.patch(url, json={"reason": "Fremtid"}, headers={"If-Match": '"3"'})
    problem(r, 412)


def test_patch_changes_version_and_etag(coordinator, plan):
    url = f"/v1/plans/{plan['id']}"
    r = coordinator.patch(url, json={"reason": "Ændret begrundelse", "follow_up_date": "2026-06-01"},
                          headers={"If-Match": '"1"'})
    assert r.status_code == 200
    doc = r.json()
    assert doc["version"] == 2 and etag_version(r) == 2
    assert doc["reason"] == "Ændret begrundelse"
    assert doc["follow_up_date"] == "2026-06-01"
    assert kiptest.parse_time(doc["updated_at"]) >= kiptest.parse_time(plan["updated_at"])
    got = coordinator.get(url)
    assert got.json() == doc and etag_version(got) == 2
    # Quotes are optional, weak tags and * match too.
    for value, expected in (("2", 3), ('W/"3"', 4), ("*", 5)):
        r = coordinator.patch(url, json={"reason": f"v{expected}"}, headers={"If-Match": value})
        assert r.status_code == 200, (value, r.text)
        assert r.json()["version"] == expected and etag_version(r) == expected


def test_patch_goals_replaces_the_list(coordinator, make_plan):
    plan = make_plan(coordinator, goals=[{"text": "A", "owner": "citizen"}, {"text": "B", "owner": "team"}])
    keep = plan["goals"][1]["id"]
    r = coordinator.patch(f"/v1/plans/{plan['id']}", headers={"If-Match": '"1"'}, json={
        "goals": [{"id": keep, "text": "B, omformuleret", "owner": "team", "status": "achieved"},
                  {"text": "C", "owner": "citizen"}]})
    assert r.status_code == 200, r.text
    goals = _get(coordinator, plan)["goals"]
    assert [g["text"] for g in goals] == ["B, omformuleret", "C"]
    assert goals[0]["id"] == keep and goals[0]["status"] == "achieved"
    assert plan["goals"][0]["id"] not in [g["id"] for g in goals]


def test_patch_needs_replaces_the_checklist(coordinator, make_plan):
    plan = make_plan(coordinator, needs={"housing": {"relevant": True, "note": "Herberg"}})
    r = coordinator.patch(f"/v1/plans/{plan['id']}", headers={"If-Match": '"1"'},
                          json={"needs": {"finances": {"relevant": True}}})
    assert r.status_code == 200, r.text
    needs = _get(coordinator, plan)["needs"]
    assert "housing" not in needs
    assert needs["finances"]["relevant"] is True


def test_patch_citizen_is_merged(coordinator, plan):
    r = coordinator.patch(f"/v1/plans/{plan['id']}", headers={"If-Match": '"1"'},
                          json={"citizen": {"phone": "+45 20 30 40 50", "preferred_language": "en"}})
    assert r.status_code == 200, r.text
    c = _get(coordinator, plan)["citizen"]
    assert c["name"] == "Mette Bødker"
    assert c["cpr"] == "010190-1234"
    assert c["birth_date"] == "1990-01-01"
    assert c["phone"] == "+45 20 30 40 50"
    assert c["preferred_language"] == "en"
    # null clears an optional field
    r = coordinator.patch(f"/v1/plans/{plan['id']}", headers={"If-Match": '"2"'},
                          json={"citizen": {"phone": None}})
    assert r.status_code == 200
    c = _get(coordinator, plan)["citizen"]
    assert c["phone"] is None and c["cpr"] == "010190-1234"


def test_patch_validates_like_create(coordinator, plan):
    url = f"/v1/plans/{plan['id']}"
    problem(coordinator.patch(url, json={"citizen": {"cpr": "320190-1234"}}, headers={"If-Match": '"1"'}),
            422, "citizen.cpr")
    problem(coordinator.patch(url, json={"colour": "red"}, headers={"If-Match": '"1"'}), 400, "colour")
    problem(coordinator.patch(url, json={"goals": [{"text": "x", "owner": "boss"}]},
                              headers={"If-Match": '"1"'}), 422, "goals[0].owner")
    problem(coordinator.patch(url, json={"reason": 7}, headers={"If-Match": '"1"'}), 400, "reason")
    assert _get(coordinator, plan)["version"] == 1


def test_status_moves(coordinator, plan):
    url = f"/v1/plans/{plan['id']}"
    r = coordinator.patch(url, json={"status": "awaiting_consent"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["status"] == "awaiting_consent"
    r = coordinator.patch(url, json={"status": "active"}, headers={"If-Match": '"2"'})
    problem(r, 422, "status", "validation")
    r = coordinator.patch(url, json={"status": "closed"}, headers={"If-Match": '"2"'})
    problem(r, 422, "status")
    r = coordinator.patch(url, json={"status": "archived"}, headers={"If-Match": '"2"'})
    problem(r, 422, "status")
    r = coordinator.patch(url, json={"status": "draft"}, headers={"If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["status"] == "draft" and r.json()["version"] == 3


def test_status_active_after_consent(coordinator, plan):
    url = f"/v1/plans/{plan['id']}"
    r = coordinator.post(f"{url}/consent", json={"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT})
    assert r.status_code == 201, r.text
    doc = _get(coordinator, plan)
    assert doc["status"] == "active"
    r = coordinator.patch(url, json={"status": "draft"}, headers={"If-Match": f'"{doc["version"]}"'})
    problem(r, 422, "status")


def test_close(coordinator, plan):
    url = f"/v1/plans/{plan['id']}"
    problem(coordinator.post(f"{url}/close", json={"reason": "completed"}), 428, "If-Match")
    problem(coordinator.post(f"{url}/close", json={"reason": "completed"}, headers={"If-Match": '"7"'}), 412)
    problem(coordinator.post(f"{url}/close", json={"reason": "bored"}, headers={"If-Match": '"1"'}),
            422, "reason")
    problem(coordinator.post(f"{url}/close", json={}, headers={"If-Match": '"1"'}), 422, "reason")
    for reason in ("transferred", "other"):
        problem(coordinator.post(f"{url}/close", json={"reason": reason}, headers={"If-Match": '"1"'}),
                422, "note")
        problem(coordinator.post(f"{url}/close", json={"reason": reason, "note": ""},
                                 headers={"If-Match": '"1"'}), 422, "note")
    assert _get(coordinator, plan)["status"] == "draft"

    r = coordinator.post(f"{url}/close", json={"reason": "transferred", "note": "Overgået til ICM"},
                         headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["status"] == "closed"
    assert doc["close_reason"] == "transferred"
    assert doc["close_note"] == "Overgået til ICM"
    assert doc["closed_at"] is not None
    assert doc["version"] == 2 and etag_version(r) == 2
    assert _get(coordinator, plan) == doc


def test_closed_plan_is_read_only(coordinator, plan, make_org, make_user):
    url = f"/v1/plans/{plan['id']}"
    r = coordinator.post(f"{url}/close", json={"reason": "completed"}, headers={"If-Match": "*"})
    assert r.status_code == 200
    problem(coordinator.patch(url, json={"reason": "Igen"}, headers={"If-Match": '"2"'}), 409, type_suffix="conflict")
    problem(coordinator.patch(url, json={"status": "draft"}, headers={"If-Match": '"2"'}), 409)
    problem(coordinator.post(f"{url}/close", json={"reason": "completed"}, headers={"If-Match": '"2"'}), 409)
    problem(coordinator.post(f"{url}/consent", json={"kip_consent": True, "form": "written",
                                                     "given_at": GIVEN_AT}), 409)
    colleague = make_user(coordinator.org, ["caseworker"])
    problem(coordinator.post(f"{url}/participants", json={"kind": "professional", "user_id": colleague.user["id"],
                                                          "role": "caseworker"}), 409)
    doc = _get(coordinator, plan)
    assert doc["version"] == 2 and doc["status"] == "closed" and doc["reason"] == plan["reason"]
    assert coordinator.get(f"{url}/history").status_code == 200
