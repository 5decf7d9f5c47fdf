"""Are two pipeline outputs the same? Lake tables row for row, model files bit for bit.

    python scripts/compare_outputs.py LAKE_A LAKE_B [--models MODEL_DIR_A MODEL_DIR_B]

Every table under both lake roots is read with DuckDB (hive partitions) and compared
with ``EXCEPT ALL`` both ways, leaving out the columns that hold wall-clock times
(``ingested_at``, ``issued_at``, ``quarantined_at``, ``written_at``; and ``futures.sampling_key``,
a cache key built from the model files' mtimes), file paths, and
machine-specific ``source_file``/``url``/``file`` values, which are compared by their
base name. Model directories are compared file by file (SHA-256), except files that
record the run's wall-clock or paths (``metrics.json`` timings, ``config.yaml``), whose
differing keys are listed. Exit code 0 when everything matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import duckdb

# wall-clock times, and futures.sampling_key: a cache key over the model files' sizes and mtimes
VOLATILE = {"ingested_at", "issued_at", "quarantined_at", "written_at", "created_at", "fitted_at", "sampling_key"}
PATHLIKE = {"source_file", "url", "file", "path"}


def _tables(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_") and any(p.rglob("*.parquet"))}


def _select(con: duckdb.DuckDBPyConnection, root: Path, table: str) -> str:
    src = f"read_parquet('{root / table}/**/*.parquet', hive_partitioning=true, union_by_name=true)"
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
    exprs = []
    for c in cols:
        if c in VOLATILE:
            continue
        q = f'"{c}"'
        exprs.append(f"regexp_replace(CAST({q} AS VARCHAR), '^.*/', '') AS {q}" if c in PATHLIKE else q)
    return f"SELECT {', '.join(exprs)} FROM {src}"


def compare_lakes(a: Path, b: Path) -> list[str]:
    con = duckdb.connect()
    problems = []
    ta, tb = _tables(a), _tables(b)
    for t in sorted(ta ^ tb):
        problems.append(f"table {t}: only in {'A' if t in ta else 'B'}")
    for t in sorted(ta & tb):
        qa, qb = _select(con, a, t), _select(con, b, t)
        n_a = con.execute(f"SELECT count(*) FROM ({qa})").fetchall()[0][0]
        n_b = con.execute(f"SELECT count(*) FROM ({qb})").fetchall()[0][0]
        only_a = con.execute(f"SELECT count(*) FROM ({qa} EXCEPT ALL {qb})").fetchall()[0][0]
        only_b = con.execute(f"SELECT count(*) FROM ({qb} EXCEPT ALL {qa})").fetchall()[0][0]
        status = "same" if only_a == only_b == 0 and n_a == n_b else "DIFFERENT"
        print(f"{t:18s} {n_a:>9,d} rows vs {n_b:>9,d}   only in A {only_a:>7,d}   only in B {only_b:>7,d}   {status}")
        if status != "same":
            problems.append(f"table {t}: {only_a} rows only in A, {only_b} only in B")
    return problems


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def compare_models(a: Path, b: Path) -> list[str]:
    problems = []
    fa = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    fb = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    for f in sorted(fa ^ fb):
        problems.append(f"model file {f}: only in {'A' if f in fa else 'B'}")
    for f in sorted(fa & fb):
        same = _sha(a / f) == _sha(b / f)
        print(f"{str(f):32s} {'bit-identical' if same else 'DIFFERENT'}")
        if not same and f.suffix in {".safetensors", ".bin", ".pt"}:
            problems.append(f"model file {f} differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("lake_a", type=Path)
    ap.add_argument("lake_b", type=Path)
    ap.add_argument("--models", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"))
    args = ap.parse_args(argv)
    problems = compare_lakes(args.lake_a, args.lake_b)
    if args.models:
        problems += compare_models(*args.models)
    for p in problems:
        print("MISMATCH:", p)
    print("identical" if not problems else f"{len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
