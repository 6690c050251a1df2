"""Creating and reading plans: the README walkthrough, CPR handling, goals."""

import urllib.parse

import pytest

import kiptest
from kiptest import UUID_RE, etag_version, problem

JENS = "Jens Ærø Østergård"


def test_walkthrough_create_and_get_plan(admin, make_org, make_user):
    org = make_org(sector="region_hospital", name="Bispebjerg Hospital, Socialsygeplejen")
    nurse = make_user(org, ["coordinator"], display_name="Åse Kjærgaard")
    r = nurse.post("/v1/plans", json={
        "citizen": {"name": JENS, "cpr": "010190-1234", "phone": "+45 12 34 56 78",
                    "address": "Nørrebrogade 1, 2200 København N"},
        "reason": "Samtidig misbrug, psykisk lidelse og hjemløshed",
        "needs": {"housing": {"relevant": True, "note": "Bor på herberg"},
                  "substances": {"relevant": True}},
    })
    assert r.status_code == 201
    plan = r.json()
    assert UUID_RE.match(plan["id"])
    loc = r.headers.get("Location")
    assert loc, "201 without Location"
    assert urllib.parse.urlsplit(loc).path == f"/v1/plans/{plan['id']}"
    assert r.headers.get("ETag") == '"1"'
    assert plan["version"] == 1
    assert plan["status"] == "draft"
    assert plan["owner_organisation_id"] == org["id"]
    c = plan["citizen"]
    assert c["name"] == JENS
    assert c["cpr"] == "010190-1234"
    assert c["birth_date"] == "1990-01-01"
    assert c["phone"] == "+45 12 34 56 78"
    assert c["address"] == "Nørrebrogade 1, 2200 København N"
    assert plan["reason"] == "Samtidig misbrug, psykisk lidelse og hjemløshed"
    assert plan["needs"]["housing"] == {"relevant": True, "note": "Bor på herberg"}
    assert plan["needs"]["substances"]["relevant"] is True
    assert plan["consent"] is None
    assert plan["meetings"] == [] and plan["actions"] == []
    assert plan["closed_at"] is None and plan["close_reason"] is None
    assert plan.pop("warnings") == [], "a first plan for a CPR has no warnings"

    parts = {p["id"]: p for p in plan["participants"]}
    assert plan["coordinator"] in parts, "coordinator must be a participant id"
    tov = parts[plan["coordinator"]]
    assert tov["kind"] == "professional"
    assert tov["user_id"] == nurse.user["id"]
    assert tov["organisation_id"] == org["id"]
    assert tov["role"] == "social_nurse"
    assert tov["name"] == "Åse Kjærgaard"
    assert tov["active"] is True and tov["left_at"] is None
    citizens = [p for p in plan["participants"] if p["kind"] == "citizen"]
    assert len(citizens) == 1
    assert citizens[0]["name"] == JENS and citizens[0]["user_id"] is None
    assert len(plan["participants"]) == 2

    r = nurse.get(f"/v1/plans/{plan['id']}")
    assert r.status_code == 200
    assert r.headers.get("ETag") == '"1"'
    assert r.json() == plan
    assert r.headers["Content-Type"].split(";")[0] == "application/json"
    # Danish letters survive the round trip in the raw UTF-8 (or as escapes).
    assert JENS in r.content.decode("utf-8") or JENS.encode("unicode_escape").decode() in r.text

    # Location is usable as is.
    r2 = nurse.get(urllib.parse.urljoin(nurse.base_url + "/", loc))
    assert r2.status_code == 200 and r2.json()["id"] == plan["id"]


def test_cpr_without_hyphen_is_normalised(coordinator):
    r = coordinator.post("/v1/plans", json=kiptest.plan_body(name="Karen Blixen", cpr="0101901234"))
    assert r.status_code == 201
    assert r.json()["citizen"]["cpr"] == "010190-1234"
    assert r.json()["citizen"]["birth_date"] == "1990-01-01"
    got = coordinator.get(f"/v1/plans/{r.json()['id']}").json()
    assert got["citizen"]["cpr"] == "010190-1234"


@pytest.mark.parametrize("cpr,birth_date", [
    ("010190-1234", "1990-01-01"),    # 7th digit 0-3: 1900s
    ("311299-3999", "1999-12-31"),
    ("010105-4123", "2005-01-01"),    # 4: 00-36 -> 2000s
    ("010140-4123", "1940-01-01"),    # 4: 37-99 -> 1900s
    ("150620-9000", "2020-06-15"),    # 9: 00-36 -> 2000s
    ("150650-9000", "1950-06-15"),    # 9: 37-99 -> 1900s
    ("010110-5123", "2010-01-01"),    # 5-8: 00-57 -> 2000s
    ("010160-8123", "1860-01-01"),    # 5-8: 58-99 -> 1800s
    ("290200-4000", "2000-02-29"),    # leap day in 2000
])
def test_birth_date_from_cpr_century_rule(coordinator, cpr, birth_date):
    r = coordinator.post("/v1/plans", json=kiptest.plan_body(cpr=cpr))
    assert r.status_code == 201, r.text
    assert r.json()["citizen"]["birth_date"] == birth_date
    assert r.json()["citizen"]["cpr"] == cpr


@pytest.mark.parametrize("cpr", [
    "290200-1234",     # 1900 was no leap year
    "290201-4000",     # 2001 neither
    "310490-1234",     # 31 April
    "000190-1234",
    "011390-1234",
])
def test_cpr_impossible_date_is_rejected(coordinator, cpr):
    problem(coordinator.post("/v1/plans", json=kiptest.plan_body(cpr=cpr)), 422, "citizen.cpr")


def test_citizen_without_cpr_keeps_given_birth_date(coordinator):
    r = coordinator.post("/v1/plans", json=kiptest.plan_body(
        citizen={"name": "Uden CPR", "birth_date": "1977-05-04"}))
    assert r.status_code == 201
    assert r.json()["citizen"]["birth_date"] == "1977-05-04"
    assert r.json()["citizen"]["cpr"] is None


def test_goals_get_ids_and_defaults(coordinator):
    given = "0b7a5b53-5d55-4a0e-9c39-3f4b0a0e0a01"
    r = coordinator.post("/v1/plans", json=kiptest.plan_body(goals=[
        {"text": "Egen bolig inden jul", "owner": "citizen",
         "sub_goals": [{"text": "Søge boligstøtte"}, {"text": "Møde med boligkontoret", "status": "achieved"}]},
        {"id": given, "text": "Stabil medicinering", "owner": "team", "status": "open"},
    ]))
    assert r.status_code == 201, r.text
    goals = r.json()["goals"]
    assert [g["text"] for g in goals] == ["Egen bolig inden jul", "Stabil medicinering"]
    assert UUID_RE.match(goals[0]["id"]) and goals[0]["status"] == "open"
    assert goals[1]["id"] == given and goals[1]["owner"] == "team"
    subs = goals[0]["sub_goals"]
    assert [s["status"] for s in subs] == ["open", "achieved"]
    assert all(UUID_RE.match(s["id"]) for s in subs)
    assert goals[1]["sub_goals"] == []


def test_coordinator_details_on_create(coordinator):
    r = coordinator.post("/v1/plans", json=kiptest.plan_body(
        coordinator={"role": "caseworker", "role_title": "Socialrådgiver", "phone": "70 10 20 30"}))
    assert r.status_code == 201, r.text
    plan = r.json()
    tov = next(p for p in plan["participants"] if p["id"] == plan["coordinator"])
    assert tov["role"] == "caseworker" and tov["role_title"] == "Socialrådgiver"
    assert tov["phone"] == "70 10 20 30"


def test_integration_role_may_create_plans(make_org, make_user):
    system = make_user(make_org(), ["integration"])
    r = system.post("/v1/plans", json=kiptest.plan_body())
    assert r.status_code == 201
    assert r.json()["owner_organisation_id"] == system.org["id"]


@pytest.mark.parametrize("roles", [["caseworker"], ["admin"], ["auditor"]])
def test_other_roles_may_not_create_plans(make_org, make_user, roles):
    user = make_user(make_org(), roles)
    problem(user.post("/v1/plans", json=kiptest.plan_body()), 403, type_suffix="forbidden")


def test_etag_matches_version(coordinator, make_plan):
    plan = make_plan(coordinator)
    r = coordinator.get(f"/v1/plans/{plan['id']}")
    assert etag_version(r) == r.json()["version"] == 1
