"""Ask for the team profile in the terminal, one key at a time, with Rich prompts.

Enter skips a question: the key stays unset, so the pipeline analysis or the default decides
and the report says so (an answer the person never gave is not shown as theirs). Each answer is
validated by `TeamProfile` itself, the same check a profile file gets; a bad answer is
explained and asked again. End of input (Ctrl-D) stops the questions and keeps the answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt
from rich.text import TextType

from stackwise.advisor.analysis import analyse_pipeline
from stackwise.advisor.facts import INPUT_KEYS, merge_inputs
from stackwise.advisor.profile import TeamProfile, allowed_values, describe_key, parse_profile
from stackwise.advisor.rules import show
from stackwise.authoring.pipeline import Pipeline
from stackwise.errors import ProfileError

_YES = {"y", "yes", "true"}
_NO = {"n", "no", "false"}
#: How many times one question is asked again after a bad answer before it is skipped.
MAX_TRIES = 3


def ask_profile(
    console: Console, current: Mapping[str, str], stream: TextIO | None = None
) -> TeamProfile:
    """Ask every profile key; `current` says what Enter keeps (e.g. "false (pipeline)")."""
    console.print(
        "[bold]Team profile[/] - answer what you know; Enter keeps the value shown "
        "(from the pipeline or the defaults)."
    )
    answers: dict[str, Any] = {}
    for key in INPUT_KEYS:
        try:
            value = _ask(console, key, current.get(key, "unknown"), answers, stream)
        except EOFError:
            console.print()
            break
        if value is not None:
            _set(answers, key, value)
    return parse_profile(answers, "answers")


def current_values(pipeline: Pipeline | None) -> dict[str, str]:
    """What each key is without an answer, e.g. "[etl, training] (pipeline)"."""
    analysis = analyse_pipeline(pipeline) if pipeline is not None else None
    facts = merge_inputs(None, analysis).facts
    return {key: f"{show(fact.value)} ({fact.source})" for key, fact in facts.items()}


def _ask(
    console: Console, key: str, keeps: str, answers: dict[str, Any], stream: TextIO | None
) -> Any:
    question = (
        f"[cyan]{key}[/] - {escape(describe_key(key))}\n"
        f"  {escape(allowed_values(key))} [dim](Enter keeps {escape(keeps)})[/]"
    )
    for _ in range(MAX_TRIES):
        text = str(
            _AnswerPrompt.ask(
                question, console=console, default="", show_default=False, stream=stream
            )
        ).strip()
        if not text:
            return None
        value = _parse(key, text)
        trial = dict(answers)
        _set(trial, key, value)
        try:
            parse_profile(trial, "answer")
        except ProfileError as exc:
            console.print(f"[red]{escape(exc.message.removeprefix('answer: '))}[/]")
            continue
        return value
    console.print(f"[yellow]skipping {key}[/]")
    return None


class _AnswerPrompt(Prompt):
    """Rich's prompt, except that the end of a given stream ends the questions: Rich maps an
    empty read to the default, which would answer every remaining question with "skip"."""

    @classmethod
    def get_input(
        cls, console: Console, prompt: TextType, password: bool, stream: TextIO | None = None
    ) -> str:
        text = super().get_input(console, prompt, password, stream=stream)
        if stream is not None and text == "":
            raise EOFError
        return text


def _parse(key: str, text: str) -> Any:
    """Turn typed text into the value a YAML profile would hold; validation comes after."""
    import yaml

    allowed = allowed_values(key)
    lowered = text.lower()
    if allowed == "true or false":
        if lowered in _YES:
            return True
        if lowered in _NO:
            return False
        return text
    if allowed.startswith("a list of"):
        return [item.strip() for item in text.strip("[]").split(",") if item.strip()]
    if allowed.startswith("one of"):
        return lowered
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _set(answers: dict[str, Any], key: str, value: Any) -> None:
    head, _, sub = key.partition(".")
    if sub:
        answers.setdefault(head, {})[sub] = value
    else:
        answers[key] = value
