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

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "data" / "sample" / "gdelt-v2"
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
    from pipeline.config import IngestConfig
    from pipeline.ingest import ingest
    from pipeline.lake import Lake
    from pipeline.reduce import reduce

    lake = Lake(tmp_path_factory.mktemp("sample_lake"))
    ingest(lake, "local", SAMPLE_START, SAMPLE_END, IngestConfig(), path=SAMPLE_DIR)
    reduce(lake, SAMPLE_START, SAMPLE_END)
    return lake


# ------------------------------------------------------------ descriptors / dataset


# ------------------------------------------------------------ model / train


# ------------------------------------------------------------ forecast / evaluate


# ------------------------------------------------------------ flows
