"""Helpers for kipd's black-box integration tests.

- PgCluster: a throwaway PostgreSQL (initdb -A trust --nosync, unix socket
  only), run as the `postgres` system user when the tests run as root.
- Kipd: one kipd process: start, wait until /healthz answers, stop with
  SIGTERM (exit code 0 asserted), kill -9, restart; stderr captured line by
  line and parsed as JSON on demand.
- Api: a requests.Session that adds the bearer token and checks every
  response: X-Request-Id present (and echoed when we sent a sane one), and
  the status, media type and JSON body documented in api/openapi.yaml.
- RawHttp: a raw-socket HTTP/1.1 client for keep-alive, pipelining, chunked
  bodies, slowloris and oversized requests.
- The clock: cph(), cph_today(), ago(), from_now(), add_months(). A test says
  what it means ("yesterday at 10:00 Copenhagen time", "an hour ago"), never a
  wall-clock hour of today or a fixed +01:00 offset, so that it holds at any
  hour and date (scripts/test --clock-matrix runs the suite at the hard ones).
"""

import contextlib
import datetime
import json
import os
import pwd
import re
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import requests

from openapi_check import ContractError, OpenApi

ROOT = Path(__file__).resolve().parents[2]


def _kipd_bin():
    value = os.environ.get("KIPD_BIN")
    if not value:
        return ROOT / "build" / "daemon" / "kipd"
    p = Path(value)
    return p if p.is_absolute() else ROOT / p


KIPD_BIN = _kipd_bin()
PG_BINDIR = Path(os.environ.get("KIPD_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
SCHEMA_DIR = ROOT / "schema"
OPENAPI_PATH = ROOT / "api" / "openapi.yaml"
IS_ROOT = os.geteuid() == 0
PG_SYSTEM_USER = "postgres"
# No single request in these tests may take longer; kipd within START_TIMEOUT.
# The valgrind smoke run (scripts/test) raises both: memcheck is ~20x slower.
HTTP_TIMEOUT = float(os.environ.get("KIPD_TEST_HTTP_TIMEOUT", "10"))
START_TIMEOUT = float(os.environ.get("KIPD_TEST_START_TIMEOUT", "20"))  # external-DB kipd: /healthz
EMBEDDED_START_TIMEOUT = 60.0

CONTRACT = OpenApi(OPENAPI_PATH)


# ------------------------------------------------------------------ clock
# kipd decides "today", "overdue" and "due" in Europe/Copenhagen, whatever
# the server's or the session's time zone. So do these helpers.
CPH = ZoneInfo("Europe/Copenhagen")
UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)
# Set by scripts/test --clock-matrix/--clock-instant: the UTC instant the
# shifted clock started at (libfaketime, see docs/testing.md).
CLOCK_INSTANT = os.environ.get("KIPD_TEST_CLOCK") or None


def now_utc():
    """This instant, aware, in UTC, to the microsecond."""
    return datetime.datetime.now(UTC)


def cph_now():
    """This instant as Copenhagen wall-clock time (aware)."""
    return datetime.datetime.now(CPH)


def cph_today():
    """Today's date in Copenhagen, which is what kipd calls today. Not
    date.today() (the machine's zone) and not the UTC date: between 22:00 or
    23:00 UTC and midnight they differ."""
    return cph_now().date()


def cph(days=0, hour=10, minute=0):
    """`days` calendar days from today in Copenhagen, at hour:minute
    Copenhagen wall-clock time, e.g. cph(-1, 10) is "yesterday at 10:00
    Copenhagen time" and cph(7, 9) "a week from today at 09:00". Calendar
    days, not 24-hour steps, so the result keeps its wall-clock hour across a
    daylight-saving change (its UTC offset is the one of that date). Keep
    `hour` outside 02:00-03:00, which a DST night skips or repeats."""
    assert not 2 <= hour < 3, "02:00-03:00 Copenhagen time is skipped or repeated on DST nights"
    d = cph_today() + days * DAY
    return datetime.datetime(d.year, d.month, d.day, hour, minute, tzinfo=CPH)


def ago(**delta):
    """An elapsed time before now, e.g. ago(hours=1): "an hour ago" (UTC)."""
    return now_utc() - datetime.timedelta(**delta)


def from_now(**delta):
    """An elapsed time after now, e.g. from_now(days=7) (UTC)."""
    return now_utc() + datetime.timedelta(**delta)


def iso(moment):
    """RFC 3339 with the moment's own offset, to the second."""
    return moment.replace(microsecond=0).isoformat()


def add_months(day, months):
    """The same day of the month `months` later (or earlier), clamped to
    the month's last day: 31 August + 6 months is 29 February in a leap year,
    29 February - 12 months is 28 February. The same rule as PostgreSQL's
    date + interval 'N months'."""
    import calendar
    m = day.month - 1 + months
    year, month = day.year + m // 12, m % 12 + 1
    return day.replace(year=year, month=month, day=min(day.day, calendar.monthrange(year, month)[1]))


def _faketime_safe_sleep(seconds):
    """time.sleep without clock_nanosleep. Python's time.sleep waits with
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME); libfaketime 0.9.10
    (Debian 12) shifts that absolute deadline by its offset even with
    FAKETIME_DONT_FAKE_MONOTONIC=1, and the call fails with EINVAL. select()
    takes a relative timeout, which libfaketime passes through."""
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        select.select([], [], [], left)


if "faketime" in os.environ.get("LD_PRELOAD", ""):
    time.sleep = _faketime_safe_sleep

TOKEN_RE = re.compile(r"^kipd_[A-Za-z0-9_-]{43}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
CPR_SHAPE = re.compile(r"^(\d{6})-?(\d{4})$")

# Every bearer token and CPR number the tests hand to or get from kipd; no
# log line may contain any of them.
SECRETS = set()
_secrets_lock = threading.Lock()


def remember_secret(value):
    if not isinstance(value, str) or len(value) < 8:
        return
    with _secrets_lock:
        SECRETS.add(value)
        m = CPR_SHAPE.match(value)
        if m:
            SECRETS.add(m.group(1) + m.group(2))
            SECRETS.add(m.group(1) + "-" + m.group(2))


# Every file a real kipd (not a harness fake) wrote its output to in this run.
KIPD_LOG_FILES = []

# JSON members whose values are secrets wherever they appear: passwords sent
# to kipd, and the CSRF token it hands out at sign-in.
SECRET_KEYS = ("password", "current_password", "new_password", "csrf_token")
# The passwords among them: no response may ever contain one.
PASSWORDS = set()
SESSION_COOKIE_RE = re.compile(r"(?:^|[;,]\s*)kipd_session=([^;,\s]+)")


def _harvest_cookie(resp):
    """Remember the session id of a Set-Cookie: kipd_session=..."""
    for m in SESSION_COOKIE_RE.finditer(resp.headers.get("Set-Cookie", "")):
        remember_secret(m.group(1))


def _harvest_secrets(obj):
    """Remember CPR numbers and kipd tokens anywhere in a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "cpr" and isinstance(v, str) and CPR_SHAPE.match(v):
                remember_secret(v)
            elif k == "token" and isinstance(v, str) and v.startswith("kipd_"):
                remember_secret(v)
            elif k in SECRET_KEYS and isinstance(v, str):
                remember_secret(v)
                if k != "csrf_token" and len(v) >= 8:
                    with _secrets_lock:
                        PASSWORDS.add(v)
            else:
                _harvest_secrets(v)
    elif isinstance(obj, list):
        for v in obj:
            _harvest_secrets(v)


# ---------------------------------------------------------------------------
# small utilities

def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Poll predicate() until it returns a truthy value; return that value.
    Raises AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - polled probes may fail meanwhile
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{extra}")
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def make_workdir(parent, name):
    """A directory the postgres system user can traverse (0755)."""
    d = Path(parent) / name
    d.mkdir(parents=True, exist_ok=False)
    os.chmod(d, 0o755)
    return d


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:12]}"


_cpr_lock = threading.Lock()
_cpr_counter = [int(time.time()) % 5000]


def new_cpr(hyphen=True):
    """A fresh, valid CPR number (1950s-1980s, 7th digit 0-3 => 1900s)."""
    with _cpr_lock:
        _cpr_counter[0] += 1
        i = _cpr_counter[0]
    day = 1 + i % 28
    month = 1 + (i // 28) % 12
    year = 50 + (i // 336) % 40
    serial = f"{(i // 13440) % 4}{(i * 7919) % 1000:03d}"
    cpr = f"{day:02d}{month:02d}{year:02d}" + ("-" if hyphen else "") + serial
    remember_secret(cpr)
    return cpr


def parse_time(text):
    """RFC 3339 -> aware datetime."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


def collect_all(client, path, params=None, limit=None, max_pages=200):
    """Walk a list endpoint through next_cursor; assert no duplicates."""
    params = dict(params or {})
    if limit:
        params["limit"] = limit
    items, ids, pages = [], set(), 0
    while True:
        r = client.get(path, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        for item in body["items"]:
            key = item.get("id", json.dumps(item, sort_keys=True))
            assert key not in ids, f"{path}: item {key} appears on two pages"
            ids.add(key)
            items.append(item)
        pages += 1
        assert pages <= max_pages, f"{path}: more than {max_pages} pages"
        if body["next_cursor"] is None:
            return items
        params["cursor"] = body["next_cursor"]


def mask_cpr(cpr):
    digits = cpr.replace("-", "")
    return digits[:6] + "-****"


# ---------------------------------------------------------------------------
# PostgreSQL

def _pg_user_ids():
    pw = pwd.getpwnam(PG_SYSTEM_USER)
    return pw.pw_uid, pw.pw_gid


# The integration tests' runtime login role (a member of kipd_runtime).
RUNTIME_ROLE = "kipd_it_app"


class PgCluster:
    """A throwaway cluster: data in base/data, socket in base/sock, no TCP."""

    def __init__(self, base):
        self.base = Path(base)
        self.datadir = self.base / "data"
        self.sockdir = self.base / "sock"
        self.logfile = self.base / "postgres.log"

    def _as_pg(self, argv):
        argv = [str(a) for a in argv]
        if IS_ROOT:
            return ["runuser", "-u", PG_SYSTEM_USER, "--"] + argv
        return argv

    def _run(self, argv, check=True, timeout=60):
        r = subprocess.run(self._as_pg(argv), cwd=self.base, capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n"
                               f"{self.log_tail()}")
        return r

    def log_tail(self, n=40):
        try:
            return "postgres log:\n" + "\n".join(self.logfile.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def init(self):
        self.base.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(exist_ok=True)
        if IS_ROOT:
            uid, gid = _pg_user_ids()
            for p in (self.base, self.sockdir):
                os.chown(p, uid, gid)
        os.chmod(self.base, 0o755)
        os.chmod(self.sockdir, 0o755)
        self._run([PG_BINDIR / "initdb", "-D", self.datadir, "-A", "trust", "--nosync",
                   "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"], timeout=120)
        return self

    def start(self):
        opts = (f"-c listen_addresses='' -k {self.sockdir} -c fsync=off "
                f"-c full_page_writes=off -c max_connections=200")
        self._run([PG_BINDIR / "pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60",
                   "-o", opts, "start"], timeout=90)
        return self

    def stop(self, mode="fast", check=True):
        return self._run([PG_BINDIR / "pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "60",
                          "stop"], check=check, timeout=90)

    def running(self):
        return self._run([PG_BINDIR / "pg_ctl", "-D", self.datadir, "status"], check=False).returncode == 0

    def postmaster_pid(self):
        return read_postmaster_pid(self.datadir)

    def url(self, db, user="postgres"):
        return f"postgresql:///{db}?host={self.sockdir}&user={user}"

    def runtime_url(self, db):
        """kipd's --db in the tests: a login role that is only a member of
        kipd_runtime, while --db-owner is the superuser (url())."""
        return self.url(db, RUNTIME_ROLE)

    def ensure_runtime_role(self):
        """The NOLOGIN group role the migrations grant to, and the runtime
        login role in it (cluster-wide, so once per cluster)."""
        self.psql("DO $$ BEGIN "
                  "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kipd_runtime') THEN "
                  "CREATE ROLE kipd_runtime NOLOGIN; END IF; "
                  f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{RUNTIME_ROLE}') THEN "
                  f"CREATE ROLE {RUNTIME_ROLE} LOGIN NOSUPERUSER IN ROLE kipd_runtime; END IF; "
                  "END $$")
        return self

    def psql(self, sql, db="postgres", user="postgres"):
        r = subprocess.run([str(PG_BINDIR / "psql"), "-h", str(self.sockdir), "-U", user, "-d", db,
                            "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{r.stderr}")
        return r.stdout.strip()

    def createdb(self, name):
        r = subprocess.run([str(PG_BINDIR / "createdb"), "-h", str(self.sockdir), "-U", "postgres",
                            "-E", "UTF8", "-T", "template0", name],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {r.stderr}")
        return name


def read_postmaster_pid(pgdata):
    try:
        first = (Path(pgdata) / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------
# kipd

_key_dir = []


def shared_key_file(db_url):
    """The CPR key file of one database (created by the first kipd on it)."""
    if not _key_dir:
        import atexit, shutil, tempfile
        _key_dir.append(Path(tempfile.mkdtemp(prefix="kipd-keys-")))
        atexit.register(shutil.rmtree, _key_dir[0], True)
    # One database, whichever role connects: the URL without its user.
    parts = urllib.parse.urlsplit(db_url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "user"]
    key = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(sorted(query))))
    return _key_dir[0] / (uuid.uuid5(uuid.NAMESPACE_URL, key).hex + ".key")


class KipdDied(AssertionError):
    pass


class Kipd:
    """One kipd (possibly started several times, e.g. after kill -9)."""

    _seq = 0

    def __init__(self, workdir, args, env=None, port=None, token_file=None, listen=True,
                 binary=None, name="kipd", start_timeout=START_TIMEOUT):
        Kipd._seq += 1
        self.workdir = Path(workdir)
        self.binary = Path(binary) if binary else KIPD_BIN
        self.port = port or free_port()
        self.base_args = list(args)
        self.listen = listen
        self.env_extra = dict(env or {})
        self.token_file = Path(token_file) if token_file else None
        self.name = f"{name}-{Kipd._seq}"
        self.start_timeout = start_timeout
        self.proc = None
        self.runs = []           # one entry per start: {"stderr": [...], "stdout": [...]}
        self._threads = []
        self._admin_token = None
        self.data_dir = None

    # constructors ---------------------------------------------------------
    @classmethod
    def external(cls, workdir, db_url, extra_args=(), env=None, owner_url=None, **kw):
        token_file = Path(workdir) / "admin-token"
        args = ["--db", db_url, "--admin-token-file", str(token_file),
                "--schema-dir", str(SCHEMA_DIR)] + list(extra_args)
        if "--key-file" not in args:
            # every kipd on one database shares its CPR key file
            args += ["--key-file", str(shared_key_file(db_url))]
        if owner_url is not None:
            args += ["--db-owner", owner_url]
        return cls(workdir, args, env=env, token_file=token_file, **kw)

    @classmethod
    def embedded(cls, workdir, data_dir, extra_args=(), env=None, **kw):
        env = dict(env or {})
        env.setdefault("KIPD_PG_NOSYNC", "1")
        kw.setdefault("start_timeout", EMBEDDED_START_TIMEOUT)
        args = ["--data-dir", str(data_dir), "--schema-dir", str(SCHEMA_DIR)] + list(extra_args)
        k = cls(workdir, args, env=env, token_file=Path(data_dir) / "admin-token", **kw)
        k.data_dir = Path(data_dir)
        return k

    # properties -----------------------------------------------------------
    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def argv(self):
        argv = [str(self.binary)] + self.base_args
        if self.listen:
            argv += ["--listen", f"127.0.0.1:{self.port}"]
        return argv

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def admin_token(self):
        if self._admin_token is None:
            assert self.token_file is not None, "this kipd has no admin token file"
            token = self.token_file.read_text().strip()
            assert token, f"{self.token_file} is empty"
            remember_secret(token)
            self._admin_token = token
        return self._admin_token

    def postmaster_pid(self):
        assert self.data_dir is not None, "not an embedded kipd"
        return read_postmaster_pid(self.data_dir / "pg")

    # output ---------------------------------------------------------------
    def _reader(self, stream, sink, logfile):
        if self.binary == KIPD_BIN:
            with _secrets_lock:
                KIPD_LOG_FILES.append(logfile)
        with open(logfile, "ab") as out:
            for raw in iter(stream.readline, b""):
                out.write(raw)
                out.flush()
                sink.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
        stream.close()

    def stderr_lines(self, all_runs=True):
        runs = self.runs if all_runs else self.runs[-1:]
        return [line for r in runs for line in r["stderr"]]

    def output_text(self):
        """Everything kipd wrote on stderr and stdout, in all runs."""
        return "\n".join(line for r in self.runs for line in r["stderr"] + r["stdout"])

    def log_records(self, all_runs=True):
        """stderr parsed as JSON objects, one per line; a bad line fails."""
        records = []
        for i, line in enumerate(self.stderr_lines(all_runs)):
            if not line.strip():
                raise AssertionError(f"{self.name}: empty log line #{i + 1}")
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise AssertionError(f"{self.name}: log line #{i + 1} is not JSON ({e}): {line[:300]!r}")
            if not isinstance(rec, dict):
                raise AssertionError(f"{self.name}: log line #{i + 1} is not a JSON object: {line[:300]!r}")
            records.append(rec)
        return records

    def log_tail(self, n=40):
        lines = self.stderr_lines()[-n:]
        return f"--- {self.name} stderr (last {len(lines)} lines) ---\n" + "\n".join(lines)

    # lifecycle ------------------------------------------------------------
    def start(self, wait=True, timeout=None):
        assert not self.alive(), "kipd is already running"
        if not self.binary.exists():
            raise AssertionError(f"kipd binary not found: {self.binary} (build it, or set KIPD_BIN)")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("KIPD_") and k not in ("KIPD_PG_BINDIR",):
                del env[k]                  # the test decides kipd's configuration
        env.update(self.env_extra)
        run = {"stderr": [], "stdout": [], "argv": self.argv, "started": time.time()}
        self.runs.append(run)
        n = len(self.runs)
        self.proc = subprocess.Popen(self.argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._threads = [
            threading.Thread(target=self._reader, daemon=True,
                             args=(self.proc.stderr, run["stderr"], self.workdir / f"{self.name}.{n}.stderr")),
            threading.Thread(target=self._reader, daemon=True,
                             args=(self.proc.stdout, run["stdout"], self.workdir / f"{self.name}.{n}.stdout")),
        ]
        for t in self._threads:
            t.start()
        if wait:
            self.wait_ready(timeout or self.start_timeout)
        return self

    def wait_ready(self, timeout=None):
        timeout = timeout or self.start_timeout
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self._join_readers()
                raise KipdDied(f"{self.name} exited with {code} before serving\n"
                               f"argv: {' '.join(self.argv)}\n{self.log_tail()}")
            try:
                r = requests.get(self.url + "/healthz", timeout=1.0)
                if r.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.name}: /healthz did not answer 200 within {timeout}s\n"
                                     f"{self.log_tail()}")
            time.sleep(0.05)

    def _join_readers(self, timeout=5):
        for t in self._threads:
            t.join(timeout)

    def wait_exit(self, timeout):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._join_readers()
        return code

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10.0, sig=signal.SIGTERM, expect_code=0):
        """Graceful stop; asserts the exit code (None: do not check)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            code = self.wait_exit(timeout)
            if code is None:
                self.proc.kill()
                self.wait_exit(10)
                raise AssertionError(f"{self.name} did not exit within {timeout}s of "
                                     f"{signal.Signals(sig).name}\n{self.log_tail()}")
        else:
            code = self.proc.returncode
            self._join_readers()
        if expect_code is not None:
            assert code == expect_code, (f"{self.name} exited with {code}, expected {expect_code}\n"
                                         f"{self.log_tail()}")
        return code

    def kill(self):
        """kill -9 and reap."""
        if self.alive():
            self.proc.kill()
        self.wait_exit(10)

    def restart(self, **kw):
        self.stop()
        return self.start(**kw)

    def cleanup(self):
        """Teardown safety net: stop whatever is still running."""
        if self.alive():
            try:
                self.proc.send_signal(signal.SIGTERM)
                if self.wait_exit(10) is None:
                    self.proc.kill()
                    self.wait_exit(10)
            except ProcessLookupError:
                pass
        if self.data_dir is not None:
            kill_orphan_postmaster(self.data_dir / "pg")

    # leaks ----------------------------------------------------------------
    def assert_no_secrets_logged(self, extra=()):
        text = self.output_text()
        with _secrets_lock:
            secrets = set(SECRETS) | set(extra)
        leaked = sorted(s for s in secrets if s and s in text)
        if leaked:
            lines = [line for line in text.splitlines() if any(s in line for s in leaked)][:5]
            raise AssertionError(f"{self.name} logged secrets (tokens/CPR numbers): "
                                 f"{[s[:12] + '…' for s in leaked]}\n" + "\n".join(lines))


@contextlib.contextmanager
def running_kipd(kipd):
    """Start kipd; on leaving: SIGTERM must end it with exit code 0 and its
    output must hold no token or CPR number the tests used. Whatever
    happens, nothing is left running."""
    try:
        kipd.start()
        yield kipd
        if kipd.alive():
            kipd.stop()
        kipd.assert_no_secrets_logged()
    finally:
        kipd.cleanup()


def kill_orphan_postmaster(pgdata):
    """If an embedded postmaster outlived its kipd (test failure), stop it."""
    pid = read_postmaster_pid(pgdata)
    if pid and pid_alive(pid):
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            return
        try:
            wait_until(lambda: not pid_alive(pid), 10, what="orphan postmaster exit")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------
# HTTP client with contract checks

# Headers every kipd response carries (None: any value). Personal data must
# never be cached, so no-store is on everything.
SECURITY_HEADERS = {
    "Content-Security-Policy": None,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def check_response(resp, validate=True):
    """Invariants of every kipd response, plus the contract when validate."""
    req = resp.request
    method = req.method
    path = urllib.parse.urlsplit(req.url).path
    what = f"{method} {path} -> {resp.status_code}"
    rid = resp.headers.get("X-Request-Id")
    if not rid:
        raise ContractError(f"{what}: no X-Request-Id header")
    _harvest_cookie(resp)
    with _secrets_lock:
        passwords = [p for p in PASSWORDS if p.encode("utf-8") in resp.content]
    if passwords:
        raise ContractError(f"{what}: the response holds a password the tests sent")
    sent = req.headers.get("X-Request-Id")
    if isinstance(sent, bytes):
        sent = sent.decode("latin-1")
    if sent is not None and SANE_REQUEST_ID.match(sent):
        if rid != sent:
            raise ContractError(f"{what}: X-Request-Id {rid!r}, but the client sent the sane {sent!r}")
    for name, want in SECURITY_HEADERS.items():
        got = resp.headers.get(name)
        if got is None or (want is not None and got != want):
            raise ContractError(f"{what}: security header {name} is {got!r}, want {want or 'present'!r}")
    ctype = resp.headers.get("Content-Type", "")
    media = ctype.split(";")[0].strip().lower()
    if media in ("application/json", "application/problem+json"):
        try:
            body = resp.json()
        except ValueError as e:
            raise ContractError(f"{what}: Content-Type {ctype} but the body is not JSON: {e}")
        _harvest_secrets(body)
        if media == "application/problem+json":
            if not isinstance(body, dict) or body.get("status") != resp.status_code:
                raise ContractError(f"{what}: problem 'status' does not match the HTTP status: {body!r}")
            if body.get("request_id") != rid:
                raise ContractError(f"{what}: problem request_id {body.get('request_id')!r} "
                                    f"!= X-Request-Id {rid!r}")
    if resp.status_code >= 400 and media != "application/problem+json":
        raise ContractError(f"{what}: an error answered with Content-Type {ctype!r}, "
                            f"not application/problem+json: {resp.content[:200]!r}")
    if validate:
        CONTRACT.check(method, path, resp.status_code, ctype, resp.content)


class Api(requests.Session):
    """A kipd client. Every response is checked (see check_response);
    pass validate=False only for deliberately malformed requests."""

    def __init__(self, base_url, token=None, name="client"):
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.name = name
        self.user = None        # filled by the make_user factory
        self.org = None
        self.token_id = None
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
            remember_secret(token)

    def request(self, method, url, *args, validate=True, **kwargs):
        if url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        if "json" in kwargs:
            _harvest_secrets(kwargs["json"])
        resp = super().request(method, url, *args, **kwargs)
        check_response(resp, validate)
        return resp

    def with_token(self, token, name=None):
        return Api(self.base_url, token, name=name or self.name)

    def anonymous(self):
        return Api(self.base_url, None, name="anonymous")

    def __repr__(self):
        return f"<Api {self.name} {self.base_url}>"


def problem(resp, status, field=None, type_suffix=None, code=None, pointer=...):
    """Assert resp is a problem+json with this status (and field in errors;
    with code, that field's error has this code; with pointer, this
    pointer). Returns the problem body."""
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.path_url}: expected {status}, got {resp.status_code}: "
        f"{resp.text[:800]}")
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.split(";")[0].strip() == "application/problem+json", ctype
    body = resp.json()
    for key in ("type", "title", "status", "detail", "errors", "request_id"):
        assert key in body, f"problem without {key!r}: {body}"
    assert isinstance(body["errors"], list), body
    if status not in (401, 404, 503):
        assert body["errors"], f"problem {status} with an empty errors list: {body}"
    if type_suffix:
        assert body["type"].endswith("/" + type_suffix), body["type"]
    if field is not None:
        fields = [e.get("field") for e in body["errors"]]
        assert field in fields, f"expected an error on field {field!r}, got {fields}: {body}"
        entry = next(e for e in body["errors"] if e.get("field") == field)
        if code is not None:
            assert entry.get("code") == code, f"expected code {code!r} on {field!r}: {body}"
        if pointer is not ...:
            assert entry.get("pointer", ...) == pointer, f"expected pointer {pointer!r} on {field!r}: {body}"
    for e in body["errors"]:
        assert "code" in e and "pointer" in e, f"an error without code or pointer: {body}"
    return body


def error_fields(resp):
    return [e.get("field") for e in resp.json().get("errors", [])]


def etag_version(resp):
    etag = resp.headers.get("ETag")
    assert etag, f"no ETag on {resp.request.method} {resp.request.path_url}"
    m = re.match(r'^(W/)?"(\d+)"$', etag)
    assert m, f"ETag {etag!r} is not \"<version>\""
    return int(m.group(2))


def plan_body(name=None, cpr=None, **overrides):
    citizen = {"name": name or f"Borger {uuid.uuid4().hex[:6]}", "cpr": cpr or new_cpr()}
    body = {"citizen": citizen, "reason": "Komplekse behov på tværs af sektorer"}
    body.update(overrides)
    return body


def create_user(admin, org, roles=("coordinator",), username=None, **fields):
    """Create a user (as admin) and a token for them; return their client."""
    body = {"username": username or unique("u"),
            "display_name": fields.pop("display_name", "Test Bruger Æøå"),
            "organisation_id": org["id"], "roles": list(roles)}
    body.update(fields)
    r = admin.post("/v1/users", json=body)
    assert r.status_code == 201, r.text
    user = r.json()
    r = admin.post(f"/v1/users/{user['id']}/tokens", json={"name": "integration test"})
    assert r.status_code == 201, r.text
    tok = r.json()
    client = Api(admin.base_url, tok["token"], name=user["username"])
    client.user, client.org, client.token_id = user, org, tok["id"]
    return client


def create_org(admin, sector="municipality_social", name=None, **fields):
    body = {"name": name or f"Org {uuid.uuid4().hex[:8]}", "sector": sector}
    body.update(fields)
    r = admin.post("/v1/organisations", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def create_plan(client, **overrides):
    """POST /v1/plans (201 asserted); overrides: name=, cpr=, or body keys."""
    body = plan_body(**overrides)
    r = client.post("/v1/plans", json=body)
    assert r.status_code == 201, r.text
    doc = r.json()
    # The create answer adds warnings to the plan document; the plan itself
    # is what GET answers.
    assert isinstance(doc.pop("warnings"), list)
    return doc


# ---------------------------------------------------------------------------
# raw HTTP

class RawResponse:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.headers = {}
        for k, v in headers:
            self.headers.setdefault(k.lower(), v)
        self.body = body
        self.version = version

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<RawResponse {self.status} {self.headers} {self.body[:200]!r}>"


def build_request(method, path, headers=None, body=None, host="127.0.0.1", chunked=False):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for k, v in (headers.items() if isinstance(headers, dict) else (headers or [])):
        lines.append(f"{k}: {v}")
    payload = b""
    if body is not None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            for i in range(0, len(body), 7):
                piece = body[i:i + 7]
                payload += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            payload += b"0\r\n\r\n"
        else:
            lines.append(f"Content-Length: {len(body)}")
            payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + payload


class RawHttp:
    def __init__(self, port=None, host="127.0.0.1", timeout=HTTP_TIMEOUT, sock=None):
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, headers=None, body=None, chunked=False):
        self.send(build_request(method, path, headers, body, chunked=chunked))
        return self.read_response(method)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def _read_until(self, marker, limit=1 << 20):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError("response head too large")
            self._fill()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method="GET"):
        head = self._read_until(b"\r\n\r\n").decode("iso-8859-1")
        lines = head.split("\r\n")
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        hmap = {k.lower(): v for k, v in headers}
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in hmap.get("transfer-encoding", "").lower():
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0].strip(), 16)
                if size == 0:
                    self._read_until(b"\r\n")     # (no trailers expected)
                    break
                body += self._read_exact(size)
                self._read_exact(2)
        elif "content-length" in hmap:
            body = self._read_exact(int(hmap["content-length"]))
        else:
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            body, self.buf = self.buf, b""
        return RawResponse(status, reason, headers, body, version)

    def wait_closed(self, timeout):
        """Seconds until the server closed the connection, or None if it is
        still open after timeout. Data that arrives meanwhile is kept."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - start
            if not chunk:
                return time.monotonic() - start
            self.buf += chunk

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_raw(resp, method, path):
    """Contract check for a RawResponse (well-formed requests only)."""
    rid = resp.header("X-Request-Id")
    assert rid, f"{method} {path}: no X-Request-Id"
    CONTRACT.check(method, urllib.parse.urlsplit(path).path, resp.status,
                   resp.header("Content-Type"), resp.body)


# ---------------------------------------------------------------------------
# traffic in the background (resilience tests)

class Traffic(threading.Thread):
    """Sends one request after another and records each outcome.

    record: (t_start, duration_s, status or None, error text or None,
    headers dict or None)."""

    def __init__(self, make_client, method, path, pause=0.02, timeout=HTTP_TIMEOUT, **kwargs):
        super().__init__(daemon=True)
        self.make_client = make_client
        self.method = method
        self.path = path
        self.pause = pause
        self.timeout = timeout
        self.kwargs = kwargs
        self.records = []
        self._stop_evt = threading.Event()

    def run(self):
        client = self.make_client()
        while not self._stop_evt.is_set():
            t0 = time.monotonic()
            try:
                r = client.request(self.method, self.path, timeout=self.timeout, **self.kwargs)
                self.records.append((t0, time.monotonic() - t0, r.status_code, None, dict(r.headers)))
            except ContractError as e:
                self.records.append((t0, time.monotonic() - t0, None, f"contract: {e}", None))
            except Exception as e:  # noqa: BLE001 - every failure is recorded and asserted on
                self.records.append((t0, time.monotonic() - t0, None, repr(e), None))
                client = self.make_client()
            self._stop_evt.wait(self.pause)

    def stop(self):
        self._stop_evt.set()
        self.join(HTTP_TIMEOUT + 5)

    def seen(self, status, after=0.0):
        return any(rec[2] == status and rec[0] >= after for rec in self.records)

    def summary(self):
        counts = {}
        for rec in self.records:
            key = rec[2] if rec[2] is not None else "error"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def assert_clean(self, allowed=(200, 503), max_duration=7.0):
        bad = [r for r in self.records if r[2] not in allowed or r[3] is not None]
        assert not bad, (f"unexpected outcomes ({len(bad)} of {len(self.records)}), first ones:\n"
                         + "\n".join(f"  status={r[2]} error={r[3]}" for r in bad[:5]))
        slow = [r for r in self.records if r[1] > max_duration]
        assert not slow, f"{len(slow)} requests took longer than {max_duration}s: {[round(r[1], 1) for r in slow[:5]]}"
        for r in self.records:
            if r[2] == 503:
                assert r[4].get("Retry-After") == "1", f"503 without 'Retry-After: 1': {r[4]}"
