"""The content-addressed artifact store: round trips per serializer, dedup, integrity checks,
fsspec roots and atomic writes."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stackwise.artifacts import ArtifactRef, ArtifactStore
from stackwise.artifacts.serializers import PickleFallbackWarning, serializer_for
from stackwise.artifacts.store import local_path
from stackwise.errors import ArtifactError


class Custom:
    """No dedicated serializer: stored with pickle."""

    def __init__(self, value: int, label: str) -> None:
        self.value = value
        self.label = label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Custom) and (other.value, other.label) == (self.value, self.label)

    def __hash__(self) -> int:
        return hash((self.value, self.label))


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(str(tmp_path / "artifacts"))


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"memory://sw-test-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    path = root.removeprefix("memory://")
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _path(uri: str) -> Path:
    """Local artifacts are file:// URLs (the contract: locations are always URLs)."""
    assert uri.startswith("file:///"), uri
    path = local_path(uri)
    assert path is not None
    return path


@pytest.mark.parametrize(
    "value",
    [
        0,
        -3,
        2.5,
        "text",
        "",
        True,
        None,
        [1, "a", None, [2.5]],
        {"b": 1, "a": {"nested": [True, False]}},
        {},
    ],
)
def test_json_values_round_trip(store: ArtifactStore, value: Any) -> None:
    ref = store.put(value)
    assert ref.serializer == "json"
    assert ref.uri.endswith("/value.json")
    loaded = store.get(ref)
    assert loaded == value
    assert type(loaded) is type(value)
    assert json.loads(_path(ref.uri).read_bytes()) == value
    assert ref.size == _path(ref.uri).stat().st_size


def test_layout_is_digest_prefix_then_digest(store: ArtifactStore, tmp_path: Path) -> None:
    ref = store.put({"k": "v"})
    uri = _path(ref.uri)
    assert uri.parent.name == ref.digest
    assert uri.parent.parent.name == ref.digest[:2]
    assert uri.parent.parent.parent == (tmp_path / "artifacts").resolve()
    assert len(ref.digest) == 64
    assert ref.type_name == "builtins.dict"


def test_dataframe_round_trips_as_parquet(store: ArtifactStore) -> None:
    df = pd.DataFrame(
        {"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, np.nan, 1.5]},
        index=pd.Index([10, 11, 12], name="row"),
    )
    ref = store.put(df)
    assert ref.serializer == "parquet"
    assert ref.uri.endswith("/data.parquet")
    assert ref.type_name == "pandas.DataFrame"
    loaded = store.get(ref)
    pd.testing.assert_frame_equal(loaded, df)


def test_ndarray_round_trips_as_npy(store: ArtifactStore) -> None:
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    ref = store.put(arr)
    assert ref.serializer == "npy"
    assert ref.uri.endswith("/array.npy")
    loaded = store.get(ref)
    assert loaded.dtype == np.float32
    assert loaded.shape == (2, 3, 4)
    np.testing.assert_array_equal(loaded, arr)


def test_fitted_sklearn_model_round_trips_with_joblib(store: ArtifactStore) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    ref = store.put(model)
    assert ref.serializer == "joblib"
    assert ref.uri.endswith("/model.joblib")
    loaded = store.get(ref)
    assert loaded is not model
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_unfitted_estimator_also_uses_joblib() -> None:
    assert serializer_for(LogisticRegression()).name == "joblib"


@pytest.mark.parametrize(
    "value",
    [Custom(3, "three"), (1, 2), {1: "int key"}, float("nan"), {"a": (1, 2)}],
)
def test_other_values_fall_back_to_pickle_with_a_warning(store: ArtifactStore, value: Any) -> None:
    with pytest.warns(PickleFallbackWarning, match="it was pickled"):
        ref = store.put(value)
    assert ref.serializer == "pickle"
    assert ref.uri.endswith("/object.pkl")
    loaded = store.get(ref)
    if isinstance(value, float):
        assert loaded != loaded  # nan
    else:
        assert loaded == value


def test_custom_object_type_name(store: ArtifactStore) -> None:
    with pytest.warns(PickleFallbackWarning, match=r"Custom"):
        ref = store.put(Custom(1, "one"))
    assert ref.type_name.endswith(".Custom")


def test_same_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    first = store.put({"rows": [1, 2, 3]})
    second = store.put({"rows": [1, 2, 3]})
    assert second == first
    df = pd.DataFrame({"a": [1.0, 2.0]})
    assert store.put(df) == store.put(df.copy())
    arr = np.ones((2, 2))
    assert store.put(arr).uri == store.put(arr.copy()).uri
    assert len(_files(tmp_path / "artifacts")) == 3


def test_dict_key_order_does_not_change_the_digest(store: ArtifactStore) -> None:
    assert store.put({"a": 1, "b": 2}).digest == store.put({"b": 2, "a": 1}).digest


def test_different_content_gets_a_different_address(store: ArtifactStore) -> None:
    refs = [store.put(v) for v in (1, 2, 1.0, "1", True, [1])]
    assert len({r.digest for r in refs}) == len(refs)
    assert len({r.uri for r in refs}) == len(refs)
    assert [store.get(r) for r in refs] == [1, 2, 1.0, "1", True, [1]]


def test_tampered_artifact_is_rejected(store: ArtifactStore) -> None:
    ref = store.put({"score": 0.9})
    _path(ref.uri).write_bytes(b'{"score":1.0}')
    with pytest.raises(ArtifactError) as exc:
        store.get(ref)
    assert "does not match its digest" in exc.value.message
    assert ref.digest[:12] in exc.value.message
    assert "--no-cache" in exc.value.message


def test_deleted_artifact_is_an_artifact_error(store: ArtifactStore) -> None:
    ref = store.put([1, 2, 3])
    assert store.exists(ref)
    _path(ref.uri).unlink()
    assert not store.exists(ref)
    with pytest.raises(ArtifactError, match="cannot be read"):
        store.get(ref)


def test_ref_survives_a_json_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    ref = store.put({"k": [1, 2]})
    copy = ArtifactRef.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert copy == ref
    # another store object (another process) on the same root reads it back
    assert ArtifactStore(str(tmp_path / "artifacts")).get(copy) == {"k": [1, 2]}


def test_file_url_root(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path / 'file-root'}")
    ref = store.put([4, 5])
    assert _path(ref.uri).is_file()
    assert _path(ref.uri).is_relative_to(tmp_path / "file-root")
    assert store.get(ref) == [4, 5]


def test_memory_fsspec_root(memory_root: str) -> None:
    store = ArtifactStore(memory_root)
    ref = store.put({"in": "memory"})
    assert ref.uri.startswith(memory_root + "/")
    assert ref.uri.endswith(f"/{ref.digest[:2]}/{ref.digest}/value.json")
    assert store.exists(ref)
    assert store.get(ref) == {"in": "memory"}
    arr = np.arange(5)
    np.testing.assert_array_equal(store.get(store.put(arr)), arr)
    assert store.put({"in": "memory"}) == ref

    fs = fsspec.filesystem("memory")
    files = fs.find(memory_root.removeprefix("memory://"))
    assert len(files) == 2
    assert not [f for f in files if f.endswith(".tmp")]


def test_memory_root_detects_tampering(memory_root: str) -> None:
    store = ArtifactStore(memory_root)
    ref = store.put("original")
    fs = fsspec.filesystem("memory")
    fs.pipe_file(ref.uri.removeprefix("memory://"), b'"changed"')
    with pytest.raises(ArtifactError, match="does not match its digest"):
        store.get(ref)


def test_no_temporary_files_are_left(store: ArtifactStore, tmp_path: Path) -> None:
    values: list[Any] = [1, {"a": 2}, pd.DataFrame({"x": [1]}), np.zeros(3)]
    for value in values:
        store.put(value)
        store.put(value)  # second write of the same content: no-op
    files = _files(tmp_path / "artifacts")
    assert len(files) == 4
    assert not [f for f in files if f.name.endswith(".tmp") or f.name.startswith(".")]


def test_unwritable_root_is_an_artifact_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    with pytest.raises(ArtifactError) as exc:
        ArtifactStore(str(blocker)).put([1])
    assert "cannot write to artifact store" in exc.value.message
    assert "artifact_store in stackwise.yaml" in exc.value.message


def test_unserializable_value_is_an_artifact_error(store: ArtifactStore) -> None:
    with pytest.warns(PickleFallbackWarning), pytest.raises(ArtifactError) as exc:
        store.put(lambda: 1)
    assert "cannot serialize a function with pickle" in exc.value.message
