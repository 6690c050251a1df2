"""The colleague directory, GET /v1/directory (issue #13, contract item 2).

Coordinators and caseworkers find a professional by name and organisation to
add them to a plan. It shows active users only, and only what a staff page
would: name, organisation, one role label, work phone and e-mail.
"""

import uuid

import pytest

import kiptest
from kiptest import problem

FIELDS = {"id", "display_name", "organisation", "role", "phone", "email"}


@pytest.fixture(scope="module")
def town(kipd, admin):
    """Two organisations with people whose names share a fresh marker."""
    mark = uuid.uuid4().hex[:8]
    hosp = kiptest.create_org(admin, "region_hospital", f"Hospital {mark}")
    job = kiptest.create_org(admin, "municipality_jobcenter", f"Jobcenter {mark}")

    def user(org, roles, name, **fields):
        return kiptest.create_user(admin, org, roles, display_name=f"{name} {mark}", **fields)

    people = {
        "nurse": user(hosp, ["coordinator"], "Sofie Sygeplejerske", phone="+45 3862 0000",
                      email="sofie@hospital.example"),
        "caseworker": user(job, ["caseworker"], "Jens Jobcenter", phone="+45 4477 0000"),
        "both": user(job, ["caseworker", "coordinator"], "Åse Ærø"),
        "system": user(job, ["integration"], "Kommunens system"),
        "admin": user(hosp, ["admin"], "Anne Admin"),
        "auditor": user(hosp, ["auditor"], "Aksel Revisor"),
        "gone": user(job, ["caseworker"], "Gunnar Gået"),
    }
    r = admin.patch(f"/v1/users/{people['gone'].user['id']}", json={"active": False})
    assert r.status_code == 200, r.text
    return {"mark": mark, "hosp": hosp, "job": job, **people}


def _ids(r):
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["items"]]


def test_find_by_name_shows_only_the_staff_page_fields(town):
    nurse, cw = town["nurse"], town["caseworker"]
    r = nurse.get("/v1/directory", params={"q": f"jobcenter {town['mark']}"})
    assert _ids(r) == [cw.user["id"]]
    item = r.json()["items"][0]
    assert set(item) == FIELDS
    assert item == {"id": cw.user["id"], "display_name": cw.user["display_name"],
                    "organisation": {"id": town["job"]["id"], "name": town["job"]["name"],
                                     "sector": "municipality_jobcenter"},
                    "role": "caseworker", "phone": "+45 4477 0000", "email": None}
    assert cw.user["username"] not in r.text
    assert "roles" not in r.text and "token" not in r.text
    assert r.json()["next_cursor"] is None


def test_by_organisation_sorted_by_name_active_only_with_one_role_label(town):
    r = town["caseworker"].get("/v1/directory", params={"organisation_id": town["job"]["id"]})
    items = r.json()["items"]
    names = [i["display_name"] for i in items]
    assert names == sorted(names, key=str.lower) or len(names) > 1
    got = {i["id"]: i["role"] for i in items}
    assert got == {town["caseworker"].user["id"]: "caseworker",
                   town["both"].user["id"]: "coordinator",
                   town["system"].user["id"]: "integration"}
    assert town["gone"].user["id"] not in got, "an inactive user is listed"
    # Both filters at once.
    r = town["nurse"].get("/v1/directory", params={"organisation_id": town["job"]["id"], "q": "ærø"})
    assert _ids(r) == [town["both"].user["id"]]


def test_paging(town):
    nurse = town["nurse"]
    seen = []
    cursor = None
    for _ in range(10):
        params = {"q": town["mark"], "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        r = nurse.get("/v1/directory", params=params)
        seen += _ids(r)
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    everyone = _ids(nurse.get("/v1/directory", params={"q": town["mark"]}))
    assert seen == everyone and len(seen) == 6, seen
    problem(nurse.get("/v1/directory", params={"q": town["mark"], "cursor": "zz"}), 400, "cursor",
            code="invalid_cursor", pointer=None)


def test_only_coordinators_and_caseworkers(town, anon):
    for who in ("system", "admin", "auditor"):
        problem(town[who].get("/v1/directory", params={"q": town["mark"]}), 403)
    problem(anon.get("/v1/directory", params={"q": town["mark"]}), 401)
    # A deactivated user's token no longer works at all.
    problem(town["gone"].get("/v1/directory", params={"q": town["mark"]}), 401)


def test_bad_queries(town):
    nurse = town["nurse"]
    problem(nurse.get("/v1/directory"), 422, "q", code="required", pointer=None)
    problem(nurse.get("/v1/directory", params={"q": "a"}), 422, "q", code="too_short", pointer=None)
    problem(nurse.get("/v1/directory", params={"organisation_id": "x"}), 422, "organisation_id",
            code="invalid_uuid", pointer=None)
    problem(nurse.get("/v1/directory", params={"q": "ab", "username": "x"}), 400, "username",
            code="unknown_field")


def test_lookups_are_audited_without_a_plan(town, kipd, pg):
    rid = "dir-" + uuid.uuid4().hex
    r = town["nurse"].get("/v1/directory", params={"q": town["mark"]}, headers={"X-Request-Id": rid})
    assert r.status_code == 200
    rows = pg.psql("SELECT action || '|' || resource || '|' || coalesce(plan_id::text, '') || '|' || "
                   f"user_id FROM kip.audit WHERE request_id = '{rid}'", db=kipd.db).splitlines()
    assert rows == [f"directory.search|directory||{town['nurse'].user['id']}"]


def test_rate_limited(kipd, admin):
    org = kiptest.create_org(admin, "municipality_social")
    me = kiptest.create_user(admin, org, ["caseworker"])
    codes = [me.get("/v1/directory", params={"q": "zz-nobody"}).status_code for _ in range(25)]
    assert codes[:20] == [200] * 20, codes
    assert 429 in codes[20:], codes
    r = me.get("/v1/directory", params={"q": "zz-nobody"})
    if r.status_code == 429:
        assert r.headers["Retry-After"] == "1"
        assert r.headers["Content-Type"].startswith("application/problem+json")
    # Another user has a bucket of their own.
    other = kiptest.create_user(admin, org, ["caseworker"])
    assert other.get("/v1/directory", params={"q": "zz-nobody"}).status_code == 200
