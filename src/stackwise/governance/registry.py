"""The MLflow Model Registry calls governance makes, with errors that say what to do. Stages are
registered-model aliases only; MLflow's deprecated stages are never read or written."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from stackwise.errors import GovernanceError, did_you_mean

if TYPE_CHECKING:
    from stackwise.config import StackConfig


class Registry:
    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def open(cls, stack: StackConfig | None = None) -> Registry:
        """The registry of the stack's tracking store (fails fast when a server is down)."""
        from stackwise.config import load_stack
        from stackwise.tracking.mlflow_tracker import tracker_for

        stack = stack if stack is not None else load_stack()
        return cls(tracker_for(stack.tracking_uri_resolved).client)

    @classmethod
    def active(cls) -> Registry:
        """The registry of the store MLflow's fluent API points at (inside a step: the step's)."""
        import mlflow
        from mlflow import MlflowClient

        return cls(MlflowClient(mlflow.get_tracking_uri()))

    def model_names(self) -> list[str]:
        names, token = [], None
        while True:
            page = self.client.search_registered_models(max_results=1000, page_token=token)
            names += [m.name for m in page]
            token = page.token
            if not token:
                return sorted(names)

    def model(self, name: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException:
            names = self.model_names()
            raise GovernanceError(
                f"no registered model {name!r}.{did_you_mean(name, names)} Registered: "
                f"{', '.join(names) or 'none yet (run a pipeline that registers one)'}."
            ) from None

    def version(self, name: str, version: str | int) -> Any:
        from mlflow.exceptions import MlflowException

        self.model(name)
        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException:
            known = [str(v.version) for v in self.versions(name)]
            raise GovernanceError(
                f"model {name!r} has no version {version!r}; its versions: "
                f"{', '.join(known) or 'none'}. See `stackwise models show {name}`."
            ) from None

    def versions(self, name: str) -> list[Any]:
        found, token = [], None
        while True:
            page = self.client.search_model_versions(
                f"name = '{_escape(name)}'", max_results=10000, page_token=token
            )
            found += list(page)
            token = page.token
            if not token:
                break
        # search results may leave aliases out; the registered model has them all
        aliases: dict[str, list[str]] = {}
        for alias, version in self.model(name).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in found:
            mv.aliases = sorted(aliases.get(str(mv.version), []))
        return sorted(found, key=lambda v: int(v.version))

    def holder(self, name: str, alias: str) -> str | None:
        """The version holding `alias` now, or None."""
        version = self.model(name).aliases.get(alias)
        return str(version) if version is not None else None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        _retry(partial(self.client.set_registered_model_alias, name, alias, str(version)))

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            _retry(partial(self.client.set_model_version_tag, name, str(version), key, value))

    def set_model_tag(self, name: str, key: str, value: str) -> None:
        _retry(partial(self.client.set_registered_model_tag, name, key, value))


def _retry(write: Callable[[], None], attempts: int = 6) -> None:
    """MLflow's SQL store upserts aliases and tags as select-then-insert, so two processes
    creating the same row at once make one fail on the unique key. Trying again finds the
    row and updates it; `lifecycle` then reconciles the alias with the history anyway."""
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            write()
            return
        except MlflowException as exc:
            permanent = exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
            if permanent or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1) + random.random() * 0.05)


def _escape(value: str) -> str:
    return value.replace("'", "\\'")
