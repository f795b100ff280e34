"""Schedules and their data intervals, with Airflow's meaning.

A cron schedule (or preset) yields half-open data intervals [t_i, t_i+1) between consecutive
fire times, like Airflow's `CronDataIntervalTimetable`; a fixed `every=` schedule yields
[start + k*every, start + (k+1)*every) in absolute time, like `DeltaDataIntervalTimetable`. The
logical date of a run is its interval's start, and a run is due once its interval has ended.
Cron times are computed in the schedule's timezone, so a daily interval across a DST change is
23 or 25 hours long, and DST gaps and repeated hours give exactly Airflow 3's intervals (see
`_Clock`; tests/scheduling/test_schedule_airflow.py compares with Airflow's own timetables).
Intervals chain: no gap, no overlap, whatever the clocks do.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stackwise.errors import ScheduleError
from stackwise.interval import Interval

#: Airflow's presets, as the cron strings they stand for.
PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_EVERY = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When a pipeline runs and which data interval each run covers.

    `Schedule("@daily", start="2026-01-01")`, `Schedule("30 2 * * 1-5", start=...,
    timezone="Europe/Amsterdam")`, or `Schedule(every="6h", start=...)`. `catchup` runs every
    missed interval since `start` when the scheduler starts; without it only the latest one.
    """

    cron: str | None = None
    start: dt.datetime | dt.date | str | None = None
    end: dt.datetime | dt.date | str | None = None
    timezone: str = "UTC"
    every: dt.timedelta | str | None = None
    catchup: bool = False
    max_active_runs: int = 4

    def __post_init__(self) -> None:
        tz = zone(self.timezone)
        if (self.cron is None) == (self.every is None):
            raise ScheduleError(
                "a schedule needs exactly one of a cron expression (e.g. '@daily', '0 6 * * *') "
                "or every= (e.g. every='6h')."
            )
        if self.cron is not None:
            object.__setattr__(self, "cron", check_cron(self.cron))
        if self.every is not None:
            object.__setattr__(self, "every", parse_every(self.every))
        if self.start is None:
            raise ScheduleError("a schedule needs a start date: Schedule(..., start='2026-01-01').")
        object.__setattr__(self, "start", parse_moment(self.start, tz, "start"))
        if self.end is not None:
            end = parse_moment(self.end, tz, "end")
            if _utc(end) < _utc(self.start_at):
                raise ScheduleError(f"schedule end {end} is before its start {self.start_at}.")
            object.__setattr__(self, "end", end)
        if not isinstance(self.max_active_runs, int) or self.max_active_runs < 1:
            raise ScheduleError(f"max_active_runs={self.max_active_runs!r} must be >= 1.")

    # -- typed views of the normalized fields --------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def start_at(self) -> dt.datetime:
        assert isinstance(self.start, dt.datetime)
        return self.start

    @property
    def end_at(self) -> dt.datetime | None:
        return self.end if isinstance(self.end, dt.datetime) else None

    @property
    def step(self) -> dt.timedelta | None:
        return self.every if isinstance(self.every, dt.timedelta) else None

    def describe(self) -> str:
        what = self.cron if self.cron is not None else f"every {self.step}"
        return f"{what} from {self.start_at.isoformat()} ({self.timezone})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "cron": self.cron,
            "every_s": self.step.total_seconds() if self.step else None,
            "start": self.start_at.isoformat(),
            "end": self.end_at.isoformat() if self.end_at else None,
            "timezone": self.timezone,
            "catchup": self.catchup,
            "max_active_runs": self.max_active_runs,
        }

    # -- interval arithmetic -------------------------------------------------------------------
    def intervals(self, lo: dt.datetime, hi: dt.datetime) -> Iterator[Interval]:
        """Every interval whose logical date (start) is in [lo, hi] and in the schedule's
        [start, end], oldest first."""
        first = max(_utc(lo), _utc(self.start_at))
        last = _utc(hi) if self.end_at is None else min(_utc(hi), _utc(self.end_at))
        for start, end in self._chain(first):
            if start > last:
                return
            if start >= first:
                yield self._interval(start, end)

    def due(self, now: dt.datetime) -> Iterator[Interval]:
        """Intervals that have ended by `now`, oldest first."""
        for interval in self.intervals(self.start_at, now):
            if interval.end > now:
                return
            yield interval

    def latest_due(self, now: dt.datetime) -> Interval | None:
        """The newest interval that has ended by `now` (None: none has), found from `now`
        backwards: its cost does not grow with the schedule's age."""
        now = _utc(now)
        over = None if self.end_at is None else _utc(self.end_at)
        found = None
        for start, end in self._chain(now if over is None else min(now, over)):
            if end > now or (over is not None and start > over):
                break
            found = (start, end)
        return self._interval(*found) if found else None

    def next_due_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the next interval that has not ended by `now` ends: always after `now`; None
        once the schedule is over."""
        now = _utc(now)
        for start, end in self._chain(now):
            if self.end_at is not None and start > _utc(self.end_at):
                return None
            if end > now:
                return self._local(end)
        raise AssertionError("unreachable: a schedule's chain of intervals never ends")

    def _chain(self, near: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        """The schedule's intervals as UTC (start, end), endlessly, from shortly before `near`:
        started from at least three hours and three boundaries back, the chain has joined the
        one that runs from the schedule's start by `near` (a DST change moves wall clocks by at
        most two hours), so no call walks the schedule's whole history."""
        clock = _Clock(self)
        start = clock.align_next(max(clock.before(near), _utc(self.start_at)))
        while True:
            end = clock.next(start)
            yield start, end
            start = end

    def _interval(self, start: dt.datetime, end: dt.datetime) -> Interval:
        local = self._local(start)
        return Interval(local, local, self._local(end))

    def _local(self, t: dt.datetime) -> dt.datetime:
        """`t` with the schedule zone's UTC offset at that instant, as a fixed offset: such
        datetimes compare and subtract as instants (two that share a zone's tzinfo do so as
        wall-clock times, and one in a repeated hour never equals a UTC datetime)."""
        local = t.astimezone(self.tz)
        return t.astimezone(dt.timezone(local.utcoffset() or dt.timedelta(0)))


class _Clock:
    """Interval boundaries of one schedule, computed as Airflow 3's data-interval timetables
    compute them (airflow/timetables/_cron.py and interval.py); every instant is UTC.

    Cron: the boundary after (before) `t` is the cron's next (previous) wall-clock time after
    (before) `t`'s wall-clock reading in the schedule's zone. A wall time the clocks skip (the
    spring-forward gap) moves forward by the gap, and a wall time that happens twice (the
    fall-back hour) is its second, later occurrence, as Airflow's `make_aware` (fold=1) reads
    it, so a daily cron in the repeated hour fires once. Crons whose hour field is `*` move
    instead by the wall-clock distance in absolute time, so they fire in both occurrences of
    the repeated hour (Airflow's "fold hour" rule). Each interval starts where the previous one
    ended (Airflow's `next_dagrun_info` aligns the previous end back to a boundary, which is
    the end itself except where its DST arithmetic would leave a hole or an overlap, or fail:
    a sub-hourly cron whose hours include the skipped one, an hourly cron limited to weekdays).

    `every=`: absolute time on a grid anchored at the schedule's start, the intervals of
    Airflow's `DeltaDataIntervalTimetable` run with catchup from its start date.

    Holds a croniter, which keeps state: make one per call, never share one between threads.
    """

    def __init__(self, schedule: Schedule) -> None:
        self.tz = schedule.tz
        self.step = schedule.step
        self.origin = _utc(schedule.start_at)
        self.cron: Any = None
        self.every_hour = False
        if schedule.cron is not None:
            from croniter import croniter

            self.cron = croniter(schedule.cron, dt.datetime(2000, 1, 1))
            self.every_hour = self.cron.expanded[1] == ["*"]

    def next(self, t: dt.datetime) -> dt.datetime:
        """The first boundary after `t` (Airflow's `_get_next`)."""
        if self.step is not None:
            return t + self.step
        return self._cron(t, forward=True)

    def prev(self, t: dt.datetime) -> dt.datetime:
        """The last boundary before `t` (Airflow's `_get_prev`; inside a DST gap it can lie
        after `t`)."""
        if self.step is not None:
            return t - self.step
        return self._cron(t, forward=False)

    def align_next(self, t: dt.datetime) -> dt.datetime:
        """`t` if it is a boundary, else the first boundary after it."""
        if self.step is not None:
            return self.origin - ((self.origin - t) // self.step) * self.step
        following = self.next(t)
        return t if self.prev(following) == t else following

    def before(self, t: dt.datetime) -> dt.datetime:
        """A time three boundaries and at least three hours before `t`."""
        t -= dt.timedelta(hours=3)
        steps = 0
        while steps < 3:
            previous = self.prev(t)
            if previous < t:
                t, steps = previous, steps + 1
            else:  # a wall time the clocks skipped maps forward: step out of the gap
                t -= dt.timedelta(hours=1)
        return t

    def _cron(self, t: dt.datetime, *, forward: bool) -> dt.datetime:
        wall = _utc(t).astimezone(self.tz).replace(tzinfo=None, fold=0)
        fired: dt.datetime = (
            self.cron.get_next(dt.datetime, start_time=wall)
            if forward
            else self.cron.get_prev(dt.datetime, start_time=wall)
        )
        if self.every_hour:
            return _utc(t) + (fired - wall)
        return localize(fired, self.tz).astimezone(dt.UTC)


def _utc(t: dt.datetime) -> dt.datetime:
    """Compare and subtract in UTC: aware datetimes that share a tzinfo compare and subtract
    as wall-clock times, which is wrong across a DST change."""
    return t.astimezone(dt.UTC)


def localize(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """A naive wall-clock time in `tz`, read as Airflow's `make_aware` reads it: a time the
    clocks skip moves forward by the gap (02:30 -> 03:30 on a spring-forward night), a time
    that happens twice is its later occurrence (fold=1)."""
    earlier, later = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    before, after = earlier.utcoffset(), later.utcoffset()
    assert before is not None and after is not None
    if after > before:  # in the gap: read with the offset from before the change
        return earlier.astimezone(dt.UTC).astimezone(tz)
    return later


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown timezone {name!r}; use an IANA name such as 'UTC', 'Europe/Amsterdam' or "
            "'America/New_York'."
        ) from None


def check_cron(expression: str) -> str:
    from croniter import croniter

    cron = PRESETS.get(expression.strip(), expression.strip())
    if expression.startswith("@") and expression.strip() not in PRESETS:
        raise ScheduleError(
            f"unknown schedule preset {expression!r}; allowed: {', '.join(PRESETS)} or a "
            "5-field cron expression."
        )
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ScheduleError(
            f"invalid cron expression {expression!r}; give 5 fields 'minute hour day-of-month "
            "month day-of-week' (e.g. '0 6 * * 1-5') or a preset such as '@daily'."
        )
    return cron


def parse_every(value: dt.timedelta | str) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        delta = value
    else:
        match = _EVERY.match(str(value))
        if not match:
            raise ScheduleError(
                f"every={value!r} is not a duration; write a number and a unit s, m, h, d or w "
                "(e.g. '6h', '1d') or pass a datetime.timedelta."
            )
        delta = dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
    if delta <= dt.timedelta(0):
        raise ScheduleError(f"every={value!r} must be a positive duration.")
    return delta


def parse_moment(value: dt.datetime | dt.date | str, tz: ZoneInfo, what: str) -> dt.datetime:
    """A date or datetime (ISO text accepted); naive values are wall-clock times in the
    schedule's timezone, read as `localize` reads them."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
            )
        except ValueError:
            raise ScheduleError(
                f"{what} {text!r} is not a date; use YYYY-MM-DD or an ISO datetime such as "
                "2026-03-01T06:00 (optionally with an offset, +01:00)."
            ) from None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else localize(value, tz)
    if isinstance(value, dt.date):
        return localize(dt.datetime(value.year, value.month, value.day), tz)
    raise ScheduleError(f"{what} {value!r} is not a date or datetime.")
