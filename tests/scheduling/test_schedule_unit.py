"""Schedule interval arithmetic, with Airflow's meaning: presets are Airflow's cron strings, a
cron schedule's intervals run between consecutive fire times in the schedule's timezone (23 or
25 hours across a DST change), `every=` steps in absolute time, intervals are half-open and
chain, a run is due once its interval has ended. And the errors, each naming the bad value
and the fix."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from stackwise.errors import ScheduleError
from stackwise.interval import Interval
from stackwise.scheduling.backfill import intervals_in_range
from stackwise.scheduling.ledger import IntervalRow, decide, key
from stackwise.scheduling.schedule import PRESETS, Schedule

UTC = dt.UTC
AMS = ZoneInfo("Europe/Amsterdam")
T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def first(schedule: Schedule, n: int) -> list[Interval]:
    return list(itertools.islice(schedule.intervals(schedule.start_at, T0 + 1000 * DAY), n))


def utc_length(interval: Interval) -> dt.timedelta:
    """Elapsed time (datetimes sharing a tzinfo subtract as wall times: compare in UTC)."""
    return interval.end.astimezone(UTC) - interval.start.astimezone(UTC)


# -- presets and cron ---------------------------------------------------------------------------
def test_presets_are_airflows_cron_strings() -> None:
    airflow = {
        "@hourly": "0 * * * *",
        "@daily": "0 0 * * *",
        "@weekly": "0 0 * * 0",
        "@monthly": "0 0 1 * *",
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
    }
    assert airflow == PRESETS
    for preset, cron in airflow.items():
        assert Schedule(preset, start="2026-01-01").cron == cron


@pytest.mark.parametrize(
    ("preset", "start", "expected"),
    [
        ("@hourly", "2026-01-01", [("2026-01-01T00:00", "2026-01-01T01:00"),
                                   ("2026-01-01T01:00", "2026-01-01T02:00")]),
        ("@daily", "2026-01-01", [("2026-01-01T00:00", "2026-01-02T00:00"),
                                  ("2026-01-02T00:00", "2026-01-03T00:00")]),
        # 2026-01-01 is a Thursday: weekly intervals run Sunday to Sunday.
        ("@weekly", "2026-01-01", [("2026-01-04T00:00", "2026-01-11T00:00"),
                                   ("2026-01-11T00:00", "2026-01-18T00:00")]),
        ("@monthly", "2026-01-15", [("2026-02-01T00:00", "2026-03-01T00:00"),
                                    ("2026-03-01T00:00", "2026-04-01T00:00")]),
        ("@yearly", "2026-01-01", [("2026-01-01T00:00", "2027-01-01T00:00"),
                                   ("2027-01-01T00:00", "2028-01-01T00:00")]),
    ],
)  # fmt: skip
def test_preset_intervals(preset: str, start: str, expected: list[tuple[str, str]]) -> None:
    got = first(Schedule(preset, start=start), 2)

    def at(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)

    assert [(i.start, i.end) for i in got] == [(at(a), at(b)) for a, b in expected]
    assert all(i.logical_date == i.start for i in got)


def test_cron_with_a_day_of_week_range_spans_the_weekend_from_friday() -> None:
    schedule = Schedule("30 2 * * 1-5", start="2026-01-01")  # weekdays at 02:30

    got = first(schedule, 4)

    at = [dt.datetime(2026, 1, d, 2, 30, tzinfo=UTC) for d in (1, 2, 5, 6, 7)]
    assert [(i.start, i.end) for i in got] == list(zip(at, at[1:], strict=False))
    assert [i.start.strftime("%a") for i in got] == ["Thu", "Fri", "Mon", "Tue"]
    assert utc_length(got[1]) == 3 * DAY  # Friday's interval ends on Monday


def test_half_open_intervals_chain() -> None:
    for schedule in (
        Schedule("@daily", start="2026-01-01"),
        Schedule("15 */6 * * *", start="2026-01-01", timezone="Europe/Amsterdam"),
        Schedule(every="90m", start="2026-01-01T00:10"),
    ):
        got = first(schedule, 20)
        assert len(got) == 20
        assert all(a.end == b.start for a, b in itertools.pairwise(got)), schedule
        assert all(i.start < i.end for i in got)


# -- timezones and DST ------------------------------------------------------------------------
def test_amsterdam_daily_interval_is_23_hours_when_summer_time_starts() -> None:
    schedule = Schedule("@daily", start="2026-03-28", timezone="Europe/Amsterdam")

    got = first(schedule, 3)

    assert [i.start.replace(tzinfo=None) for i in got] == [
        dt.datetime(2026, 3, d) for d in (28, 29, 30)
    ]
    assert [utc_length(i) for i in got] == [24 * HOUR, 23 * HOUR, 24 * HOUR]
    assert got[1].start.astimezone(UTC) == dt.datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert got[1].end.astimezone(UTC) == dt.datetime(2026, 3, 29, 22, tzinfo=UTC)


def test_amsterdam_daily_interval_is_25_hours_when_summer_time_ends() -> None:
    schedule = Schedule("@daily", start="2026-10-24", timezone="Europe/Amsterdam")

    got = first(schedule, 3)

    assert [i.start.replace(tzinfo=None) for i in got] == [
        dt.datetime(2026, 10, d) for d in (24, 25, 26)
    ]
    assert [utc_length(i) for i in got] == [24 * HOUR, 25 * HOUR, 24 * HOUR]
    assert got[1].start.astimezone(UTC) == dt.datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert got[1].end.astimezone(UTC) == dt.datetime(2026, 10, 25, 23, tzinfo=UTC)


def test_every_is_absolute_time_across_a_dst_change() -> None:
    schedule = Schedule(every="1d", start="2026-03-28T12:00", timezone="Europe/Amsterdam")

    got = first(schedule, 3)

    assert [utc_length(i) for i in got] == [24 * HOUR] * 3
    assert [i.start.astimezone(UTC).hour for i in got] == [11, 11, 11]
    # ...so the local wall-clock time moves by the hour the clocks moved.
    assert [i.start.astimezone(AMS).hour for i in got] == [12, 13, 13]


def test_naive_start_is_in_the_schedule_timezone() -> None:
    schedule = Schedule("@daily", start="2026-07-01", timezone="America/New_York")

    assert schedule.start_at.astimezone(UTC) == dt.datetime(2026, 7, 1, 4, tzinfo=UTC)
    assert first(schedule, 1)[0].start.astimezone(UTC) == dt.datetime(2026, 7, 1, 4, tzinfo=UTC)
    assert key(first(schedule, 1)[0]) == "2026-07-01T04:00:00+00:00"


# -- due, latest_due, next_due_at, end ---------------------------------------------------------
def test_due_excludes_the_interval_that_contains_now() -> None:
    schedule = Schedule(every="1h", start=T0)

    assert [i.start for i in schedule.due(T0 + 3.5 * HOUR)] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    # At exactly 03:00, [02:00, 03:00) has ended and [03:00, 04:00) has just begun.
    assert [i.start for i in schedule.due(T0 + 3 * HOUR)] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert list(schedule.due(T0 + 0.5 * HOUR)) == []
    assert list(schedule.due(T0 - DAY)) == []


def test_latest_due() -> None:
    schedule = Schedule("@daily", start="2026-01-01")

    latest = schedule.latest_due(dt.datetime(2026, 1, 5, 13, tzinfo=UTC))

    assert latest is not None
    assert (latest.start, latest.end) == (
        dt.datetime(2026, 1, 4, tzinfo=UTC),
        dt.datetime(2026, 1, 5, tzinfo=UTC),
    )
    assert schedule.latest_due(dt.datetime(2026, 1, 1, 23, 59, tzinfo=UTC)) is None


def test_next_due_at() -> None:
    schedule = Schedule(every="1h", start=T0)

    assert schedule.next_due_at(T0 - DAY) == T0 + HOUR  # before the start: the first end
    assert schedule.next_due_at(T0) == T0 + HOUR
    assert schedule.next_due_at(T0 + 3.5 * HOUR) == T0 + 4 * HOUR
    assert schedule.next_due_at(T0 + 3 * HOUR) == T0 + 4 * HOUR

    daily = Schedule("0 6 * * *", start="2026-01-01")
    assert daily.next_due_at(dt.datetime(2026, 1, 3, 7, tzinfo=UTC)) == dt.datetime(
        2026, 1, 4, 6, tzinfo=UTC
    )


def test_schedule_end_is_the_last_logical_date() -> None:
    schedule = Schedule(every="1h", start=T0, end=T0 + 2 * HOUR)

    assert [i.start for i in schedule.due(T0 + 10 * DAY)] == [T0, T0 + HOUR, T0 + 2 * HOUR]
    assert schedule.latest_due(T0 + 10 * DAY) == Interval(
        T0 + 2 * HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR
    )
    assert schedule.next_due_at(T0 + 10 * DAY) is None  # over
    assert schedule.next_due_at(T0 + 1.5 * HOUR) == T0 + 2 * HOUR


def test_next_due_at_inside_the_last_interval_is_its_end() -> None:
    """[02:00, 03:00) is the schedule's last interval (logical date == end); at 02:30 it has
    not ended, so it is still to come due at 03:00 (`due` agrees), not 'schedule over'."""
    schedule = Schedule(every="1h", start=T0, end=T0 + 2 * HOUR)
    now = T0 + 2.5 * HOUR

    assert [i.start for i in schedule.due(T0 + 3 * HOUR)][-1] == T0 + 2 * HOUR
    assert schedule.next_due_at(now) == T0 + 3 * HOUR


# -- backfill ranges ----------------------------------------------------------------------------
def test_backfill_range_is_inclusive_and_a_date_end_covers_the_whole_day() -> None:
    hourly = Schedule("@hourly", start="2026-01-01")

    assert len(intervals_in_range(hourly, "2026-01-01", "2026-01-01")) == 24
    assert len(intervals_in_range(hourly, "2026-01-01", "2026-01-01T05:00")) == 6
    daily = intervals_in_range(Schedule("@daily", start="2026-01-01"), "2026-01-01", "2026-01-10")
    assert [i.start.day for i in daily] == list(range(1, 11))


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-01-10", "2026-01-01", "--end 2026-01-01 is before --start 2026-01-10; swap them"),
        ("2025-06-01", "2025-06-30", "no interval of the schedule"),
        ("2026-01-01", "1/5/2026", "--end '1/5/2026' is not a date; use YYYY-MM-DD"),
    ],
)
def test_backfill_range_errors(start: str, end: str, message: str) -> None:
    schedule = Schedule("@daily", start="2026-01-01")

    with pytest.raises(ScheduleError) as err:
        intervals_in_range(schedule, start, end)

    assert message in err.value.message


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        (dict(cron="61 * * * *", start="2026-01-01"),
         ["invalid cron expression '61 * * * *'", "5 fields", "'@daily'"]),
        (dict(cron="0 0 * *", start="2026-01-01"),
         ["invalid cron expression '0 0 * *'", "5 fields"]),
        (dict(cron="@fortnightly", start="2026-01-01"),
         ["unknown schedule preset '@fortnightly'", "@daily", "5-field cron expression"]),
        (dict(cron="@daily", start="2026-01-01", timezone="Mars/Olympus"),
         ["unknown timezone 'Mars/Olympus'", "IANA name", "Europe/Amsterdam"]),
        (dict(cron="@daily", start="01/02/2026"),
         ["start '01/02/2026' is not a date", "YYYY-MM-DD"]),
        (dict(cron="@daily", start="2026-01-01", end="next tuesday"),
         ["end 'next tuesday' is not a date", "YYYY-MM-DD"]),
        (dict(every="6 hours", start="2026-01-01"),
         ["every='6 hours' is not a duration", "'6h'"]),
        (dict(every="0h", start="2026-01-01"), ["every='0h' must be a positive duration"]),
        (dict(every=dt.timedelta(seconds=-5), start="2026-01-01"),
         ["must be a positive duration"]),
        (dict(cron="@daily", start="2026-01-10", end="2026-01-01"),
         ["schedule end 2026-01-01 00:00:00+00:00 is before its start 2026-01-10"]),
        (dict(cron="@daily"), ["needs a start date", "start='2026-01-01'"]),
        (dict(cron="@daily", every="1d", start="2026-01-01"),
         ["exactly one of a cron expression", "every="]),
        (dict(start="2026-01-01"), ["exactly one of a cron expression"]),
        (dict(cron="@daily", start="2026-01-01", max_active_runs=0),
         ["max_active_runs=0 must be >= 1"]),
    ],
    ids=[
        "cron-field-out-of-range", "cron-4-fields", "unknown-preset", "unknown-timezone",
        "bad-start-text", "bad-end-text", "bad-every-text", "zero-every", "negative-every",
        "end-before-start", "missing-start", "cron-and-every", "neither", "max-active-0",
    ],
)  # fmt: skip
def test_schedule_errors_name_the_value_and_the_fix(
    kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ScheduleError) as err:
        Schedule(**kwargs)  # type: ignore[arg-type]

    assert err.value.exit_code == 2
    for fragment in fragments:
        assert fragment in err.value.message


# -- the ledger's rule table --------------------------------------------------------------------
def _row(status: str, run_id: str | None = "r1", pid: int | None = None) -> IntervalRow:
    import socket

    return IntervalRow(
        "p", "k", "s", "e", status, run_id, None, socket.gethostname(), pid, 1
    )  # fmt: skip


@pytest.mark.parametrize(
    ("row", "reprocess", "action"),
    [
        (None, "none", "run"),
        (_row("SUCCEEDED"), "failed", "skip"),
        (_row("SUCCEEDED"), "all", "run"),
        (_row("FAILED"), "failed", "resume"),
        (_row("FAILED"), "all", "run"),  # all = recompute, never reuse a failed run's steps
        (_row("KILLED"), "all", "run"),
        (_row("FAILED"), "none", "skip"),
        (_row("FAILED", run_id=None), "failed", "run"),
        (_row("KILLED"), "none", "resume"),
        (_row("RUNNING", pid=2**22 + 12345), "none", "resume"),  # no such process: stale
    ],
)
def test_decide(row: IntervalRow | None, reprocess: str, action: str) -> None:
    assert decide(row, reprocess).action == action  # type: ignore[arg-type]


def test_decide_skips_an_interval_running_in_a_live_process() -> None:
    import os

    decision = decide(_row("RUNNING", pid=os.getpid()), "all")

    assert decision.action == "skip"
    assert str(os.getpid()) in decision.reason
