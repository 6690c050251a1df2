"""kipd --backup and kipd --restore for the embedded cluster (issue #17,
docs/operations.md "Backup and restore").

One embedded kipd gets plans with CPR numbers, participants, actions,
meetings and audit rows through the API; kipd --backup runs while a thread
keeps writing; the dump is restored into a fresh data folder with a copy of
the key file, and a kipd started on it serves every plan acknowledged before
the backup began, with its CPR number, and a verifying audit chain.
"""

import base64
import json
import os
import shutil
import stat
import subprocess
import threading
import time
import uuid

import kiptest
from kiptest import Api, Kipd


def _kipd_cli(k, data_dir, *extra, timeout=300):
    """kipd with k's binary and schema folder on data_dir; returns (code, output)."""
    argv = [str(k.binary), "--data-dir", str(data_dir), "--schema-dir", str(kiptest.SCHEMA_DIR)] + list(extra)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("KIPD_") or name == "KIPD_PG_BINDIR"}
    env["KIPD_PG_NOSYNC"] = "1"
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL, cwd=k.workdir)
    return r.returncode, r.stdout + r.stderr


def _fill(nurse, n):
    """n plans, each with a participant, an action and a meeting; returns {plan id: cpr}."""
    made = {}
    for i in range(n):
        cpr = kiptest.new_cpr()
        plan = kiptest.create_plan(nurse, cpr=cpr)
        made[plan["id"]] = cpr
        r = nurse.post(f"/v1/plans/{plan['id']}/participants",
                       json={"kind": "professional", "role": "caseworker", "name": f"Fagperson {i}"})
        assert r.status_code == 201, r.text
        part = r.json()
        r = nurse.post(f"/v1/plans/{plan['id']}/actions",
                       json={"title": f"Opgave {i}", "area": "housing",
                             "responsible_participant_id": part["id"]})
        assert r.status_code == 201, r.text
        r = nurse.post(f"/v1/plans/{plan['id']}/meetings",
                       json={"starts_at": kiptest.cph(7 + i, 10).isoformat(),
                             "location": {"kind": "hospital", "address": "Bispebjerg Bakke 23",
                                          "room": "Lokale 4"},
                             "purpose": "Koordinering af behandling og bolig"})
        assert r.status_code == 201, r.text
        assert nurse.get(f"/v1/plans/{plan['id']}").status_code == 200  # an audited read
    return made


class Writer(threading.Thread):
    """Creates plans until stopped; acked holds (time acknowledged, id, cpr)."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client, self.acked, self.errors = client, [], []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            cpr = kiptest.new_cpr()
            try:
                r = self.client.post("/v1/plans", json=kiptest.plan_body(cpr=cpr))
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
                continue
            if r.status_code != 201:
                self.errors.append(f"{r.status_code} {r.text[:200]}")
                continue
            self.acked.append((time.monotonic(), r.json()["id"], cpr))


def _key_strings(key_file):
    """Every secret string of the keyring, in its file's base64 and raw."""
    ring = json.load(open(key_file))
    found = []
    for key in ring["keys"]:
        for name, value in key.items():
            if name == "id" or not isinstance(value, str) or len(value) < 16:
                continue
            found.append(value.encode())
            try:
                found.append(base64.b64decode(value, validate=True))
            except ValueError:
                pass
    assert found, f"no key material found in {key_file}"
    return found


def test_backup_while_writing_and_restore(workroot):
    base = kiptest.make_workdir(workroot, kiptest.unique("backup-"))
    data = base / "data"
    k = Kipd.embedded(base, data, name="backup")
    backup = base / "kipd.dump"
    restored = base / "restored"
    with kiptest.running_kipd(k):
        admin = Api(k.url, k.admin_token(), name="admin")
        org = kiptest.create_org(admin)
        nurse = kiptest.create_user(admin, org, ["coordinator"])
        auditor = kiptest.create_user(admin, org, ["auditor"])
        made = _fill(nurse, 8)

        writer = Writer(Api(k.url, nurse.token, name="writer"))
        writer.start()
        kiptest.wait_until(lambda: len(writer.acked) >= 3, 30, what="writes to flow")
        started = time.monotonic()
        before = dict(made)
        before.update({pid: cpr for t, pid, cpr in list(writer.acked) if t < started})
        old_umask = os.umask(0)  # the dump must be 0600 even under a permissive umask
        try:
            code, out = _kipd_cli(k, data, "--backup", str(backup))
        finally:
            os.umask(old_umask)
        ended = time.monotonic()
        kiptest.wait_until(lambda: any(t > ended for t, _, _ in writer.acked), 30,
                           what="writes after the backup")
        writer.halt.set()
        writer.join(30)
        assert code == 0, out
        assert "backup written" in out and '"online": true' in out.replace('"online":true', '"online": true'), out
        assert not writer.errors, writer.errors[:3]
        assert any(started < t < ended for t, _, _ in writer.acked), "no write ran during the backup"

        # The file: 0600, never overwritten, no key material, no clear CPR number.
        assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
        code, out = _kipd_cli(k, data, "--backup", str(backup))
        assert code != 0 and "already exists" in out, out
        raw = backup.read_bytes()
        sql = subprocess.run([str(kiptest.PG_BINDIR / "pg_restore"), "-f", "-", str(backup)],
                             capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        assert sql.returncode == 0, sql.stderr
        text = sql.stdout
        assert b"kip.plans" in text and b"kipd-cpr:2:" in text, "the dump holds no sealed CPR number"
        key_file = data / "cpr.key"
        for secret in _key_strings(key_file):
            assert secret not in raw and secret not in text, "key material in the backup"
        all_cprs = list(before.values()) + [cpr for _, _, cpr in writer.acked]
        for cpr in all_cprs:
            assert cpr.encode() not in text and cpr.replace("-", "").encode() not in text, \
                "a CPR number in clear in the backup"

        # A restore refuses a folder that is not empty.
        code, out = _kipd_cli(k, data, "--restore", str(backup))
        assert code != 0 and "not empty" in out, out

        code, out = _kipd_cli(k, restored, "--restore", str(backup))
        assert code == 0, out
        assert "restored" in out
        saved_key = base / "cpr.key.saved"
        shutil.copyfile(key_file, saved_key)

    # The original kipd is stopped; the restored folder gets the saved key file.
    shutil.copyfile(saved_key, restored / "cpr.key")
    os.chmod(restored / "cpr.key", 0o600)
    k2 = Kipd.embedded(base, restored, name="restored")
    with kiptest.running_kipd(k2):
        nurse2 = Api(k2.url, nurse.token, name="nurse-restored")
        for pid, cpr in before.items():
            r = nurse2.get(f"/v1/plans/{pid}")
            assert r.status_code == 200, f"plan {pid} acknowledged before the backup is missing: {r.text}"
            assert r.json()["citizen"]["cpr"] == cpr
        for pid in made:
            doc = nurse2.get(f"/v1/plans/{pid}").json()
            assert nurse2.get(f"/v1/plans/{pid}/meetings").status_code == 200
            assert doc["id"] == pid
        # Writes during the backup: either all there or not at all, and readable.
        present = 0
        for _, pid, cpr in writer.acked:
            r = nurse2.get(f"/v1/plans/{pid}")
            assert r.status_code in (200, 404), r.text
            if r.status_code == 200:
                present += 1
                assert r.json()["citizen"]["cpr"] == cpr
        assert present >= len(before) - len(made)
        aud = Api(k2.url, auditor.token, name="auditor-restored")
        r = aud.get("/v1/audit/verify")
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True, r.json()
        # Still writable after the restore.
        plan = kiptest.create_plan(nurse2)
        assert nurse2.get(f"/v1/plans/{plan['id']}").json()["citizen"]["cpr"] == plan["citizen"]["cpr"]


def test_restore_without_the_key_file_refuses_to_start(workroot):
    """A restored database with another key file: kipd refuses to start
    rather than serve unreadable CPR numbers."""
    base = kiptest.make_workdir(workroot, kiptest.unique("backup-nokey-"))
    k = Kipd.embedded(base, base / "data", name="nokey")
    backup = base / "offline.dump"
    with kiptest.running_kipd(k):
        admin = Api(k.url, k.admin_token(), name="admin")
        nurse = kiptest.create_user(admin, kiptest.create_org(admin), ["coordinator"])
        kiptest.create_plan(nurse)
    # Offline: kipd is stopped, the cluster is started just for the dump.
    code, out = _kipd_cli(k, base / "data", "--backup", str(backup))
    assert code == 0, out
    assert '"online": false' in out.replace('"online":false', '"online": false'), out
    assert kiptest.read_postmaster_pid(base / "data" / "pg") is None, "the cluster was left running"
    not_a_dump = base / "not-a-dump"
    not_a_dump.write_text("SELECT 1;\n")
    code, out = _kipd_cli(k, base / "again", "--restore", str(not_a_dump))
    assert code != 0 and "not a kipd --backup" in out, out
    assert not (base / "again").exists(), "a refused restore left a data folder behind"
    code, out = _kipd_cli(k, base / "again", "--restore", str(backup))
    assert code == 0, out
    k2 = Kipd.embedded(base, base / "again", name="again-nokey")
    try:
        # No cpr.key: kipd would create a new key; the database holds CPR
        # numbers under the old one, so it must refuse.
        try:
            k2.start()
            started = True
        except AssertionError:
            started = False
        assert not started, "kipd served a restored database without its key file"
        assert "key" in k2.output_text().lower()
    finally:
        k2.cleanup()
