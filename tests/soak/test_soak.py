"""The kill -9 soak in its short form (benchmarks/soak.py has the long one): random SIGKILLs
of a backfill on SQLite and on PostgreSQL, and first-time starts racing, leave every interval
done, no MLflow run RUNNING, one parent per interval, no step running twice at once and every
store usable."""

import importlib.util
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def _soak() -> object:
    spec = importlib.util.spec_from_file_location("stackwise_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stackwise_soak"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(
    ("store", "kills", "intervals", "races"), [("sqlite", 10, 24, 2), ("postgres", 5, 12, 1)]
)
def test_soak_short(store: str, kills: int, intervals: int, races: int, tmp_path: Path) -> None:
    soak = _soak()
    (report,) = soak.main(  # type: ignore[attr-defined]
        ["--store", store, "--kills", str(kills), "--intervals", str(intervals), "--races",
         str(races), "--workdir", str(tmp_path), "--seed", "11"]
    )  # fmt: skip
    assert report.kills == kills
    assert report.intervals >= intervals  # more when the backfill ended before a kill
    assert report.done == report.intervals, report.line()
    assert report.problems == 0, report.line()
