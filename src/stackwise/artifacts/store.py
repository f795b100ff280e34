"""The artifact store: step outputs written once under their content hash, on a local folder
or any fsspec URL (`s3://`, `gs://`, `memory://` ...).

Layout: `<root>/<sha[:2]>/<sha>/<filename>`. Writing the same content twice is a no-op, and a
write is atomic (temporary name, then rename) so a killed run never leaves a half-written file
under a final name.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from typing import Any

from stackwise.artifacts.hashing import sha256_bytes
from stackwise.artifacts.serializers import BY_NAME, serializer_for
from stackwise.errors import ArtifactError


@dataclasses.dataclass(frozen=True)
class ArtifactRef:
    """Everything needed to read an output back, in any process."""

    uri: str
    digest: str
    serializer: str
    type_name: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRef:
        return cls(**data)


class ArtifactStore:
    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self._local = "://" not in root or root.startswith("file://")
        if self._local:
            self._path = Path(root.removeprefix("file://")).resolve()
        self._fs: Any = None

    def _filesystem(self) -> Any:
        if self._fs is None:
            import fsspec

            self._fs, _ = fsspec.core.url_to_fs(self.root)
        return self._fs

    def check_writable(self) -> None:
        """Fail before a run starts, not after its first step computed something."""
        try:
            if self._local:
                self._path.mkdir(parents=True, exist_ok=True)
                probe = self._path / f".probe-{uuid.uuid4().hex}"
                probe.write_bytes(b"")
                probe.unlink()
            else:
                self._filesystem().makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(
                f"the artifact store {self.root!r} is not writable ({exc}); create it or set "
                "artifact_store in stackwise.yaml to a writable folder or URL."
            ) from None

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
        try:
            uri = self._write(rel, data)
        except OSError as exc:
            raise ArtifactError(
                f"cannot write to artifact store {self.root!r} ({exc}); check that it exists "
                "and is writable, or set artifact_store in stackwise.yaml."
            ) from exc
        return ArtifactRef(uri, digest, serializer.name, type_name, len(data))

    def _write(self, rel: str, data: bytes) -> str:
        if self._local:
            target = self._path / rel
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, target)
            return str(target)
        fs = self._filesystem()
        target_url = f"{self.root}/{rel}"
        if not fs.exists(target_url):
            tmp_url = f"{self.root}/{rel}.{uuid.uuid4().hex}.tmp"
            fs.pipe_file(tmp_url, data)
            fs.mv(tmp_url, target_url)
        return target_url

    def get(self, ref: ArtifactRef) -> Any:
        try:
            data = self._read(ref.uri)
        except (OSError, FileNotFoundError) as exc:
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
        if "://" not in ref.uri or ref.uri.startswith("file://"):
            return Path(ref.uri.removeprefix("file://")).exists()
        import fsspec

        fs, path = fsspec.core.url_to_fs(ref.uri)
        return bool(fs.exists(path))

    @staticmethod
    def _read(uri: str) -> bytes:
        if "://" not in uri or uri.startswith("file://"):
            return Path(uri.removeprefix("file://")).read_bytes()
        import fsspec

        with fsspec.open(uri, "rb") as fh:
            return bytes(fh.read())
