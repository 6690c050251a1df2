"""CPR tokens bound to their plan, the re-sealing of old (version 1) tokens at
start-up, and the table rewrite that takes replaced values off the disk
(issue #16; docs/cpr-encryption.md)."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time

import pytest

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import kiptest
from kiptest import Api

V1 = "\x01kipd-cpr:1:"
V2 = "\x01kipd-cpr:2:"


def _key_file(k):
    args = k.base_args
    return args[args.index("--key-file") + 1]


def _current_key(k):
    ring = json.load(open(_key_file(k)))
    key = [x for x in ring["keys"] if x["id"] == ring["current"]][0]
    return key["id"], base64.b64decode(key["enc"]), base64.b64decode(key["mac"])


def _seal_v1(key_id, enc, cpr):
    """A token as kipd wrote it before migration 021: additional data
    "kipd-cpr:1:<key id>", no plan (written here independently of kipd)."""
    nonce = os.urandom(12)
    sealed = AESGCM(enc).encrypt(nonce, cpr.encode(), f"kipd-cpr:1:{key_id}".encode())
    return V1 + key_id + ":" + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def _stored(pg, db, pid):
    return pg.psql(f"SELECT citizen_cpr_enc || '|' || citizen_cpr_hmac FROM kip.plans WHERE id = '{pid}'",
                   db=db).split("|")


def _sql_literal(s):
    # a token holds U+0001: E'\x01...' in SQL
    return "E'" + s.replace("\\", "\\\\").replace("'", "''").replace("\x01", "\\x01") + "'"


def _warnings(k, msg):
    return [r for r in k.log_records() if r.get("level") == "warn" and r.get("msg") == msg]


def _info(k, msg):
    return [r for r in k.log_records() if r.get("msg") == msg]


def _nurse(k):
    admin = Api(k.url, k.admin_token(), name="admin")
    return kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])


def test_a_token_copied_to_another_plan_does_not_open(kipd_factory, pg):
    """Someone who can write the database copies plan A's token (and blind
    index) into plan B. B reads with cpr null (200, no clear number of A),
    and kipd logs the warning it logs for every token that does not open."""
    k = kipd_factory()
    nurse = _nurse(k)
    a = kiptest.create_plan(nurse)
    b = kiptest.create_plan(nurse)
    enc_a, hmac_a = _stored(pg, k.db, a["id"])
    assert enc_a.startswith(V2) and len(enc_a) == 81
    pg.psql(f"UPDATE kip.plans SET citizen_cpr_enc = {_sql_literal(enc_a)}, citizen_cpr_hmac = '{hmac_a}' "
            f"WHERE id = '{b['id']}'", db=k.db)
    assert _stored(pg, k.db, b["id"])[0] == enc_a, "the copy is in place"

    r = nurse.get(f"/v1/plans/{b['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["citizen"]["cpr"] is None
    for c in (a["citizen"]["cpr"], a["citizen"]["cpr"].replace("-", "")):
        assert c not in r.text, "plan A's CPR number shown on plan B"
    deadline = time.monotonic() + 10   # the log is read by a thread: wait for the line
    while not (warned := _warnings(k, "a sealed CPR number could not be decrypted; answered null")) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [w["statement"] for w in warned] == ["plan_get"] and warned[0]["request_id"], k.log_tail()
    # the FHIR export of B reads the same way
    r = nurse.get(f"/v1/plans/{b['id']}/fhir")
    assert r.status_code == 200, r.text
    assert a["citizen"]["cpr"] not in r.text and a["citizen"]["cpr"].replace("-", "") not in r.text
    # A itself still opens; B gets a number of its own again by a PATCH
    assert nurse.get(f"/v1/plans/{a['id']}").json()["citizen"]["cpr"] == a["citizen"]["cpr"]
    new = kiptest.new_cpr()
    version = nurse.get(f"/v1/plans/{b['id']}").json()["version"]
    r = nurse.patch(f"/v1/plans/{b['id']}", json={"citizen": {"cpr": new}}, headers={"If-Match": f'"{version}"'})
    assert r.status_code == 200 and r.json()["citizen"]["cpr"] == new, r.text
    assert nurse.get(f"/v1/plans/{b['id']}").json()["citizen"]["cpr"] == new


def test_old_tokens_are_resealed_at_start(kipd_factory, pg):
    """A database with version 1 tokens (as kipd wrote them before 021):
    two kipd starting at once re-seal them bound to their plan, once; a
    version 1 token written afterwards is not opened."""
    k = kipd_factory()
    nurse = _nurse(k)
    plans = [kiptest.create_plan(nurse) for _ in range(6)]
    k.stop()
    key_id, enc, mac = _current_key(k)
    for p in plans:
        token = _seal_v1(key_id, enc, p["citizen"]["cpr"])
        pg.psql(f"UPDATE kip.plans SET citizen_cpr_enc = {_sql_literal(token)} WHERE id = '{p['id']}'", db=k.db)
    # the blind index is HMAC-SHA256 under the MAC key, as before
    want_hmac = hmac.new(mac, plans[0]["citizen"]["cpr"].encode(), hashlib.sha256).hexdigest()
    assert _stored(pg, k.db, plans[0]["id"])[1] == want_hmac
    assert pg.psql(f"SELECT count(*) FROM kip.plans WHERE left(citizen_cpr_enc, 12) = {_sql_literal(V1)}",
                   db=k.db) == "6"

    # two at once on the same database and key file
    k.start(wait=False)
    k2 = kipd_factory(db=k.db, wait=False, name="twin")
    k.wait_ready()
    k2.wait_ready()
    upgraded = [r["count"] for kk in (k, k2) for r in _info(kk, "re-sealed CPR numbers bound to their plan")]
    assert upgraded == [6], (k.log_tail(), k2.log_tail())
    assert pg.psql(f"SELECT count(*) FROM kip.plans WHERE left(citizen_cpr_enc, 12) = {_sql_literal(V2)}",
                   db=k.db) == "6"
    assert pg.psql("SELECT count(*) FROM kip.cpr_rewrite", db=k.db) == "0"
    assert sum(len(_info(kk, "rewrote the CPR tables")) for kk in (k, k2)) == 1
    assert pg.psql("SELECT count(*) FROM kip.history WHERE field = 'citizen.cpr' AND operation = 'update'",
                   db=k.db) == "0", "re-sealing changes no citizen"
    for p in plans:
        assert nurse.get(f"/v1/plans/{p['id']}").json()["citizen"]["cpr"] == p["citizen"]["cpr"]
        assert Api(k2.url, nurse.token, name="n2").get(f"/v1/plans/{p['id']}").json()["citizen"]["cpr"] \
            == p["citizen"]["cpr"]
    assert _stored(pg, k.db, plans[0]["id"])[1] == want_hmac, "the same key: the same blind index"
    target = plans[3]
    assert [i["id"] for i in nurse.post("/v1/plans/search", json={"q": target["citizen"]["cpr"]}).json()["items"]] \
        == [target["id"]]

    # after the re-seal: a version 1 token (from an old backup, say) is not opened
    late = _seal_v1(key_id, enc, plans[1]["citizen"]["cpr"])
    pg.psql(f"UPDATE kip.plans SET citizen_cpr_enc = {_sql_literal(late)} WHERE id = '{plans[1]['id']}'", db=k.db)
    r = nurse.get(f"/v1/plans/{plans[1]['id']}")
    assert r.status_code == 200 and r.json()["citizen"]["cpr"] is None, r.text
    k2.stop()
    k.stop()
    # a restart re-seals it once more (it is version 1 again), and nothing else
    k.start()
    resealed = [r["count"] for r in _info(k, "re-sealed CPR numbers bound to their plan")]
    assert resealed[-1] == 1
    assert nurse.get(f"/v1/plans/{plans[1]['id']}").json()["citizen"]["cpr"] == plans[1]["citizen"]["cpr"]
    k.stop()
    k.start()
    assert len(_info(k, "re-sealed CPR numbers bound to their plan")) == len(resealed), "nothing left to re-seal"


def test_rotation_reseals_old_tokens_and_asks_for_the_rewrite(kipd_factory, pg):
    """kipd --rotate-key on a database that still has version 1 tokens: all
    come out as version 2 under the new key; the next start rewrites."""
    k = kipd_factory()
    nurse = _nurse(k)
    plans = [kiptest.create_plan(nurse) for _ in range(3)]
    k.stop()
    key_id, enc, _ = _current_key(k)
    token = _seal_v1(key_id, enc, plans[0]["citizen"]["cpr"])
    pg.psql(f"UPDATE kip.plans SET citizen_cpr_enc = {_sql_literal(token)} WHERE id = '{plans[0]['id']}'", db=k.db)
    argv = [str(k.binary)] + list(k.base_args) + ["--rotate-key"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    new_id = json.load(open(_key_file(k)))["current"]
    assert new_id != key_id
    rows = pg.psql("SELECT citizen_cpr_enc FROM kip.plans WHERE citizen_cpr_enc IS NOT NULL", db=k.db).splitlines()
    assert len(rows) == 3 and all(t.startswith(V2 + new_id) for t in rows), rows
    assert pg.psql("SELECT count(*) FROM kip.cpr_rewrite", db=k.db) == "1"
    k.start()
    assert _info(k, "rewrote the CPR tables"), k.log_tail()
    assert pg.psql("SELECT count(*) FROM kip.cpr_rewrite", db=k.db) == "0"
    for p in plans:
        assert nurse.get(f"/v1/plans/{p['id']}").json()["citizen"]["cpr"] == p["citizen"]["cpr"]


def _db_files(pg, db):
    oid = pg.psql(f"SELECT oid FROM pg_database WHERE datname = '{db}'")
    base = pg.datadir / "base" / oid
    return [base / f for f in os.listdir(base)]


def _clear_on_disk(pg, db, cprs):
    """The CPR numbers (with and without hyphen) found in any file of the
    database's folder in the cluster (tables, TOAST, indexes, catalogs)."""
    pg.psql("CHECKPOINT")   # every page in shared buffers to its file first
    needles = [c.encode() for c in cprs] + [c.replace("-", "").encode() for c in cprs]
    found = set()
    for path in _db_files(pg, db):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        for n in needles:
            if n in data:
                found.add((n.decode()[:6], path.name))
    return found


def test_upgrade_leaves_no_clear_number_in_the_table_files(workroot, pg, new_db, kipd_factory):
    """A database from before 010, with clear CPR numbers: kipd seals them
    at start and rewrites the tables, so no clear number is left in any
    file of the database's folder on disk (WAL aside: docs/cpr-encryption.md)."""
    db = new_db()
    old_schema = kiptest.make_workdir(workroot, kiptest.unique("schema-"))
    (old_schema / "migrations").mkdir()
    (old_schema / "functions").mkdir()
    for f in sorted(os.listdir(kiptest.SCHEMA_DIR / "migrations")):
        if f[:3].isdigit() and int(f[:3]) < 10:
            shutil.copy(kiptest.SCHEMA_DIR / "migrations" / f, old_schema / "migrations" / f)
    d = kiptest.make_workdir(workroot, kiptest.unique("legacy-"))
    r = subprocess.run([str(kiptest.KIPD_BIN), "--db", pg.url(db), "--schema-dir", str(old_schema),
                        "--admin-token-file", str(d / "admin-token"), "--migrate-only"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    cprs = [kiptest.new_cpr() for _ in range(40)]
    org = pg.psql("INSERT INTO kip.organisations (name, sector) VALUES ('Gammel', 'municipality_social') "
                  "RETURNING id", db=db).splitlines()[0]
    values = ", ".join(f"('{c}')" for c in cprs)
    pg.psql(f"BEGIN; SET CONSTRAINTS ALL DEFERRED; "
            f"WITH c(cpr) AS (VALUES {values}), "
            f"p AS (INSERT INTO kip.plans (owner_organisation_id, coordinator_participant_id, citizen_name, "
            f"citizen_cpr, reason) SELECT '{org}', gen_random_uuid(), 'Gammel Borger', cpr, 'Gammel' FROM c "
            f"RETURNING id, coordinator_participant_id) "
            f"INSERT INTO kip.participants (id, plan_id, kind, name, role, organisation_id) "
            f"SELECT coordinator_participant_id, id, 'professional', 'Tovholder', 'social_nurse', '{org}' "
            f"FROM p; COMMIT", db=db)
    before = _clear_on_disk(pg, db, cprs)
    assert len({n for n, _ in before}) == len(cprs), "the scan must see the clear numbers before the upgrade"

    k = kipd_factory(db=db)
    assert [r["count"] for r in _info(k, "sealed pending CPR numbers")] == [40], k.log_tail()
    assert _info(k, "rewrote the CPR tables"), k.log_tail()
    assert pg.psql("SELECT count(*) FROM kip.cpr_rewrite", db=db) == "0"
    assert pg.psql("SELECT count(*) FROM kip.plans WHERE left(citizen_cpr_enc, 12) = "
                   f"{_sql_literal(V2)}", db=db) == "40"
    after = _clear_on_disk(pg, db, cprs)
    assert not after, f"clear CPR numbers still on disk: {sorted(after)[:5]}"
    # and the numbers are all there, sealed
    admin = Api(k.url, k.admin_token(), name="admin")
    nurse = kiptest.create_user(admin, {"id": org}, ["coordinator"])
    for c in cprs[:5]:
        items = nurse.post("/v1/plans/search", json={"q": c}).json()["items"]
        assert len(items) == 1
        assert nurse.get(f"/v1/plans/{items[0]['id']}").json()["citizen"]["cpr"] == c
    # a second start has nothing to rewrite
    k.stop()
    k.start()
    assert len(_info(k, "rewrote the CPR tables")) == 1


def test_the_database_refuses_an_unbound_or_misbound_token(kipd_factory, pg):
    """kip.cpr_check_sealed, which plan_create and plan_patch call: a write
    of a version 1 token (a kipd from before the binding) or of a token
    bound to another plan id is refused with 503; the right one passes."""
    k = kipd_factory()
    plan = kiptest.create_plan(_nurse(k))
    enc, _ = _stored(pg, k.db, plan["id"])
    other = "7f00aa11-22bb-4c33-8d44-55ee66ff7788"

    def check(token, bound_to, plan_id):
        return pg.psql("SELECT kip.cpr_check_sealed(jsonb_build_object('cpr', '010190-****', "
                       f"'cpr_enc', {_sql_literal(token)}, 'cpr_plan_id', '{bound_to}'), '{plan_id}')", db=k.db)

    assert check(enc, plan["id"], plan["id"]) == ""
    for token, bound_to, plan_id in ((V1 + enc[len(V2):], plan["id"], plan["id"]),
                                     (enc, other, plan["id"]), (enc, plan["id"], other)):
        try:
            check(token, bound_to, plan_id)
        except RuntimeError as e:
            assert "not sealed for this plan" in str(e), e
        else:
            raise AssertionError(f"accepted: {token[:14]!r} bound to {bound_to} for {plan_id}")


def test_killed_while_resealing_leaves_nothing_half_done(kipd_factory, pg):
    """kill -9 of kipd while it re-seals 30,000 version 1 tokens: the
    transaction rolls back (every token still version 1 and still opening);
    the next start re-seals them all."""
    k = kipd_factory()
    nurse = _nurse(k)
    plan = kiptest.create_plan(nurse)
    k.stop()
    key_id, enc, mac = _current_key(k)
    cpr = plan["citizen"]["cpr"]
    token = _seal_v1(key_id, enc, cpr)        # version 1 is not bound: it opens in any row
    index = hmac.new(mac, cpr.encode(), hashlib.sha256).hexdigest()
    n = 30000
    pg.psql("SET session_replication_role = replica; "
            "INSERT INTO kip.plans (owner_organisation_id, coordinator_participant_id, citizen_name, citizen_cpr, "
            "citizen_cpr_enc, citizen_cpr_hmac, reason) "
            f"SELECT owner_organisation_id, gen_random_uuid(), 'Kopi', citizen_cpr, {_sql_literal(token)}, "
            f"'{index}', 'Kopi' FROM kip.plans, generate_series(1, {n}) WHERE id = '{plan['id']}'", db=k.db)
    v1_count = f"SELECT count(*) FROM kip.plans WHERE left(citizen_cpr_enc, 12) = {_sql_literal(V1)}"
    assert pg.psql(v1_count, db=k.db) == str(n)

    k.start(wait=False)
    seen = False
    deadline = time.monotonic() + 60
    while not seen and time.monotonic() < deadline and k.proc.poll() is None:
        # one of the re-seal's batch UPDATEs is running: kill now
        seen = pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%kip.plans p SET citizen_cpr_enc%' "
                       "AND state = 'active' AND pid <> pg_backend_pid()", db=k.db) != "0"
    assert seen, "the re-seal was not seen running"
    k.kill()
    assert pg.psql(v1_count, db=k.db) == str(n), "a killed re-seal must leave every row as it was"

    k.start()
    assert pg.psql(v1_count, db=k.db) == "0"
    assert [r["count"] for r in _info(k, "re-sealed CPR numbers bound to their plan")] == [n]
    some = pg.psql("SELECT id FROM kip.plans WHERE citizen_name = 'Kopi' LIMIT 1", db=k.db)
    assert pg.psql(f"SELECT left(citizen_cpr_enc, 12) = {_sql_literal(V2)} FROM kip.plans WHERE id = '{some}'",
                   db=k.db) == "t"


@pytest.mark.pg_timer   # the rewrite's lock_timeout ends a lock wait; see docs/testing.md
def test_a_blocked_rewrite_does_not_stop_kipd(kipd_factory, pg):
    """Another session holds a lock on kip.cpr_pending past the rewrite's
    30-second lock timeout: kipd starts all the same, logs what to run, and
    keeps the request; the next start rewrites."""
    k = kipd_factory()
    kiptest.create_plan(_nurse(k))
    k.stop()
    pg.psql("INSERT INTO kip.cpr_rewrite (reason) VALUES ('test')", db=k.db)
    holder = subprocess.Popen([str(kiptest.PG_BINDIR / "psql"), "-h", str(pg.sockdir), "-U", "postgres", "-d", k.db,
                               "-X", "-q", "-c", "BEGIN; LOCK TABLE kip.cpr_pending IN ACCESS SHARE MODE; "
                               "SELECT pg_sleep(120)"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=dict(os.environ, PGAPPNAME="cpr-lock-holder"))
    try:
        deadline = time.monotonic() + 10
        while pg.psql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                      "WHERE c.relname = 'cpr_pending' AND l.granted", db=k.db) == "0":
            assert time.monotonic() < deadline, "the lock holder did not start"
            time.sleep(0.05)
        k.start(timeout=90)
        warned = _warnings(k, "old row versions of the CPR tables are still on disk")
        assert warned and "lock timeout" in warned[-1]["error"] and "VACUUM (FULL) kip.plans" in warned[-1]["error"], \
            k.log_tail()
        assert pg.psql("SELECT count(*) FROM kip.cpr_rewrite", db=k.db) == "1"
        assert k.alive()
    finally:
        # the backend, not only psql: a sleeping backend does not notice its client is gone
        pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cpr-lock-holder'")
        holder.kill()
        holder.wait()
    k.stop()
    k.start()
    assert _info(k, "rewrote the CPR tables"), k.log_tail()
    assert pg.psql("SELECT count(*) FROM kip.cpr_rewrite", db=k.db) == "0"
