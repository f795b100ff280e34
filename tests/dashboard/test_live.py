"""A run's page updates live (static/live.js) in a real headless Chromium against a real
`stackwise dashboard` server, while a real `stackwise run` is in progress in its own project:
the run's second step waits for a `release` file, so the page is first seen with one step
SUCCEEDED and one RUNNING; once the file is written the same page, never reloaded, turns the
step and the run SUCCEEDED. Screenshots before and after go to test-artifacts/dashboard/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from dash_support import ARTIFACTS, _env, serve

from stackwise.dashboard.graphs import STATUS_COLORS

pytestmark = pytest.mark.slow

PIPELINE = """
import time
from pathlib import Path

import stackwise as sw

RELEASE = Path(__file__).parent / "release"


@sw.step
def prepare() -> int:
    return 1


@sw.step
def wait_for_release(x: int) -> int:
    deadline = time.monotonic() + 60
    while not RELEASE.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {RELEASE} within 60 s")
        time.sleep(0.2)
    return x + 1


@sw.pipeline
def live() -> None:
    wait_for_release(prepare())
"""
#: A marker set on the page before the release; a reload or navigation would drop it.
MARK = "window.__sameDocument"


def rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _fill(page: Any, i: int) -> str:
    node = f"#dag svg g[id='step-{i}']"
    return str(page.eval_on_selector(node, "g => getComputedStyle(g.querySelector('path, "
                                           "polygon')).fill"))  # fmt: skip


def _background(page: Any, selector: str) -> str:
    return str(page.eval_on_selector(selector, "e => getComputedStyle(e).backgroundColor"))


def _running(server: str, run: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """The run, once the dashboard's JSON shows it RUNNING with `prepare` done and
    `wait_for_release` started (a generous deadline only catches a hang)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert run.poll() is None, log.read_text()
        found = httpx.get(f"{server}/api/runs", params={"pipeline": "live"}, timeout=30).json()
        if found:
            view = httpx.get(f"{server}/api/runs/{found[0]['run_id']}", timeout=30).json()
            steps = [(s["name"], s["status"]) for s in view["steps"] or []]
            if view["status"] == "RUNNING" and steps == [
                ("prepare", "SUCCEEDED"),
                ("wait_for_release", "RUNNING"),
            ]:
                return dict(view)
        time.sleep(0.5)
    raise AssertionError(f"the run never showed its waiting step running:\n{log.read_text()}")


def test_run_page_updates_live_while_the_run_is_in_progress(
    browser: Any, tmp_path: Path, mlflow_db_template: Path
) -> None:
    (tmp_path / "flow.py").write_text(PIPELINE)
    (tmp_path / ".stackwise").mkdir()
    shutil.copyfile(mlflow_db_template, tmp_path / ".stackwise" / "mlflow.db")
    env, log = _env(), tmp_path / "run.log"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve(tmp_path, env) as server, open(log, "wb") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "stackwise", "run", "flow.py:live"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1200, "height": 800}, base_url=server)
        try:
            view = _running(server, run, log)
            page = context.new_page()
            errors: list[str] = []
            navigations: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("framenavigated", lambda frame: navigations.append(frame.url))
            page.goto(f"/runs/{view['run_id']}")
            # as served: prepare SUCCEEDED, wait_for_release RUNNING, the run RUNNING, polling
            assert page.locator("#live").count() == 1
            assert page.get_attribute("#dag svg g[id='step-0']", "class") == "node step s-SUCCEEDED"
            assert page.get_attribute("#dag svg g[id='step-1']", "class") == "node step s-RUNNING"
            assert _fill(page, 0) == rgb(STATUS_COLORS["SUCCEEDED"])
            assert _fill(page, 1) == rgb(STATUS_COLORS["RUNNING"])
            assert _background(page, "#run-status .st") == rgb(STATUS_COLORS["RUNNING"])
            assert page.text_content("#steps tr[data-step='wait_for_release'] .st") == "RUNNING"
            page.evaluate(f"{MARK} = true")
            page.screenshot(path=str(ARTIFACTS / "live_before.png"), full_page=True)

            (tmp_path / "release").write_text("")
            # until the page shows the end, or a reload dropped the marker (then fail below)
            page.wait_for_function(
                f"""() => !{MARK} || (
                    document.querySelector("#run-status .st").textContent === "SUCCEEDED"
                    && document.getElementById("step-1").getAttribute("class")
                       === "node step s-SUCCEEDED"
                    && document.querySelector("#live").textContent.startsWith("finished"))""",
                timeout=60_000, polling=250,
            )  # fmt: skip
            page.screenshot(path=str(ARTIFACTS / "live_after.png"), full_page=True)

            # the same document all along: live.js recoloured it, nothing reloaded it
            assert page.evaluate(MARK) is True, "the page was reloaded or navigated away"
            assert navigations == [page.url]
            assert _fill(page, 0) == rgb(STATUS_COLORS["SUCCEEDED"])
            assert _fill(page, 1) == rgb(STATUS_COLORS["SUCCEEDED"])
            assert _background(page, "#run-status .st") == rgb(STATUS_COLORS["SUCCEEDED"])
            row = "#steps tr[data-step='wait_for_release']"
            assert page.text_content(f"{row} .st") == "SUCCEEDED"
            assert _background(page, f"{row} .st") == rgb(STATUS_COLORS["SUCCEEDED"])
            assert (page.text_content(f"{row} .dur") or "").endswith("s")  # its duration, live
            status_line = page.locator("#dag svg g[id='step-1'] text").nth(1).text_content()
            assert status_line is not None and status_line.startswith("SUCCEEDED  ")
            assert errors == []
            assert run.wait(timeout=60) == 0, log.read_text()
            final = httpx.get(f"{server}/api/runs/{view['run_id']}", timeout=30).json()
            assert final["status"] == "SUCCEEDED"
            assert [s["status"] for s in final["steps"]] == ["SUCCEEDED", "SUCCEEDED"]
        finally:
            context.close()
            (tmp_path / "release").write_text("")  # never leave the run waiting
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.kill()
                run.wait()
