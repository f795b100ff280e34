"""What policy rules observe about a model version, read from MLflow: its tags, the metrics of
the pipeline run that built it, its lineage and how fresh its training data was.

Metrics are looked up where pipelines put them: the version's own run first, then the other
steps of its pipeline run (an `evaluate` step usually logs the held-out metrics; a step that
came from the cache is followed to the run that computed it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Any

from stackwise.errors import did_you_mean
from stackwise.governance.clock import from_ms
from stackwise.lineage.index import RunIndex, RunSnapshot
from stackwise.tracking import tags as T


@dataclasses.dataclass(frozen=True)
class MetricFinding:
    value: float | None
    where: str  # "step evaluate (run 3ba3d5c2)" or why it was not found


@dataclasses.dataclass(frozen=True)
class DataAsOf:
    moment: dt.datetime | None
    where: str


@dataclasses.dataclass(frozen=True)
class LineageCheck:
    missing: tuple[str, ...]
    found: tuple[str, ...]


class VersionFacts:
    def __init__(self, index: RunIndex, mv: Any) -> None:
        self.index = index
        self.mv = mv
        self.name: str = mv.name
        self.version: str = str(mv.version)
        self.tags: dict[str, str] = dict(mv.tags)

    @functools.cached_property
    def run(self) -> RunSnapshot | None:
        return self.index.get(self.mv.run_id) if self.mv.run_id else None

    @functools.cached_property
    def pipeline_run(self) -> RunSnapshot | None:
        run = self.run
        return self.index.get(run.parent_id) if run is not None and run.parent_id else None

    @functools.cached_property
    def step_runs(self) -> list[RunSnapshot]:
        """Every step of the pipeline run, as the run that computed it (cache hits resolved)."""
        if self.pipeline_run is None:
            return [self.run] if self.run is not None else []
        return [self.index.source(r) for r in self.index.step_runs(self.pipeline_run)]

    @functools.cached_property
    def training_run(self) -> RunSnapshot | None:
        tagged = self.tags.get(T.TRAINING_RUN_ID)
        if tagged:
            return self.index.get(tagged)
        return self.index.training_run(self.run) if self.run is not None else None

    def metric(self, key: str, step: str | None = None) -> MetricFinding:
        own = self.run
        if own is not None and key in own.metrics and step in (None, own.step):
            return MetricFinding(own.metrics[key], f"run {own.run_id[:8]} of the version")
        runs = [r for r in self.step_runs if step in (None, r.step)]
        having = [r for r in runs if key in r.metrics]
        if len(having) == 1:
            run = having[0]
            return MetricFinding(run.metrics[key], f"step {run.step} (run {run.run_id[:8]})")
        if len(having) > 1:
            steps = ", ".join(sorted({r.step or r.run_id[:8] for r in having}))
            return MetricFinding(None, f"logged by several steps ({steps}); set `step:`")
        logged = sorted({k for r in runs for k in r.metrics})
        scope = f"step {step}" if step else "the pipeline run"
        hint = did_you_mean(key, logged)
        return MetricFinding(
            None, f"not logged in {scope}.{hint} Logged: {', '.join(logged) or 'none'}"
        )

    def tag(self, key: str) -> tuple[str | None, str]:
        if key in self.tags:
            return self.tags[key], "version tag"
        for run, label in ((self.run, "run tag"), (self.training_run, "training run tag")):
            if run is not None and key in run.tags:
                return run.tags[key], label
        return None, ""

    def data_as_of(self) -> DataAsOf:
        """When the training data was current: the end of the data interval of a scheduled run,
        otherwise when the step that read the raw data ran. The oldest source counts."""
        readers = [r for r in self.step_runs if any(d.is_raw for d in r.datasets)]
        if not readers:
            readers = [r for r in self.step_runs if r.datasets] or self.step_runs
        moments = []
        for run in readers:
            parent = self.index.get(run.parent_id) if run.parent_id else None
            end = parent.tags.get(T.DATA_INTERVAL_END) if parent else None
            if end:
                moment = dt.datetime.fromisoformat(end)
                moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
                moments.append((moment, f"data interval end of {run.step or run.run_id[:8]}"))
            else:
                moments.append((from_ms(run.start_ms), f"read by {run.step or run.run_id[:8]}"))
        if not moments:
            return DataAsOf(None, "no run recorded for this version")
        moment, where = min(moments)
        return DataAsOf(moment, where)

    def lineage(self, require_raw: bool) -> LineageCheck:
        found: list[str] = []
        missing: list[str] = []
        pipeline = self.pipeline_run

        def check(ok: bool, label: str) -> None:
            (found if ok else missing).append(label)

        check(self.run is not None, "training run")
        check(pipeline is not None, "pipeline run")
        tags = pipeline.tags if pipeline is not None else {}
        check(bool(tags.get(T.PIPELINE_VERSION)), "code version")
        check(bool(tags.get(T.ORCHESTRATOR)), "orchestrator")
        datasets = [d for r in self.step_runs for d in r.datasets]
        check(bool(datasets), "datasets")
        if require_raw:
            raw = {d.digest for d in datasets if d.is_raw}
            check(bool(raw), "raw data sources")
        return LineageCheck(tuple(missing), tuple(found))
