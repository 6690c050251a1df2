"""Request validation on POST /v1/plans: 400 vs 422, media types, size limits."""

import json
import select

import pytest

import kiptest
from kiptest import RawHttp, check_raw, problem

MIB = 1024 * 1024


def _body(**citizen_and_top):
    body = kiptest.plan_body()
    for k, v in citizen_and_top.items():
        body[k] = v
    return body


def _with_citizen(**fields):
    body = kiptest.plan_body()
    body["citizen"].update(fields)
    return body


# -------------------------------------------------------------------- 422

@pytest.mark.parametrize("cpr", ["320190-1234", "12345", "010190-12345", "01019O-1234", "010190/1234"])
def test_bad_cpr_is_422(coordinator, cpr):
    problem(coordinator.post("/v1/plans", json=_with_citizen(cpr=cpr)), 422, "citizen.cpr", "validation")


def test_missing_citizen_name_is_422(coordinator):
    body = kiptest.plan_body()
    del body["citizen"]["name"]
    problem(coordinator.post("/v1/plans", json=body), 422, "citizen.name")


@pytest.mark.parametrize("name", ["", "x" * 201])
def test_citizen_name_length_is_422(coordinator, name):
    problem(coordinator.post("/v1/plans", json=_with_citizen(name=name)), 422, "citizen.name")


def test_citizen_name_of_200_characters_is_fine(coordinator):
    name = "Æ" * 200       # 200 characters, 400 bytes
    r = coordinator.post("/v1/plans", json=_with_citizen(name=name))
    assert r.status_code == 201, r.text
    assert r.json()["citizen"]["name"] == name


@pytest.mark.parametrize("missing", ["citizen", "reason"])
def test_missing_required_top_level_is_422(coordinator, missing):
    body = kiptest.plan_body()
    del body[missing]
    problem(coordinator.post("/v1/plans", json=body), 422, missing)


def test_goal_owner_outside_enum_is_422(coordinator):
    body = _body(goals=[{"text": "Bolig", "owner": "boss"}])
    problem(coordinator.post("/v1/plans", json=body), 422, "goals[0].owner")


def test_goal_fields_are_indexed(coordinator):
    body = _body(goals=[{"text": "Bolig", "owner": "citizen"},
                        {"owner": "team"},
                        {"text": "Job", "owner": "team", "sub_goals": [{"text": "CV", "status": "maybe"}]}])
    r = coordinator.post("/v1/plans", json=body)
    problem(r, 422, "goals[1].text")
    assert "goals[2].sub_goals[0].status" in kiptest.error_fields(r), r.json()


def test_unknown_needs_area_is_422(coordinator):
    body = _body(needs={"housing": {"relevant": True}, "weather": {"relevant": True}})
    problem(coordinator.post("/v1/plans", json=body), 422, "needs.weather")


@pytest.mark.parametrize("field,value", [("follow_up_date", "2026-13-01"),
                                         ("follow_up_date", "01-02-2026"),
                                         ("approved_at", "yesterday"),
                                         ("approved_at", "2026-01-01T10:00:00")])
def test_bad_dates_are_422(coordinator, field, value):
    problem(coordinator.post("/v1/plans", json=_body(**{field: value})), 422, field)


def test_several_errors_at_once(coordinator):
    body = {"citizen": {"cpr": "320190-1234"}, "reason": "x", "goals": [{"text": "a", "owner": "boss"}]}
    r = coordinator.post("/v1/plans", json=body)
    problem(r, 422)
    fields = set(kiptest.error_fields(r))
    assert {"citizen.name", "citizen.cpr", "goals[0].owner"} <= fields, fields


# -------------------------------------------------------------------- 400

def test_wrong_type_is_400(coordinator):
    problem(coordinator.post("/v1/plans", json=_with_citizen(name=42)), 400, "citizen.name", "bad-request")


@pytest.mark.parametrize("field,value", [("citizen", "Jens"), ("citizen", None), ("goals", {}),
                                         ("reason", ["a"]), ("needs", [])])
def test_wrong_top_level_types_are_400(coordinator, field, value):
    problem(coordinator.post("/v1/plans", json=_body(**{field: value})), 400, field)


def test_wrong_nested_type_is_400(coordinator):
    body = _body(needs={"housing": {"relevant": "yes"}})
    problem(coordinator.post("/v1/plans", json=body), 400, "needs.housing.relevant")


def test_unknown_top_level_field_is_400(coordinator):
    r = coordinator.post("/v1/plans", json=_body(favourite_colour="blå"))
    problem(r, 400, "favourite_colour", "bad-request")


def test_unknown_nested_field_is_400(coordinator):
    r = coordinator.post("/v1/plans", json=_with_citizen(shoe_size=44))
    problem(r, 400, "citizen.shoe_size")


@pytest.mark.parametrize("raw", [b'{"citizen": {"name": "Jens"', b"{'a': 1}", b"", b"\xef\xbb\xbf",
                                 b'{"citizen": {"name": "J\xff"}, "reason": "x"}'])
def test_unreadable_json_is_400_body(coordinator, raw):
    r = coordinator.post("/v1/plans", data=raw, headers={"Content-Type": "application/json"})
    problem(r, 400, "body", "bad-request")


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"42", b"null", b"true"])
def test_non_object_json_is_400(coordinator, raw):
    r = coordinator.post("/v1/plans", data=raw, headers={"Content-Type": "application/json"})
    problem(r, 400, "body")


# ---------------------------------------------------------------- media types

def test_text_plain_is_415(coordinator):
    r = coordinator.post("/v1/plans", data=json.dumps(kiptest.plan_body()).encode(),
                         headers={"Content-Type": "text/plain"})
    problem(r, 415, "Content-Type", "unsupported-media-type")


def test_missing_content_type_is_415(coordinator):
    r = coordinator.post("/v1/plans", data=json.dumps(kiptest.plan_body()).encode())
    assert "Content-Type" not in r.request.headers
    problem(r, 415, "Content-Type")


def test_json_with_charset_is_accepted(coordinator):
    r = coordinator.post("/v1/plans", data=json.dumps(kiptest.plan_body(name="Åge Ærbødig")).encode(),
                         headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 201, r.text
    assert r.json()["citizen"]["name"] == "Åge Ærbødig"


# ------------------------------------------------------------------- limits

def _padded_plan(total_bytes):
    body = kiptest.plan_body()
    body["reason"] = ""
    base = len(json.dumps(body).encode())
    body["reason"] = "x" * (total_bytes - base)
    data = json.dumps(body).encode()
    assert len(data) == total_bytes
    return data


def _send_large(port, token, data):
    """Send a large body the way a polite client does, and read the answer
    even if the server answers (and stops reading) before the end."""
    raw = RawHttp(port, timeout=15)
    head = (f"POST /v1/plans HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    raw.send(head)
    sent = 0
    try:
        while sent < len(data):
            readable, _, _ = select.select([raw.sock], [], [], 0)
            if readable:
                break                  # the server answered early
            sent += raw.sock.send(data[sent:sent + 65536])
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        return raw.read_response("POST")
    finally:
        raw.close()


def test_body_over_1_mib_is_413(kipd, coordinator):
    resp = _send_large(kipd.port, coordinator.token, _padded_plan(MIB + 1))
    assert resp.status == 413, resp
    check_raw(resp, "POST", "/v1/plans")
    body = resp.json()
    assert body["status"] == 413 and body["type"].endswith("/payload-too-large")
    # kipd still serves.
    assert coordinator.get("/v1/me").status_code == 200


def test_body_of_exactly_1_mib_is_not_413(kipd, coordinator):
    r = coordinator.post("/v1/plans", data=_padded_plan(MIB), headers={"Content-Type": "application/json"})
    assert r.status_code in (201, 422), r.text[:500]


def test_headers_over_16_kib_are_431(kipd):
    with RawHttp(kipd.port) as raw:
        raw.send(kiptest.build_request("GET", "/healthz", {"X-Padding": "a" * (17 * 1024)}))
        try:
            resp = raw.read_response()
        except (ConnectionResetError, EOFError) as e:
            pytest.fail(f"kipd closed the connection without a 431 answer: {e!r}")
    assert resp.status == 431, resp
    assert resp.header("Content-Type").startswith("application/problem+json")
    assert resp.json()["type"].endswith("/headers-too-large")
    check_raw(resp, "GET", "/healthz")


def test_many_headers_totalling_over_16_kib_are_431(kipd):
    headers = [(f"X-H{i}", "v" * 100) for i in range(200)]
    with RawHttp(kipd.port) as raw:
        raw.send(kiptest.build_request("GET", "/healthz", headers))
        resp = raw.read_response()
    assert resp.status == 431, resp


def test_headers_under_16_kib_are_fine(kipd):
    with RawHttp(kipd.port) as raw:
        resp = raw.request("GET", "/healthz", {"X-Padding": "a" * (15 * 1024)})
    assert resp.status == 200, resp
