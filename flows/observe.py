"""What a Prefect run shows: the library's log records in the task logs, a summary artifact, a report link.

- ``forward_pipeline_logs()`` attaches Prefect's API log handler to the ``pipeline`` logger, so every
  ``pipeline.*`` record emitted inside a task or flow run appears in that run's logs (the UI,
  ``prefect flow-run logs``). Outside a run (the plain CLI, tests) the records are left to the
  usual handlers; nothing warns.
- ``publish_summary`` writes one Markdown artifact per run: a table per day (rows in, quarantined,
  forecasts written) and the skill table of the evaluation (Brier, BSS vs climatology).
- ``publish_report_link`` adds a link artifact to the HTML report of a daily run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect.logging.handlers import APILogHandler

PIPELINE_LOGGER = "pipeline"


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, silent outside a flow or task run (no "not in a run context" warnings)."""

    def emit(self, record: logging.LogRecord) -> None:
        from prefect.context import FlowRunContext, TaskRunContext

        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def forward_pipeline_logs(level: int = logging.INFO) -> None:
    """Send ``pipeline.*`` records of ``level`` and above to the current Prefect run's logs (idempotent)."""
    logger = logging.getLogger(PIPELINE_LOGGER)
    if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
        logger.addHandler(RunLogHandler(level=level))
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v).replace("|", "\\|")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """``rows`` (dicts with the same keys) as a GitHub Markdown table; ``_none_`` when empty."""
    if not rows:
        return "_none_\n"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def summary_markdown(title: str, days: list[dict[str, Any]], skill: list[dict[str, Any]] | None = None,
                     notes: list[str] | None = None) -> str:
    """The run summary: the per-day table, then the skill table and notes."""
    md = f"# {title}\n\n## Days\n\n{markdown_table(days)}"
    if skill is not None:
        md += f"\n## Skill\n\n{markdown_table(skill)}"
    for note in notes or []:
        md += f"\n> {note}\n"
    return md


def publish_summary(key: str, title: str, days: list[dict[str, Any]], skill: list[dict[str, Any]] | None = None,
                    notes: list[str] | None = None) -> str:
    """Create the run's Markdown artifact (``key``: lowercase letters, digits, dashes); returns the Markdown."""
    from prefect.artifacts import create_markdown_artifact

    md = summary_markdown(title, days, skill, notes)
    create_markdown_artifact(markdown=md, key=key, description=title)
    return md


def publish_report_link(path: str | Path, key: str = "report") -> str:
    """A link artifact to the HTML report at ``path`` (a ``file://`` URL); returns the URL."""
    from prefect.artifacts import create_link_artifact

    url = Path(path).resolve().as_uri()
    create_link_artifact(link=url, link_text=Path(path).parent.name + "/" + Path(path).name, key=key,
                         description="HTML report: top events per country, forecast vs outcome, skill")
    return url
