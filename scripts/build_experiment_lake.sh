#!/usr/bin/env bash
# The 22-day experiment lake of docs/forecast.md ("Beating baseline-learned", "Stacked calibration and ablations"):
# the real days of ../shared/data ingested and reduced, descriptors (05-16 … 06-06) for the 100 busiest countries
# before 06-01.
# About 15 min on 2 cores (mostly embedding phrases). Then: PYTHONPATH=. python bench/ablations.py base noenc lam0 c100
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1
G=".venv/bin/gdelt-forecast -c configs/experiment-22days.yaml"
$G ingest --start 2025-05-15 --end 2025-06-06 --source local --path ../shared/data/gdelt-v2-15min
$G reduce --start 2025-05-15 --end 2025-06-06
TOP=$(.venv/bin/python - <<'PY'
import duckdb
q = """select ActionGeo_CountryCode, count(*) n from read_parquet('data/experiment/lake/country/*/*.parquet')
       where SQLDATE <= DATE '2025-05-31' and ActionGeo_CountryCode is not null group by 1 order by 2 desc limit 100"""
print(",".join(r[0] for r in duckdb.sql(q).fetchall()))
PY
)
echo "$TOP" > data/experiment/top100.txt
$G descriptors --start 2025-05-16 --end 2025-06-06 --countries "$TOP"
echo BUILD-DONE
