"""The schema layout (docs/architecture.md, "Schema layout"): migrations hold
tables and data, schema/functions/ holds every function, view and trigger,
each defined once, in the file of its family; the database holds exactly
what the function files say; and a database made by an earlier main
upgrades in place (tests/fixtures/make_upgrade_fixture.py made the
fixture)."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import kiptest
from kiptest import Api, Kipd, SCHEMA_DIR

MIGRATIONS = SCHEMA_DIR / "migrations"
FUNCTIONS = SCHEMA_DIR / "functions"
API_DIR = kiptest.ROOT / "daemon" / "api"
FIXTURES = kiptest.ROOT / "tests" / "fixtures"
FIXTURE = "upgrade-8f17d69"
CODE_SCHEMAS = ("kip", "kip_api")

# What the function files may define in the database, as text: one line per
# function (with its argument types), view and trigger of the code schemas.
OBJECTS_SQL = """
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
 WHERE p.pronamespace::regnamespace::text IN ('kip', 'kip_api')
UNION ALL
SELECT 'view ' || c.oid::regclass::text FROM pg_class c
 WHERE c.relkind IN ('v', 'm') AND c.relnamespace::regnamespace::text IN ('kip', 'kip_api')
UNION ALL
SELECT 'trigger ' || t.tgname || ' on ' || t.tgrelid::regclass::text FROM pg_trigger t
 WHERE NOT t.tgisinternal
ORDER BY 1
"""

# The definitions, to compare two databases: each function as PostgreSQL
# prints it, with its owner-independent privileges, and each trigger.
DEFINITIONS_SQL = """
SELECT p.oid::regprocedure::text || E'\\n' || pg_get_functiondef(p.oid)
       || E'\\nacl: ' || coalesce(array_to_string(p.proacl, ','), '') || E'\\n\\x1e'
  FROM pg_proc p WHERE p.pronamespace::regnamespace::text IN ('kip', 'kip_api')
UNION ALL
SELECT pg_get_triggerdef(t.oid) || E'\\n\\x1e' FROM pg_trigger t WHERE NOT t.tgisinternal
ORDER BY 1
"""

CREATE_FUNCTION = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+([\w.\"]+)\s*\(", re.I)


def _sql_files():
    return sorted(SCHEMA_DIR.rglob("*.sql"))


def _objects(pg, db):
    return set(pg.psql(OBJECTS_SQL, db=db).splitlines())


def _definitions(pg, db):
    return pg.psql(DEFINITIONS_SQL, db=db)


def _migrate_only(pg, db, schema_dir, workroot, owner=True):
    d = kiptest.make_workdir(workroot, kiptest.unique("migrate-"))
    args = [str(kiptest.KIPD_BIN), "--migrate-only", "--db", pg.url(db), "--schema-dir", str(schema_dir),
            "--admin-token-file", str(d / "admin-token"), "--key-file", str(d / "cpr.key")]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return r


def _schema_dump(pg, db):
    """pg_dump --schema-only of the code schemas (psql meta lines dropped)."""
    out = subprocess.run([str(kiptest.PG_BINDIR / "pg_dump"), "-h", str(pg.sockdir), "-U", "postgres",
                          "--schema-only", "--schema=kip", "--schema=kip_api", db],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith("\\"))


# ------------------------------------------------------------ the files

def test_no_function_is_defined_twice():
    """Parsed from the files: no function (name and arguments) is defined
    twice, and no name is defined in two files (overloads share a file). The
    project's before-stop hook runs the same check on names."""
    seen, files_of = {}, {}
    for f in _sql_files():
        text = f.read_text()
        for m in CREATE_FUNCTION.finditer(text):
            name = m.group(1).replace('"', "").lower()
            # the argument list up to its closing parenthesis
            depth, i = 1, m.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            key = (name, " ".join(text[m.end():i - 1].split()))
            where = f"{f.relative_to(SCHEMA_DIR)}:{text.count(chr(10), 0, m.start()) + 1}"
            assert key not in seen, f"{name} is defined twice: {seen[key]} and {where}"
            seen[key] = where
            files_of.setdefault(name, set()).add(f.relative_to(SCHEMA_DIR))
    assert len(seen) > 100, "the parser found too few functions"
    twice = {n: sorted(map(str, fs)) for n, fs in files_of.items() if len(fs) > 1}
    assert not twice, f"functions defined in more than one file: {twice}"
    # The hook's own grep (any "FUNCTION name(" in a file, comments too).
    hook = {}
    for f in _sql_files():
        for name in {m.lower() for m in re.findall(r'FUNCTION +([a-z_."]+) *\(', f.read_text(), re.I)}:
            hook.setdefault(name, []).append(str(f.relative_to(SCHEMA_DIR)))
    assert not {n: fs for n, fs in hook.items() if len(fs) > 1}


def test_migrations_hold_no_code():
    """No function body, view or trigger in a migration, and no migration
    that edits a function's source."""
    code = re.compile(r"\bCREATE\s+(OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|VIEW|MATERIALIZED\s+VIEW|TRIGGER"
                      r"|RULE)\b|\bALTER\s+(FUNCTION|PROCEDURE)\b|pg_get_functiondef|\bprosrc\b", re.I)
    files = sorted(MIGRATIONS.glob("*.sql"))
    assert files
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            assert not code.search(line), f"{f.name}:{n} belongs in schema/functions/: {line.strip()}"
    assert all(re.match(r"^\d{2}_[a-z_]+\.sql$", f.name) for f in FUNCTIONS.glob("*.sql"))


# ------------------------------------------------------------ the database

@pytest.fixture(scope="module")
def layout(pg, new_db, workroot):
    """Which objects each function file defines, found by the database
    itself: the migrations alone (an empty functions/), then each file in
    turn, as the runner applies them. Returns (db, {file name: objects})."""
    db = new_db()
    bare = kiptest.make_workdir(workroot, kiptest.unique("bare-schema-"))
    os.symlink(MIGRATIONS, bare / "migrations")
    (bare / "functions").mkdir()
    _migrate_only(pg, db, bare, workroot)
    before = _objects(pg, db)
    assert before == set(), f"the migrations alone define code: {sorted(before)}"
    per_file = {}
    for f in sorted(FUNCTIONS.glob("*.sql")):
        r = subprocess.run([str(kiptest.PG_BINDIR / "psql"), "-h", str(pg.sockdir), "-U", "postgres", "-d", db,
                            "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "SET check_function_bodies = off",
                            "-f", str(f)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{f.name}: {r.stderr}"
        now = _objects(pg, db)
        per_file[f.name] = now - before
        before = now
    return db, per_file


def test_database_holds_exactly_what_the_function_files_define(pg, kipd, layout):
    _, per_file = layout
    defined = set().union(*per_file.values())
    assert len(defined) > 100
    assert _objects(pg, kipd.db) == defined
    # Every trigger is attached by the file that defines its function.
    assert any(o.startswith("trigger ") for o in per_file["03_history.sql"])


def test_every_function_compiles_against_the_schema(pg, kipd):
    """The runner applies the files with check_function_bodies off (they are
    ordered by family, not by dependency); here every function is created
    again with the check on, so a SQL function naming a missing table or
    function fails."""
    pg.psql("BEGIN; SET LOCAL check_function_bodies = on; "
            "DO $$ DECLARE f oid; BEGIN "
            "FOR f IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace::regnamespace::text IN ('kip', 'kip_api') "
            "LOOP EXECUTE pg_get_functiondef(f); END LOOP; END $$; ROLLBACK", db=kipd.db)


def test_a_function_left_from_an_older_layout_is_dropped(pg, new_db, workroot):
    db = new_db()
    _migrate_only(pg, db, SCHEMA_DIR, workroot)
    fresh = _objects(pg, db)
    stamp = pg.psql("SELECT applied_at FROM kipd_function_files", db=db)
    _migrate_only(pg, db, SCHEMA_DIR, workroot)
    assert pg.psql("SELECT applied_at FROM kipd_function_files", db=db) == stamp, \
        "unchanged function files were applied again"
    # What an older layout (or a hand) left behind: a function, a view over
    # a function, a trigger, and a definition changed in place.
    pg.psql("CREATE FUNCTION kip_api.old_route(p_ctx jsonb) RETURNS int LANGUAGE sql AS 'SELECT 1';"
            "CREATE FUNCTION kip.old_helper() RETURNS int LANGUAGE sql AS 'SELECT 2';"
            "CREATE VIEW kip.old_view AS SELECT kip.old_helper() AS two;"
            "CREATE FUNCTION kip.old_trigger() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';"
            "CREATE TRIGGER old_trigger BEFORE UPDATE ON kip.plans FOR EACH ROW EXECUTE FUNCTION kip.old_trigger();"
            "CREATE OR REPLACE FUNCTION kip.cpr_mask(p_cpr text) RETURNS text LANGUAGE sql IMMUTABLE "
            "AS 'SELECT p_cpr';", db=db)
    assert _objects(pg, db) - fresh
    # Same files: nothing to do, the leftovers stay (the runner trusts its record) ...
    _migrate_only(pg, db, SCHEMA_DIR, workroot)
    assert "function kip_api.old_route(jsonb)" in _objects(pg, db)
    # ... until the function files change (here: the record says they did).
    pg.psql("UPDATE kipd_function_files SET checksum = 'an older layout'", db=db)
    _migrate_only(pg, db, SCHEMA_DIR, workroot)
    assert _objects(pg, db) == fresh
    other = new_db()
    _migrate_only(pg, other, SCHEMA_DIR, workroot)
    assert _definitions(pg, db) == _definitions(pg, other)


# ------------------------------------------------------------ routes

def _routes():
    out = subprocess.run([str(kiptest.KIPD_BIN), "--print-routes"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _c_file_of(route):
    """The daemon/api/*.c file whose route table has this route."""
    pat = re.compile(r'"%s",\s*(?:\.pattern\s*=\s*)?"%s"' % (re.escape(route["method"]), re.escape(route["path"])))
    hits = [f for f in sorted(API_DIR.glob("*.c")) if pat.search(f.read_text())]
    assert len(hits) == 1, f"{route['method']} {route['path']}: in {hits}"
    return hits[0]


def _family_file(c_file):
    """schema/functions/NN_<family>.sql, NN from 10 (00-09 are the shared
    building blocks)."""
    hits = sorted(FUNCTIONS.glob(f"[1-9][0-9]_{c_file.stem}.sql"))
    assert len(hits) == 1, f"no schema/functions/NN_{c_file.stem}.sql for {c_file.name}"
    return hits[0].name


def _functions_named(objects, qualified):
    return [o for o in objects if o.startswith(f"function {qualified}(")]


def test_every_route_names_its_function_in_the_file_of_its_family(layout):
    _, per_file = layout
    routes = _routes()
    assert len(routes) > 40
    for r in routes:
        c_file = _c_file_of(r)
        if r["function"] is None:
            # Only the health routes answer without SQL of their own.
            assert c_file.name == "health.c", f"{r['method']} {r['path']} names no kip_api function"
            continue
        assert r["function"].startswith("kip_api."), r
        sql_file = _family_file(c_file)
        assert _functions_named(per_file[sql_file], r["function"]), \
            f"{r['method']} {r['path']} ({c_file.name}) calls {r['function']}, not defined in {sql_file}"


def test_the_route_table_in_the_docs_is_true():
    """docs/architecture.md, "Where each route lives": one row per route,
    naming its C file, its function, its SQL file and an existing test file."""
    doc = (kiptest.ROOT / "docs" / "architecture.md").read_text()
    rows = {}
    for line in doc.split("## Where each route lives", 1)[1].splitlines():
        m = re.match(r"^\| `(\w+) (\S+)` \| `([^`]+)`[^|]*\| ([^|]*) \| ([^|]*) \| `([^`]+)` \|$", line)
        if m:
            rows[(m.group(1), m.group(2))] = m.groups()[2:]
    routes = _routes()
    assert set(rows) == {(r["method"], r["path"]) for r in routes}
    for r in routes:
        c_file, function, sql_file, test_file = rows[(r["method"], r["path"])]
        assert c_file == str(_c_file_of(r).relative_to(kiptest.ROOT)), r
        assert (kiptest.ROOT / test_file).is_file(), test_file
        if r["function"] is not None:
            assert function == f"`{r['function']}`", r
            assert sql_file == f"`schema/functions/{_family_file(_c_file_of(r))}`", r


def test_every_api_function_is_called(layout):
    """Every kip_api function is called from daemon/api/ (route tables and
    handlers), and every kip_api function called there is defined."""
    _, per_file = layout
    called = set()
    for c_file in sorted(API_DIR.glob("*.c")):
        called |= set(re.findall(r"\bkip_api\.(\w+)\(", c_file.read_text()))
    defined = {re.match(r"function kip_api\.(\w+)\(", o).group(1)
               for objs in per_file.values() for o in objs if o.startswith("function kip_api.")}
    assert len(defined) > 50
    assert defined - called == set(), f"kip_api functions nothing calls: {sorted(defined - called)}"
    assert called - defined == set(), f"kip_api functions called but not defined: {sorted(called - defined)}"


# ------------------------------------------------------------ upgrade

def _restore_fixture(pg, db):
    r = subprocess.run([str(kiptest.PG_BINDIR / "psql"), "-h", str(pg.sockdir), "-U", "postgres", "-d", db,
                        "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(FIXTURES / f"{FIXTURE}.sql")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def expected():
    data = json.loads((FIXTURES / f"{FIXTURE}.json").read_text())
    for p in data["plans"]:
        kiptest.remember_secret(p["cpr"])
    for t in data["tokens"].values():
        kiptest.remember_secret(t)
    kiptest.remember_secret(data["nurse"]["password"])
    return data


def _check_upgraded(k, expected, sql):
    """The fixture's data through the API of the upgraded kipd k; sql(query)
    runs a query on its database."""
    rows = sql("SELECT version || ' ' || name FROM kipd_migrations ORDER BY version").splitlines()
    today = {f.name for f in MIGRATIONS.glob("*.sql")}
    # Re-recorded under today's names; the retired ones (functions only) stay.
    assert {r.split(" ", 1)[1] for r in rows} == today | {"003_api.sql", "006_actions_api.sql", "008_access.sql"}
    assert sql("SELECT count(*) FROM kipd_function_files") == "1"

    tokens = expected["tokens"]
    nurse = Api(k.url, tokens["nurse"], name="nurse")
    caseworker = Api(k.url, tokens["caseworker"], name="caseworker")
    outsider = Api(k.url, tokens["outsider"], name="outsider")
    auditor = Api(k.url, tokens["auditor"], name="auditor")
    admin = Api(k.url, tokens["admin"], name="admin")

    # The data, through the API: every plan with its CPR number decrypted.
    for p in expected["plans"]:
        r = nurse.get(f"/v1/plans/{p['id']}")
        assert r.status_code == 200, r.text
        doc, was = r.json(), expected["documents"][p["id"]]
        assert doc["citizen"] == was["citizen"] and doc["citizen"]["cpr"] == p["cpr"]
        assert doc["citizen"]["name"] == p["name"]
        assert doc["reason"] == was["reason"] and doc["needs"] == was["needs"]
        assert sorted(x["id"] for x in doc["participants"]) == sorted(x["id"] for x in was["participants"])
        assert [(a["id"], a["title"], a["status"]) for a in doc["actions"]] == \
            [(a["id"], a["title"], a["status"]) for a in was["actions"]]
        assert [m["id"] for m in doc["meetings"]] == [m["id"] for m in was["meetings"]]
        # review_expired is derived from today's date: left out, so the test
        # holds after the consents' yearly review dates too.
        assert {k: v for k, v in doc["consent"].items() if k != "review_expired"} == \
            {k: v for k, v in was["consent"].items() if k != "review_expired"}
        found = nurse.post("/v1/plans/search", json={"cpr": p["cpr"]}).json()["items"]
        assert [x["id"] for x in found] == [p["id"]], "search by CPR (the blind index) lost the plan"
        assert nurse.get(f"/v1/plans/{p['id']}/history").json()["items"]
    held = nurse.get(f"/v1/meetings/{expected['meeting']}").json()
    assert held["status"] == "held" and held["outcome"]["summary"] == "Vi aftalte opfølgning hos egen læge."
    assert nurse.get(f"/v1/actions/{expected['action_in_progress']}").json()["status"] == "in_progress"
    # The access rule still holds: consent covers the municipality, a
    # withdrawal ends it, an organisation never named sees nothing.
    first = expected["plans"][0]
    assert caseworker.get(f"/v1/plans/{first['id']}").json()["citizen"]["cpr"] == first["cpr"]
    assert caseworker.get(f"/v1/plans/{expected['withdrawn_plan']}").status_code == 404
    assert all(outsider.get(f"/v1/plans/{p['id']}").status_code == 404 for p in expected["plans"])
    assert caseworker.get("/v1/me/actions").status_code == 200
    # Sign-in with the password set before the upgrade; the calendar feed URL.
    r = Api(k.url, None, name="anonymous").post("/v1/session", json=expected["nurse"])
    assert r.status_code == 201, r.text
    feed = expected["calendar_feed_url"]
    r = Api(k.url, None, name="anonymous").get(feed[feed.index("/v1/"):])
    assert r.status_code == 200 and "BEGIN:VCALENDAR" in r.text
    # New writes work, sealed under the same key.
    coord = kiptest.create_user(admin, {"id": expected["organisations"][0]}, ["coordinator"])
    new = kiptest.create_plan(coord)
    assert coord.get(f"/v1/plans/{new['id']}").json()["citizen"]["cpr"] == new["citizen"]["cpr"]

    # Nothing lost, and the audit chain still verifies (old rows and new).
    assert int(sql("SELECT count(*) FROM kip.audit")) > expected["audit_rows"]
    assert int(sql("SELECT count(*) FROM kip.history")) >= expected["history_rows"]
    v = auditor.get("/v1/audit/verify").json()
    assert v["ok"] is True and v["broken"] == 0 and v["head"]["seq"] >= expected["audit_rows"], v
    # (From a checkpoint, if the daily pass's walk made one first: the full
    # walk recomputes every link, the old ones too.)
    job = auditor.post("/v1/audit/verify-jobs")
    assert job.status_code == 202, job.text
    done = kiptest.wait_until(lambda: auditor.get(job.headers["Location"]).json()["result"], 60,
                              interval=0.2, what="the full walk of the audit chain")
    assert done["ok"] is True and done["checked"] >= expected["audit_rows"], done


def _fixture_key(d):
    key = d / "cpr.key"
    shutil.copy(FIXTURES / f"{FIXTURE}.cpr.key", key)
    os.chmod(key, 0o600)
    return key


@pytest.mark.parametrize("roles", ["one_role", "two_roles"])
def test_upgrade_from_main_8f17d69(pg, new_db, workroot, expected, roles):
    """A database made by main at 8f17d69 (pg_dump, with its CPR key file)
    upgrades at the next start: nothing lost, the audit chain verifies,
    every CPR number decrypts, and the code equals a fresh database's. With
    one role, kipd serves and migrates as the owner; with two, it migrates
    as --db-owner and serves as --db."""
    db = new_db()
    _restore_fixture(pg, db)
    old_rows = pg.psql("SELECT version || ' ' || name FROM kipd_migrations ORDER BY version", db=db)
    assert "003_api.sql" in old_rows and "002_functions.sql" in old_rows
    d = kiptest.make_workdir(workroot, kiptest.unique(f"upgrade-{roles}-"))
    key = _fixture_key(d)
    if roles == "two_roles":
        k = Kipd.external(d, pg.runtime_url(db), owner_url=pg.url(db), extra_args=["--key-file", str(key)],
                          name="upgrade")
    else:
        k = Kipd.external(d, pg.url(db), extra_args=["--key-file", str(key)], name="upgrade")
    with kiptest.running_kipd(k):
        _check_upgraded(k, expected, lambda q: pg.psql(q, db=db))

    # The code equals a fresh database's, function for function.
    fresh = new_db()
    _migrate_only(pg, fresh, SCHEMA_DIR, workroot)
    assert _definitions(pg, db) == _definitions(pg, fresh)
    assert _schema_dump(pg, db) == _schema_dump(pg, fresh)


def test_upgrade_from_main_8f17d69_embedded(pg, new_db, workroot, expected):
    """The same in embedded mode: an embedded cluster whose database is the
    fixture as embedded kipd made it (owned by kipd_owner), upgraded when
    kipd starts, migrating as kipd_owner and serving as kipd_app."""
    base = kiptest.make_workdir(workroot, kiptest.unique("upgrade-embedded-"))
    data = base / "data"
    k = Kipd.embedded(base, data, name="upgrade-embedded")
    k.start()      # initdb, the roles and an empty database "kipd"
    k.stop()
    # Put the fixture in its place, with the cluster up under our own socket.
    sock = kiptest.make_workdir(base, "sock")
    if kiptest.IS_ROOT:
        uid, gid = kiptest._pg_user_ids()
        os.chown(sock, uid, gid)
    cluster = kiptest.PgCluster(base)
    cluster.datadir, cluster.sockdir, cluster.logfile = data / "pg", sock, sock / "postgres.log"
    cluster.start()
    try:
        def su(query, db="postgres"):
            return cluster.psql(query, db=db, user="kipd")
        su("DROP DATABASE kipd")
        su("CREATE DATABASE kipd OWNER kipd_owner ENCODING 'UTF8' TEMPLATE template0")
        dump = (FIXTURES / f"{FIXTURE}.sql").read_text()
        dump = dump.replace(" OWNER TO postgres;", " OWNER TO kipd_owner;").replace(
            "FOR ROLE postgres ", "FOR ROLE kipd_owner ")
        r = subprocess.run([str(kiptest.PG_BINDIR / "psql"), "-h", str(sock), "-U", "kipd", "-d", "kipd",
                            "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=dump, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert "002_functions.sql" in su("SELECT string_agg(name, ' ') FROM kipd_migrations", db="kipd")
    finally:
        cluster.stop("fast")
    shutil.copy(FIXTURES / f"{FIXTURE}.cpr.key", data / "cpr.key")
    os.chmod(data / "cpr.key", 0o600)

    def sql(query):
        out = subprocess.run([str(kiptest.PG_BINDIR / "psql"), "-h", str(data / "run"), "-U", "kipd",
                              "-d", "kipd", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", query],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    with kiptest.running_kipd(k):
        _check_upgraded(k, expected, sql)
        upgraded = sql(DEFINITIONS_SQL)
    fresh = new_db()
    _migrate_only(pg, fresh, SCHEMA_DIR, workroot)
    assert upgraded.replace("kipd_owner", "postgres") == _definitions(pg, fresh)
