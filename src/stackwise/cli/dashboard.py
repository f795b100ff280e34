"""`stackwise dashboard`: serve the pipeline dashboard (runs on every orchestrator, backfill
grids, lineage, models and promotions) from the stack's stores. `stackwise ui` stays MLflow's
own UI. The web stack is imported inside the command: `stackwise --help` stays fast."""

from __future__ import annotations

import typer

from stackwise.cli.main import app, guarded

STACK_OPTION = typer.Option(None, "--stack", help="Stack config file (default ./stackwise.yaml).")


@app.command()
@guarded
def dashboard(
    stack: str | None = STACK_OPTION,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback default)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535),
    open_browser: bool = typer.Option(False, "--open", help="Open it in a web browser."),
    token: str | None = typer.Option(
        None, "--token", envvar="STACKWISE_DASHBOARD_TOKEN",
        help="Required on every request (generated when --host is not loopback).",
    ),
    allow_actions: bool = typer.Option(
        False, "--allow-actions", help="Allow promotions and rollbacks (policy-checked)."
    ),
    mlflow_ui: str | None = typer.Option(
        None, "--mlflow-ui", help="MLflow UI base URL for links (default: the tracking server, "
        "else http://127.0.0.1:5000 where `stackwise ui` serves it).",
    ),
) -> None:
    """Serve the dashboard: runs, backfills, lineage and models, read-only by default."""
    from stackwise.config import load_stack
    from stackwise.errors import DashboardError

    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise DashboardError(
            f"the dashboard needs {exc.name}: pip install 'stackwise[dashboard]'."
        ) from None
    from stackwise.dashboard.app import create_app
    from stackwise.dashboard.graphs import require_dot
    from stackwise.dashboard.security import is_loopback, new_token

    require_dot()
    config = load_stack(stack)
    loopback = is_loopback(host)
    if not loopback and not token:
        token = new_token()
    port = port or _free_port(host)
    shown = f"[{host}]" if ":" in host else host
    allowed = {f"{shown}:{port}", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
    web = create_app(config, token=token, allow_actions=allow_actions,
                     allowed_hosts=allowed if loopback else None, mlflow_ui=mlflow_ui)  # fmt: skip
    url = f"http://{shown}:{port}/runs" + (f"?token={token}" if token else "")
    mode = "actions allowed (policy-checked)" if allow_actions else "read-only"
    typer.echo(f"stackwise dashboard at {url} ({mode}; Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise DashboardError(
            f"cannot serve on {host}:{port} (in use, or not an address of this machine); "
            "pick another --port or --host."
        ) from exc


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
