"""Code bundles: what goes in, determinism, digest checks, one fetch per host, and the CLI."""

import io
import json
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from stackwise.artifacts.hashing import sha256_bytes
from stackwise.bundles import build_bundle, fetch_bundle, pack, portable_ref, project_files
from stackwise.contract import BundleRef
from stackwise.errors import BundleError


def _project(root: Path) -> Path:
    files = {
        "flows/daily.py": "X = 1\n",
        "flows/helpers.py": "Y = 2\n",
        "flows/__init__.py": "",
        "README.md": "hello\n",
        "stackwise.yaml": "tracking: false\n",
        "notes.log": "noise\n",
        "data/raw/part-0.csv": "a,b\n1,2\n",
        "flows/data/__init__.py": "",  # a package called data is code
        "flows/data/loader.py": "Z = 3\n",
        ".stackwise/state.db": "x",
        ".venv/pyvenv.cfg": "home = /usr\n",
        "env2/pyvenv.cfg": "home = /usr\n",
        "env2/lib/site.py": "S = 1\n",
        "build/out.py": "B = 1\n",
        "flows/__pycache__/daily.cpython-311.pyc": "x",
        "secret/keys.py": "K = 1\n",
        "scratch/tmp.py": "T = 1\n",
        "scratch/keep.py": "K = 2\n",
        "model.pt": "weights",
        ".gitignore": "secret/\n",
        "scratch/.gitignore": "*.py\n!keep.py\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_bundle_holds_the_code_and_nothing_else(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    found = sorted(p.as_posix() for p in project_files(root))
    assert found == [
        ".gitignore",
        "README.md",
        "flows/__init__.py",
        "flows/daily.py",
        "flows/data/__init__.py",
        "flows/data/loader.py",
        "flows/helpers.py",
        "scratch/.gitignore",
        "scratch/keep.py",
        "stackwise.yaml",
    ]


def test_packing_is_deterministic_and_follows_the_sources(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    first, count = pack(root)
    (root / "notes.log").write_text("changed noise")  # not code: same bundle
    again, _ = pack(root)
    assert sha256_bytes(first) == sha256_bytes(again) and count == 10
    (root / "flows" / "helpers.py").write_text("Y = 3\n")
    edited, _ = pack(root)
    assert sha256_bytes(edited) != sha256_bytes(first)
    with tarfile.open(fileobj=io.BytesIO(edited), mode="r:gz") as tar:
        member = tar.getmember("flows/helpers.py")
        assert member.mtime == 0 and member.uid == 0
        handle = tar.extractfile(member)
        assert handle is not None and handle.read() == b"Y = 3\n"


def test_fetch_verifies_the_digest_and_extracts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STACKWISE_CACHE_DIR", str(tmp_path / "cache"))
    root = _project(tmp_path / "proj")
    ref, files, size = build_bundle(root, str(tmp_path / "artifacts"))
    assert files == 10 and size > 0
    assert ref.uri.endswith(f"/bundles/{ref.digest}.tar.gz")
    # the same sources again: the same object, nothing rewritten
    again, _, _ = build_bundle(root, str(tmp_path / "artifacts"))
    assert again == ref

    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(fetch_bundle(ref))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    extracted = results[0]
    assert (extracted / "flows" / "daily.py").read_text() == "X = 1\n"
    assert not (extracted / "data").exists()

    wrong = BundleRef(uri=ref.uri, digest="f" * 64)
    with pytest.raises(BundleError, match="does not match its digest"):
        fetch_bundle(wrong)
    missing = BundleRef(uri=ref.uri.replace(ref.digest, "0" * 64), digest="0" * 64)
    with pytest.raises(BundleError, match="cannot fetch"):
        fetch_bundle(missing)


def test_references_inside_and_outside_the_project(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj")
    inside = portable_ref(f"{root / 'flows' / 'daily.py'}:daily", root)
    assert inside.target == "flows/daily.py" and inside.root == root.resolve().as_uri()
    module = portable_ref("flows.daily:daily", root)
    assert module.target == "flows.daily" and module.is_portable
    outside = portable_ref(f"{tmp_path / 'elsewhere.py'}:p", root)
    assert outside.target == str(tmp_path / "elsewhere.py")


def test_cli_bundle_prints_the_reference(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "stackwise.yaml").write_text("artifact_store: store\n")
    (root / "flow.py").write_text(
        "import stackwise as sw\n\n@sw.step\ndef one() -> int:\n    return 1\n\n"
        "@sw.pipeline\ndef flow():\n    one()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "stackwise", "bundle", "flow.py:flow", "--json"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["pipeline"]["target"] == "flow.py" and data["pipeline"]["name"] == "flow"
    assert data["bundle"]["uri"] == (root / "store" / "bundles").as_uri() + (
        f"/{data['bundle']['digest']}.tar.gz"
    )
    assert data["files"] == 2


def test_secret_files_and_the_ignore_files_above_the_project_keep_things_out(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".gitignore").write_text("*.secret\nprivate/\n")
    root = repo / "proj"
    files = {"flow.py": "X = 1\n", "db.secret": "pw", "private/notes.py": "N = 1\n",
             ".env": "API_KEY=1", ".env.prod": "X=1", "server.pem": "-----", "id_rsa": "k",
             ".netrc": "machine x", "conf/settings.py": "S = 1\n"}  # fmt: skip
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    assert sorted(p.as_posix() for p in project_files(root)) == ["conf/settings.py", "flow.py"]
