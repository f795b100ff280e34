"""Kubernetes quantities (`512Mi`, `4Gi`, `1.5G`, `2e9`), the one spelling of `Resources.memory`,
turned into bytes for engines that count bytes (Ray). Rule: the Kubernetes quantity format
(`k8s.io/apimachinery/pkg/api/resource`, suffixes Ki..Ei binary, k..E decimal)."""

from __future__ import annotations

import re

from stackwise.errors import ComputeError

_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)([KMGTPE]i|[kMGTPE])?$")


def memory_bytes(quantity: str) -> int:
    """Bytes in a Kubernetes memory quantity. Raises ComputeError for anything else."""
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        raise ComputeError(
            f"Resources(memory={quantity!r}) is not a Kubernetes quantity; write e.g. '512Mi', "
            "'4Gi' or '2G'."
        )
    return int(float(match.group(1)) * _SUFFIX[match.group(2) or ""])


def human_bytes(count: float) -> str:
    """`12.3 GiB`-style text for messages."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"
