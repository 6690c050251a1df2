"""The clock the suite runs on. Under scripts/test --clock-matrix the tests,
PostgreSQL and kipd must all see the same shifted clock (libfaketime), so a
test that says "yesterday at 10:00 Copenhagen time" means the same day to all
three. Without a shifted clock, the three still agree."""

import datetime as dt
import email.utils
import time

import kiptest
from kiptest import CPH


def test_python_postgres_and_kipd_share_one_clock(kipd, admin, pg):
    before = kiptest.now_utc()
    in_pg = kiptest.parse_time(pg.psql("SELECT to_char(now() AT TIME ZONE 'UTC', "
                                       "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", db=kipd.db).strip())
    r = admin.get("/v1/me")
    in_kipd = email.utils.parsedate_to_datetime(r.headers["Date"])
    after = kiptest.now_utc()
    slack = dt.timedelta(seconds=2)             # the Date header has whole seconds
    assert before - slack <= in_pg <= after + slack, (before, in_pg, after)
    assert before - slack <= in_kipd <= after + slack, (before, in_kipd, after)
    # kip.today() is Copenhagen's date, as the tests' own cph_today().
    assert pg.psql("SELECT kip.today()", db=kipd.db).strip() in \
        {kiptest.cph_today().isoformat(), (kiptest.cph_today() - kiptest.DAY).isoformat()}


def test_the_shifted_clock_started_at_its_instant_and_advances():
    now = kiptest.now_utc()
    if kiptest.CLOCK_INSTANT:
        start = kiptest.parse_time(kiptest.CLOCK_INSTANT)
        # The whole suite runs within an hour of the instant.
        assert start <= now <= start + dt.timedelta(hours=1), (start, now)
    t0, m0 = kiptest.now_utc(), time.monotonic()
    time.sleep(0.2)                              # works under libfaketime too
    elapsed = (kiptest.now_utc() - t0).total_seconds()
    assert 0.19 <= elapsed < 5 and 0.19 <= time.monotonic() - m0 < 5, elapsed


def test_cph_keeps_the_wall_clock_hour_and_add_months_clamps():
    today = kiptest.cph_today()
    for days in (-400, -1, 0, 1, 183):
        t = kiptest.cph(days, 10)
        assert t.astimezone(CPH).hour == 10 and t.date() == today + days * kiptest.DAY
        assert t.utcoffset() in (dt.timedelta(hours=1), dt.timedelta(hours=2))
    # Across the 2027 spring change: Saturday 10:00 CET, Sunday 10:00 CEST, 23 hours apart.
    sat = dt.datetime(2027, 3, 27, 10, tzinfo=CPH)
    sun = dt.datetime(2027, 3, 28, 10, tzinfo=CPH)
    assert sun.astimezone(kiptest.UTC) - sat.astimezone(kiptest.UTC) == dt.timedelta(hours=23)
    assert kiptest.add_months(dt.date(2027, 8, 31), 6) == dt.date(2028, 2, 29)
    assert kiptest.add_months(dt.date(2026, 8, 31), 6) == dt.date(2027, 2, 28)
    assert kiptest.add_months(dt.date(2028, 2, 29), -12) == dt.date(2027, 2, 28)
    assert kiptest.add_months(dt.date(2027, 12, 31), 1) == dt.date(2028, 1, 31)
