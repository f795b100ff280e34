"""Every page in a real headless Chromium (Debian's, driven by Playwright) against a real
`stackwise dashboard` server: the DAG, the grid cells and their colours, the lineage graph
and the promotion history checked against what the stores hold (read through the JSON twins,
themselves checked against the stores in test_api.py); a screenshot of each page goes to
test-artifacts/dashboard/. The injection case renders as text and runs nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dash_support import ARTIFACTS, EVIL_PIPELINE, EVIL_STEP, IMG, MODEL, SCRIPT, World

from stackwise.dashboard.graphs import STATUS_COLORS

pytestmark = pytest.mark.slow


@pytest.fixture
def page(browser: Any, server: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == []  # no script error on any page


def api(server: str, path: str, **params: str) -> Any:
    return httpx.get(server + "/api" + path, params=params, timeout=60).json()


def rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def background(locator: Any) -> str:
    return str(locator.evaluate("e => getComputedStyle(e).backgroundColor"))


def fill(locator: Any) -> str:
    return str(locator.evaluate("e => getComputedStyle(e.querySelector('path, polygon')).fill"))


def test_runs_page_lists_every_run_coloured_by_status(page: Any, server: str) -> None:
    page.goto("/runs")
    runs = api(server, "/runs")
    rows = page.locator("#runs tbody tr")
    assert rows.count() == len(runs)
    for i, run in enumerate(runs):
        row = rows.nth(i)
        assert row.get_attribute("data-run") == run["run_id"]
        assert background(row.locator(".st")) == rgb(STATUS_COLORS[run["status"]])
    page.select_option("select[name=status]", "FAILED")
    page.click("form.filters button")
    page.wait_for_url("**/runs?*status=FAILED*")
    assert page.locator("#runs tbody tr").count() == 1


def test_run_page_draws_the_dag_coloured_by_status(page: Any, server: str, world: World) -> None:
    run = api(server, f"/runs/{world.first['run_id']}")
    pipeline = api(server, "/pipelines/training")
    page.goto(f"/runs/{run['run_id']}")
    nodes = page.locator("#dag svg g.node")
    assert nodes.count() == len(run["steps"])
    assert page.locator("#dag svg g.edge").count() == len(pipeline["edges"])
    for i, step in enumerate(run["steps"]):
        node = page.locator(f"#dag svg g[id='step-{i}']")
        assert node.locator("text").first.text_content() == step["name"]
        assert fill(node) == rgb(STATUS_COLORS[step["status"]])
        assert node.locator("a").get_attribute("xlink:href") == step["mlflow_url"]
    assert page.locator("#live").count() == 0  # finished: no polling
    log = page.locator("#steps tr[data-step='ingest'] a", has_text="log")
    assert log.get_attribute("href") == f"/runs/{run['run_id']}/steps/ingest/log"


def test_pipeline_page_draws_steps_resources_and_params(page: Any, server: str) -> None:
    p = api(server, "/pipelines/training")
    page.goto("/pipelines/training")
    labels = page.locator("#dag svg g.node text").all_text_contents()
    assert [s["name"] for s in p["steps"]] == [x for x in labels if x in {s["name"] for s in
                                                                           p["steps"]}]
    assert "cpu 1, mem 2Gi" in labels
    assert page.locator("#params tbody tr").count() == len(p["params"])
    assert page.locator("#schedule").text_content() == p["schedule"]


def test_backfill_grid_cells_and_colours(page: Any, server: str, world: World) -> None:
    bf = world.backfill["backfill_id"]
    grid = api(server, f"/backfills/{bf}")
    page.goto(f"/backfills/{bf}")
    assert page.locator("#progress").text_content() == f"{grid['done']} of 2 intervals finished"
    for i, step in enumerate(grid["steps"]):
        cells = page.locator(f"#grid tr[data-step='{step}'] a.c")
        assert cells.count() == len(grid["intervals"])
        for j, column in enumerate(grid["intervals"]):
            cell = cells.nth(j)
            status = column["cells"][i]["status"]
            assert background(cell) == rgb(STATUS_COLORS[status])
            assert cell.get_attribute("data-date") == column["logical_date"]
    target = grid["intervals"][1]
    page.locator(f"#grid tr[data-step='train'] a.c[data-date='{target['logical_date']}']").click()
    page.wait_for_url(f"**/runs/{target['run_id']}")
    assert page.locator("#run-id").text_content() == target["run_id"]


def test_lineage_graph_navigates_both_ways(page: Any, server: str) -> None:
    ref = f"models:/{MODEL}@production"
    graph = api(server, "/lineage", ref=ref)
    page.goto("/lineage")
    page.locator("#starts a", has_text=f"{MODEL}@production").click()
    page.wait_for_selector("#lineage svg")
    assert page.locator("#lineage svg g.node").count() == len(graph["nodes"])
    assert page.locator("#lineage svg g.edge").count() == len(graph["edges"])
    kinds = {n["kind"] for n in graph["nodes"]}
    for kind in kinds:
        assert page.locator(f"#lineage svg g.node.k-{kind}").count() == sum(
            n["kind"] == kind for n in graph["nodes"]
        )
    # from a raw partition, downstream: back up to the model versions
    page.locator("#lineage svg g.node.k-raw_data a").first.click()
    page.wait_for_url("**/lineage?ref=*")
    page.locator("a", has_text="downstream").click()
    page.wait_for_selector("#lineage svg")
    assert page.locator("#lineage svg g.node.k-model_version").count() >= 1
    assert "downstream" in page.locator("main p").first.text_content()


def test_models_page_shows_aliases_history_and_policy_check(page: Any, server: str) -> None:
    model = api(server, f"/models/{MODEL}")
    page.goto("/models")
    page.locator("#models a", has_text=MODEL).click()
    page.wait_for_selector("#history")
    rows = page.locator("#history tbody tr")
    assert rows.count() == len(model["history"])
    forced = page.locator("#history tr.forced")
    assert forced.count() == 1
    assert forced.locator(".approver").text_content() == "bob"
    assert forced.locator(".reason").text_content() == f"hotfix {SCRIPT}"
    assert page.locator("#aliases li").count() == len(model["detail"]["aliases"])
    page.select_option("select[name=version]", "2")
    page.select_option("select[name=alias]", "production")
    page.locator("form.filters button", has_text="check").click()
    page.wait_for_selector("#policy")
    check = api(server, f"/models/{MODEL}/check", version="2", alias="production")
    cells = page.locator("#policy tbody tr td:first-child").all_text_contents()
    assert cells == [r["rule"] for r in check["rules"]]
    assert "fails" in page.locator("#verdict").text_content()
    assert page.locator("#promote-form").count() == 0  # read-only by default


def test_injected_html_and_script_render_as_text(page: Any, world: World) -> None:
    for path in ("/runs", f"/runs/{world.evil_run_id}", f"/pipelines/{EVIL_PIPELINE}",
                 "/pipelines", f"/models/{MODEL}"):  # fmt: skip
        page.goto(path)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("img").count() == 0
    page.goto(f"/runs/{world.evil_run_id}")
    assert page.locator("#run-pipeline").text_content() == EVIL_PIPELINE
    assert page.locator("#dag svg g.node text").first.text_content() == EVIL_STEP
    assert page.locator("#steps td.err").text_content() == IMG
    assert SCRIPT in page.locator("#params").text_content()
    assert page.locator("#dag svg script").count() == 0
