"""The access matrix: every route of kipd, for every kind of caller.

The route list comes from the daemon itself (`kipd --print-routes`), so a
route added without a row in ROUTES below makes test_every_route_has_a_row
fail. Each plan route is then called by every caller kind on a plan built
for that call, and the answer must be the one the access rule gives:

  * no credentials: 401;
  * a caller who may not see the plan: 404, exactly as for a missing plan
    (and a meeting or action in it exactly as a missing meeting or action,
    the whole problem document but its request_id);
  * a caller who may see it but not change it: 403 on writes;
  * a caller who may change it: success.

Readers (kip.plan_access): the owning organisation's coordinators,
caseworkers and integration; an active participant linked by user_id while
the consent covers their organisation; coordinators and caseworkers of an
organisation the consent covers. admin and auditor see no plan.

Writers (kip.plan_may_write): the owning organisation's coordinators and
integration, and active participants (while the consent covers them).
Actions are changed only by their responsible participant, the tovholder or
the owning organisation's coordinators and integration. The consent, the
tovholder handover and closing (STEWARDS) belong to the tovholder and the
owning organisation's coordinators and integration alone. After a consent
withdrawal, everyone outside the owning organisation loses the plan.
"""

import json
import subprocess
import uuid
from types import SimpleNamespace

import pytest

import kiptest
from kiptest import Api

GIVEN_AT = "2025-03-01T12:00:00+01:00"

# ----------------------------------------------------------------- callers

# Who may see / change a plan built by _world (consent covering COV).
READERS = {"tovholder", "own_coordinator", "own_caseworker", "own_integration",
           "participant", "participant2", "cov_caseworker"}
PLAN_WRITERS = {"tovholder", "own_coordinator", "own_integration", "participant", "participant2"}
ACTION_WRITERS = {"tovholder", "own_coordinator", "own_integration", "participant"}
# After the consent is withdrawn, only the owning organisation.
READERS_WITHDRAWN = {"tovholder", "own_coordinator", "own_caseworker", "own_integration"}
PLAN_WRITERS_WITHDRAWN = {"tovholder", "own_coordinator", "own_integration"}
ACTION_WRITERS_WITHDRAWN = PLAN_WRITERS_WITHDRAWN
# Who steers the plan (consent, tovholder handover, close): the tovholder
# and the owning organisation's coordinators and integration (issue #16).
STEWARDS = {"tovholder", "own_coordinator", "own_integration"}
STEWARDS_WITHDRAWN = STEWARDS

CALLERS = ["anonymous", "admin", "auditor", "analyst", "tovholder", "own_coordinator", "own_caseworker",
           "own_integration", "participant", "participant2", "cov_caseworker", "cov_integration",
           "unc_caseworker"]
# (caller, the consent withdrawn before the call)
CASES = [(c, False) for c in CALLERS] + [(c, True) for c in CALLERS if c != "anonymous"]


@pytest.fixture(scope="module")
def cast(kipd, admin):
    own = kiptest.create_org(admin, "region_hospital")
    cov = kiptest.create_org(admin, "municipality_jobcenter")
    unc = kiptest.create_org(admin, "municipality_social")

    def user(org, roles, name):
        return kiptest.create_user(admin, org, roles, display_name=name)

    return SimpleNamespace(
        own=own, cov=cov, unc=unc,
        anonymous=Api(kipd.url, None, name="anonymous"),
        admin=admin,
        auditor=user(own, ["auditor"], "Revisor"),
        analyst=user(own, ["analyst"], "Anna Analytiker"),
        tovholder=user(own, ["coordinator"], "Tove Tovholder"),
        own_coordinator=user(own, ["coordinator"], "Kaj Koordinator"),
        own_caseworker=user(own, ["caseworker"], "Kamma Kollega"),
        own_integration=user(own, ["integration"], "Hospitalets system"),
        participant=user(cov, ["caseworker"], "Jens Jobcenter"),
        participant2=user(cov, ["caseworker"], "Pia Deltager"),
        cov_caseworker=user(cov, ["caseworker", "coordinator"], "Carl Kommune"),
        cov_integration=user(cov, ["integration"], "Kommunens system"),
        unc_caseworker=user(unc, ["caseworker", "coordinator"], "Ulla Udenfor"),
    )


def _ok(r, what):
    assert r.status_code < 300, f"{what}: {r.status_code} {r.text}"
    return r.json() if r.content else None


def _world(cast, withdrawn=False):
    """A fresh plan owned by OWN: consent covering COV, two COV participants
    linked to users, a third professional without an account, one action
    (the first COV participant responsible), one meeting in the past (so an
    outcome may be recorded at once) with the participant invited."""
    tov = cast.tovholder
    plan = kiptest.create_plan(tov)
    url = f"/v1/plans/{plan['id']}"
    _ok(tov.post(f"{url}/consent", json={"kip_consent": True, "form": "written", "given_at": GIVEN_AT,
                                        "relatives_allowed": True,
                                        "contact_organisation_ids": [cast.cov["id"]]}), "consent")
    part = _ok(tov.post(f"{url}/participants", json={"kind": "professional",
                                                     "user_id": cast.participant.user["id"],
                                                     "role": "jobcenter_caseworker"}), "participant")
    part2 = _ok(tov.post(f"{url}/participants", json={"kind": "professional",
                                                      "user_id": cast.participant2.user["id"],
                                                      "role": "caseworker"}), "participant2")
    extra = _ok(tov.post(f"{url}/participants", json={"kind": "professional", "name": "Søren Sygeplejerske",
                                                      "role": "social_nurse",
                                                      "organisation_id": cast.own["id"]}), "extra")
    action = _ok(tov.post(f"{url}/actions", json={"title": "Afklar boligsituationen", "area": "housing",
                                                  "responsible_participant_id": part["id"]}), "action")
    meeting = _ok(tov.post(f"{url}/meetings", json={
        "starts_at": kiptest.iso(kiptest.ago(days=1)), "purpose": "Første KIP-møde",   # a day ago: outcome allowed
        "location": {"kind": "hospital", "room": "Mødelokale 2"},
        "invitees": [{"participant_id": part["id"], "mode": "in_person"},
                     {"participant_id": extra["id"], "mode": "in_person"}]}), "meeting")
    doc = _ok(tov.get(url), "plan")
    citizen = next(p for p in doc["participants"] if p["kind"] == "citizen")
    if withdrawn:
        _ok(tov.post(f"{url}/consent/withdraw", json={}), "withdraw")
    return SimpleNamespace(plan=doc, url=url, part=part, part2=part2, extra=extra, citizen=citizen,
                           action=action, meeting=meeting)


def _outcome(w):
    return {"attendance": [{"participant_id": w.plan["coordinator"], "attended": True},
                           {"participant_id": w.citizen["id"], "attended": True, "mode": "in_person"}],
            "observations": [{"participant_id": w.plan["coordinator"], "text": "Status fra tovholder."}],
            "summary": "Aftalt opfølgning.", "shared_assessment": "Boligen er den største udfordring.",
            "citizen_accepted": True, "no_further_meeting": {"reason": "Forløbet er stabilt."}}


# ------------------------------------------------------------------ routes

def read(make, only=None):
    """only: the readers this read is for; other readers get 403."""
    return SimpleNamespace(kind="read", make=make, only=only)


def write(make, writers="plan", withdrawn_ok=200):
    """withdrawn_ok: the answer a permitted caller gets after the withdrawal
    (withdrawing twice is a 409 conflict, not an access question)."""
    return SimpleNamespace(kind="write", make=make, writers=writers, withdrawn_ok=withdrawn_ok)


def listed(make, shows):
    """A list that spans plans: callers who may not see the plan never find
    it there; `shows(w, caller)` says which callers must."""
    return SimpleNamespace(kind="list", make=make, shows=shows)


def not_plan(reason):
    return SimpleNamespace(kind="none", reason=reason)


STAR = {"If-Match": "*"}

ROUTES = {
    # Health and accounts: no plan data.
    ("GET", "/healthz"): not_plan("liveness; public"),
    ("GET", "/readyz"): not_plan("readiness; public"),
    ("GET", "/metrics"): not_plan("counters only; public"),
    ("GET", "/v1/openapi.yaml"): not_plan("the API contract; public"),
    ("GET", "/v1/organisations"): not_plan("accounts"),
    ("POST", "/v1/organisations"): not_plan("accounts (admin)"),
    ("GET", "/v1/organisations/{id}"): not_plan("accounts"),
    ("GET", "/v1/users"): not_plan("accounts"),
    ("POST", "/v1/users"): not_plan("accounts (admin)"),
    ("GET", "/v1/users/{id}"): not_plan("accounts"),
    ("PATCH", "/v1/users/{id}"): not_plan("accounts (admin)"),
    ("PUT", "/v1/users/{id}/password"): not_plan("accounts (admin; test_kipctl.py)"),
    ("GET", "/v1/users/{id}/tokens"): not_plan("accounts"),
    ("POST", "/v1/users/{id}/tokens"): not_plan("accounts"),
    ("DELETE", "/v1/tokens/{id}"): not_plan("accounts"),
    ("GET", "/v1/me"): not_plan("the caller's own account"),
    ("GET", "/v1/me/settings"): not_plan("the caller's own settings"),
    ("PATCH", "/v1/me/settings"): not_plan("the caller's own settings"),
    ("POST", "/v1/me/calendar-feed"): not_plan("creates the caller's secret feed URL"),
    ("DELETE", "/v1/me/calendar-feed"): not_plan("revokes the caller's secret feed URL"),
    ("POST", "/v1/admin/daily-pass"): not_plan("admin job; returns counts only"),
    ("POST", "/v1/session"): not_plan("sign-in; public"),
    ("POST", "/v1/webhooks"): not_plan("an organisation's webhook subscription; integration and admin only, "
                                       "own organisation (test_webhooks.py)"),
    ("GET", "/v1/webhooks"): not_plan("the caller's organisation's subscriptions (test_webhooks.py)"),
    ("DELETE", "/v1/webhooks/{id}"): not_plan("a subscription of the caller's organisation (test_webhooks.py)"),
    ("GET", "/v1/webhooks/{id}/deliveries"): not_plan("a subscription's deliveries: event ids and types, no plan "
                                                      "data; each event is sent only under the access rule at "
                                                      "delivery time (test_webhooks.py)"),
    ("POST", "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver"): not_plan(
        "queues a delivery again; the access rule is applied when it is sent (test_webhooks.py)"),
    ("GET", "/v1/directory"): not_plan("colleague directory: names, organisations and work contacts of active "
                                       "users, no plan data (test_directory.py)"),
    ("GET", "/v1/session"): not_plan("the caller's own session and CSRF token (test_session.py)"),
    ("DELETE", "/v1/session"): not_plan("sign-out of the caller's own session"),
    ("PUT", "/v1/me/password"): not_plan("the caller's own password"),
    ("GET", "/v1/audit"): not_plan("the audit log, for the auditor role only (test_audit.py); no plan content"),
    ("GET", "/v1/audit/verify"): not_plan("the hash chain check, for the auditor role only (test_audit.py)"),
    ("POST", "/v1/audit/verify-jobs"): not_plan("queues the full walk of the hash chain, for the auditor role "
                                                "only (test_audit.py)"),
    ("GET", "/v1/audit/verify-jobs/{id}"): not_plan("a hash chain walk's progress and counts, for the auditor "
                                                    "role only (test_audit.py)"),
    ("GET", "/v1/events"): not_plan("the live event stream: each event is filtered by kip.plan_access when "
                                    "it is sent (test_events_stream.py)"),
    ("GET", "/v1/stats"): not_plan("aggregate statistics, small cells suppressed, no plan or person; coordinators "
                                   "(own organisation) and analysts (test_stats.py)"),

    # One plan.
    ("POST", "/v1/plans"): not_plan("creates a new plan in the caller's own organisation"),
    ("GET", "/v1/plans/{id}"): read(lambda w: ("GET", w.url, None, {})),
    ("GET", "/v1/plans/{id}/fhir"): read(lambda w: ("GET", f"{w.url}/fhir", None, {})),
    ("PATCH", "/v1/plans/{id}"): write(lambda w: ("PATCH", w.url, {"reason": "Ny begrundelse"}, STAR)),
    ("POST", "/v1/plans/{id}/close"): write(
        lambda w: ("POST", f"{w.url}/close", {"reason": "completed"}, STAR), writers="steward"),
    ("GET", "/v1/plans/{id}/history"): read(lambda w: ("GET", f"{w.url}/history", None, {})),
    # The citizen's right of access: for the owning organisation's coordinators.
    ("GET", "/v1/plans/{id}/access-log"): read(lambda w: ("GET", f"{w.url}/access-log", None, {}),
                                              only={"tovholder", "own_coordinator"}),
    ("GET", "/v1/plans/{id}/participants"): read(lambda w: ("GET", f"{w.url}/participants", None, {})),
    ("POST", "/v1/plans/{id}/participants"): write(lambda w: (
        "POST", f"{w.url}/participants",
        {"kind": "professional", "name": "Læge Lund", "role": "general_practitioner",
         "organisation_id": w.plan["owner_organisation_id"]}, {})),
    ("GET", "/v1/plans/{id}/participants/{pid}"): read(
        lambda w: ("GET", f"{w.url}/participants/{w.extra['id']}", None, {})),
    ("PATCH", "/v1/plans/{id}/participants/{pid}"): write(
        lambda w: ("PATCH", f"{w.url}/participants/{w.extra['id']}", {"phone": "+45 12 34 56 78"}, {})),
    ("DELETE", "/v1/plans/{id}/participants/{pid}"): write(
        lambda w: ("DELETE", f"{w.url}/participants/{w.extra['id']}", None, {})),
    ("GET", "/v1/plans/{id}/consent"): read(lambda w: ("GET", f"{w.url}/consent", None, {})),
    ("POST", "/v1/plans/{id}/consent"): write(lambda w: (
        "POST", f"{w.url}/consent", {"kip_consent": True, "form": "verbal", "given_at": GIVEN_AT,
                                     "contact_organisation_ids": []}, {}), writers="steward"),
    ("POST", "/v1/plans/{id}/consent/withdraw"): write(
        lambda w: ("POST", f"{w.url}/consent/withdraw", {}, {}), writers="steward", withdrawn_ok=409),
    ("POST", "/v1/plans/{id}/coordinator"): write(
        lambda w: ("POST", f"{w.url}/coordinator", {"participant_id": w.extra["id"]}, {}),
        writers="steward"),
    ("GET", "/v1/plans/{id}/actions"): read(lambda w: ("GET", f"{w.url}/actions", None, {})),
    ("POST", "/v1/plans/{id}/actions"): write(lambda w: (
        "POST", f"{w.url}/actions", {"title": "Søg boligstøtte", "area": "finances",
                                     "responsible_participant_id": w.plan["coordinator"]}, {})),
    ("GET", "/v1/plans/{id}/meetings"): read(lambda w: ("GET", f"{w.url}/meetings", None, {})),
    ("POST", "/v1/plans/{id}/meetings"): write(lambda w: (
        "POST", f"{w.url}/meetings",
        {"starts_at": kiptest.iso(kiptest.from_now(days=7)),
         "purpose": "Opfølgning", "location": {"kind": "citizen_home"}}, {})),

    # Actions.
    ("GET", "/v1/actions/{id}"): read(lambda w: ("GET", f"/v1/actions/{w.action['id']}", None, {})),
    ("PATCH", "/v1/actions/{id}"): write(
        lambda w: ("PATCH", f"/v1/actions/{w.action['id']}", {"status": "in_progress"}, STAR),
        writers="action"),
    ("GET", "/v1/actions/{id}/history"): read(
        lambda w: ("GET", f"/v1/actions/{w.action['id']}/history", None, {})),

    # Meetings.
    ("GET", "/v1/meetings/{id}"): read(lambda w: ("GET", f"/v1/meetings/{w.meeting['id']}", None, {})),
    ("PATCH", "/v1/meetings/{id}"): write(
        lambda w: ("PATCH", f"/v1/meetings/{w.meeting['id']}", {"purpose": "Nyt formål"}, STAR)),
    ("GET", "/v1/meetings/{id}/agenda"): read(
        lambda w: ("GET", f"/v1/meetings/{w.meeting['id']}/agenda", None, {})),
    ("POST", "/v1/meetings/{id}/cancel"): write(
        lambda w: ("POST", f"/v1/meetings/{w.meeting['id']}/cancel", {"reason": "Borgeren er syg"}, STAR)),
    ("PUT", "/v1/meetings/{id}/invitees/{pid}/response"): write(lambda w: (
        # The owning organisation's invitee: a consent withdrawal ends the covered
        # organisation's participation, and with it their invitations.
        "PUT", f"/v1/meetings/{w.meeting['id']}/invitees/{w.extra['id']}/response", {"response": "accepted"}, {})),
    ("POST", "/v1/meetings/{id}/outcome"): write(
        lambda w: ("POST", f"/v1/meetings/{w.meeting['id']}/outcome", _outcome(w), {})),

    # Lists across plans.
    ("GET", "/v1/plans"): listed(
        lambda w: ("GET", "/v1/plans", None, {}),
        lambda r, w: any(p["id"] == w.plan["id"] for p in r.json()["items"])),
    ("POST", "/v1/plans/search"): listed(
        lambda w: ("POST", "/v1/plans/search", {"cpr": w.plan["citizen"]["cpr"]}, {}),
        lambda r, w: any(p["id"] == w.plan["id"] for p in r.json()["items"])),
    ("GET", "/v1/me/actions"): listed(
        lambda w: ("GET", "/v1/me/actions?scope=organisation&limit=500", None, {}),
        lambda r, w: any(a["id"] == w.action["id"] for a in r.json()["items"])),
    ("GET", "/v1/me/meetings"): listed(
        lambda w: ("GET", "/v1/me/meetings", None, {}),
        lambda r, w: any(m["id"] == w.meeting["id"] for m in r.json()["items"])),
    ("GET", "/v1/me/calendar.ics"): listed(
        lambda w: ("GET", "/v1/me/calendar.ics", None, {}),
        lambda r, w: w.meeting["id"] in r.text),
    ("GET", "/v1/calendar-feeds/{id}"): listed(None, None),   # by secret URL; see test_calendar_feed
}

# Which callers must find the plan's item in each list (the rest must not).
LIST_SHOWS = {
    ("GET", "/v1/plans"): READERS - {"anonymous"},
    ("POST", "/v1/plans/search"): READERS - {"anonymous"},
    # scope=organisation: actions whose responsible belongs to the caller's
    # organisation, in plans the caller may see.
    ("GET", "/v1/me/actions"): {"participant", "participant2", "cov_caseworker"},
    # Meetings the caller is invited to or chairs.
    ("GET", "/v1/me/meetings"): {"tovholder", "participant"},
    ("GET", "/v1/me/calendar.ics"): {"tovholder", "participant"},
}


def _daemon_routes():
    out = subprocess.run([str(kiptest.KIPD_BIN), "--print-routes"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_every_route_has_a_row():
    routes = _daemon_routes()
    assert len(routes) > 40
    have = {(r["method"], r["path"]) for r in routes}
    missing = sorted(have - set(ROUTES))
    assert not missing, ("routes without a row in the access matrix; add one to ROUTES in "
                         f"{__file__}: {missing}")
    stale = sorted(set(ROUTES) - have)
    assert not stale, f"rows for routes kipd no longer has: {stale}"


def _expected(row, caller, withdrawn):
    if caller == "anonymous":
        return 401
    readers = READERS_WITHDRAWN if withdrawn else READERS
    if caller not in readers:
        return 404
    if row.kind == "read":
        return 200 if row.only is None or caller in row.only else 403
    writers = {"plan": PLAN_WRITERS_WITHDRAWN if withdrawn else PLAN_WRITERS,
               "action": ACTION_WRITERS_WITHDRAWN if withdrawn else ACTION_WRITERS,
               "steward": STEWARDS_WITHDRAWN if withdrawn else STEWARDS}[row.writers]
    if caller not in writers:
        return 403
    return row.withdrawn_ok if withdrawn else 200


def _call(client, spec):
    method, path, body, headers = spec
    return client.request(method, path, json=body, headers=headers)


PLAN_ROUTES = sorted(k for k, v in ROUTES.items() if v.kind in ("read", "write"))


@pytest.mark.parametrize("route", PLAN_ROUTES, ids=[f"{m} {p}" for m, p in PLAN_ROUTES])
def test_plan_route(cast, route):
    row = ROUTES[route]
    bad = []
    for caller, withdrawn in CASES:
        w = _world(cast, withdrawn)
        before = cast.tovholder.get(w.url).json()
        r = _call(getattr(cast, caller), row.make(w))
        want = _expected(row, caller, withdrawn)
        got = r.status_code
        ok = got < 300 if want == 200 else got == want
        if not ok:
            bad.append(f"{caller}{' (withdrawn)' if withdrawn else ''}: want {want}, got {got} {r.text[:200]}")
            continue
        if want == 403 and not any(e.get("field") == "Authorization" and e.get("code") == "forbidden"
                                   for e in r.json().get("errors", [])):
            bad.append(f"{caller}: a 403 that does not name Authorization: {r.text[:200]}")
        if want in (404, 403, 401):
            # A refused call changes nothing.
            after = cast.tovholder.get(w.url).json()
            if after != before:
                bad.append(f"{caller}: a refused {route[0]} changed the plan")
        if want == 404:
            # Exactly as for a plan that does not exist.
            method, path, body, headers = row.make(w)
            for real in (w.plan["id"], w.action["id"], w.meeting["id"]):
                path = path.replace(real, str(uuid.uuid4()))
            r2 = getattr(cast, caller).request(method, path, json=body, headers=headers)
            # The whole answer, detail included, apart from request_id: a
            # meeting or action in a hidden plan is "no such meeting" /
            # "no such action", never "no such plan" (issue #16).
            one = {k: v for k, v in r.json().items() if k != "request_id"}
            two = {k: v for k, v in r2.json().items() if k != "request_id"}
            if (r2.status_code != 404 or one != two
                    or r.headers.get("Content-Type") != r2.headers.get("Content-Type")):
                bad.append(f"{caller}: hidden plan answers differently from a missing one "
                           f"({r.status_code} {one} vs {r2.status_code} {two})")
    assert not bad, f"{route[0]} {route[1]}:\n  " + "\n  ".join(bad)


LIST_ROUTES = sorted(k for k in LIST_SHOWS)


@pytest.mark.parametrize("route", LIST_ROUTES, ids=[f"{m} {p}" for m, p in LIST_ROUTES])
def test_list_route(cast, route):
    row = ROUTES[route]
    bad = []
    for caller, withdrawn in CASES:
        w = _world(cast, withdrawn)
        r = _call(getattr(cast, caller), row.make(w))
        if caller == "anonymous":
            if r.status_code != 401:
                bad.append(f"anonymous: {r.status_code}")
            continue
        if r.status_code != 200:
            if caller in ("admin", "auditor", "analyst") and r.status_code == 403:
                continue       # a list that is not for their role at all
            bad.append(f"{caller}: {r.status_code} {r.text[:200]}")
            continue
        readers = READERS_WITHDRAWN if withdrawn else READERS
        must = caller in LIST_SHOWS[route] and caller in readers
        seen = row.shows(r, w)
        if seen and caller not in readers:
            bad.append(f"{caller}{' (withdrawn)' if withdrawn else ''} sees a plan it may not see")
        elif must and not seen:
            bad.append(f"{caller}{' (withdrawn)' if withdrawn else ''} does not see its item")
    assert not bad, f"{route[0]} {route[1]}:\n  " + "\n  ".join(bad)


def test_calendar_feed(cast):
    """The secret feed URL shows the participant's meeting while the consent
    covers their organisation, and nothing after it is withdrawn."""
    w = _world(cast)
    r = cast.participant.post("/v1/me/calendar-feed")
    assert r.status_code in (200, 201), r.text
    feed = r.json()["url"]
    path = feed[feed.index("/v1/"):]
    anon = cast.anonymous
    r = anon.get(path)
    assert r.status_code == 200 and w.meeting["id"] in r.text
    _ok(cast.tovholder.post(f"{w.url}/consent/withdraw", json={}), "withdraw")
    r = anon.get(path)
    assert r.status_code == 200 and w.meeting["id"] not in r.text


# ------------------------------------------------------- audit completeness

# What each plan route writes to the audit trail when a permitted caller
# calls it: exactly these (action, resource) rows, each naming the plan and
# carrying the request id, the caller, their organisation and the remote
# address. Lists write one row per plan they show.
AUDIT = {
    ("GET", "/v1/plans/{id}"): [("plan.read", "plan")],
    ("GET", "/v1/plans/{id}/fhir"): [("plan.read", "fhir")],
    ("PATCH", "/v1/plans/{id}"): [("plan.update", "plan")],
    ("POST", "/v1/plans/{id}/close"): [("plan.close", "plan")],
    ("GET", "/v1/plans/{id}/history"): [("plan.history", "history")],
    ("GET", "/v1/plans/{id}/access-log"): [("plan.access_log", "plan")],
    ("GET", "/v1/plans/{id}/participants"): [("participant.list", "participants")],
    ("POST", "/v1/plans/{id}/participants"): [("participant.create", "participant")],
    ("GET", "/v1/plans/{id}/participants/{pid}"): [("participant.read", "participant")],
    ("PATCH", "/v1/plans/{id}/participants/{pid}"): [("participant.update", "participant")],
    ("DELETE", "/v1/plans/{id}/participants/{pid}"): [("participant.leave", "participant")],
    ("GET", "/v1/plans/{id}/consent"): [("consent.read", "consent")],
    ("POST", "/v1/plans/{id}/consent"): [("consent.create", "consent")],
    # The covered organisation's participants leave with the withdrawal.
    ("POST", "/v1/plans/{id}/consent/withdraw"): [("consent.withdraw", "consent"),
                                                  ("participant.leave", "participant")],
    ("POST", "/v1/plans/{id}/coordinator"): [("plan.handover", "plan")],
    ("GET", "/v1/plans/{id}/actions"): [("action.list", "actions")],
    ("POST", "/v1/plans/{id}/actions"): [("action.create", "action")],
    ("GET", "/v1/plans/{id}/meetings"): [("meeting.list", "meetings")],
    ("POST", "/v1/plans/{id}/meetings"): [("meeting.create", "meeting")],
    ("GET", "/v1/actions/{id}"): [("action.read", "action")],
    ("PATCH", "/v1/actions/{id}"): [("action.update", "action")],
    ("GET", "/v1/actions/{id}/history"): [("action.history", "action_history")],
    ("GET", "/v1/meetings/{id}"): [("meeting.read", "meeting")],
    ("PATCH", "/v1/meetings/{id}"): [("meeting.update", "meeting")],
    ("GET", "/v1/meetings/{id}/agenda"): [("meeting.agenda", "agenda")],
    ("POST", "/v1/meetings/{id}/cancel"): [("meeting.cancel", "meeting")],
    ("PUT", "/v1/meetings/{id}/invitees/{pid}/response"): [("meeting.respond", "meeting")],
    ("POST", "/v1/meetings/{id}/outcome"): [("meeting.outcome", "meeting")],
}

# Lists write one record per plan they show: (caller, action, resource,
# the plan ids the answer shows).
AUDIT_LISTS = {
    ("GET", "/v1/plans"): ("tovholder", "plan.list", "plan",
                           lambda r: {p["id"] for p in r.json()["items"]}),
    ("POST", "/v1/plans/search"): ("tovholder", "plan.list", "plan",
                                   lambda r: {p["id"] for p in r.json()["items"]}),
    ("GET", "/v1/me/actions"): ("participant", "action.list_mine", "action",
                                lambda r: {a["plan_id"] for a in r.json()["items"]}),
    ("GET", "/v1/me/meetings"): ("participant", "meeting.list_mine", "meeting",
                                 lambda r: {m["plan_id"] for m in r.json()["items"]}),
    ("GET", "/v1/me/calendar.ics"): ("participant", "calendar.mine", "calendar", None),
    ("GET", "/v1/calendar-feeds/{id}"): ("participant", "calendar.feed", "calendar", None),
}


def test_every_plan_route_has_its_audit_row():
    missing = sorted(k for k, v in ROUTES.items()
                     if v.kind in ("read", "write", "list") and k not in AUDIT and k not in AUDIT_LISTS)
    assert not missing, f"plan routes without an expected audit record in AUDIT: {missing}"


@pytest.mark.parametrize("route", sorted(AUDIT), ids=[f"{m} {p}" for m, p in sorted(AUDIT)])
def test_audit_record_of(cast, route, kipd, pg):
    row = ROUTES[route]
    w = _world(cast)
    rid = "audit-" + uuid.uuid4().hex
    method, path, body, headers = row.make(w) if row.make else (None, None, None, None)
    if method is None:
        pytest.fail(f"{route}: no way to call it here")
    who = cast.tovholder
    r = who.request(method, path, json=body, headers={**headers, "X-Request-Id": rid})
    assert r.status_code < 300, r.text
    rows = pg.psql("SELECT action || '|' || resource || '|' || coalesce(plan_id::text, '') || '|' || "
                   "coalesce(user_id::text, '') || '|' || coalesce(organisation_id::text, '') || '|' || "
                   f"coalesce(remote_addr, '') FROM kip.audit WHERE request_id = '{rid}' ORDER BY id",
                   db=kipd.db).splitlines()
    got = sorted(tuple(x.split("|")) for x in rows)
    want = sorted((a, res, w.plan["id"], who.user["id"], cast.own["id"], "127.0.0.1")
                  for a, res in AUDIT[route])
    assert got == want, f"{route}: audit rows {got}, want {want}"


def _audit_rows(pg, kipd, rid):
    rows = pg.psql("SELECT action || '|' || resource || '|' || coalesce(plan_id::text, '') || '|' || "
                   "coalesce(user_id::text, '') FROM kip.audit "
                   f"WHERE request_id = '{rid}' ORDER BY id", db=kipd.db).splitlines()
    return [tuple(x.split("|")) for x in rows]


@pytest.mark.parametrize("route", sorted(AUDIT_LISTS), ids=[f"{m} {p}" for m, p in sorted(AUDIT_LISTS)])
def test_audit_records_of_list(cast, route, kipd, pg):
    """A list writes one record per plan it shows, and none for the rest."""
    who_name, action, resource, shown = AUDIT_LISTS[route]
    who = getattr(cast, who_name)
    w = _world(cast)
    rid = "audit-" + uuid.uuid4().hex
    if route == ("GET", "/v1/calendar-feeds/{id}"):
        feed = _ok(who.post("/v1/me/calendar-feed"), "feed")["url"]
        r = cast.anonymous.get(feed[feed.index("/v1/"):], headers={"X-Request-Id": rid})
    else:
        method, path, body, headers = ROUTES[route].make(w)
        r = who.request(method, path, json=body, headers={**headers, "X-Request-Id": rid})
    assert r.status_code == 200, r.text
    rows = _audit_rows(pg, kipd, rid)
    assert rows, f"{route}: no audit record"
    assert all(a == action and res == resource and u == who.user["id"] for a, res, _, u in rows), rows
    plans = [p for _, _, p, _ in rows]
    assert len(plans) == len(set(plans)), f"{route}: one record per plan, got {plans}"
    assert w.plan["id"] in plans, f"{route}: the plan shown has no record"
    if shown is not None:
        assert set(plans) == shown(r), f"{route}: records for {set(plans)}, shown {shown(r)}"


def test_withdrawal_ends_the_lost_participations(cast, admin, kipd, pg):
    """The covered organisation's participants leave with the withdrawal;
    their open action comes back as needing a new responsible and the daily
    pass raises it to the tovholder until it is re-assigned (issue #16)."""
    w = _world(cast)
    tov = cast.tovholder
    r = tov.post(f"{w.url}/consent/withdraw", json={})
    assert r.status_code == 200, r.text
    assert r.json()["needs_responsible"] == [w.action["id"]]
    parts = {p["id"]: p for p in tov.get(w.url).json()["participants"]}
    assert parts[w.part["id"]]["left_at"] is not None
    assert parts[w.part2["id"]]["left_at"] is not None
    assert parts[w.extra["id"]]["left_at"] is None          # the owning organisation's stays
    assert parts[w.plan["coordinator"]]["left_at"] is None
    _ok(admin.post("/v1/admin/daily-pass"), "daily pass")
    q = (f"SELECT payload->>'coordinator_participant_id' FROM kip.events "
         f"WHERE kind = 'action.needs_responsible' AND resource_id = '{w.action['id']}'")
    assert pg.psql(q, db=kipd.db).split() == [w.plan["coordinator"]]
    # Re-assigned: raised no more.
    a = tov.get(f"/v1/actions/{w.action['id']}").json()
    _ok(tov.patch(f"/v1/actions/{w.action['id']}", json={"responsible_participant_id": w.extra["id"]},
                  headers={"If-Match": f'"{a["version"]}"'}), "reassign")
    pg.psql(f"DELETE FROM kip.events WHERE kind = 'action.needs_responsible' "
            f"AND resource_id = '{w.action['id']}'", db=kipd.db)
    _ok(admin.post("/v1/admin/daily-pass"), "daily pass")
    assert pg.psql(q, db=kipd.db).split() == []
