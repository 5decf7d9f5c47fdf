"""The events ID index: persisted, incremental, and it sees partitions rewritten by another writer."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from pipeline.core.lake import Lake
from pipeline.ingest.run import _IdIndex

D = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(3)]


def _ids(lo: int, hi: int) -> pa.Table:
    return pa.table({"GLOBALEVENTID": pa.array(range(lo, hi + 1), pa.int64())})


def test_index_is_persisted_incremental_and_follows_other_writers(tmp_path, monkeypatch):
    lake = Lake(tmp_path / "lake")
    for i, d in enumerate(D):
        lake.write_partition("events", _ids(100 * i, 100 * i + 50), d)
    idx = _IdIndex(lake)
    assert idx.ranges == {D[0]: (0, 50), D[1]: (100, 150), D[2]: (200, 250)}
    assert idx.overlapping(D[0], 140, 210) == [D[1], D[2]]

    loads = []
    real = _IdIndex._load
    monkeypatch.setattr(_IdIndex, "_load", lambda self, d, folder: (loads.append(d), real(self, d, folder)))
    again = _IdIndex(lake)  # a new ingest: the saved index, no footer read
    assert again.ranges == idx.ranges and loads == []

    lake.write_partition("events", _ids(120, 180), D[1])  # rewritten by another writer
    lake.delete_partition("events", D[2])
    again.refresh()
    assert loads == [D[1]] and again.ranges == {D[0]: (0, 50), D[1]: (120, 180)}
    assert _IdIndex(lake).ranges == again.ranges and loads == [D[1]]  # and saved
