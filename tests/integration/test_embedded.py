"""Embedded mode: kipd runs its own PostgreSQL in its data folder.

One embedded kipd serves the whole module (initdb takes a few seconds);
every test leaves it running.
"""

import os
import signal
import subprocess
import stat
import time

import pytest
import requests

import kiptest
from kiptest import Api, Kipd, Traffic, pid_alive, problem


@pytest.fixture(scope="module")
def embedded(workroot):
    base = kiptest.make_workdir(workroot, kiptest.unique("embedded-"))
    k = Kipd.embedded(base, base / "data", name="embedded")
    with kiptest.running_kipd(k):
        yield k


def _running(k):
    """Bring the module's kipd back if an earlier test left it stopped."""
    if not k.alive():
        k.start()
    return k


def _people(k):
    admin = Api(k.url, k.admin_token(), name="admin")
    org = kiptest.create_org(admin)
    nurse = kiptest.create_user(admin, org, ["coordinator"])
    return admin, nurse


def test_embedded_bootstrap(embedded):
    k = _running(embedded)
    token_file = k.data_dir / "admin-token"
    mode = stat.S_IMODE(os.stat(token_file).st_mode)
    assert mode == 0o600, f"{token_file} has mode {oct(mode)}"
    token = token_file.read_text().strip()
    assert kiptest.TOKEN_RE.match(token), "admin token has the wrong shape"
    admin = Api(k.url, token)
    me = admin.get("/v1/me").json()
    assert me["username"] == "admin" and me["roles"] == ["admin"]
    assert admin.get("/readyz").status_code == 200
    pm = k.postmaster_pid()
    assert pm and pid_alive(pm), "no running postmaster in DATA_DIR/pg"
    assert not (k.data_dir / "pg").stat().st_mode & 0o077, "the cluster's folder must be private"
    assert list((k.data_dir / "run").glob(".s.PGSQL.*")), "no unix socket in DATA_DIR/run"


def test_embedded_serves_plans(embedded):
    k = _running(embedded)
    _, nurse = _people(k)
    plan = kiptest.create_plan(nurse, name="Embedded Ærø")
    assert nurse.get(f"/v1/plans/{plan['id']}").json() == plan


def test_postmaster_killed_is_restarted(embedded):
    k = _running(embedded)
    _, nurse = _people(k)
    plan = kiptest.create_plan(nurse)
    kipd_pid = k.pid
    old_pm = k.postmaster_pid()
    assert old_pm and pid_alive(old_pm)

    traffic = Traffic(lambda: Api(k.url, nurse.token), "GET", f"/v1/plans/{plan['id']}", timeout=10)
    traffic.start()
    try:
        kiptest.wait_until(lambda: traffic.summary().get(200, 0) >= 3, 10, what="traffic to flow")
        os.kill(old_pm, signal.SIGKILL)
        t_kill = time.monotonic()

        def new_postmaster():
            pm = k.postmaster_pid()
            return pm if pm and pm != old_pm and pid_alive(pm) else None
        kiptest.wait_until(new_postmaster, 30, interval=0.1, what="kipd to restart the postmaster")
        t_new = time.monotonic()
        assert t_new - t_kill < 30
        kiptest.wait_until(lambda: traffic.seen(200, after=t_new), 30, interval=0.1,
                           what="kipd serving again after the postmaster was restarted")
        kiptest.wait_until(lambda: Api(k.url).get("/readyz").status_code == 200, 30, what="/readyz 200")
    finally:
        traffic.stop()
    assert k.alive() and k.pid == kipd_pid, "kipd itself must not restart"
    traffic.assert_clean(allowed=(200, 503), max_duration=7.0)
    assert nurse.get(f"/v1/plans/{plan['id']}").json() == plan
    assert nurse.post("/v1/plans", json=kiptest.plan_body()).status_code == 201


def test_restart_keeps_data_and_sigterm_stops_the_cluster(embedded):
    k = _running(embedded)
    admin, nurse = _people(k)
    plan = kiptest.create_plan(nurse, name="Persistent Østergaard")
    token_before = (k.data_dir / "admin-token").read_text()
    pm = k.postmaster_pid()

    t0 = time.monotonic()
    k.stop(timeout=10)                                  # asserts exit code 0
    assert time.monotonic() - t0 < 10
    kiptest.wait_until(lambda: not pid_alive(pm), 3, what="the postmaster to be gone after kipd exited")
    assert not (k.data_dir / "pg" / "postmaster.pid").exists(), "the cluster was not shut down cleanly"
    with pytest.raises(requests.ConnectionError):
        requests.get(k.url + "/healthz", timeout=2)

    k.start()
    assert (k.data_dir / "admin-token").read_text() == token_before, "a restart must not replace the admin token"
    assert nurse.get(f"/v1/plans/{plan['id']}").json() == plan
    assert admin.get("/v1/me").status_code == 200


def test_sigint_stops_cleanly(embedded):
    k = _running(embedded)
    pm = k.postmaster_pid()
    k.stop(sig=signal.SIGINT, timeout=10)
    kiptest.wait_until(lambda: not pid_alive(pm), 3, what="the postmaster to be gone")
    k.start()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=["0644", "0640", "0604"])
def test_refuses_token_readable_by_others(embedded, mode):
    k = _running(embedded)
    token_file = k.data_dir / "admin-token"
    k.stop()
    os.chmod(token_file, mode)
    try:
        k.start(wait=False)
        code = k.wait_exit(30)
        assert code is not None, "kipd started although its admin token is readable by others"
        assert code != 0
        out = k.output_text()
        assert "admin-token" in out, f"the refusal must name the file:\n{k.log_tail()}"
        pm = k.postmaster_pid()
        assert not (pm and pid_alive(pm)), "kipd refused but left the cluster running"
        assert stat.S_IMODE(os.stat(token_file).st_mode) == mode, "kipd must not silently fix the mode"
    finally:
        os.chmod(token_file, 0o600)
        if k.alive():
            k.kill()
    k.start()
    assert Api(k.url, k.admin_token()).get("/v1/me").status_code == 200


def test_embedded_unauthenticated_and_logs_are_json(embedded):
    k = _running(embedded)
    problem(Api(k.url).get("/v1/me"), 401)
    records = k.log_records()
    assert any(r.get("msg") == "listening" for r in records)


def _embedded_psql(k, user, sql):
    return subprocess.run([str(kiptest.PG_BINDIR / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                           "-h", str(k.data_dir / "run"), "-p", "5432", "-U", user, "-d", "kipd", "-c", sql],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_embedded_serves_as_a_runtime_role_that_only_appends_audit(embedded):
    """kipd_owner runs the migrations and owns everything; kipd_app serves
    and may not change or remove audit rows (docs/audit.md)."""
    k = _running(embedded)
    admin, nurse = _people(k)
    plan = kiptest.create_plan(nurse)
    assert nurse.get(f"/v1/plans/{plan['id']}").status_code == 200
    assert Api(k.url).get("/readyz").json()["audit"] == {"append_only": True}
    r = _embedded_psql(k, "kipd", "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('kip', 'kip_api')")
    assert r.returncode == 0 and r.stdout.split() == ["kipd_owner"], r
    r = _embedded_psql(k, "kipd", "SELECT usename FROM pg_stat_activity WHERE datname = 'kipd' "
                       "AND application_name LIKE 'kipd%' GROUP BY usename")
    assert r.returncode == 0 and r.stdout.split() == ["kipd_app"], r
    for sql in ("DELETE FROM kip.audit", "UPDATE kip.audit SET action = 'x'", "TRUNCATE kip.audit"):
        r = _embedded_psql(k, "kipd_app", sql)
        assert r.returncode != 0 and "permission denied" in r.stderr, (sql, r)


def test_the_server_log_is_rotated_and_bounded(embedded):
    """PostgreSQL's logging collector writes DATA_DIR/pg/log/postgres-<Day>.log,
    one file per weekday, truncated when the day comes round again (at most
    seven days kept); postgres.log, which only holds initdb's output and
    start-up errors, is moved to postgres.log.1 at start once past 1 MiB
    (docs/operations.md, "Logs and metrics")."""
    k = _running(embedded)
    settings = _embedded_psql(k, "kipd", "SELECT string_agg(name || '=' || setting, ',' ORDER BY name) "
                              "FROM pg_settings WHERE name IN ('logging_collector', 'log_filename', "
                              "'log_truncate_on_rotation', 'log_rotation_age', 'log_rotation_size', 'log_directory')")
    assert settings.returncode == 0, settings
    assert settings.stdout.strip() == ("log_directory=log,log_filename=postgres-%a.log,log_rotation_age=1440,"
                                       "log_rotation_size=0,log_truncate_on_rotation=on,logging_collector=on")
    current = _embedded_psql(k, "kipd", "SELECT pg_current_logfile()").stdout.strip()
    assert current in {f"log/postgres-{d}.log" for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}, current
    probe = kiptest.unique("rotation-probe-")
    assert _embedded_psql(k, "kipd", f"DO $$BEGIN RAISE LOG '{probe}'; END$$").returncode == 0
    logfile = k.data_dir / "pg" / current
    kiptest.wait_until(lambda: probe in logfile.read_text(errors="replace"), 10,
                       what="the server's message in its rotated log")

    k.stop(timeout=10)
    big = k.data_dir / "postgres.log"
    with open(big, "ab") as f:
        f.write(b"x" * (1024 * 1024 + 1) + b"\n")
    size = big.stat().st_size
    k.start()
    assert (k.data_dir / "postgres.log.1").stat().st_size == size
    assert big.stat().st_size < 64 * 1024
