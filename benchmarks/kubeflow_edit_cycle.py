"""How long a code change takes to become a runnable Kubeflow pipeline without an image build:
edit a step of the example project, then `stackwise export kubeflow` work in one process:
bundle the project into the artifact store (pack + upload) and compile the KFP IR YAML.

    python benchmarks/kubeflow_edit_cycle.py [--repeat 5]

Prints the figures of one run; nothing is asserted. The alternative, rebuilding and pushing
an image per code change, is not measured here (no container engine on this machine): the
seed puts it at about ten minutes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE_BUILD_S = 600.0
STACK = """\
artifact_store: .stackwise/artifacts
orchestrator: kubeflow
kubeflow:
  image: registry.example.com/ml/stackwise-base:0123abcd
  host_local_stores: true
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from stackwise.authoring import loader
    from stackwise.config import load_stack
    from stackwise.orchestrators.targets import compile_for, open_target

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(ROOT / "examples", project / "examples")
        (project / "stackwise.yaml").write_text(STACK)
        source = project / "examples" / "breast_cancer" / "pipeline.py"
        target_ref = f"{source}:training"
        config = load_stack(project / "stackwise.yaml")
        started = time.perf_counter()
        target = open_target(config, "kubeflow")
        compile_for(target, loader.load_pipeline(target_ref), project / "out" / "t.yaml")
        first = time.perf_counter() - started
        cycles, loads, compiles = [], [], []
        for i in range(args.repeat):
            with source.open("a") as fh:
                fh.write(f"\n# edit {i}\n")  # a code change: new bundle, new pipeline version
            loader.forget()
            t0 = time.perf_counter()
            pipeline = loader.load_pipeline(target_ref)
            t1 = time.perf_counter()
            files = compile_for(target, pipeline, project / "out" / "t.yaml")
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            compiles.append(t2 - t1)
            cycles.append(t2 - t0)
        bundles = list((project / ".stackwise" / "artifacts" / "bundles").iterdir())
        print(f"first export in this process (imports kfp): {first:.2f} s")
        print(f"edit -> compiled spec + uploaded bundle, median of {args.repeat}: "
              f"{statistics.median(cycles) * 1000:.0f} ms (reload pipeline "
              f"{statistics.median(loads) * 1000:.0f} ms, bundle + compile "
              f"{statistics.median(compiles) * 1000:.0f} ms)")  # fmt: skip
        print(f"bundles stored: {len(bundles)} (one per edit, plus the first); spec "
              f"{files[0].stat().st_size / 1024:.0f} KiB")  # fmt: skip
        speedup = IMAGE_BUILD_S / statistics.median(cycles)
        print(f"vs a {IMAGE_BUILD_S / 60:.0f}-minute image build per change (not measured): "
              f"{speedup:.0f}x faster")  # fmt: skip


if __name__ == "__main__":
    main()
