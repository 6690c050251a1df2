"""Fixtures for kipd's integration tests.

Session: one throwaway PostgreSQL 15 cluster (`pg`), with the runtime login
         role kiptest.RUNTIME_ROLE (a member of kipd_runtime).
Module:  one kipd per test module on its own fresh database (`kipd`), and
         the bootstrap admin's client (`admin`). kipd serves as the runtime
         role (--db) and migrates as the superuser (--db-owner), so the
         audit log is append-only as in production.
Test:    factories for organisations, users (each returned as a client with
         its own token) and plans, so tests never share data.
"""

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import kiptest  # noqa: E402
from kiptest import Api, Kipd, PgCluster  # noqa: E402

_FAILED = []


def pytest_runtest_logreport(report):
    if report.failed:
        _FAILED.append(report.nodeid)


@pytest.fixture(scope="session")
def workroot():
    """A temp folder the postgres user can traverse. Kept when a test failed
    or KIPD_TEST_KEEP=1, so logs can be read afterwards."""
    parent = os.environ.get("KIPD_TEST_TMPDIR", "/tmp")
    d = Path(tempfile.mkdtemp(prefix="kipd-it-", dir=parent))
    os.chmod(d, 0o755)
    yield d
    if _FAILED or os.environ.get("KIPD_TEST_KEEP") == "1":
        sys.stderr.write(f"\nkipd integration test files kept in {d}\n")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log(workroot):
    """At the end of the run, every log any kipd wrote in this run (each
    one's stderr and stdout, all restarts included) is searched for every
    token, password and CPR number the tests used anywhere in the run, so a
    secret first seen by a later test is caught in an earlier daemon's log
    too."""
    yield
    with kiptest._secrets_lock:
        secrets = {s for s in kiptest.SECRETS if s}
        files = list(kiptest.KIPD_LOG_FILES)
    assert secrets or not files, "kipd ran, but no secret was ever recorded"
    leaks = []
    for f in files:
        text = Path(f).read_text(errors="replace") if Path(f).exists() else ""
        found = sorted(s[:10] + "…" for s in secrets if s in text)
        if found:
            leaks.append(f"{Path(f).relative_to(workroot)}: {found}")
    assert not leaks, "secrets in kipd logs:\n" + "\n".join(leaks)


@pytest.fixture(scope="session")
def pg(workroot):
    cluster = PgCluster(workroot / "pg").init().start().ensure_runtime_role()
    yield cluster
    cluster.stop("fast")


@pytest.fixture(scope="session")
def new_db(pg):
    def make(prefix="kipd_"):
        return pg.createdb(f"{prefix}{uuid.uuid4().hex[:12]}")
    return make


@pytest.fixture
def kipd_factory(pg, workroot, new_db):
    """start(extra_args=(), env=None, db=None, wait=True) -> a kipd on a fresh
    database (or on `db`). At teardown each one still running is stopped with
    SIGTERM (exit code 0 asserted) and checked for logged secrets."""
    started = []

    def start(extra_args=(), env=None, db=None, wait=True, name="kipd"):
        db = db or new_db()
        workdir = kiptest.make_workdir(workroot, kiptest.unique(f"{name}-"))
        k = Kipd.external(workdir, pg.runtime_url(db), extra_args=extra_args, env=env, name=name,
                          owner_url=pg.url(db))
        k.db = db
        started.append(k)
        k.start(wait=wait)
        return k

    try:
        yield start
        for k in started:
            if k.alive():
                k.stop()
            k.assert_no_secrets_logged()
    finally:
        for k in started:
            k.cleanup()


@pytest.fixture(scope="module")
def kipd(request, pg, workroot, new_db):
    """One kipd for the whole test module, on its own database. At teardown:
    SIGTERM must end it with exit code 0, and its output must not contain
    any token or CPR number the tests used."""
    db = new_db()
    name = request.module.__name__.replace("test_", "")
    workdir = kiptest.make_workdir(workroot, kiptest.unique(f"{name}-"))
    k = Kipd.external(workdir, pg.runtime_url(db), name=name, owner_url=pg.url(db))
    k.db = db
    with kiptest.running_kipd(k):
        yield k


@pytest.fixture(scope="module")
def admin(kipd):
    return Api(kipd.url, kipd.admin_token(), name="admin")


@pytest.fixture(scope="module")
def anon(kipd):
    return Api(kipd.url, None, name="anonymous")


@pytest.fixture
def make_org(admin):
    def make(sector="municipality_social", name=None, **fields):
        return kiptest.create_org(admin, sector, name, **fields)
    return make


@pytest.fixture
def make_user(admin):
    def make(org, roles=("coordinator",), **fields):
        return kiptest.create_user(admin, org, roles, **fields)
    return make


@pytest.fixture
def coordinator(make_org, make_user):
    """A coordinator in a fresh organisation."""
    return make_user(make_org(), ["coordinator"])


@pytest.fixture
def make_plan():
    return kiptest.create_plan
