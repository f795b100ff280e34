"""How much MLflow alone gains from a second writing process on this machine: the backfill
benchmark's floor (an interval's four runs written by hand) by one process, then by two
processes at once, each a fresh interpreter that has imported MLflow and written a warm-up
interval before the clock starts. Used by `backfill.py --server`, which prints the ratio beside
its `--parallel 2` vs 1 figure; it is the bound for any two clients of that server here.

    python benchmarks/floor_pair.py URI FOLDER INTERVALS TAG   (one writer; internal)

Finding (2026-11-30, a slow session: floor 236 ms per interval through the server): two
independent `--parallel 1` backfills against the same server, in separate processes, projects
and databases, together went 1.47-1.49x as fast as one alone, with a third of the 2 cores idle
throughout (/proc/stat), as a stackwise `--parallel 2` did.

Finding (2026-11-30, late, a fast session: floor ~100 ms; 60-interval pairs, 5 per setting;
`python benchmarks/backfill.py --server --server-workers N [--gunicorn] [--synchronous-commit
off]` sets the server up the same way). The bound is the server's configuration, not the
clients:
- uvicorn (MLflow's default), 4 workers: bimodal. ~1.0 when the two writers' keep-alive
  connections landed on the same server worker (it serves both on one core), 1.5-1.7 when on
  two; with synchronous_commit=off on the server's connections, ~1.0 or ~2.0. A new connection
  for every request (`Connection: close`) gave 1.29-1.44: the connects cost more than the
  spread gains.
- gunicorn's sync workers never share a worker between two requests in flight (a busy worker
  accepts nothing), but every new connection (one per request) wakes every idle worker: 4
  workers 1.42-1.59, 3 workers 1.46-1.60, 2 workers 1.56-1.71; 2 workers with
  synchronous_commit=off 1.63-1.94 (median 1.85).
PostgreSQL's fsync here takes ~0.12 ms (pg_test_fsync), yet its durable commits took ~0.3 off
the pair's 2x on two workers (why was not profiled).
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
    import os

    # The line protocol with the parent is on stdout, where MLflow prints "View run" links.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    from backfill import mlflow_floor_s  # this script's folder is first on sys.path

    mlflow_floor_s(uri, folder, 2, f"{tag}-warm")  # imports, connection, first statements
    print("ready", flush=True)
    sys.stdin.readline()
    per_interval = mlflow_floor_s(uri, folder, intervals, tag, cap=intervals)
    print(json.dumps(per_interval * intervals), flush=True)


if __name__ == "__main__":
    _write(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
