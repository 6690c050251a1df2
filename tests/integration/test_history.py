"""GET /v1/plans/{id}/history: who changed what, with CPR numbers masked."""

import kiptest
from kiptest import problem

GIVEN_AT = "2025-03-01T12:00:00+01:00"


def test_history_records_every_change(coordinator, make_user, make_plan):
    plan = make_plan(coordinator, name="Ida Ærtebølle", cpr="010190-1234")
    pid = plan["id"]
    old_reason = plan["reason"]
    colleague = make_user(coordinator.org, ["coordinator"])

    r = colleague.patch(f"/v1/plans/{pid}", json={"reason": "Ny begrundelse", "citizen": {"cpr": "0202801234"}},
                        headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    r = coordinator.post(f"/v1/plans/{pid}/participants",
                         json={"kind": "professional", "user_id": colleague.user["id"], "role": "caseworker"})
    assert r.status_code == 201
    participant = r.json()
    r = coordinator.post(f"/v1/plans/{pid}/consent", json={"kip_consent": True, "form": "written",
                                                           "given_at": GIVEN_AT})
    assert r.status_code == 201
    consent = r.json()

    r = coordinator.get(f"/v1/plans/{pid}/history", params={"limit": 500})
    assert r.status_code == 200
    text = r.text
    items = kiptest.collect_all(coordinator, f"/v1/plans/{pid}/history")
    assert items, "empty history"

    # oldest first
    times = [kiptest.parse_time(h["at"]) for h in items]
    assert times == sorted(times)

    # creation of the plan
    created = [h for h in items if h["resource"] == "plan" and h["operation"] == "create"]
    assert created and all(h["user_id"] == coordinator.user["id"] and h["resource_id"] == pid for h in created)

    # the reason change, by the colleague
    reason = [h for h in items if h["resource"] == "plan" and h["operation"] == "update" and h["field"] == "reason"]
    assert len(reason) == 1, items
    assert reason[0]["before"] == old_reason and reason[0]["after"] == "Ny begrundelse"
    assert reason[0]["user_id"] == colleague.user["id"]
    assert reason[0]["resource_id"] == pid

    # the CPR change, masked on both sides
    cpr = [h for h in items if h["operation"] == "update" and h["field"] == "citizen.cpr"]
    assert len(cpr) == 1, items
    assert cpr[0]["before"] == "010190-****" and cpr[0]["after"] == "020280-****"

    # the participant and the consent
    assert any(h["resource"] == "participant" and h["resource_id"] == participant["id"]
               and h["operation"] == "create" and h["user_id"] == coordinator.user["id"] for h in items)
    assert any(h["resource"] == "consent" and h["resource_id"] == consent["id"] for h in items)
    # and the status change the consent caused
    assert any(h["resource"] == "plan" and h["field"] == "status" and h["after"] == "active" for h in items)

    # never a full CPR
    for full in ("010190-1234", "0101901234", "020280-1234", "0202801234"):
        assert full not in text, f"full CPR {full} in the history"
    assert "010190-****" in text


def test_history_of_a_hidden_plan_is_404(coordinator, make_org, make_user, make_plan):
    plan = make_plan(coordinator)
    stranger = make_user(make_org(), ["coordinator"])
    problem(stranger.get(f"/v1/plans/{plan['id']}/history"), 404)


def test_history_pages(coordinator, make_plan):
    plan = make_plan(coordinator)
    for v in range(1, 6):
        r = coordinator.patch(f"/v1/plans/{plan['id']}", json={"reason": f"Runde {v}"},
                              headers={"If-Match": f'"{v}"'})
        assert r.status_code == 200
    everything = kiptest.collect_all(coordinator, f"/v1/plans/{plan['id']}/history", limit=500)
    paged = kiptest.collect_all(coordinator, f"/v1/plans/{plan['id']}/history", limit=2)
    assert [h["id"] for h in paged] == [h["id"] for h in everything]
    reasons = [h["after"] for h in everything if h["field"] == "reason" and h["operation"] == "update"]
    assert reasons == [f"Runde {v}" for v in range(1, 6)]
