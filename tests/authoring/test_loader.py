"""Loading pipelines by reference: 'file.py:name' and 'package.module:name', the errors for
references that do not resolve, memoization, `pipeline.ref` and `pipeline.version`."""

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stackwise.authoring import Pipeline, load_pipeline, loader
from stackwise.errors import PipelineLoadError, PipelineValidationError

PIPELINE_SOURCE = """
import stackwise

@stackwise.step
def make(n: int = 3) -> list[int]:
    return list(range(n))

@stackwise.step
def total(rows: list[int]) -> int:
    return sum(rows)

@stackwise.pipeline
def pipe(n: int = 3):
    total(make(n))

@stackwise.pipeline
def other():
    make()

not_a_pipeline = 3

def plain_function():
    return 1
"""


@pytest.fixture
def package(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A uniquely named package on sys.path; its modules are dropped from sys.modules after."""
    name = f"swpkg_{uuid.uuid4().hex[:8]}"
    root = project / "site"
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(root))
    yield root / name, name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def test_load_by_file_reference(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline(PIPELINE_SOURCE)
    p = load_pipeline(ref)
    assert isinstance(p, Pipeline)
    assert p.name == "pipe"
    assert p.order == ("make", "total")
    assert p.ref == str(Path(ref.rpartition(":")[0]).resolve()) + ":pipe"
    assert p.source_file == ref.rpartition(":")[0]
    assert p.resolve_params({"n": "5"}) == {"n": 5}


def test_load_by_relative_file_reference(project: Path) -> None:
    (project / "flows").mkdir()
    (project / "flows" / "rel_flow.py").write_text(textwrap.dedent(PIPELINE_SOURCE))
    p = load_pipeline("flows/rel_flow.py:other")
    assert p.name == "other"
    assert p.ref == f"{project.resolve() / 'flows' / 'rel_flow.py'}:other"
    # the same file by absolute path is the same memoized pipeline
    assert load_pipeline(f"{project / 'flows' / 'rel_flow.py'}:other") is p


def test_load_by_module_reference(package: tuple[Path, str]) -> None:
    folder, name = package
    (folder / "flows.py").write_text(textwrap.dedent(PIPELINE_SOURCE))
    p = load_pipeline(f"{name}.flows:pipe")
    assert p.name == "pipe"
    assert p.order == ("make", "total")
    assert p.ref == f"{name}.flows:pipe"
    assert p.nodes["total"].definition.fn([1, 2]) == 3


def test_load_a_pipeline_object(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline(
        """
        import stackwise
        from stackwise.authoring import Binding, Pipeline, StepNode

        @stackwise.step
        def one() -> int:
            return 1

        generated = Pipeline("generated", [StepNode("one", one, {})])
        """,
        "generated",
    )
    p = load_pipeline(ref)
    assert p.name == "generated"
    assert p.ref is not None and p.ref.endswith(":generated")


def test_missing_file(project: Path) -> None:
    with pytest.raises(PipelineLoadError) as exc:
        load_pipeline("nowhere/missing.py:pipe")
    message = exc.value.message
    assert str(project.resolve() / "nowhere" / "missing.py") in message
    assert "does not exist" in message
    assert "'nowhere/missing.py:pipe'" in message


def test_missing_module(project: Path) -> None:
    with pytest.raises(PipelineLoadError) as exc:
        load_pipeline("no_such_package_xyz.flows:pipe")
    message = exc.value.message
    assert "cannot import module 'no_such_package_xyz.flows'" in message
    assert "file path like path/to/file.py:name" in message


@pytest.mark.parametrize("ref", ["just_a_name", "module:", ":name", "file.py"])
def test_malformed_reference(project: Path, ref: str) -> None:
    with pytest.raises(PipelineLoadError, match="must look like 'package.module:name'"):
        load_pipeline(ref)


def test_missing_attribute_suggests_close_names(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline(PIPELINE_SOURCE, "pipes")
    with pytest.raises(PipelineLoadError) as exc:
        load_pipeline(ref)
    message = exc.value.message
    assert "has no pipeline named 'pipes'" in message
    assert "Did you mean 'pipe'?" in message
    assert "Pipelines defined there: pipe, other." in message


def test_missing_attribute_in_a_module(package: tuple[Path, str]) -> None:
    folder, name = package
    (folder / "flows.py").write_text(textwrap.dedent(PIPELINE_SOURCE))
    with pytest.raises(PipelineLoadError) as exc:
        load_pipeline(f"{name}.flows:ohter")
    assert f"'{name}.flows' has no pipeline named 'ohter'. Did you mean 'other'?" in str(exc.value)


@pytest.mark.parametrize(("attr", "kind"), [("not_a_pipeline", "int"), ("plain_function", "")])
def test_non_pipeline_object(write_pipeline: Callable[..., str], attr: str, kind: str) -> None:
    ref = write_pipeline(PIPELINE_SOURCE, attr)
    with pytest.raises(PipelineLoadError) as exc:
        load_pipeline(ref)
    message = exc.value.message
    assert "not a pipeline" in message
    assert "decorate the function with @stackwise.pipeline" in message
    assert f"is a {kind or 'function'}," in message


def test_file_that_raises_on_import(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline("raise RuntimeError('kaboom at import')\n")
    path = ref.rpartition(":")[0]
    with pytest.raises(PipelineLoadError) as exc:
        load_pipeline(ref)
    message = exc.value.message
    assert f"importing {path!r} failed: RuntimeError: kaboom at import" in message
    assert "Fix the error in that file" in message
    assert Path(path).stem not in sys.modules


def test_file_with_a_syntax_error(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline("import stackwise\n\ndef broken(:\n    pass\n")
    with pytest.raises(PipelineLoadError, match="failed: SyntaxError"):
        load_pipeline(ref)


def test_module_that_raises_on_import(package: tuple[Path, str]) -> None:
    # Same contract as for files: a reference whose module fails to import is a
    # PipelineLoadError (exit 2, one line), not a raw exception (internal error, exit 3).
    folder, name = package
    (folder / "broken.py").write_text("raise RuntimeError('kaboom at import')\n")
    with pytest.raises(PipelineLoadError, match="kaboom at import"):
        load_pipeline(f"{name}.broken:pipe")


def test_stackwise_errors_at_import_are_not_wrapped(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline(
        """
        import stackwise

        @stackwise.step
        def flexible(*values: int) -> int:
            return 0
        """
    )
    with pytest.raises(PipelineValidationError, match="step 'flexible'"):
        load_pipeline(ref)


def test_validation_errors_surface_when_loading(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline(
        """
        import stackwise

        @stackwise.step
        def one() -> int:
            return 1

        @stackwise.pipeline
        def pipe():
            one()
            one()
        """
    )
    with pytest.raises(PipelineValidationError, match="two steps are named 'one'"):
        load_pipeline(ref)


def test_loading_is_memoized(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline(PIPELINE_SOURCE)
    first = load_pipeline(ref)
    assert load_pipeline(ref) is first
    loader.forget(ref)
    # the module is still imported, so the same definition is reused; only the cache entry went
    reloaded = load_pipeline(ref)
    assert reloaded.order == first.order
    assert load_pipeline(ref) is reloaded


def test_forget_everything(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline(PIPELINE_SOURCE)
    load_pipeline(ref)
    assert loader._cache
    loader.forget()
    assert loader._cache == {}


def test_version_is_stable_across_loads(write_pipeline: Callable[..., str]) -> None:
    ref = write_pipeline(PIPELINE_SOURCE)
    v1 = load_pipeline(ref).version
    assert len(v1) == 16
    loader.forget()
    assert load_pipeline(ref).version == v1


def test_version_changes_when_step_code_changes(project: Path) -> None:
    path = project / f"versioned_{uuid.uuid4().hex[:8]}.py"
    ref = f"{path}:pipe"
    path.write_text(textwrap.dedent(PIPELINE_SOURCE))
    first = load_pipeline(ref)
    v1 = first.version
    loader.forget()
    assert load_pipeline(ref).version == v1

    # a different size too, so neither linecache nor the .pyc check can miss the change
    path.write_text(textwrap.dedent(PIPELINE_SOURCE).replace("sum(rows)", "sum(rows) * 1000"))
    loader.forget()
    changed = load_pipeline(ref)
    assert changed.nodes["total"].definition.fn([1, 2]) == 3000
    assert changed.version != v1
