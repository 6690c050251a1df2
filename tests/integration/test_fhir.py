"""GET /v1/plans/{id}/fhir: a plan as an HL7 FHIR R4 Bundle (issue 14).

A rich plan (participants of every kind, one who left, goals with sub-goals
in every status, actions in every status, a held meeting with attendance, a
cancelled one and a planned one with every invitee answer, a consent) is
read as FHIR and checked:

  * by FHIR.js (npm `fhir`, pinned in tests/fhir/package-lock.json), which
    validates the Bundle offline against the R4 StructureDefinitions; no
    message of severity error is allowed;
  * every reference resolves to the fullUrl of an entry of the Bundle, every
    fullUrl is a urn:uuid and unique;
  * the status maps of docs/fhir.md, the CPR identifier, the owners;
  * the access rule and the audit row of GET /v1/plans/{id}.
"""

import json
import re
import subprocess
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import kiptest

FHIR_DIR = Path(__file__).resolve().parents[1] / "fhir"
CPR_SYSTEM = "urn:oid:1.2.208.176.1.2"
URN_UUID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GIVEN_AT = "2025-03-01T12:00:00+01:00"


@pytest.fixture(scope="module")
def validator():
    """The FHIR.js validator; npm ci when node_modules is missing, as
    scripts/test does. A validator that cannot be installed fails the test."""
    if not (FHIR_DIR / "node_modules" / "fhir").is_dir():
        p = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=FHIR_DIR,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"npm ci in {FHIR_DIR} failed:\n{p.stdout}\n{p.stderr}"

    def validate(resource, tmp_path):
        f = tmp_path / f"bundle-{uuid.uuid4().hex}.json"
        f.write_text(json.dumps(resource), encoding="utf-8")
        p = subprocess.run(["node", str(FHIR_DIR / "validate.js"), str(f)], capture_output=True, text=True,
                           timeout=120)
        assert p.stdout.strip(), f"validator printed nothing: {p.stderr}"
        result = json.loads(p.stdout.splitlines()[0])
        return p.returncode, result
    return validate


def _ok(r, what):
    assert r.status_code < 300, f"{what}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def _fhir(client, plan_id, **kw):
    r = client.get(f"/v1/plans/{plan_id}/fhir", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/fhir+json"), r.headers["Content-Type"]
    return r.json()


def _references(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                _references(v, out)
    elif isinstance(node, list):
        for v in node:
            _references(v, out)
    return out


def _by_type(bundle, rtype):
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def _by_id(bundle):
    return {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}


def _check_frame(bundle):
    """fullUrls unique urn:uuids equal to the resource ids; every reference
    resolves inside the Bundle; no null and no empty array or object."""
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls)), "duplicate fullUrl"
    for e in bundle["entry"]:
        assert URN_UUID.match(e["fullUrl"]), e["fullUrl"]
        assert e["fullUrl"] == "urn:uuid:" + e["resource"]["id"]
    refs = _references(bundle, [])
    assert refs, "a Bundle without references"
    dangling = sorted(set(refs) - set(urls))
    assert not dangling, f"references that do not resolve inside the Bundle: {dangling}"

    def walk(node, path):
        assert node is not None, f"null at {path}"
        if isinstance(node, dict):
            assert node, f"empty object at {path}"
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            assert node, f"empty array at {path}"
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
    walk(bundle, "Bundle")
    return set(urls)


def _when(text):
    """A FHIR date or dateTime as a comparable aware datetime (a date as its
    first instant in UTC, which is enough for start <= end)."""
    if len(text) == 10:
        text += "T00:00:00+00:00"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _check_invariants(bundle):
    """The R4 invariants (constraints) that apply to what kipd sends. FHIR.js
    checks structure, cardinality, types and required codes but evaluates no
    invariant, so these are checked here, each named by its key in the spec."""
    types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
    bad = []

    def walk(node, path):
        if isinstance(node, dict):
            if "reference" in node and isinstance(node["reference"], str) and "type" in node:
                if types.get(node["reference"]) != node["type"]:
                    bad.append(f"{path}: Reference.type {node['type']} names a {types.get(node['reference'])}")
            if path.endswith("period") or path.endswith("Period"):
                if "start" in node and "end" in node and _when(node["start"]) > _when(node["end"]):
                    bad.append(f"per-1 at {path}: start after end")
            if path.endswith("extension]") or path.split(".")[-1].startswith("extension["):
                if ("extension" in node) == any(k.startswith("value") for k in node):
                    bad.append(f"ext-1 at {path}: extensions or a value, not both")
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    for e in bundle["entry"]:
        r = e["resource"]
        rt = r["resourceType"]
        walk(r, rt)
        if rt == "CareTeam":
            for p in r.get("participant", []):
                if "onBehalfOf" in p and types.get(p.get("member", {}).get("reference")) != "Practitioner":
                    bad.append("ctm-1: CareTeam.participant.onBehalfOf with a member that is no Practitioner")
        if rt == "Appointment":
            if ("start" in r) != ("end" in r):
                bad.append("app-2: start and end, or neither")
            if "start" not in r and r["status"] not in ("proposed", "cancelled", "waitlist"):
                bad.append("app-3: only proposed, cancelled or waitlist may lack start and end")
            if "cancelationReason" in r and r["status"] not in ("cancelled", "noshow"):
                bad.append("app-4: cancelationReason only when cancelled or noshow")
            for p in r["participant"]:
                if "type" not in p and "actor" not in p:
                    bad.append("app-1: a participant needs a type or an actor")
        if rt == "CarePlan":
            for a in r.get("activity", []):
                if ("reference" in a) == ("detail" in a):
                    bad.append("cpl-3: an activity has a reference or a detail, not both")
        if rt == "Consent":
            if "policy" not in r and "policyRule" not in r:
                bad.append("ppc-1: a policy or a policyRule")
            scope = {c.get("code") for c in r["scope"].get("coding", [])}
            if scope & {"patient-privacy", "research", "adr", "treatment"} and "patient" not in r:
                bad.append("ppc-2..5: this scope needs a patient")
        if rt == "Organization" and "name" not in r and "identifier" not in r:
            bad.append("org-1: a name or an identifier")
        if rt == "Task" and "lastModified" in r and "authoredOn" in r:
            if _when(r["lastModified"]) < _when(r["authoredOn"]):
                bad.append("inv-1: Task.lastModified before authoredOn")
    assert not bad, "R4 invariants broken:\n  " + "\n  ".join(bad)


def _assert_valid(validator, bundle, tmp_path):
    _check_invariants(bundle)
    code, result = validator(bundle, tmp_path)
    errors = [m for m in result["messages"] if m["severity"] == "error"]
    assert not errors and code == 0, f"FHIR R4 validation errors: {json.dumps(errors, indent=1)}"


@pytest.fixture(scope="module")
def world(kipd, admin):
    own = kiptest.create_org(admin, "region_hospital", cvr="12345678", ean="5790000123456")
    cov = kiptest.create_org(admin, "municipality_jobcenter")
    unc = kiptest.create_org(admin, "municipality_social")
    tov = kiptest.create_user(admin, own, ["coordinator"], display_name="Tove Tovholder")
    jc = kiptest.create_user(admin, cov, ["caseworker"], display_name="Jens Jobcenter")
    cov_cw = kiptest.create_user(admin, cov, ["caseworker"], display_name="Carl Kommune")
    unc_cw = kiptest.create_user(admin, unc, ["caseworker", "coordinator"], display_name="Ulla Udenfor")
    cpr = kiptest.new_cpr()
    goal_ids = [str(uuid.uuid4()) for _ in range(5)]
    plan = kiptest.create_plan(tov, cpr=cpr, goals=[
        {"id": goal_ids[0], "text": "Egen bolig inden sommer", "owner": "citizen", "status": "open",
         "sub_goals": [{"id": goal_ids[1], "text": "Søge boligstøtte", "status": "achieved"},
                       {"id": goal_ids[2], "text": "Møde med boligkontoret", "status": "dropped"}]},
        {"id": goal_ids[3], "text": "Stabil medicinering", "owner": "team", "status": "achieved"},
        {"id": goal_ids[4], "text": "Arbejdsprøvning", "owner": "team", "status": "dropped"}])
    url = f"/v1/plans/{plan['id']}"
    _ok(tov.post(f"{url}/consent", json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT,
                                        "relatives_allowed": True, "contact_organisation_ids": [cov["id"]]}),
        "consent")
    part_jc = _ok(tov.post(f"{url}/participants", json={"kind": "professional", "user_id": jc.user["id"],
                                                        "role": "jobcenter_caseworker",
                                                        "role_title": "Sagsbehandler, jobcenter"}), "jc")
    gp = _ok(tov.post(f"{url}/participants", json={"kind": "professional", "name": "Læge Lund",
                                                   "role": "general_practitioner", "phone": "+45 11 22 33 44",
                                                   "email": "lund@example.org"}), "gp")
    nurse = _ok(tov.post(f"{url}/participants", json={"kind": "professional", "name": "Søren Sygeplejerske",
                                                      "role": "social_nurse", "organisation_id": own["id"]}),
                "nurse")
    relative = _ok(tov.post(f"{url}/participants", json={"kind": "relative", "name": "Søster Åse",
                                                         "role": "relative", "role_title": "Søster",
                                                         "phone": "40 50 60 70"}), "relative")
    gone = _ok(tov.post(f"{url}/participants", json={"kind": "professional", "name": "Vikar Vagn",
                                                     "role": "other", "organisation_id": own["id"]}), "gone")
    doc = _ok(tov.get(url), "plan")
    citizen = next(p for p in doc["participants"] if p["kind"] == "citizen")
    coord = doc["coordinator"]

    def action(title, responsible, status=None, due=None):
        body = {"title": title, "area": "housing", "responsible_participant_id": responsible,
                "description": f"Beskrivelse af {title.lower()}"}
        if due:
            body["due_date"] = due
        a = _ok(tov.post(f"{url}/actions", json=body), title)
        if status in ("in_progress", "done", "cancelled"):
            a = _ok(tov.patch(f"/v1/actions/{a['id']}", json={"status": status}, headers={"If-Match": "*"}),
                    status)
        return a

    yesterday = kiptest.cph_today() - timedelta(days=1)     # overdue at any hour
    actions = {
        "open": action("Afklar boligsituationen", citizen["id"], due=yesterday.isoformat()),
        "in_progress": action("Søg boligstøtte", relative["id"], "in_progress"),
        "done": action("Ansøg om arbejdsprøvning", part_jc["id"], "done"),
        "cancelled": action("Henvis til misbrugscenter", gp["id"], "cancelled"),
    }

    held = _ok(tov.post(f"{url}/meetings", json={
        "starts_at": kiptest.iso(kiptest.ago(days=1)), "purpose": "Første KIP-møde",
        "location": {"kind": "hospital", "room": "Mødelokale 2"},
        "invitees": [{"participant_id": part_jc["id"], "mode": "in_person"},
                     {"participant_id": citizen["id"], "mode": "in_person"},
                     {"participant_id": relative["id"], "mode": "phone"}]}), "held")
    _ok(tov.post(f"/v1/meetings/{held['id']}/outcome", json={
        "attendance": [{"participant_id": coord, "attended": True, "mode": "in_person"},
                       {"participant_id": citizen["id"], "attended": True, "mode": "in_person"},
                       {"participant_id": part_jc["id"], "attended": True, "mode": "video"},
                       {"participant_id": relative["id"], "attended": False},
                       {"participant_id": nurse["id"], "attended": True, "mode": "in_person"}],
        "observations": [{"participant_id": coord, "text": "Status fra tovholder."}],
        "summary": "Aftalt opfølgning.", "shared_assessment": "Boligen er den største udfordring.",
        "citizen_accepted": True, "no_further_meeting": {"reason": "Næste møde aftales senere."}}), "outcome")
    cancelled = _ok(tov.post(f"{url}/meetings", json={
        "starts_at": kiptest.iso(kiptest.from_now(days=3)), "purpose": "Aflyst møde",
        "location": {"kind": "citizen_home"},
        "invitees": [{"participant_id": gp["id"], "mode": "phone"}]}), "cancelled")
    _ok(tov.post(f"/v1/meetings/{cancelled['id']}/cancel", json={"reason": "Borgeren er syg"},
                 headers={"If-Match": "*"}), "cancel")
    planned = _ok(tov.post(f"{url}/meetings", json={
        "starts_at": kiptest.iso(kiptest.from_now(days=14)), "purpose": "Opfølgning",
        "location": {"kind": "municipality", "address": "Rådhuspladsen 1"},
        "invitees": [{"participant_id": part_jc["id"], "mode": "video"},
                     {"participant_id": gp["id"], "mode": "phone"},
                     {"participant_id": nurse["id"], "mode": "in_person"}]}), "planned")
    _ok(tov.put(f"/v1/meetings/{planned['id']}/invitees/{part_jc['id']}/response", json={"response": "accepted"}),
        "accept")
    _ok(tov.put(f"/v1/meetings/{planned['id']}/invitees/{gp['id']}/response", json={"response": "declined"}),
        "decline")
    _ok(tov.delete(f"{url}/participants/{gone['id']}"), "leave")

    return dict(own=own, cov=cov, unc=unc, tov=tov, jc=jc, cov_cw=cov_cw, unc_cw=unc_cw, cpr=cpr,
                plan=_ok(tov.get(url), "plan"), url=url, goal_ids=goal_ids, citizen=citizen, coord=coord,
                part_jc=part_jc, gp=gp, nurse=nurse, relative=relative, gone=gone, actions=actions,
                held=held, cancelled=cancelled, planned=planned)


def test_rich_plan_is_valid_fhir_r4_with_every_reference_inside(world, validator, tmp_path):
    bundle = _fhir(world["tov"], world["plan"]["id"])
    _check_frame(bundle)
    _assert_valid(validator, bundle, tmp_path)
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert types == {"Patient", "CarePlan", "CareTeam", "Organization", "Practitioner", "PractitionerRole",
                     "RelatedPerson", "Goal", "Task", "Appointment", "Consent"}


def test_the_validator_finds_errors(validator, tmp_path):
    """The validator is not a rubber stamp: a wrong code, an unknown element
    and a missing required element are each an error."""
    bad = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:" + str(uuid.uuid4()),
         "resource": {"resourceType": "Task", "status": "open", "intent": "plan", "owner_id": "x"}},
        {"fullUrl": "urn:uuid:" + str(uuid.uuid4()),
         "resource": {"resourceType": "Appointment", "status": "booked"}}]}
    code, result = validator(bad, tmp_path)
    errors = {(m["location"], m["message"]) for m in result["messages"] if m["severity"] == "error"}
    assert code == 1
    assert any(loc == "Task.status" for loc, _ in errors), errors
    assert any(loc == "Task.owner_id" for loc, _ in errors), errors
    assert any("participant" in loc.lower() or "participant" in msg.lower() for loc, msg in errors), errors


def test_the_invariant_checks_find_errors():
    """The invariants FHIR.js leaves alone are checked by _check_invariants,
    which finds a broken one."""
    org, team = "urn:uuid:" + str(uuid.uuid4()), "urn:uuid:" + str(uuid.uuid4())
    role = "urn:uuid:" + str(uuid.uuid4())
    bad = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": org, "resource": {"resourceType": "Organization", "id": org[9:], "name": "X"}},
        {"fullUrl": role, "resource": {"resourceType": "PractitionerRole", "id": role[9:]}},
        {"fullUrl": team, "resource": {"resourceType": "CareTeam", "id": team[9:], "participant": [
            {"member": {"reference": role, "type": "PractitionerRole"},
             "onBehalfOf": {"reference": org, "type": "Organization"},
             "period": {"start": "2026-02-01", "end": "2026-01-01"}}]}}]}
    with pytest.raises(AssertionError) as e:
        _check_invariants(bad)
    assert "ctm-1" in str(e.value) and "per-1" in str(e.value)


def test_patient_carries_the_cpr_number(world):
    bundle = _fhir(world["tov"], world["plan"]["id"])
    [patient] = _by_type(bundle, "Patient")
    assert patient["identifier"] == [{"use": "official", "system": CPR_SYSTEM,
                                      "value": world["cpr"].replace("-", "")}]
    assert patient["name"][0]["text"] == world["plan"]["citizen"]["name"]
    assert patient["birthDate"] == world["plan"]["citizen"]["birth_date"]
    # The citizen participant is the Patient.
    assert patient["id"] == world["citizen"]["id"]


def test_careplan_and_careteam(world):
    bundle = _fhir(world["tov"], world["plan"]["id"])
    res = _by_id(bundle)
    [cp] = _by_type(bundle, "CarePlan")
    [team] = _by_type(bundle, "CareTeam")
    [patient] = _by_type(bundle, "Patient")
    assert cp["id"] == world["plan"]["id"]
    assert world["plan"]["status"] == "active" and cp["status"] == "active" and cp["intent"] == "plan"
    assert cp["subject"]["reference"] == f"urn:uuid:{patient['id']}"
    assert cp["careTeam"] == [{"reference": f"urn:uuid:{team['id']}", "type": "CareTeam"}]
    assert cp["author"]["reference"] == f"urn:uuid:{world['own']['id']}"
    assert [g["reference"] for g in cp["goal"]] == [f"urn:uuid:{g}" for g in world["goal_ids"]]
    tasks = {f"urn:uuid:{a['id']}" for a in world["actions"].values()}
    acts = {a["reference"]["reference"] for a in cp["activity"]}
    assert tasks <= acts
    assert {f"urn:uuid:{world[k]['id']}" for k in ("held", "cancelled", "planned")} <= acts

    members = {p["member"]["reference"]: p for p in team["participant"]}
    # Every participant, the one who left included, with the end of their period.
    assert len(team["participant"]) == len(world["plan"]["participants"])
    gone = members[f"urn:uuid:{res[world['gone']['id']]['practitioner']['reference'][9:]}"]
    assert "end" in gone["period"]
    # Roles: kipd's code system; the tovholder also as coordinator.
    jc_role = res[world["part_jc"]["id"]]
    jc = members[jc_role["practitioner"]["reference"]]
    assert jc["role"][0]["coding"][0] == {"system": "https://kipd.dk/fhir/CodeSystem/participant-role",
                                          "code": "jobcenter_caseworker", "display": "Jobcentre caseworker"}
    assert jc["role"][0]["text"] == "Sagsbehandler, jobcenter"
    assert jc["onBehalfOf"]["reference"] == f"urn:uuid:{world['cov']['id']}"
    tov = members[res[world["coord"]]["practitioner"]["reference"]]
    assert [r["coding"][0]["code"] for r in tov["role"]] == ["social_nurse", "coordinator"]
    assert members[f"urn:uuid:{world['relative']['id']}"]["role"][0]["coding"][0]["code"] == "relative"
    assert members[f"urn:uuid:{patient['id']}"]["role"][0]["coding"][0]["code"] == "citizen"
    assert res[world["relative"]["id"]]["resourceType"] == "RelatedPerson"
    # Every organisation involved, with its identifiers.
    orgs = {o["id"]: o for o in _by_type(bundle, "Organization")}
    assert set(orgs) == {world["own"]["id"], world["cov"]["id"]}
    assert {"system": "urn:oid:1.3.88", "value": "5790000123456"} in orgs[world["own"]["id"]]["identifier"]


def test_goals(world):
    bundle = _fhir(world["tov"], world["plan"]["id"])
    goals = {g["id"]: g for g in _by_type(bundle, "Goal")}
    ids = world["goal_ids"]
    assert set(goals) == set(ids)
    want = {ids[0]: "active", ids[1]: "completed", ids[2]: "cancelled", ids[3]: "completed", ids[4]: "cancelled"}
    assert {k: g["lifecycleStatus"] for k, g in goals.items()} == want
    assert goals[ids[0]]["description"] == {"text": "Egen bolig inden sommer"}
    assert "expressedBy" in goals[ids[0]] and "expressedBy" not in goals[ids[3]]
    milestones = [x["extension"][1]["valueReference"]["reference"] for x in goals[ids[0]]["extension"]]
    assert milestones == [f"urn:uuid:{ids[1]}", f"urn:uuid:{ids[2]}"]


def test_tasks_status_map_and_owners(world):
    bundle = _fhir(world["tov"], world["plan"]["id"])
    res = _by_id(bundle)
    [patient] = _by_type(bundle, "Patient")
    want = {"open": "requested", "in_progress": "in-progress", "done": "completed", "cancelled": "cancelled"}
    for kip_status, a in world["actions"].items():
        t = res[a["id"]]
        assert t["resourceType"] == "Task"
        assert t["status"] == want[kip_status], (kip_status, t["status"])
        assert t["intent"] == "plan"
        assert t["description"] == a["title"]
        assert t["for"]["reference"] == f"urn:uuid:{patient['id']}"
        assert t["basedOn"] == [{"reference": f"urn:uuid:{world['plan']['id']}", "type": "CarePlan"}]
    owner = {k: res[world["actions"][k]["id"]]["owner"] for k in want}
    assert owner["open"] == {"reference": f"urn:uuid:{patient['id']}", "type": "Patient"}
    assert owner["in_progress"] == {"reference": f"urn:uuid:{world['relative']['id']}", "type": "RelatedPerson"}
    assert owner["done"] == {"reference": f"urn:uuid:{world['part_jc']['id']}", "type": "PractitionerRole"}
    open_task = res[world["actions"]["open"]["id"]]
    assert open_task["restriction"]["period"]["end"] == world["actions"]["open"]["due_date"]
    assert open_task["businessStatus"]["coding"][0]["code"] == "overdue"
    assert "end" in res[world["actions"]["done"]["id"]]["executionPeriod"]


def test_appointments_status_participants_and_attendance(world):
    bundle = _fhir(world["tov"], world["plan"]["id"])
    res = _by_id(bundle)
    held, cancelled, planned = (res[world[k]["id"]] for k in ("held", "cancelled", "planned"))
    assert (held["status"], cancelled["status"], planned["status"]) == ("fulfilled", "cancelled", "booked")
    assert cancelled["cancelationReason"] == {"text": "Borgeren er syg"}
    assert "cancelationReason" not in planned

    def parts(appt):
        return {p["actor"]["reference"][9:]: p for p in appt["participant"]}

    p = parts(planned)
    assert p[world["part_jc"]["id"]]["status"] == "accepted"
    assert p[world["gp"]["id"]]["status"] == "declined"
    assert p[world["nurse"]["id"]]["status"] == "needs-action"
    assert p[world["coord"]]["type"][0]["coding"][0]["code"] == "chair"

    def ext(part, name):
        for e in part.get("extension", []):
            if e["url"] == f"https://kipd.dk/fhir/StructureDefinition/{name}":
                return e.get("valueBoolean", e.get("valueCode"))
        return None

    h = parts(held)
    patient_id = _by_type(bundle, "Patient")[0]["id"]
    assert ext(h[world["part_jc"]["id"]], "attended") is True
    assert ext(h[world["part_jc"]["id"]], "attendance-mode") == "video"
    assert ext(h[world["relative"]["id"]], "attended") is False
    assert h[world["part_jc"]["id"]]["status"] == "accepted"          # there: accepted
    assert h[world["relative"]["id"]]["status"] == "needs-action"     # never answered, not there
    assert ext(h[patient_id], "attended") is True
    assert ext(h[world["coord"]], "attended") is True
    # Not invited, but there: listed from the outcome.
    assert ext(h[world["nurse"]["id"]], "attended") is True
    assert ext(p[world["gp"]["id"]], "attended") is None


def test_consent_and_its_withdrawal(kipd, admin, world, validator, tmp_path):
    bundle = _fhir(world["tov"], world["plan"]["id"])
    [consent] = _by_type(bundle, "Consent")
    assert consent["status"] == "active"
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    assert consent["provision"]["type"] == "permit"
    assert [a["reference"]["reference"] for a in consent["provision"]["actor"]] == [f"urn:uuid:{world['cov']['id']}"]
    assert consent["provision"]["provision"][0]["type"] == "permit"      # relatives allowed

    # A separate plan, withdrawn: inactive, and the covered organisation loses it.
    tov = world["tov"]
    plan = kiptest.create_plan(tov)
    url = f"/v1/plans/{plan['id']}"
    _ok(tov.post(f"{url}/consent", json={"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT,
                                        "contact_organisation_ids": [world["cov"]["id"]]}), "consent")
    assert world["cov_cw"].get(f"{url}/fhir").status_code == 200
    _ok(tov.post(f"{url}/consent/withdraw", json={}), "withdraw")
    bundle = _fhir(tov, plan["id"])
    _check_frame(bundle)
    _assert_valid(validator, bundle, tmp_path)
    [consent] = _by_type(bundle, "Consent")
    assert consent["status"] == "inactive" and "end" in consent["provision"]["period"]
    assert consent["provision"]["provision"][0]["type"] == "deny"
    kiptest.problem(world["cov_cw"].get(f"{url}/fhir"), 404)


def test_a_bare_draft_and_a_closed_plan_are_valid(world, validator, tmp_path):
    """No consent, goals, actions or meetings: still valid, no empty arrays.
    Closed as completed: CarePlan completed, CareTeam inactive; closed for
    another reason: revoked."""
    tov = world["tov"]
    draft = _ok(tov.post("/v1/plans", json={"citizen": {"name": "Borger Uden CPR", "cpr": None},
                                            "reason": "Kun et udkast"}), "draft")
    bundle = _fhir(tov, draft["id"])
    _check_frame(bundle)
    _assert_valid(validator, bundle, tmp_path)
    assert _by_type(bundle, "CarePlan")[0]["status"] == "draft"
    assert _by_type(bundle, "CareTeam")[0]["status"] == "proposed"
    assert not _by_type(bundle, "Consent")
    for reason, status in (("completed", "completed"), ("moved", "revoked")):
        plan = kiptest.create_plan(tov)
        _ok(tov.post(f"/v1/plans/{plan['id']}/close", json={"reason": reason}, headers={"If-Match": "*"}), "close")
        bundle = _fhir(tov, plan["id"])
        _check_frame(bundle)
        _assert_valid(validator, bundle, tmp_path)
        assert _by_type(bundle, "CarePlan")[0]["status"] == status
        assert _by_type(bundle, "CareTeam")[0]["status"] == "inactive"


def test_access_rule_is_the_plans(world, anon):
    pid = world["plan"]["id"]
    # The covered organisation's caseworker and a participant see it.
    assert world["cov_cw"].get(f"/v1/plans/{pid}/fhir").status_code == 200
    assert world["jc"].get(f"/v1/plans/{pid}/fhir").status_code == 200
    # Another organisation without consent: 404, exactly as a missing plan.
    hidden = world["unc_cw"].get(f"/v1/plans/{pid}/fhir")
    missing = world["unc_cw"].get(f"/v1/plans/{uuid.uuid4()}/fhir")
    kiptest.problem(hidden, 404)
    kiptest.problem(missing, 404)
    assert ({k: v for k, v in hidden.json().items() if k != "request_id"}
            == {k: v for k, v in missing.json().items() if k != "request_id"})
    assert world["plan"]["citizen"]["name"] not in hidden.text
    kiptest.problem(anon.get(f"/v1/plans/{pid}/fhir"), 401)


def test_audited_like_a_plan_read(world, kipd, pg):
    pid = world["plan"]["id"]
    rid = "fhir-" + uuid.uuid4().hex
    r = world["cov_cw"].get(f"/v1/plans/{pid}/fhir", headers={"X-Request-Id": rid})
    assert r.status_code == 200
    rows = pg.psql("SELECT action || '|' || resource || '|' || plan_id || '|' || user_id || '|' || organisation_id "
                   f"FROM kip.audit WHERE request_id = '{rid}'", db=kipd.db).splitlines()
    assert rows == [f"plan.read|fhir|{pid}|{world['cov_cw'].user['id']}|{world['cov']['id']}"]
    # A refused read writes nothing.
    rid = "fhir-" + uuid.uuid4().hex
    assert world["unc_cw"].get(f"/v1/plans/{pid}/fhir", headers={"X-Request-Id": rid}).status_code == 404
    assert pg.psql(f"SELECT count(*) FROM kip.audit WHERE request_id = '{rid}'", db=kipd.db).strip() == "0"
