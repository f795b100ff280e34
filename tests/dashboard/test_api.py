"""Every view's JSON twin against what the stores hold after the session's example run,
backfill and promotions (tests/dashboard/conftest.py): runs from the state store and MLflow,
one run's steps, pipelines with their DAG, the backfill grid, lineage both ways, models with
their promotion history and a policy check."""

from __future__ import annotations

from typing import Any

from dash_support import EVIL_PIPELINE, EVIL_STEP, MODEL, SCRIPT, World
from mlflow import MlflowClient

STEPS = ["ingest", "validate", "features", "train", "evaluate", "register"]


def _mlflow(world: World) -> MlflowClient:
    return MlflowClient(world.config.tracking_uri_resolved)


def test_runs_list_every_run_with_orchestrator_status_interval(world: World, client: Any) -> None:
    runs = client.get("/api/runs").json()
    by_id = {r["run_id"]: r for r in runs}
    interval_runs = [i["run_id"] for i in world.backfill["intervals"]]
    assert {world.first["run_id"], world.evil_run_id, *interval_runs} <= set(by_id)
    assert len(runs) == len(by_id)  # a run in both stores shows once
    first = by_id[world.first["run_id"]]
    assert (first["orchestrator"], first["status"], first["interval"]) == ("local", "SUCCEEDED",
                                                                           None)  # fmt: skip
    assert first["mlflow_url"].endswith(f"/runs/{world.first['mlflow_run_id']}")
    for item in world.backfill["intervals"]:
        run = by_id[item["run_id"]]
        assert run["logical_date"] == item["logical_date"]
        assert run["backfill_id"] == world.backfill["backfill_id"]
    assert by_id[world.evil_run_id]["orchestrator"] == "airflow"
    created = [r["created_at"] for r in runs]
    assert created == sorted(created, reverse=True)


def test_runs_filter_by_status_orchestrator_and_pipeline(world: World, client: Any) -> None:
    failed = client.get("/api/runs", params={"status": "failed"}).json()
    assert [r["run_id"] for r in failed] == [world.evil_run_id]
    airflow = client.get("/api/runs", params={"orchestrator": "airflow"}).json()
    assert [r["pipeline"] for r in airflow] == [EVIL_PIPELINE]
    training = client.get("/api/runs", params={"pipeline": "training"}).json()
    assert len(training) == 3 and {r["pipeline"] for r in training} == {"training"}


def test_a_runs_steps_match_the_state_store_and_mlflow(world: World, client: Any) -> None:
    run = client.get(f"/api/runs/{world.first['run_id']}").json()
    assert [s["name"] for s in run["steps"]] == STEPS
    expected = {s["name"]: s for s in world.first["steps"]}
    for step in run["steps"]:
        assert step["status"] == "SUCCEEDED"
        assert step["mlflow_run_id"] == expected[step["name"]]["mlflow_run_id"]
        assert step["duration_s"] == expected[step["name"]]["duration_s"]
    train = _mlflow(world).get_run(expected["train"]["mlflow_run_id"])
    assert train.data.tags["stackwise.step"] == "train"
    # a prefix works as in `stackwise runs show`; an unknown id is a 404 with the fix
    assert client.get(f"/api/runs/{world.first['run_id'][:17]}").json()["run_id"] == run["run_id"]
    missing = client.get("/api/runs/nope")
    assert missing.status_code == 404 and "stackwise runs list" in missing.json()["error"]


def test_a_run_only_mlflow_knows_shows_with_its_steps(world: World, client: Any) -> None:
    """What another orchestrator leaves: MLflow records only (no state store row)."""
    import sqlalchemy as sa

    from stackwise.orchestrators.local.state import StateStore

    backfilled = world.backfill["intervals"][1]["run_id"]
    state = StateStore(world.config.state_store_resolved, world.config.base_dir)
    with state.engine.begin() as conn:  # forget it in the state store, keep it in MLflow
        rows = conn.execute(sa.select(state.runs).where(state.runs.c.run_id == backfilled)).all()
        conn.execute(state.runs.delete().where(state.runs.c.run_id == backfilled))
    try:
        run = client.get(f"/api/runs/{backfilled}").json()
        assert run["source"] == "mlflow" and run["orchestrator"] == "local"
        assert run["status"] == "SUCCEEDED" and run["backfill_id"] == world.backfill["backfill_id"]
        assert [s["name"] for s in run["steps"]] == STEPS
        assert all(s["mlflow_url"] for s in run["steps"])
        listed = {r["run_id"]: r for r in client.get("/api/runs").json()}
        assert listed[backfilled]["source"] == "mlflow"
    finally:
        with state.engine.begin() as conn:
            conn.execute(state.runs.insert(), [dict(r._mapping) for r in rows])


def test_a_steps_log_is_served_as_text(world: World, client: Any) -> None:
    run = world.first["run_id"]
    found = [s for s in STEPS if client.get(f"/runs/{run}/steps/{s}/log").status_code == 200]
    assert found, "the example's steps print progress"
    log = client.get(f"/runs/{run}/steps/{found[0]}/log")
    assert log.headers["content-type"].startswith("text/plain")
    assert log.headers["x-content-type-options"] == "nosniff"


def test_pipelines_show_the_dag_params_and_schedule(world: World, client: Any) -> None:
    names = [p["name"] for p in client.get("/api/pipelines").json()]
    assert names == sorted([EVIL_PIPELINE, "training"])
    p = client.get("/api/pipelines/training").json()
    assert [s["name"] for s in p["steps"]] == STEPS
    assert ["ingest", "validate", "output"] in p["edges"]
    assert ["features", "train", "train"] in p["edges"]
    train = next(s for s in p["steps"] if s["name"] == "train")
    assert train["resources"] == {"cpu": 1, "memory": "2Gi"} and train["compute"] == "local"
    assert next(s for s in p["steps"] if s["name"] == "ingest")["retries"] == 2
    params = {x["name"]: x for x in p["params"]}
    assert params["n_estimators"]["default"] == 150 and params["n_estimators"]["type"] == "int"
    assert p["schedule"].startswith("0 0 * * 0 from 2026-06-07") and p["runs"] == 3
    evil = client.get(f"/api/pipelines/{EVIL_PIPELINE}").json()
    assert evil["load_error"]  # its code cannot be loaded: said, not raised
    assert client.get("/api/pipelines/unknown").status_code == 404


def test_backfill_grid_holds_the_ledger_and_step_states(world: World, client: Any) -> None:
    bf = world.backfill["backfill_id"]
    listed = client.get("/api/backfills").json()
    assert [(b["backfill_id"], b["intervals"], b["done"], b["failed"]) for b in listed] == [
        (bf, 2, 2, 0)
    ]
    grid = client.get(f"/api/backfills/{bf}").json()
    assert grid["pipeline"] == "training" and grid["steps"] == STEPS
    assert [c["logical_date"] for c in grid["intervals"]] == [
        i["logical_date"] for i in world.backfill["intervals"]
    ]
    for column, item in zip(grid["intervals"], world.backfill["intervals"], strict=True):
        assert column["run_id"] == item["run_id"] and column["status"] == item["status"]
        recorded = client.get(f"/api/runs/{item['run_id']}").json()["steps"]
        assert [(c["step"], c["status"], c["cached"]) for c in column["cells"]] == [
            (s["name"], s["status"], s["cached"]) for s in recorded
        ]
    assert client.get("/api/backfills/bf-none").status_code == 404


def test_lineage_upstream_and_downstream(world: World, client: Any) -> None:
    up = client.get("/api/lineage", params={"ref": f"models:/{MODEL}@production"}).json()
    assert up["direction"] == "upstream" and up["root"] == f"alias:{MODEL}@production"
    kinds = {n["kind"] for n in up["nodes"]}
    assert {"alias", "model_version", "run", "pipeline_run", "dataset", "raw_data"} <= kinds
    raw = next(n for n in up["nodes"] if n["kind"] == "raw_data")
    down = client.get("/api/lineage", params={"ref": raw["attrs"]["digest"]}).json()
    assert down["direction"] == "downstream"
    assert any(n["id"] == f"version:{MODEL}/1" for n in down["nodes"])
    bad = client.get("/api/lineage", params={"ref": "not a ref"})
    assert bad.status_code == 400 and "models:/NAME@ALIAS" in bad.json()["error"]


def test_models_aliases_and_promotion_history(world: World, client: Any) -> None:
    models = client.get("/api/models").json()
    assert [m["name"] for m in models] == [MODEL]
    registered = _mlflow(world).get_registered_model(MODEL)
    assert models[0]["aliases"] == {a: str(v) for a, v in registered.aliases.items()}
    page = client.get(f"/api/models/{MODEL}").json()
    assert len(page["detail"]["versions"]) == 3
    events = page["history"]
    refusal = [e for e in events if e["action"] == "refuse" and e["alias"] == "production"]
    forced = [e for e in events if e["forced"]]
    assert len(refusal) == 1 and refusal[0]["actor"] == "carol"
    assert [(e["version"], e["approver"], e["actor"], e["reason"]) for e in forced] == [
        ("1", "bob", "carol", f"hotfix {SCRIPT}")
    ]
    assert forced[0]["policy"] == "failed" and any(not r["passed"] for r in forced[0]["rules"])
    assert page["aliases"] == ["staging", "production"]


def test_policy_check_of_a_version_and_alias(world: World, client: Any) -> None:
    from stackwise.governance.lifecycle import ModelLifecycle
    from stackwise.governance.policies import load_policies
    from stackwise.governance.registry import Registry

    got = client.get(f"/api/models/{MODEL}/check", params={"version": "2", "alias": "production"})
    lc = ModelLifecycle(Registry.open(world.config), load_policies(None, world.config))
    expected = lc.check(MODEL, "2", "production")
    body = got.json()
    assert body["passed"] is expected.passed is False
    assert [(r["rule"], r["passed"]) for r in body["rules"]] == [
        (r.rule, r.passed) for r in expected.rules
    ]
    assert client.get(f"/api/models/{MODEL}/check").status_code == 400
    assert client.get("/api/models/nosuch").status_code == 404


def test_the_injection_case_is_data_in_json(world: World, client: Any) -> None:
    run = client.get(f"/api/runs/{world.evil_run_id}").json()
    assert run["pipeline"] == EVIL_PIPELINE and run["steps"][0]["name"] == EVIL_STEP
    assert run["steps"][0]["retried"] is True and run["params"]["note"] == SCRIPT
