"""The dashboard tests' session fixtures: the world (see dash_support) and the app in-process."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from dash_support import MODEL, REF, REPO, SCRIPT, World, _env, _inject, cli, serve

from stackwise.config import load_stack


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("dashboard")
    shutil.copyfile(REPO / "examples/breast_cancer/policies.yaml", folder / "policies.yaml")
    (folder / "stackwise.yaml").write_text("max_parallel: 2\n")
    first = json.loads(cli(folder, "run", REF, "--json").stdout)
    report = json.loads(cli(folder, "backfill", REF, "--start", "2026-08-02", "--end",
                            "2026-08-15", "--parallel", "2", "--json").stdout)  # fmt: skip
    refused = cli(folder, "models", "promote", MODEL, "1", "--to", "production", ok=False)
    assert refused.returncode == 1, refused.stderr
    cli(folder, "models", "promote", MODEL, "1", "--to", "production", "--force",
        "--reason", f"hotfix {SCRIPT}", "--approver", "bob")  # fmt: skip
    config = load_stack(folder / "stackwise.yaml")
    return World(folder, config, first, report, _inject(config), _env())


@pytest.fixture(autouse=True)
def _no_tracking_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def client(world: World) -> Iterator[Any]:
    """The app in-process (Starlette's TestClient), read-only."""
    from starlette.testclient import TestClient

    from stackwise.dashboard.app import create_app

    with TestClient(create_app(world.config)) as c:
        yield c


@pytest.fixture(scope="session")
def server(world: World) -> Iterator[str]:
    """`stackwise dashboard` itself, a real uvicorn server on a free loopback port."""
    with serve(world.folder, world.env) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        yield chromium
        chromium.close()
