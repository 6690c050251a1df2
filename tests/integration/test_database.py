"""The database under pressure: a held row lock makes kipd's statements wait,
which shows the statement timeout, the bounded pool queue, and a client that
goes away while its statement runs. Each answer must be a clean 503 or the
real result; kipd must keep serving everyone else and exit 0 at the end
(under ASan a leak would make that exit non-zero)."""

import socket
import subprocess
import threading
import time

import pytest

import kiptest
from kiptest import PG_BINDIR, Api, problem


class RowLock:
    """Hold FOR UPDATE on one plan in a separate psql session until release()."""

    def __init__(self, pg, db, plan_id):
        self.proc = subprocess.Popen(
            [str(PG_BINDIR / "psql"), "-h", str(pg.sockdir), "-U", "postgres", "-d", db, "-X", "-q",
             "-v", "ON_ERROR_STOP=1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.proc.stdin.write("BEGIN;\n"
                              f"SELECT 1 FROM kip.plans WHERE id = '{plan_id}' FOR UPDATE;\n"
                              "\\echo locked\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        while line and "locked" not in line:
            line = self.proc.stdout.readline()
        assert "locked" in line, "the psql session did not take the lock"

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=10)


def _users(k):
    admin = Api(k.url, k.admin_token(), name="admin")
    org = kiptest.create_org(admin, "region_hospital", None)
    nurse = kiptest.create_user(admin, org, ["coordinator"])
    return admin, nurse


@pytest.mark.pg_timer
def test_statement_timeout_answers_503_and_changes_nothing(pg, kipd_factory):
    k = kipd_factory(extra_args=["--statement-timeout-ms", "500"])
    _, nurse = _users(k)
    plan = kiptest.create_plan(nurse)
    lock = RowLock(pg, k.db, plan["id"])
    try:
        t0 = time.monotonic()
        r = nurse.patch(f"/v1/plans/{plan['id']}", json={"reason": "changed under a lock"},
                        headers={"If-Match": '"1"'})
        took = time.monotonic() - t0
        problem(r, 503, type_suffix="unavailable")
        assert r.headers.get("Retry-After") == "1"
        assert took < 5, f"the statement timeout of 500 ms took {took:.1f} s"
    finally:
        lock.release()
    after = nurse.get(f"/v1/plans/{plan['id']}").json()
    assert after["version"] == 1 and after["reason"] == plan["reason"], "a timed-out write left a change"


def test_full_pool_queue_answers_503_at_once(pg, kipd_factory):
    # No audit sealer and no daily pass: their statements (every second, and
    # 2 s after start) would take the one queue place whenever they fell
    # between the blocked and the queued request.
    k = kipd_factory(extra_args=["--pool-size", "1", "--pool-queue", "1",
                                 "--pool-queue-timeout-ms", "20000", "--audit-seal-interval-ms", "0",
                                 "--daily-pass-interval-s", "0"])
    _, nurse = _users(k)
    plan = kiptest.create_plan(nurse)
    lock = RowLock(pg, k.db, plan["id"])
    answers = {}

    def call(name, method, path, **kw):
        answers[name] = getattr(nurse, method)(path, **kw)

    blocked = threading.Thread(target=call, args=("blocked", "patch", f"/v1/plans/{plan['id']}"),
                               kwargs={"json": {"reason": "waits for the lock"},
                                       "headers": {"If-Match": '"1"'}})
    try:
        blocked.start()
        time.sleep(0.5)                       # the one connection now waits on the lock
        queued = threading.Thread(target=call, args=("queued", "get", "/v1/me"))
        queued.start()
        time.sleep(0.5)                       # the one queue place is taken
        t0 = time.monotonic()
        r = nurse.get("/v1/me")
        problem(r, 503, type_suffix="unavailable")
        assert time.monotonic() - t0 < 2, "a full queue must answer at once, not after a timeout"
        assert "waiting" in r.json()["detail"]
    finally:
        lock.release()
    blocked.join(15)
    queued.join(15)
    assert answers["blocked"].status_code == 200, answers["blocked"].text
    assert answers["queued"].status_code == 200, answers["queued"].text
    assert nurse.get("/v1/me").status_code == 200


def test_client_gone_while_its_statement_runs(pg, kipd_factory):
    k = kipd_factory()
    _, nurse = _users(k)
    plan = kiptest.create_plan(nurse)
    lock = RowLock(pg, k.db, plan["id"])
    try:
        body = b'{"reason": "sent by a client who left"}'
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", k.port), timeout=5)
            s.sendall(b"PATCH /v1/plans/" + plan["id"].encode() + b" HTTP/1.1\r\nHost: x\r\n"
                      b"Authorization: Bearer " + nurse.token.encode() + b"\r\n"
                      b"Content-Type: application/json\r\nIf-Match: *\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.1)
            s.close()                           # gone while the statement waits on the lock
        assert nurse.get("/v1/me").status_code == 200, "others are served meanwhile"
    finally:
        lock.release()
    # The statements ran to the end after their clients left; kipd dropped the
    # answers and kept serving.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        doc = nurse.get(f"/v1/plans/{plan['id']}").json()
        if doc["version"] == 6:
            break
        time.sleep(0.2)
    assert doc["reason"] == "sent by a client who left" and doc["version"] == 6, doc
    assert k.alive()
    k.stop()            # exit 0 asserted; a leak under ASan would fail it
