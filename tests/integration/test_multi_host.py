"""More than one host (issue 17): two kipd instances on one external
PostgreSQL, behind a round-robin TCP proxy on 127.0.0.1, as
docs/operations.md ("More than one host") lays out production.

kipd keeps no KIP state outside PostgreSQL, so any instance can answer any
request: a write through one is read through the other, If-Match guards
against lost updates across them, the daily pass and the audit sealer do
their work once however many instances run, and when one instance dies the
other keeps serving. The database itself restarting under load (a failover,
as Patroni or a managed service does it) is survived by both without a
restart of either.
"""

import socket
import threading
import time

import pytest

import kiptest
from kiptest import Api, Kipd, PgCluster, cph_today, problem

DAY = __import__("datetime").timedelta(days=1)


class RoundRobinProxy:
    """A plain TCP proxy: each new client connection goes to the next
    backend in turn; a backend that refuses the connection is skipped, as
    nginx's `proxy_next_upstream error` and HAProxy's health checks do. It
    never looks into the HTTP it carries."""

    def __init__(self, backends):
        self.backends = list(backends)      # [(host, port)]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.turn = 0
        self.lock = threading.Lock()
        self.picked = {b: 0 for b in self.backends}
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _connect(self):
        with self.lock:
            start = self.turn
            self.turn = (self.turn + 1) % len(self.backends)
        for i in range(len(self.backends)):
            b = self.backends[(start + i) % len(self.backends)]
            try:
                s = socket.create_connection(b, timeout=2)
            except OSError:
                continue
            s.settimeout(None)
            with self.lock:
                self.picked[b] += 1
            return s
        return None

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = self._connect()
            if upstream is None:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.closed = True
        self.sock.close()


@pytest.fixture
def cluster(workroot):
    """A PostgreSQL of this test's own (it is restarted in one test)."""
    c = PgCluster(workroot / kiptest.unique("pg-hosts-")).init().start()
    c.createdb("kipd")
    yield c
    c.stop("fast", check=False)


@pytest.fixture
def two_hosts(cluster, workroot):
    """Two kipd on one database, started one after the other (the second
    finds the schema migrated), both running their daily pass every second
    and their audit sealer every 200 ms, and the proxy in front."""
    args = ["--daily-pass-interval-s", "1", "--audit-seal-interval-ms", "200"]
    ks = []
    for name in ("host-a", "host-b"):
        k = Kipd.external(kiptest.make_workdir(workroot, kiptest.unique(f"{name}-")), cluster.url("kipd"),
                          extra_args=args, name=name)
        k.start()
        ks.append(k)
    proxy = RoundRobinProxy([("127.0.0.1", k.port) for k in ks])
    try:
        yield ks[0], ks[1], proxy
    finally:
        proxy.close()
        for k in ks:
            if k.alive():
                k.stop()
            k.assert_no_secrets_logged()
            k.cleanup()


def _team(k, proxy):
    admin = Api(proxy.url, k.admin_token(), name="admin")
    org = kiptest.create_org(admin, "region_hospital")
    nurse = kiptest.create_user(admin, org, ["coordinator"])
    auditor = kiptest.create_user(admin, kiptest.create_org(admin), ["auditor"])
    return admin, nurse, auditor


def _direct(k, client):
    return Api(k.url, client.token, name=f"{client.name}@{k.name}")


def test_writes_through_either_instance_are_seen_by_both(two_hosts):
    a, b, proxy = two_hosts
    _, nurse, _ = _team(a, proxy)
    made = []
    for i in range(6):                     # through the proxy: both instances take writes
        # a new connection per request, so the proxy alternates
        r = Api(proxy.url, nurse.token, name="nurse").post("/v1/plans", json=kiptest.plan_body(name=f"Borger {i}"))
        assert r.status_code == 201, r.text
        made.append({k: v for k, v in r.json().items() if k != "warnings"})
    assert all(n >= 3 for n in proxy.picked.values()), proxy.picked
    for k in (a, b):
        c = _direct(k, nurse)
        for plan in made:
            r = c.get(f"/v1/plans/{plan['id']}")
            assert r.status_code == 200
            assert r.json() == plan
        assert {p["id"] for p in kiptest.collect_all(c, "/v1/plans")} == {p["id"] for p in made}


def test_if_match_prevents_a_lost_update_across_instances(two_hosts):
    a, b, proxy = two_hosts
    _, nurse, _ = _team(a, proxy)
    plan = kiptest.create_plan(_direct(a, nurse))
    on_a, on_b = _direct(a, nurse), _direct(b, nurse)
    # Both read version 1, each on its own instance; the first write wins ...
    assert on_a.get(f"/v1/plans/{plan['id']}").headers["ETag"] == '"1"'
    assert on_b.get(f"/v1/plans/{plan['id']}").headers["ETag"] == '"1"'
    r = on_a.patch(f"/v1/plans/{plan['id']}", json={"reason": "Skrevet via vært A"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"2"'
    # ... and the second, still holding version 1, is refused on the other instance.
    problem(on_b.patch(f"/v1/plans/{plan['id']}", json={"reason": "Skrevet via vært B"},
                       headers={"If-Match": '"1"'}), 412)
    got = on_b.get(f"/v1/plans/{plan['id']}").json()
    assert got["reason"] == "Skrevet via vært A" and got["version"] == 2


def test_the_daily_pass_and_the_audit_sealer_do_their_work_once(two_hosts, cluster):
    a, b, proxy = two_hosts
    _, nurse, auditor = _team(a, proxy)
    today = cph_today()
    late = []
    for _ in range(3):
        plan = kiptest.create_plan(_direct(a, nurse))
        for i in range(3):
            r = _direct(b, nurse).post(f"/v1/plans/{plan['id']}/actions", json={
                "title": "Søge boligstøtte", "area": "housing",
                "responsible_participant_id": plan["coordinator"],
                "due_date": (today - (i + 1) * DAY).isoformat()})
            assert r.status_code == 201, r.text
            late.append(r.json()["id"])

    def overdue_counts():
        rows = cluster.psql("SELECT resource_id, count(*) FROM kip.events WHERE kind = 'action.overdue' "
                            "GROUP BY resource_id", db="kipd").splitlines()
        return dict(line.split("|") for line in rows if line)

    # Both instances run their pass every second, often at the same moment.
    kiptest.wait_until(lambda: len(overdue_counts()) == len(late), 20, interval=0.2,
                       what="the daily pass to mark every late action")
    time.sleep(3)                          # several more passes on each instance
    counts = overdue_counts()
    assert counts == {i: "1" for i in late}, counts
    ran_on = {k.name for k in (a, b) if any(rec.get("msg") == "daily pass" for rec in k.log_records())}
    assert ran_on == {a.name, b.name}, "both instances must have run the pass (and found nothing twice)"

    # The sealers of both instances seal each audit row exactly once, in one chain.
    def unsealed():
        return int(cluster.psql("SELECT count(*) FROM kip.audit a WHERE NOT EXISTS "
                                "(SELECT 1 FROM kip.audit_seal s WHERE s.audit_id = a.id)", db="kipd"))
    kiptest.wait_until(lambda: unsealed() == 0, 20, interval=0.2, what="every audit row sealed")
    seqs = cluster.psql("SELECT count(*), count(DISTINCT audit_id), min(seq), max(seq) FROM kip.audit_seal",
                        db="kipd").split("|")
    n, distinct, lo, hi = map(int, seqs)
    assert n == distinct and lo == 1 and hi == n, seqs
    for k in (a, b):
        r = _direct(k, auditor).get("/v1/audit/verify")
        assert r.status_code == 200
        assert r.json()["ok"] is True and r.json()["broken"] == 0, r.json()


class Writers:
    """Threads creating plans through the proxy, each on a fresh connection
    per request (as a browser behind a proxy does after an error); records
    each acknowledged plan and each failure."""

    def __init__(self, proxy, token, n=4):
        self.proxy, self.token = proxy, token
        self.acked, self.failures = [], []
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, i):
        seq = 0
        while not self.stop_flag.is_set():
            seq += 1
            t = time.monotonic()
            try:
                r = Api(self.proxy.url, self.token, name=f"writer-{i}").post(
                    "/v1/plans", json=kiptest.plan_body(name=f"Skriver {i} nr. {seq}"), timeout=15)
                status = r.status_code
                body = r.json() if status == 201 else None
            except Exception as e:  # noqa: BLE001 - a connection cut by the kill counts as a failure
                status, body = repr(e)[:80], None
            with self.lock:
                if status == 201:
                    self.acked.append((t, body["id"]))
                else:
                    self.failures.append((t, status))
            time.sleep(0.01)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)

    def acked_after(self, moment):
        with self.lock:
            return [i for t, i in self.acked if t > moment]

    def failed_after(self, moment):
        with self.lock:
            return [s for t, s in self.failures if t > moment]


def test_one_instance_killed_mid_load_the_other_keeps_serving(two_hosts, cluster):
    a, b, proxy = two_hosts
    _, nurse, _ = _team(a, proxy)
    with Writers(proxy, nurse.token) as w:
        kiptest.wait_until(lambda: len(w.acked) >= 20, 30, what="writes to flow through both instances")
        a.kill()
        t_kill = time.monotonic()
        # Only requests in flight on the killed instance may fail; from a
        # moment after the kill, every write goes to the survivor and succeeds.
        kiptest.wait_until(lambda: len(w.acked_after(t_kill + 1.0)) >= 30, 30,
                           what="writes acknowledged by the surviving instance")
    assert b.alive()
    assert w.failed_after(t_kill + 1.0) == [], w.failed_after(t_kill + 1.0)[:5]
    assert len(w.failures) <= len(w.threads), w.failures   # at most one in flight per writer
    # Every acknowledged write is in the database, readable through the survivor.
    survivor = _direct(b, nurse)
    listed = {p["id"] for p in kiptest.collect_all(survivor, "/v1/plans")}
    missing = {i for _, i in w.acked} - listed
    assert not missing, f"{len(missing)} acknowledged plans missing"


def test_both_instances_survive_a_database_restart_under_load(two_hosts, cluster):
    """A failover, as the instances see it: the server goes away under load
    and comes back (here the same server; Patroni promotes a replica behind
    the same address). Both answer 503 meanwhile, then serve again, each
    with the process it had."""
    a, b, proxy = two_hosts
    _, nurse, _ = _team(a, proxy)
    pids = (a.pid, b.pid)
    with Writers(proxy, nurse.token) as w:
        kiptest.wait_until(lambda: len(w.acked) >= 20, 30, what="writes to flow")
        cluster.stop("immediate")
        t_down = time.monotonic()
        kiptest.wait_until(lambda: any(s == 503 for s in w.failed_after(t_down)), 15,
                           what="503 while the database is gone")
        time.sleep(1)
        cluster.start()
        t_up = time.monotonic()
        kiptest.wait_until(lambda: len(w.acked_after(t_up)) >= 20, 30, interval=0.1,
                           what="writes acknowledged again after the restart")
    assert (a.pid, b.pid) == pids and a.alive() and b.alive(), "kipd must reconnect, not restart"
    # While it was down the answers were 503 (or a connection the restart cut), never another status.
    odd = [s for _, s in w.failures if isinstance(s, int) and s != 503]
    assert not odd, odd
    for k in (a, b):                       # each reconnects on its own backoff
        kiptest.wait_until(lambda: Api(k.url, None).get("/readyz").status_code == 200, 15,
                           what=f"{k.name} ready again")
        assert _direct(k, nurse).post("/v1/plans", json=kiptest.plan_body()).status_code == 201
    listed = {p["id"] for p in kiptest.collect_all(_direct(b, nurse), "/v1/plans")}
    missing = {i for _, i in w.acked} - listed
    assert not missing, f"{len(missing)} acknowledged plans missing after the restart"
