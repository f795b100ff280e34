"""The `stackwise` command. Thin: parse, call the library, render. Known errors print one red
line and exit with their class's code (2 invalid input, 1 failed run, 130 interrupted); any
other exception is an internal error, shown with its traceback.

Heavy imports (MLflow, SQLAlchemy, pandas) happen inside commands, never at import time, so
`stackwise --help` stays instant.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="stackwise",
    help="Author an ML pipeline once, run it on any orchestrator, track everything in MLflow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Inspect runs recorded in the state store.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

_debug = {"on": False}
#: Set by `main()`: this process is the `stackwise` program, not a library caller.
_program = {"on": False}


def guarded(fn: F) -> F:
    """Map stackwise errors to one red line and their exit code; Ctrl-C/SIGTERM to 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from stackwise.errors import StackwiseError

        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except StackwiseError as exc:
            from stackwise.cli.render import error_console

            if _debug["on"]:
                import traceback

                traceback.print_exc()
            from rich.markup import escape  # a message may hold [brackets]: pip extras, lists

            error_console().print(f"[bold red]{exc.headline}:[/] {escape(exc.message)}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            from stackwise.cli.render import error_console

            error_console().print(
                "[bold red]interrupted:[/] the run was stopped and marked KILLED."
            )
            raise typer.Exit(130) from None
        finally:
            if _program["on"]:
                outcome_decided()  # the process exits right after this
            else:
                signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def outcome_decided() -> None:
    """Call once a command's outcome is final, before printing it: from here on a SIGINT or
    SIGTERM can no longer change it (the `stackwise` program only; library callers keep
    their handlers)."""
    if _program["on"]:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _print_version(value: bool) -> None:
    if value:
        from stackwise import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for known errors too."),
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    _debug["on"] = debug or bool(os.environ.get("STACKWISE_DEBUG"))


#: Modules that register commands on `app` when imported; one per command group.
COMMAND_MODULES = (
    "stackwise.cli.commands",
    "stackwise.cli.schedule",
    "stackwise.cli.advise",
    "stackwise.cli.models",
    "stackwise.cli.policy",
    "stackwise.cli.lineage",
    "stackwise.cli.bundle",
    "stackwise.cli.export",
    "stackwise.cli.image",
    "stackwise.cli.dashboard",
    "stackwise.cli.reproduce",
    "stackwise.cli.conformance",
    "stackwise.cli.migrate",
)


def load_commands() -> None:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)


def main() -> None:
    _program["on"] = True
    load_commands()

    try:
        app()
    except SystemExit:
        raise
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            "internal error: this is a bug in stackwise, please report it with the traceback "
            "above (rerun with --debug for more).",
            file=sys.stderr,
        )
        sys.exit(3)
