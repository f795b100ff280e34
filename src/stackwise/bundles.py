"""Code bundles: the project's source, packed once per change, so that workers run new code
without a new image.

`build_bundle` packs the project folder (its `.gitignore` and `.stackwiseignore` files are
respected; `.stackwise/`, version-control folders, virtualenvs, caches, data folders and data
files never go in) into a deterministic `tar.gz`: the same sources always give the same bytes,
so the archive is stored once under its sha256 in the artifact store
(`bundles/<sha256>.tar.gz`). A worker's runner fetches it once per host into
`$STACKWISE_CACHE_DIR` (default `~/.cache/stackwise`), verifies the digest, extracts it, puts
it on `sys.path` and loads the pipeline from it (`load_pipeline_ref`).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sys
import tarfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from stackwise.artifacts.hashing import sha256_bytes
from stackwise.artifacts.store import ArtifactStore, local_path, read_url
from stackwise.authoring.pipeline import Pipeline
from stackwise.contract import BundleRef, PipelineRef
from stackwise.errors import BundleError, PipelineLoadError

#: Folders never bundled (besides virtualenvs, found by their pyvenv.cfg).
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", ".stackwise", "__pycache__", ".venv", "venv", "node_modules",
     ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints",
     "mlruns", "mlartifacts", "build", "dist"}
)  # fmt: skip
#: Folders of data (unless they are Python packages) and data files are not code.
DATA_DIRS = frozenset({"data", "datasets"})
DATA_SUFFIXES = frozenset(
    {".csv", ".tsv", ".parquet", ".feather", ".arrow", ".avro", ".orc", ".npy", ".npz",
     ".pkl", ".pickle", ".joblib", ".h5", ".hdf5", ".db", ".sqlite", ".sqlite3", ".zip",
     ".tar", ".gz", ".tgz", ".bz2", ".xz", ".pt", ".pth", ".ckpt", ".onnx", ".safetensors",
     ".bin", ".pyc", ".log"}
)  # fmt: skip
#: Files that hold credentials never go in, whatever the ignore files say (gitignore syntax).
SECRET_FILES = (".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "id_rsa*",
                "id_ed25519*", "id_ecdsa*", ".netrc", ".pypirc", ".npmrc", ".git-credentials",
                "credentials.json", "*.kdbx")  # fmt: skip
#: A bundle larger than this is refused: something that is not code slipped in.
MAX_BUNDLE_BYTES = 200 * 1024 * 1024
IGNORE_FILES = (".gitignore", ".stackwiseignore")

_fetch_lock = threading.Lock()
_fetched: dict[str, Path] = {}


def project_files(root: Path) -> Iterator[Path]:
    """The files of the project under `root` that belong in a bundle, as relative paths."""
    import pathspec

    root = root.resolve()
    base: list[tuple[Path, pathspec.GitIgnoreSpec]] = [
        (root, pathspec.GitIgnoreSpec.from_lines(SECRET_FILES))
    ]
    # Inside a git repository, the ignore files of the folders above the project count too.
    top = _git_top(root)
    if top is not None:
        for folder in reversed(root.parents):
            if folder == top or top in folder.parents:
                base += _ignore_spec(folder)

    def walk(folder: Path, specs: list[tuple[Path, pathspec.GitIgnoreSpec]]) -> Iterator[Path]:
        specs = [*specs, *_ignore_spec(folder)]
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            if entry.is_symlink():
                continue
            is_dir = entry.is_dir()
            if _ignored(path, is_dir, specs):
                continue
            if is_dir:
                if _skip_dir(path):
                    continue
                yield from walk(path, specs)
            elif entry.is_file() and path.suffix.lower() not in DATA_SUFFIXES:
                yield path.relative_to(root)

    yield from walk(root, base)


def _ignore_spec(folder: Path) -> list[tuple[Path, Any]]:
    import pathspec

    lines: list[str] = []
    for name in IGNORE_FILES:
        ignore = folder / name
        if ignore.is_file():
            lines += ignore.read_text(errors="replace").splitlines()
    return [(folder, pathspec.GitIgnoreSpec.from_lines(lines))] if lines else []


def _git_top(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _ignored(path: Path, is_dir: bool, specs: Sequence[tuple[Path, Any]]) -> bool:
    for base, spec in specs:
        try:
            rel = path.relative_to(base).as_posix() + ("/" if is_dir else "")
        except ValueError:
            continue
        if spec.match_file(rel):
            return True
    return False


def _skip_dir(path: Path) -> bool:
    if path.name in SKIP_DIRS or path.name.endswith(".egg-info"):
        return True
    if (path / "pyvenv.cfg").exists():
        return True
    return path.name.lower() in DATA_DIRS and not (path / "__init__.py").exists()


def pack(root: Path) -> tuple[bytes, int]:
    """A deterministic tar.gz of the project's files (sorted, no timestamps or owners), and
    the number of files in it. Raises BundleError when it grows past MAX_BUNDLE_BYTES."""
    buf = io.BytesIO()
    count = total = 0
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel in project_files(root):
            data = (root / rel).read_bytes()
            total += len(data)
            if total > MAX_BUNDLE_BYTES:
                raise BundleError(
                    f"the project under {root} holds more than {MAX_BUNDLE_BYTES >> 20} MiB of "
                    f"files that look like code (reached at {rel}); list data and generated "
                    "files in .stackwiseignore (gitignore syntax)."
                )
            info = tarfile.TarInfo(rel.as_posix())
            info.size, info.mtime, info.uid, info.gid = len(data), 0, 0, 0
            info.mode = 0o755 if os.access(root / rel, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
            count += 1
    return buf.getvalue(), count


def build_bundle(root: Path, artifact_root: str) -> tuple[BundleRef, int, int]:
    """Pack `root` and store it in the artifact store (once per content). Returns the bundle's
    reference, its number of files and its size in bytes."""
    data, count = pack(root)
    if count == 0:
        raise BundleError(f"no source files to bundle under {root}; check the folder.")
    digest = sha256_bytes(data)
    store = ArtifactStore(artifact_root)
    rel = f"bundles/{digest}.tar.gz"
    uri = store.url(rel) if store.exists_at(rel) else store.write(rel, data)
    return BundleRef(uri=uri, digest=digest), count, len(data)


def cache_dir() -> Path:
    base = os.environ.get("STACKWISE_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "stackwise"


def fetch_bundle(ref: BundleRef) -> Path:
    """The extracted bundle on this host: fetched once per host and digest (a file lock keeps
    concurrent workers from fetching twice), verified, extracted atomically.

    Raises BundleError when the archive is missing, unreadable or does not match its digest."""
    with _fetch_lock:
        known = _fetched.get(ref.digest)
        if known is not None:
            return known
        from filelock import FileLock

        folder = cache_dir() / "bundles"
        target = folder / ref.digest
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / f"{ref.digest}.lock")):
            if not (target / ".stackwise-bundle-complete").exists():
                _download(ref, target)
        _fetched[ref.digest] = target
        return target


def _download(ref: BundleRef, target: Path) -> None:
    try:
        data = read_url(ref.uri)
    except OSError as exc:
        raise BundleError(
            f"cannot fetch the code bundle {ref.uri} ({exc}); check that the artifact store is "
            "reachable from this worker, or rebuild it with `stackwise bundle TARGET`."
        ) from None
    if sha256_bytes(data) != ref.digest:
        raise BundleError(
            f"the code bundle {ref.uri} does not match its digest {ref.digest[:12]}: it was "
            "changed after it was built; rebuild it with `stackwise bundle TARGET`."
        )
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BundleError(
                f"the code bundle {ref.uri} is not a readable tar.gz ({exc}); rebuild it with "
                "`stackwise bundle TARGET`."
            ) from None
        (tmp / ".stackwise-bundle-complete").write_text(ref.uri)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def portable_ref(target: str, project_root: Path, bundle: BundleRef | None = None) -> PipelineRef:
    """The `PipelineRef` of a user's TARGET (`pkg.module:name` or `path/file.py:name`): a file
    inside `project_root` becomes a path relative to it."""
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise PipelineLoadError(
            f"pipeline reference {target!r} must look like 'package.module:name' or "
            "'path/to/file.py:name'."
        )
    root = project_root.resolve()
    if where.endswith(".py") or "/" in where or os.sep in where:
        path = Path(where).resolve()
        try:
            where = path.relative_to(root).as_posix()
        except ValueError:
            where = path.as_posix()  # outside the project: only this host can find it
    return PipelineRef(target=where, name=name, root=root.as_uri(), bundle=bundle)


#: File references already turned into `load_pipeline` arguments: (target, name, root) ->
#: "/abs/path.py:name" (every step attempt loads its pipeline; the paths never change).
_file_refs: dict[tuple[str, str, str | None], str] = {}


def load_pipeline_ref(ref: PipelineRef) -> Pipeline:
    """Load the pipeline a `PipelineRef` names in this process (from its bundle when it has
    one), memoized like `load_pipeline`."""
    from stackwise.authoring.loader import load_pipeline

    known = _file_refs.get((ref.target, ref.name, ref.root)) if ref.bundle is None else None
    if known is not None:
        return load_pipeline(known)
    root = fetch_bundle(ref.bundle) if ref.bundle else local_path(ref.root) if ref.root else None
    if ref.is_file:
        path = PurePosixPath(ref.target)
        if not path.is_absolute():
            if root is None:
                raise PipelineLoadError(
                    f"pipeline reference {ref} is a relative path but names no project root "
                    "or bundle; give root (a file:// URL) or bundle in the invocation."
                )
            path = PurePosixPath(root.as_posix()) / path
        pipeline = load_pipeline(f"{path}:{ref.name}")
        if ref.bundle is None:
            _file_refs[(ref.target, ref.name, ref.root)] = f"{path}:{ref.name}"
        return pipeline
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return load_pipeline(str(ref))
