"""`--write-stack`: the recommendation as a `stackwise.yaml`, its reasons as YAML comments.

The file is validated with `StackConfig` before it is written, so it always loads with
`stackwise.config.load_stack`. Orchestrators and backends that a later release implements are
accepted by the config already; the comments say that running with them stops with a clear
"not available in this release" error until then.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from stackwise.advisor.advice import Advice, Decision
from stackwise.errors import AdvisorError


def render_stack(advice: Advice) -> str:
    from stackwise.plugins import COMPUTE_BACKENDS, ORCHESTRATORS

    about = f" for pipeline {advice.pipeline.name}" if advice.pipeline else ""
    lines = [
        f"# stackwise.yaml written by `stackwise advise`{about}.",
        "# Scores are sums of criterion weights; see the README, 'Choosing a stack'.",
        "",
    ]
    for kind, decision, table in (
        ("orchestrator", advice.orchestrator, ORCHESTRATORS),
        ("compute", advice.compute, COMPUTE_BACKENDS),
    ):
        lines += _comment_decision(kind, decision)
        if decision.choice not in table:
            lines.append(
                f"# {decision.choice} is not available in this release of stackwise yet: "
                f"`stackwise run` stops with a clear error; set {kind}: local to run now."
            )
        lines += [f"{kind}: {decision.choice}", ""]
    lines += [
        f"# tracker: {advice.tracker}, always: {_one_line(advice.tracker_reason)}.",
        "tracking: true",
    ]
    if advice.warnings:
        lines += ["", "# warnings:"]
        lines += [f"#   - {_one_line(w.message)}" for w in advice.warnings]
    text = "\n".join(lines) + "\n"
    _check(text)
    return text


def write_stack(advice: Advice, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    file = Path(path)
    if file.exists() and not force:
        raise AdvisorError(
            f"{file} already exists; pass --force to overwrite it, or give --write-stack "
            "another path."
        )
    if file.is_dir():
        raise AdvisorError(f"{file} is a folder; give --write-stack a file path.")
    text = render_stack(advice)
    file.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename: a crash never leaves half a stack file behind.
    fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return file


def _comment_decision(kind: str, decision: Decision) -> list[str]:
    scores = ", ".join(f"{o} {s}" for o, s in decision.scores.items())
    lines = [f"# {kind}: {decision.choice} ({scores})"]
    for reason in decision.reasons:
        lines.append(
            f"#   +{reason.weight} {reason.favours} ({reason.criterion}): "
            f"{_one_line(reason.triggered_by)}"
        )
    tie = " (a tie: the simpler option wins)" if decision.tie else ""
    lines.append(f"#   runner-up: {decision.runner_up}{tie}")
    if decision.flip is not None:
        lines.append(f"#   it becomes {decision.flip.to} if {_one_line(decision.flip.change)}")
    return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check(text: str) -> None:
    """The written file must load; anything else is a bug here, not a user error."""
    import yaml

    from stackwise.config import StackConfig

    StackConfig(**yaml.safe_load(text))
