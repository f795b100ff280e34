"""Schedules across DST changes, by example: the cases reported in issue 20 and the kinds
around them, each with the intervals Airflow 3's timetables give (test_schedule_airflow.py
checks the same against Airflow itself, over many more cases)."""

from __future__ import annotations

import datetime as dt

import pytest

from stackwise.interval import Interval
from stackwise.scheduling.backfill import intervals_in_range
from stackwise.scheduling.schedule import Schedule

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)


def _iso(intervals: list[Interval]) -> list[tuple[str, str]]:
    return [(i.start.isoformat(), i.end.isoformat()) for i in intervals]


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_a_daily_cron_in_the_repeated_hour_gives_one_interval_that_day() -> None:
    """Issue 20: `0 1 * * *` in New York on 2024-11-03 (01:00-01:59 happens twice) gave two
    intervals for the day, one of an hour. Airflow reads 01:00 as its later occurrence
    (01:00-05:00), so the day has one interval; the 25-hour one is the day before's."""
    schedule = Schedule("0 1 * * *", start="2024-10-01", timezone="America/New_York")

    day = intervals_in_range(schedule, "2024-11-03", "2024-11-03")
    around = intervals_in_range(schedule, "2024-11-02", "2024-11-04")

    assert _iso(day) == [("2024-11-03T01:00:00-05:00", "2024-11-04T01:00:00-05:00")]
    assert _iso(around) == [
        ("2024-11-02T01:00:00-04:00", "2024-11-03T01:00:00-05:00"),
        ("2024-11-03T01:00:00-05:00", "2024-11-04T01:00:00-05:00"),
        ("2024-11-04T01:00:00-05:00", "2024-11-05T01:00:00-05:00"),
    ]
    assert [i.end - i.start for i in around] == [25 * HOUR, 24 * HOUR, 24 * HOUR]


def test_latest_due_and_next_due_at_inside_the_repeated_hour() -> None:
    """Issue 20: `@hourly` in Chicago at 07:30Z (01:30 CST, the second 01:30 of the night)
    gave [05:00Z, 06:00Z), which had already run, and 07:00Z, a time already past."""
    schedule = Schedule("@hourly", start="2024-10-01", timezone="America/Chicago")
    now = _at("2024-11-03T07:30:00+00:00")

    latest = schedule.latest_due(now)

    assert latest is not None
    assert (latest.start, latest.end) == (_at("2024-11-03T06:00Z"), _at("2024-11-03T07:00Z"))
    assert schedule.next_due_at(now) == _at("2024-11-03T08:00Z")


@pytest.mark.parametrize(
    ("cron", "zone", "night"),
    [
        ("@hourly", "America/Chicago", "2024-11-03T04:00Z"),
        ("@hourly", "America/Chicago", "2024-03-10T05:00Z"),
        ("*/15 * * * *", "Europe/Berlin", "2024-10-26T23:00Z"),
        ("0 1 * * *", "America/New_York", "2024-11-03T02:00Z"),
        ("30 2 * * *", "America/New_York", "2024-03-10T04:00Z"),
        ("@daily", "America/Santiago", "2024-09-07T23:00Z"),
        ("0 2 * * *", "Australia/Sydney", "2024-04-06T12:00Z"),
    ],
)
def test_through_a_changing_night_the_scheduler_never_looks_back(
    cron: str, zone: str, night: str
) -> None:
    """Minute by minute over six hours around the change: the latest due interval has ended
    and moves only forward, and the next one comes due strictly later than now (the old
    arithmetic returned past times, so the scheduler polled every 50 ms for an hour)."""
    schedule = Schedule(cron, start="2024-01-01", timezone=zone)
    seen: list[Interval] = []
    for minute in range(6 * 60):
        now = _at(night) + dt.timedelta(minutes=minute, seconds=30 * (minute % 2))
        latest = schedule.latest_due(now)
        assert latest is not None and latest.end <= now
        if seen and latest != seen[-1]:
            assert latest.start == seen[-1].end  # the next interval, none skipped
        seen.append(latest)
        due_at = schedule.next_due_at(now)
        assert due_at is not None and due_at > now
        assert due_at == schedule.next_due_at(latest.end)


def test_a_wall_time_the_clocks_skip_moves_forward_by_the_gap() -> None:
    """02:30 does not exist in New York on 2024-03-10: Airflow runs it at 03:30 EDT."""
    schedule = Schedule("30 2 * * *", start="2024-03-01", timezone="America/New_York")

    got = intervals_in_range(schedule, "2024-03-09", "2024-03-10")

    assert _iso(got) == [
        ("2024-03-09T02:30:00-05:00", "2024-03-10T03:30:00-04:00"),
        ("2024-03-10T03:30:00-04:00", "2024-03-11T02:30:00-04:00"),
    ]


def test_a_skipped_midnight_starts_the_day_when_it_begins() -> None:
    """Santiago skips 2024-09-08 00:00 (clocks go to 01:00): that day's daily interval starts
    at 01:00-03:00 and lasts 23 hours, and a backfill of that date has exactly it."""
    schedule = Schedule("@daily", start="2024-09-01", timezone="America/Santiago")

    got = intervals_in_range(schedule, "2024-09-08", "2024-09-08")

    assert _iso(got) == [("2024-09-08T01:00:00-03:00", "2024-09-09T00:00:00-03:00")]
    assert got[0].end - got[0].start == 23 * HOUR


def test_every_hour_of_a_repeated_hour_runs_once() -> None:
    """A day of 25 hours has 25 hourly intervals, each one hour long, none twice."""
    schedule = Schedule("@hourly", start="2024-10-01", timezone="America/New_York")

    got = intervals_in_range(schedule, "2024-11-03", "2024-11-03")

    assert len(got) == 25
    assert all(i.end - i.start == HOUR for i in got)
    assert len({i.start for i in got}) == 25
    assert [i.start.isoformat() for i in got[1:3]] == [
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:00:00-05:00",
    ]


def test_no_hole_where_airflows_alignment_would_leave_one() -> None:
    """`*/20 1-3 * * *` on a spring-forward night: 02:00-02:40 do not exist. Airflow's next
    interval after [01:40, 03:00) starts at 03:40 and leaves [03:00, 03:40) uncovered;
    stackwise runs 03:00 and 03:20 as the boundaries Airflow computes from 03:00."""
    schedule = Schedule("*/20 1-3 * * *", start="2024-03-01", timezone="America/New_York")

    got = intervals_in_range(schedule, "2024-03-10T01:40", "2024-03-10T03:40")

    assert _iso(got) == [
        ("2024-03-10T01:40:00-05:00", "2024-03-10T03:00:00-04:00"),
        ("2024-03-10T03:00:00-04:00", "2024-03-10T03:20:00-04:00"),
        ("2024-03-10T03:20:00-04:00", "2024-03-10T03:40:00-04:00"),
        ("2024-03-10T03:40:00-04:00", "2024-03-11T01:00:00-04:00"),
    ]


def test_interval_datetimes_compare_and_subtract_as_instants() -> None:
    """Datetimes that share a zone's tzinfo subtract as wall-clock times (24 h for a 25-hour
    day), and one in a repeated hour never equals a UTC datetime: intervals carry fixed UTC
    offsets, so both work as a user expects."""
    schedule = Schedule("@daily", start="2024-10-01", timezone="Europe/Berlin")

    day = intervals_in_range(schedule, "2024-10-27", "2024-10-27")[0]
    hour = intervals_in_range(
        Schedule("@hourly", start="2024-10-01", timezone="Europe/Berlin"),
        "2024-10-27T02:00",
        "2024-10-27T02:00",
    )[0]

    assert day.end - day.start == 25 * HOUR
    assert hour.start == _at("2024-10-27T01:00Z")  # 02:00+01:00, the second 02:00
    assert hour.end - hour.start == HOUR


def test_latest_due_does_not_walk_the_schedules_history() -> None:
    """A per-minute schedule started in 1970: latest_due and next_due_at look at a few hours
    before now, not at 55 years of minutes (this would not finish otherwise)."""
    schedule = Schedule("* * * * *", start="1970-01-01", timezone="Europe/Berlin")
    now = _at("2024-10-27T01:30:30Z")

    latest = schedule.latest_due(now)

    assert latest is not None
    assert (latest.start, latest.end) == (_at("2024-10-27T01:29Z"), _at("2024-10-27T01:30Z"))
    assert schedule.next_due_at(now) == _at("2024-10-27T01:31Z")
