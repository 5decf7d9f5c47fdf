"""Every ```bash block of README.md and docs/flows.md, run as a user would, fails the test when one fails.

Opt-in (``pytest -m docs``): about 10 minutes on 2 shared cores (the retrain flow, two deployment runs
and the session's sample lake), too long for every run of the suite.

The commands run in a scratch folder laid out like a checkout (``configs/``, ``data/sample`` → the
shipped sample, ``data/lake`` → a copy of the session's sample lake, ``models/``, ``reports/``),
against a real local Prefect server (``prefect_server``). What is changed, and why:

* ``gdelt-forecast`` → ``python -m gdelt_forecast`` of this interpreter (the code under test).
* Demo-sized configs: ``configs/daily.yaml`` and ``configs/tiny.yaml`` are replaced by versions with the
  3 sample countries, T = 7, a tiny model trained 2 steps, 4 futures, and ``flow.source: local`` on
  the sample; a command without ``--config`` gets ``--config configs/daily.yaml`` (the defaults would
  embed every country of 22 days, minutes on 2 cores).
* Dates outside the sample (2025-05-16 … 2025-06-06) are moved inside it; ``daily`` without
  ``--date`` gets ``--date 2025-06-05`` (the sample has no "yesterday"); a deployment run waits
  for its flow run (``--watch``) and the daily one gets ``-p day=2025-06-05``.
* Optional parts in ``[brackets]`` are left out; ``<flow-run-id>`` is the newest flow run; a command
  that appears in both documents runs once.
* Not run (``SKIPPED``, with the reason): installs, Docker (no engine), network sources (GDELT's
  servers, BigQuery), benchmarks and the 5-minute demo; ``prefect server start`` and
  ``export PREFECT_API_URL`` are the fixture itself; ``serve`` runs in the background while the
  block's other commands run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, SAMPLE_COUNTRIES

pytestmark = [pytest.mark.prefect, pytest.mark.docs]

DOCS = [REPO / "README.md", REPO / "docs" / "flows.md"]
SKIPPED = {
    r"python3 -m venv": "installs the project (the tests run in the installed environment)",
    r"apt-get install": "installs a system package (the browser test's chromium; CI does it in .ci/run)",
    r"^docker ": "no Docker engine on the development machines",
    r"--source (gdelt1|gdelt2|bigquery)": "network source (GDELT's servers / BigQuery)",
    r"^python bench/": "benchmarks (minutes each; bench/ has its own runs)",
    r"gdelt-forecast demo": "the 5-minute demo; its stages are the other blocks",
    r"^prefect server start": "the prefect_server fixture is the server",
    r"^export PREFECT_API_URL": "the prefect_server fixture sets it",
}
DATE_MOVES = {"2025-01-01": "2025-05-16", "start=2025-05-01": "start=2025-05-23",
              "-p end=2025-05-31": "-p end=2025-05-24", "-p end=2025-05-17": "-p end=2025-05-17"}


FLOW_COMMANDS = r"\s(daily|backfill|retrain|demo)\b(?!.*--dry-run)"
"""Commands that run Prefect flows get a process each, as a user's would (Prefect's logging binds to the
streams of the process that first runs a flow); the others run in this process, which is faster."""


def bash_blocks(path: Path) -> list[list[str]]:
    """The command lines of each ```bash block (comments after two spaces and ``[optional]`` parts removed)."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)
    out = []
    for block in blocks:
        lines = []
        for line in block.splitlines():
            line = re.split(r"\s{2,}#", line)[0].strip()
            line = re.sub(r"\s\[[^\]]*\]", "", line)
            if line:
                lines.append(line)
        out.append(lines)
    return out


def skip_reason(line: str) -> str | None:
    return next((why for pat, why in SKIPPED.items() if re.search(pat, line)), None)


def substitute(line: str) -> str:
    for a, b in DATE_MOVES.items():
        line = line.replace(a, b)
    if line.startswith("gdelt-forecast"):
        if "--config" not in line:
            line = line.replace("gdelt-forecast", "gdelt-forecast --config configs/daily.yaml", 1)
        if re.search(r"\sdaily$", line):
            line += " --date 2025-06-05"
        line = line.replace("gdelt-forecast", f"{sys.executable} -m gdelt_forecast", 1)
    elif line.startswith("prefect "):
        if line.startswith("prefect deployment run"):
            line += " --watch" + (" -p day=2025-06-05" if "'daily/daily'" in line else "")
        line = f"{sys.executable} -m {line}"
    return line


def _demo_sized(workdir: Path) -> None:
    (workdir / "configs").mkdir()
    for f in (REPO / "configs").glob("*.yaml"):
        shutil.copy(f, workdir / "configs" / f.name)
    tiny = {
        "lake": {"root": "data/lake"},
        "descriptors": {"countries": list(SAMPLE_COUNTRIES)},
        "dataset": {"context_days": 7, "countries": list(SAMPLE_COUNTRIES), "max_points": 64, "val_days": 2,
                    "test_days": 2},
        "model": {"preset": "tiny", "max_target_tokens": 48},
        "train": {"run": "tiny", "epochs": 1, "max_steps": 2, "val_generate": 2, "max_new_tokens": 24,
                  "num_threads": 1},
        "forecast": {"model": "models/latest", "num_futures": 4},
        "flow": {"source": "local", "path": "data/sample/gdelt-v2", "backfill_concurrency": 2},
    }
    (workdir / "configs" / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    daily = {**tiny, "train": {**tiny["train"], "run": "daily"}}
    (workdir / "configs" / "daily.yaml").write_text(yaml.safe_dump(daily))


@pytest.fixture()
def workdir(tmp_path, sample_descriptors):
    (tmp_path / "data").mkdir()
    os.symlink(REPO / "data" / "sample", tmp_path / "data" / "sample")
    shutil.copytree(sample_descriptors.root, tmp_path / "data" / "lake")
    _demo_sized(tmp_path)
    return tmp_path


def _sh(line: str, cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _newest_flow_run(env: dict[str, str], cwd: Path) -> str:
    r = _sh(f"{sys.executable} -m prefect flow-run ls --limit 1", cwd, {**env, "COLUMNS": "250"})
    return re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", r.stdout).group(0)


def _gdelt_forecast(line: str, workdir: Path, api_url: str) -> tuple[int, str]:
    """Run one ``gdelt-forecast …`` line in this process (no interpreter start per command)."""
    import shlex

    from prefect.settings import PREFECT_API_URL, temporary_settings
    from typer.testing import CliRunner

    from gdelt_forecast.cli import app

    args = shlex.split(line)[3:]  # drop "<python> -m gdelt_forecast"
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            r = CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)
    detail = r.output[-2500:]
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        detail += "".join(traceback.format_exception(r.exception))[-2500:]
    return r.exit_code, detail


@pytest.mark.timeout(1200)
def test_every_documented_command_runs(workdir, prefect_server):
    env = {**prefect_server, "PYTHONPATH": str(REPO), "GDELT_FORECAST_QUIET": "1", "OMP_NUM_THREADS": "1"}
    ran, skipped, failures, done = [], [], [], set()
    timings = workdir / "timings.log"
    for doc in DOCS:
        for block in bash_blocks(doc):
            server = None
            try:
                for line in block:
                    if why := skip_reason(line):
                        skipped.append((line, why))
                        continue
                    cmd = substitute(line)
                    if cmd in done:  # the same command in two documents (serve, a deployment run): once is enough
                        continue
                    done.add(cmd)
                    t0 = time.perf_counter()
                    if re.search(r"\sserve$", cmd):
                        server = subprocess.Popen(cmd, shell=True, cwd=workdir, env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        _wait_for_deployments(env, workdir)
                        rc, detail = 0, ""
                    elif cmd.startswith(f"{sys.executable} -m gdelt_forecast") and not re.search(FLOW_COMMANDS, cmd):
                        rc, detail = _gdelt_forecast(cmd, workdir, env["PREFECT_API_URL"])
                    else:
                        if "<flow-run-id>" in cmd:
                            cmd = cmd.replace("<flow-run-id>", _newest_flow_run(env, workdir))
                        r = _sh(cmd, workdir, env)
                        rc, detail = r.returncode, f"{r.stdout[-1500:]}\n{r.stderr[-2500:]}"
                    ran.append(line)
                    with timings.open("a") as fh:
                        fh.write(f"{time.perf_counter() - t0:6.1f}s rc={rc} {line}\n")
                    if rc != 0:
                        failures.append(f"{doc.name}: {line}\n  → {cmd}\n  rc {rc}\n{detail}")
            finally:
                if server is not None:
                    server.terminate()
                    server.wait(timeout=30)
    print(timings.read_text())
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= 20 and all(why for _, why in skipped)


def _wait_for_deployments(env: dict[str, str], cwd: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = _sh(f"{sys.executable} -m prefect deployment ls", cwd, {**env, "COLUMNS": "250"}, timeout=60)
        if "backfill/backfill" in r.stdout and "daily/daily" in r.stdout:
            time.sleep(3)  # the runner polls for scheduled runs once it has registered them
            return
        time.sleep(2)
    raise AssertionError("gdelt-forecast serve did not register its deployments")
