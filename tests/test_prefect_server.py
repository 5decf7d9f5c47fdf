"""Against a real ``prefect server start`` (``prefect_server`` fixture): the deployments register with
only the parameters the README shows, flow runs publish their logs (``pipeline.*`` records included)
and artifacts, and the Prefect CLI commands a user types work: ``deployment ls``, ``flow-run ls``,
``flow-run logs`` (these failed with HTTP 422 on fastapi ≥ 0.151)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

from tests.conftest import SAMPLE_DIR

pytestmark = pytest.mark.prefect

SCRIPT = textwrap.dedent('''
    import datetime as dt, json, logging, sys
    from prefect import flow, task
    from flows.backfill import backfill
    from flows.serve import build_deployments
    from flows.observe import RunLogHandler
    from pipeline.core.config import load_config

    config = sys.argv[1]
    for d in build_deployments(load_config(config), config):
        d.apply()

    @task
    def stage():
        logging.getLogger("pipeline.check").info("a pipeline record, forwarded")

    @flow(name="log-check")
    def log_check():
        stage()

    day = dt.date(2025, 5, 16)
    state = backfill(day, day, config=config, stages=["ingest", "reduce"], return_state=True)
    checked = log_check(return_state=True)
    print(json.dumps({"backfill": str(state.state_details.flow_run_id), "ok": state.is_completed(),
                      "log_check": str(checked.state_details.flow_run_id)}))
''')


def _prefect(env, *args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "prefect", *args], env={**env, "COLUMNS": "250"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"prefect {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def test_deployments_runs_logs_and_artifacts_on_a_real_server(prefect_server, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in SAMPLE_DIR.glob("20250516*.export.CSV.zip"):
        shutil.copy(f, src / f.name)
    config = tmp_path / "flow.yaml"
    config.write_text(yaml.safe_dump({
        "lake": {"root": str(tmp_path / "lake")}, "forecast": {"model": str(tmp_path / "no-model")},
        "flow": {"source": "local", "path": str(src)}}))

    r = subprocess.run([sys.executable, "-c", SCRIPT, str(config)], env=prefect_server, capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    ids = json.loads(r.stdout.strip().splitlines()[-1])
    assert ids["ok"]  # source and path came from the config (flow.source / flow.path)

    deployments = _prefect(prefect_server, "deployment", "ls")
    assert "backfill/backfill" in deployments and "daily/daily" in deployments and "train/train" in deployments
    inspected = _prefect(prefect_server, "deployment", "inspect", "backfill/backfill")
    params = ast.literal_eval(re.search(r"'parameters': (\{[^{}]*\})", inspected).group(1))
    assert set(params) == {"config", "lake"}  # only these travel: the source is read from the config

    from flows.serve import check_api  # what `gdelt-forecast serve` checks first: this server answers

    assert check_api(prefect_server["PREFECT_API_URL"]) == prefect_server["PREFECT_API_URL"]

    runs = _prefect(prefect_server, "flow-run", "ls")
    assert "backfill" in runs and "log-check" in runs
    logs = _prefect(prefect_server, "flow-run", "logs", ids["backfill"])
    assert "ingest local 2025-05-16: 3 files" in logs and "reduce 2025-05-16:" in logs  # the tasks say what they did
    assert "a pipeline record, forwarded" in _prefect(prefect_server, "flow-run", "logs", ids["log_check"])

    artifacts = _prefect(prefect_server, "artifact", "ls")
    assert "backfill-summary" in artifacts
