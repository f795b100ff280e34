"""Fixtures for the advisor: the example pipeline, a GPU-heavy pipeline, and a shortcut that
turns a profile written as keyword arguments into advice (through the same validation a
profile file gets)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stackwise.advisor import Advice, advise, parse_profile
from stackwise.authoring import load_pipeline

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer" / "pipeline.py"

#: Four nodes of eight GPUs for training, images on the heavy steps, no schedule.
GPU_PIPELINE = """
import stackwise as sw

@sw.step(tags={"kind": "etl"})
def prepare(n: int) -> list[int]:
    return list(range(n))

@sw.step(tags={"kind": "training", "nodes": "4"}, image="registry.example/train:1",
         resources=sw.Resources(gpu=8, gpu_type="nvidia-a100", memory="64Gi"))
def train(rows: list[int]) -> int:
    return len(rows)

@sw.step(resources=sw.Resources(gpu=1), image="registry.example/eval:1")
def evaluate_model(model: int) -> float:
    return 1.0

@sw.pipeline
def pipe(n: int = 3):
    evaluate_model(train(prepare(n)))
"""


@pytest.fixture
def example_target() -> str:
    return f"{EXAMPLE}:training"


@pytest.fixture
def gpu_target(write_pipeline: Callable[..., str]) -> str:
    return write_pipeline(GPU_PIPELINE)


@pytest.fixture
def advise_for() -> Callable[..., Advice]:
    """`advise_for(target=None, **profile)`: advice for a pipeline reference and a profile."""

    def run(target: str | None = None, **profile: Any) -> Advice:
        pipeline = load_pipeline(target) if target else None
        return advise(pipeline, parse_profile(profile, "test profile"), origin="file")

    return run
