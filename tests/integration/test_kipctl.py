"""kipctl, the command-line client, run as a real binary against a real kipd.

Every command is run; --json output must parse; exit codes are 0 (done),
1 (kipd refused, or no answer) and 2 (usage or configuration error). No
output of any run may hold the token kipctl authenticates with or a
password; the only secret ever printed is a new token, by `token create`.
"""

import json
import os
import re
import pty
import select
import stat
import subprocess
import time
from pathlib import Path

import pytest

import kiptest
from kiptest import Api


def _kipctl_bin():
    value = os.environ.get("KIPCTL_BIN")
    if value:
        return Path(value)
    return kiptest.KIPD_BIN.parent.parent / "clients" / "kipctl" / "kipctl"


KIPCTL = _kipctl_bin()
PASSWORD = "korrekt hest batteri hæftning"
PASSWORD2 = "et helt andet kodeord 2026"



def assert_no_secret(args, text, token):
    """No output holds the token kipctl authenticated with or a password;
    a token appears only in the output of `token create`."""
    if token:
        assert token not in text, args
    assert PASSWORD not in text and PASSWORD2 not in text, args
    if "create" not in args:
        assert "kipd_" not in text, (args, text)


class Run:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"<exit {self.code}\nstdout: {self.out}\nstderr: {self.err}>"


@pytest.fixture(scope="module")
def home(workroot):
    d = kiptest.make_workdir(workroot, kiptest.unique("kipctl-home-"))
    return Path(d)


@pytest.fixture(scope="module")
def kipctl(kipd, admin, home):
    """kipctl(*args, token=admin's, url=kipd's, stdin=None, env=None)."""
    assert KIPCTL.exists(), f"{KIPCTL} is not built"

    def run(*args, token=admin.token, url=kipd.url, stdin=None, env=None):
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8"}
        if url is not None:
            e["KIP_URL"] = url
        if token is not None:
            e["KIP_TOKEN"] = token
        e.update(env or {})
        p = subprocess.run([str(KIPCTL), *args], input=stdin, capture_output=True, text=True,
                           env=e, timeout=60)
        r = Run(p)
        assert_no_secret(args, r.out + r.err, token)
        return r
    return run


def ok(r):
    assert r.code == 0, r
    return r


def api_error(r, *words):
    """Exit 1 and one clear line on stderr naming the words."""
    assert r.code == 1, r
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r
    for w in words:
        assert w in lines[0], r
    return lines[0]


def usage_error(r):
    assert r.code == 2, r
    assert r.err.startswith("kipctl: "), r
    return r


ALL_COMMANDS = [["org", "add"], ["org", "list"], ["user", "add"], ["user", "list"], ["user", "show"],
                ["user", "deactivate"], ["user", "set-password"], ["token", "create"],
                ["token", "list"], ["token", "revoke"], ["plan", "get"], ["plan", "export"],
                ["audit", "verify"], ["health"]]


# ----------------------------------------------------------------- usage

def test_help_on_every_command(kipctl):
    top = ok(kipctl("--help", token=None, url=None))
    for cmd in ALL_COMMANDS:
        assert " ".join(cmd) in top.out
        r = ok(kipctl(*cmd, "--help", token=None, url=None))
        assert r.out.startswith("usage: kipctl " + " ".join(cmd)), r
        assert r.err == ""
    for group in ("org", "user", "token", "plan", "audit"):
        r = ok(kipctl(group, "--help", token=None, url=None))
        assert "Commands:" in r.out
    assert ok(kipctl("--version", token=None, url=None)).out.startswith("kipctl ")


def test_usage_errors_exit_2(kipctl):
    usage_error(kipctl())
    usage_error(kipctl("frobnicate"))
    usage_error(kipctl("user"))
    usage_error(kipctl("user", "frobnicate"))
    usage_error(kipctl("user", "show"))                       # missing USER
    usage_error(kipctl("user", "show", "a", "b"))             # one too many
    usage_error(kipctl("org", "add", "--name", "X"))          # no --sector
    usage_error(kipctl("org", "list", "--bogus"))
    usage_error(kipctl("token", "create", "admin"))           # no --name
    usage_error(kipctl("plan", "export", "x", "--format", "pdf"))
    r = usage_error(kipctl("user", "add", "--username", "x"))
    assert "usage: kipctl user add" in r.err
    usage_error(kipctl("health", url="ftp://example.org"))


# ---------------------------------------------------------------- health

def test_health(kipctl, kipd):
    r = ok(kipctl("health", token=None))
    assert "ready" in r.out
    j = ok(kipctl("--json", "health", token=None)).json()
    assert j["ok"] is True and j["healthz"]["status"] == 200 and j["readyz"]["status"] == 200
    assert j["readyz"]["body"]["status"] == "ready"
    # Nobody listens there: exit 1 and one line.
    dead = f"http://127.0.0.1:{kiptest.free_port()}"
    api_error(kipctl("health", url=dead), "no answer from", dead)


# ---------------------------------------------------------- organisations

def test_org_add_and_list(kipctl):
    name = f"Hvidovre Hospital {kiptest.unique('')}"
    r = ok(kipctl("org", "add", "--name", name, "--sector", "region_hospital", "--cvr", "12345678"))
    assert name in r.out and "region_hospital" in r.out
    j = ok(kipctl("org", "add", "--json", "--name", name + " 2", "--sector", "municipality_social")).json()
    assert kiptest.UUID_RE.match(j["id"]) and j["sector"] == "municipality_social"
    listed = ok(kipctl("org", "list", "--json")).json()
    assert j["id"] in {o["id"] for o in listed}
    table = ok(kipctl("org", "list")).out.splitlines()
    assert table[0].split() == ["ID", "NAME", "SECTOR", "CVR", "EAN"]
    assert any(j["id"] in line and name + " 2" in line for line in table[1:])


def test_api_error_is_one_line_with_the_field(kipctl):
    line = api_error(kipctl("org", "add", "--name", "X", "--sector", "moon_base"), "sector", "HTTP 422")
    assert line.startswith("kipctl: ")
    r = kipctl("--json", "org", "add", "--name", "X", "--sector", "moon_base")
    assert r.code == 1
    problem = r.json()
    assert problem["status"] == 422 and "sector" in [e["field"] for e in problem["errors"]]
    api_error(kipctl("org", "list", token="kipd_" + "x" * 43), "HTTP 401")


# ------------------------------------------------------------------ users

def test_user_add_list_show_deactivate(kipctl, make_org, admin):
    org = make_org()
    username = kiptest.unique("sofie")
    r = ok(kipctl("user", "add", "--username", username, "--display-name", "Sofie Sygeplejerske Ærø",
                  "--org", org["id"], "--role", "coordinator,caseworker", "--email", "sofie@example.dk"))
    assert username in r.out and "Ærø" in r.out
    user = ok(kipctl("user", "show", username, "--json")).json()
    assert user["username"] == username and user["roles"] == ["caseworker", "coordinator"]
    assert ok(kipctl("user", "show", user["id"], "--json")).json() == user
    listed = ok(kipctl("user", "list", "--org", org["id"], "--json")).json()
    assert [u["id"] for u in listed] == [user["id"]]
    table = ok(kipctl("user", "list", "--org", org["id"])).out.splitlines()
    assert table[0].split()[:3] == ["ID", "USERNAME", "NAME"] and username in table[1]
    api_error(kipctl("user", "show", "nobody-here"), "nobody-here")
    api_error(kipctl("user", "add", "--username", username, "--display-name", "Dup", "--org", org["id"],
                     "--role", "caseworker"), "username", "HTTP 409")

    # A token of the user works until the user is deactivated.
    tok = ok(kipctl("token", "create", username, "--name", "laptop", "--json")).json()
    me = admin.with_token(tok["token"])
    assert me.get("/v1/me").status_code == 200
    d = ok(kipctl("user", "deactivate", username, "--json")).json()
    assert d["active"] is False
    assert me.get("/v1/me").status_code == 401
    # A coordinator may not deactivate anyone.
    other = kiptest.create_user(admin, org, ["coordinator"])
    api_error(kipctl("user", "deactivate", user["id"], token=other.token), "HTTP 403")


def _sign_in(kipd, username, password):
    s = Api(kipd.url, None, name=username)
    r = s.post("/v1/session", json={"username": username, "password": password})
    return s, r


def test_user_add_with_password_and_set_password(kipctl, kipd, make_org, admin):
    org = make_org()
    username = kiptest.unique("nurse")
    ok(kipctl("user", "add", "--username", username, "--display-name", "N", "--org", org["id"],
              "--role", "coordinator", "--password-stdin", stdin=PASSWORD + "\n"))
    s1, r = _sign_in(kipd, username, PASSWORD)
    assert r.status_code == 201, r.text
    assert s1.get("/v1/me").status_code == 200

    # A weak password: one line naming the field; nothing changes.
    api_error(kipctl("user", "set-password", username, "--password-stdin", stdin="short\n"),
              "password", "HTTP 422")
    assert s1.get("/v1/me").status_code == 200
    # Not an admin: 403, before any hashing.
    nurse = kiptest.create_user(admin, org, ["coordinator"])
    api_error(kipctl("user", "set-password", username, "--password-stdin", stdin=PASSWORD2 + "\n",
                     token=nurse.token), "HTTP 403")
    # An empty stdin is a usage error.
    usage_error(kipctl("user", "set-password", username, "--password-stdin", stdin=""))

    r = ok(kipctl("user", "set-password", username, "--password-stdin", stdin=PASSWORD2 + "\n"))
    assert "sessions have ended" in r.out
    # The old session ended; the old password no longer works; the new one does.
    assert s1.get("/v1/me").status_code == 401
    assert _sign_in(kipd, username, PASSWORD)[1].status_code == 401
    assert _sign_in(kipd, username, PASSWORD2)[1].status_code == 201
    j = ok(kipctl("user", "set-password", username, "--password-stdin", "--json",
                  stdin=PASSWORD + "\n")).json()
    assert j["password_set"] is True and kiptest.UUID_RE.match(j["user_id"])

    # Audited, with the admin as the actor.
    auditor = kiptest.create_user(admin, org, ["auditor"])
    rows = auditor.get("/v1/audit", params={"action": "user.password_reset"}).json()["items"]
    admin_id = admin.get("/v1/me").json()["id"]
    assert len(rows) >= 2 and all(row["user_id"] == admin_id for row in rows)


def test_set_password_route_directly(admin, kipd, make_org):
    """PUT /v1/users/{id}/password: 404 for an unknown user, 400 for an
    unknown field, 422 naming password; it unlocks a locked username."""
    org = make_org()
    u = kiptest.create_user(admin, org, ["caseworker"], password=PASSWORD)
    uid = u.get("/v1/me").json()["id"]
    kiptest.problem(admin.put(f"/v1/users/{kiptest.uuid.uuid4()}/password", json={"password": PASSWORD2}), 404)
    kiptest.problem(admin.put(f"/v1/users/{uid}/password", json={"password": PASSWORD2, "x": 1}), 400)
    kiptest.problem(admin.put(f"/v1/users/{uid}/password", json={}), 422, field="password")
    kiptest.problem(u.put(f"/v1/users/{uid}/password", json={"password": PASSWORD2}), 403)
    name = u.get("/v1/me").json()["username"]
    for _ in range(6):
        _sign_in(kipd, name, "wrong password, wrong")
    # Locked now: even the right password fails, until an admin resets it.
    assert _sign_in(kipd, name, PASSWORD)[1].status_code == 401
    assert admin.put(f"/v1/users/{uid}/password", json={"password": PASSWORD2}).status_code == 204
    assert _sign_in(kipd, name, PASSWORD2)[1].status_code == 201


def test_password_from_the_terminal_is_not_echoed(kipd, admin, make_org, home):
    """Without --password-stdin kipctl asks on the terminal, twice, with echo off."""
    org = make_org()
    username = kiptest.unique("tty")
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update({"KIP_URL": kipd.url, "KIP_TOKEN": admin.token, "HOME": str(home)})
        os.execv(str(KIPCTL), [str(KIPCTL), "user", "add", "--username", username, "--display-name", "T",
                               "--org", org["id"], "--role", "caseworker", "--password"])
    seen = b""

    def read_until(marker, timeout=15):
        nonlocal seen
        end = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
        assert marker in seen, seen

    read_until(b"New password: ")
    os.write(fd, (PASSWORD + "\n").encode())
    read_until(b"Repeat it: ")
    os.write(fd, (PASSWORD + "\n").encode())
    read_until(username.encode())
    _, status = os.waitpid(pid, 0)
    try:
        while select.select([fd], [], [], 0.2)[0]:
            seen += os.read(fd, 4096)
    except OSError:
        pass
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert PASSWORD.encode() not in seen
    assert_no_secret(("user", "add"), seen.decode(errors="replace"), admin.token)
    assert _sign_in(kipd, username, PASSWORD)[1].status_code == 201


# ----------------------------------------------------------------- tokens

def test_token_create_list_revoke(kipctl, make_org, admin):
    org = make_org()
    user = kiptest.create_user(admin, org, ["caseworker"])
    uid = user.get("/v1/me").json()["id"]
    r = ok(kipctl("token", "create", uid, "--name", "ci"))
    secret = [line.split()[-1] for line in r.out.splitlines() if line.startswith("token:")][0]
    assert kiptest.TOKEN_RE.match(secret)
    kiptest.remember_secret(secret)
    assert "only this once" in r.err
    assert admin.with_token(secret).get("/v1/me").json()["id"] == uid
    created = ok(kipctl("token", "create", uid, "--name", "ci2", "--json",
                        "--expires-at", "2099-01-01T00:00:00Z")).json()
    kiptest.remember_secret(created["token"])

    listed = ok(kipctl("token", "list", uid, "--json")).json()
    assert {"ci", "ci2"} <= {t["name"] for t in listed}
    table = ok(kipctl("token", "list", uid))
    for out in (json.dumps(listed), table.out + table.err):
        assert secret not in out and created["token"] not in out

    tid = [t["id"] for t in listed if t["name"] == "ci"][0]
    r = ok(kipctl("token", "revoke", tid))
    assert tid in r.out
    assert admin.with_token(secret).get("/v1/me").status_code == 401
    j = ok(kipctl("token", "revoke", created["id"], "--json")).json()
    assert j == {"id": created["id"], "revoked": True}
    api_error(kipctl("token", "revoke", "not-a-uuid"), "HTTP 404")


# ------------------------------------------------------------------ plans

def test_plan_get_and_export(kipctl, make_org, admin, home):
    org = make_org("region_hospital")
    nurse = kiptest.create_user(admin, org, ["coordinator"])
    plan = kiptest.create_plan(nurse, name="Jens Ærø Hansen")
    r = ok(kipctl("plan", "get", plan["id"], token=nurse.token))
    assert plan["id"] in r.out and "Jens Ærø Hansen" in r.out and "status:" in r.out
    doc = ok(kipctl("plan", "get", plan["id"], "--json", token=nurse.token)).json()
    assert doc["id"] == plan["id"] and doc["version"] == plan["version"]

    out = home / f"plan-{plan['id']}.json"
    r = ok(kipctl("plan", "export", plan["id"], "--output", str(out), token=nurse.token))
    assert str(out) in r.out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    exported = json.loads(out.read_text())
    assert exported["id"] == plan["id"] and exported["citizen"] == doc["citizen"]
    # To stdout without --output.
    assert ok(kipctl("plan", "export", plan["id"], token=nurse.token)).json()["id"] == plan["id"]
    # The FHIR R4 Bundle of the same plan (docs/fhir.md), also 0600.
    fout = home / "plan.fhir.json"
    ok(kipctl("plan", "export", plan["id"], "--format", "fhir", "--output", str(fout), token=nurse.token))
    assert stat.S_IMODE(fout.stat().st_mode) == 0o600
    bundle = json.loads(fout.read_text())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    careplan = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    assert careplan["id"] == plan["id"]

    # Someone who may not see the plan: 404, as for a plan that does not exist.
    stranger = kiptest.create_user(admin, make_org(), ["coordinator"])
    api_error(kipctl("plan", "get", plan["id"], token=stranger.token), "HTTP 404")
    api_error(kipctl("plan", "export", plan["id"], token=stranger.token), "HTTP 404")


# ------------------------------------------------------------------ audit

def test_audit_verify(kipctl, make_org, admin):
    auditor = kiptest.create_user(admin, make_org(), ["auditor"])
    r = ok(kipctl("audit", "verify", token=auditor.token))
    assert "ok:" in r.out and "yes" in r.out
    j = ok(kipctl("audit", "verify", "--json", "--grace-seconds", "60", token=auditor.token)).json()
    assert j["ok"] is True and j["checked"] >= 0
    api_error(kipctl("audit", "verify"), "HTTP 403")       # the admin is no auditor
    # From the checkpoint the first verification recorded on.
    j = ok(kipctl("audit", "verify", "--json", token=auditor.token)).json()
    assert j["mode"] == "incremental" and j["from"]["seq"] >= 1
    # --full: the whole chain, walked by kipd in the background, waited for.
    r = ok(kipctl("audit", "verify", "--full", token=auditor.token))
    assert re.search(r"^mode:\s+full$", r.out, re.M) and re.search(r"^steps:\s+[1-9]", r.out, re.M), r.out
    j = ok(kipctl("audit", "verify", "--full", "--json", token=auditor.token)).json()
    assert j["status"] == "done" and j["result"]["ok"] is True and j["result"]["mode"] == "full"
    j = ok(kipctl("audit", "verify", "--full", "--no-wait", "--json", token=auditor.token)).json()
    assert j["mode"] == "full" and kiptest.UUID_RE.match(j["id"])
    usage_error(kipctl("audit", "verify", "--no-wait", token=auditor.token))
    api_error(kipctl("audit", "verify", "--full"), "HTTP 403")


# ------------------------------------------------------------ config file

def test_config_file(kipctl, kipd, admin, home, tmp_path):
    cfg = tmp_path / "kipctl.json"
    cfg.write_text(json.dumps({"url": kipd.url, "token": admin.token}))
    cfg.chmod(0o600)
    r = ok(kipctl("--config", str(cfg), "org", "list", "--json", token=None, url=None))
    assert isinstance(r.json(), list)

    # The default place: $XDG_CONFIG_HOME/kipctl/config.json, else ~/.config/...
    xdg = tmp_path / "xdg"
    (xdg / "kipctl").mkdir(parents=True)
    default = xdg / "kipctl" / "config.json"
    default.write_text(cfg.read_text())
    default.chmod(0o600)
    ok(kipctl("org", "list", token=None, url=None, env={"XDG_CONFIG_HOME": str(xdg)}))

    # Group- or world-readable: refused with a clear message, exit 2.
    for mode in (0o640, 0o604, 0o660):
        cfg.chmod(mode)
        r = usage_error(kipctl("--config", str(cfg), "org", "list", token=None, url=None))
        assert "chmod 600" in r.err and str(cfg) in r.err and r.out == ""
        default.chmod(mode)
        usage_error(kipctl("org", "list", token=None, url=None, env={"XDG_CONFIG_HOME": str(xdg)}))
    cfg.chmod(0o600)

    # A missing --config file, bad JSON, an unknown key: exit 2.
    usage_error(kipctl("--config", str(tmp_path / "none.json"), "org", "list", token=None))
    cfg.write_text("{url: nope")
    usage_error(kipctl("--config", str(cfg), "org", "list", token=None))
    cfg.write_text(json.dumps({"url": kipd.url, "password": "x"}))
    usage_error(kipctl("--config", str(cfg), "org", "list", token=None))

    # KIP_TOKEN wins over the file.
    cfg.write_text(json.dumps({"url": kipd.url, "token": "kipd_" + "y" * 43}))
    api_error(kipctl("--config", str(cfg), "org", "list", token=None, url=None), "HTTP 401")
    ok(kipctl("--config", str(cfg), "org", "list", url=None))
    # --help needs no configuration at all.
    cfg.chmod(0o644)
    ok(kipctl("--config", str(cfg), "org", "list", "--help"))


def test_man_page_names_every_command():
    man = (kiptest.ROOT / "docs" / "kipctl.1").read_text()
    for cmd in ALL_COMMANDS:
        assert ".B " + " ".join(cmd).replace("-", "\\-") in man, cmd
