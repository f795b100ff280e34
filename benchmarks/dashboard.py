"""Server time to first byte of the dashboard's runs page and of a 365 x 5 backfill grid, on
the embedded stores (SQLite state store with its interval ledger, MLflow on SQLite). Target:
under 300 ms each.

    python benchmarks/dashboard.py [--intervals 365] [--steps 5] [--repeat 20]

The backfill is written through the library, not run: each interval is claimed and finished in
the interval ledger (`IntervalLedger.claim`/`finish`) and recorded in the state store
(`StateStore.create_run`, steps SUCCEEDED, a few FAILED/cached), as a real backfill leaves
them. The app is served by a real uvicorn server on loopback; the time is measured from the
request being sent to the first byte of the answer (http.client, after one warm-up request),
median and worst of `--repeat` requests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

TARGET_MS = 300.0


def build(folder: Path, intervals: int, steps: int) -> str:
    """The stores of a project that ran one backfill of `intervals` daily intervals of a
    `steps`-step pipeline; returns the backfill id."""
    from mlflow import MlflowClient

    from stackwise.config import StackConfig
    from stackwise.interval import Interval
    from stackwise.orchestrators.base import RunRecord, StepRecord, new_run_id
    from stackwise.orchestrators.local.state import StateStore
    from stackwise.scheduling.ledger import IntervalLedger

    config = StackConfig(base_dir=folder)
    MlflowClient(config.tracking_uri_resolved).search_experiments()  # create the MLflow store
    state = StateStore(config.state_store_resolved, folder)
    ledger = IntervalLedger(state)
    names = [f"step_{i}" for i in range(steps)]
    backfill_id = "bf-benchmark"
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for day in range(intervals):
        lo = start + dt.timedelta(days=day)
        interval = Interval(lo, lo, lo + dt.timedelta(days=1))
        run_id = new_run_id()
        ledger.claim("daily", interval, "failed", run_id, backfill_id)
        failed = day % 50 == 7
        now = time.time()
        records = {
            n: StepRecord(n, status="FAILED" if failed and i == steps - 1 else "SUCCEEDED",
                          attempt=1, cached=day % 3 == 0 and i == 0, duration_s=0.5,
                          started_at=now, ended_at=now + 0.5)
            for i, n in enumerate(names)
        }  # fmt: skip
        status = "FAILED" if failed else "SUCCEEDED"
        tags = {"stackwise.backfill_id": backfill_id}
        run = RunRecord(run_id=run_id, pipeline="daily", pipeline_ref="daily.py:daily",
                        pipeline_version="v1", params={}, status=status, created_at=now,
                        ended_at=now + 3, interval=interval.to_dict(), options={"tags": tags},
                        steps=records)  # fmt: skip
        state.create_run(run, names)
        ledger.finish("daily", interval, run_id, status)
    return backfill_id


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ttfb_ms(port: int, path: str, repeat: int) -> list[float]:
    times = []
    for i in range(repeat + 1):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        started = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()  # returns once the status line and headers arrived
        elapsed = (time.perf_counter() - started) * 1000
        body = response.read()
        conn.close()
        assert response.status == 200, (path, response.status, body[:300])
        if i:  # the first request warms up (templates compiled, connections opened)
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--intervals", type=int, default=365)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import uvicorn

    from stackwise.config import StackConfig
    from stackwise.dashboard.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        backfill_id = build(folder, args.intervals, args.steps)
        print(f"built {args.intervals} intervals x {args.steps} steps in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        port = free_port()
        app = create_app(StackConfig(base_dir=folder))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            for label, path in (("runs page (100 newest runs)", "/runs"),
                                (f"backfill grid {args.intervals} x {args.steps}",
                                 f"/backfills/{backfill_id}")):  # fmt: skip
                times = ttfb_ms(port, path, args.repeat)
                median, worst = statistics.median(times), max(times)
                verdict = "ok" if median < TARGET_MS else "short"
                print(f"{label:<32} TTFB median {median:6.1f} ms  worst {worst:6.1f} ms  "
                      f"(target < {TARGET_MS:.0f} ms: {verdict})")  # fmt: skip
        finally:
            server.should_exit = True
            thread.join(timeout=10)


if __name__ == "__main__":
    main()
