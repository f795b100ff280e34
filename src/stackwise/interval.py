"""The data interval of a scheduled run: one typed value, spelled as Airflow spells it.

A neutral module (it imports nothing of stackwise), so that authoring, scheduling, the runner
and every orchestrator adapter share it without importing each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Interval:
    """A half-open data interval `[data_interval_start, data_interval_end)`, as Airflow's data
    intervals (`CronDataIntervalTimetable`); `logical_date` is the interval's start.

    All three are timezone-aware datetimes. Serialized once, at an edge, with `to_dict`
    (ISO 8601 strings under the keys `logical_date`, `data_interval_start`,
    `data_interval_end`)."""

    logical_date: dt.datetime
    data_interval_start: dt.datetime
    data_interval_end: dt.datetime

    def __post_init__(self) -> None:
        moments = (self.logical_date, self.data_interval_start, self.data_interval_end)
        if any(m.tzinfo is None or m.utcoffset() is None for m in moments):
            raise ValueError("a data interval's datetimes need a timezone (e.g. +00:00)")
        if self.data_interval_end < self.data_interval_start:
            raise ValueError("a data interval cannot end before it starts")

    @property
    def start(self) -> dt.datetime:
        """Short for `data_interval_start`."""
        return self.data_interval_start

    @property
    def end(self) -> dt.datetime:
        """Short for `data_interval_end`."""
        return self.data_interval_end

    def to_dict(self) -> dict[str, str]:
        return {
            "logical_date": self.logical_date.isoformat(),
            "data_interval_start": self.data_interval_start.isoformat(),
            "data_interval_end": self.data_interval_end.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Interval:
        """Read `to_dict`'s form; records written by stackwise 0.1 used `start`/`end`."""
        start = data.get("data_interval_start", data.get("start"))
        end = data.get("data_interval_end", data.get("end"))
        if start is None or end is None:
            raise ValueError(f"not a data interval: {dict(data)!r}")
        return cls(
            dt.datetime.fromisoformat(data.get("logical_date", start)),
            dt.datetime.fromisoformat(start),
            dt.datetime.fromisoformat(end),
        )
