"""`Schedule` against Airflow 3's own timetables, the oracle, across DST changes.

For a corpus of crons (presets, ranges, lists, steps, days 29-31, hourly and sub-hourly) and
`every=` durations, in zones that observe DST, around each of their clock changes in 2023-2026,
hypothesis draws a schedule start, a backfill range and a "now". Airflow's
`CronDataIntervalTimetable` (`DeltaDataIntervalTimetable` for `every=`) chains the data
intervals from the schedule's start with `next_dagrun_info(last_automated_data_interval=...,
restriction=TimeRestriction(start, end, catchup=True))`, as its scheduler does with catchup;
`Schedule.intervals`, `latest_due` and `next_due_at` must give exactly those intervals.

One deliberate difference, checked here too: where Airflow's next interval would not start at
the previous one's end (its alignment leaves a hole inside a spring-forward gap for a sub-hourly
cron whose hours include the skipped one, or fails outright: "did not advance"), stackwise
starts it at that end and ends it at Airflow's `_get_next` of that end, so the chain never has
a gap or an overlap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stackwise.scheduling.schedule import Schedule

UTC = dt.UTC
ZONES = (
    "America/New_York",
    "America/Chicago",
    "Europe/Berlin",
    "Australia/Sydney",
    "America/Santiago",  # changes at midnight: midnight is skipped once a year
    "Australia/Lord_Howe",  # a 30-minute change
    "America/Havana",  # changes at midnight, and repeats the hour after it
    "Antarctica/Troll",  # a two-hour change
)
CRONS = (
    "@hourly", "@daily", "@weekly", "@monthly", "@yearly",
    "0 1 * * *", "30 1 * * *", "0 2 * * *", "30 2 * * *", "0 3 * * *", "45 23 * * *",
    "0 0 * * *", "30 0 * * *", "0 1-3 * * *", "15 1,2,3 * * *", "0 0,12 * * *",
    "0 */2 * * *", "30 */3 * * *", "5 * * * *", "59 * * * *", "*/15 * * * *", "*/30 * * * *",
    "*/45 * * * *", "*/20 1-3 * * *", "*/7 2 * * *", "10-50/20 0-3 * * *",
    "0 * * * 1-5", "0 0 * * 1-5", "0 1 * * 0", "0 0 29-31 * *", "0 2 31 * *", "30 1 29 * *",
)  # fmt: skip
EVERY = ("30m", "1h", "90m", "6h", "1d", "7d")
EXAMPLES = 800  # about 10 s here; derandomized, so CI runs the same examples every time


def _transitions(zone: str) -> list[dt.datetime]:
    """The instants (UTC) at which `zone`'s UTC offset changes in 2023-2026."""
    tz = ZoneInfo(zone)
    found = []
    t = dt.datetime(2023, 1, 1, tzinfo=UTC)
    offset = t.astimezone(tz).utcoffset()
    while t.year < 2027:
        t += dt.timedelta(minutes=30)
        if (now := t.astimezone(tz).utcoffset()) != offset:
            found.append(t)
            offset = now
    return found


TRANSITIONS = {zone: _transitions(zone) for zone in ZONES}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Airflow's timetable module, imported with its home in a temporary folder (importing
    Airflow writes its configuration there)."""
    home: Path = tmp_path_factory.mktemp("airflow-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        import airflow.timetables.base as base
        import airflow.timetables.interval as interval

        yield _Airflow(interval, base)


class _Airflow:
    def __init__(self, interval: Any, base: Any) -> None:
        import pendulum

        self.interval, self.base, self.pendulum = interval, base, pendulum

    def at(self, t: dt.datetime) -> Any:
        return self.pendulum.instance(t.astimezone(UTC))

    def timetable(self, schedule: Schedule) -> Any:
        if schedule.cron is not None:
            return self.interval.CronDataIntervalTimetable(schedule.cron, schedule.timezone)
        return self.interval.DeltaDataIntervalTimetable(schedule.step)

    def chain(self, schedule: Schedule, until: dt.datetime) -> list[tuple[dt.datetime, ...]]:
        """Airflow's data intervals (UTC start, end) from the schedule's start until the first
        that ends after `until`, or the schedule's end."""
        timetable = self.timetable(schedule)
        end = schedule.end_at
        restriction = self.base.TimeRestriction(
            self.at(schedule.start_at), self.at(end) if end else None, catchup=True
        )
        found: list[tuple[dt.datetime, ...]] = []
        last = None
        while not found or found[-1][1] <= until:
            try:
                info = timetable.next_dagrun_info(
                    last_automated_data_interval=last, restriction=restriction
                )
            except ValueError:  # Airflow's own guard: "did not advance past ..."
                info = None
            if info is not None and (last is None or info.data_interval.start == last.end):
                data = info.data_interval
            elif last is not None and (end is None or last.end <= self.at(end)):
                # Airflow would leave a hole here (or fails): stackwise starts at the last end.
                data = self.base.DataInterval(last.end, timetable._get_next(last.end))
            else:
                break
            found.append((_plain(data.start), _plain(data.end)))
            last = data
        return found


def _plain(t: Any) -> dt.datetime:
    """A pendulum DateTime as a plain UTC datetime (pendulum's arithmetic differs)."""
    return dt.datetime.fromtimestamp(t.timestamp(), UTC)


def _utc(interval: Any) -> tuple[dt.datetime, dt.datetime] | None:
    if interval is None:
        return None
    return interval.start.astimezone(UTC), interval.end.astimezone(UTC)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    zone = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(TRANSITIONS[zone]))
    minutes = st.integers(min_value=-3 * 24 * 60, max_value=2 * 24 * 60)
    start = change + dt.timedelta(minutes=draw(minutes) - 24 * 60)
    if draw(st.booleans()):  # a schedule start on the hour, as most are
        start = start.replace(minute=0)
    kind = draw(st.sampled_from(["cron", "cron", "cron", "every"]))
    spec = draw(st.sampled_from(CRONS if kind == "cron" else EVERY))
    end = None
    if draw(st.integers(0, 4)) == 0:
        end = start + dt.timedelta(minutes=draw(st.integers(0, 5 * 24 * 60)))
    schedule = (
        Schedule(spec, start=start, end=end, timezone=zone)
        if kind == "cron"
        else Schedule(every=spec, start=start, end=end, timezone=zone)
    )
    lo = change + dt.timedelta(minutes=draw(minutes))
    hi = lo + dt.timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
    now = change + dt.timedelta(minutes=draw(minutes), seconds=draw(st.sampled_from([0, 0, 30])))
    on_boundary = draw(st.booleans())
    return {"schedule": schedule, "lo": lo, "hi": hi, "now": now, "on_boundary": on_boundary}


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_intervals_latest_due_and_next_due_at_are_airflows(
    airflow: _Airflow, case: dict[str, Any]
) -> None:
    """The intervals of a backfill range, the latest due one and when the next comes due are
    Airflow's; and they chain, have ended, come due after now."""
    schedule: Schedule = case["schedule"]
    lo, hi, now = case["lo"], case["hi"], case["now"]
    oracle = airflow.chain(schedule, until=max(hi, now))
    boundaries = [b for _, b in oracle if b <= max(hi, now)]
    if case["on_boundary"] and boundaries:  # `now` exactly on a boundary: the edge case
        now = min(boundaries, key=lambda b: abs(b - now))

    got = [_utc(i) for i in schedule.intervals(lo, hi)]
    assert got == [iv for iv in oracle if lo <= iv[0] <= hi]

    ended = [iv for iv in oracle if iv[1] <= now]
    assert _utc(schedule.latest_due(now)) == (ended[-1] if ended else None)
    upcoming = [iv[1] for iv in oracle if iv[1] > now]
    due_at = schedule.next_due_at(now)
    assert (due_at.astimezone(UTC) if due_at else None) == (upcoming[0] if upcoming else None)

    # The invariants, whatever the oracle says.
    assert all(a[1] == b[0] for a, b in zip(got, got[1:], strict=False)), "a gap or an overlap"
    assert all(a < b for a, b in got), "an empty interval"
    latest = schedule.latest_due(now)
    assert latest is None or latest.end <= now
    assert due_at is None or due_at > now


def test_the_corpus_has_every_zones_clock_changes() -> None:
    """Two changes a year in each zone, found from the zone data itself."""
    assert all(len(TRANSITIONS[zone]) == 8 for zone in ZONES), {
        zone: len(found) for zone, found in TRANSITIONS.items()
    }
    assert TRANSITIONS["America/New_York"][:2] == [
        dt.datetime(2023, 3, 12, 7, tzinfo=UTC),
        dt.datetime(2023, 11, 5, 6, tzinfo=UTC),
    ]
