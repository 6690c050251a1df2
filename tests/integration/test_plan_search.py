"""CPR search without the CPR in the URL (issue #13, contract item 3):
POST /v1/plans/search answers exactly the list of GET /v1/plans, and
GET /v1/plans refuses a CPR-shaped q."""

import uuid

import kiptest
from kiptest import problem


def _search(client, **body):
    r = client.post("/v1/plans/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _ids(page):
    return [i["id"] for i in page["items"]]


def test_search_by_cpr_in_the_body(coordinator, make_plan):
    plans = [make_plan(coordinator) for _ in range(3)]
    target = plans[1]
    cpr = target["citizen"]["cpr"]
    for body in ({"cpr": cpr}, {"cpr": cpr.replace("-", "")}, {"q": cpr}, {"q": f" {cpr.replace('-', '')} "}):
        page = _search(coordinator, **body)
        assert _ids(page) == [target["id"]], body
        assert page["items"][0]["citizen"]["cpr"] == cpr[:6] + "-****"
        assert cpr not in str(page)
    # The same answer as the list, item for item.
    listed = {i["id"]: i for i in kiptest.collect_all(coordinator, "/v1/plans")}
    assert _search(coordinator, cpr=cpr)["items"] == [listed[target["id"]]]
    # A name in the body works as in the URL; filters too.
    name = target["citizen"]["name"]
    assert _ids(_search(coordinator, q=name)) == _ids(coordinator.get("/v1/plans", params={"q": name}).json())
    assert _search(coordinator, cpr=cpr, status="active")["items"] == []
    assert _ids(_search(coordinator, cpr=cpr, status="draft")) == [target["id"]]


def test_paging_is_that_of_the_list(coordinator, make_plan):
    mark = uuid.uuid4().hex[:8]
    made = [make_plan(coordinator, name=f"Søgning {mark} {i}")["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        page = _search(coordinator, q=mark, limit=2, cursor=cursor)
        seen += _ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


def test_bad_search_bodies(coordinator):
    problem(coordinator.post("/v1/plans/search", json={"cpr": "320190-1234"}), 422, "cpr", code="invalid_cpr",
            pointer="/cpr")
    problem(coordinator.post("/v1/plans/search", json={"limit": 0}), 422, "limit", code="out_of_range",
            pointer="/limit")
    problem(coordinator.post("/v1/plans/search", json={"limit": "5"}), 400, "limit", code="wrong_type")
    problem(coordinator.post("/v1/plans/search", json={"bogus": 1}), 400, "bogus", code="unknown_field")
    problem(coordinator.post("/v1/plans/search", json={"status": "open"}), 422, "status",
            code="not_allowed_value")
    problem(coordinator.post("/v1/plans/search", json={"cursor": "zz"}), 400, "cursor", code="invalid_cursor")


def test_a_hidden_plan_never_appears(coordinator, make_plan, make_org, make_user):
    plan = make_plan(coordinator)
    cpr = plan["citizen"]["cpr"]
    stranger = make_user(make_org(), ["coordinator", "caseworker"])
    assert _search(stranger, cpr=cpr)["items"] == []
    assert _search(stranger, q=plan["citizen"]["name"])["items"] == []


def test_each_plan_shown_is_audited(coordinator, make_plan, kipd, pg):
    plan = make_plan(coordinator)
    rid = "search-" + uuid.uuid4().hex
    r = coordinator.post("/v1/plans/search", json={"cpr": plan["citizen"]["cpr"]}, headers={"X-Request-Id": rid})
    assert r.status_code == 200
    rows = pg.psql(f"SELECT action || '|' || plan_id FROM kip.audit WHERE request_id = '{rid}'",
                   db=kipd.db).splitlines()
    assert rows == [f"plan.list|{plan['id']}"]
    rid = "search-" + uuid.uuid4().hex
    r = coordinator.post("/v1/plans/search", json={"cpr": kiptest.new_cpr()}, headers={"X-Request-Id": rid})
    assert r.status_code == 200 and r.json()["items"] == []
    assert pg.psql(f"SELECT count(*) FROM kip.audit WHERE request_id = '{rid}'", db=kipd.db) == "0"


def test_cpr_in_the_url_is_refused(coordinator, make_plan, kipd):
    plan = make_plan(coordinator)
    cpr = plan["citizen"]["cpr"]
    for q in (cpr, cpr.replace("-", ""), f" {cpr} "):
        p = problem(coordinator.get("/v1/plans", params={"q": q}), 422, "q", code="cpr_in_url", pointer=None)
        assert cpr not in str(p) and cpr.replace("-", "") not in str(p)
    # Not CPR-shaped: a name search as before.
    assert coordinator.get("/v1/plans", params={"q": cpr[:6]}).status_code == 200
    assert cpr not in kipd.output_text()


def test_search_with_the_session_cookie_needs_the_csrf_token(kipd, admin, make_org):
    pw = f"Kodeord-{uuid.uuid4().hex[:16]}-æøå"
    kiptest.remember_secret(pw)
    person = kiptest.create_user(admin, make_org(), ["coordinator"], password=pw)
    c = kiptest.Api(kipd.url, None, name="cookie")
    r = c.post("/v1/session", json={"username": person.user["username"], "password": pw})
    assert r.status_code == 201, r.text
    csrf = r.json()["csrf_token"]
    kiptest.remember_secret(csrf)
    problem(c.post("/v1/plans/search", json={}), 403, "X-CSRF-Token")
    r = c.post("/v1/plans/search", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
