"""CPR numbers at rest: sealed with AES-256-GCM under a key file outside the
database, searched by an HMAC blind index, never in a dump (docs/cpr-encryption.md)."""

import json
import os
import shutil
import stat
import subprocess

import pytest

import kiptest
from kiptest import Api, Kipd, problem

TOKEN_PREFIX = "\x01kipd-cpr:2:"


def _dump(pg, db):
    r = subprocess.run([str(kiptest.PG_BINDIR / "pg_dump"), "-h", str(pg.sockdir), "-U", "postgres", "-d", db],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _key_file(k):
    args = k.base_args
    return args[args.index("--key-file") + 1]


def _rotate(k, extra=(), expect=0):
    """kipd --rotate-key with k's settings; returns (code, output)."""
    argv = [str(k.binary)] + [a for a in k.base_args] + ["--rotate-key"] + list(extra)
    env = dict(os.environ)
    env.update(k.env_extra)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    if expect is not None:
        assert r.returncode == expect, out
    return r.returncode, out


def _no_cpr(text, cprs):
    for c in cprs:
        digits = c.replace("-", "")
        assert c not in text and digits not in text, f"CPR {c[:6]}-**** found in clear"


def _stored(pg, db, pid):
    row = pg.psql(f"SELECT citizen_cpr || '|' || coalesce(citizen_cpr_enc, '') || '|' || "
                  f"coalesce(citizen_cpr_hmac, '') FROM kip.plans WHERE id = '{pid}'", db=db)
    return row.split("|")


def test_read_returns_the_number_and_the_column_holds_none(kipd, pg, coordinator, make_plan):
    cpr = kiptest.new_cpr()
    plan = make_plan(coordinator, cpr=cpr.replace("-", ""))
    assert plan["citizen"]["cpr"] == cpr
    got = coordinator.get(f"/v1/plans/{plan['id']}").json()
    assert got["citizen"]["cpr"] == cpr
    mask, enc, hmac = _stored(pg, kipd.db, plan["id"])
    assert mask == cpr[:6] + "-****"
    assert enc.startswith(TOKEN_PREFIX) and len(enc) == 81
    assert len(hmac) == 64 and all(c in "0123456789abcdef" for c in hmac)
    _no_cpr(enc + hmac, [cpr])
    # a fresh nonce each time: the same number seals differently
    other = make_plan(coordinator, cpr=cpr)
    _, enc2, hmac2 = _stored(pg, kipd.db, other["id"])
    assert enc2 != enc and hmac2 == hmac


def test_patch_and_null(kipd, pg, coordinator, make_plan):
    plan = make_plan(coordinator)
    url = f"/v1/plans/{plan['id']}"
    new = kiptest.new_cpr()
    r = coordinator.patch(url, json={"citizen": {"cpr": new}}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["citizen"]["cpr"] == new
    assert _stored(pg, kipd.db, plan["id"])[0] == new[:6] + "-****"
    r = coordinator.patch(url, json={"citizen": {"cpr": None}}, headers={"If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["citizen"]["cpr"] is None
    assert pg.psql(f"SELECT citizen_cpr IS NULL AND citizen_cpr_enc IS NULL AND citizen_cpr_hmac IS NULL "
                   f"FROM kip.plans WHERE id = '{plan['id']}'", db=kipd.db) == "t"
    hist = coordinator.get(url + "/history").json()["items"]
    cpr_rows = [h for h in hist if h["field"] == "citizen.cpr"]
    assert [(h["before"], h["after"]) for h in cpr_rows if h["operation"] == "update"] == [
        (plan["citizen"]["cpr"][:6] + "-****", new[:6] + "-****"), (new[:6] + "-****", None)] or \
        len(cpr_rows) == 3, hist
    assert all(not h["field"].startswith("citizen.cpr_") for h in hist), hist


def test_search_by_number_with_and_without_hyphen(coordinator, make_plan):
    plans = [make_plan(coordinator) for _ in range(4)]
    target = plans[2]
    cpr = target["citizen"]["cpr"]
    for q in (cpr, cpr.replace("-", ""), f" {cpr} "):
        items = coordinator.post("/v1/plans/search", json={"q": q}).json()["items"]
        assert [i["id"] for i in items] == [target["id"]], q
        assert items[0]["citizen"]["cpr"] == cpr[:6] + "-****"
    # a prefix or an impossible date finds nothing; a name still does
    assert coordinator.post("/v1/plans/search", json={"q": cpr[:6]}).json()["items"] == []
    assert coordinator.post("/v1/plans/search", json={"q": "320190-1234"}).json()["items"] == []
    name = target["citizen"]["name"]
    assert target["id"] in [i["id"] for i in coordinator.get("/v1/plans", params={"q": name}).json()["items"]]


def test_lists_show_the_mask(coordinator, make_plan):
    plan = make_plan(coordinator)
    cpr = plan["citizen"]["cpr"]
    r = coordinator.get("/v1/plans")
    item = [i for i in r.json()["items"] if i["id"] == plan["id"]][0]
    assert item["citizen"]["cpr"] == cpr[:6] + "-****"
    _no_cpr(r.text, [cpr])


def test_a_token_cannot_be_typed(kipd, pg, coordinator, make_plan):
    plan = make_plan(coordinator)
    _, enc, _ = _stored(pg, kipd.db, plan["id"])
    # the real token, with its control character: refused
    problem(coordinator.post("/v1/plans", json=kiptest.plan_body(reason=enc)), 400, "body")
    problem(coordinator.post("/v1/plans", json=kiptest.plan_body(reason="x\u0001y")), 400, "body")
    problem(coordinator.get("/v1/plans", params={"q": enc}), 400, "query")
    # without it: text like any other, returned verbatim, never decrypted
    for text in (enc[1:], "\\u0001" + enc[1:], '"' + enc[1:] + '"'):
        r = coordinator.post("/v1/plans", json=kiptest.plan_body(reason=text))
        assert r.status_code == 201, r.text
        assert r.json()["reason"] == text
        assert coordinator.get(f"/v1/plans/{r.json()['id']}").json()["reason"] == text


def test_dump_holds_no_cpr_number(kipd_factory, pg):
    k = kipd_factory()
    admin = Api(k.url, k.admin_token(), name="admin")
    nurse = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
    used = []
    for i in range(40):
        cpr = kiptest.new_cpr(hyphen=i % 2 == 0)
        used.append(cpr[:6] + "-" + cpr[-4:])
        plan = kiptest.create_plan(nurse, cpr=cpr)
        if i % 3 == 0:
            new = kiptest.new_cpr()
            used.append(new)
            r = nurse.patch(f"/v1/plans/{plan['id']}", json={"citizen": {"cpr": new.replace("-", "")}},
                            headers={"If-Match": '"1"'})
            assert r.status_code == 200, r.text
            assert r.json()["citizen"]["cpr"] == new
        nurse.get(f"/v1/plans/{plan['id']}")
        nurse.post("/v1/plans/search", json={"q": used[-1]})
    dump = _dump(pg, k.db)
    assert "citizen_cpr_enc" in dump and dump.count("kipd-cpr:2:") >= 40
    _no_cpr(dump, used)
    k.stop()


def test_key_file_is_created_0600(kipd_factory):
    k = kipd_factory()
    path = _key_file(k)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    ring = json.load(open(path))
    assert ring["version"] == 1 and len(ring["keys"]) == 1 and ring["current"] == ring["keys"][0]["id"]
    assert ring["keys"][0]["enc"] not in k.output_text()


def test_default_key_file_beside_the_admin_token(workroot, pg, new_db):
    d = kiptest.make_workdir(workroot, kiptest.unique("defkey-"))
    db = new_db()
    k = Kipd(d, ["--db", pg.url(db), "--admin-token-file", str(d / "admin-token"),
                 "--schema-dir", str(kiptest.SCHEMA_DIR)], token_file=d / "admin-token", name="defkey")
    with kiptest.running_kipd(k):
        assert stat.S_IMODE(os.stat(d / "cpr.key").st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_refuses_a_key_file_others_can_read(kipd_factory, mode):
    k = kipd_factory()
    path = _key_file(k)
    k.stop()
    os.chmod(path, mode)
    try:
        k.start(wait=False)
        code = k.wait_exit(30)
        assert code not in (None, 0), "kipd started with a key file others can read"
        assert path in k.output_text(), k.log_tail()
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, "kipd must not silently fix the mode"
    finally:
        os.chmod(path, 0o600)


def test_refuses_a_wrong_or_lost_key_file(kipd_factory, workroot):
    k = kipd_factory()
    admin = Api(k.url, k.admin_token(), name="admin")
    nurse = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
    kiptest.create_plan(nurse)
    other = kipd_factory()          # another database, another key
    path, foreign = _key_file(k), _key_file(other)
    k.stop()
    saved = open(path).read()
    try:
        shutil.copyfile(foreign, path)
        k.start(wait=False)
        assert k.wait_exit(30) not in (None, 0), "kipd started with another database's key file"
        assert "does not hold" in k.output_text(), k.log_tail()
        os.unlink(path)
        k.start(wait=False)
        assert k.wait_exit(30) not in (None, 0), "kipd started without its key file"
        assert "does not exist" in k.output_text(), k.log_tail()
        assert not os.path.exists(path), "kipd must not create a key file for an encrypted database"
    finally:
        with open(path, "w") as f:
            f.write(saved)
        os.chmod(path, 0o600)
    k.start()
    assert k.alive()


def test_rotate_key(kipd_factory, pg):
    k = kipd_factory()
    admin = Api(k.url, k.admin_token(), name="admin")
    nurse = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
    plans = [kiptest.create_plan(nurse) for _ in range(25)]
    path = _key_file(k)
    old_id = json.load(open(path))["current"]
    before = {p["id"]: _stored(pg, k.db, p["id"]) for p in plans}

    # refused while kipd runs
    code, out = _rotate(k, expect=None)
    assert code != 0 and "stop every kipd" in out, out
    assert json.load(open(path))["current"] == old_id

    k.stop()
    old_ring = json.load(open(path))
    _, out = _rotate(k)
    assert "rotated the CPR key" in out
    ring = json.load(open(path))
    for key in old_ring["keys"] + ring["keys"]:
        assert key["enc"] not in out and key["mac"] not in out, "key material in the output"
    _no_cpr(out, [p["citizen"]["cpr"] for p in plans])
    assert len(ring["keys"]) == 1 and ring["current"] != old_id, "the old key must be gone"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert pg.psql("SELECT string_agg(id, ',') FROM kip.cpr_keys WHERE is_current", db=k.db) == ring["current"]
    for p in plans:
        mask, enc, hmac = _stored(pg, k.db, p["id"])
        assert enc != before[p["id"]][1] and hmac != before[p["id"]][2]
        assert enc.split(":")[2] == ring["current"] and mask == before[p["id"]][0]
    # no history row for a re-encryption
    assert pg.psql("SELECT count(*) FROM kip.history WHERE field = 'citizen.cpr' AND operation = 'update'",
                   db=k.db) == "0"
    k.start()
    for p in plans[:5]:
        assert nurse.get(f"/v1/plans/{p['id']}").json()["citizen"]["cpr"] == p["citizen"]["cpr"]
    target = plans[7]
    assert [i["id"] for i in nurse.post("/v1/plans/search", json={"q": target["citizen"]["cpr"]}).json()["items"]] \
        == [target["id"]]
    new = kiptest.create_plan(nurse)
    assert _stored(pg, k.db, new["id"])[1].split(":")[2] == ring["current"]


def test_interrupted_rotation_still_reads(kipd_factory, pg):
    """The key file still lists the old key as current (a crash after the
    database switched): kipd follows the database."""
    k = kipd_factory()
    admin = Api(k.url, k.admin_token(), name="admin")
    nurse = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
    plan = kiptest.create_plan(nurse)
    path = _key_file(k)
    k.stop()
    old = json.load(open(path))
    _rotate(k)
    new = json.load(open(path))
    both = {"version": 1, "current": old["current"], "keys": old["keys"] + new["keys"]}
    with open(path, "w") as f:
        json.dump(both, f)
    k.start()
    assert nurse.get(f"/v1/plans/{plan['id']}").json()["citizen"]["cpr"] == plan["citizen"]["cpr"]
    again = kiptest.create_plan(nurse)
    assert _stored(pg, k.db, again["id"])[1].split(":")[2] == new["current"]
    assert nurse.get(f"/v1/plans/{again['id']}").json()["citizen"]["cpr"] == again["citizen"]["cpr"]


def test_existing_clear_numbers_are_sealed_at_start(workroot, pg, new_db, kipd_factory):
    """A database from before 010: its clear numbers move to kip.cpr_pending
    in the migration, and kipd seals them before it serves."""
    db = new_db()
    # The tables as they were before 010, and no functions or triggers (the
    # rows below are written directly).
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
    cprs = [kiptest.new_cpr() for _ in range(3)]
    org = pg.psql("INSERT INTO kip.organisations (name, sector) VALUES ('Gammel', 'municipality_social') "
                  "RETURNING id", db=db).splitlines()[0]
    for c in cprs:
        pg.psql(f"BEGIN; SET CONSTRAINTS ALL DEFERRED; "
                f"WITH p AS (INSERT INTO kip.plans (owner_organisation_id, coordinator_participant_id, "
                f"citizen_name, citizen_cpr, reason) VALUES ('{org}', gen_random_uuid(), 'Gammel Borger', '{c}', 'Gammel') "
                f"RETURNING id, coordinator_participant_id) "
                f"INSERT INTO kip.participants (id, plan_id, kind, name, role, organisation_id) "
                f"SELECT coordinator_participant_id, id, 'professional', 'Tovholder', 'social_nurse', '{org}' "
                f"FROM p; COMMIT", db=db)
    k = kipd_factory(db=db)
    assert pg.psql("SELECT count(*) FROM kip.cpr_pending", db=db) == "0"
    assert pg.psql("SELECT count(*) FROM kip.plans WHERE citizen_cpr_enc IS NOT NULL "
                   "AND citizen_cpr ~ '^[0-9]{6}-[*]{4}$'", db=db) == "3"
    assert pg.psql("SELECT count(*) FROM kip.history WHERE field = 'citizen.cpr' AND operation = 'update'",
                   db=db) == "0"
    _no_cpr(_dump(pg, db), cprs)
    admin = Api(k.url, k.admin_token(), name="admin")
    nurse = kiptest.create_user(admin, {"id": org}, ["coordinator"])
    for c in cprs:
        items = nurse.post("/v1/plans/search", json={"q": c}).json()["items"]
        assert len(items) == 1
        assert nurse.get(f"/v1/plans/{items[0]['id']}").json()["citizen"]["cpr"] == c


def test_rotate_key_embedded(workroot):
    base = kiptest.make_workdir(workroot, kiptest.unique("embrot-"))
    k = Kipd.embedded(base, base / "data", name="embrot")
    with kiptest.running_kipd(k):
        admin = Api(k.url, k.admin_token(), name="admin")
        nurse = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
        plan = kiptest.create_plan(nurse)
        key_file = base / "data" / "cpr.key"
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        old = json.load(open(key_file))["current"]
        code, out = _rotate(k, expect=None)
        assert code != 0 and "stop kipd first" in out, out
        k.stop()
        _, out = _rotate(k)
        assert json.load(open(key_file))["current"] != old
        k.start()
        assert nurse.get(f"/v1/plans/{plan['id']}").json()["citizen"]["cpr"] == plan["citizen"]["cpr"]
