#!/usr/bin/env python3
"""Start a throwaway PostgreSQL and a real kipd for the browser tests.

Reuses the integration harness (tests/integration/kiptest.py): the same
cluster set-up, runtime and owner roles, key file and log checks. Prints one
JSON line {"url": ..., "admin_token": ...} on stdout once kipd answers, then
runs until stdin closes (the node test ends it by closing the pipe), stops
kipd with SIGTERM (exit code 0 asserted), checks its logs for secrets and
removes everything.
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import kiptest  # noqa: E402


def main():
    root = Path(tempfile.mkdtemp(prefix="kipd-browser-", dir=os.environ.get("KIPD_TEST_TMPDIR", "/tmp")))
    os.chmod(root, 0o755)
    pg = kiptest.PgCluster(root / "pg").init().start().ensure_runtime_role()
    ok = False
    try:
        db = pg.createdb("kipd_browser")
        workdir = kiptest.make_workdir(root, "kipd")
        k = kiptest.Kipd.external(workdir, pg.runtime_url(db), owner_url=pg.url(db), name="browser",
                                  extra_args=sys.argv[1:])
        with kiptest.running_kipd(k):
            print(json.dumps({"url": k.url, "admin_token": k.admin_token()}), flush=True)
            # Each line on stdin is a secret the browser tests used (a
            # password, a CPR number): none may appear in kipd's logs.
            for line in sys.stdin:
                kiptest.remember_secret(line.strip())
        ok = True
    finally:
        pg.stop("fast", check=False)
        if ok and os.environ.get("KIPD_TEST_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
        else:
            sys.stderr.write(f"browser test files kept in {root}\n")


if __name__ == "__main__":
    main()
