"""What MLflow (and the interval ledger) hold about a project's history, read before and after
`stackwise migrate` to show and prove that nothing changed: experiments, pipeline runs per
orchestrator, model versions and aliases, the policies, and each pipeline's last completed
data interval (from MLflow's `stackwise.data_interval_*` tags and from the ledger).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import TYPE_CHECKING, Any

from stackwise.tracking import tags as T

if TYPE_CHECKING:
    from stackwise.config import StackConfig
    from stackwise.interval import Interval


@dataclasses.dataclass(frozen=True)
class CompletedInterval:
    """An interval whose pipeline run succeeded, as MLflow records it."""

    start: str  # ISO 8601 with offset
    end: str
    run_id: str  # stackwise run id
    orchestrator: str

    def interval(self) -> Interval:
        from stackwise.interval import Interval

        start, end = dt.datetime.fromisoformat(self.start), dt.datetime.fromisoformat(self.end)
        return Interval(start, start, end)


@dataclasses.dataclass
class History:
    """The comparable part (`facts`) and the per-pipeline interval history."""

    experiments: list[str]
    runs: dict[str, dict[str, int]]  # pipeline -> orchestrator -> pipeline runs
    models: dict[str, dict[str, Any]]  # name -> {"versions": [...], "aliases": {alias: v}}
    policies: str  # source and sha256 of the policy file or section
    last_completed: dict[str, str | None]  # pipeline -> end of its last completed interval
    ledger_last: dict[str, str | None]  # pipeline -> same, from the interval ledger
    completed: dict[str, list[CompletedInterval]] = dataclasses.field(default_factory=dict)
    running: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # pipeline -> runs

    def facts(self) -> dict[str, Any]:
        return {"experiments": self.experiments, "runs": self.runs, "models": self.models,
                "policies": self.policies, "last_completed": self.last_completed}  # fmt: skip


def read_history(config: StackConfig, pipelines: list[str]) -> History:
    """Read everything `History` holds from the stack's MLflow store and ledger."""
    from mlflow import MlflowClient

    client = MlflowClient(config.tracking_uri_resolved)
    experiments = _experiments(client)
    ids = [e.experiment_id for e in experiments]
    parents = _pipeline_runs(client, ids) if ids else []
    runs: dict[str, dict[str, int]] = {}
    completed: dict[str, list[CompletedInterval]] = {p: [] for p in pipelines}
    running: dict[str, list[str]] = {p: [] for p in pipelines}
    for run in parents:
        tags = run.data.tags
        name, where = tags.get(T.PIPELINE, ""), tags.get(T.ORCHESTRATOR, "unknown")
        by = runs.setdefault(name, {})
        by[where] = by.get(where, 0) + 1
        if name not in completed:
            continue
        if run.info.status == "RUNNING":
            running[name].append(f"{tags.get(T.RUN_ID, run.info.run_id)} on {where}")
        ok = run.info.status == "FINISHED" and tags.get(T.STATUS, "SUCCEEDED") == "SUCCEEDED"
        if ok and tags.get(T.DATA_INTERVAL_END):
            completed[name].append(CompletedInterval(
                tags[T.DATA_INTERVAL_START], tags[T.DATA_INTERVAL_END],
                tags.get(T.RUN_ID, run.info.run_id), where))  # fmt: skip
    for name in completed:
        completed[name].sort(key=lambda c: utc(c.start))
    ledger_last, ledger_running = _ledger(config, pipelines)
    for name, rows in ledger_running.items():
        running[name] += [f"interval {r} (ledger)" for r in rows]
    return History(
        experiments=sorted(e.name for e in experiments),
        runs={k: dict(sorted(v.items())) for k, v in sorted(runs.items())},
        models=_models(client),
        policies=policy_identity(config),
        last_completed={p: (max((c.end for c in completed[p]), key=utc, default=None))
                        for p in pipelines},  # fmt: skip
        ledger_last=ledger_last,
        completed=completed,
        running={k: v for k, v in running.items() if v},
    )


def utc(iso: str) -> dt.datetime:
    """An ISO 8601 moment as an aware UTC datetime (for ordering)."""
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC)


def _experiments(client: Any) -> list[Any]:
    found, token = [], None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _pipeline_runs(client: Any, ids: list[str]) -> list[Any]:
    found, token = [], None
    flt = f"tags.`{T.RUN_KIND}` = '{T.RUN_KIND_PIPELINE}'"
    while True:
        page = client.search_runs(ids, flt, max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _models(client: Any) -> dict[str, dict[str, Any]]:
    models: dict[str, dict[str, Any]] = {}
    for model in client.search_registered_models(max_results=1000):
        versions = client.search_model_versions(f"name = '{model.name}'", max_results=10000)
        models[model.name] = {
            "versions": sorted(int(v.version) for v in versions),
            "aliases": {a: str(v) for a, v in sorted((model.aliases or {}).items())},
        }
    return dict(sorted(models.items()))


def policy_identity(config: StackConfig) -> str:
    """Where the project's promotion policies come from and the sha256 of their content."""
    import json

    from stackwise.governance.policies import DEFAULT_FILE

    if config.policies is not None:
        text = json.dumps(config.policies, sort_keys=True)
        return f"stack `policies:` sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    file = config.base_dir / DEFAULT_FILE
    if file.is_file():
        return f"{file} sha256:{hashlib.sha256(file.read_bytes()).hexdigest()[:16]}"
    return "no policy file (defaults)"


def _ledger(
    config: StackConfig, pipelines: list[str]
) -> tuple[dict[str, str | None], dict[str, list[str]]]:
    """Per pipeline: the end of the last SUCCEEDED ledger interval, and intervals RUNNING in a
    live process. A state store that does not exist yet has no ledger (nothing ran locally)."""
    last: dict[str, str | None] = dict.fromkeys(pipelines)
    running: dict[str, list[str]] = {}
    url = config.state_store_resolved
    if url.startswith("sqlite:///") and not _sqlite_exists(url):
        return last, running
    from stackwise.orchestrators.local.cache import state_store
    from stackwise.scheduling.ledger import IntervalLedger

    ledger = IntervalLedger(state_store(url, config.base_dir, config.durability))
    for name in pipelines:
        rows = ledger.rows(name).values()
        done = [r.interval_end for r in rows if r.status == "SUCCEEDED"]
        last[name] = max(done, key=utc) if done else None
        busy = [r.interval_start for r in rows if r.status == "RUNNING" and r.owner_alive]
        if busy:
            running[name] = busy
    return last, running


def _sqlite_exists(url: str) -> bool:
    from pathlib import Path

    return Path(url.removeprefix("sqlite:///")).is_file()
