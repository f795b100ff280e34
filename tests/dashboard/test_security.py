"""The guard: loopback and read-only by default, a token when asked (401 without it), POST
refused unless actions are allowed, and then promotions and rollbacks go through the same
policy check as the CLI with the actor recorded (`via: dashboard`). Uses its own registered
model (named with HTML) in the session's store, so the other tests' models stay as they are.
Runs last (file order): it adds a model and audit events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dash_support import IMG, World
from mlflow import MlflowClient
from starlette.testclient import TestClient

from stackwise.dashboard.app import create_app
from stackwise.dashboard.security import is_loopback

TOY = f"toy{IMG}"  # MLflow refuses '/' and ':' in names, not HTML


@pytest.fixture(scope="module")
def toy(world: World) -> str:
    """A model with two versions from the example's train step; no policy names it, so the
    default policy (no rules) applies."""
    client = MlflowClient(world.config.tracking_uri_resolved)
    train = next(s for s in world.first["steps"] if s["name"] == "train")["mlflow_run_id"]
    source = client.get_run(train).info.artifact_uri
    client.create_registered_model(TOY)
    for _ in range(2):
        client.create_model_version(TOY, source, run_id=train)
    return TOY


@pytest.fixture
def acting(world: World) -> Iterator[Any]:
    with TestClient(create_app(world.config, allow_actions=True)) as c:
        yield c


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.4", "example.com"))


def test_a_token_is_required_when_set(world: World) -> None:
    with TestClient(create_app(world.config, token="s3cret")) as c:
        assert c.get("/api/runs").status_code == 401
        assert c.get("/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        first = c.get("/runs", params={"token": "s3cret"})
        assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
        assert c.get("/runs").status_code == 200  # the cookie carries it on
        assert "s3cret" not in first.text  # never written into a page


def test_the_cli_generates_a_token_off_loopback(world: World) -> None:
    """Without --token on a non-loopback address, one is generated and printed (the server is
    started on all addresses of this host and stopped at once)."""
    import subprocess
    import sys

    from tests.conftest import free_port, wait_http

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stackwise", "dashboard", "--host", "0.0.0.0", "--port", str(port)],
        cwd=world.folder, env=world.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "?token=" in line, line
        token = line.split("?token=")[1].split()[0]
        wait_http(f"http://127.0.0.1:{port}/runs?token={token}", timeout=60)
        import httpx

        assert httpx.get(f"http://127.0.0.1:{port}/api/runs", timeout=30).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_read_only_by_default(world: World, client: Any, toy: str) -> None:
    posted = client.post(f"/api/models/{toy}/actions", json={"action": "rollback",
                                                              "alias": "staging"})  # fmt: skip
    assert posted.status_code == 403 and "--allow-actions" in posted.json()["error"]
    page = client.get(f"/models/{toy}")
    assert page.status_code == 200 and "promote-form" not in page.text
    assert IMG not in page.text and "toy&lt;img" in page.text


def test_actions_go_through_the_policy_and_record_the_actor(
    world: World, acting: Any, toy: str
) -> None:
    client = MlflowClient(world.config.tracking_uri_resolved)
    url = f"/api/models/{toy}/actions"
    for version in ("1", "2"):
        done = acting.post(url, json={"action": "promote", "version": version, "alias": "staging",
                                      "actor": "dave", "reason": "ok"})  # fmt: skip
        assert done.status_code == 200, done.text
        assert done.json()["changed"] is True
    assert client.get_registered_model(toy).aliases == {"staging": 2}
    back = acting.post(url, json={"action": "rollback", "alias": "staging", "actor": "erin"})
    assert back.status_code == 200 and back.json()["holder"] == "1"
    events = acting.get(f"/api/models/{toy}").json()["history"]
    assert [(e["action"], e["version"], e["actor"], e["via"]) for e in events] == [
        ("promote", "1", "dave", "dashboard"), ("promote", "2", "dave", "dashboard"),
        ("rollback", "1", "erin", "dashboard"),
    ]  # fmt: skip
    # the example's production policy refuses v2 (approval, soak): 409 with the policy's rules
    to_production = {"action": "promote", "version": "2", "alias": "production"}
    refused = acting.post("/api/models/breast_cancer_classifier/actions", json=to_production)
    assert refused.status_code == 409
    assert any(not r["passed"] for r in refused.json()["policy"]["rules"])
    bad = acting.post(url, json={"action": "delete", "alias": "staging"})
    assert bad.status_code == 400 and "promote or rollback" in bad.json()["error"]


def test_forms_need_the_pages_key_and_the_same_origin(world: World, acting: Any, toy: str) -> None:
    form = {"action": "rollback", "alias": "staging"}
    assert acting.post(f"/models/{toy}/actions", data=form).status_code == 403  # no form key
    other = acting.post(f"/api/models/{toy}/actions", json=form,
                        headers={"Origin": "http://evil.example"})  # fmt: skip
    assert other.status_code == 403
    text_plain = acting.post(f"/api/models/{toy}/actions", content=b"{}",
                             headers={"Content-Type": "text/plain"})  # fmt: skip
    assert text_plain.status_code == 403
