"""A/B of this tree's ingest against another checkout: the ``ours`` peer of ``bench/ingest.py`` only.

    git archive <commit> | tar -x -C /tmp/before
    python bench/ingest_ab.py --before /tmp/before [--runs 8]

Both trees ingest the same day (96 zips, 250k rows, built once by this tree's
``bench/ingest.py``), alternating run by run so machine load hits both alike; prints
min and median wall and CPU seconds of each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ingest as bench  # noqa: E402  (bench/ingest.py: RUNNER, OURS, build_day)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="the other checkout (its repo root)")
    ap.add_argument("--runs", type=int, default=8)
    args = ap.parse_args()
    trees = {"this": HERE.parent, "before": args.before.resolve()}
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in trees}
    with tempfile.TemporaryDirectory() as src:
        bench.build_day(Path(src), 250_000)
        for i in range(args.runs):
            for name, repo in (list(trees.items()) if i % 2 == 0 else list(trees.items())[::-1]):
                with tempfile.TemporaryDirectory() as out:
                    p = subprocess.run([sys.executable, "-c", bench.RUNNER, src, out, bench.OURS], capture_output=True,
                                       text=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, check=True)
                    r = json.loads(p.stdout.strip().splitlines()[-1])
                    times[name].append((r["seconds"], r["cpu"]))
    for name, v in times.items():
        wall, cpu = sorted(w for w, _ in v), sorted(c for _, c in v)
        print(f"{name:7s} wall min {wall[0]:.2f} median {wall[len(wall) // 2]:.2f} s   "
              f"CPU min {cpu[0]:.2f} median {cpu[len(cpu) // 2]:.2f} s   (n={len(v)})")


if __name__ == "__main__":
    main()
