from pathlib import Path

import pytest

from pipeline.registry import register, resolve, run_name


def test_register_points_latest_at_the_newest_run(tmp_path: Path) -> None:
    a, b = tmp_path / "run-a", tmp_path / "run-b"
    a.mkdir(); b.mkdir()
    register(a)
    assert resolve(tmp_path / "latest") == a.resolve()
    register(b)  # swapped atomically over the old pointer
    assert resolve(tmp_path / "latest") == b.resolve()
    assert run_name(tmp_path / "latest") == "run-b"


def test_missing_model_gives_a_helpful_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gdelt-forecast train"):
        resolve(tmp_path / "latest")
    with pytest.raises(FileNotFoundError):
        register(tmp_path / "nope")
