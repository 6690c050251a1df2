"""Consent: recording, defaults, activation, withdrawal."""

import pytest

import kiptest
from kiptest import UUID_RE, problem

GIVEN_AT = "2025-03-01T12:00:00+01:00"


@pytest.fixture
def plan(coordinator, make_plan):
    return make_plan(coordinator)


def _url(plan, suffix=""):
    return f"/v1/plans/{plan['id']}/consent{suffix}"


def _plan(client, plan):
    return client.get(f"/v1/plans/{plan['id']}").json()


def test_record_consent_activates_the_plan(coordinator, plan):
    problem(coordinator.get(_url(plan)), 404)
    r = coordinator.post(_url(plan), json={"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT})
    assert r.status_code == 201, r.text
    c = r.json()
    assert UUID_RE.match(c["id"])
    assert c["kip_consent"] is True
    assert c["form"] == "verbal"
    assert kiptest.parse_time(c["given_at"]) == kiptest.parse_time(GIVEN_AT)
    assert c["review_by"] == "2026-03-01"
    assert c["recorded_by"] == coordinator.user["id"]
    assert c["contact_organisation_ids"] == [] and c["relatives_allowed"] is False
    assert c["withdrawn_at"] is None

    doc = _plan(coordinator, plan)
    assert doc["status"] == "active"
    assert doc["consent"] == c
    assert doc["version"] > plan["version"]
    assert coordinator.get(_url(plan)).json() == c


def test_consent_from_awaiting_consent(coordinator, plan):
    r = coordinator.patch(f"/v1/plans/{plan['id']}", json={"status": "awaiting_consent"},
                          headers={"If-Match": '"1"'})
    assert r.status_code == 200
    r = coordinator.post(_url(plan), json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT})
    assert r.status_code == 201
    assert _plan(coordinator, plan)["status"] == "active"


def test_explicit_review_by_and_fields(coordinator, plan, make_org):
    other = make_org()
    r = coordinator.post(_url(plan), json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT,
                                           "review_by": "2025-09-01", "relatives_allowed": True,
                                           "contact_organisation_ids": [other["id"]]})
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["review_by"] == "2025-09-01"
    assert c["relatives_allowed"] is True
    assert c["contact_organisation_ids"] == [other["id"]]


def test_recorded_by_is_the_caller(coordinator, plan, make_user):
    colleague = make_user(coordinator.org, ["coordinator"])
    r = colleague.post(_url(plan), json={"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT})
    assert r.status_code == 201, r.text
    assert r.json()["recorded_by"] == colleague.user["id"]


def test_consent_without_kip_consent_does_not_activate(coordinator, plan):
    r = coordinator.post(_url(plan), json={"kip_consent": False, "form": "verbal", "given_at": GIVEN_AT})
    assert r.status_code == 201
    doc = _plan(coordinator, plan)
    assert doc["status"] == "draft"
    problem(coordinator.patch(f"/v1/plans/{plan['id']}", json={"status": "active"},
                              headers={"If-Match": f'"{doc["version"]}"'}), 422, "status")


def test_withdraw(coordinator, plan):
    problem(coordinator.post(_url(plan, "/withdraw"), json={}), 404)     # nothing to withdraw
    c = coordinator.post(_url(plan), json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT}).json()
    r = coordinator.post(_url(plan, "/withdraw"), json={"note": "Borgeren trækker samtykket tilbage"})
    assert r.status_code == 200, r.text
    w = r.json()
    assert w["id"] == c["id"]
    assert w["withdrawn_at"] is not None
    doc = _plan(coordinator, plan)
    assert doc["status"] == "awaiting_consent"
    assert doc["consent"]["withdrawn_at"] == w["withdrawn_at"]
    assert coordinator.get(_url(plan)).json()["withdrawn_at"] == w["withdrawn_at"]
    problem(coordinator.post(_url(plan, "/withdraw"), json={}), 409)     # already withdrawn
    # A new consent makes it active again.
    r = coordinator.post(_url(plan), json={"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT})
    assert r.status_code == 201 and r.json()["id"] != c["id"]
    assert _plan(coordinator, plan)["status"] == "active"


def test_withdraw_without_body(coordinator, plan):
    coordinator.post(_url(plan), json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT})
    r = coordinator.post(_url(plan, "/withdraw"))
    assert r.status_code == 200, r.text
    assert r.json()["withdrawn_at"] is not None


def test_replacing_consent(coordinator, plan):
    first = coordinator.post(_url(plan), json={"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT}).json()
    second = coordinator.post(_url(plan), json={"kip_consent": True, "form": "written",
                                                "given_at": "2025-04-01T09:30:00+02:00"}).json()
    assert second["id"] != first["id"]
    assert coordinator.get(_url(plan)).json() == second
    assert _plan(coordinator, plan)["consent"] == second
    assert second["review_by"] == "2026-04-01"
    history = kiptest.collect_all(coordinator, f"/v1/plans/{plan['id']}/history")
    ids = {h["resource_id"] for h in history if h["resource"] == "consent"}
    assert {first["id"], second["id"]} <= ids


@pytest.mark.parametrize("body,field", [
    ({"kip_consent": True, "form": "email", "given_at": GIVEN_AT}, "form"),
    ({"kip_consent": True, "form": "verbal"}, "given_at"),
    ({"kip_consent": True, "form": "verbal", "given_at": "2025-03-01"}, "given_at"),
    ({"form": "verbal", "given_at": GIVEN_AT}, "kip_consent"),
    ({"kip_consent": True, "given_at": GIVEN_AT}, "form"),
    ({"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT, "review_by": "2025-02-30"}, "review_by"),
])
def test_invalid_consent_is_422(coordinator, plan, body, field):
    problem(coordinator.post(_url(plan), json=body), 422, field, "validation")
    assert _plan(coordinator, plan)["status"] == "draft"


def test_unknown_contact_organisation_is_422(coordinator, plan):
    r = coordinator.post(_url(plan), json={"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT,
                                           "contact_organisation_ids": ["6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11"]})
    problem(r, 422)
    assert any(f.startswith("contact_organisation_ids") for f in kiptest.error_fields(r)), r.json()


@pytest.mark.parametrize("body,field", [
    ({"kip_consent": "yes", "form": "verbal", "given_at": GIVEN_AT}, "kip_consent"),
    ({"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT, "signed_by": "x"}, "signed_by"),
    ({"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT, "contact_organisation_ids": "x"},
     "contact_organisation_ids"),
])
def test_malformed_consent_is_400(coordinator, plan, body, field):
    problem(coordinator.post(_url(plan), json=body), 400, field)


def test_expired_review_shows_on_the_plan_and_in_the_daily_pass(coordinator, plan, admin, kipd, pg):
    import datetime as dt
    today = dt.date.today()
    given = (today - dt.timedelta(days=400)).isoformat() + "T10:00:00+01:00"
    r = coordinator.post(_url(plan), json={"kip_consent": True, "form": "written", "given_at": given})
    assert r.status_code == 201, r.text
    assert r.json()["review_expired"] is True
    assert _plan(coordinator, plan)["consent"]["review_expired"] is True
    r = admin.post("/v1/admin/daily-pass")
    assert r.status_code == 200, r.text
    rows = pg.psql(f"SELECT count(*) FROM kip.events WHERE kind = 'consent.review_due' "
                   f"AND plan_id = '{plan['id']}'", db=kipd.db).strip()
    assert rows == "1", rows
    # Renewed: no longer expired.
    an_hour_ago = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()
    r = coordinator.post(_url(plan), json={"kip_consent": True, "form": "written",
                                           "given_at": an_hour_ago})
    assert r.status_code == 201 and r.json()["review_expired"] is False
    # A withdrawn consent is never due for review.
    r = coordinator.post(_url(plan, "/withdraw"), json={})
    assert r.status_code == 200 and r.json()["review_expired"] is False
