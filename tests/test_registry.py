from pathlib import Path

import pytest

from pipeline.core.registry import register, resolve, run_name


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


def test_model_state_changes_when_a_model_file_is_added_or_rewritten(tmp_path: Path) -> None:
    import os

    from pipeline.core.registry import model_fingerprint, model_mtime

    run = tmp_path / "run"
    run.mkdir()
    assert model_fingerprint(run) == "" and model_mtime(run) is None
    (run / "model.safetensors").write_bytes(b"weights")
    (run / "checkpoint").mkdir()  # training state is not part of the model
    before = model_fingerprint(run)
    (run / "checkpoint" / "optimizer.pt").write_bytes(b"state")
    assert model_fingerprint(run) == before
    (run / "calibration.json").write_text("{}")  # a calibration added later changes the model
    added = model_fingerprint(run)
    assert added != before
    os.utime(run / "calibration.json", ns=(1, 2 * 10**18))  # rewritten in place, the newest file
    assert model_fingerprint(run) != added and model_mtime(run) == 2e9
