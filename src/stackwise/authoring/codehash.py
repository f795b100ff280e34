"""Code versions: what a step's result depends on, as a hash of source code.

A step's code hash covers its own source, the source of the module that defines it, and the
source of every *project-local* module the step uses (names its code, or the code of the
same-module functions it calls, refers to; modules it imports inside its body), together with
everything those modules import from the project, transitively. Helpers in the user's own
project change the hash; installed libraries do not (their versions are in the environment
manifest instead). Conservative on purpose: a false miss costs a rerun, a false hit returns a
wrong result.

A module is project-local when its file is Python source that belongs to the same top-level
package as the step's module, or is not part of the standard library, of an installed
distribution, or of stackwise itself.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import inspect
import json
import sys
import sysconfig
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackwise.authoring.pipeline import Pipeline


@functools.lru_cache(maxsize=1024)
def step_code_hash(fn: Callable[..., Any]) -> str:
    """Hex sha256 of the step function's source, its module's source and the sources of the
    project-local modules it uses."""
    h = hashlib.sha256()
    try:
        h.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        h.update(code.co_code if code is not None else repr(fn).encode())
    module = inspect.getmodule(fn)
    if module is None:
        return h.hexdigest()
    own = _source_file(module.__name__)
    if own is not None:
        h.update(Path(own).read_bytes())
    root = module.__name__.partition(".")[0]
    for name in sorted(used_modules(fn)):
        path = _source_file(name)
        if name != module.__name__ and path is not None and _is_project_local(name, path, root):
            h.update(name.encode() + b"\0" + module_closure_hash(name).encode())
    return h.hexdigest()


def used_modules(fn: Callable[..., Any]) -> set[str]:
    """Modules a function's code uses: through the global names it (or a function of its own
    module that it calls) refers to, and through imports inside its body."""
    modules: set[str] = set()
    seen: set[int] = set()
    todo = [fn]
    while todo:
        current = todo.pop()
        code = getattr(current, "__code__", None)
        if code is None or id(code) in seen:
            continue
        seen.add(id(code))
        namespace = getattr(current, "__globals__", {})
        home = getattr(current, "__module__", None)
        for name in _code_names(code):
            obj = namespace.get(name)
            if obj is None:
                continue
            if isinstance(obj, ModuleType):
                modules.add(obj.__name__)
                continue
            owner = getattr(obj, "__module__", None)
            if owner == home and inspect.isfunction(obj):
                todo.append(obj)
            elif isinstance(owner, str):
                modules.add(owner)
        modules.update(_body_imports(current))
    return modules


def _code_names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def _body_imports(fn: Callable[..., Any]) -> list[str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return []
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


@functools.lru_cache(maxsize=256)
def module_closure_hash(module_name: str) -> str:
    """Hash of `module_name`'s source and of the project-local modules it imports,
    transitively (memoized per process: a module's source does not change under it)."""
    h = hashlib.sha256()
    for name, path in sorted(project_closure(module_name).items()):
        h.update(name.encode() + b"\0")
        try:
            h.update(Path(path).read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    return h.hexdigest()


def project_closure(module_name: str) -> dict[str, str]:
    """The module and the project-local modules it imports, transitively: name -> file."""
    root = module_name.partition(".")[0]
    found: dict[str, str] = {}
    todo = [module_name]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = _source_file(name)
        if path is None or not (name == module_name or _is_project_local(name, path, root)):
            continue
        found[name] = path
        todo.extend(n for n in _imported_names(name, path) if n not in found)
    return found


def pipeline_version(pipeline: Pipeline) -> str:
    """Content hash of every step's code, options and wiring (16 hex characters)."""
    parts = []
    for name in pipeline.order:
        node = pipeline.nodes[name]
        parts.append(
            {
                "step": name,
                "code": step_code_hash(node.definition.fn),
                "bindings": {k: b.describe() for k, b in sorted(node.bindings.items())},
                "options": node.definition.options.to_dict(),
            }
        )
    payload = json.dumps({"name": pipeline.name, "steps": parts}, sort_keys=True, default=repr)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# -- finding modules ------------------------------------------------------------------------
def _source_file(name: str) -> str | None:
    module = sys.modules.get(name)
    path: str | None = getattr(module, "__file__", None) if module is not None else None
    if path is None and module is None:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError):
            return None
        path = spec.origin if spec is not None else None
    if path is None or not path.endswith(".py"):
        return None  # builtins, extension modules, namespace packages
    return path


def _imported_names(name: str, path: str) -> Iterable[str]:
    """Absolute names of the modules `path` imports anywhere (also inside functions)."""
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return []
    is_package = Path(path).name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                if keep < 0:
                    continue
                base = ".".join([*parts[:keep], *([base] if base else [])])
            if not base:
                continue
            names.append(base)
            # `from pkg import mod` imports a submodule when `mod` is one.
            names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return names


@functools.lru_cache(maxsize=1)
def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return tuple(str(Path(d).resolve()) for d in dirs if d)


@functools.lru_cache(maxsize=1)
def _distribution_packages() -> frozenset[str]:
    """Top-level names provided by installed distributions (editable installs included)."""
    import importlib.metadata

    try:
        return frozenset(importlib.metadata.packages_distributions())
    except Exception:  # a broken distribution's metadata must not break hashing
        return frozenset()


def _is_project_local(name: str, path: str, root: str) -> bool:
    top = name.partition(".")[0]
    if top == "stackwise":
        return False
    if top == root:
        return True
    if top in sys.stdlib_module_names or top in _distribution_packages():
        return False
    resolved = str(Path(path).resolve())
    return not any(resolved.startswith(d + "/") for d in _library_dirs())


def forget() -> None:
    """Drop memoized hashes (after code was reloaded in a long-lived process)."""
    step_code_hash.cache_clear()
    module_closure_hash.cache_clear()
