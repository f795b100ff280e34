"""Helpers for the governance tests: a factory that records pipeline runs and registers
versions with the same run layout and tags the step runner writes, and two real processes
promoting at the same instants."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass
class PipelineStore:
    """Records pipeline runs the way the runner does, and registers a version from each."""

    uri: str
    client: MlflowClient
    root: Path
    experiment: str = "training"
    experiment_id: str = ""

    def __post_init__(self) -> None:
        local = not self.uri.startswith("http")
        self.experiment_id = self.client.create_experiment(
            self.experiment,
            artifact_location=(self.root / "mlartifacts").as_uri() if local else None,
        )

    def artifact(self, name: str, suffix: str) -> tuple[str, str]:
        sha = _digest(name + uuid.uuid4().hex)
        return f"{self.root}/artifacts/{sha[:2]}/{sha}/data{suffix}", sha

    def _step(
        self, parent: str, tags: dict[str, str], step: str, start_ms: int | None, **extra: str
    ) -> Any:
        run = self.client.create_run(
            self.experiment_id,
            start_time=start_ms,
            run_name=step,
            tags={**tags, "mlflow.parentRunId": parent, "stackwise.step": step, **extra},
        )
        return run

    def version(
        self,
        name: str = "clf",
        *,
        metrics: dict[str, float] | None = None,
        raw: bool = True,
        parent: bool = True,
        version_tags: dict[str, str] | None = None,
        start: dt.datetime | None = None,
        interval_end: str | None = None,
        extra_metric_step: dict[str, float] | None = None,
    ) -> str:
        """One pipeline run (ingest -> features -> train -> evaluate -> register) and the
        version it registers; returns the version number."""
        c = self.client
        start_ms = int(start.timestamp() * 1000) if start else None
        tags = {
            "stackwise.pipeline": "training",
            "stackwise.pipeline_version": uuid.uuid4().hex[:16],
            "stackwise.run_id": time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8],
            "stackwise.orchestrator": "local",
            "stackwise.compute": "local",
        }
        if interval_end:
            tags["stackwise.data_interval_end"] = interval_end
        if not parent:
            run = c.create_run(self.experiment_id, start_time=start_ms, tags=tags)
            for key, value in (metrics or {}).items():
                c.log_metric(run.info.run_id, key, value)
            return self._register(name, run.info.run_id, version_tags)
        pipeline = c.create_run(self.experiment_id, start_time=start_ms, tags=tags)
        pid = pipeline.info.run_id
        raw_uri, raw_sha = self.artifact("ingest", ".parquet")
        ingest = self._step(
            pid,
            tags,
            "ingest",
            start_ms,
            **{"stackwise.output.output": raw_uri, "stackwise.output.output.digest": raw_sha},
        )
        if raw:
            src = (self.root / "raw" / f"{uuid.uuid4().hex}.csv").as_uri()
            c.log_inputs(
                ingest.info.run_id,
                datasets=[_dataset("raw/part-0", _digest(src)[:16], src, "local", "raw")],
            )
        feat_uri, feat_sha = self.artifact("features", ".parquet")
        features = self._step(
            pid,
            tags,
            "features",
            start_ms,
            **{
                "stackwise.input.raw": raw_uri,
                "stackwise.output.train": feat_uri,
                "stackwise.output.train.digest": feat_sha,
            },
        )
        c.log_inputs(
            features.info.run_id,
            datasets=[
                _dataset("ingest.output", raw_sha[:16], raw_uri, "stackwise-artifact", "input")
            ],
        )
        model_uri, model_sha = self.artifact("train", ".joblib")
        train = self._step(
            pid,
            tags,
            "train",
            start_ms,
            **{
                "stackwise.input.train": feat_uri,
                "stackwise.output.output": model_uri,
                "stackwise.output.output.digest": model_sha,
            },
        )
        c.log_inputs(
            train.info.run_id,
            datasets=[
                _dataset("features.train", feat_sha[:16], feat_uri, "stackwise-artifact", "input")
            ],
        )
        evaluate = self._step(
            pid, tags, "evaluate", start_ms, **{"stackwise.input.model": model_uri}
        )
        for key, value in (metrics or {}).items():
            c.log_metric(evaluate.info.run_id, key, value)
        if extra_metric_step:
            other = self._step(pid, tags, "monitor", start_ms)
            for key, value in extra_metric_step.items():
                c.log_metric(other.info.run_id, key, value)
        register = self._step(
            pid, tags, "register", start_ms, **{"stackwise.input.model": model_uri}
        )
        for run in (ingest, features, train, evaluate, register):
            c.set_terminated(run.info.run_id)
        c.set_terminated(pid)
        self.train_run_id = train.info.run_id
        self.pipeline_run_id = pid
        return self._register(name, register.info.run_id, version_tags)

    def _register(self, name: str, run_id: str, tags: dict[str, str] | None) -> str:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # registered by an earlier call
            self.client.create_registered_model(name)
        mv = self.client.create_model_version(name, f"runs:/{run_id}/model", run_id, tags=tags)
        return str(mv.version)


def _dataset(name: str, digest: str, source: str, source_type: str, context: str) -> Any:
    return DatasetInput(
        Dataset(name=name, digest=digest, source_type=source_type, source=source),
        tags=[InputTag("mlflow.data.context", context)],
    )


PROMOTER = """
import sys, time
from mlflow import MlflowClient
from stackwise.governance.lifecycle import ModelLifecycle
from stackwise.governance.policies import PolicyFile
from stackwise.governance.registry import Registry

uri, name, actor, start, versions = sys.argv[1:6]
lc = ModelLifecycle(Registry(MlflowClient(uri)), PolicyFile(), actor=actor)
lc.history(name)  # warm up (imports, DB engine) before the start line
for i, version in enumerate(versions.split(",")):
    while time.time() < float(start) + i * 1.5:
        time.sleep(0.001)
    print(lc.promote(name, version, "staging").model_dump_json(), flush=True)
"""


def promote_concurrently(uri: str, name: str, a: list[str], b: list[str]) -> list[Any]:
    """Two real processes promote to `staging` at the same instants: round i, process A
    promotes a[i] while process B promotes b[i]. Returns every PromotionOutcome."""
    import os
    import subprocess
    import sys

    from stackwise.governance.lifecycle import PromotionOutcome

    start = str(time.time() + 12)  # both processes are up and warm by then
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    procs = [
        subprocess.Popen([sys.executable, "-c", PROMOTER, uri, name, actor, start, ",".join(vs)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for actor, vs in (("process-a", a), ("process-b", b))
    ]  # fmt: skip
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        outcomes += [PromotionOutcome.model_validate_json(line) for line in out.splitlines()]
    return outcomes
