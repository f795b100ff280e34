"""Turning a broken policy file into one error that names the file, the line, the key and the
fix. Pydantic reports locations as paths (`models.clf.staging.rules.0.metric.min`, where
`metric` is the rule's kind); YAML's composed node tree maps such a path back to a line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stackwise.errors import PolicyError, did_you_mean

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


def parse_yaml(file: Path) -> Any:
    import yaml

    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise PolicyError(f"{file}{where}: not valid YAML: {problem}; fix the syntax.") from None
    return {} if data is None else data


def validate(cls: type[M], data: Any, file: Path, prefix: Loc) -> M:
    """`cls` validated from `data`, read from `file` under the keys `prefix`."""
    where = ".".join(str(p) for p in prefix)
    if not isinstance(data, dict):
        raise PolicyError(
            f"{file}{', key ' + where if where else ''}: expected a mapping with `aliases` and "
            f"`models`, got {type(data).__name__}; see README: Model governance."
        )
    if "source" in data:
        raise PolicyError(f"{file}: unknown key 'source'; allowed keys: aliases, models.")
    found: list[tuple[Loc, str]] = []  # cross-field problems, with their paths
    try:
        model = cls.model_validate(data, context={"problems": found})
    except ValidationError as exc:
        lines = _line_index(file)
        problems = [_describe(err, prefix, lines) for err in exc.errors()]
        raise PolicyError(f"{file}: " + "; ".join(problems)) from None
    if found:
        lines = _line_index(file)
        problems = [f"{_where(prefix + loc, lines)}: {message}" for loc, message in found]
        raise PolicyError(f"{file}: " + "; ".join(problems))
    return model.model_copy(update={"source": str(file)})


def _where(path: Loc, lines: dict[Loc, int]) -> str:
    line = _nearest_line(path, lines)
    shown = _dotted(path) or "(top level)"
    return f"line {line}, key {shown}" if line else f"key {shown}"


def _describe(err: Any, prefix: Loc, lines: dict[Loc, int]) -> str:
    from stackwise.governance.policies import RULE_KINDS

    loc: Loc = tuple(err["loc"])
    head = _where(prefix + _yaml_path(loc), lines)
    kind, msg = err["type"], str(err["msg"]).removeprefix("Value error, ")
    given = err.get("input")
    if kind == "union_tag_invalid":
        allowed = list(RULE_KINDS)
        tag = str((err.get("ctx") or {}).get("tag", given))
        fix = f"unknown rule kind {tag!r}.{did_you_mean(tag, allowed)} "
        return f"{head}: {fix}Allowed kinds: {', '.join(allowed)}"
    if kind == "union_tag_not_found":
        return f"{head}: a rule needs `kind:`, one of {', '.join(RULE_KINDS)}"
    if kind == "extra_forbidden":
        name = str(loc[-1])
        allowed_keys = _allowed_keys(loc)
        hint = did_you_mean(name, allowed_keys) if allowed_keys else ""
        listing = f" Allowed keys here: {', '.join(allowed_keys)}." if allowed_keys else ""
        return f"{head}: unknown key {name!r}.{hint}{listing} Remove or rename it"
    if kind == "missing":
        return f"{head}: required key {str(loc[-1])!r} is missing; add it"
    if kind in ("float_parsing", "float_type", "int_parsing", "int_type"):
        return f"{head}: expected a number, got {given!r}; write it without quotes or units"
    if kind in ("bool_parsing", "bool_type"):
        return f"{head}: expected true or false, got {given!r}"
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type", "string_type"):
        return f"{head}: {msg.lower()}, got {type(given).__name__} {given!r}"
    return f"{head}: {msg}"


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the model at `loc`'s parent accepts (the schema is ours, so walk it)."""
    from stackwise.governance.policies import RULE_KINDS, AliasPolicy, PolicyFile

    parent = loc[:-1]
    model: type[BaseModel] | None = None
    if len(parent) == 0:
        model = PolicyFile
    elif len(parent) == 3 and parent[0] == "models":
        model = AliasPolicy
    elif len(parent) == 6 and parent[3] == "rules":
        model = RULE_KINDS.get(str(parent[5]))
    if model is None:
        return []
    return [k for k, f in model.model_fields.items() if not f.exclude]


def _yaml_path(loc: Loc) -> Loc:
    """Pydantic puts a rule's kind into the path (`rules.0.metric.min`); YAML has no such key."""
    if len(loc) > 5 and loc[0] == "models" and loc[3] == "rules":
        return loc[:5] + loc[6:]
    return loc


def _nearest_line(path: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_index(file: Path) -> dict[Loc, int]:
    """1-based line of every key and list item in `file`, by path."""
    import yaml

    try:
        root = yaml.compose(file.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    index: dict[Loc, int] = {}

    def walk(node: Any, path: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, key.value)
                index[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                index[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    if root is not None:
        index[()] = root.start_mark.line + 1
        walk(root, ())
    return index
