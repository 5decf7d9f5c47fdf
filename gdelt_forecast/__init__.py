"""The command line, above the library (``pipeline``) and the Prefect flows (``flows``)."""

import os

# Before torch or scikit-learn start their OpenMP pools (they read it once, when loaded): idle threads sleep instead
# of spinning. Processes whose spinning pools share the cores (a backfill's Dask or Ray workers, a backtest beside a
# backfill, any other job on the machine) take turns badly: on 2 cores the bar's fit beside torch in another process
# took 106.6 s instead of 43.2 s and torch ran at a sixth of its speed instead of two thirds; alone, each runs as
# fast either way, and so do both in one process (bench/omp_wait.py, docs/flows.md). A value already set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
