"""The README's "What lands in MLflow" and `stackwise.tracking.tags` say the same."""

import re
from pathlib import Path

from stackwise.tracking import tags as T

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## What lands in MLflow")
    return text[start : text.index("\n## ", start + 5)]


def _names() -> dict[str, str]:
    return {
        k: v
        for k, v in vars(T).items()
        if k.isupper() and isinstance(v, str) and v.startswith(("stackwise.", "mlflow."))
    }


def test_every_tag_name_is_documented() -> None:
    section = _section()
    missing = [f"{k} = {v!r}" for k, v in _names().items() if v not in section]
    assert missing == []


def test_every_documented_tag_exists() -> None:
    known = set(_names().values())
    prefixes = [v for v in known if v.endswith(".")]
    tag = r"`((?:stackwise|mlflow)\.[A-Za-z_.]+[A-Za-z_])(?![A-Za-z_.]*\()"  # not functions
    found = re.findall(tag, _section())
    unknown = [
        name for name in found
        if name not in known and name + "." not in prefixes
        and not any(name.startswith(p) for p in prefixes)
        and not name.startswith(("mlflow.log", "stackwise.log"))
    ]  # fmt: skip
    assert unknown == []
