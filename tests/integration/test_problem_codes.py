"""Stable error and warning codes (issue #13, the web-UI API contract item 4).

Every entry of a problem's `errors[]` carries a machine-readable `code` and an
RFC 6901 `pointer`; the UI translates the code with its catalogue
(clients/web/i18n/da.json). The static test below finds every code kipd can
send in daemon/ and schema/ and fails when one is missing from the ErrorCode /
WarningCode enums of api/openapi.yaml or has no Danish text.
"""

import json
import re

import pytest
import yaml

import kiptest
from kiptest import ROOT, problem

# ------------------------------------------------------------ the sources


def _call_args(text, start):
    """The top-level arguments of the call whose '(' is at text[start]."""
    args, depth, cur, i, quote = [], 0, [], start, None
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == "\\":
                cur.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == "(" or ch == "{" or ch == "[":
            depth += 1
            if depth > 1:
                cur.append(ch)
        elif ch == ")" or ch == "}" or ch == "]":
            depth -= 1
            if depth == 0:
                args.append("".join(cur).strip())
                return args
            cur.append(ch)
        elif ch == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    raise AssertionError(f"unbalanced call at {text[start:start + 80]!r}")


C_LITERAL = re.compile(r'"([a-z][a-z0-9_]*)"')
SQL_LITERAL = re.compile(r"'([a-z][a-z0-9_]*)'")


def _c_codes():
    """(code, where) for every code in daemon/**/*.c."""
    found = []
    # The calls that take a code, and the index of that argument.
    calls = {"kreq_problem_code": 3, "jc_add_error": 2, "problem_add_error": 1}
    for path in sorted((ROOT / "daemon").rglob("*.c")):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        for name, index in calls.items():
            for m in re.finditer(rf"\b{name}\s*\(", text):
                args = _call_args(text, m.end() - 1)
                if len(args) <= index:
                    continue
                for code in C_LITERAL.findall(args[index]):
                    found.append((code, f"{rel}: {name}"))
        # A format hook's code: *code = "x" (or a ternary of them).
        for m in re.finditer(r"\*code\s*=\s*([^;]+);", text):
            for code in C_LITERAL.findall(m.group(1)):
                found.append((code, f"{rel}: *code ="))
        # A code set on an error object: "code", json_string("x").
        for m in re.finditer(r'"code",\s*json_string\("([a-z][a-z0-9_]*)"\)', text):
            found.append((m.group(1), f"{rel}: json_string"))
        # The constraint table of app/problem.c: {constraint, status, field, code, message}.
        for m in re.finditer(r'\{"\w+", \d+, "[\w.]+", "([a-z][a-z0-9_]*)",', text):
            found.append((m.group(1), f"{rel}: constraint table"))
        # Switch arms and tables that name codes: marked as such.
        for block in re.finditer(r"/\* codes: \*/(.*?)/\* :codes \*/", text, re.S):
            for code in C_LITERAL.findall(block.group(1)):
                found.append((code, f"{rel}: codes block"))
    return found


def _sql_codes():
    """(code, where) for every code in schema/**/*.sql."""
    found = []
    for path in sorted((ROOT / "schema").rglob("*.sql")):
        text = path.read_text()
        rel = path.relative_to(ROOT)
        # kip.fail(status, 'code', ...), kip.fail_with(status, 'code', ...)
        for m in re.finditer(r"\bkip\.fail(?:_with)?\s*\(", text):
            if re.search(r"FUNCTION\s+$", text[max(0, m.start() - 40):m.start()]):
                continue
            args = _call_args(text, m.end() - 1)
            if len(args) > 1:
                for code in SQL_LITERAL.findall(args[1]):
                    found.append((code, f"{rel}: kip.fail"))
        # kip.warning('code', ...): a warnings[] entry
        for m in re.finditer(r"\bkip\.warning\(\s*'([a-z][a-z0-9_]*)'", text):
            found.append((m.group(1), f"{rel}: kip.warning"))
        # 'code', 'x' in a jsonb_build_object (several errors, warnings)
        for m in re.finditer(r"'code'\s*,\s*'([a-z][a-z0-9_]*)'", text):
            found.append((m.group(1), f"{rel}: 'code'"))
    return found


def _enum(name):
    spec = yaml.safe_load((ROOT / "api" / "openapi.yaml").read_text())
    return set(spec["components"]["schemas"][name]["enum"])


def _catalogue(lang):
    return json.loads((ROOT / "clients" / "web" / "i18n" / f"{lang}.json").read_text())


def test_the_scanner_finds_codes_in_both_languages():
    c = {code for code, _ in _c_codes()}
    sql = {code for code, _ in _sql_codes()}
    # Spot checks: if these vanish the scanner is broken, not the code.
    assert {"required", "unknown_field", "invalid_cpr", "cpr_in_url", "malformed_request"} <= c, c
    assert {"starts_in_past", "overlap"} <= sql, sql


def test_every_code_kipd_can_send_is_documented_and_has_danish_text():
    errors, warnings = _enum("ErrorCode"), _enum("WarningCode")
    da, en = _catalogue("da"), _catalogue("en")
    missing = []
    for code, where in _c_codes() + _sql_codes():
        if code in errors:
            key = f"error.{code}"
        elif code in warnings:
            key = f"warning.{code}"
        else:
            missing.append(f"{code} ({where}): not in the ErrorCode or WarningCode enum of api/openapi.yaml")
            continue
        if not da.get(key):
            missing.append(f"{code} ({where}): no {key} in clients/web/i18n/da.json")
        if not en.get(key):
            missing.append(f"{code} ({where}): no {key} in clients/web/i18n/en.json")
    assert not missing, "\n".join(sorted(set(missing)))


def test_every_enum_code_has_texts_and_a_row_in_the_docs():
    docs = (ROOT / "docs" / "api.md").read_text()
    da, en = _catalogue("da"), _catalogue("en")
    for kind, name in (("error", "ErrorCode"), ("warning", "WarningCode")):
        for code in _enum(name):
            assert da.get(f"{kind}.{code}"), f"da.json lacks {kind}.{code}"
            assert en.get(f"{kind}.{code}"), f"en.json lacks {kind}.{code}"
            assert f"| `{code}` |" in docs, f"docs/api.md has no row for {kind} code {code}"


def test_catalogues_are_flat():
    for lang in ("da", "en"):
        cat = _catalogue(lang)
        assert all(isinstance(v, str) and v for v in cat.values()), lang
        # The same error and warning keys in both languages.
        codes = {k for k in cat if k.startswith(("error.", "warning."))}
        other = {k for k in _catalogue("en" if lang == "da" else "da") if k.startswith(("error.", "warning."))}
        assert codes == other, codes ^ other


# ------------------------------------------------------------ on the wire


def test_body_errors_have_codes_and_pointers(coordinator):
    body = kiptest.plan_body()
    body["citizen"]["cpr"] = "320190-1234"
    body["citizen"]["name"] = "x" * 201
    body["bogus"] = 1
    p = problem(coordinator.post("/v1/plans", json=body), 400, "bogus", code="unknown_field",
                pointer="/bogus")
    # 400 lists the 400-class errors; the 422-class ones come once it is fixed.
    del body["bogus"]
    p = problem(coordinator.post("/v1/plans", json=body), 422, "citizen.cpr", code="invalid_cpr",
                pointer="/citizen/cpr")
    problem(coordinator.post("/v1/plans", json=body), 422, "citizen.name", code="too_long",
            pointer="/citizen/name")
    assert p["errors"]


def test_missing_required_and_wrong_type(coordinator):
    body = kiptest.plan_body()
    del body["citizen"]["name"]
    problem(coordinator.post("/v1/plans", json=body), 422, "citizen.name", code="required",
            pointer="/citizen/name")
    body = kiptest.plan_body(reason=5)
    problem(coordinator.post("/v1/plans", json=body), 400, "reason", code="wrong_type", pointer="/reason")


def test_array_item_pointer(coordinator):
    body = kiptest.plan_body(goals=[{"text": "ok"}, {"text": ""}])
    problem(coordinator.post("/v1/plans", json=body), 422, "goals[1].text", code="too_short",
            pointer="/goals/1/text")


def test_header_and_query_problems_have_a_null_pointer(coordinator, make_plan):
    plan = make_plan(coordinator)
    r = coordinator.patch(f"/v1/plans/{plan['id']}", json={"reason": "x"})
    problem(r, 428, "If-Match", code="required", pointer=None)
    r = coordinator.patch(f"/v1/plans/{plan['id']}", json={"reason": "x"}, headers={"If-Match": "nope"})
    problem(r, 400, "If-Match", code="invalid_etag", pointer=None)
    problem(coordinator.get("/v1/plans", params={"limit": "0"}), 422, "limit", code="out_of_range", pointer=None)
    problem(coordinator.get("/v1/plans", params={"bogus": "1"}), 400, "bogus", code="unknown_field",
            pointer=None)


def test_body_level_problems(coordinator):
    r = coordinator.post("/v1/plans", data=b"{nope", headers={"Content-Type": "application/json"})
    problem(r, 400, "body", code="invalid_json", pointer="")
    r = coordinator.post("/v1/plans", data=b"[1]", headers={"Content-Type": "application/json"})
    problem(r, 400, "body", code="wrong_type", pointer="")
    r = coordinator.post("/v1/plans", data=b"x", headers={"Content-Type": "text/plain"})
    problem(r, 415, "Content-Type", code="unsupported_media_type", pointer=None)
    problem(coordinator.delete("/v1/plans"), 405, "method", code="method_not_allowed", pointer=None)


def test_database_errors_carry_codes(admin, make_org):
    org = make_org()
    name = kiptest.unique("u")
    body = {"username": name, "display_name": "A", "organisation_id": org["id"], "roles": ["caseworker"]}
    assert admin.post("/v1/users", json=body).status_code == 201
    problem(admin.post("/v1/users", json=body), 409, "username", code="duplicate", pointer="/username")
