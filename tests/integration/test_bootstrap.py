"""The command line, configuration, migrations and the bootstrap admin."""

import os
import re
import stat
import subprocess
import threading

import pytest
import requests

import kiptest
from kiptest import KIPD_BIN, SCHEMA_DIR, Api, Kipd


def _run(args, timeout=60, env=None):
    if not KIPD_BIN.exists():
        pytest.fail(f"kipd binary not found: {KIPD_BIN}")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KIPD_") or k == "KIPD_PG_BINDIR"}
    full_env.update(env or {})
    return subprocess.run([str(KIPD_BIN)] + args, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=full_env)


def _project_version():
    text = (kiptest.ROOT / "meson.build").read_text()
    m = re.search(r"version\s*:\s*'([^']+)'", text)
    return m.group(1)


def test_help_exits_0():
    r = _run(["--help"], timeout=10)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    for flag in ("--db", "--listen", "--data-dir", "--admin-token-file", "--migrate-only"):
        assert flag in out, f"--help does not mention {flag}"


def test_version_exits_0():
    r = _run(["--version"], timeout=10)
    assert r.returncode == 0, r.stderr
    assert _project_version() in r.stdout + r.stderr


def test_unknown_flag_fails():
    r = _run(["--no-such-flag"], timeout=10)
    assert r.returncode != 0


def test_bad_listen_address_fails(pg, new_db, workroot):
    r = _run(["--db", pg.url(new_db()), "--listen", "not-an-address",
              "--admin-token-file", str(workroot / kiptest.unique("tok-")), "--schema-dir", str(SCHEMA_DIR)],
             timeout=30)
    assert r.returncode != 0


def test_external_mode_writes_private_admin_token(kipd_factory):
    k = kipd_factory(name="bootstrap")
    mode = stat.S_IMODE(os.stat(k.token_file).st_mode)
    assert mode == 0o600, oct(mode)
    token = k.token_file.read_text().strip()
    assert kiptest.TOKEN_RE.match(token)
    me = Api(k.url, token).get("/v1/me").json()
    assert me["username"] == "admin" and me["roles"] == ["admin"]


def test_listening_log_line(kipd_factory):
    k = kipd_factory(name="listen")
    records = k.log_records()
    lines = [r for r in records if r.get("msg") == "listening"]
    assert len(lines) == 1, [r.get("msg") for r in records]
    assert f"127.0.0.1:{k.port}" in lines[0].get("url", ""), lines[0]
    for r in records:
        assert {"ts", "level", "msg"} <= set(r), r


# -------------------------------------------------------------- migrations

def _migrations(pg, db):
    where = pg.psql("select table_schema from information_schema.tables "
                    "where table_name = 'kipd_migrations'", db=db)
    assert where, "no kipd_migrations table after migrating"
    schema = where.splitlines()[0]
    return pg.psql(f"select count(*), max(applied_at) from \"{schema}\".kipd_migrations", db=db)


def _migrate_args(pg, db, workroot):
    return ["--migrate-only", "--db", pg.url(db), "--schema-dir", str(SCHEMA_DIR),
            "--admin-token-file", str(workroot / kiptest.unique("migrate-token-"))]


def test_migrate_only(pg, new_db, workroot):
    db = new_db()
    n_files = len(list((SCHEMA_DIR / "migrations").glob("*.sql")))
    assert n_files >= 1
    r = _run(_migrate_args(pg, db, workroot))
    assert r.returncode == 0, r.stderr
    first = _migrations(pg, db)
    assert first.split("|")[0] == str(n_files), first
    assert pg.psql("select count(*) from information_schema.schemata where schema_name = 'kip'", db=db) == "1"

    r = _run(_migrate_args(pg, db, workroot))
    assert r.returncode == 0, r.stderr
    assert _migrations(pg, db) == first, "a second --migrate-only applied something"


def test_two_migrate_only_at_once(pg, new_db, workroot):
    db = new_db()
    results = [None, None]

    def run(i):
        results[i] = _run(_migrate_args(pg, db, workroot))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    for r in results:
        assert r is not None and r.returncode == 0, r and r.stderr
    assert _migrations(pg, db).split("|")[0] == str(len(list((SCHEMA_DIR / "migrations").glob("*.sql"))))


def test_two_kipd_start_at_once_on_a_fresh_database(pg, new_db, workroot):
    db = new_db()
    ks = [Kipd.external(kiptest.make_workdir(workroot, kiptest.unique("twin-")), pg.url(db), name=f"twin{i}")
          for i in range(2)]
    try:
        for k in ks:
            k.start(wait=False)
        for k in ks:
            k.wait_ready()
        for k in ks:
            assert requests.get(k.url + "/readyz", timeout=5).status_code == 200
        tokens = [k.token_file.read_text().strip() for k in ks if k.token_file.exists()]
        assert tokens, "neither kipd wrote the admin token"
        for token in tokens:
            for k in ks:
                r = Api(k.url, token).get("/v1/me")
                assert r.status_code == 200 and r.json()["username"] == "admin", (k.name, r.text)
        # One shared database: what one writes, the other reads.
        admin0 = Api(ks[0].url, tokens[0])
        org = kiptest.create_org(admin0)
        assert Api(ks[1].url, tokens[0]).get(f"/v1/organisations/{org['id']}").status_code == 200
        users = kiptest.collect_all(admin0, "/v1/users")
        assert [u["username"] for u in users].count("admin") == 1
        for k in ks:
            k.stop()
            k.assert_no_secrets_logged()
    finally:
        for k in ks:
            k.cleanup()


# ------------------------------------------------------------ configuration

def test_configuration_from_environment(pg, new_db, workroot):
    d = kiptest.make_workdir(workroot, kiptest.unique("envcfg-"))
    port = kiptest.free_port()
    k = Kipd(d, [], listen=False, port=port, token_file=d / "admin-token", name="envcfg", env={
        "KIPD_DB": pg.url(new_db()), "KIPD_LISTEN": f"127.0.0.1:{port}",
        "KIPD_ADMIN_TOKEN_FILE": str(d / "admin-token"), "KIPD_SCHEMA_DIR": str(SCHEMA_DIR)})
    try:
        k.start()
        assert Api(k.url, k.admin_token()).get("/v1/me").status_code == 200
        k.stop()
    finally:
        k.cleanup()


def test_flags_win_over_environment(pg, new_db, workroot):
    d = kiptest.make_workdir(workroot, kiptest.unique("envflag-"))
    env_port = kiptest.free_port()
    k = Kipd.external(d, pg.url(new_db()), name="envflag", env={"KIPD_LISTEN": f"127.0.0.1:{env_port}"})
    assert k.port != env_port
    try:
        k.start()                                       # waits on the --listen port
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{env_port}/healthz", timeout=2)
        k.stop()
    finally:
        k.cleanup()
