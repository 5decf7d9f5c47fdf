"""The ``gdelt-forecast`` command line (typer): one command per stage.

Global options (before the command): ``--config configs/x.yaml`` and
``--lake PATH``. Command flags override the YAML, which overrides defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.config import Config, load_config
from pipeline.lake import Lake
from pipeline.progress import console

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])


class State:
    config_path: Optional[Path] = None
    lake_root: Optional[Path] = None


state = State()


@app.callback()
def _global(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (see configs/).")] = None,
    lake: Annotated[Optional[Path], typer.Option("--lake", help="Lake root (default data/lake).")] = None,
) -> None:
    state.config_path = config
    state.lake_root = lake


def get_config(**overrides: object) -> Config:
    """Resolved config: defaults ← ``--config`` YAML ← global ``--lake`` ← command flags."""
    ov: dict[str, object] = {"lake.root": state.lake_root}
    ov.update(overrides)
    return load_config(state.config_path, ov)


def get_lake(cfg: Config) -> Lake:
    return Lake(cfg.lake.root, cfg.lake.compression, cfg.lake.compression_level)


# ============================================================ ingest / reduce / inspect


# ============================================================ descriptors / dataset


# ============================================================ train


# ============================================================ forecast / evaluate / report


# ============================================================ flows: daily / backfill / serve / demo


def main() -> None:
    app()


if __name__ == "__main__":
    main()
