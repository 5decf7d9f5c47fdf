"""Daily descriptors on the real sample: invariants, bounds, leak-free rule, idempotent rebuilds."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from conftest import SAMPLE_COUNTRIES

from pipeline.core.errors import UserError
from pipeline.core.config import DescriptorConfig
from pipeline.features.descriptors import build_day, describe_day, describe_descriptors, select_targets
from pipeline.features.embed import embed_phrases
from pipeline.core.lake import Lake
from pipeline.cameo.phrases import make_phrase

DAY = dt.date(2025, 5, 20)


def _copy_country(src: Lake, dst: Lake, *days: dt.date) -> None:
    for d in days:
        shutil.copytree(src.partition_dir("country", d), dst.partition_dir("country", d))


@pytest.fixture(scope="module")
def one_day(sample_lake, embedder, tmp_path_factory):
    """A lake with DAY's country partition and its descriptors for all countries."""
    lake = Lake(tmp_path_factory.mktemp("one_day"))
    _copy_country(sample_lake, lake, DAY, DAY + dt.timedelta(days=1))
    summary = build_day(lake, DAY, DescriptorConfig(), embedder)
    return lake, summary


def test_weights_counts_and_stats(sample_descriptors):
    lake = sample_descriptors
    pts = lake.read("descriptors").to_pandas()
    days = lake.read("descriptor_days").to_pandas()
    assert sorted(days.country.unique()) == SAMPLE_COUNTRIES and len(days) == 22 * len(SAMPLE_COUNTRIES)
    sums = pts.groupby(["date", "country"]).weight.sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, atol=1e-5)
    n = pts.groupby(["date", "country"]).size()
    merged = days.set_index(["date", "country"]).join(n.rename("rows"))
    assert (merged.rows == merged.n_points).all()
    assert (merged.n_points <= 10_000).all() and (merged.small == (merged.n_points < 100)).all()
    assert not pts.duplicated(["date", "country", "phrase"]).any()
    for r in days.itertuples():
        assert len(r.root_hist) == 20 and abs(sum(r.root_hist) - 1) < 1e-5
        assert len(r.quad_shares) == 4 and abs(sum(r.quad_shares) - 1) < 1e-5
        assert list(r.event_codes) == sorted(set(r.event_codes))
        assert set(r.root_codes) == {c[:2] for c in r.event_codes}
        assert -10 <= r.goldstein_mean <= 10
        assert len(r.target_phrases) == len(r.target_weights) and list(r.target_weights) == sorted(r.target_weights,
                                                                                                    reverse=True)
    # weights are proportional to counts (weight = count by default) within each cloud
    ratio = pts.weight / pts["count"]
    assert (ratio.groupby([pts.date, pts.country]).agg(lambda x: x.max() / x.min()) < 1 + 1e-4).all()


def test_counts_match_events_by_dateadded(sample_descriptors):
    """Independent check against ``events`` grouped by DATEADDED day (the leak-free day)."""
    con = sample_descriptors.duckdb()
    expected = dict(((str(d), c), n) for d, c, n in con.sql(
        "SELECT CAST(DATEADDED AS DATE)::VARCHAR, ActionGeo_CountryCode, count(*) FROM events "
        "WHERE ActionGeo_CountryCode IN ('IS', 'RS', 'UP') AND EventCode IS NOT NULL GROUP BY ALL").fetchall())
    got = {(str(d), c): n for d, c, n in con.sql(
        "SELECT date::VARCHAR, country, n_events FROM descriptor_days").fetchall()}
    assert got == expected
    pts = {(str(d), c): n for d, c, n in con.sql(
        "SELECT date::VARCHAR, country, sum(count) FROM descriptors GROUP BY ALL").fetchall()}
    assert pts == expected  # no truncation at this size: every event is in a point


def test_targets_bounds_and_merge(one_day, embedder):
    lake, summary = one_day
    assert summary.misdated == 0 and summary.countries > 100
    days = lake.read("descriptor_days").to_pylist()
    pts = lake.read("descriptors").to_pandas()
    cfg = DescriptorConfig()
    for r in days:
        k = len(r["target_phrases"])
        assert 1 <= k <= 10
        cloud = pts[pts.country == r["country"]]
        assert cloud.phrase.iloc[0] in r["target_phrases"]  # the heaviest point is always a target
        if k < 3:  # only when every point is a near-duplicate of a target
            v = embed_phrases(lake, embedder, cloud.phrase.tolist())
            t = embed_phrases(lake, embedder, r["target_phrases"])
            assert (v @ t.T).max(axis=1).min() >= cfg.dedup_cosine
        if r["n_points"] >= 30:
            assert k >= 3
    busy = [r for r in days if r["n_points"] >= 100]
    assert busy and all(not r["small"] for r in busy)


def test_select_targets_rules():
    e = np.eye(4, dtype=np.float32)
    v = np.stack([e[0], e[0], e[1], e[2], e[3]])  # point 1 duplicates point 0
    w = np.array([0.4, 0.3, 0.1, 0.1, 0.1])
    cfg = DescriptorConfig(target_min=3, target_max=10, target_mass=0.5, dedup_cosine=0.95)
    assert select_targets(v, w, cfg) == [(0, pytest.approx(0.7)), (2, 0.1), (3, 0.1)]
    assert select_targets(v, w, DescriptorConfig(target_min=1, target_max=2, target_mass=0.99)) == [
        (0, pytest.approx(0.7)), (2, 0.1)]
    assert select_targets(v[:2], w[:2], cfg) == [(0, pytest.approx(0.7))]  # fewer only when all are twins


def test_max_points_keeps_heaviest(sample_lake, embedder, tmp_path, one_day):
    lake = Lake(tmp_path)
    _copy_country(sample_lake, lake, DAY)
    build_day(lake, DAY, DescriptorConfig(max_points=20, min_points=50, countries=["US", "IS"]), embedder)
    full = one_day[0].read("descriptors").to_pandas()
    cut = lake.read("descriptors").to_pandas()
    days = lake.read("descriptor_days").to_pandas().set_index("country")
    for c in ("US", "IS"):
        f, k = full[full.country == c], cut[cut.country == c]
        assert len(k) == 20 == days.n_points[c] and days.small[c] and days.n_phrases[c] == len(f)
        assert k["count"].min() >= f["count"].iloc[20:].max()  # nothing lighter kept over something heavier
        assert abs(k.weight.sum() - 1) < 1e-5


def test_leak_free_rule(sample_lake, embedder, tmp_path):
    """An event added after day d never reaches d's descriptor, even if it sits in d's partition."""
    lake = Lake(tmp_path)
    nxt = DAY + dt.timedelta(days=1)
    today, tomorrow = sample_lake.read("country", DAY, DAY), sample_lake.read("country", nxt, nxt)
    tomorrow = tomorrow.filter(pc.equal(tomorrow["ActionGeo_CountryCode"], "IS"))
    # tag tomorrow's rows with a phrase that does not occur today
    tomorrow = tomorrow.set_column(tomorrow.schema.get_field_index("EventCode"), "EventCode",
                                   pa.array(["1385"] * tomorrow.num_rows))
    tomorrow = tomorrow.set_column(tomorrow.schema.get_field_index("Actor1Geo_CountryCode"), "Actor1Geo_CountryCode",
                                   pa.array(["IS"] * tomorrow.num_rows))
    leaky = pa.concat_tables([today, tomorrow]).drop_columns(["date"])
    lake.write_partition("country", leaky, DAY)
    s = build_day(lake, DAY, DescriptorConfig(countries=["IS"]), embedder)
    assert s.misdated == tomorrow.num_rows > 0
    phrases = set(lake.read("descriptors")["phrase"].to_pylist())
    assert make_phrase("IS", "1385", None) not in phrases and not any("attack with WMD" in p for p in phrases)
    clean = Lake(tmp_path / "clean")
    _copy_country(sample_lake, clean, DAY)
    build_day(clean, DAY, DescriptorConfig(countries=["IS"]), embedder)
    assert lake.read("descriptors").equals(clean.read("descriptors"))


def test_rebuild_is_identical_and_local(sample_descriptors, embedder):
    lake = sample_descriptors
    other = lake.partition_dir("descriptors", DAY + dt.timedelta(days=1)) / "part-0.parquet"
    mtime = other.stat().st_mtime_ns
    before = (lake.read("descriptors", DAY, DAY), lake.read("descriptor_days", DAY, DAY))
    s = build_day(lake, DAY, DescriptorConfig(countries=list(SAMPLE_COUNTRIES)), embedder)
    assert s.cache.misses == 0 and s.cache.hits > 0  # second run embeds nothing
    after = (lake.read("descriptors", DAY, DAY), lake.read("descriptor_days", DAY, DAY))
    assert before[0].equals(after[0]) and before[1].equals(after[1])
    assert other.stat().st_mtime_ns == mtime


def test_countries_subset_keeps_other_countries(one_day, embedder):
    lake, _ = one_day
    before = lake.read("descriptor_days")
    build_day(lake, DAY, DescriptorConfig(countries=["IS"]), embedder)
    after = lake.read("descriptor_days")
    assert after.equals(before)


def test_mentions_weight_and_actor_countries(sample_lake, embedder, tmp_path, one_day):
    lake = Lake(tmp_path)
    _copy_country(sample_lake, lake, DAY)
    build_day(lake, DAY, DescriptorConfig(weight="mentions", countries=["IS"]), embedder)
    p = lake.read("descriptors").to_pandas()
    np.testing.assert_allclose(p.weight, p.mentions / p.mentions.sum(), rtol=1e-5)
    base = one_day[0].read("descriptor_days").to_pandas().set_index("country").n_events["IS"]
    build_day(lake, DAY, DescriptorConfig(include_actor_countries=True, countries=["IS"]), embedder)
    assert lake.read("descriptor_days")["n_events"][0].as_py() > base
    with pytest.raises(ValueError, match="weight"):
        build_day(lake, DAY, DescriptorConfig(weight="tone"), embedder)
    with pytest.raises(FileNotFoundError, match="reduce"):
        build_day(lake, DAY + dt.timedelta(days=1), DescriptorConfig(), embedder)


def test_describe(sample_descriptors):
    t = describe_descriptors(sample_descriptors, DAY, "IS", top=5)
    assert t.num_rows == 5 and t["rank"].to_pylist() == [1, 2, 3, 4, 5]
    w = t["weight"].to_pylist()
    assert w == sorted(w, reverse=True) and t["target"][0].as_py()
    assert int(t.schema.metadata[b"n_events"]) == describe_day(sample_descriptors, DAY, "IS")["n_events"]
    with pytest.raises(UserError, match="--country: unknown FIPS country code.* ZZ"):
        describe_descriptors(sample_descriptors, DAY, "ZZ")
    with pytest.raises(UserError, match="no descriptors for country US on"):  # a real code without a cloud that day
        describe_descriptors(sample_descriptors, DAY, "us")
    assert describe_descriptors(sample_descriptors, DAY, "is", top=5).equals(t)  # lower case reads as the code
