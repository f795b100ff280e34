"""What every view reads: the stack's state store (and its interval ledger), MLflow (runs,
registry, audit trail) and the policies, opened once when the app starts, plus the links out
to MLflow's own UI."""

from __future__ import annotations

import dataclasses
import functools
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackwise.config import StackConfig
    from stackwise.governance.lifecycle import ModelLifecycle
    from stackwise.governance.policies import PolicyFile
    from stackwise.governance.registry import Registry
    from stackwise.lineage.index import RunIndex
    from stackwise.orchestrators.local.state import StateStore
    from stackwise.scheduling.ledger import IntervalLedger

#: Where `stackwise ui` serves MLflow's UI by default.
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


@dataclasses.dataclass
class Stores:
    config: StackConfig
    #: Base URL of MLflow's UI for links out (the tracking server itself when it is one).
    mlflow_ui: str = ""

    def __post_init__(self) -> None:
        if not self.mlflow_ui:
            uri = self.config.tracking_uri_resolved
            self.mlflow_ui = uri if uri.startswith(("http://", "https://")) else DEFAULT_MLFLOW_UI
        self.mlflow_ui = self.mlflow_ui.rstrip("/")

    def open(self) -> None:
        """Open every store now (MLflow's import costs a second): the first page is fast."""
        _ = self.state, self.ledger, self.client

    @functools.cached_property
    def state(self) -> StateStore:
        from stackwise.orchestrators.local.state import StateStore

        return StateStore(self.config.state_store_resolved, self.config.base_dir)

    @functools.cached_property
    def ledger(self) -> IntervalLedger:
        from stackwise.scheduling.ledger import IntervalLedger

        return IntervalLedger(self.state)

    @functools.cached_property
    def client(self) -> Any:
        from stackwise.tracking.mlflow_tracker import tracker_for

        return tracker_for(self.config.tracking_uri_resolved).client

    def index(self) -> RunIndex:
        """A fresh MLflow view (a RunIndex caches for one question)."""
        from stackwise.lineage.index import RunIndex

        return RunIndex(self.client)

    @property
    def registry(self) -> Registry:
        from stackwise.governance.registry import Registry

        return Registry(self.client)

    def policies(self) -> PolicyFile:
        """Read on each use, as the CLI does: an edited policy file counts at once."""
        from stackwise.governance.policies import load_policies

        return load_policies(None, self.config)

    def lifecycle(self, actor: str | None = None) -> ModelLifecycle:
        from stackwise.governance.lifecycle import ModelLifecycle, default_actor

        return ModelLifecycle(
            self.registry, self.policies(), actor=actor or default_actor(), via="dashboard"
        )

    # -- links out to MLflow's UI -------------------------------------------------------------
    def mlflow_run_url(self, experiment_id: str | None, run_id: str | None) -> str | None:
        if not run_id or not experiment_id:
            return None
        return f"{self.mlflow_ui}/#/experiments/{_q(experiment_id)}/runs/{_q(run_id)}"

    def mlflow_model_url(self, name: str, version: str | None = None) -> str:
        base = f"{self.mlflow_ui}/#/models/{_q(name)}"
        return f"{base}/versions/{_q(version)}" if version else base


def _q(text: str) -> str:
    return urllib.parse.quote(str(text), safe="")
