"""Organisations, users, tokens and authentication."""

import re

import pytest

import kiptest
from kiptest import TOKEN_RE, UUID_RE, problem


# ------------------------------------------------------------ organisations

def test_admin_is_bootstrapped(admin):
    r = admin.get("/v1/me")
    assert r.status_code == 200
    me = r.json()
    assert me["username"] == "admin"
    assert me["roles"] == ["admin"]
    assert me["active"] is True
    assert UUID_RE.match(me["organisation_id"])


def test_create_organisation(admin):
    r = admin.post("/v1/organisations", json={"name": "Region Hovedstadens Psykiatri",
                                              "sector": "region_psychiatry"})
    assert r.status_code == 201
    org = r.json()
    assert UUID_RE.match(org["id"])
    assert org["name"] == "Region Hovedstadens Psykiatri"
    assert org["sector"] == "region_psychiatry"
    assert org["cvr"] is None and org["ean"] is None
    assert org["created_at"]

    r = admin.post("/v1/organisations", json={"name": "Aarhus Kommune, Socialforvaltningen",
                                              "sector": "municipality_social",
                                              "cvr": "55133018", "ean": "5798005770001"})
    assert r.status_code == 201
    assert (r.json()["cvr"], r.json()["ean"]) == ("55133018", "5798005770001")

    r = admin.get(f"/v1/organisations/{org['id']}")
    assert r.status_code == 200
    assert r.json() == org


def test_organisations_are_listed_for_any_user(admin, coordinator):
    ids = [o["id"] for o in kiptest.collect_all(coordinator, "/v1/organisations")]
    assert coordinator.org["id"] in ids


@pytest.mark.parametrize("body,field", [
    ({"name": "X", "sector": "hospital"}, "sector"),
    ({"name": "X", "sector": "private", "cvr": "1234"}, "cvr"),
    ({"name": "X", "sector": "private", "ean": "12345678901234"}, "ean"),
    ({"sector": "private"}, "name"),
])
def test_create_organisation_invalid(admin, body, field):
    problem(admin.post("/v1/organisations", json=body), 422, field, "validation")


def test_create_organisation_unknown_field(admin):
    problem(admin.post("/v1/organisations", json={"name": "X", "sector": "private", "colour": "red"}),
            400, "colour", "bad-request")


def test_non_admin_cannot_create_organisation_or_user(coordinator):
    problem(coordinator.post("/v1/organisations", json={"name": "X", "sector": "private"}), 403,
            type_suffix="forbidden")
    problem(coordinator.post("/v1/users", json={
        "username": kiptest.unique("x"), "display_name": "X", "organisation_id": coordinator.org["id"],
        "roles": ["coordinator"]}), 403, type_suffix="forbidden")
    problem(coordinator.get("/v1/users"), 403)


# -------------------------------------------------------------------- users

def test_create_user(admin, make_org):
    org = make_org()
    username = kiptest.unique("sygeplejerske.")
    r = admin.post("/v1/users", json={"username": username, "display_name": "Søren Ågård",
                                      "organisation_id": org["id"], "roles": ["coordinator", "caseworker"],
                                      "email": "soren@example.dk"})
    assert r.status_code == 201
    user = r.json()
    assert UUID_RE.match(user["id"])
    assert user["username"] == username
    assert user["display_name"] == "Søren Ågård"
    assert user["organisation_id"] == org["id"]
    assert sorted(user["roles"]) == ["caseworker", "coordinator"]
    assert user["email"] == "soren@example.dk"
    assert user["phone"] is None
    assert user["active"] is True

    r = admin.get(f"/v1/users/{user['id']}")
    assert r.status_code == 200 and r.json() == user

    r = admin.post("/v1/users", json={"username": username, "display_name": "Another",
                                      "organisation_id": org["id"], "roles": ["caseworker"]})
    problem(r, 409, "username", "conflict")


@pytest.mark.parametrize("patch,field", [
    ({"username": "A B"}, "username"),
    ({"username": "ab"}, "username"),
    ({"roles": []}, "roles"),
    ({"organisation_id": "6f1c1f7e-6a3e-4a37-9d33-5b8f7f0d2a11"}, "organisation_id"),
])
def test_create_user_invalid(admin, make_org, patch, field):
    body = {"username": kiptest.unique("v"), "display_name": "V", "organisation_id": make_org()["id"],
            "roles": ["caseworker"]}
    body.update(patch)
    problem(admin.post("/v1/users", json=body), 422, field)


def test_create_user_unknown_role(admin, make_org):
    body = {"username": kiptest.unique("v"), "display_name": "V", "organisation_id": make_org()["id"],
            "roles": ["boss"]}
    r = admin.post("/v1/users", json=body)
    body = problem(r, 422)
    assert any(f and f.startswith("roles") for f in kiptest.error_fields(r)), body


def test_user_sees_self_but_not_others(make_org, make_user):
    org = make_org()
    a = make_user(org, ["caseworker"])
    b = make_user(org, ["caseworker"])
    assert a.get(f"/v1/users/{a.user['id']}").status_code == 200
    problem(a.get(f"/v1/users/{b.user['id']}"), 403)
    me = a.get("/v1/me").json()
    assert me["id"] == a.user["id"] and me["username"] == a.user["username"]


# ------------------------------------------------------------------- tokens

def test_token_lifecycle(admin, make_org, make_user):
    user = make_user(make_org(), ["caseworker"])
    r = admin.post(f"/v1/users/{user.user['id']}/tokens", json={"name": "laptop"})
    assert r.status_code == 201
    tok = r.json()
    assert TOKEN_RE.match(tok["token"]), tok["token"]
    assert tok["user_id"] == user.user["id"]
    assert tok["name"] == "laptop"
    assert tok["expires_at"] is None and tok["revoked_at"] is None

    client = admin.with_token(tok["token"])
    r = client.get("/v1/me")
    assert r.status_code == 200 and r.json()["id"] == user.user["id"]

    listed = admin.get(f"/v1/users/{user.user['id']}/tokens")
    assert listed.status_code == 200
    assert tok["id"] in [t["id"] for t in listed.json()["items"]]
    assert tok["token"] not in listed.text, "the token list must never carry the secret"

    r = admin.delete(f"/v1/tokens/{tok['id']}")
    assert r.status_code == 204
    assert r.content == b""
    r = client.get("/v1/me")
    problem(r, 401, type_suffix="unauthenticated")
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")

    # The other token of the same user still works.
    assert user.get("/v1/me").status_code == 200


def test_tokens_are_distinct(admin, make_org, make_user):
    user = make_user(make_org(), ["caseworker"])
    tokens = {admin.post(f"/v1/users/{user.user['id']}/tokens", json={"name": f"t{i}"}).json()["token"]
              for i in range(5)}
    assert len(tokens) == 5


def test_user_creates_own_token_but_not_for_others(make_org, make_user):
    org = make_org()
    a = make_user(org, ["caseworker"])
    b = make_user(org, ["caseworker"])
    r = a.post(f"/v1/users/{a.user['id']}/tokens", json={"name": "mine"})
    assert r.status_code == 201 and TOKEN_RE.match(r.json()["token"])
    problem(a.post(f"/v1/users/{b.user['id']}/tokens", json={"name": "theirs"}), 403)
    # and revokes their own
    assert a.delete(f"/v1/tokens/{r.json()['id']}").status_code == 204


def test_token_expiry_in_the_past_is_rejected(admin, make_org, make_user):
    user = make_user(make_org(), ["caseworker"])
    r = admin.post(f"/v1/users/{user.user['id']}/tokens",
                   json={"name": "old", "expires_at": kiptest.iso(kiptest.ago(hours=1))})
    problem(r, 422, "expires_at", "validation")
    later = kiptest.iso(kiptest.from_now(days=90))
    r = admin.post(f"/v1/users/{user.user['id']}/tokens", json={"name": "later", "expires_at": later})
    assert r.status_code == 201
    assert kiptest.parse_time(r.json()["expires_at"]) == kiptest.parse_time(later)
    assert admin.with_token(r.json()["token"]).get("/v1/me").status_code == 200


def test_deactivated_user_token_stops_working(admin, make_org, make_user):
    user = make_user(make_org(), ["coordinator"])
    assert user.get("/v1/me").status_code == 200
    r = admin.patch(f"/v1/users/{user.user['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    r = user.get("/v1/me")
    problem(r, 401)
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    r = admin.patch(f"/v1/users/{user.user['id']}", json={"active": True})
    assert r.status_code == 200
    assert user.get("/v1/me").status_code == 200


def test_no_or_bad_credentials(anon, kipd):
    for client in (anon, anon.with_token("kipd_" + "A" * 43), anon.with_token("not-a-kipd-token")):
        r = client.get("/v1/me")
        problem(r, 401, type_suffix="unauthenticated")
        assert re.match(r"^Bearer", r.headers.get("WWW-Authenticate", "")), r.headers
    r = anon.get("/v1/plans")
    problem(r, 401)
    r = anon.post("/v1/plans", json=kiptest.plan_body())
    problem(r, 401)
    # Other schemes are not credentials either.
    r = anon.get("/v1/me", headers={"Authorization": "Basic YWRtaW46YWRtaW4="})
    problem(r, 401)
