"""How long a code change takes to reach a worker without an image build: edit a step of the
example project, rebundle (pack + upload to the artifact store), then fetch, verify, extract
and load the pipeline in a fresh worker process.

    python benchmarks/bundle.py [--repeat 5]

Prints the figures of one run; nothing is asserted. The comparison is the seed's "10 minute
image build cycle" per code change.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE_BUILD_S = 600.0

WORKER = """
import sys, time
started = time.perf_counter()
from stackwise.bundles import load_pipeline_ref
from stackwise.contract import PipelineRef
ref = PipelineRef.model_validate_json(sys.argv[1])
pipeline = load_pipeline_ref(ref)
print(f"{(time.perf_counter() - started) * 1000:.1f} {len(pipeline.order)}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from stackwise.bundles import build_bundle, portable_ref

    with tempfile.TemporaryDirectory(prefix="stackwise-bundle-bench-") as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(ROOT / "examples", project / "examples")
        artifacts = (Path(tmp) / "artifacts").as_uri()
        pipeline_file = project / "examples" / "breast_cancer" / "pipeline.py"
        ref, files, size = build_bundle(project, artifacts)  # the first upload
        edits, loads = [], []
        for i in range(args.repeat):
            with pipeline_file.open("a") as fh:  # a code change
                fh.write(f"\n# edit {i}\n")
            started = time.perf_counter()
            ref, files, size = build_bundle(project, artifacts)
            edits.append((time.perf_counter() - started) * 1000)
            target = portable_ref(f"{pipeline_file}:training", project, ref)
            payload = target.model_copy(update={"root": None}).model_dump_json()
            env = {**os.environ, "STACKWISE_CACHE_DIR": str(Path(tmp) / f"worker-cache-{i}")}
            started = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", WORKER, payload], cwd=tmp, env=env,
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            loads.append(((time.perf_counter() - started) * 1000, float(out[0])))
        edit_ms = statistics.median(edits)
        process_ms = statistics.median(w for w, _ in loads)
        fetch_ms = statistics.median(f for _, f in loads)
        print(f"bundle: {files} files, {size / 1024:.1f} KiB (example project)")
        print(f"edit -> bundle uploaded          {edit_ms:8.1f} ms  (median of {args.repeat})")
        print(f"worker: fetch+verify+extract+load {fetch_ms:7.1f} ms  (in a fresh process)")
        print(f"worker process in all            {process_ms:8.1f} ms")
        total = (edit_ms + process_ms) / 1000
        minutes = IMAGE_BUILD_S / 60
        print(f"code change to loaded on a worker: {total:.2f} s, vs a {minutes:.0f}-minute image "
              f"build: {IMAGE_BUILD_S / total:.0f}x faster")


if __name__ == "__main__":
    main()
