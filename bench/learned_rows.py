"""Peak memory of baseline-learned's training rows: features a chunk of days at a time vs all days at once.

``training_rows`` draws the rows to keep over the whole (day, country, label) index, then computes the
history features a chunk of days at a time (``chunk_bytes``, 256 MiB) and keeps only the drawn rows. The
peer is the same function with one chunk (every row's features at once, as before). Each case runs in
its own process so its peak RSS is its own. Outcomes are **synthetic** (random, 246 countries, 30 %
of labels a day, event level): memory and time depend only on the shape.

    PYTHONPATH=. python bench/learned_rows.py --days 120 365
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASE = r"""
import datetime as dt, json, resource, sys, time
import numpy as np
from pipeline.cameo.labels import LEVELS, Outcomes, label_space
from pipeline.model.learned import training_rows
D, chunk, C = int(sys.argv[1]), int(sys.argv[2]), 246
labels = label_space()
rng = np.random.default_rng(0)
y = {lv: rng.random((D, C, len(labels[lv])), dtype=np.float32) < 0.3 for lv in LEVELS}
o = Outcomes([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(D)], [f"C{i:03d}" for i in range(C)], y,
             rng.integers(0, 500, (D, C)), np.zeros((D, C, 4), np.int64), {})
t0 = time.perf_counter()
X, _ = training_rows(o, o.days[1:], "event", 1_000_000, chunk_bytes=chunk)
print(json.dumps({"rows": len(X), "s": time.perf_counter() - t0,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, nargs="+", default=[120, 365])
    args = ap.parse_args()
    print("| days | features | rows kept | time | peak RSS |\n|---|---|---|---|---|")
    for days in args.days:
        for name, chunk in (("all days at once (peer)", 1 << 50), ("chunks of 256 MiB (shipped)", 256 << 20)):
            out = subprocess.run([sys.executable, "-c", CASE, str(days), str(chunk)], capture_output=True, text=True,
                                 check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {days} | {name} | {r['rows']:,} | {r['s']:.1f} s | {r['peak_gb']:.2f} GB |", flush=True)


if __name__ == "__main__":
    main()
