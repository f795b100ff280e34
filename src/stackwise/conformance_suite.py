"""`stackwise conformance TARGET`: run one pipeline on every orchestrator asked for and prove
they leave the same records in MLflow.

Local is the reference. Each other side is compared with a local run made under the same
conditions, field by field, with `stackwise.conformance.compare` (run hierarchy, step names,
params, metric keys, artifact names, tag keys except `tracking.tags.ORCHESTRATOR_SPECIFIC`,
dataset inputs and digests, registered model versions). Then, per registered model version:
the promotion policy's verdict for every alias (each rule's pass/fail) and the raw data
digests its upstream lineage reaches must be the same as the reference's.

Conditions: Airflow always runs a data interval (`airflow dags test` of the interval after the
schedule's start, or `--date`), so it is compared with a local backfill of that interval;
`kfp.local` runs carry no data interval yet (see README, Kubeflow Pipelines), so Kubeflow is
compared with an unscheduled local run. A pipeline without a schedule runs unscheduled
everywhere except Airflow, which then is reported as not comparable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackwise import conformance_sides as sides
from stackwise.errors import ConfigError

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.governance.policies import PolicyFile
    from stackwise.interval import Interval


@dataclasses.dataclass
class SideReport:
    """One non-reference side: what it was compared with and every difference found."""

    orchestrator: str
    reference: str  # "local" or "local (interval ...)"
    differences: list[str] = dataclasses.field(default_factory=list)
    verdicts: dict[str, str] = dataclasses.field(default_factory=dict)  # version -> summary
    raw_digests: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    error: str | None = None


@dataclasses.dataclass
class SuiteReport:
    pipeline: str
    work: str
    sides: list[SideReport] = dataclasses.field(default_factory=list)
    unavailable: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.sides) and all(not s.differences and not s.error for s in self.sides)


def parse_kinds(text: str) -> list[str]:
    """`local,airflow` -> ["local", "airflow"]; ConfigError for unknown names or no local."""
    kinds = list(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    sides.check_kinds(kinds)
    if "local" not in kinds or len(kinds) < 2:
        raise ConfigError(
            "--orchestrators needs local (the reference) and at least one other, e.g. "
            "local,airflow,kubeflow."
        )
    return kinds


def suite_interval(pipeline: Pipeline, date: str | None) -> Interval | None:
    """The first interval of the pipeline's schedule starting on `date` (default: the
    schedule's start date); None for an unscheduled pipeline."""
    from stackwise.scheduling.backfill import intervals_in_range

    schedule = pipeline.schedule
    if schedule is None:
        return None
    day = date or schedule.start_at.date().isoformat()
    found = intervals_in_range(schedule, day, day)
    if not found:
        raise ConfigError(f"no interval of {pipeline.name}'s schedule starts on {day}; "
                          "give --date with a day an interval starts on.")  # fmt: skip
    return found[0]


def run_suite(
    target: str, kinds: list[str], work: Path, project: Path, *,
    date: str | None = None, policies: PolicyFile | None = None,
) -> SuiteReport:  # fmt: skip
    """Run `target` on each orchestrator of `kinds` (local first) under `work`, compare."""
    from stackwise.authoring.loader import load_pipeline

    pipeline = load_pipeline(target)
    interval = suite_interval(pipeline, date)
    report = SuiteReport(pipeline=pipeline.name, work=str(work))
    for kind in kinds:
        why = sides.missing_extra(kind)
        if why:
            report.unavailable[kind] = why
    runnable = [k for k in kinds if k != "local" and k not in report.unavailable]
    references: dict[str, sides.SideRun] = {}
    absolute = _absolute_target(target, project)

    def reference(scheduled: bool) -> sides.SideRun:
        key = "local-interval" if scheduled else "local"
        if key not in references:
            references[key] = sides.run_local(key, work, project, absolute, pipeline,
                                              interval if scheduled else None)  # fmt: skip
        return references[key]

    for kind in runnable:
        if kind == "airflow":
            if interval is None:
                report.sides.append(SideReport("airflow", "-", error=(
                    f"{pipeline.name} has no schedule: Airflow runs it with a data interval "
                    "that an unscheduled local run does not have; not comparable")))  # fmt: skip
                continue
            ref, label = reference(True), f"local backfill of [{interval.start.isoformat()}, "
            label += f"{interval.end.isoformat()})"
            side = sides.run_airflow(work, project, pipeline, interval)
        else:
            ref, label = reference(False), "local run (unscheduled)"
            side = sides.run_kubeflow(work, project, pipeline)
        report.sides.append(compare_sides(ref, side, label, policies))
    return report


def _absolute_target(target: str, project: Path) -> str:
    path, _, name = target.rpartition(":")
    if path.endswith(".py") or "/" in path:
        file = Path(path)
        return f"{file if file.is_absolute() else (project / file).resolve()}:{name}"
    return target


def compare_sides(
    ref: sides.SideRun, side: sides.SideRun, label: str, policies: PolicyFile | None
) -> SideReport:
    """Field-by-field comparison, then policy verdicts and lineage raw digests per version."""
    from stackwise.conformance import compare, snapshot

    out = SideReport(side.name, label)
    for run in (ref, side):
        if run.error or run.parent_run_id is None:
            out.error = f"{run.name}: {run.error or 'no pipeline run was recorded'}"
            return out
    assert ref.parent_run_id is not None and side.parent_run_id is not None
    out.differences = compare(snapshot(ref.tracking_uri, ref.parent_run_id),
                              snapshot(side.tracking_uri, side.parent_run_id))  # fmt: skip
    expected, actual = _governance(ref, policies), _governance(side, policies)
    for model in sorted(set(expected) | set(actual)):
        e, a = expected.get(model), actual.get(model)
        if e is None or a is None:
            continue  # already reported by compare() as a registered-model difference
        if e[0] != a[0]:
            out.differences.append(f"model {model!r} policy verdicts: expected {e[0]}, got {a[0]}")
        if e[1] != a[1]:
            out.differences.append(f"model {model!r} lineage raw data digests: expected "
                                   f"{sorted(e[1])}, got {sorted(a[1])}")  # fmt: skip
        out.verdicts[model] = a[0]
        out.raw_digests[model] = sorted(a[1])
    return out


def _governance(run: sides.SideRun, policies: PolicyFile | None) -> dict[str, tuple[str, Any]]:
    """Model name -> (policy verdicts, raw data digests of its upstream lineage) for each
    version registered by the pipeline run."""
    from mlflow import MlflowClient

    from stackwise.lineage.graph import build_lineage
    from stackwise.lineage.index import RunIndex
    from stackwise.lineage.refs import resolve_ref

    client = MlflowClient(run.tracking_uri)
    index = RunIndex(client)
    parent = index.get(run.parent_run_id or "")
    if parent is None:
        return {}
    found: dict[str, tuple[str, Any]] = {}
    for step in index.step_runs(parent):
        for mv in index.versions_from(step.run_id):
            uri = f"models:/{mv.name}/{mv.version}"
            graph = build_lineage(index, resolve_ref(index, uri), "upstream")
            digests = frozenset(n.attrs.get("digest", "") for n in graph.of_kind("raw_data"))
            found[mv.name] = (_verdicts(client, mv, policies), digests)
    return found


def _verdicts(client: Any, mv: Any, policies: PolicyFile | None) -> str:
    """`alias: pass|fail (rule=ok, rule=FAIL, ...)` for every alias of the policy file."""
    if policies is None:
        return "no policy file"
    from stackwise.governance.lifecycle import ModelLifecycle
    from stackwise.governance.registry import Registry

    lifecycle = ModelLifecycle(Registry(client), policies)
    parts = []
    for alias in policies.aliases:
        result = lifecycle.check(mv.name, str(mv.version), alias)
        rules = ", ".join(f"{r.rule}={'ok' if r.passed else 'FAIL'}" for r in result.rules)
        parts.append(f"{alias}: {'pass' if result.passed else 'fail'} ({rules})")
    return "; ".join(parts)
