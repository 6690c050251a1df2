"""Calendar feeds: iCalendar built by kipd with libical, parsed here with a
real parser (python3-icalendar): Copenhagen times across the October DST
change, the caller's attendance window, stable UIDs, SEQUENCE on reschedule,
STATUS:CANCELLED, no CPR, initials by default, and the revocable secret
feed URL."""

import datetime as dt
import urllib.parse
from zoneinfo import ZoneInfo

import icalendar
import pytest

import kiptest
from kiptest import problem

CPH = ZoneInfo("Europe/Copenhagen")
UTC = dt.timezone.utc


def next_october_change():
    """The last Sunday of the next October that is still ahead (CEST -> CET)."""
    today = dt.datetime.now(CPH).date()
    year = today.year
    while True:
        d = dt.date(year, 10, 31)
        d -= dt.timedelta(days=(d.weekday() + 1) % 7)
        if d > today + dt.timedelta(days=2):
            return d
        year += 1


def at(day, hour, minute=0):
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=CPH)


def schedule(client, plan, start, **kw):
    body = {"starts_at": start.isoformat(),
            "location": {"kind": "citizen_home", "address": "Nørrebrogade 1, 2200 København N"},
            "purpose": "Opfølgning på bolig og behandling"}
    body.update(kw)
    r = client.post(f"/v1/plans/{plan['id']}/meetings", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def feed(client, path="/v1/me/calendar.ics"):
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/calendar"), r.headers
    cal = icalendar.Calendar.from_ical(r.content)
    return r.text, cal


def events(cal):
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def utc(prop):
    return prop.dt.astimezone(UTC)


def test_feed_times_across_the_october_dst_change(coordinator, make_plan):
    plan = make_plan(coordinator)
    change = next_october_change()
    before = schedule(coordinator, plan, at(change - dt.timedelta(days=1), 10))   # Saturday, CEST
    after = schedule(coordinator, plan, at(change + dt.timedelta(days=1), 10))    # Monday, CET
    text, cal = feed(coordinator)
    assert "BEGIN:VTIMEZONE" in text and "TZID:Europe/Copenhagen" in text
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/Copenhagen"]
    evs = events(cal)
    b, a = evs[f"{before['id']}@kipd"], evs[f"{after['id']}@kipd"]
    assert b["DTSTART"].params["TZID"] == "Europe/Copenhagen"
    assert (b["DTSTART"].dt.hour, a["DTSTART"].dt.hour) == (10, 10)
    assert utc(b["DTSTART"]).time() == dt.time(8, 0)
    assert utc(a["DTSTART"]).time() == dt.time(9, 0)
    assert utc(a["DTEND"]) - utc(a["DTSTART"]) == dt.timedelta(minutes=90)
    assert "Nørrebrogade 1" in str(b["LOCATION"]) and "Borgerens hjem" in str(b["LOCATION"])
    assert "Opfølgning på bolig og behandling" in str(b["DESCRIPTION"])
    assert str(b["STATUS"]) == "CONFIRMED" and int(b["SEQUENCE"]) == 0


def test_feed_shows_the_callers_own_attendance_window(coordinator, make_plan, make_user):
    plan = make_plan(coordinator)
    gp_user = make_user(coordinator.org, ["caseworker"])
    r = coordinator.post(f"/v1/plans/{plan['id']}/participants",
                         json={"kind": "professional", "role": "general_practitioner",
                               "user_id": gp_user.user["id"], "default_attendance": "phone"})
    assert r.status_code == 201, r.text
    gp = r.json()
    start = at(dt.datetime.now(CPH).date() + dt.timedelta(days=9), 13)
    m = schedule(coordinator, plan, start, invitees=[
        {"participant_id": plan["coordinator"]},
        {"participant_id": gp["id"], "window_start": (start + dt.timedelta(minutes=15)).isoformat(),
         "window_end": (start + dt.timedelta(minutes=30)).isoformat()}])
    ev = events(feed(gp_user)[1])[f"{m['id']}@kipd"]
    assert ev["DTSTART"].dt == start + dt.timedelta(minutes=15)
    assert ev["DTEND"].dt == start + dt.timedelta(minutes=30)
    assert "telefon" in str(ev["DESCRIPTION"])
    ev = events(feed(coordinator)[1])[f"{m['id']}@kipd"]          # the chair has the whole meeting
    assert ev["DTSTART"].dt == start and ev["DTEND"].dt == start + dt.timedelta(minutes=90)


def test_reschedule_bumps_sequence_and_cancel_is_cancelled(coordinator, make_plan):
    plan = make_plan(coordinator)
    start = at(dt.datetime.now(CPH).date() + dt.timedelta(days=12), 9)
    m = schedule(coordinator, plan, start)
    uid = f"{m['id']}@kipd"
    r = coordinator.patch(f"/v1/meetings/{m['id']}",
                          json={"starts_at": (start + dt.timedelta(hours=3)).isoformat()},
                          headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    ev = events(feed(coordinator)[1])[uid]
    assert int(ev["SEQUENCE"]) == 1 and ev["DTSTART"].dt == start + dt.timedelta(hours=3)
    r = coordinator.post(f"/v1/meetings/{m['id']}/cancel", json={"reason": "Sygdom"},
                         headers={"If-Match": '"2"'})
    assert r.status_code == 200, r.text
    ev = events(feed(coordinator)[1])[uid]
    assert str(ev["STATUS"]) == "CANCELLED" and int(ev["SEQUENCE"]) == 2


def test_no_cpr_and_initials_unless_the_user_chooses_the_name(coordinator, make_plan):
    cpr = kiptest.new_cpr()
    plan = make_plan(coordinator, name="Jens Peter Hansen", cpr=cpr)
    m = schedule(coordinator, plan, at(dt.datetime.now(CPH).date() + dt.timedelta(days=4), 10))
    r = coordinator.get("/v1/me/settings")
    assert r.status_code == 200 and r.json() == {"calendar_show_citizen_name": False}
    text, cal = feed(coordinator)
    ev = events(cal)[f"{m['id']}@kipd"]
    assert str(ev["SUMMARY"]) == "KIP-møde: J.P.H."
    assert "Hansen" not in text
    assert cpr not in text and cpr.replace("-", "") not in text
    r = coordinator.patch("/v1/me/settings", json={"calendar_show_citizen_name": True})
    assert r.status_code == 200 and r.json() == {"calendar_show_citizen_name": True}
    text, cal = feed(coordinator)
    assert str(events(cal)[f"{m['id']}@kipd"]["SUMMARY"]) == "KIP-møde: Jens Peter Hansen"
    assert cpr not in text and cpr.replace("-", "") not in text
    problem(coordinator.patch("/v1/me/settings", json={"calendar_show_citizen_name": "yes"}), 400)
    r = coordinator.get("/v1/me")                      # /v1/me keeps its documented shape
    assert r.status_code == 200


def test_secret_feed_url_works_without_a_token_and_can_be_revoked(coordinator, make_plan, anon, kipd):
    plan = make_plan(coordinator)
    m = schedule(coordinator, plan, at(dt.datetime.now(CPH).date() + dt.timedelta(days=6), 11))
    problem(anon.get("/v1/me/calendar.ics"), 401)
    r = coordinator.post("/v1/me/calendar-feed")
    assert r.status_code == 201, r.text
    made = r.json()
    url = made["url"]
    key = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["key"][0]
    kiptest.remember_secret(key)                      # it must never reach a log line
    assert len(key) >= 43 and made["id"] in url
    text, cal = feed(anon, url)
    assert f"{m['id']}@kipd" in events(cal)
    problem(anon.get(url.replace(key, key[:-2] + ("AA" if not key.endswith("AA") else "BB"))), 404)
    problem(anon.get(url.split("?")[0]), 422, "key")

    # A new URL replaces the old one.
    second = coordinator.post("/v1/me/calendar-feed").json()["url"]
    kiptest.remember_secret(urllib.parse.parse_qs(urllib.parse.urlsplit(second).query)["key"][0])
    problem(anon.get(url), 404)
    assert anon.get(second).status_code == 200

    r = coordinator.delete("/v1/me/calendar-feed")
    assert r.status_code == 204
    problem(anon.get(second), 404)
    assert not [line for line in kipd.stderr_lines() if key in line]


# ------------------------------------------------- an absolute feed URL

def _feed_url(client, **headers):
    r = client.post("/v1/me/calendar-feed", headers=headers)
    assert r.status_code == 201, r.text
    url = r.json()["url"]
    kiptest.remember_secret(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["key"][0])
    return url


def test_feed_url_is_absolute_from_the_request_without_public_url(kipd, coordinator, anon):
    url = _feed_url(coordinator)
    assert url.startswith(kipd.url.rstrip("/") + "/v1/calendar-feeds/"), url
    assert anon.get(url).status_code == 200
    # Behind a TLS proxy the scheme follows X-Forwarded-Proto; a Host that is
    # not a host name is never echoed.
    assert _feed_url(coordinator, **{"X-Forwarded-Proto": "https"}).startswith("https://")
    url = _feed_url(coordinator, Host="evil.example/<script>")
    assert "evil" not in url and url.startswith("http://"), url


def test_feed_url_uses_public_url(kipd_factory):
    k = kipd_factory(extra_args=["--public-url", "https://kip.example.dk/"])
    admin = kiptest.Api(k.url, k.admin_token(), name="admin")
    nurse = kiptest.create_user(admin, kiptest.create_org(admin, "region_hospital"), ["coordinator"])
    url = _feed_url(nurse, Host="other.example")
    assert url.startswith("https://kip.example.dk/v1/calendar-feeds/"), url
    # The path part works against kipd itself.
    assert nurse.anonymous().get(url[len("https://kip.example.dk"):]).status_code == 200


@pytest.mark.parametrize("bad", ["kip.example.dk", "ftp://kip.example.dk", "https://", "https://x/?a=b"])
def test_bad_public_url_refused(kipd_factory, bad):
    k = kipd_factory(extra_args=["--public-url", bad], wait=False)
    assert k.wait_exit(10) == 2


# ------------------------------------------- the room in agenda and calendar

@pytest.mark.parametrize("room, shown", [
    ("Lokale 4", "Lokale 4"),
    ("lokale 4", "lokale 4"),
    ("Mødelokale 2.14", "Mødelokale 2.14"),
    ("4", "lokale 4"),
    ("B12", "lokale B12"),
])
def test_room_is_printed_once(coordinator, make_plan, room, shown):
    """A room given as "Lokale 4" printed as "lokale Lokale 4"."""
    plan = make_plan(coordinator)
    start = at(dt.datetime.now(CPH).date() + dt.timedelta(days=3), 10)
    m = schedule(coordinator, plan, start, location={"kind": "hospital", "address": "Bispebjerg Bakke 23",
                                                     "room": room})
    agenda = coordinator.get(f"/v1/meetings/{m['id']}/agenda", headers={"Accept": "text/html"})
    assert agenda.status_code == 200, agenda.text
    assert f"Bispebjerg Bakke 23, {shown}" in agenda.text, agenda.text
    assert "lokale lokale" not in agenda.text.lower()
    _, cal = feed(coordinator)
    location = str(events(cal)[f"{m['id']}@kipd"]["LOCATION"])
    assert location.endswith(f"Bispebjerg Bakke 23, {shown}"), location
    assert "lokale lokale" not in location.lower()
