"""The base image of compiled pipelines: stackwise and the pipeline's third-party
dependencies, built once and rebuilt only when those change (its tag is the sha256 of the
lock). Code changes never need it rebuilt: they travel as the code bundle.

The lock is resolved from this environment, as `pip freeze` would pin it but limited to what
the image needs: the closure, over installed distributions' requirements (markers evaluated
here, no extras), of stackwise, `kfp` (its components' entry point) and the distributions
that provide the modules the project's files import (found with `ast`; standard-library and
project-local modules left out). The Dockerfile is a fixed template; the values put in it are
validated (the base image against the image-reference grammar) or written JSON-quoted.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import re
import sys
from importlib import metadata
from pathlib import Path

from stackwise.errors import ConfigError

#: Distributions every base image holds besides the pipeline's own dependencies.
ROOTS = ("stackwise", "kfp")

DOCKERFILE = r"""# Base image for stackwise pipelines compiled to Kubeflow Pipelines (written by
# `stackwise image dockerfile`). Rebuild it only when requirements.lock changes; code
# changes ship as code bundles. Tag: the sha256 of requirements.lock.
FROM {base}
LABEL dev.stackwise.lock-sha256={lock_sha}
LABEL dev.stackwise.pipeline={pipeline}
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /opt/stackwise/requirements.lock
# The lock is a complete closure: no resolution at build time, nothing at run time.
RUN ["python", "-m", "pip", "install", "--no-cache-dir", "--no-deps", "-r", \
     "/opt/stackwise/requirements.lock"]
ENV STACKWISE_IMAGE={image}
"""


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What `write` produced: the files, the lock's sha256 and the image reference."""

    dockerfile: Path
    lock: Path
    sha256: str
    image: str
    requirements: tuple[str, ...]


def imported_modules(files: list[Path], root: Path) -> dict[str, Path]:
    """Top-level modules the project's Python files import (first importing file of each),
    without the standard library and the project's own modules."""
    local = {p.name.removesuffix(".py") for p in root.iterdir()}
    found: dict[str, Path] = {}
    for rel in files:
        if rel.suffix != ".py":
            continue
        try:
            tree = ast.parse((root / rel).read_bytes(), filename=str(rel))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top == "__future__":
                    continue
                found.setdefault(top, rel)
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str]) -> dict[str, str]:
    """Installed distributions needed by `roots` (canonical name -> version), following
    each one's requirements whose markers hold here (no extras)."""
    from packaging.requirements import Requirement

    pinned: dict[str, str] = {}
    todo = list(roots)
    while todo:
        name = _canonical(todo.pop())
        if name in pinned:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ConfigError(
                f"the image needs the distribution {name!r}, which is not installed here: "
                "install the pipeline's dependencies in this environment first (the lock pins "
                "what is installed)."
            ) from None
        pinned[name] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return pinned


def lock_text(pipeline_name: str, root: Path) -> tuple[str, list[str]]:
    """The lock file's text (`name==version` lines, sorted) and its requirement lines."""
    from stackwise.bundles import project_files

    modules = imported_modules(list(project_files(root)), root)
    by_module = metadata.packages_distributions()
    roots = list(ROOTS)
    for module, where in sorted(modules.items()):
        dists = by_module.get(module)
        if not dists:
            raise ConfigError(
                f"{where} imports {module!r}, which no installed distribution provides: install "
                "it here so the image lock can pin it (or remove the import)."
            )
        roots += dists
    lines = [f"{name}=={version}" for name, version in sorted(closure(roots).items())]
    header = f"# requirements of the stackwise base image for {json.dumps(pipeline_name)}\n"
    return header + "\n".join(lines) + "\n", lines


def base_python_image() -> str:
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


def write(
    pipeline_name: str, root: Path, out: Path, repository: str, base: str | None = None
) -> ImageSpec:
    """Write `Dockerfile` and `requirements.lock` into `out`; the image reference is
    `repository:<sha256 of the lock>`. Raises ConfigError for an invalid base or repository."""
    from stackwise.orchestrators.kubeflow.validation import is_image_reference

    base = base or base_python_image()
    if not is_image_reference(base):
        raise ConfigError(f"base image {base!r} is not a valid image reference.")
    lock, lines = lock_text(pipeline_name, root)
    sha = hashlib.sha256(lock.encode()).hexdigest()
    image = f"{repository}:{sha}"
    if not is_image_reference(image) or "@" in repository:
        raise ConfigError(
            f"repository {repository!r} is not a valid image repository "
            "([registry/]path, lower case, no tag)."
        )
    text = DOCKERFILE.format(base=base, lock_sha=json.dumps(sha),
                             pipeline=json.dumps(pipeline_name), image=json.dumps(image))
    out.mkdir(parents=True, exist_ok=True)
    lock_path, dockerfile = out / "requirements.lock", out / "Dockerfile"
    for path, content in ((lock_path, lock), (dockerfile, text)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(content)
        tmp.replace(path)
    return ImageSpec(dockerfile, lock_path, sha, image, tuple(lines))
