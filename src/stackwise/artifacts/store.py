"""The artifact store: step outputs written once under their content hash, on a local folder
or any fsspec URL (`file://`, `s3://`, `gs://`, `memory://` ...).

Layout under the store's root URL::

    <sha[:2]>/<sha>/<filename>          step outputs, content-addressed, written once
    runs/<run_id>/<step>.json           what each step of a pipeline run produced (InputRefs)
    cache/<key[:2]>/<key>.json          the artifact-store step cache
    bundles/<sha>.tar.gz                code bundles

Every write is atomic (a temporary name, then a rename), so a killed run never leaves a
half-written file under a final name. Locations are always URLs: a bare folder given in the
stack config becomes `file:///abs/folder`.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict

from stackwise.artifacts.hashing import sha256_bytes
from stackwise.artifacts.serializers import BY_NAME, serializer_for
from stackwise.errors import ArtifactError


class ArtifactRef(BaseModel):
    """Everything needed to read an output back, in any process: its URL, the sha256 of its
    bytes, the serializer that reads them, the Python type it was and its size in bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str
    digest: str
    serializer: str
    type_name: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        ref = cls.model_validate(data)
        if "://" not in ref.uri:  # written by stackwise 0.1 as a bare path
            return ref.model_copy(update={"uri": to_url(ref.uri)})
        return ref


def to_url(location: str) -> str:
    """A folder or URL as a URL: bare paths become absolute `file://` URLs."""
    if "://" in location:
        return location.rstrip("/")
    return Path(location).expanduser().resolve().as_uri()


def local_path(url: str) -> Path | None:
    """The filesystem path of a `file://` URL (or a bare path); None for remote URLs."""
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(unquote(parts.path))


class ArtifactStore:
    def __init__(self, root: str) -> None:
        self.root = to_url(root)
        self._path = local_path(self.root)
        self._fs: Any = None
        #: Local folders known to exist (a write into one skips its mkdir).
        self._folders: set[str] = set()

    def _filesystem(self) -> Any:
        if self._fs is None:
            self._fs, _ = filesystem(self.root)
        return self._fs

    def check_protocol(self) -> None:
        """Raise ArtifactError now when the store's protocol cannot be loaded here (cheap:
        nothing is read or written)."""
        if self._path is None:
            self._filesystem()

    def check_writable(self) -> None:
        """Fail before a run starts, not after its first step computed something."""
        try:
            if self._path is not None:
                self._path.mkdir(parents=True, exist_ok=True)
                probe = self._path / f".probe-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
            else:
                self._filesystem().makedirs(self.root, exist_ok=True)
        except (OSError, ValueError) as exc:
            raise ArtifactError(
                f"the artifact store {self.root!r} is not writable ({exc}); create it or set "
                "artifact_store in stackwise.yaml to a writable folder or URL."
            ) from None

    # -- step outputs (content-addressed) -----------------------------------------------------
    def put(self, value: Any) -> ArtifactRef:
        serializer = serializer_for(value)
        try:
            data = serializer.dumps(value)
        except Exception as exc:
            raise ArtifactError(
                f"cannot serialize a {type(value).__name__} with {serializer.name} ({exc}); "
                "return a JSON value, DataFrame, ndarray or scikit-learn model."
            ) from exc
        digest = sha256_bytes(data)
        rel = f"{digest[:2]}/{digest}/{serializer.filename}"
        type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        if not self.exists_at(rel):
            self.write(rel, data)
        return ArtifactRef(
            uri=self.url(rel), digest=digest, serializer=serializer.name,
            type_name=type_name, size=len(data),
        )  # fmt: skip

    def get(self, ref: ArtifactRef) -> Any:
        try:
            data = read_url(ref.uri)
        except OSError as exc:
            raise ArtifactError(
                f"artifact {ref.uri!r} cannot be read ({exc}); it was deleted or the artifact "
                "store moved. Rerun the producing step with --no-cache."
            ) from exc
        if sha256_bytes(data) != ref.digest:
            raise ArtifactError(
                f"artifact {ref.uri!r} does not match its digest {ref.digest[:12]}: it was "
                "modified after it was written. Rerun the producing step with --no-cache."
            )
        return BY_NAME[ref.serializer].loads(data)

    def exists(self, ref: ArtifactRef) -> bool:
        return url_exists(ref.uri)

    # -- named objects (run index, cache entries, bundles) --------------------------------
    def url(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def exists_at(self, rel: str) -> bool:
        if self._path is not None:
            return os.path.exists(f"{self._path}/{rel}")
        return url_exists(self.url(rel))

    def write(self, rel: str, data: bytes) -> str:
        """Write `data` under `rel` atomically (replacing what was there); returns its URL."""
        try:
            if self._path is not None:
                self._write_local(f"{self._path}/{rel}", data)
            else:
                fs = self._filesystem()
                tmp_url = f"{self.url(rel)}.{uuid.uuid4().hex}.tmp"
                fs.pipe_file(tmp_url, data)
                fs.mv(tmp_url, self.url(rel))
        except OSError as exc:
            raise ArtifactError(
                f"cannot write to artifact store {self.root!r} ({exc}); check that it exists "
                "and is writable, or set artifact_store in stackwise.yaml."
            ) from exc
        return self.url(rel)

    def _write_local(self, target: str, data: bytes) -> None:
        """A temporary file, then a rename; the folder is created once per store object (and
        again if it disappeared since)."""
        folder, _, name = target.rpartition("/")
        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        if folder not in self._folders:
            os.makedirs(folder, exist_ok=True)
            self._folders.add(folder)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileNotFoundError:
            self._folders.discard(folder)  # removed behind our back: create it again
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read(self, rel: str) -> bytes | None:
        """The bytes under `rel`, or None when there is nothing."""
        try:
            return read_url(self.url(rel))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ArtifactError(
                f"cannot read {self.url(rel)!r} from the artifact store ({exc})."
            ) from exc


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the path in it. Raises ArtifactError, naming the
    package to install, for a protocol fsspec does not know or cannot load."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise ArtifactError(
            f"cannot open {url!r}: its protocol needs a package that is not installed ({exc}); "
            "install it (s3fs for s3://, gcsfs for gs://, adlfs for abfs://) where this runs."
        ) from None
    except ValueError as exc:
        raise ArtifactError(
            f"cannot open {url!r} ({exc}); use a folder or a URL fsspec knows (file://, "
            "s3://, gs://, abfs://, memory://, ...)."
        ) from None


def read_url(url: str) -> bytes:
    path = local_path(url)
    if path is not None:
        return path.read_bytes()
    fs, fs_path = filesystem(url)
    return bytes(fs.cat_file(fs_path))


def url_exists(url: str) -> bool:
    path = local_path(url)
    if path is not None:
        return path.exists()
    fs, fs_path = filesystem(url)
    return bool(fs.exists(fs_path))
