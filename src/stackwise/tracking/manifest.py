"""The environment manifest attached to every run: what ran where, reproducibly, with
secrets removed. Computed once per process and identified by a digest so that runs in the
same process share one copy."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
import sys
from typing import Any

from stackwise.artifacts.hashing import sha256_bytes, stable_json
from stackwise.tracking.redaction import redact_env, redact_text, secret_values


@functools.lru_cache(maxsize=16)
def git_info(folder: str) -> dict[str, Any]:
    """Commit, dirty flag and branch of the repository holding `folder` (empty when none)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", folder, *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    remote = git("config", "--get", "remote.origin.url")
    info: dict[str, Any] = {
        "commit": commit,
        "dirty": bool(status),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
    }
    if remote:
        info["remote"] = redact_text(remote, secret_values())
    return info


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, str]:
    pkgs: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            pkgs[name.lower()] = dist.version
    return dict(sorted(pkgs.items()))


def installed_packages() -> dict[str, str]:
    """Installed distributions, lower-case name -> version, as the manifest records them."""
    return _packages()


def build_manifest(
    *, source_folder: str, orchestrator: str, compute: str, image: str | None
) -> dict[str, Any]:
    from stackwise import __version__

    return {
        "stackwise": __version__,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "packages": _packages(),
        "git": git_info(source_folder),
        "orchestrator": orchestrator,
        "compute": compute,
        "image": image,
        "environment_variables": redact_env(),
    }


def manifest_digest(manifest: dict[str, Any]) -> str:
    return sha256_bytes(stable_json(manifest).encode())[:16]


@functools.lru_cache(maxsize=32)
def cached_manifest(
    source_folder: str, orchestrator: str, compute: str, image: str | None
) -> tuple[dict[str, Any], str]:
    """The manifest of this process and its digest, computed once per combination."""
    manifest = build_manifest(
        source_folder=source_folder, orchestrator=orchestrator, compute=compute, image=image
    )
    return manifest, manifest_digest(manifest)
