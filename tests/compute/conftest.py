"""One real local Ray for the whole session (starting one costs seconds): two CPUs, no GPU,
no dashboard. Ray workers inherit this process's environment, so they import the stackwise
under test and keep code bundles in a session folder instead of the home folder."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import ray

    os.environ["STACKWISE_CACHE_DIR"] = str(tmp_path_factory.mktemp("ray-host-cache"))
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()
