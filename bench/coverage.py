"""Does the bar gain from fuller days? ``baseline-learned`` on lakes that hold every 4th, every 2nd and every one
of the shared 15-minute slices (issue 10: "what would move it").

The shared days hold about 40 % of each day's 96 slices. This bench ingests and reduces, from the same files, lakes
that keep only every ``k``-th slice of each day (by time; ``--keep 4 2``), into ``<--root>/every-<k>/lake`` (built
once, reused; with ``--phases`` also the lakes of the same stride from the 2nd, 3rd … slice on,
``every-<k>-from-<i>``, so that which slices a lake keeps averages out), and scores the shipped ``baseline-learned``
(its shipped features and estimator) on each beside the full lake (``--lake``, k = 1), on the same split protocol as
``bench/label_features.py`` (fit on the days before ``--split``, test ``--split`` … ``--end``), for the same
countries (the busiest by events before the split in the full lake, ``--top``). Prints per lake the share of a day's
96 slices it holds, the events a country-day, the share of cells that occur, and BSS against climatology at event,
base and root level (with ``--phases`` the mean over a stride's lakes and their range); then per level the
least-squares line of BSS on log2 of the share, its slope (points a doubling of the day) and its value at the full
day, an extrapolation. If the bar's skill over climatology rises with the share of the day a lake holds, full days
would move the 30 busiest's event level, the one goal of issue 10 these days leave unmet.

``--yesterday``: instead, the bar fitted on the full lake forecasts each test day with only the day before it taken
from a thinned lake (what an outage or a half-done ingest leaves): BSS and the mean forecast minus the share that
occurred, per stride (``pipeline/core/coverage.py`` flags such days); the last row leaves that day out instead, as
a recorded gap does (the window one day older). ``--parts 3/4 2/3`` adds the day before holding 3 of every 4 and 2 of
every 3 of its slices (successive phases' lakes summed): where leaving a thin day out starts to beat reading it.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/coverage.py --keep 4 3 2 --phases --split 2025-06-01 --top 30 100
    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/coverage.py --yesterday --keep 2 --parts 3/4 2/3 3/5 --phases \
        --split 2025-06-01
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.label_features import split_days
from pipeline.cameo.labels import Outcomes, load_outcomes
from pipeline.core.lake import Lake
from pipeline.features import history as H
from pipeline.ingest.reduce import reduce
from pipeline.ingest.run import ingest
from pipeline.model import learned

LEVELS = ("event", "base", "root")
SLICES_A_DAY = 96


def slices_by_day(src: Path) -> dict[str, list[Path]]:
    """The 15-minute export files of ``src`` (``YYYYMMDDHHMMSS.export.CSV.zip``) by day, in time order."""
    by_day: dict[str, list[Path]] = defaultdict(list)
    for f in sorted(src.glob("*.export.CSV*")):
        by_day[f.name[:8]].append(f)
    return dict(by_day)


def day_share(by_day: dict[str, list[Path]], k: int, phase: int) -> float:
    """The mean share of a day's 96 slices that every ``k``-th from the ``phase``-th keeps, over the days the files
    cover in full (the first day holds only its last slice)."""
    full = [files for files in by_day.values() if len(files) >= 8]
    return float(np.mean([len(files[phase::k]) / SLICES_A_DAY for files in full]))


def thinned_lake(by_day: dict[str, list[Path]], root: Path, k: int, phase: int, start: dt.date, end: dt.date) -> Lake:
    """A lake of every ``k``-th slice of each day of ``by_day`` from the day's ``phase``-th on, ingested and
    reduced for [start, end]; built once (a ``done`` marker), reused after."""
    out = root / (f"every-{k}" if phase == 0 else f"every-{k}-from-{phase}")
    lake = Lake(out / "lake")
    if (out / "done").exists():
        return lake
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    kept = 0
    for day in sorted(by_day):
        for f in by_day[day][phase::k]:
            link = files / f.name
            if not link.exists():
                os.symlink(f.resolve(), link)
            kept += 1
    print(f"every {k} from {phase}: {kept} of {sum(map(len, by_day.values()))} slices", flush=True)
    ingest(lake, "local", start, end, path=files, progress=False)
    reduce(lake, start, end)
    (out / "done").write_text("")
    return lake


def scored(o: Outcomes, P: dict, test: list, sets: list[list[str]]) -> list[dict[str, tuple[float, ...]]]:
    """Per country set of ``sets``: {level: (BSS against climatology in %, share of cells that occur, events a
    country-day, mean P − share that occurred)} of the forecasts ``P`` (``learned_probabilities``) of ``test``."""
    ti = [o.day_index(d) for d in test]
    C = {lv: H.smoothed_climatology(o, test, lv, 0.0)[0] for lv in LEVELS}
    rows = []
    for codes in sets:
        cs = np.array([o.countries.index(c) for c in codes])
        row = {}
        for lv in LEVELS:
            Pm = np.stack([P[d][lv][0][cs] for d in test])
            Y = np.stack([o.y[lv][i][cs] for i in ti])
            bss = 100 * (1 - ((Pm - Y) ** 2).mean() / ((C[lv][:, cs] - Y) ** 2).mean())
            row[lv] = (bss, float(Y.mean()), float(o.n_events[ti][:, cs].mean()), float((Pm - Y).mean()))
        rows.append(row)
    return rows


def score(o: Outcomes, split: dt.date, test: list, sets: list[list[str]]) -> list[dict[str, tuple[float, ...]]]:
    """:func:`scored` of the shipped ``baseline-learned`` fitted on ``o``'s days before ``split``."""
    model = learned.fit_learned(o, learned.training_days(o, split), "hgb")
    return scored(o, learned.learned_probabilities(model, o, test), test, sets)


def with_day_from(full: Outcomes, thin: Outcomes, day: dt.date) -> Outcomes:
    """``full`` with ``day``'s outcomes (labels, counts, mentions, actors, volumes) read from ``thin`` instead: a
    lake whose one day holds fewer slices than its others. Countries ``thin`` lacks that day get zeros."""
    i, j = full.day_index(day), thin.day_index(day)
    at = np.array([full.countries.index(c) for c in thin.countries if c in full.countries])
    src = np.array([k for k, c in enumerate(thin.countries) if c in full.countries])

    def swap(key: tuple[str, str | None], a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[i] = 0
        a[i, at] = thin.array(key)[j, src]
        return a

    return full.with_arrays(swap)


def without_day(full: Outcomes, day: dt.date) -> Outcomes:
    """``full`` without ``day`` (as a recorded gap leaves it: the forecast's window lacks that day)."""
    keep = [k for k, d in enumerate(full.days) if d != day]
    return full.with_arrays(lambda _, a: a[keep], days=[full.days[k] for k in keep])


DAY_TABLES = ("events", "country", "descriptors", "descriptor_days", "manifest")
"""The tables whose day partitions a mixed lake takes from the thinned lake on its thin days."""


def mixed_lake(full: Path, thin: Path, days: list[dt.date], out: Path) -> Path:
    """A lake that is ``full`` but on ``days``, whose partitions of :data:`DAY_TABLES` are ``thin``'s (a lake of
    full days with a few thin ones: what an outage leaves), with ``thin``'s embedding cache (it holds the phrases
    of both). Hard links where the files are the same (built in a second); rebuilt every call."""
    import shutil

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(full, out, copy_function=os.link, ignore=shutil.ignore_patterns("embeddings", "_locks",
                                                                                   "_staging"))
    shutil.copytree(thin / "embeddings", out / "embeddings", copy_function=os.link)
    for table in DAY_TABLES:
        for day in days:
            dst, src = out / table / day.isoformat(), thin / table / day.isoformat()
            shutil.rmtree(dst, ignore_errors=True)
            if src.exists():
                shutil.copytree(src, dst, copy_function=os.link)
    return out


def summed(parts: list[Outcomes]) -> Outcomes:
    """The outcomes of a lake holding every slice of ``parts`` (thinned lakes of disjoint slices of the same files):
    labels OR-ed, counts, volumes, mentions and actors summed, over the union of their days and countries."""
    days = sorted(set().union(*(p.days for p in parts)))
    countries = sorted(set().union(*(p.countries for p in parts)))
    at = [np.ix_([days.index(d) for d in p.days], [countries.index(c) for c in p.countries]) for p in parts]

    def combine(key: tuple[str, str | None], a: np.ndarray) -> np.ndarray:
        out = np.zeros((len(days), len(countries)) + a.shape[2:], dtype=a.dtype)
        for p, ix in zip(parts, at):
            if a.dtype == bool:
                out[ix] |= p.array(key)
            else:
                out[ix] += p.array(key)
        return out

    return parts[0].with_arrays(combine, days=days, countries=countries, dropped={})


def thin_yesterday(model: learned.LearnedBaseline, full: Outcomes, thin: Outcomes | None, test: list,
                   sets: list[list[str]]) -> list[dict[str, tuple[float, ...]]]:
    """:func:`scored` of the full lake's ``baseline-learned`` ``model`` when the day before each test day holds only
    ``thin``'s slices (``None``: when it is left out, as a gap)."""
    day_before = (lambda t: without_day(full, t - dt.timedelta(days=1))) if thin is None else (
        lambda t: with_day_from(full, thin, t - dt.timedelta(days=1)))
    P = {t: learned.learned_probabilities(model, day_before(t), [t])[t] for t in test}
    return scored(full, P, test, sets)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lake", default="data/experiment/lake", help="the full lake (every slice the files hold)")
    ap.add_argument("--files", default="../shared/data/gdelt-v2-15min")
    ap.add_argument("--root", default="data/experiment/coverage", help="where the thinned lakes are built")
    ap.add_argument("--keep", type=int, nargs="+", default=[4, 2], help="keep every k-th slice of a day")
    ap.add_argument("--split", default="2025-06-01")
    ap.add_argument("--end", default=None, help="last test day (default: the full lake's last)")
    ap.add_argument("--top", type=int, nargs="+", default=[30, 100])
    ap.add_argument("--yesterday", action="store_true",
                    help="instead: the full lake's bar when only the day before each test day is thinned")
    ap.add_argument("--parts", nargs="*", default=[],
                    help="with --yesterday, also the day before holding m of every k slices (m/k, e.g. 3/4: the "
                         "lakes of m successive phases of stride k summed, one run for each first phase)")
    ap.add_argument("--mix", nargs="+", default=None, metavar="DAY",
                    help="instead: build <root>/thin-days/lake, the full lake with these days taken from the lake of "
                         "every --keep-th slice (its first), for a walk-forward with thin days (bench/ablations.py "
                         "variants thin3 and thin3-read), and stop")
    ap.add_argument("--phases", action="store_true",
                    help="every phase of each stride (k lakes for every k-th slice: from the 1st, the 2nd …)")
    args = ap.parse_args()

    if args.mix:
        days = load_outcomes(Lake(args.lake)).days
        thin = thinned_lake(slices_by_day(Path(args.files)), Path(args.root), args.keep[0], 0, days[0], days[-1])
        out = mixed_lake(Path(args.lake), thin.root, [dt.date.fromisoformat(d) for d in args.mix],
                         Path(args.root) / "thin-days" / "lake")
        from pipeline.core.coverage import left_out_days

        print(f"{out}: {', '.join(args.mix)} from {thin.root}; left out at the default share: "
              f"{', '.join(map(str, left_out_days(Lake(out))))}")
        return
    full = load_outcomes(Lake(args.lake))
    split, test, order = split_days(full, args)
    sets = [[full.countries[i] for i in order[:top]] for top in args.top]
    print(f"test {test[0]} … {test[-1]} ({len(test)} days); bar fitted on the days before {split}; "
          f"every k-th slice, mean over the k phases [min, max]", flush=True)
    by_day = slices_by_day(Path(args.files))
    if args.yesterday:
        print("the day before each test day thinned, the others full: BSS vs clim (mean P − share occurred) "
              "event · base · root")
        model = learned.fit_learned(full, learned.training_days(full, split), "hgb")
        def lake_of(k: int, phase: int) -> Outcomes:
            return load_outcomes(thinned_lake(by_day, Path(args.root), k, phase, full.days[0], full.days[-1]))

        # (1, 1): every slice; (1, k): every k-th; (m, k): m of every k; (0, 0): the day before left out (a gap),
        # the window one day older
        parts = [tuple(map(int, p.split("/"))) for p in args.parts]
        for m, k in [(1, 1), *parts, *((1, k) for k in args.keep), (0, 0)]:
            phases = range(k if args.phases and k else 1)
            runs = [thin_yesterday(model, full, None if k == 0 else full if k == 1 else summed(
                [lake_of(k, (phase + q) % k) for q in range(m)]), test, sets) for phase in phases]
            name = "left out" if k == 0 else f"every {k}" if m == 1 else f"{m} of {k}"
            for j, top in enumerate(args.top):
                print(f"{name} | top {top:3d} | " + " · ".join(
                    f"{np.mean([r[j][lv][0] for r in runs]):+.2f} ({np.mean([r[j][lv][3] for r in runs]):+.3f})"
                    for lv in LEVELS), flush=True)
        return
    print("slices | share of the day | countries | events a country-day | occur event · base · root | "
          "BSS vs clim event · base · root")
    curve = []  # (log2 share, top, level, mean BSS)
    for k in [*args.keep, 1]:
        t0 = time.perf_counter()
        phases = range(k if args.phases else 1)
        share = float(np.mean([day_share(by_day, k, phase) for phase in phases]))
        runs = [score(full if k == 1 else load_outcomes(thinned_lake(by_day, Path(args.root), k, phase, full.days[0],
                                                                     full.days[-1])), split, test, sets)
                for phase in phases]
        for j, top in enumerate(args.top):
            r = {lv: np.array([run[j][lv] for run in runs]) for lv in LEVELS}  # (phases, 4)
            curve += [(np.log2(share), top, lv, r[lv][:, 0].mean()) for lv in LEVELS]
            bss = " · ".join(f"{r[lv][:, 0].mean():+.2f}" + (f" [{r[lv][:, 0].min():+.2f}, {r[lv][:, 0].max():+.2f}]"
                                                           if len(runs) > 1 else "") for lv in LEVELS)
            print(f"every {k} | {share:.1%} | top {top:3d} | {r['event'][:, 2].mean():6.0f} | "
                  + " · ".join(f"{r[lv][:, 1].mean():.3f}" for lv in LEVELS) + f" | {bss}", flush=True)
        print(f"   ({len(runs)} lake(s), {time.perf_counter() - t0:.0f} s)", flush=True)
    print("least squares BSS = a + b · log2(share of the day): b (points a doubling) and a (the full day, an "
          "extrapolation)")
    for top in args.top:
        fits = []
        for lv in LEVELS:
            x, y = np.array([(c[0], c[3]) for c in curve if c[1] == top and c[2] == lv]).T
            b, a = np.polyfit(x, y, 1)
            fits.append(f"{lv} b {b:+.2f}, a {a:+.2f}")
        print(f"top {top:3d} | " + " | ".join(fits))


if __name__ == "__main__":
    main()
