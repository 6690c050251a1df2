"""Database outages and kipd crashes (external database mode).

The embedded-cluster counterpart (postmaster killed) is in test_embedded.py.
"""

import time

import pytest

import kiptest
from kiptest import Api, Kipd, PgCluster, Traffic, problem


@pytest.fixture
def private_pg(workroot):
    """A cluster of this test's own, so it can be stopped."""
    c = PgCluster(workroot / kiptest.unique("pg-outage-")).init().start()
    yield c
    c.stop("fast", check=False)


@pytest.fixture
def outage_kipd(private_pg, workroot):
    private_pg.createdb("kipd")
    k = Kipd.external(kiptest.make_workdir(workroot, kiptest.unique("outage-")), private_pg.url("kipd"),
                      name="outage")
    with kiptest.running_kipd(k):
        yield k


def test_external_database_outage_gives_503_then_recovers(private_pg, outage_kipd):
    k = outage_kipd
    admin = Api(k.url, k.admin_token(), name="admin")
    org = kiptest.create_org(admin)
    nurse = kiptest.create_user(admin, org, ["coordinator"])
    plan = kiptest.create_plan(nurse)
    pid_before = k.pid

    traffic = Traffic(lambda: Api(k.url, nurse.token), "GET", f"/v1/plans/{plan['id']}", timeout=10)
    traffic.start()
    try:
        kiptest.wait_until(lambda: traffic.summary().get(200, 0) >= 3, 10, what="traffic to flow")

        t_down = time.monotonic()
        private_pg.stop("immediate")
        kiptest.wait_until(lambda: traffic.seen(503, after=t_down), 10, what="a 503 while the database is down")

        # While it is down: readiness fails, liveness holds, writes get 503 too.
        r = admin.get("/readyz")
        problem(r, 503, type_suffix="unavailable")
        assert r.headers.get("Retry-After") == "1"
        assert admin.get("/healthz").status_code == 200
        r = nurse.post("/v1/plans", json=kiptest.plan_body())
        problem(r, 503)
        assert r.headers.get("Retry-After") == "1"
        problem(nurse.get("/v1/me"), 503)            # not 401: the token cannot be checked
        assert k.alive()

        t_up = time.monotonic()
        private_pg.start()
        kiptest.wait_until(lambda: traffic.seen(200, after=t_up), 15, interval=0.1,
                           what="kipd serving again after the database came back")
        kiptest.wait_until(lambda: admin.get("/readyz").status_code == 200, 15, what="/readyz 200")
    finally:
        traffic.stop()

    assert k.alive() and k.pid == pid_before, "kipd must reconnect, not restart"
    traffic.assert_clean(allowed=(200, 503), max_duration=7.0)
    assert traffic.summary().get(503, 0) >= 1
    # Writes work again, and nothing acknowledged was lost.
    assert nurse.get(f"/v1/plans/{plan['id']}").json() == plan
    assert nurse.post("/v1/plans", json=kiptest.plan_body()).status_code == 201


def test_kill_9_loses_no_acknowledged_write(kipd_factory):
    k = kipd_factory(name="crash")
    admin = Api(k.url, k.admin_token(), name="admin")
    org = kiptest.create_org(admin)
    nurse = kiptest.create_user(admin, org, ["coordinator"])
    plans = []
    for i in range(20):
        r = nurse.post("/v1/plans", json=kiptest.plan_body(name=f"Borger nr. {i} Ø"))
        assert r.status_code == 201
        plans.append({k: v for k, v in r.json().items() if k != "warnings"})
    r = nurse.patch(f"/v1/plans/{plans[0]['id']}", json={"reason": "Ændret lige før nedbruddet"},
                    headers={"If-Match": '"1"'})
    assert r.status_code == 200
    plans[0] = r.json()

    k.kill()
    assert k.proc.returncode == -9
    k.start()

    for plan in plans:
        r = nurse.get(f"/v1/plans/{plan['id']}")
        assert r.status_code == 200, f"plan {plan['id']} lost after kill -9"
        assert r.json() == plan
    listed = kiptest.collect_all(nurse, "/v1/plans")
    assert {p["id"] for p in listed} == {p["id"] for p in plans}
    # the admin's token (written at the first start) still works
    assert admin.get("/v1/me").status_code == 200
