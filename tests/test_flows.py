"""Prefect flows on the real sample: backfill (idempotent, resumable, failure-isolated), daily, deployments.

One session-scoped ``prefect_test_harness`` (a temporary Prefect server and
database) serves every flow run here; the engine tests are kept few.
"""

from __future__ import annotations

import datetime as dt
import html
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from tests.conftest import SAMPLE_COUNTRIES, copy_sample_days

pytestmark = pytest.mark.prefect

DAYS = [dt.date(2025, 5, 16) + dt.timedelta(days=i) for i in range(3)]  # 16 … 18 May
FAST_LEARNED = {"learned_estimator": "logistic", "learned_max_rows": 20_000}
"""baseline-learned as a small logistic fit: the flows' mechanics, not its skill (tests/test_learned.py)."""


@pytest.fixture
def harness(prefect_harness):
    """The session's one Prefect test harness (tests/conftest.py)."""
    return prefect_harness


def _config(tmp: Path, lake: Path, model: Path | None = None) -> Path:
    cfg = {
        "lake": {"root": str(lake)},
        "descriptors": {"countries": list(SAMPLE_COUNTRIES)},
        "dataset": {"context_days": 7, "countries": list(SAMPLE_COUNTRIES)},
        "forecast": {"model": str(model or tmp / "no-model"), "num_futures": 4, **FAST_LEARNED},
        "evaluate": {"reports_dir": str(tmp / "reports")},
        "flow": {"cron": "30 5 * * *", "source": "local"},
        "train": {"models_dir": str(tmp / "models")},  # baseline-learned's fits are cached there
    }
    path = tmp / "flow.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _seed_embeddings(src_lake, dst_root: Path) -> None:
    """Reuse the session's embedding cache (phrase → vector) so the flows embed (almost) nothing."""
    shutil.copytree(src_lake.table_dir("embeddings"), dst_root / "embeddings", dirs_exist_ok=True)


def _snapshot(root: Path) -> dict[str, pa.Table]:
    from pipeline.core.lake import Lake

    lake = Lake(root)
    out = {}
    for table in ("events", "country", "descriptors", "descriptor_days"):
        t = lake.read(table)
        out[table] = t.sort_by([(c, "ascending") for c in t.column_names if pa.types.is_primitive(t.schema.field(c).type)
                                or pa.types.is_string(t.schema.field(c).type)][:4])
    return out


def test_backfill_twice_is_idempotent_and_the_second_run_does_no_work(harness, sample_descriptors, tmp_path):
    from flows.backfill import backfill

    src = copy_sample_days(tmp_path / "src", DAYS[:3])
    lake_root = tmp_path / "lake"
    _seed_embeddings(sample_descriptors, lake_root)
    config = str(_config(tmp_path, lake_root))
    stages = ["ingest", "reduce", "descriptors"]

    dry = backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), dry_run=True, stages=stages)
    assert len(dry["submitted"]) == 9 and not (lake_root / "events").exists()  # dry run writes nothing

    first = backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), stages=stages)
    assert sorted(first["submitted"]) == sorted(f"{s}:{d}" for d in DAYS[:3] for s in stages)
    before = _snapshot(lake_root)

    second = backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), stages=stages)
    assert second["submitted"] == [] and second["skipped"] == 9
    after = _snapshot(lake_root)
    for table in before:
        assert after[table].equals(before[table]), table

    forced = backfill(DAYS[0], DAYS[0], config=config, source="local", path=str(src), stages=stages, force=True)
    assert len(forced["submitted"]) == 3
    assert _snapshot(lake_root)["events"].equals(before["events"])  # redoing a day gives the same rows

    # an output lost after the run is rebuilt, though Prefect's cache holds the task's result (its inputs unchanged)
    from pipeline.core.lake import Lake

    shutil.rmtree(Lake(lake_root).partition_dir("country", DAYS[1]))
    again = backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), stages=stages)
    assert sorted(again["submitted"]) == [f"descriptors:{DAYS[1]}", f"reduce:{DAYS[1]}"]  # and what reads it
    rebuilt = _snapshot(lake_root)
    assert all(rebuilt[table].equals(before[table]) for table in before)


def test_a_failed_day_does_not_stop_the_others(harness, sample_descriptors, tmp_path):
    from flows.backfill import BackfillFailed, backfill
    from pipeline.core.lake import Lake

    src = copy_sample_days(tmp_path / "src", DAYS[:3])
    bad = sorted(src.glob(f"{DAYS[1]:%Y%m%d}*.zip"))[0]
    bad.write_bytes(bad.read_bytes()[:5000])  # a truncated zip on the middle day
    lake_root = tmp_path / "lake"
    _seed_embeddings(sample_descriptors, lake_root)
    config = str(_config(tmp_path, lake_root))

    with pytest.raises(BackfillFailed) as err:
        backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src),
                 stages=["ingest", "reduce", "descriptors"])
    assert list(err.value.summary.failed) == [str(DAYS[1])]
    assert "ingest" in err.value.summary.failed[str(DAYS[1])]
    lake = Lake(lake_root)
    assert lake.partitions("descriptor_days") == [DAYS[0], DAYS[2]]  # the other days completed


def test_daily_flow_end_to_end(harness, sample_descriptors, tiny_model_run, tmp_path, monkeypatch):
    import pipeline.cameo.labels as labels_module
    from flows.backfill import backfill
    from flows.daily import daily
    from pipeline.core.lake import Lake

    days = DAYS[:3]  # two days of history (a partial T=7 context is enough), then the daily run for the third,
    src = copy_sample_days(tmp_path / "src", days[:-1])
    copy_sample_days(src, days[-1:], slice(0, 2))  # which holds 2 of its 3 exports: thin, but still read
    lake_root = tmp_path / "lake"
    _seed_embeddings(sample_descriptors, lake_root)
    config = str(_config(tmp_path, lake_root, tiny_model_run))
    backfill(days[0], days[-2], config=config, source="local", path=str(src),
             stages=["ingest", "reduce", "descriptors", "forecast"])
    reads: list = []  # every read of the outcomes the daily run makes (the lake's files and days it read)
    put = labels_module._memo.put
    monkeypatch.setattr(labels_module._memo, "put", lambda key, value: (reads.append(key), put(key, value))[1])
    out = daily(day=days[-1], config=config, source="local", path=str(src))
    monkeypatch.undo()
    # baselines, the forecast's blend, evaluate and the report read each history once
    assert reads and len(set(reads)) == len(reads), [len(k[0]) for k in reads]

    lake = Lake(lake_root)
    tomorrow = days[-1] + dt.timedelta(days=1)
    run = Path(tiny_model_run).name
    assert out["target"] == str(tomorrow) and out["model_run"] == run
    fc = lake.read("forecasts", tomorrow, tomorrow, model=run)
    assert set(fc["country"].to_pylist()) <= set(SAMPLE_COUNTRIES) and fc.num_rows > 0
    assert lake.has_partition("forecasts", tomorrow, model="baseline-climatology")
    # yesterday's forecast for days[-1] (made by the backfill) is now scored
    assert lake.has_partition("scores", days[-1], model=run)
    assert Path(out["report"]).exists() and Path(out["report"]).read_text().count("<html") == 1
    # the thin day is said in the run's result, its summary and on top of the report's pages
    assert out["coverage"] == {"exports": 2, "usual": 3.0, "thin": True, "left_out": False}
    page = Path(out["report"]).read_text()
    said = html.escape(f"made from a thin day: {days[-1]} holds 2 of GDELT's 96 daily exports")
    assert page.count("<div class=warn>") == 1 and said in page
    assert all("<div class=warn>" in p.read_text() for p in (Path(out["report"]).parent / "countries").glob("*.html"))
    # the run's artifacts: the summary table (rows in, quarantined, forecasts written, skill) and the report link
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["daily-summary", "daily-report"])))
    by_key = {a.key: a for a in arts}
    assert {"daily-summary", "daily-report"} <= set(by_key)
    summary = by_key["daily-summary"].data
    assert all(col in summary for col in ("rows in", "quarantined", "forecasts written", "## Skill", run))
    assert "GDELT exports" in summary and "2 (usual 3, thin)" in summary
    assert by_key["daily-report"].data.startswith("[") and Path(out["report"]).resolve().as_uri() in by_key["daily-report"].data

    # a rerun rebuilds what was lost since, though every cached task's inputs are unchanged
    lost = [("country", days[-1], {}), ("forecasts", tomorrow, {"model": run}), ("watchlist", tomorrow, {"model": run})]
    kept = {t: lake.read(t, d, d, **k).to_pandas() for t, d, k in lost}
    for t, d, k in lost:
        shutil.rmtree(lake.partition_dir(t, d, **k))
    from typer.testing import CliRunner

    from gdelt_forecast.cli import app

    r = CliRunner().invoke(app, ["--config", config, "daily", "--date", str(days[-1]), "--source", "local",
                                 "--path", str(src)])  # the command a user runs, which says the day is thin
    assert r.exit_code == 0, r.output
    assert f"{days[-1]} is a thin day: 2 GDELT exports against a usual 3, so its forecasts read low" in " ".join(r.output.split())
    for t, d, k in lost:
        again = lake.read(t, d, d, **k).to_pandas()
        assert len(again) == len(kept[t]) and set(again.columns) == set(kept[t].columns), t


def test_deployments_build_with_the_configured_cron(tmp_path):
    from flows.serve import build_deployments
    from pipeline.core.config import load_config

    cfg = load_config(_config(tmp_path, tmp_path / "lake"))
    deployments = {d.name: d for d in build_deployments(cfg, "configs/daily.yaml")}
    assert set(deployments) == {"daily", "backfill", "train"}
    (schedule,) = deployments["daily"].schedules
    assert schedule.schedule.cron == "30 5 * * *" and schedule.schedule.timezone == "UTC"
    assert deployments["daily"].parameters["lake"] == str(tmp_path / "lake")
    assert not deployments["backfill"].schedules


def test_train_flow_calibrates_evaluates_and_registers(harness, sample_descriptors, tmp_path):
    from flows.train import train_flow
    from pipeline.core.lake import Lake
    from pipeline.core.registry import resolve
    from tests.conftest import REPO

    lake_root = tmp_path / "lake"
    shutil.copytree(sample_descriptors.root, lake_root)  # the session lake stays untouched
    cfg = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    cfg["lake"] = {"root": str(lake_root)}
    cfg["dataset"].update(countries=list(SAMPLE_COUNTRIES), val_days=2, test_days=2)
    cfg["model"]["max_target_tokens"] = 48
    cfg["train"].update(run="flow-tiny", models_dir=str(tmp_path / "models"), epochs=1, max_steps=4,
                        val_generate=2, max_new_tokens=24)
    cfg["forecast"] = {"model": str(tmp_path / "models" / "latest"), "num_futures": 4, **FAST_LEARNED}
    cfg["evaluate"] = {"reports_dir": str(tmp_path / "reports")}
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(cfg))

    out = train_flow(config=str(tmp_path / "train.yaml"))

    run_dir = Path(out["run_dir"])
    val, test = out["dataset"]["target_days"]["val"], out["dataset"]["target_days"]["test"]
    assert (run_dir / "calibration.json").exists() and out["calibration"]["days"] == val
    assert {"event", "base", "root"} <= set(out["calibration"]["blend"])  # blended with climatology ...
    # ... and stacked with the baseline-learned refitted before the validation days, stored with the model
    assert all(len(coef) == 4 for coef in out["calibration"]["blend"].values())
    assert out["calibration"]["stack"] == out["learned"]["days"] and (run_dir / "stack" / "learned.json").exists()
    assert resolve(tmp_path / "models" / "latest") == run_dir.resolve()
    lake = Lake(lake_root)
    for day in test:  # the test days are scored for the model and the baselines alike
        assert lake.has_partition("scores", day, model="flow-tiny")
        assert lake.has_partition("scores", day, model="baseline-climatology")
        assert lake.has_partition("scores", day, model="baseline-learned")
    assert out["evaluation"]["runs"][0] == "flow-tiny"
    # baseline-learned was refitted on the training target days only and saved beside the runs
    from pipeline.model.learned import LearnedBaseline

    learned = LearnedBaseline.load(tmp_path / "models" / "baseline-learned")
    assert learned.fitted_on == out["learned"]["days"] and learned.last_day < dt.date.fromisoformat(val[0])
    assert learned.last_day == dt.date.fromisoformat(val[0]) - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def local_runner_lake(prefect_harness, sample_descriptors, tmp_path_factory):
    """Two sample days through ingest → reduce → descriptors on the local (thread) runner: the reference."""
    from flows.backfill import with_runner

    tmp = tmp_path_factory.mktemp("local-runner")
    src = copy_sample_days(tmp / "src", DAYS[:2])
    lake_root = tmp / "lake"
    _seed_embeddings(sample_descriptors, lake_root)
    with_runner("local", workers=2)(DAYS[0], DAYS[1], config=str(_config(tmp, lake_root)), source="local",
                                    path=str(src), stages=["ingest", "reduce", "descriptors"])
    return lake_root, src


@pytest.mark.parametrize("runner", ["dask", "ray"])
def test_backfill_on_a_cluster_of_processes_gives_the_local_runner_s_lake(runner, harness, sample_descriptors,
                                                                           local_runner_lake, tmp_path):
    """A real local Dask / Ray cluster (worker processes): the same lake as the thread runner, row for row,
    and an embedding cache without duplicates."""
    pytest.importorskip({"dask": "prefect_dask", "ray": "prefect_ray"}[runner])
    from flows.backfill import with_runner
    from pipeline.core.lake import Lake

    reference, src = local_runner_lake
    lake_root = tmp_path / "lake"
    _seed_embeddings(sample_descriptors, lake_root)
    out = with_runner(runner, workers=2)(DAYS[0], DAYS[1], config=str(_config(tmp_path, lake_root)),
                                         stages=["ingest", "reduce", "descriptors"], path=str(src))
    assert sorted(out["submitted"]) == sorted(f"{s}:{d}" for d in DAYS[:2] for s in ("ingest", "reduce", "descriptors"))
    got, want = _snapshot(lake_root), _snapshot(reference)
    for table in want:
        assert got[table].num_rows == want[table].num_rows > 0, table
        assert got[table].equals(want[table]), table
    phrases = Lake(lake_root).read("embeddings").column("phrase").to_pylist()
    assert len(phrases) == len(set(phrases))


def test_demo_summary_leads_with_the_watch_list(sample_forecasts):
    """The demo prints what is unusual tomorrow (the top of the watchlist table), the usual value beside."""
    from flows.demo import sample_days, unusual_tomorrow
    from pipeline.scoring.watchlist import read_watchlist, write_watchlist

    lake, day = sample_forecasts.lake, dt.date.fromisoformat(sample_forecasts.days[-1])
    write_watchlist(lake, day)  # the daily flow's stage (the demo runs it)
    w = read_watchlist(lake, day)
    rows = unusual_tomorrow(lake, day, n=6)
    assert 0 < len(rows) <= 6 and sum(r["direction"] == "fall" for r in rows) <= 2
    index = {(r.country, r.level, r.code): r for r in w.itertuples()}
    for r in rows:
        row = index[(r["fips"], r["level"], r["code"])]  # every line is a watchlist row, with its numbers
        assert r["fips"] in SAMPLE_COUNTRIES and r["label"] and not r["label"].isupper()
        assert r["p"] == row.probability and r["usual"] == row.usual
        assert r["difference"] == pytest.approx(r["p"] - r["usual"]) and abs(r["difference"]) > 0
        assert (r["direction"] == "rise") == (r["difference"] > 0)
    sizes = [abs(r["difference"]) for r in rows]
    assert sizes == sorted(sizes, reverse=True)  # largest departure first, rise or fall, not largest P
    roots = [(r["fips"], r["code"][:2] if r["level"] != "quad" else r["code"]) for r in rows]
    assert len(roots) == len(set(roots))  # one line per country and root
    biggest = w[w.list.isin(["rises", "conflict rises", "falls"])].difference.abs().max()
    assert abs(rows[0]["difference"]) == pytest.approx(biggest)
    assert sample_days() == (dt.date(2025, 5, 16), dt.date(2025, 6, 6))


def test_pipeline_logs_reach_the_flow_log():
    """``train_task`` forwards the ``pipeline.*`` records (per-epoch metrics) to the Prefect run logger."""
    import logging

    from flows.train import pipeline_logs_to

    got = []

    class RunLogger:
        def log(self, level, msg, *args):
            got.append((level, msg % args))

    with pipeline_logs_to(RunLogger()):
        logging.getLogger("pipeline.model.train").info("epoch %s/%d: loss %.1f", 1, 3, 2.0)
        logging.getLogger("pipeline.model.train").debug("per step: not forwarded")
    logging.getLogger("pipeline.model.train").info("after the block: not forwarded")
    assert got == [(logging.INFO, "pipeline.model.train: epoch 1/3: loss 2.0")]


def test_backfill_forecasts_a_day_from_every_earlier_day_however_the_days_finish(harness, tmp_path, monkeypatch):
    """Days run side by side: the baselines of day 2 (for day 3) used to wait only for day 2's reduce, so a slow
    day 1 was missing from their history (one day instead of two), and a second run would not redo them."""
    import time

    import pipeline.ingest.reduce as reduce_module
    from flows.backfill import backfill
    from pipeline.core.lake import Lake

    src = copy_sample_days(tmp_path / "src", DAYS[:3])
    lake_root = tmp_path / "lake"
    config = str(_config(tmp_path, lake_root))
    real = reduce_module.reduce

    def slow_first_day(lake, start, end, *args, **kwargs):
        if start == DAYS[0]:
            time.sleep(4)  # day 1 reduces last
        return real(lake, start, end, *args, **kwargs)

    import pipeline.forecast.baselines as baselines_module

    ranges, real_baselines = [], baselines_module.run_baselines

    def recorded(lake, start, end=None, *args, **kwargs):
        ranges.append((str(start), str(end)))
        return real_baselines(lake, start, end, *args, **kwargs)

    monkeypatch.setattr(reduce_module, "reduce", slow_first_day)
    monkeypatch.setattr(baselines_module, "run_baselines", recorded)
    backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), stages=["ingest", "reduce", "forecast"])
    # the baselines in blocks of baseline-learned's refit weeks: targets Sat 05-17 and Sun 05-18 in one, Mon 05-19
    assert sorted(ranges) == [("2025-05-17", "2025-05-18"), ("2025-05-19", "2025-05-19")]
    lake = Lake(lake_root)
    for k, day in enumerate(DAYS[1:] + [DAYS[2] + dt.timedelta(days=1)], start=1):
        used = set(lake.read("forecasts", day, day, model="baseline-climatology")["n_futures"].to_pylist())
        assert used == {k}, (day, used)  # history days: every day before the target


def test_backfill_blocks_are_the_refit_weeks_of_their_targets():
    from flows.backfill import refit_blocks

    days = [dt.date(2025, 5, 14) + dt.timedelta(days=i) for i in range(14)]  # Wed 05-14 … Tue 05-27
    blocks = refit_blocks(days, 7)
    # targets (day + 1) Thu 05-15 … Sun 05-18 | Mon 05-19 … Sun 05-25 | Mon 05-26 … Wed 05-28
    assert [(b[0], b[-1]) for b in blocks] == [(days[0], days[3]), (days[4], days[10]), (days[11], days[13])]
    assert sum(blocks, []) == days
    assert refit_blocks(days, 1) == [[d] for d in days]


def test_backfill_writes_the_baselines_a_lake_lacks_and_reports_a_failed_block(harness, tmp_path, monkeypatch):
    """A lake reduced without its baselines (by the CLI's ``ingest`` and ``reduce``, or a backfill whose baselines
    failed) used to get none from a backfill: its baselines ran only with a reduce to run, and a failed block
    was not reported. Now the baselines are a stage of their own: planned, listed by --dry-run, failed days named,
    and a re-run writes what is missing."""
    import pipeline.forecast.baselines as baselines_module
    from flows.backfill import BackfillFailed, backfill
    from pipeline.core.lake import Lake
    from pipeline.ingest.reduce import reduce
    from pipeline.ingest.run import ingest

    src = copy_sample_days(tmp_path / "src", DAYS[:3])
    lake_root = tmp_path / "lake"
    lake = Lake(lake_root)
    ingest(lake, "local", DAYS[0], DAYS[2], path=src)
    reduce(lake, DAYS[0], DAYS[2])
    config = str(_config(tmp_path, lake_root))
    targets = [d + dt.timedelta(days=1) for d in DAYS[:3]]
    stages = ["ingest", "reduce", "baselines"]

    dry = backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), dry_run=True, stages=stages)
    assert sorted(dry["submitted"]) == [f"baselines:{d}" for d in DAYS[:3]] and dry["skipped"] == 6
    real = baselines_module.run_baselines

    def fails_on_monday(lk, start, end=None, *args, **kwargs):
        if start == targets[2]:  # the block of Mon 05-19 (its own refit week)
            raise OSError("disk full")
        return real(lk, start, end, *args, **kwargs)

    monkeypatch.setattr(baselines_module, "run_baselines", fails_on_monday)
    with pytest.raises(BackfillFailed) as err:
        backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), stages=stages)
    assert err.value.summary.failed == {str(DAYS[2]): "baselines: " + err.value.summary.failed[str(DAYS[2])][11:]}
    assert "disk full" in err.value.summary.failed[str(DAYS[2])]
    assert lake.partitions("forecasts", model="baseline-climatology") == targets[:2]
    monkeypatch.setattr(baselines_module, "run_baselines", real)
    again = backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), stages=stages)
    assert again["submitted"] == [f"baselines:{DAYS[2]}"]  # only the failed block
    assert lake.partitions("forecasts", model="baseline-climatology") == targets
    assert lake.partitions("forecasts", model="baseline-learned") == targets[1:]  # the first has no day to learn
    assert backfill(DAYS[0], DAYS[2], config=config, source="local", path=str(src), stages=stages)["submitted"] == []
