"""How fast `import stackwise` and `stackwise --help` are, and proof that neither imports
MLflow, SQLAlchemy or pandas.

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

HEAVY = ("mlflow", "sqlalchemy", "pandas", "numpy", "sklearn")


def timed(args: list[str], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    probe = (
        "import sys, stackwise, stackwise.cli.main, stackwise.cli.commands; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=True)
    baseline = timed([py, "-c", "pass"], args.repeat)
    imp = timed([py, "-c", "import stackwise"], args.repeat)
    helptime = timed([py, "-m", "stackwise", "--help"], args.repeat)
    print(f"python -c pass        {baseline:7.1f} ms")
    print(f"import stackwise      {imp:7.1f} ms  (+{imp - baseline:.1f} ms)")
    print(f"stackwise --help      {helptime:7.1f} ms  (+{helptime - baseline:.1f} ms)")
    heavy = loaded.stdout.strip()
    print(f"heavy modules imported by the CLI: {heavy or 'none'}")
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main())
