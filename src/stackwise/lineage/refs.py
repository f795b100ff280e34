"""What `stackwise lineage REF` accepts: `models:/NAME@ALIAS`, `models:/NAME/VERSION`, an
MLflow run id, a stackwise run id (`20261125-080634-1c7e5968`) or a dataset digest."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Literal

from stackwise.errors import LineageError
from stackwise.lineage.index import RunIndex, RunSnapshot

_MLFLOW_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_STACKWISE_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{8}$")
_DIGEST = re.compile(r"^[0-9a-f]{8,64}$")
_USAGE = (
    "give models:/NAME@ALIAS, models:/NAME/VERSION, a run id (MLflow or stackwise) or a "
    "dataset digest"
)


@dataclasses.dataclass(frozen=True)
class LineageRef:
    text: str
    kind: Literal["model", "run", "dataset"]
    model_version: Any = None
    alias: str | None = None
    run: RunSnapshot | None = None
    digest: str = ""


def resolve_ref(index: RunIndex, text: str) -> LineageRef:
    text = text.strip()
    if text.startswith("models:/"):
        return _model_ref(index, text)
    lowered = text.lower()
    if _MLFLOW_RUN_ID.match(lowered):
        run = index.get(lowered)
        if run is None:
            raise LineageError(f"no MLflow run {text!r} in the tracking store; {_USAGE}.")
        return LineageRef(text, "run", run=run)
    if _STACKWISE_RUN_ID.match(text):
        flt = f"tags.`stackwise.run_id` = '{text}'"
        parents = [r for r in index.search(index.experiment_ids(), flt) if r.parent_id is None]
        if not parents:
            raise LineageError(f"no pipeline run {text!r} in the tracking store; {_USAGE}.")
        return LineageRef(text, "run", run=parents[0])
    if _DIGEST.match(lowered):
        # artifact tags hold full sha256 digests; dataset inputs their first 16 characters
        return LineageRef(text, "dataset", digest=lowered[:16] if len(lowered) == 64 else lowered)
    raise LineageError(f"cannot read {text!r} as a lineage reference; {_USAGE}.")


def _model_ref(index: RunIndex, text: str) -> LineageRef:
    from mlflow.exceptions import MlflowException

    rest = text.removeprefix("models:/")
    client = index.client
    try:
        if "@" in rest:
            name, alias = rest.rsplit("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
            return LineageRef(text, "model", model_version=mv, alias=alias)
        name, _, version = rest.rpartition("/")
        if name and version.isdigit():
            return LineageRef(text, "model", model_version=client.get_model_version(name, version))
    except MlflowException as exc:
        raise LineageError(
            f"{text}: {exc.message}; check the name with `stackwise models list`."
        ) from None
    raise LineageError(f"cannot read {text!r}: use models:/NAME@ALIAS or models:/NAME/VERSION.")
