"""Schedules and their data intervals, with Airflow's meaning.

A cron schedule (or preset) yields half-open data intervals [t_i, t_i+1) between consecutive
fire times, like Airflow's `CronDataIntervalTimetable`; a fixed `every=` schedule yields
[start + k*every, start + (k+1)*every) in absolute time, like `DeltaDataIntervalTimetable`. The
logical date of a run is its interval's start, and a run is due once its interval has ended.
Cron times are computed in the schedule's timezone, so a daily interval across a DST change is
23 or 25 hours long, as Airflow's are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stackwise.authoring.context import Interval
from stackwise.errors import ScheduleError

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
            if end < self.start_at:
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
    def _fire_times(self, since: dt.datetime) -> Iterator[dt.datetime]:
        """Interval boundaries at or after `since`, ascending, in the schedule's timezone."""
        since = max(since, self.start_at).astimezone(self.tz)
        if self.step is not None:
            origin = self.start_at.astimezone(dt.UTC)
            elapsed = since.astimezone(dt.UTC) - origin
            k = -(-elapsed // self.step) if elapsed > dt.timedelta(0) else 0
            while True:
                yield (origin + k * self.step).astimezone(self.tz)
                k += 1
        from croniter import croniter

        it = croniter(self.cron, since - dt.timedelta(microseconds=1))
        while True:
            yield it.get_next(dt.datetime).astimezone(self.tz)

    def intervals(self, lo: dt.datetime, hi: dt.datetime) -> Iterator[Interval]:
        """Every interval whose logical date (start) is in [lo, hi], oldest first."""
        times = self._fire_times(lo)
        current = next(times)
        for following in times:
            if current > hi or (self.end_at is not None and current > self.end_at):
                return
            yield Interval(current, current, following)
            current = following

    def due(self, now: dt.datetime) -> Iterator[Interval]:
        """Intervals that have ended by `now`, oldest first."""
        for interval in self.intervals(self.start_at, now):
            if interval.end > now:
                return
            yield interval

    def latest_due(self, now: dt.datetime) -> Interval | None:
        """The newest interval that has ended by `now`, found from `now` backwards (constant
        time, however long ago the schedule started)."""
        if now < self.start_at:
            return None
        end = self._previous_boundary(now)  # the last boundary at or before now
        if end <= self.start_at:
            return None
        start = self._previous_boundary(end - dt.timedelta(microseconds=1))
        if start < next(self._fire_times(self.start_at)):
            return None
        if self.end_at is not None and start > self.end_at:
            return self._last_before_end()
        return Interval(start, start, end)

    def _last_before_end(self) -> Interval | None:
        assert self.end_at is not None
        last = None
        for last in self.intervals(self.start_at, self.end_at):  # noqa: B007
            pass
        return last

    def next_due_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the next interval that has not ended by `now` ends (None: the schedule is over)."""
        first_times = self._fire_times(self.start_at)
        t0 = next(first_times)
        if now < t0:
            logical, end = t0, next(first_times)
        else:
            times = self._fire_times(now)
            upcoming = next(times)
            if upcoming == now:  # `now` opens an interval: it ends at the next boundary
                logical, end = upcoming, next(times)
            else:  # `now` is inside [previous, upcoming)
                logical, end = self._previous_boundary(now), upcoming
        if self.end_at is not None and logical > self.end_at:
            return None
        return end

    def _previous_boundary(self, now: dt.datetime) -> dt.datetime:
        """The last interval boundary at or before `now` (which is after the first one)."""
        if self.step is not None:
            origin = self.start_at.astimezone(dt.UTC)
            k = (now.astimezone(dt.UTC) - origin) // self.step
            return (origin + k * self.step).astimezone(self.tz)
        from croniter import croniter

        it = croniter(self.cron, now.astimezone(self.tz) + dt.timedelta(microseconds=1))
        previous: dt.datetime = it.get_prev(dt.datetime)
        return previous.astimezone(self.tz)


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
    """A date or datetime (ISO text accepted); naive values are in the schedule's timezone."""
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
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=tz)
    raise ScheduleError(f"{what} {value!r} is not a date or datetime.")
