"""How much MLflow alone gains from a second writing process on this machine: the backfill
benchmark's floor (an interval's four runs written by hand) by one process, then by two
processes at once, each a fresh interpreter that has imported MLflow and written a warm-up
interval before the clock starts. Used by `backfill.py --server`, which prints the ratio beside
its `--parallel 2` vs 1 figure; it is the bound for any two clients of that server here.

    python benchmarks/floor_pair.py URI FOLDER INTERVALS TAG   (one writer; internal)

Finding (2026-11-30, a slow session: floor 236 ms per interval through the server): two
independent `--parallel 1` backfills against the same server, in separate processes, projects
and databases, together went 1.47-1.49x as fast as one alone, with a third of the 2 cores idle
throughout (/proc/stat), as a stackwise `--parallel 2` did. A serial chain of three processes
(client, server worker, PostgreSQL) keeps one core busy; two such chains on 2 cores leave one
idle whenever both wait on a hand-off at once, so neither stackwise nor a hand-written client
gets near 2x there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def pair_speedup(uri: str, folder: Path, intervals: int, tag: str) -> float:
    """The throughput of two processes writing `intervals` intervals each at once, over one
    process writing `intervals` alone (the mean of one sample before the pair and one after,
    as the machine's speed drifts); 2.0 would be perfect scaling."""
    before = _writers(uri, folder, intervals, [f"{tag}s"])[0]
    pair = _writers(uri, folder, intervals, [f"{tag}a", f"{tag}b"])
    solo = (before + _writers(uri, folder, intervals, [f"{tag}t"])[0]) / 2
    return solo * 2 / max(pair)


def _writers(uri: str, folder: Path, intervals: int, tags: list[str]) -> list[float]:
    """Start one writer process per tag, let them all go at once, return their elapsed s."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, uri, str(folder), str(intervals), tag],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in tags
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        elapsed = []
        for proc in procs:
            assert proc.stdout is not None
            elapsed.append(float(json.loads(proc.stdout.readline())))
        return elapsed
    finally:
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _write(uri: str, folder: Path, intervals: int, tag: str) -> None:
    from backfill import mlflow_floor_s  # this script's folder is first on sys.path

    mlflow_floor_s(uri, folder, 2, f"{tag}-warm")  # imports, connection, first statements
    print("ready", flush=True)
    sys.stdin.readline()
    per_interval = mlflow_floor_s(uri, folder, intervals, tag, cap=intervals)
    print(json.dumps(per_interval * intervals), flush=True)


if __name__ == "__main__":
    _write(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
