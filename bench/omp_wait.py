"""Two OpenMP workloads on one machine: the bar's fit next to torch, with OpenMP's default and passive wait policy.

A backfill with a model runs the baselines' blocks (scikit-learn's HistGradientBoosting, OpenMP) and the model's
forecasts (torch, OpenMP) side by side in one process, and an analyst's machine runs other jobs. OpenMP's
default lets idle threads spin for a while before they sleep; two spinning pools on the same cores take turns
badly. This bench runs, each in its own process and with ``OMP_WAIT_POLICY`` unset (OpenMP's default) or
``PASSIVE`` (what ``gdelt-forecast`` sets when it is unset, ``gdelt_forecast/__init__.py``):

- ``fit``: ``baseline-learned``'s fit on every day of ``--lake`` (the training flow's fit, a backfill block's);
- ``torch``: a stream of small torch ops as a forecast's sampling makes them (256 × 256 products and a
  nonlinearity, 50 at a time, 2 ms apart), in rounds per second, until stopped;
- each alone, and both at once (the fit's seconds and torch's rounds/s while the fit runs).

    PYTHONPATH=. python bench/omp_wait.py --lake /tmp/long/base     # a lake of the 22 real days
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIT = """
import datetime as dt, sys, time
from pipeline.cameo.labels import load_outcomes
from pipeline.core.lake import Lake
from pipeline.model.learned import fit_learned, training_days
o = load_outcomes(Lake(sys.argv[1]))
days = training_days(o, o.days[-1] + dt.timedelta(days=1))
t = time.perf_counter(); fit_learned(o, days); print(f"FIT {time.perf_counter() - t:.2f}")
"""


def env_for(policy: str | None, threads: int) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    return env


def start_fit(lake: str, policy: str | None, threads: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", FIT, lake], env=env_for(policy, threads), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


TORCH = """
import signal, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, n, t0 = torch.randn(256, 256), 0, time.perf_counter()
def stop(*_):
    print(f"TORCH {n / (time.perf_counter() - t0):.2f}", flush=True); sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("READY", flush=True)
while True:
    for _ in range(50):
        a = torch.tanh(a @ a.T / 256)
    n += 1
    time.sleep(0.002)
"""


def start_torch(policy: str | None, threads: int) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", TORCH, str(threads)], env=env_for(policy, threads), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout.readline().strip() == "READY"
    return p


def fit_seconds(p: subprocess.Popen) -> float:
    out, _ = p.communicate()
    return float(re.search(r"FIT ([\d.]+)", out).group(1))


def torch_rate(p: subprocess.Popen) -> float:
    """Rounds per second of a :data:`TORCH` process, stopped now."""
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate()
    return float(re.search(r"TORCH ([\d.]+)", out).group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", required=True, help="a lake with a few weeks of 'country' days")
    ap.add_argument("--threads", type=int, default=2, help="OpenMP threads of each process")
    ap.add_argument("--torch-alone-s", type=float, default=20.0, help="how long torch runs alone")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, {args.threads} threads a process; fit: s (lower is better), "
          "torch: rounds/s (higher is better)")
    print(f"{'OMP_WAIT_POLICY':16s} {'fit alone':>10s} {'torch alone':>12s} {'fit | both':>11s} {'torch | both':>13s}")
    for _ in range(args.repeats):
        for policy in (None, "PASSIVE"):
            fit_alone = fit_seconds(start_fit(args.lake, policy, args.threads))
            t = start_torch(policy, args.threads)
            time.sleep(args.torch_alone_s)
            torch_alone = torch_rate(t)
            t = start_torch(policy, args.threads)
            fit_both = fit_seconds(start_fit(args.lake, policy, args.threads))
            torch_both = torch_rate(t)
            print(f"{policy or 'unset (default)':16s} {fit_alone:10.1f} {torch_alone:12.1f} {fit_both:11.1f} "
                  f"{torch_both:13.1f}", flush=True)


if __name__ == "__main__":
    main()
