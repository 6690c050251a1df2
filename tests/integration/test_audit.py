"""The audit trail (issue 5): one record per read and write, append-only by
grants, a hash chain that reveals tampering, the auditor's log and the
citizen's access log, and 503 when a record cannot be written."""

import os
import subprocess
import time
import uuid

import pytest

import kiptest
from kiptest import Api, Kipd, RUNTIME_ROLE, problem

GIVEN_AT = "2025-03-01T12:00:00+01:00"


@pytest.fixture
def auditor(make_org, make_user):
    return make_user(make_org(), ["auditor"])


def _rows(pg, db, where, params=""):
    """Audit rows as (id, action, plan_id, resource) tuples, by id."""
    out = pg.psql(f"SELECT id, action, coalesce(plan_id::text, ''), resource FROM kip.audit "
                  f"WHERE {where} ORDER BY id", db=db)
    return [tuple(line.split("|")) for line in out.splitlines() if line]


def _request_rows(pg, db, resp):
    rid = resp.headers["X-Request-Id"]
    assert all(c in "0123456789abcdef-" for c in rid), rid
    return _rows(pg, db, f"request_id = '{rid}'")


def _verify(client, **params):
    r = client.get("/v1/audit/verify", params=params)
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------- one per read

def test_single_reads_and_writes_write_one_row_each(pg, kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    r = coordinator.get(f"/v1/plans/{plan['id']}")
    assert r.status_code == 200
    assert [row[1:] for row in _request_rows(pg, kipd.db, r)] == [("plan.read", plan["id"], "plan")]
    r = coordinator.patch(f"/v1/plans/{plan['id']}", json={"reason": "Ny grund"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert [row[1:] for row in _request_rows(pg, kipd.db, r)] == [("plan.update", plan["id"], "plan")]
    r = coordinator.get(f"/v1/plans/{plan['id']}/history")
    assert [row[1:] for row in _request_rows(pg, kipd.db, r)] == [("plan.history", plan["id"], "history")]


def test_list_writes_one_row_per_plan_shown(pg, kipd, coordinator, make_plan):
    plans = [make_plan(coordinator) for _ in range(3)]
    r = coordinator.get("/v1/plans", params={"limit": 2})
    assert r.status_code == 200
    shown = [p["id"] for p in r.json()["items"]]
    assert len(shown) == 2 and r.json()["next_cursor"]
    rows = _request_rows(pg, kipd.db, r)
    assert sorted(row[2] for row in rows) == sorted(shown)
    assert {row[1] for row in rows} == {"plan.list"}
    # An empty page writes nothing.
    r = coordinator.get("/v1/plans", params={"q": "ingen-borger-med-dette-navn"})
    assert r.json()["items"] == [] and _request_rows(pg, kipd.db, r) == []
    assert {p["id"] for p in plans} >= set(shown)


def test_worklist_audits_only_the_plans_shown(pg, kipd, coordinator, make_plan):
    """GET /v1/me/actions: one action.list_mine row per plan whose actions are
    on the page, not the look-ahead row's plan."""
    first, second = make_plan(coordinator), make_plan(coordinator)
    for plan in (first, second):
        # The creating coordinator is the plan's tovholder participant.
        r = coordinator.post(f"/v1/plans/{plan['id']}/actions",
                             json={"title": "Ring til lægen", "area": "somatic_health",
                                   "responsible_participant_id": plan["coordinator"]})
        assert r.status_code == 201, r.text
    r = coordinator.get("/v1/me/actions", params={"limit": 1})
    assert r.status_code == 200 and len(r.json()["items"]) == 1
    rows = _request_rows(pg, kipd.db, r)
    assert [row[1:] for row in rows] == [("action.list_mine", r.json()["items"][0]["plan_id"], "action")]


# ------------------------------------------------------ append-only grants

def test_runtime_role_cannot_change_or_remove_audit_rows(pg, kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    coordinator.get(f"/v1/plans/{plan['id']}")
    for sql in ("DELETE FROM kip.audit",
                "UPDATE kip.audit SET action = 'x'",
                "TRUNCATE kip.audit",
                "DELETE FROM kip.audit_seal",
                "UPDATE kip.audit_seal SET hash = hash",
                "INSERT INTO kip.audit_seal (seq, audit_id, prev_hash, hash) "
                "VALUES (999999, 1, sha256(''), sha256(''))",
                "ALTER TABLE kip.audit DISABLE TRIGGER ALL",
                "DROP TABLE kip.audit"):
        with pytest.raises(RuntimeError) as e:
            pg.psql(sql, db=kipd.db, user=RUNTIME_ROLE)
        assert "permission denied" in str(e.value) or "must be owner" in str(e.value), (sql, str(e.value))
    # It may read and add, which is all kipd does.
    assert int(pg.psql("SELECT count(*) FROM kip.audit", db=kipd.db, user=RUNTIME_ROLE)) > 0
    assert pg.psql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
                   db=kipd.db, user=RUNTIME_ROLE) == "f"
    assert pg.psql("SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles "
                   "WHERE rolname = current_user)", db=kipd.db, user=RUNTIME_ROLE) == "0"
    assert pg.psql("SELECT kip.audit_append_only()", db=kipd.db, user=RUNTIME_ROLE) == "t"
    assert kiptest.Api(kipd.url).get("/readyz").json()["audit"] == {"append_only": True}


def test_without_db_owner_kipd_warns_that_the_audit_is_not_append_only(pg, workroot, new_db):
    db = new_db()
    k = Kipd.external(kiptest.make_workdir(workroot, kiptest.unique("single-role-")), pg.url(db),
                      name="single-role")
    with kiptest.running_kipd(k):
        assert Api(k.url).get("/readyz").json()["audit"] == {"append_only": False}
        warnings = [rec for rec in k.log_records() if rec.get("level") == "warn"
                    and "not append-only" in rec.get("msg", "")]
        assert len(warnings) == 1 and warnings[0]["audit_append_only"] is False, k.log_records()


# ------------------------------------------------------------ 503 on failure

def test_a_read_whose_audit_row_cannot_be_written_answers_503(pg, kipd, coordinator, make_plan):
    plan = make_plan(coordinator)
    pg.psql("REVOKE INSERT ON kip.audit FROM kipd_runtime", db=kipd.db)
    try:
        r = coordinator.get(f"/v1/plans/{plan['id']}")
        body = problem(r, 503)
        assert plan["citizen"]["name"] not in r.text and plan["citizen"]["cpr"] not in r.text
        assert "audit" in body["detail"]
        problem(coordinator.get("/v1/plans"), 503)
        # A write is rolled back with its audit row.
        r = coordinator.patch(f"/v1/plans/{plan['id']}", json={"reason": "Aldrig"}, headers={"If-Match": '"1"'})
        problem(r, 503)
    finally:
        pg.psql("GRANT INSERT ON kip.audit TO kipd_runtime", db=kipd.db)
    r = coordinator.get(f"/v1/plans/{plan['id']}")
    assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["reason"] == plan["reason"]
    assert any(rec.get("msg") == "audit record not written" for rec in kipd.log_records())


def test_any_error_in_the_audit_insert_answers_503(pg, kipd, coordinator, make_plan):
    """A trigger that raises (as the owner could add) stands for any failure
    inside the insert: a full disk, a broken constraint, a timeout."""
    plan = make_plan(coordinator)
    pg.psql("CREATE FUNCTION kip.test_audit_fails() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'no audit today' USING ERRCODE = '23514'; END $$; "
            "CREATE TRIGGER test_audit_fails BEFORE INSERT ON kip.audit "
            "FOR EACH ROW EXECUTE FUNCTION kip.test_audit_fails()", db=kipd.db)
    try:
        problem(coordinator.get(f"/v1/plans/{plan['id']}"), 503)
        problem(coordinator.get("/v1/plans"), 503)
        problem(coordinator.get(f"/v1/plans/{plan['id']}/participants"), 503)
    finally:
        pg.psql("DROP TRIGGER test_audit_fails ON kip.audit; DROP FUNCTION kip.test_audit_fails()",
                db=kipd.db)
    assert coordinator.get(f"/v1/plans/{plan['id']}").status_code == 200


# ------------------------------------------------------------ the auditor

def test_audit_log_is_for_auditors_only(admin, anon, coordinator, auditor, make_user):
    for client in (coordinator, admin, make_user(coordinator.org, ["caseworker", "integration"])):
        problem(client.get("/v1/audit"), 403)
        problem(client.get("/v1/audit/verify"), 403)
    problem(anon.get("/v1/audit"), 401)
    problem(anon.get("/v1/audit/verify"), 401)
    assert auditor.get("/v1/audit").status_code == 200


def test_audit_log_filters_and_pages(pg, kipd, coordinator, auditor, make_user, make_plan):
    plan = make_plan(coordinator)
    colleague = make_user(coordinator.org, ["caseworker"])
    t0 = pg.psql("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", db=kipd.db)
    for _ in range(3):
        assert colleague.get(f"/v1/plans/{plan['id']}").status_code == 200
    r = auditor.get("/v1/audit", params={"plan_id": plan["id"]})
    items = r.json()["items"]
    assert [i["action"] for i in items] == ["plan.read"] * 3 + ["plan.create"]
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    first = items[0]
    assert first["user_id"] == colleague.user["id"] and first["organisation_id"] == coordinator.org["id"]
    assert first["plan_id"] == plan["id"] and first["resource"] == "plan"
    assert first["remote_addr"] == "127.0.0.1" and first["request_id"]
    # Each filter narrows.
    by_user = auditor.get("/v1/audit", params={"plan_id": plan["id"], "user_id": colleague.user["id"]}).json()
    assert len(by_user["items"]) == 3
    by_action = auditor.get("/v1/audit", params={"plan_id": plan["id"], "action": "plan.create"}).json()
    assert [i["user_id"] for i in by_action["items"]] == [coordinator.user["id"]]
    by_org = auditor.get("/v1/audit", params={"organisation_id": coordinator.org["id"], "limit": 500}).json()
    assert {i["organisation_id"] for i in by_org["items"]} == {coordinator.org["id"]}
    def plan_rows(page):   # (the auditor's own reads of this plan's log are in it too)
        return [i for i in page if i["action"] != "audit.list"]
    since = auditor.get("/v1/audit", params={"plan_id": plan["id"], "from": t0}).json()
    assert [i["action"] for i in plan_rows(since["items"])] == ["plan.read"] * 3
    until = auditor.get("/v1/audit", params={"plan_id": plan["id"], "to": t0}).json()
    assert [i["action"] for i in until["items"]] == ["plan.create"]
    # Pages: keyset on id, newest first.
    seen = kiptest.collect_all(auditor, "/v1/audit", {"plan_id": plan["id"]}, limit=1)
    assert [i["id"] for i in plan_rows(seen)] == [i["id"] for i in items]
    # Reading the log is audited, naming the plan whose log was read.
    reads = auditor.get("/v1/audit", params={"plan_id": plan["id"], "action": "audit.list"}).json()["items"]
    assert reads and all(i["user_id"] == auditor.user["id"] and i["resource"] == "audit" for i in reads)


@pytest.mark.parametrize("params,status,field", [
    ({"plan_id": "not-a-uuid"}, 422, "plan_id"),
    ({"user_id": "123"}, 422, "user_id"),
    ({"organisation_id": ""}, 422, "organisation_id"),
    ({"from": "2026-01-01"}, 422, "from"),
    ({"to": "yesterday"}, 422, "to"),
    ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, 422, "to"),
    ({"limit": "0"}, 422, "limit"),
    ({"cursor": "zz"}, 400, "cursor"),
    ({"bogus": "1"}, 400, "bogus"),
])
def test_audit_log_query_is_checked(auditor, params, status, field):
    problem(auditor.get("/v1/audit", params=params), status, field=field)


def test_verify_rejects_a_bad_grace(auditor):
    problem(auditor.get("/v1/audit/verify", params={"grace_seconds": "soon"}), 422, field="grace_seconds")


# ------------------------------------------------------------------ sealing

def test_sealer_seals_new_rows_within_seconds(kipd, coordinator, auditor, make_plan):
    plan = make_plan(coordinator)
    coordinator.get(f"/v1/plans/{plan['id']}")

    def sealed():
        items = auditor.get("/v1/audit", params={"plan_id": plan["id"]}, validate=False).json()["items"]
        mine = [i for i in items if i["action"] in ("plan.read", "plan.create")]
        return len(mine) == 2 and all(i["hash"] and i["seq"] for i in mine)
    kiptest.wait_until(sealed, 5.0, interval=0.2, what="the sealer to seal the rows")
    heads = [rec for rec in kipd.log_records() if rec.get("msg") == "audit sealed"]
    assert heads and len(heads[-1]["head_hash"]) == 64 and int(heads[-1]["head_seq"]) > 0


def test_verify_is_ok_on_a_clean_chain(coordinator, auditor, make_plan):
    plan = make_plan(coordinator)
    for _ in range(5):
        coordinator.get(f"/v1/plans/{plan['id']}")
    result = _verify(auditor)
    assert result["ok"] is True, result
    assert result["mode"] == "incremental" and result["broken"] == 0 and result["first_broken"] is None
    assert result["checked"] >= 6 and result["unsealed_overdue"] == 0
    # The next verification starts from the checkpoint this one recorded:
    # it re-checks that link and walks only what was sealed since.
    again = _verify(auditor)
    assert again["ok"] is True, again
    # (The daily pass's own verification may have moved it on meanwhile.)
    assert again["from"]["seq"] >= result["head"]["seq"]
    assert again["checked"] == again["head"]["seq"] - again["from"]["seq"] + 1


def _fresh(kipd_factory, seal_ms="3600000", extra=()):
    """A kipd on its own database (tampering must not break the module's
    chain), whose sealer stays out of the way (verify seals on demand) and
    whose daily pass queues no verification of its own."""
    k = kipd_factory(extra_args=["--audit-seal-interval-ms", seal_ms, "--daily-pass-interval-s", "0", *extra])
    admin = Api(k.url, k.admin_token(), name="admin")
    org = kiptest.create_org(admin)
    nurse = kiptest.create_user(admin, org, ["coordinator"])
    auditor = kiptest.create_user(admin, kiptest.create_org(admin), ["auditor"])
    return k, nurse, auditor


def _seal(pg, db):
    """Seal what is committed, as the sealer would, without recording a
    checkpoint (a verification would)."""
    pg.psql("SELECT kip.audit_seal()", db=db)


def _full_walk(client, timeout=60):
    """POST /v1/audit/verify-jobs and wait for the job's result."""
    r = client.post("/v1/audit/verify-jobs")
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    assert location == f"/v1/audit/verify-jobs/{r.json()['id']}" and r.json()["mode"] == "full"
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(location)
        assert job.status_code == 200, job.text
        job = job.json()
        if job["status"] == "done":
            assert job["result"]["mode"] == "full" and job["result"]["from"] is None, job
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def _reads(nurse, plan, n):
    for _ in range(n):
        assert nurse.get(f"/v1/plans/{plan['id']}").status_code == 200


def _read_ids(pg, db, plan):
    return [int(r[0]) for r in _rows(pg, db, f"plan_id = '{plan['id']}' AND action = 'plan.read'")]


def test_verify_reports_a_changed_row_then_a_deleted_one(pg, kipd_factory):
    k, nurse, auditor = _fresh(kipd_factory)
    plan = kiptest.create_plan(nurse)
    _reads(nurse, plan, 2)
    checkpoint = _verify(auditor)
    assert checkpoint["ok"] is True, checkpoint
    _reads(nurse, plan, 3)
    _seal(pg, k.db)
    changed, deleted = _read_ids(pg, k.db, plan)[3:5]
    # Someone with the owner's rights rewrites who read the plan, after the
    # checkpoint: the incremental verification finds it...
    pg.psql(f"UPDATE kip.audit SET user_id = '{uuid.uuid4()}' WHERE id = {changed}", db=k.db)
    result = _verify(auditor)
    assert result["ok"] is False and result["broken"] == 1, result
    assert result["from"]["seq"] == checkpoint["head"]["seq"]
    assert result["first_broken"]["id"] == changed and result["first_broken"]["problem"] == "row_changed"
    assert result["first_broken"]["at"] is not None
    # ...and so does the full walk; a broken chain records no checkpoint.
    job = _full_walk(auditor)
    assert job["result"]["ok"] is False and job["result"]["first_broken"]["id"] == changed, job
    assert _verify(auditor)["from"]["seq"] == checkpoint["head"]["seq"]
    # When the row is put back as it was, the chain verifies again.
    pg.psql(f"UPDATE kip.audit SET user_id = '{nurse.user['id']}' WHERE id = {changed}", db=k.db)
    assert _verify(auditor)["ok"] is True
    pg.psql(f"DELETE FROM kip.audit WHERE id = {deleted}", db=k.db)
    # The row lies before the new checkpoint now: only the full walk sees it
    # (docs/audit.md, "Verification").
    assert _verify(auditor)["ok"] is True
    job = _full_walk(auditor)
    result = job["result"]
    assert result["ok"] is False and result["broken"] == 1, result
    assert result["first_broken"]["id"] == deleted and result["first_broken"]["problem"] == "row_deleted"
    assert result["first_broken"]["at"] is None
    # The incremental answer names the failed full walk.
    last_full = _verify(auditor)["last_full"]
    assert last_full == {"id": job["id"], "finished_at": job["finished_at"], "ok": False, "broken": 1}


def test_verify_reports_a_changed_or_deleted_seal(pg, kipd_factory):
    k, nurse, auditor = _fresh(kipd_factory)
    plan = kiptest.create_plan(nurse)
    checkpoint = _verify(auditor)["head"]["seq"]
    _reads(nurse, plan, 3)
    _seal(pg, k.db)
    seq = int(pg.psql("SELECT max(seq) - 1 FROM kip.audit_seal", db=k.db))
    assert seq > checkpoint + 1
    pg.psql(f"UPDATE kip.audit_seal SET hash = sha256(hash) WHERE seq = {seq}", db=k.db)
    result = _verify(auditor)
    assert result["first_broken"]["seq"] == seq and result["first_broken"]["problem"] == "seal_changed", result
    assert _full_walk(auditor)["result"]["first_broken"] == result["first_broken"]
    pg.psql(f"DELETE FROM kip.audit_seal WHERE seq = {seq - 1}", db=k.db)
    result = _verify(auditor)
    assert result["first_broken"]["seq"] == seq and result["first_broken"]["problem"] == "seal_missing", result
    assert _full_walk(auditor)["result"]["first_broken"] == result["first_broken"]


def test_verify_rechecks_the_checkpoint_link(pg, kipd_factory):
    """A change to the checkpoint's own link (its seal row or its audit row)
    is found by the incremental verification, which starts from it."""
    k, nurse, auditor = _fresh(kipd_factory)
    kiptest.create_plan(nurse)
    head = _verify(auditor)["head"]
    pg.psql(f"UPDATE kip.audit SET request_id = 'forged' WHERE id = {head['id']}", db=k.db)
    result = _verify(auditor)
    assert result["ok"] is False and result["from"]["seq"] == head["seq"], result
    assert result["from"]["verified_by"] == auditor.user["id"] and result["from"]["mode"] == "incremental"
    assert result["first_broken"]["seq"] == head["seq"] and result["first_broken"]["problem"] == "row_changed"
    pg.psql(f"DELETE FROM kip.audit_seal WHERE seq = {head['seq']}", db=k.db)
    result = _verify(auditor)
    assert result["first_broken"]["seq"] == head["seq"] and result["first_broken"]["problem"] == "seal_missing"
    assert _full_walk(auditor)["result"]["ok"] is False


def test_rows_that_commit_late_are_sealed(pg, kipd_factory):
    """A row whose transaction commits after later rows were sealed is
    sealed at the next pass, not skipped, and the checkpoint between does
    not hide it from the next incremental verification."""
    k, nurse, auditor = _fresh(kipd_factory)
    plan = kiptest.create_plan(nurse)
    # Take an id, then let the sealer run past it before the row is visible.
    late = int(pg.psql("SELECT nextval('kip.audit_id_seq')", db=k.db))
    nurse.get(f"/v1/plans/{plan['id']}")
    assert _verify(auditor)["ok"] is True
    pg.psql(f"INSERT INTO kip.audit (id, action, resource) VALUES ({late}, 'test.late', 'test')", db=k.db)
    result = _verify(auditor, grace_seconds=0)
    assert result["ok"] is True and result["unsealed"] <= 1, result   # (only verify's own row)
    items = auditor.get("/v1/audit", params={"action": "test.late"}).json()["items"]
    assert items[0]["id"] == late and items[0]["hash"]
    assert _full_walk(auditor)["result"]["ok"] is True


def test_unsealed_rows_beyond_the_grace_are_reported(pg, kipd_factory):
    k, nurse, auditor = _fresh(kipd_factory)
    plan = kiptest.create_plan(nurse)
    # An id the sealer waits for, then gives up on (its gap forgotten), and a
    # row slipped in under it, dated an hour back.
    late = int(pg.psql("SELECT nextval('kip.audit_id_seq')", db=k.db))
    nurse.get(f"/v1/plans/{plan['id']}")
    assert _verify(auditor)["ok"] is True
    pg.psql(f"DELETE FROM kip.audit_seal_gap WHERE audit_id = {late}", db=k.db)
    pg.psql(f"INSERT INTO kip.audit (id, at, action, resource) VALUES ({late}, now() - interval '1 hour', "
            "'test.forged', 'test')", db=k.db)
    result = _verify(auditor)
    assert result["ok"] is False and result["broken"] == 0, result
    assert result["unsealed_overdue"] == 1 and result["oldest_unsealed_overdue_id"] == late
    # One under an id below every checkpoint is for the full walk to find.
    pg.psql(f"DELETE FROM kip.audit WHERE id = {late}", db=k.db)
    assert _verify(auditor)["ok"] is True
    pg.psql("INSERT INTO kip.audit (id, at, action, resource) VALUES (0, now() - interval '1 hour', "
            "'test.forged', 'test')", db=k.db)
    assert _verify(auditor)["ok"] is True
    result = _full_walk(auditor)["result"]
    assert result["ok"] is False and result["broken"] == 0, result
    assert result["unsealed_overdue"] == 1 and result["oldest_unsealed_overdue_id"] == 0


def test_verify_jobs_are_for_auditors_and_audited(pg, kipd, admin, coordinator, auditor):
    for client in (admin, coordinator):
        problem(client.post("/v1/audit/verify-jobs"), 403)
    problem(admin.anonymous().post("/v1/audit/verify-jobs"), 401)
    problem(auditor.post("/v1/audit/verify-jobs", params={"grace_seconds": "soon"}), 422, field="grace_seconds")
    r = auditor.post("/v1/audit/verify-jobs")
    assert r.status_code == 202, r.text
    assert [row[1:] for row in _request_rows(pg, kipd.db, r)] == [("audit.verify_job", "", "audit")]
    r2 = auditor.get(r.headers["Location"])
    assert r2.status_code == 200 and r2.json()["id"] == r.json()["id"]
    assert [row[1:] for row in _request_rows(pg, kipd.db, r2)] == [("audit.verify_job_read", "", "audit")]
    for client in (admin, coordinator):
        problem(client.get(r.headers["Location"]), 403)
    problem(auditor.get(f"/v1/audit/verify-jobs/{uuid.uuid4()}"), 404)
    problem(auditor.get("/v1/audit/verify-jobs/nope"), 404)


def test_one_full_walk_at_a_time(pg, kipd_factory):
    """While a full walk is queued, asking for one answers that job; a job
    another kipd is stepping (its row locked) is left to it."""
    k, nurse, auditor = _fresh(kipd_factory)
    k.stop()
    job_id = pg.psql("INSERT INTO kip.audit_verify_jobs (mode) VALUES ('full') RETURNING id", db=k.db).split()[0]
    holder = subprocess.Popen(
        [str(kiptest.PG_BINDIR / "psql"), "-h", str(pg.sockdir), "-U", "postgres", "-d", k.db, "-X", "-A", "-t",
         "-q", "-v", "ON_ERROR_STOP=1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        holder.stdin.write(f"BEGIN;\nSELECT 'locked' FROM kip.audit_verify_jobs WHERE id = '{job_id}' "
                           "FOR UPDATE;\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "locked"
        k.start()
        r = auditor.post("/v1/audit/verify-jobs")
        assert r.status_code == 202 and r.json()["id"] == job_id, r.text
        assert r.headers["Location"] == f"/v1/audit/verify-jobs/{job_id}"
        time.sleep(1.5)   # a verifier tick or more: the locked job is skipped
        assert auditor.get(r.headers["Location"]).json()["status"] == "queued"
    finally:
        holder.stdin.write("ROLLBACK;\n")
        holder.stdin.close()
        holder.wait(timeout=30)
    kiptest.wait_until(lambda: auditor.get(f"/v1/audit/verify-jobs/{job_id}").json()["status"] == "done", 30,
                       interval=0.2, what="the job done once unlocked")
    # Done, so the next request queues a new walk.
    assert auditor.post("/v1/audit/verify-jobs").json()["id"] != job_id


def test_the_daily_pass_advances_the_verification(pg, kipd_factory):
    """The daily pass queues an incremental verification, which kipd walks
    in the background: it records a checkpoint, and a row changed after the
    last one is logged at error level within the day."""
    k, nurse, auditor = _fresh(kipd_factory)
    admin = Api(k.url, k.admin_token(), name="admin")
    plan = kiptest.create_plan(nurse)
    _reads(nurse, plan, 2)
    _seal(pg, k.db)

    def daily_job():
        assert admin.post("/v1/admin/daily-pass").status_code == 200
        deadline = time.monotonic() + 30
        while pg.psql("SELECT count(*) FROM kip.audit_verify_jobs WHERE status <> 'done'", db=k.db) != "0":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        return pg.psql("SELECT result::text FROM kip.audit_verify_jobs WHERE mode = 'incremental' "
                       "ORDER BY finished_at DESC LIMIT 1", db=k.db)

    assert '"ok": true' in daily_job()
    checkpoint = _verify(auditor)["from"]
    assert checkpoint["mode"] == "incremental" and checkpoint["verified_by"] is None
    _reads(nurse, plan, 2)
    _seal(pg, k.db)
    changed = _read_ids(pg, k.db, plan)[-1]
    pg.psql(f"UPDATE kip.audit SET remote_addr = '10.6.6.6' WHERE id = {changed}", db=k.db)
    assert '"ok": false' in daily_job()
    # kipd logs when the step's answer reaches it, just after the job's row commits.
    kiptest.wait_until(lambda: any(rec.get("msg") == "audit chain does NOT verify" for rec in k.log_records()),
                       10, interval=0.2, what="the error logged")
    errors = [rec for rec in k.log_records() if rec.get("msg") == "audit chain does NOT verify"]
    assert len(errors) == 1 and errors[0]["level"] == "error", k.log_records()[-5:]
    assert errors[0]["first_broken"]["id"] == changed and errors[0]["mode"] == "incremental"
    # Its finished walks are forgotten after 30 days; the checkpoints stay.
    checkpoints = pg.psql("SELECT count(*) FROM kip.audit_checkpoint", db=k.db)
    pg.psql("UPDATE kip.audit_verify_jobs SET finished_at = now() - interval '31 days'", db=k.db)
    daily_job()
    assert pg.psql("SELECT count(*) FROM kip.audit_verify_jobs", db=k.db) == "1"
    assert pg.psql("SELECT count(*) FROM kip.audit_checkpoint", db=k.db) == checkpoints


# A log this long takes the old single statement past the statement timeout
# used here, on any machine we run on (about 7 µs per link: ~1 s).
BIG_LOG_ROWS = 150_000
SMALL_TIMEOUT_MS = 400


def _grow_log(pg, db, n):
    """n sealed audit rows, made by SQL as the owner (as a long-used kipd
    would have them), sealed under the sealer's lock."""
    pg.psql(f"INSERT INTO kip.audit (at, action, resource, request_id) SELECT now() - interval '1 day', "
            f"'test.bulk', 'test', 'bulk-' || g FROM generate_series(1, {n}) g;" + """DO $$
DECLARE h bytea; n bigint; a kip.audit;
        seqs bigint[] := '{}'; ids bigint[] := '{}'; prevs bytea[] := '{}'; hashes bytea[] := '{}';
BEGIN
  PERFORM pg_advisory_xact_lock(7305872417);
  SELECT seq, hash INTO n, h FROM kip.audit_seal ORDER BY seq DESC LIMIT 1;
  n := coalesce(n, 0);
  h := coalesce(h, decode(repeat('00', 32), 'hex'));
  FOR a IN SELECT * FROM kip.audit au
            WHERE au.id > (SELECT coalesce(max(audit_id), 0) FROM kip.audit_seal) ORDER BY au.id LOOP
    n := n + 1;
    seqs := seqs || n; ids := ids || a.id; prevs := prevs || h;
    h := kip.audit_link(h, a);
    hashes := hashes || h;
  END LOOP;
  INSERT INTO kip.audit_seal (seq, audit_id, prev_hash, hash) SELECT * FROM unnest(seqs, ids, prevs, hashes);
END $$""", db=db)


def test_a_large_log_verifies_in_steps_under_a_short_statement_timeout(pg, kipd_factory):
    k, nurse, auditor = _fresh(kipd_factory, seal_ms="1000",
                               extra=["--statement-timeout-ms", str(SMALL_TIMEOUT_MS)])
    kiptest.create_plan(nurse)
    _grow_log(pg, k.db, BIG_LOG_ROWS)
    # The old way, one statement over the whole chain, is cancelled...
    with pytest.raises(RuntimeError) as e:
        pg.psql(f"SET statement_timeout = {SMALL_TIMEOUT_MS}; SELECT kip.audit_verify()", db=k.db,
                user=RUNTIME_ROLE)
    assert "statement timeout" in str(e.value)
    # ...while kipd, under the same timeout, walks it in steps.
    started = time.monotonic()
    result = _verify(auditor)
    took = time.monotonic() - started
    assert result["ok"] is True and result["checked"] > BIG_LOG_ROWS and result["from"] is None, result
    print(f"incremental verify of {result['checked']} links from none: {took:.2f} s")
    again = _verify(auditor)
    assert again["ok"] is True and again["checked"] < 100, again
    started = time.monotonic()
    job = _full_walk(auditor)
    print(f"full walk of {job['result']['checked']} links: {time.monotonic() - started:.2f} s, "
          f"{job['steps']} steps")
    assert job["result"]["ok"] is True and job["result"]["checked"] >= result["checked"], job
    assert job["steps"] > 3
    # A change anywhere in the long log is found by the full walk.
    middle = int(pg.psql("SELECT audit_id FROM kip.audit_seal WHERE seq = 70000", db=k.db))
    pg.psql(f"UPDATE kip.audit SET request_id = 'forged' WHERE id = {middle}", db=k.db)
    result = _full_walk(auditor)["result"]
    assert result["ok"] is False and result["first_broken"]["seq"] == 70000, result


def test_a_full_walk_goes_on_after_a_restart_and_with_two_kipd(pg, kipd_factory):
    k, nurse, auditor = _fresh(kipd_factory, extra=["--statement-timeout-ms", str(SMALL_TIMEOUT_MS)])
    _grow_log(pg, k.db, BIG_LOG_ROWS // 2)
    heads = int(pg.psql("SELECT max(seq) FROM kip.audit_seal", db=k.db))
    # kipd stops in the middle of a walk: here three steps taken by hand,
    # exactly as kipd's verifier takes them, as the runtime role.
    k.stop()
    job_id = pg.psql("INSERT INTO kip.audit_verify_jobs (mode, requested_by) "
                     f"VALUES ('full', '{auditor.user['id']}') RETURNING id", db=k.db).split()[0]
    for _ in range(3):
        pg.psql(f"SET statement_timeout = {SMALL_TIMEOUT_MS}; SELECT kip.audit_verify_job_step(1000)",
                db=k.db, user=RUNTIME_ROLE)
    status, steps, checked = pg.psql(
        f"SELECT status, steps, state->>'checked' FROM kip.audit_verify_jobs WHERE id = '{job_id}'",
        db=k.db).split("|")
    assert status == "running" and steps == "3" and 0 < int(checked) < heads
    # Two kipd on the database: the job is finished once, from where it was.
    k.start()
    kipd_factory(extra_args=["--statement-timeout-ms", str(SMALL_TIMEOUT_MS), "--daily-pass-interval-s", "0",
                             "--audit-seal-interval-ms", "3600000"], db=k.db, name="second")
    deadline = time.monotonic() + 60
    while (job := auditor.get(f"/v1/audit/verify-jobs/{job_id}").json())["status"] != "done":
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["steps"] > 3 and job["result"]["ok"] is True, job
    assert job["result"]["checked"] == heads == job["result"]["head"]["seq"], job
    assert pg.psql(f"SELECT count(*) FROM kip.audit_checkpoint WHERE job_id = '{job_id}'", db=k.db) == "1"


# ----------------------------------------------------- the citizen's access

def test_access_log_shows_who_saw_the_plan(coordinator, make_user, make_plan):
    plan = make_plan(coordinator)
    colleague = make_user(coordinator.org, ["caseworker"], display_name="Kirsten Sagsbehandler")
    assert colleague.get(f"/v1/plans/{plan['id']}").status_code == 200
    assert colleague.get("/v1/plans").status_code == 200
    r = coordinator.get(f"/v1/plans/{plan['id']}/access-log")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["action"] for i in items[:3]] == ["plan.list", "plan.read", "plan.create"]
    assert items[0]["user"] == {"id": colleague.user["id"], "display_name": "Kirsten Sagsbehandler"}
    assert items[0]["organisation"] == {"id": coordinator.org["id"], "name": coordinator.org["name"]}
    assert items[2]["user"]["id"] == coordinator.user["id"]
    # The look itself is logged, and pages work.
    items = coordinator.get(f"/v1/plans/{plan['id']}/access-log").json()["items"]
    assert items[0]["action"] == "plan.access_log" and items[0]["user"]["id"] == coordinator.user["id"]
    paged = [i["id"] for i in kiptest.collect_all(coordinator, f"/v1/plans/{plan['id']}/access-log", limit=2)]
    assert paged == sorted(paged, reverse=True) and set(paged) >= {i["id"] for i in items}


def test_access_log_is_for_the_owning_coordinators(admin, coordinator, auditor, make_org, make_user,
                                                   make_plan):
    plan = make_plan(coordinator)
    path = f"/v1/plans/{plan['id']}/access-log"
    # Sees the plan, but is not a coordinator of the owning organisation: 403.
    problem(make_user(coordinator.org, ["caseworker"]).get(path), 403)
    # Cannot see the plan at all: 404, as for a plan that does not exist.
    problem(make_user(make_org(), ["coordinator"]).get(path), 404)
    problem(auditor.get(path), 404)
    problem(admin.get(path), 404)
    problem(coordinator.get(f"/v1/plans/{uuid.uuid4()}/access-log"), 404)
    problem(coordinator.get(path, params={"cursor": "nope"}), 400, field="cursor")


def test_a_coordinator_of_a_consented_organisation_is_refused(coordinator, make_org, make_user, make_plan):
    plan = make_plan(coordinator)
    other = make_org()
    r = coordinator.post(f"/v1/plans/{plan['id']}/consent",
                         json={"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT,
                               "contact_organisation_ids": [other["id"]]})
    assert r.status_code == 201, r.text
    guest = make_user(other, ["coordinator"])
    assert guest.get(f"/v1/plans/{plan['id']}").status_code == 200
    problem(guest.get(f"/v1/plans/{plan['id']}/access-log"), 403)
    # The owner's log shows the guest's read under their own organisation.
    items = coordinator.get(f"/v1/plans/{plan['id']}/access-log").json()["items"]
    assert any(i["user"]["id"] == guest.user["id"] and i["organisation"]["id"] == other["id"]
               and i["action"] == "plan.read" for i in items)


def test_migrate_only_with_two_roles_and_the_db_owner_option_checked(pg, new_db, workroot):
    db = new_db()
    token = workroot / kiptest.unique("two-roles-token-")
    base = [str(kiptest.KIPD_BIN), "--migrate-only", "--schema-dir", str(kiptest.SCHEMA_DIR),
            "--admin-token-file", str(token)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIPD_") or k == "KIPD_PG_BINDIR"}
    r = subprocess.run(base + ["--db", pg.runtime_url(db), "--db-owner", pg.url(db)], capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 0, r.stderr
    assert "not append-only" not in r.stderr
    assert pg.psql("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n "
                   "ON n.oid = c.relnamespace WHERE n.nspname = 'kip'", db=db) == "postgres"
    assert pg.psql("SELECT kip.audit_append_only()", db=db, user=RUNTIME_ROLE) == "t"
    # --db-owner alone is refused: --db names the runtime role.
    r = subprocess.run(base + ["--db-owner", pg.url(db)], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL, env=env)
    assert r.returncode == 2 and "--db-owner needs --db" in r.stderr, r.stderr


def test_remote_addr_behind_a_trusted_proxy(pg, kipd_factory):
    """The audit record names the client behind a trusted reverse proxy (the
    last X-Forwarded-For hop, the one the proxy appended); from anyone else
    X-Forwarded-For is ignored, and the access log keeps the proxy too."""
    k = kipd_factory(extra_args=["--trusted-proxies", "10.9.8.7, 127.0.0.1"])
    admin = Api(k.url, k.admin_token(), name="admin")
    org = kiptest.create_org(admin, "region_hospital")
    coord = kiptest.create_user(admin, org, ["coordinator"])
    plan = kiptest.create_plan(coord)
    cases = [("203.0.113.9", "203.0.113.9"),
             ("198.51.100.1, 203.0.113.10", "203.0.113.10"),   # the client's own claim is not believed
             ("2001:db8::1", "2001:db8::1"),
             ("not-an-address", "127.0.0.1")]
    for header, want in cases:
        r = coord.get(f"/v1/plans/{plan['id']}", headers={"X-Forwarded-For": header})
        assert r.status_code == 200, r.text
        got = pg.psql(f"SELECT remote_addr FROM kip.audit WHERE request_id = "
                      f"'{r.headers['X-Request-Id']}'", db=k.db)
        assert got == want, (header, got)
    line = [x for x in k.log_records() if x.get("msg") == "request" and x.get("remote_addr") == "203.0.113.9"]
    assert line and line[0]["proxy_addr"] == "127.0.0.1", line

    # Without --trusted-proxies the header is ignored.
    k2 = kipd_factory()
    admin2 = Api(k2.url, k2.admin_token(), name="admin")
    coord2 = kiptest.create_user(admin2, kiptest.create_org(admin2, "region_hospital"), ["coordinator"])
    plan2 = kiptest.create_plan(coord2)
    r = coord2.get(f"/v1/plans/{plan2['id']}", headers={"X-Forwarded-For": "203.0.113.9"})
    got = pg.psql(f"SELECT remote_addr FROM kip.audit WHERE request_id = '{r.headers['X-Request-Id']}'",
                  db=k2.db)
    assert got == "127.0.0.1", got


def test_trusted_proxies_must_be_addresses(kipd_factory):
    k = kipd_factory(extra_args=["--trusted-proxies", "proxy.example"], wait=False)
    assert k.wait_exit(20) not in (None, 0)
    assert any("trusted-proxies" in line for line in k.stderr_lines())
