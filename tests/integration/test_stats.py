"""Statistics, GET /v1/stats (issue 15): every figure against a hand-computed
value on a dataset built here through the API, small-cell and complementary
suppression, the CSV export, the query checks and who may ask.

The dataset (dates relative to today in Copenhagen, so it holds at any hour):

Hospital H (region_hospital), 12 plans, every consent to KIP given 60 days ago:
  p1..p6  a first held meeting 50 days ago (p1..p3) or 40 days ago (p4, p5),
          30 days ago (p6): days from consent 10, 10, 10, 20, 20, 30
          -> first meetings 6, median 15, p90 25 (percentile_cont).
  p1..p5  a second held meeting 20 days ago:
          intervals 30, 30, 30, 20, 20 -> 5, median 30.
          Held 11. The citizen attended every held meeting except the
          first ones of p1..p3: attended 8, absent 3. The absent 3 are not
          published, but held - attended would give them: attended is
          suppressed (complementary, through a hidden cell).
  p1..p5  a GP taking part (5 of 12); p1, p2 a jobcentre (2: suppressed);
          no addiction treatment (0).
  p6      closed as transferred (1) -> suppressed, and so is completed (5)
          in its row, so the 1 cannot be worked out from closed (6).
  p7      a meeting 10 days ago, cancelled; another 5 days ago, planned,
          with no outcome (overdue); both 1: suppressed.
  p8..p12 closed as completed (5).
  Actions of p1 (the tovholder responsible): 6 housing actions due in 5
  days, done (on time); 5 substance actions due 3 days ago, still open
  (late); one due in 5 days, open (not yet settled: not counted); one due 3
  days ago, cancelled (not counted). -> due 11, on time 6, share 0.545.
Psychiatry P (region_psychiatry), 10 plans, consent 30 days ago:
  q1..q5 closed completed, q6..q10 closed declined -> completion rate 0.5.
"""

import csv
import io
import subprocess
import uuid
from pathlib import Path

import pytest

import kiptest
from kiptest import Api, problem

SUPPRESSED = {"value": None, "suppressed": True}
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _ok(r, status=(200, 201)):
    assert r.status_code in ((status,) if isinstance(status, int) else status), r.text
    return r.json() if r.content else None


def _plan(coord, given_days_ago):
    plan = kiptest.create_plan(coord)
    url = f"/v1/plans/{plan['id']}"
    _ok(coord.post(f"{url}/consent", json={"kip_consent": True, "form": "written",
                                          "given_at": kiptest.iso(kiptest.cph(-given_days_ago, 10))}))
    doc = _ok(coord.get(url))
    doc["citizen_id"] = next(p["id"] for p in doc["participants"] if p["kind"] == "citizen")
    return doc


def _held(coord, plan, days_ago, citizen_attended=True):
    body = {"starts_at": kiptest.iso(kiptest.cph(-days_ago, 10)), "purpose": "KIP-møde",
            "location": {"kind": "hospital", "room": "Mødelokale 2"}}
    m = _ok(coord.post(f"/v1/plans/{plan['id']}/meetings", json=body))
    _ok(coord.post(f"/v1/meetings/{m['id']}/outcome", json={
        "attendance": [{"participant_id": plan["coordinator"], "attended": True},
                       {"participant_id": plan["citizen_id"], "attended": citizen_attended}],
        "summary": "Aftalt opfølgning.", "citizen_accepted": True,
        "no_further_meeting": {"reason": "Forløbet er stabilt."}}))
    return m


def _close(coord, plan, reason):
    body = {"reason": reason}
    if reason == "transferred":
        body["note"] = "Overgået til ICM-team"
    _ok(coord.post(f"/v1/plans/{plan['id']}/close", json=body, headers={"If-Match": "*"}))


def _action(coord, plan, area, due_days, status=None):
    a = _ok(coord.post(f"/v1/plans/{plan['id']}/actions", json={
        "title": f"Handling {uuid.uuid4().hex[:6]}", "area": area,
        "responsible_participant_id": plan["coordinator"],
        "due_date": (kiptest.cph_today() + due_days * kiptest.DAY).isoformat()}))
    if status:
        _ok(coord.patch(f"/v1/actions/{a['id']}", json={"status": status}, headers={"If-Match": "*"}))
    return a


@pytest.fixture(scope="module")
def world(kipd, admin):
    h = kiptest.create_org(admin, "region_hospital", "Hospital H")
    p = kiptest.create_org(admin, "region_psychiatry", "Psykiatri P")
    office = kiptest.create_org(admin, "other", "Analyseenheden")
    nurse = kiptest.create_user(admin, h, ["coordinator"], display_name="Sofie Sygeplejerske")
    nurse_p = kiptest.create_user(admin, p, ["coordinator"], display_name="Pia Psykiatri")
    caseworker = kiptest.create_user(admin, h, ["caseworker"], display_name="Kaj Kollega")
    analyst = kiptest.create_user(admin, office, ["analyst"], display_name="Anna Analytiker")
    auditor = kiptest.create_user(admin, office, ["auditor"], display_name="Revisor")

    plans = [_plan(nurse, 60) for _ in range(12)]
    first = [50, 50, 50, 40, 40, 30]
    for i, days in enumerate(first):
        _held(nurse, plans[i], days, citizen_attended=i >= 3)
    for i in range(5):
        _held(nurse, plans[i], 20)
    for i in range(5):
        _ok(nurse.post(f"/v1/plans/{plans[i]['id']}/participants", json={
            "kind": "professional", "role": "general_practitioner", "name": "Læge Hansen"}))
    for i in range(2):
        _ok(nurse.post(f"/v1/plans/{plans[i]['id']}/participants", json={
            "kind": "professional", "role": "jobcenter_caseworker", "name": "Jobkonsulent Jensen"}))
    p7 = plans[6]
    m = _ok(nurse.post(f"/v1/plans/{p7['id']}/meetings", json={
        "starts_at": kiptest.iso(kiptest.cph(-10, 10)), "purpose": "Aflyst møde",
        "location": {"kind": "hospital"}}))
    _ok(nurse.post(f"/v1/meetings/{m['id']}/cancel", json={"reason": "Borgeren er indlagt"},
                   headers={"If-Match": "*"}))
    _ok(nurse.post(f"/v1/plans/{p7['id']}/meetings", json={
        "starts_at": kiptest.iso(kiptest.cph(-5, 10)), "purpose": "Møde uden referat",
        "location": {"kind": "hospital"}}))
    for _ in range(6):
        _action(nurse, plans[0], "housing", 5, "done")
    for _ in range(5):
        _action(nurse, plans[0], "substances", -3)
    _action(nurse, plans[0], "finances", 5)
    _action(nurse, plans[0], "crime", -3, "cancelled")
    _close(nurse, plans[5], "transferred")
    for i in range(7, 12):
        _close(nurse, plans[i], "completed")

    for i in range(10):
        q = _plan(nurse_p, 30)
        _close(nurse_p, q, "completed" if i < 5 else "declined")

    # The figures are read from the fact tables the daily pass refreshes.
    _ok(admin.post("/v1/admin/daily-pass"))
    return dict(h=h, p=p, nurse=nurse, nurse_p=nurse_p, caseworker=caseworker, analyst=analyst,
                auditor=auditor, admin=admin, plans=plans, anon=Api(kipd.url, None, name="anon"))


def _period():
    return {"from": (kiptest.cph_today() - 120 * kiptest.DAY).isoformat(),
            "to": (kiptest.cph_today() + 30 * kiptest.DAY).isoformat()}


def _stats(client, **params):
    r = client.get("/v1/stats", params={**_period(), **params})
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------ the figures

def test_every_figure_of_the_hospital(world):
    s = _stats(world["analyst"], organisation=world["h"]["id"], group_by="organisation")
    assert s["organisation"] == {"id": world["h"]["id"], "name": "Hospital H", "sector": "region_hospital"}
    assert s["groups"] == [{"key": world["h"]["id"], "label": "Hospital H"}]
    assert s["suppression"] == {"threshold": 5, "rule": "complementary"}
    act = s["activity"]
    (row,) = act["rows"]
    assert row["key"] == world["h"]["id"] and row["label"] == "Hospital H"
    want = {
        "meetings_held": 11,
        "meetings_cancelled": SUPPRESSED,            # 1
        "meetings_outcome_overdue": SUPPRESSED,      # 1
        "meetings_citizen_attended": SUPPRESSED,     # 8, but 11 - 8 = 3 absent would be known
        "citizens_active": 12,
        "plans_active": 12,
        "plans_started": 12,
        "first_meeting_plans": 6,
        "first_meeting_median_days": 15.0,
        "first_meeting_p90_days": 25.0,
        "meeting_intervals": 5,
        "meeting_interval_median_days": 30.0,
        "actions_due": 11,
        "actions_on_time": 6,
        "actions_on_time_share": 0.545,
        "plans_with_gp": 5,
        "plans_with_gp_share": 0.417,
        "plans_with_jobcenter": SUPPRESSED,          # 2
        "plans_with_jobcenter_share": SUPPRESSED,
        "plans_with_addiction": 0,
        "plans_with_addiction_share": 0.0,
    }
    assert {k: row[k] for k in want} == want
    # One group: the total equals it, and suppresses alike.
    assert {k: act["total"][k] for k in want} == want
    assert "key" not in act["total"]
    # No hidden cell is ever published.
    assert "actions_late" not in row and "plans_without_gp" not in row
    # A meeting's chair is always a professional: citizen-led meetings are
    # not data kipd holds, and no figure pretends otherwise.
    assert "meetings_citizen_led" not in row


def test_closed_by_reason_with_complementary_suppression(world):
    s = _stats(world["analyst"], organisation=world["h"]["id"], group_by="organisation")
    (row,) = s["closed"]["rows"]
    # transferred 1 is small; completed 5 is suppressed with it, or 6 - 5
    # would give the 1 back. Zeros stay (they describe nobody).
    assert row["transferred"] == SUPPRESSED and row["completed"] == SUPPRESSED
    assert row["closed"] == 6
    assert row["declined"] == 0 and row["consent_withdrawn"] == 0 and row["other"] == 0
    assert row["completion_rate"] == SUPPRESSED
    total = s["closed"]["total"]
    assert total["transferred"] == SUPPRESSED and total["completed"] == SUPPRESSED and total["closed"] == 6


def test_actions_by_area_and_by_sector(world):
    s = _stats(world["nurse"])            # a coordinator: their own organisation, by month
    by_area = {r["key"]: r for r in s["actions_by_area"]["rows"]}
    assert [r["key"] for r in s["actions_by_area"]["rows"]][:3] == ["substances", "somatic_health", "mental_health"]
    assert by_area["housing"]["actions_due"] == 6 and by_area["housing"]["actions_on_time"] == 6
    assert by_area["housing"]["actions_on_time_share"] == 1.0
    assert by_area["substances"]["actions_due"] == 5 and by_area["substances"]["actions_on_time"] == 0
    assert by_area["substances"]["actions_on_time_share"] == 0.0
    assert by_area["finances"]["actions_due"] == 0 and by_area["finances"]["actions_on_time_share"] is None
    assert by_area["crime"]["actions_due"] == 0, "a cancelled action is not counted"
    assert s["actions_by_area"]["total"]["actions_due"] == 11
    by_sector = {r["key"]: r for r in s["actions_by_sector"]["rows"]}
    assert by_sector["region_hospital"]["actions_due"] == 11
    assert by_sector["region_hospital"]["actions_on_time"] == 6
    assert by_sector["municipality_jobcenter"]["actions_due"] == 0
    assert s["actions_by_sector"]["total"]["actions_on_time_share"] == 0.545


def test_months_hold_each_meeting_in_its_copenhagen_month(world):
    s = _stats(world["nurse"], group_by="month")
    keys = [g["key"] for g in s["groups"]]
    start = kiptest.cph_today() - 120 * kiptest.DAY
    assert keys[0] == start.strftime("%Y-%m")
    assert keys[-1] == (kiptest.cph_today() + 30 * kiptest.DAY).strftime("%Y-%m")
    assert len(keys) == len(set(keys))
    held = {}
    for days in [50, 50, 50, 40, 40, 30, 20, 20, 20, 20, 20]:
        k = kiptest.cph(-days, 10).strftime("%Y-%m")
        held[k] = held.get(k, 0) + 1
    rows = {r["key"]: r for r in s["activity"]["rows"]}
    assert set(rows) == set(keys)
    for k, row in rows.items():
        n = held.get(k, 0)
        if n >= 5:
            assert row["meetings_held"] == n, k
        elif n > 0:
            assert row["meetings_held"] == SUPPRESSED, k
        else:
            assert row["meetings_held"] in (0, SUPPRESSED), k
    assert s["activity"]["total"]["meetings_held"] == 11
    # No column is left with exactly one suppressed cell among its months
    # and total: it could be worked out by subtraction.
    for col in ("meetings_held", "meetings_cancelled", "actions_due", "plans_active"):
        cells = [r[col] for r in s["activity"]["rows"]] + [s["activity"]["total"][col]]
        assert sum(c == SUPPRESSED for c in cells) != 1, col


def test_quarters_and_sectors_for_the_analyst_across_organisations(world):
    s = _stats(world["analyst"], group_by="sector")
    assert s["organisation"] is None
    rows = {r["key"]: r for r in s["closed"]["rows"]}
    assert set(rows) == {"region_hospital", "region_psychiatry"}
    # The hospital's transferred 1 takes its completed 5 along (row), that
    # takes the psychiatry's completed 5 (column), that its declined 5 (row).
    assert rows["region_hospital"]["transferred"] == SUPPRESSED
    assert rows["region_hospital"]["completed"] == SUPPRESSED
    assert rows["region_psychiatry"]["completed"] == SUPPRESSED
    assert rows["region_psychiatry"]["declined"] == SUPPRESSED
    assert rows["region_psychiatry"]["completion_rate"] == SUPPRESSED
    assert rows["region_psychiatry"]["closed"] == 10 and rows["region_hospital"]["closed"] == 6
    assert s["closed"]["total"]["closed"] == 16
    assert s["closed"]["total"]["completed"] == 10
    for table in ("closed", "activity"):
        cols = [k for k in s[table]["total"] if k not in ("key", "label")]
        for col in cols:
            cells = [r[col] for r in s[table]["rows"]] + [s[table]["total"][col]]
            assert sum(c == SUPPRESSED for c in cells) != 1, (table, col)
    # The psychiatry alone: nothing small, the rate is shown.
    p = _stats(world["analyst"], organisation=world["p"]["id"], group_by="organisation")
    (prow,) = p["closed"]["rows"]
    assert prow["completed"] == 5 and prow["declined"] == 5 and prow["completion_rate"] == 0.5
    act = {r["key"]: r for r in s["activity"]["rows"]}
    assert act["region_psychiatry"]["plans_active"] == 10 and act["region_hospital"]["plans_active"] == 12
    assert s["activity"]["total"]["citizens_active"] == 22
    q = _stats(world["analyst"], group_by="quarter")
    assert all(len(g["key"]) == 7 and g["key"][4:6] == "-Q" for g in q["groups"])
    assert q["activity"]["total"]["meetings_held"] == 11


def test_default_period_is_the_last_year(world):
    r = world["nurse"].get("/v1/stats")
    assert r.status_code == 200, r.text
    s = r.json()
    today = kiptest.cph_today()
    assert s["to"] == today.isoformat() and s["as_of"] == today.isoformat()
    assert s["from"] == (kiptest.add_months(today, -12) + kiptest.DAY).isoformat()
    assert len(s["groups"]) in (12, 13)


# ------------------------------------------------------------------- CSV

def test_csv_for_a_danish_spreadsheet(world):
    r = world["analyst"].get("/v1/stats", params={**_period(), "organisation": world["h"]["id"],
                                                  "group_by": "organisation"},
                             headers={"Accept": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv; charset=utf-8")
    assert "Accept" in r.headers.get("Vary", "")
    raw = r.content
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM"
    text = raw.decode("utf-8-sig")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    tables, current = {}, None
    for rec in records:
        if not rec:
            current = None
        elif rec[0] == "table":
            current = tables.setdefault(rec[1], [])
        else:
            current.append(rec)
    assert set(tables) == {"activity", "closed", "actions_by_area", "actions_by_sector"}
    head, row, total = tables["activity"]
    assert head[:3] == ["key", "label", "meetings_held"]
    got = dict(zip(head, row))
    assert got["label"] == "Hospital H"
    assert got["meetings_held"] == "11"
    assert got["meetings_cancelled"] == ".."
    assert got["actions_on_time_share"] == "0,545", "a decimal comma"
    assert got["first_meeting_median_days"] == "15,0"
    assert dict(zip(head, total))["key"] == "total"
    closed = dict(zip(tables["closed"][0], tables["closed"][1]))
    assert closed["completed"] == ".." and closed["closed"] == "6"


@pytest.mark.parametrize("accept, csv_wanted", [
    ("text/csv", True),
    ("application/xml, TEXT/CSV ; charset=utf-8", True),
    ("text/csv;q=0.5, application/json", True),
    ("text/csv;q=0", False),
    ("application/json, text/csv; q=0.0", False),
    ("*/*", False),
    ("text/*", False),
    ("text/csvx", False),
])
def test_accept_chooses_csv(world, accept, csv_wanted):
    r = world["nurse"].get("/v1/stats", headers={"Accept": accept})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv" if csv_wanted else "application/json"), accept


def test_csv_quotes_names_and_never_writes_a_formula(world, admin):
    """Organisation names are typed by people: one with the separator and
    quotes, and one that a spreadsheet would run as a formula. (Runs after
    the exact figures: it adds two organisations.)"""
    names = ['Kommune; "Syd"', "=HYPERLINK(\"http://x\")"]
    ids = []
    for name in names:
        org = kiptest.create_org(admin, "municipality_social", name)
        ids.append(org["id"])
        _plan(kiptest.create_user(admin, org, ["coordinator"]), 10)
    _ok(admin.post("/v1/admin/daily-pass"))
    r = world["analyst"].get("/v1/stats", params={"group_by": "organisation"}, headers={"Accept": "text/csv"})
    assert r.status_code == 200, r.text
    text = r.content.decode("utf-8-sig")
    assert '"Kommune; ""Syd"""' in text
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    labels = {row[0]: row[1] for row in rows if len(row) > 2}
    assert labels[ids[0]] == 'Kommune; "Syd"'
    assert labels[ids[1]] == "'" + names[1], "a formula is written as text"


# ----------------------------------------------------------------- access

def test_who_may_ask(world):
    h, p = world["h"], world["p"]
    problem(world["caseworker"].get("/v1/stats"), 403)
    problem(world["admin"].get("/v1/stats"), 403)
    problem(world["auditor"].get("/v1/stats"), 403)
    problem(world["anon"].get("/v1/stats"), 401)
    problem(world["nurse"].get("/v1/stats", params={"organisation": p["id"]}), 403, field="organisation")
    own = _stats(world["nurse"], organisation=h["id"], group_by="organisation")
    assert own["organisation"]["id"] == h["id"]
    mine = _stats(world["nurse"], group_by="organisation")
    assert [g["key"] for g in mine["groups"]] == [h["id"]], "a coordinator sees their own organisation only"
    across = _stats(world["analyst"], group_by="organisation")
    assert {h["id"], p["id"]} <= {g["key"] for g in across["groups"]}


def test_the_analyst_sees_no_plan(world):
    analyst = world["analyst"]
    for plan in world["plans"][:3]:
        problem(analyst.get(f"/v1/plans/{plan['id']}"), 404)
        problem(analyst.get(f"/v1/plans/{plan['id']}/meetings"), 404)
    r = analyst.get("/v1/plans")
    assert r.status_code == 200 and r.json()["items"] == []
    r = analyst.post("/v1/plans", json=kiptest.plan_body())
    assert r.status_code == 403, r.text


def test_each_read_is_audited_without_a_plan(world):
    rid = str(uuid.uuid4())
    r = world["analyst"].get("/v1/stats", params={"group_by": "sector"}, headers={"X-Request-Id": rid})
    assert r.status_code == 200
    rows = world["auditor"].get("/v1/audit", params={"action": "stats.read",
                                                     "user_id": world["analyst"].user["id"]}).json()["items"]
    assert rows, "no stats.read audit row"
    assert all(a["plan_id"] is None and a["action"] == "stats.read" for a in rows)


# ------------------------------------------------------------- the query

@pytest.mark.parametrize("params, field, code", [
    ({"from": "2026-03-02", "to": "2026-03-01"}, "from", "out_of_range"),
    ({"from": "2020-01-01", "to": "2025-01-02"}, "to", "out_of_range"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, "from", "invalid_date"),
    ({"from": "2026-03-01"}, "to", "required"),
    ({"to": "2026-03-01"}, "from", "required"),
    ({"group_by": "week"}, "group_by", None),
    ({"organisation": "not-a-uuid"}, "organisation", None),
    ({"organisation": str(uuid.uuid4())}, "organisation", "not_found"),
])
def test_bad_query_names_the_field(world, params, field, code):
    r = world["analyst"].get("/v1/stats", params=params)
    problem(r, 422, field=field, code=code, pointer=None)


def test_unknown_parameter_is_refused(world):
    problem(world["analyst"].get("/v1/stats", params={"month": "3"}), 400)


def test_five_years_is_the_longest_period(world):
    r = world["analyst"].get("/v1/stats", params={"from": "2021-01-01", "to": "2025-12-31"})
    assert r.status_code == 200, r.text


# -------------------------------------------------------------- freshness

def test_figures_follow_the_daily_pass(world, admin):
    """The figures come from fact tables the daily pass refreshes: a meeting
    held now shows after the next pass, not before. (Last: it changes P.)"""
    nurse_p, p = world["nurse_p"], world["p"]
    before = _stats(world["analyst"], organisation=p["id"], group_by="organisation")
    assert before["activity"]["total"]["meetings_held"] == 0
    plan = _plan(nurse_p, 20)
    for days in (15, 14, 13, 12, 11):
        _held(nurse_p, plan, days)
    same = _stats(world["analyst"], organisation=p["id"], group_by="organisation")
    assert same["activity"]["total"]["meetings_held"] == 0, "read from the facts, not the live tables"
    _ok(admin.post("/v1/admin/daily-pass"))
    after = _stats(world["analyst"], organisation=p["id"], group_by="organisation")
    assert after["refreshed_at"] > before["refreshed_at"]
    total = after["activity"]["total"]
    assert total["meetings_held"] == 5 and total["meeting_intervals"] == SUPPRESSED   # 4 intervals of 1 day
    assert total["first_meeting_plans"] == SUPPRESSED and total["first_meeting_median_days"] == SUPPRESSED
    assert total["plans_active"] == 11


# ------------------------------------------------- the summary (issue 15)

def _sql(pg, db, script, timeout=120):
    """Run a psql script (several statements, one session) as the owner on
    database `db`; return its output lines. Under libfaketime PostgreSQL's
    lock_timeout and deadlock check never fire (docs/testing.md), so a lock
    wait would outlive a killed psql and keep its locks, stalling whatever
    comes next: on a timeout the database's other backends are listed with
    their locks, then terminated, and the test fails with that list."""
    psql = [str(kiptest.PG_BINDIR / "psql"), "-h", str(pg.sockdir), "-U", "postgres", "-d", db,
            "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
    try:
        r = subprocess.run(psql, input=script, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        who = subprocess.run(psql, capture_output=True, text=True, timeout=30, input="""
            SELECT a.pid, a.state, a.wait_event_type, a.wait_event, pg_blocking_pids(a.pid),
                   (SELECT string_agg(l.mode || ' ' || coalesce(l.relation::regclass::text, l.locktype)
                                      || CASE WHEN l.granted THEN '' ELSE ' (waiting)' END, ', ')
                      FROM pg_locks l WHERE l.pid = a.pid), left(a.query, 120)
              FROM pg_stat_activity a WHERE a.datname = current_database() AND a.pid <> pg_backend_pid();
            SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
               AND a.application_name = 'psql';
            """)
        raise AssertionError(f"psql took over {timeout} s; the database's backends:\n{who.stdout}{who.stderr}")
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def scratch_db(pg, new_db, workroot):
    """A database of its own, migrated by `kipd --migrate-only`, with no kipd
    serving it: the rich fixture is written and rolled back there, away from
    the module's kipd and its background statements (sealer, verifier,
    daily pass)."""
    db = new_db()
    r = subprocess.run([str(kiptest.KIPD_BIN), "--migrate-only", "--db", pg.url(db),
                        "--schema-dir", str(kiptest.SCHEMA_DIR),
                        "--admin-token-file", str(workroot / kiptest.unique("stats-token-")),
                        "--key-file", str(workroot / kiptest.unique("stats-key-"))],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return db


def _compare(line):
    cases, differ, which, check = line.split(";")
    return int(cases), int(differ), which, int(check)


def test_the_summary_answers_exactly_as_the_facts(pg, scratch_db):
    """Every organisation's figures come from the summary (whole months) and
    the fact rows (partial and current months). On a rich fixture (7
    organisations, 700 plans, 2,500 meetings, 5,000 actions over 2.5 years,
    citizens with several plans, plans closed before they started, times
    around midnight and DST) every grouping over 13 periods must give the
    same body as the facts alone, and the summary must equal a recount.
    Then one summary cell is made wrong: both checks must see it."""
    fixture = (HERE / "stats_fixture.sql").read_text()
    compare = (HERE / "stats_compare.sql").read_text()
    out = _sql(pg, scratch_db, "BEGIN;\n" + fixture + compare + """
        UPDATE kip.stats_sum_meetings SET held = held + 1
         WHERE (org, sector, month) = (SELECT org, sector, month FROM kip.stats_sum_meetings
                                        WHERE month = date_trunc('month', kip.today() - 200)::date
                                        ORDER BY held DESC LIMIT 1);
        """ + compare + "ROLLBACK;\n")
    cases, differ, which, check = _compare(out[-2])
    assert cases == 52 and differ == 0 and check == 0, which
    cases, differ, which, check = _compare(out[-1])
    assert differ > 0 and check == 1, "a wrong summary cell went unnoticed"
    assert "month" in which and "organisation" in which


def test_migrations_020_and_025_fill_the_summary(pg, scratch_db):
    """An upgraded database gets its summary from the first fills of
    migrations 020 (the monthly sums) and 025 (the owners' all-time totals;
    no function exists while migrations run): run those parts of the files
    over the rich fixture and compare with the recount."""
    fill = ""
    for name in ("020_stats_summary.sql", "025_stats_owner_totals.sql"):
        text = (ROOT / "schema" / "migrations" / name).read_text()
        fill += text[text.index("-- The first fill"):]
    fixture = (HERE / "stats_fixture.sql").read_text()
    # DELETE, not TRUNCATE: no ACCESS EXCLUSIVE lock to wait on an autovacuum
    # (which a waiter cancels only from its deadlock check, a timer).
    out = _sql(pg, scratch_db, "BEGIN;\n" + fixture + """
        DELETE FROM kip.stats_sum_plans; DELETE FROM kip.stats_sum_meetings; DELETE FROM kip.stats_sum_days;
        DELETE FROM kip.stats_sum_days_sector; DELETE FROM kip.stats_sum_actions;
        DELETE FROM kip.stats_sum_action_parts; DELETE FROM kip.stats_owners; DELETE FROM kip.stats_persons;
        """ + fill + """
        SELECT (SELECT count(*) FROM kip.stats_sum_check()) || ';' || (SELECT count(*) FROM kip.stats_sum_plans)
               || ';' || (SELECT count(*) FROM kip.stats_sum_days_sector)
               || ';' || (SELECT count(*) FROM kip.stats_persons WHERE plans > 1);
        ROLLBACK;
        """)
    check, plans, days, shared = map(int, out[-1].split(";"))
    assert check == 0 and plans > 100 and days > 100 and shared > 10


def _int(cell):
    return None if cell == SUPPRESSED else cell


def test_the_daily_pass_keeps_the_summary_exact(world, admin, pg, kipd):
    """Writes reach the summary through the daily pass's refresh (its
    statement triggers), exactly: 5 meetings held in the psychiatry add 5 to
    every organisation's figures, in the psychiatry's sector and in the
    month they were held, and one plan. (Last: it changes P.)"""
    analyst, nurse_p = world["analyst"], world["nurse_p"]
    before = {g: _stats(analyst, group_by=g) for g in ("sector", "month")}
    plan = _plan(nurse_p, 20)
    days = (15, 14, 13, 12, 11)
    for d in days:
        _held(nurse_p, plan, d)
    same = _stats(analyst, group_by="sector")
    assert same["activity"] == before["sector"]["activity"], "read from the summary, not the live tables"
    _ok(admin.post("/v1/admin/daily-pass"))
    after = {g: _stats(analyst, group_by=g) for g in ("sector", "month")}

    b, a = before["sector"]["activity"], after["sector"]["activity"]
    assert a["total"]["meetings_held"] == b["total"]["meetings_held"] + 5
    assert a["total"]["plans_active"] == b["total"]["plans_active"] + 1
    assert a["total"]["plans_started"] == b["total"]["plans_started"] + 1
    assert a["total"]["citizens_active"] == b["total"]["citizens_active"] + 1
    rows_b = {r["key"]: r for r in b["rows"]}
    rows_a = {r["key"]: r for r in a["rows"]}
    held_b = _int(rows_b["region_psychiatry"]["meetings_held"])
    if held_b is not None:
        assert rows_a["region_psychiatry"]["meetings_held"] == held_b + 5
    # Another sector's counts stay (suppression may hide other cells now).
    for col, cell in rows_b["region_hospital"].items():
        if _int(cell) is not None and _int(rows_a["region_hospital"][col]) is not None:
            assert rows_a["region_hospital"][col] == cell, col

    months_b = {r["key"]: r for r in before["month"]["activity"]["rows"]}
    months_a = {r["key"]: r for r in after["month"]["activity"]["rows"]}
    held_in = {}
    for d in days:
        k = kiptest.cph(-d, 10).strftime("%Y-%m")
        held_in[k] = held_in.get(k, 0) + 1
    for k, n in held_in.items():
        if _int(months_b[k]["meetings_held"]) is not None and months_a[k]["meetings_held"] != SUPPRESSED:
            assert months_a[k]["meetings_held"] == months_b[k]["meetings_held"] + n, k
    assert after["month"]["activity"]["total"]["meetings_held"] == \
        before["month"]["activity"]["total"]["meetings_held"] + 5

    # The summary equals a recount, and answers as the facts, on this data too.
    compare = (HERE / "stats_compare.sql").read_text()
    cases, differ, which, check = _compare(_sql(pg, kipd.db, compare)[-1])
    assert differ == 0 and check == 0, which
