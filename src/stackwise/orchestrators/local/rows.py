"""How the state store writes its rows: JSON columns, artifact references, and store URIs
kept relative to the project folder (so that a project folder can move). The table schema
helpers (`create_tables`, `add_missing_columns`) are shared with the interval ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stackwise.artifacts.store import ArtifactRef
from stackwise.errors import StateStoreError


def relative_uri(uri: str, base: Path) -> str:
    """`sqlite:////base/x.db` -> `sqlite:///x.db`, `file:///base/art` -> `art` when inside
    `base`; anything else as it is."""
    from stackwise.artifacts.store import local_path

    prefix, path = "", None
    if uri.startswith("sqlite:////"):
        prefix, path = "sqlite:///", Path(uri.removeprefix("sqlite:///"))
    elif uri.startswith("file://"):
        path = local_path(uri)
    if path is None:
        return uri
    try:
        return prefix + path.relative_to(base).as_posix()
    except ValueError:
        return uri


def resolved_uri(uri: str, base: Path) -> str:
    """The inverse of `relative_uri`, against this project's folder."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(base / uri.removeprefix("sqlite:///"))
    if "://" not in uri and not uri.startswith("/"):
        return (base / uri).as_uri()
    return uri


def decode_refs(data: dict[str, Any]) -> dict[str, ArtifactRef]:
    return {k: ArtifactRef.from_dict(v) for k, v in data.items()}


def _plain(value: Any) -> Any:
    return value.model_dump() if isinstance(value, ArtifactRef) else str(value)


#: Built once (json.dumps with options builds an encoder per call).
_ENCODER = json.JSONEncoder(default=_plain, allow_nan=False)


def dumps(value: Any) -> str:
    """JSON that any reader accepts: non-finite floats are stored as null (the values are
    rewritten only when there is one)."""
    if type(value) is dict and all(type(v) is ArtifactRef for v in value.values()):
        # A step's outputs (and `{}`): no float to check, each ref dumped by pydantic.
        items = (f"{json.dumps(str(k))}: {v.model_dump_json()}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    try:
        return _ENCODER.encode(value)
    except ValueError:
        pass
    import math

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        if isinstance(v, ArtifactRef):
            return v.model_dump()
        return v

    return json.dumps(clean(value), default=str)


def encode_fields(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if key in ("params", "options", "outputs", "interval", "metrics"):
            out[key] = dumps(value) if value is not None else None
        else:
            out[key] = value
    if "outputs" in out and out["outputs"] is None:
        out["outputs"] = "{}"
    return out


def create_tables(md: Any, engine: Any) -> None:
    """Create the missing tables of `md` once, one process at a time; a new SQLite file
    appears whole or not at all (stackwise.store_creation). Call before `engine` connects."""
    from stackwise.store_creation import StoreLabel, create_tables_once

    create_tables_once(md, engine, StoreLabel("run state store", "state_store in stackwise.yaml",
                                              StateStoreError))  # fmt: skip


def add_missing_columns(engine: Any, tables: list[Any]) -> None:
    """Add the nullable columns a newer stackwise defines to a store an older one created."""
    import sqlalchemy as sa

    inspector = sa.inspect(engine)
    for table in tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as conn:
                    conn.execute(
                        sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                    )
            except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
                if "duplicate" not in str(exc).lower() and "exists" not in str(exc).lower():
                    raise  # another process added it at the same moment otherwise
