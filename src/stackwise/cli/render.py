"""Turning run records and events into what people (Rich) and machines (JSON) read.

The JSON shapes here are the documented, stable `--json` output (see the README)."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from stackwise.orchestrators.base import RunRecord, StepEvent

_STYLE = {
    "SUCCEEDED": "green",
    "FAILED": "red",
    "KILLED": "red",
    "SKIPPED": "yellow",
    "RUNNING": "cyan",
    "RETRYING": "yellow",
    "PENDING": "dim",
}


def iso(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat() if ts is not None else None


def finite(value: Any) -> Any:
    """`value` (JSON-shaped: dicts, lists, scalars) with every NaN or infinite float replaced
    by None. JSON (RFC 8259) has no such numbers; Python's json module would print `NaN` or
    `Infinity`, which strict parsers refuse. The README documents `null` for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """The `--json` text of a JSON-shaped value: indented, non-finite floats as null."""
    return json.dumps(finite(value), indent=2, allow_nan=False)


def run_json(run: RunRecord, *, with_steps: bool = True) -> dict[str, Any]:
    """A run as the documented `--json` object (non-finite metrics already null, secret
    parameters masked)."""
    from stackwise.tracking.redaction import masked_params

    data: dict[str, Any] = {
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "pipeline_ref": run.pipeline_ref,
        "pipeline_version": run.pipeline_version,
        "status": "STALE" if run.stale else run.status,
        "mlflow_run_id": run.mlflow_run_id,
        "mlflow_experiment_id": run.experiment_id,
        "tracking_uri": run.tracking_uri,
        "params": masked_params(run.params),
        "interval": run.interval,
        "created_at": iso(run.created_at),
        "ended_at": iso(run.ended_at),
        "duration_s": round(run.ended_at - run.created_at, 3) if run.ended_at else None,
        "error": run.error,
    }
    if with_steps:
        data["steps"] = [
            {
                "name": s.name,
                "status": s.status,
                "cached": s.cached,
                "attempts": s.attempt,
                "mlflow_run_id": s.mlflow_run_id,
                "duration_s": s.duration_s,
                "outputs": {k: v.uri for k, v in s.outputs.items()},
                "metrics": s.metrics,
                "error": s.error,
            }
            for s in run.steps.values()
        ]
    cleaned: dict[str, Any] = finite(data)
    return cleaned


def steps_table(run: RunRecord) -> Table:
    from rich.table import Table

    table = Table(title=f"{run.pipeline} · run {run.run_id}", title_justify="left")
    for col in ("step", "status", "attempts", "cached", "duration", "metrics", "mlflow run"):
        table.add_column(col, no_wrap=col in ("step", "status"))
    for s in run.steps.values():
        style = _STYLE.get(s.status, "")
        table.add_row(
            s.name,
            f"[{style}]{s.status}[/]" if style else s.status,
            str(s.attempt),
            "yes" if s.cached else "",
            f"{s.duration_s:.2f}s" if s.duration_s is not None else "",
            " ".join(f"{k}={_fmt(v)}" for k, v in list(s.metrics.items())[:6]),
            (s.mlflow_run_id or "")[:12],
        )
    return table


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def runs_table(runs: list[RunRecord]) -> Table:
    from rich.table import Table

    table = Table()
    for col in ("run id", "pipeline", "status", "created", "duration", "mlflow run"):
        table.add_column(col)
    for r in runs:
        status = "STALE" if r.stale else r.status
        style = _STYLE.get(status, "yellow")
        created = dt.datetime.fromtimestamp(r.created_at).strftime("%Y-%m-%d %H:%M:%S")
        duration = f"{r.ended_at - r.created_at:.1f}s" if r.ended_at else ""
        table.add_row(r.run_id, r.pipeline, f"[{style}]{status}[/]", created, duration,
                      r.mlflow_run_id or "")  # fmt: skip
    return table


class Progress:
    """Live per-step progress: a refreshing table on a terminal, one line per event otherwise
    (CI logs stay readable)."""

    def __init__(self, console: Console, step_names: list[str], quiet: bool = False) -> None:
        self.console = console
        self.rows: dict[str, dict[str, Any]] = {n: {"status": "PENDING"} for n in step_names}
        self.live: Any = None
        if console.is_terminal and not quiet:
            from rich.live import Live

            self.live = Live(self._render(), console=console, refresh_per_second=8, transient=True)

    def __enter__(self) -> Progress:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, event: StepEvent) -> None:
        row = self.rows.setdefault(event.step, {})
        row.update(status=event.status, attempt=event.attempt, cached=event.cached,
                   duration=event.duration_s)  # fmt: skip
        if self.live is not None:
            self.live.update(self._render())
            return
        extra = " (cached)" if event.cached else ""
        if event.duration_s is not None and event.status != "RUNNING":
            extra += f" in {event.duration_s:.2f}s"
        if event.error and event.status in ("FAILED", "RETRYING"):
            extra += f": {event.error.splitlines()[0]}"
        style = _STYLE.get(event.status, "")
        self.console.print(
            f"  {event.step} [{style}]{event.status}[/] (attempt {event.attempt}){extra}",
            highlight=False,
        )

    def _render(self) -> Any:
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for name, row in self.rows.items():
            status = row["status"]
            mark: Any = Spinner("dots") if status == "RUNNING" else " "
            label = f"[{_STYLE.get(status, '')}]{status}[/]"
            if row.get("cached"):
                label += " (cached)"
            table.add_row(mark, name, label)
        return table


def error_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def out_console() -> Console:
    from rich.console import Console

    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:  # logs and pipes: wide enough that tables do not wrap
        console.width = max(console.width, 160)
    return console
