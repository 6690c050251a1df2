"""A host name in --db is resolved off the loop (db/pg_resolve.c).

libpq resolves a `host` name with a blocking getaddrinfo inside
PQconnectPoll. kipd resolves it on libuv's threadpool before each connection
attempt and hands libpq the address as `hostaddr`, keeping `host` (for TLS,
Kerberos and .pgpass). These tests run kipd against a PostgreSQL listening
on TCP, named by `localhost`, and against a name that does not resolve.
"""

import subprocess

import pytest

import kiptest
from kiptest import Api, Kipd, PgCluster


class TcpPgCluster(PgCluster):
    """The harness cluster, also listening on 127.0.0.1:port (trust, as
    initdb -A trust sets for local TCP)."""

    def __init__(self, base, port):
        super().__init__(base)
        self.port = port

    def start(self):
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockdir} -c fsync=off "
                f"-c full_page_writes=off -c max_connections=50")
        self._run([kiptest.PG_BINDIR / "pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                   "-o", opts, "start"], timeout=90)
        return self

    def psql(self, sql, db="postgres", user="postgres"):
        r = subprocess.run([str(kiptest.PG_BINDIR / "psql"), "-h", str(self.sockdir), "-p", str(self.port),
                            "-U", user, "-d", db, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def createdb(self, name):
        self.psql(f'CREATE DATABASE "{name}" ENCODING UTF8 TEMPLATE template0')
        return name


@pytest.fixture
def tcp_pg(workroot):
    c = TcpPgCluster(workroot / kiptest.unique("pg-tcp-"), kiptest.free_port()).init().start()
    c.createdb("kipd")
    yield c
    c.stop("fast", check=False)


def test_a_host_name_in_db_is_resolved_and_served(tcp_pg, workroot):
    url = f"host=localhost port={tcp_pg.port} dbname=kipd user=postgres connect_timeout=5"
    k = Kipd.external(kiptest.make_workdir(workroot, kiptest.unique("dns-")), url, name="dns")
    with kiptest.running_kipd(k):
        admin = Api(k.url, k.admin_token(), name="admin")
        org = kiptest.create_org(admin)
        nurse = kiptest.create_user(admin, org, ["coordinator"])
        plan = kiptest.create_plan(nurse)
        assert nurse.get(f"/v1/plans/{plan['id']}").status_code == 200
        # kipd's connections came over TCP from loopback, as libpq got them by address.
        rows = tcp_pg.psql("SELECT DISTINCT host(client_addr) FROM pg_stat_activity "
                           "WHERE application_name = 'kipd' AND client_addr IS NOT NULL", db="kipd")
        assert set(rows.split()) <= {"127.0.0.1", "::1"} and rows.strip(), rows
        # The event stream's LISTEN connection (db/pg_listen.c) resolves the name the same way.
        kiptest.wait_until(lambda: tcp_pg.psql("SELECT count(*) FROM pg_stat_activity WHERE "
                                               "application_name = 'kipd-events' AND client_addr IS NOT NULL",
                                               db="kipd") == "1", 10, what="the LISTEN connection by name")


def test_a_name_that_does_not_resolve_is_named_in_the_error(workroot):
    bad = "host=kipd-no-such-host.invalid port=5432 dbname=kipd user=postgres connect_timeout=2"
    k = Kipd.external(kiptest.make_workdir(workroot, kiptest.unique("dns-bad-")), bad, name="dns-bad")
    k.start(wait=False)
    code = k.wait_exit(30)
    assert code == 1, k.log_tail()
    rec = next(r for r in k.log_records() if r.get("msg") == "migration failed")
    assert rec["database"].startswith('could not resolve host name "kipd-no-such-host.invalid"'), rec


def test_kipd_reconnects_by_name_after_the_server_restarts(tcp_pg, workroot):
    """Each reconnection resolves the name again (a failover may move it)."""
    url = f"host=localhost port={tcp_pg.port} dbname=kipd user=postgres connect_timeout=5"
    k = Kipd.external(kiptest.make_workdir(workroot, kiptest.unique("dns-re-")), url, name="dns-re")
    with kiptest.running_kipd(k):
        admin = Api(k.url, k.admin_token(), name="admin")
        assert admin.get("/v1/me").status_code == 200
        tcp_pg.stop("immediate")
        kiptest.wait_until(lambda: admin.get("/readyz").status_code == 503, 10, what="503 while down")
        tcp_pg.start()
        kiptest.wait_until(lambda: admin.get("/readyz").status_code == 200, 20, what="ready again")
        assert admin.get("/v1/me").status_code == 200
