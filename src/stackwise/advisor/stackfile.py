"""`--write-stack`: the recommendation as a `stackwise.yaml`, its reasons as YAML comments.

The keys are serialized from data (`yaml.safe_dump`), never formatted into text, and every
comment line is escaped (`comment_line`), so no string in the advice can add or change a key.

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
    """The stack file's text: keys serialized by `yaml.safe_dump` from data, and the reasons as
    comment lines built by `comment_line`, so that no string in the advice (a profile value, a
    pipeline name) can end a comment and start a key. Checked by loading it back."""
    from stackwise.plugins import COMPUTE_BACKENDS, ORCHESTRATORS, TARGETS

    about = f" for pipeline {advice.pipeline.name}" if advice.pipeline else ""
    blocks = [
        _comments(
            f"stackwise.yaml written by `stackwise advise`{about}.",
            "Scores are sums of criterion weights; see the README, 'Choosing a stack'.",
        )
    ]
    data: dict[str, object] = {}
    for kind, decision, table in (
        ("orchestrator", advice.orchestrator, {**ORCHESTRATORS, **TARGETS}),
        ("compute", advice.compute, COMPUTE_BACKENDS),
    ):
        notes = _decision_notes(kind, decision)
        if decision.choice not in table:
            notes.append(
                f"{decision.choice} is not available in this release of stackwise yet: "
                f"`stackwise run` stops with a clear error; set {kind}: local to run now."
            )
        elif decision.choice in TARGETS:
            notes.append(
                f"{decision.choice} runs on your {decision.choice} deployment: add a "
                f"`{decision.choice}:` section (see the README, '{decision.choice.title()}')."
            )
        blocks.append(_comments(*notes) + _keys({kind: decision.choice}, data))
    tracker = _comments(f"tracker: {advice.tracker}, always: {advice.tracker_reason}.")
    blocks.append(tracker + _keys({"tracking": True}, data))
    if advice.warnings:
        blocks.append(_comments("warnings:", *(f"  - {w.message}" for w in advice.warnings)))
    text = "\n".join(blocks)
    _check(text, data)
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


def _decision_notes(kind: str, decision: Decision) -> list[str]:
    scores = ", ".join(f"{o} {s}" for o, s in decision.scores.items())
    notes = [f"{kind}: {decision.choice} ({scores})"]
    for reason in decision.reasons:
        notes.append(
            f"  +{reason.weight} {reason.favours} ({reason.criterion}): {reason.triggered_by}"
        )
    tie = " (a tie: the simpler option wins)" if decision.tie else ""
    notes.append(f"  runner-up: {decision.runner_up}{tie}")
    if decision.flip is not None:
        notes.append(f"  it becomes {decision.flip.to} if {decision.flip.change}")
    return notes


def comment_line(text: str) -> str:
    """`text` as one YAML comment line: runs of whitespace (line breaks included) become one
    space, and any character that is not printable (control characters, the line and
    paragraph separators YAML also breaks lines on, characters PyYAML refuses to read) is
    written as its escape (`\\x1b`), so the comment shows it and cannot end early."""
    leading = len(text) - len(text.lstrip(" "))
    words = " ".join(text.split())
    shown = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in words
    )
    return "# " + " " * leading + shown


def _comments(*texts: str) -> str:
    return "".join(comment_line(t) + "\n" for t in texts)


def _keys(mapping: dict[str, object], data: dict[str, object]) -> str:
    """One block of keys, serialized by PyYAML; `data` collects everything written."""
    import yaml

    data.update(mapping)
    text: str = yaml.safe_dump(mapping, sort_keys=False, allow_unicode=False)
    return text


def _check(text: str, data: dict[str, object]) -> None:
    """The written file must load to exactly the keys meant, and as a stack config; anything
    else is a bug here, not a user error."""
    import yaml

    from stackwise.config import StackConfig

    loaded = yaml.safe_load(text)
    if loaded != data:
        raise RuntimeError(f"internal error: the stack file would load as {loaded!r}, not {data!r}")
    StackConfig(**loaded)
