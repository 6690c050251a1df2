"""Idempotency-Key on POST (issue 14; docs/api.md, "Idempotency"): a repeat
gets the stored first answer and writes nothing again, another body with the
key is 422, a repeat while the first still runs is 409, keys are per user and
kept 24 hours, a bad key is refused naming the header, a replay is audited
and checked against the access rule, and the stored answer keeps CPR numbers
sealed."""

import subprocess
import threading
import time
import uuid

import kiptest
from kiptest import PG_BINDIR, problem


def _sql(pg, kipd, query):
    return pg.psql(query, db=kipd.db)


def _action_body(plan, title=None):
    return {"title": title or f"Opgave {uuid.uuid4().hex[:8]}", "area": "housing",
            "responsible_participant_id": plan["coordinator"]}


def _post_action(client, plan, body, key, **headers):
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/v1/plans/{plan['id']}/actions", json=body, headers=headers)


def _actions_titled(pg, kipd, title):
    return int(_sql(pg, kipd, f"SELECT count(*) FROM kip.actions WHERE title = '{title}'"))


def _same_answer(first, again):
    assert again.status_code == first.status_code
    assert again.content == first.content
    for h in ("Location", "ETag", "Content-Type"):
        assert again.headers.get(h) == first.headers.get(h), h


def test_a_repeat_gets_the_first_answer_and_writes_nothing(pg, kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    body = _action_body(plan)
    key = f"retry-{uuid.uuid4()}"
    first = _post_action(coordinator, plan, body, key)
    assert first.status_code == 201, first.text
    assert first.headers["Location"].endswith(first.json()["id"])
    # The same JSON with its keys in another order is the same request.
    again = coordinator.post(f"/v1/plans/{plan['id']}/actions", headers={"Idempotency-Key": key},
                             json=dict(reversed(list(body.items()))))
    _same_answer(first, again)
    assert _actions_titled(pg, kipd, body["title"]) == 1
    # Without the key, the same body is a new action.
    third = _post_action(coordinator, plan, body, None)
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
    assert _actions_titled(pg, kipd, body["title"]) == 2


def test_a_plan_replayed_reveals_its_cpr_but_the_stored_answer_holds_it_sealed(pg, kipd, coordinator):
    cpr = kiptest.new_cpr()
    kiptest.remember_secret(cpr)
    body = kiptest.plan_body(cpr=cpr)
    key = f"plan-{uuid.uuid4()}"
    first = coordinator.post("/v1/plans", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert first.json()["citizen"]["cpr"] == cpr
    again = coordinator.post("/v1/plans", json=body, headers={"Idempotency-Key": key})
    _same_answer(first, again)
    name = body["citizen"]["name"].replace("'", "''")
    assert int(_sql(pg, kipd, f"SELECT count(*) FROM kip.plans WHERE citizen_name = '{name}'")) == 1
    stored = _sql(pg, kipd, f"SELECT body::text FROM kip.idempotency WHERE key = '{key}'")
    assert first.json()["id"] in stored
    assert cpr not in stored and cpr.replace("-", "") not in stored
    assert "\\u0001" in stored, "the stored answer should hold the sealed CPR token"


def test_the_same_key_with_another_body_or_route_is_422(pg, kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    other_plan = make_plan(coordinator)
    body = _action_body(plan)
    key = f"k-{uuid.uuid4()}"
    assert _post_action(coordinator, plan, body, key).status_code == 201
    changed = dict(body, title=body["title"] + " (rettet)")
    problem(_post_action(coordinator, plan, changed, key), 422, field="Idempotency-Key",
            code="idempotency_key_reused", pointer=None)
    problem(_post_action(coordinator, other_plan, body, key), 422, field="Idempotency-Key",
            code="idempotency_key_reused")
    assert _actions_titled(pg, kipd, changed["title"]) == 0
    assert _actions_titled(pg, kipd, body["title"]) == 1


class _RowLock:
    """A transaction of psql's holding a plan's row lock, so that a write to
    the plan waits until release()."""

    def __init__(self, pg, db, plan_id):
        self.proc = subprocess.Popen(
            [str(PG_BINDIR / "psql"), "-h", str(pg.sockdir), "-U", "postgres", "-d", db, "-X", "-A", "-t",
             "-q", "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write(f"BEGIN;\nSELECT 'locked' FROM kip.plans WHERE id = '{plan_id}' FOR UPDATE;\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        assert line == "locked", (line, self.proc.stderr.read() if self.proc.poll() is not None else "")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("ROLLBACK;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def test_a_repeat_while_the_first_runs_is_409(pg, kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    body = _action_body(plan)
    key = f"slow-{uuid.uuid4()}"
    lock = _RowLock(pg, kipd.db, plan["id"])
    answers = {}
    try:
        first = threading.Thread(target=lambda: answers.update(first=_post_action(coordinator, plan, body, key)))
        first.start()
        # The first request has claimed its key and waits for the plan's row.
        kiptest.wait_until(lambda: int(_sql(pg, kipd,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%idem_store%'")) == 1, timeout=20, what="the first request waiting")
        t0 = time.monotonic()
        busy = _post_action(coordinator, plan, body, key)
        assert time.monotonic() - t0 < 5, "the repeat must not wait for the first"
        problem(busy, 409, field="Idempotency-Key", code="idempotency_in_progress")
        assert "first" not in answers
    finally:
        lock.release()
    first.join(timeout=30)
    assert answers["first"].status_code == 201, answers["first"].text
    _same_answer(answers["first"], _post_action(coordinator, plan, body, key))
    assert _actions_titled(pg, kipd, body["title"]) == 1


def test_keys_are_per_user(pg, kipd, coordinator, make_user, make_plan):
    plan = make_plan(coordinator)
    colleague = make_user(coordinator.org, ["coordinator"])
    body = _action_body(plan)
    key = "shared-key-1"
    mine = _post_action(coordinator, plan, body, key)
    theirs = _post_action(colleague, plan, body, key)
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert _actions_titled(pg, kipd, body["title"]) == 2
    # Each user's repeat gets their own first answer.
    _same_answer(mine, _post_action(coordinator, plan, body, key))
    _same_answer(theirs, _post_action(colleague, plan, body, key))
    # Another user's key does not clash with another body either.
    other = _action_body(plan)
    assert _post_action(make_user(coordinator.org, ["coordinator"]), plan, other, key).status_code == 201


def test_a_key_expires_after_24_hours_and_the_daily_pass_forgets_it(pg, kipd, admin, coordinator, make_plan):
    plan = make_plan(coordinator)
    body = _action_body(plan)
    key = f"old-{uuid.uuid4()}"
    first = _post_action(coordinator, plan, body, key)
    assert first.status_code == 201
    uid = coordinator.user["id"]
    # 23 hours later the key still answers with the first answer.
    _sql(pg, kipd, f"UPDATE kip.idempotency SET created_at = now() - interval '23 hours' "
                   f"WHERE user_id = '{uid}' AND key = '{key}'")
    _same_answer(first, _post_action(coordinator, plan, body, key))
    # After 24 hours the key is free again: the same request writes anew,
    # and even another body is accepted.
    _sql(pg, kipd, f"UPDATE kip.idempotency SET created_at = now() - interval '24 hours 1 minute' "
                   f"WHERE user_id = '{uid}' AND key = '{key}'")
    second = _post_action(coordinator, plan, body, key)
    assert second.status_code == 201 and second.json()["id"] != first.json()["id"]
    assert _actions_titled(pg, kipd, body["title"]) == 2
    _same_answer(second, _post_action(coordinator, plan, body, key))
    # The daily pass deletes expired keys and keeps the live ones.
    stale = f"stale-{uuid.uuid4()}"
    assert _post_action(coordinator, plan, _action_body(plan), stale).status_code == 201
    _sql(pg, kipd, f"UPDATE kip.idempotency SET created_at = now() - interval '25 hours' "
                   f"WHERE user_id = '{uid}' AND key = '{stale}'")
    assert admin.post("/v1/admin/daily-pass").status_code == 200
    keys = _sql(pg, kipd, f"SELECT string_agg(key, ' ') FROM kip.idempotency WHERE user_id = '{uid}'").split()
    assert key in keys and stale not in keys


def test_a_bad_key_is_refused_naming_the_header(pg, kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    body = _action_body(plan)
    for bad in ("", "x" * 256, "nøgle"):
        r = coordinator.post(f"/v1/plans/{plan['id']}/actions", json=body,
                             headers={"Idempotency-Key": bad.encode("latin-1")})
        problem(r, 400, field="Idempotency-Key", code="invalid_format", pointer=None)
    assert _actions_titled(pg, kipd, body["title"]) == 0
    # 255 printable characters, spaces inside included, are a key.
    good = "k " + "x" * 253
    assert _post_action(coordinator, plan, body, good).status_code == 201


def test_routes_that_show_a_secret_once_refuse_a_key(kipd, admin, anon, coordinator):
    uid = coordinator.user["id"]
    problem(admin.post(f"/v1/users/{uid}/tokens", json={"name": "ci"}, headers={"Idempotency-Key": "t1"}),
            422, field="Idempotency-Key", code="idempotency_not_supported")
    problem(coordinator.post("/v1/me/calendar-feed", headers={"Idempotency-Key": "f1"}),
            422, field="Idempotency-Key", code="idempotency_not_supported")
    org = coordinator.org["id"]
    integ = kiptest.create_user(admin, {"id": org}, ["integration"])
    problem(integ.post("/v1/webhooks", json={"url": "https://receiver.example.dk/kip"},
                       headers={"Idempotency-Key": "w1"}),
            422, field="Idempotency-Key", code="idempotency_not_supported")
    problem(anon.post("/v1/session", json={"username": "nobody", "password": "x" * 12},
                      headers={"Idempotency-Key": "s1"}),
            422, field="Idempotency-Key", code="idempotency_not_supported")
    # A search only reads: the key is checked, and the search runs each time.
    for _ in range(2):
        r = coordinator.post("/v1/plans/search", json={}, headers={"Idempotency-Key": "search-1"})
        assert r.status_code == 200, r.text


def test_a_replay_is_audited_as_a_read_of_the_plan(pg, kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    body = _action_body(plan)
    key = f"audit-{uuid.uuid4()}"
    assert _post_action(coordinator, plan, body, key).status_code == 201
    again = _post_action(coordinator, plan, body, key)
    assert again.status_code == 201
    rows = _sql(pg, kipd, "SELECT action || '|' || resource || '|' || user_id || '|' || request_id "
                          f"FROM kip.audit WHERE plan_id = '{plan['id']}' ORDER BY id").splitlines()
    assert rows[-1] == f"idempotency.replay|action|{coordinator.user['id']}|{again.headers['X-Request-Id']}"
    assert sum(1 for r in rows if r.startswith("action.create|")) == 1


def test_a_replay_needs_the_access_the_first_answer_showed(pg, kipd, coordinator, make_org, make_user,
                                                           make_plan):
    """A caseworker of another organisation writes under the consent; once the
    consent is withdrawn, the stored answer is no longer theirs to see."""
    plan = make_plan(coordinator)
    other_org = make_org()
    worker = make_user(other_org, ["caseworker"])
    r = coordinator.post(f"/v1/plans/{plan['id']}/consent",
                         json={"kip_consent": True, "form": "written", "given_at": "2025-03-01T12:00:00+01:00",
                               "contact_organisation_ids": [other_org["id"]]})
    assert r.status_code == 201, r.text
    r = coordinator.post(f"/v1/plans/{plan['id']}/participants",
                         json={"kind": "professional", "role": "caseworker", "user_id": worker.user["id"]})
    assert r.status_code == 201, r.text
    body = _action_body(plan)
    key = f"access-{uuid.uuid4()}"
    first = _post_action(worker, plan, body, key)
    assert first.status_code == 201, first.text
    _same_answer(first, _post_action(worker, plan, body, key))
    r = coordinator.post(f"/v1/plans/{plan['id']}/consent/withdraw", json={"note": "Borgeren trak samtykket tilbage"})
    assert r.status_code == 200, r.text
    problem(_post_action(worker, plan, body, key), 404)


def test_the_stored_hash_leaves_passwords_out(pg, kipd, admin, make_org):
    """A user made with a password: the stored request hash must not be a
    plain hash over the password, so a repeat that differs only in the
    password is the same request (the user keeps the first password)."""
    org = make_org()
    body = {"username": kiptest.unique("idem"), "display_name": "Ida Idempotent", "organisation_id": org["id"],
            "roles": ["coordinator"], "password": "første-hemmelige-kode"}
    kiptest.remember_secret(body["password"])
    key = f"user-{uuid.uuid4()}"
    first = admin.post("/v1/users", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    _same_answer(first, admin.post("/v1/users", json=body, headers={"Idempotency-Key": key}))
    other = dict(body, password="anden-hemmelige-kode")
    kiptest.remember_secret(other["password"])
    _same_answer(first, admin.post("/v1/users", json=other, headers={"Idempotency-Key": key}))
    assert int(_sql(pg, kipd, f"SELECT count(*) FROM kip.users WHERE username = '{body['username']}'")) == 1
    anon = kiptest.Api(kipd.url, None, name="anonymous")
    r = anon.post("/v1/session", json={"username": body["username"], "password": body["password"]})
    assert r.status_code == 201, r.text
    r = anon.post("/v1/session", json={"username": body["username"], "password": other["password"]})
    assert r.status_code == 401
    assert _sql(pg, kipd, f"SELECT request_hash FROM kip.idempotency WHERE key = '{key}'") != ""


def test_a_failed_request_keeps_nothing_and_runs_again(pg, kipd, coordinator, make_org, make_user, make_plan):
    """A write that fails rolls back with its claim: no stored answer, and
    the same key and body run again once the plan allows them."""
    plan = make_plan(coordinator)
    other_org = make_org()
    worker = make_user(other_org, ["caseworker"])
    body = {"kind": "professional", "role": "caseworker", "user_id": worker.user["id"]}
    key = f"later-{uuid.uuid4()}"
    url = f"/v1/plans/{plan['id']}/participants"
    refused = coordinator.post(url, json=body, headers={"Idempotency-Key": key})
    assert refused.status_code == 422, refused.text
    assert _sql(pg, kipd, f"SELECT count(*) FROM kip.idempotency WHERE key = '{key}'") == "0"
    r = coordinator.post(f"/v1/plans/{plan['id']}/consent",
                         json={"kip_consent": True, "form": "written", "given_at": "2025-03-01T12:00:00+01:00",
                               "contact_organisation_ids": [other_org["id"]]})
    assert r.status_code == 201, r.text
    first = coordinator.post(url, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    _same_answer(first, coordinator.post(url, json=body, headers={"Idempotency-Key": key}))
    assert int(_sql(pg, kipd, f"SELECT count(*) FROM kip.participants WHERE plan_id = '{plan['id']}' "
                              f"AND user_id = '{worker.user['id']}'")) == 1
