"""Scheduling: schedules and data intervals, the interval ledger, backfills and the scheduler."""

from stackwise.scheduling.schedule import PRESETS, Schedule

__all__ = ["PRESETS", "Schedule"]
