"""Find a pipeline by reference (`pkg.module:name` or `path/to/file.py:name`) in this process
or a fresh one. The reference, not the object, is what crosses process boundaries."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

from stackwise.authoring.pipeline import Pipeline, PipelineDefinition
from stackwise.errors import PipelineLoadError, StackwiseError, did_you_mean

_cache: dict[str, Pipeline] = {}
_lock = threading.Lock()
#: Absolute pipeline file paths resolved (symlinks followed), until `forget`.
_resolved: dict[str, str] = {}


def load_pipeline(ref: str) -> Pipeline:
    """Import, trace and validate the pipeline `ref` names (memoized per process)."""
    key = _normalize(ref)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        pipeline = _load(ref, key)
        _cache[key] = pipeline
        return pipeline


def forget(ref: str | None = None) -> None:
    """Drop memoized pipelines and the modules of file references, so that the next load
    reads the code again (tests, or a long-lived process after code changes)."""
    from stackwise.authoring import codehash

    codehash.forget()
    _resolved.clear()
    with _lock:
        keys = list(_cache) if ref is None else [_normalize(ref)]
        for key in keys:
            _cache.pop(key, None)
            target = key.rpartition(":")[0]
            if target.endswith(".py"):
                module = sys.modules.get(Path(target).stem)
                if module is not None and getattr(module, "__file__", None) == target:
                    del sys.modules[Path(target).stem]


def _normalize(ref: str) -> str:
    target, sep, attr = ref.rpartition(":")
    if not sep:
        return ref
    if target.endswith(".py") or os.sep in target or "/" in target:
        if not os.path.isabs(target):  # relative to the current folder, which may change
            return f"{Path(target).resolve()}:{attr}"
        resolved = _resolved.get(target)
        if resolved is None:  # every step attempt loads its pipeline: stat the path once
            resolved = _resolved[target] = str(Path(target).resolve())
        return f"{resolved}:{attr}"
    return ref


def _load(ref: str, key: str) -> Pipeline:
    target, sep, attr = ref.rpartition(":")
    if not sep or not target or not attr:
        raise PipelineLoadError(
            f"pipeline reference {ref!r} must look like 'package.module:name' or "
            "'path/to/file.py:name'."
        )
    if target.endswith(".py") or "/" in target or os.sep in target:
        module = _import_file(Path(target), ref)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise PipelineLoadError(
                f"cannot import module {target!r} for pipeline {ref!r} ({exc}); check the "
                "spelling, install the package, or give a file path like path/to/file.py:name."
            ) from exc
        except StackwiseError:
            raise
        except Exception as exc:
            raise PipelineLoadError(
                f"importing module {target!r} failed: {type(exc).__name__}: {exc}. Fix the error "
                f"there (python -c 'import {target}' shows the traceback)."
            ) from exc
    obj = getattr(module, attr, None)
    if obj is None:
        names = [n for n, v in vars(module).items() if isinstance(v, PipelineDefinition | Pipeline)]
        raise PipelineLoadError(
            f"{target!r} has no pipeline named {attr!r}.{did_you_mean(attr, names)} "
            f"Pipelines defined there: {', '.join(names) or '(none)'}."
        )
    if isinstance(obj, PipelineDefinition):
        pipeline = obj.build()
    elif isinstance(obj, Pipeline):
        pipeline = obj
    else:
        raise PipelineLoadError(
            f"{ref!r} is a {type(obj).__name__}, not a pipeline; decorate the function with "
            "@stackwise.pipeline."
        )
    return pipeline.replace(ref=key)


def _import_file(path: Path, ref: str) -> object:
    path = path.resolve()
    if not path.is_file():
        raise PipelineLoadError(f"pipeline file {str(path)!r} (from {ref!r}) does not exist.")
    # Import under the file's stem with its folder on sys.path, so that a fresh process that
    # loads the same reference sees the same module names (pickled objects depend on them).
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PipelineLoadError(f"cannot import {str(path)!r}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except StackwiseError:
        sys.modules.pop(name, None)
        raise
    except Exception as exc:
        sys.modules.pop(name, None)
        raise PipelineLoadError(
            f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}. Fix the error in "
            "that file (run it with python to see the traceback)."
        ) from exc
    return module
