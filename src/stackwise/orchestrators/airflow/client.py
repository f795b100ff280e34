"""Airflow's REST API v2, through httpx: only the calls a stackwise target makes.

Authentication: `POST /auth/token` with the user name and password read from the environment
variables the stack names (SimpleAuthManager and FAB both serve it) gives a JWT used as a
bearer token. Every failure becomes a one-line `TargetError`: the API unreachable, the
credentials refused (401/403), a request Airflow rejects (its own `detail` quoted).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from stackwise.errors import TargetError
from stackwise.orchestrators.airflow.settings import AirflowSettings


class AirflowClient:
    """One authenticated session with an Airflow API server (`settings.api_url`)."""

    def __init__(self, settings: AirflowSettings, transport: httpx.BaseTransport | None = None):
        self.settings = settings
        self.base = settings.api_url.rstrip("/")
        self.http = httpx.Client(timeout=settings.request_timeout_s, transport=transport)
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    # -- authentication ------------------------------------------------------------------------
    def login(self) -> None:
        """Get a JWT. Raises TargetError when the API is unreachable, the credential variables
        are unset, or Airflow refuses them."""
        user = os.environ.get(self.settings.username_env)
        password = os.environ.get(self.settings.password_env)
        if not user or password is None:
            raise TargetError(
                f"no Airflow credentials: set {self.settings.username_env} and "
                f"{self.settings.password_env} in the environment (airflow.username_env / "
                "airflow.password_env in the stack name other variables)."
            )
        body = {"username": user, "password": password}
        response = self._send("POST", "/auth/token", json=body, auth=False)
        token = response.json().get("access_token")
        if not token:
            raise TargetError(f"Airflow at {self.base} answered /auth/token without a token.")
        self._token = str(token)

    # -- DAGs ------------------------------------------------------------------------------------
    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        """The DAG as Airflow's database has it; None while it is not parsed yet."""
        response = self._send("GET", f"/api/v2/dags/{quote(dag_id)}", missing_ok=True)
        return None if response is None else dict(response.json())

    def import_errors(self) -> list[dict[str, Any]]:
        data = self._send("GET", "/api/v2/importErrors", params={"limit": 1000}).json()
        return list(data.get("import_errors", []))

    def unpause(self, dag_id: str) -> None:
        self._send("PATCH", f"/api/v2/dags/{quote(dag_id)}", json={"is_paused": False})

    def dags(self, tag: str) -> list[str]:
        data = self._send("GET", "/api/v2/dags", params={"tags": tag, "limit": 1000}).json()
        return [d["dag_id"] for d in data.get("dags", [])]

    # -- runs ------------------------------------------------------------------------------
    def trigger(
        self, dag_id: str, conf: Mapping[str, Any], logical_date: str | None = None
    ) -> dict[str, Any]:
        body = {"conf": dict(conf), "logical_date": logical_date}
        return dict(self._send("POST", f"/api/v2/dags/{quote(dag_id)}/dagRuns", json=body).json())

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}"
        return dict(self._send("GET", path).json())

    def dag_runs(self, dag_id: str, *, limit: int = 100, **filters: Any) -> list[dict[str, Any]]:
        params = {"limit": limit, "order_by": "-run_after", **filters}
        data = self._send("GET", f"/api/v2/dags/{quote(dag_id)}/dagRuns", params=params).json()
        return list(data.get("dag_runs", []))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        return list(self._send("GET", path, params={"limit": 1000}).json()["task_instances"])

    # -- backfills -------------------------------------------------------------------------
    def create_backfill(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The new backfill; None when Airflow has no run to create (every interval exists
        and the reprocess behaviour keeps them)."""
        try:
            return dict(self._send("POST", "/api/v2/backfills", json=dict(body)).json())
        except TargetError as exc:
            if "No runs to create" in exc.message or "no runs to create" in exc.message.lower():
                return None
            raise

    def backfill_dry_run(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The runs a backfill with `body` would create (logical dates)."""
        data = self._send("POST", "/api/v2/backfills/dry_run", json=dict(body)).json()
        return list(data.get("backfills", []))

    def backfill(self, backfill_id: int) -> dict[str, Any]:
        return dict(self._send("GET", f"/api/v2/backfills/{backfill_id}").json())

    # -- transport -------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        missing_ok: bool = False,
        **kwargs: Any,
    ) -> Any:
        headers = {}
        if auth:
            if self._token is None:
                self.login()
            headers["Authorization"] = f"Bearer {self._token}"
        url = self.base + path
        try:
            response = self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise TargetError(
                f"the Airflow API at {self.base} is unreachable ({type(exc).__name__}: {exc}); "
                "start the api-server or fix airflow.api_url in the stack file."
            ) from None
        if response.status_code in (401, 403):
            raise TargetError(
                f"Airflow at {self.base} refused the credentials in {self.settings.username_env}"
                f"/{self.settings.password_env} (HTTP {response.status_code} on {path}); fix "
                "them or the user's permissions."
            )
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise TargetError(
                f"Airflow refused {method} {path} (HTTP {response.status_code}): "
                f"{_detail(response)}"
            )
        return response


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return " ".join(str(detail).split())[:500]
