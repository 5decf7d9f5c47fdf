#!/usr/bin/env bash
# Runs the same small pipeline (CLI stages, no Prefect) in two checkouts and compares the outputs
# with scripts/compare_outputs.py: lake tables row for row, the model's weights bit for bit.
#   bash scripts/layout_identity.sh OLD_CHECKOUT NEW_CHECKOUT [PYTHON]
# Each checkout is run with its own code on PYTHONPATH; the old one may predate gdelt_forecast/
# (then its CLI is pipeline.cli). Days: 8 of the shipped sample, 12 countries, the tiny preset.
set -euo pipefail
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd); py=${3:-python}
run() {  # run CHECKOUT: the stages into CHECKOUT/data/identity
  local tree=$1 cli
  if [ -d "$tree/gdelt_forecast" ]; then cli="from gdelt_forecast.cli import main"; else cli="from pipeline.cli import main"; fi
  rm -rf "$tree/data/identity"
  cat > "$tree/data/identity.yaml" <<YAML
lake: {root: data/identity/lake}
dataset: {context_days: 3, max_points: 32, top_countries: 12, val_days: 1, test_days: 1}
model: {preset: tiny}
train: {run: ident, models_dir: data/identity/models, epochs: 2, batch_size: 8, seed: 0, val_generate: 4}
forecast: {model: data/identity/models/ident, num_futures: 4}
YAML
  (cd "$tree" && for args in \
      "ingest --source local --path data/sample --start 2025-05-16 --end 2025-05-23" \
      "reduce --start 2025-05-16 --end 2025-05-23" \
      "descriptors --start 2025-05-16 --end 2025-05-23" \
      "dataset" "train" \
      "forecast --date 2025-05-23" \
      "baselines --date 2025-05-22 --end 2025-05-23"; do
    PYTHONPATH=$tree OMP_NUM_THREADS=1 "$py" -c "import sys; sys.argv=['gdelt-forecast']+sys.argv[1:]; $cli; main()" \
      -c data/identity.yaml $args >/dev/null
  done)
}
run "$old"; run "$new"
"$py" "$new/scripts/compare_outputs.py" "$old/data/identity/lake" "$new/data/identity/lake" \
  --models "$old/data/identity/models/ident" "$new/data/identity/models/ident"
