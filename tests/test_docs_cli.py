"""Every ``gdelt-forecast`` command in the README and docs/ parses against the real CLI (fast; every run).

The opt-in ``tests/test_docs_commands.py`` (``pytest -m docs``, ~10 min) *runs* the README's and
docs/flows.md's blocks; this test only parses every documented command line with the CLI's own
parser (click, under typer): an unknown command, a renamed or removed option, a missing required
option or a bad value fails here, in seconds, on every CI run. Placeholders such as ``<run>`` or
``D`` are given plausible values first.
"""

from __future__ import annotations

import re
import shlex

import pytest
import typer
from typer.core import TyperGroup

try:  # typer ≥ 0.29 carries its own copy of click: its commands raise that copy's errors
    from typer._click.core import Exit, UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import Exit, UsageError

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PLACEHOLDERS = {r"<[^>]*date[^>]*>|\bD\b|YYYY-MM-DD": "2025-06-05", r"<[^>]+>": "x", r"\.\.\.|…": ""}


def documented_commands() -> list[tuple[str, int, str]]:
    """(file, line number, command line) of every ``gdelt-forecast …`` line in a fenced code block."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for block in re.finditer(r"```(?:bash|sh|console)?\n(.*?)```", text, flags=re.S):
            start = text[:block.start()].count("\n") + 2
            lines = block.group(1).replace("\\\n", " ").splitlines()
            for i, line in enumerate(lines):
                line = re.split(r"\s{2,}#|\s#\s", line)[0].strip().removeprefix("$ ")
                line = re.sub(r"\s\[[^\]]*\]", "", line)  # optional parts
                if re.match(r"(\S+=\S+\s+)*gdelt-forecast(\s|$)", line):
                    out.append((path.relative_to(REPO).as_posix(), start + i, line))
    return out


def parse(line: str) -> None:
    """Parse ``line`` as the CLI would, without running it: raises ``UsageError`` when it is wrong."""
    from gdelt_forecast.cli import app

    for pattern, value in PLACEHOLDERS.items():
        line = re.sub(pattern, value, line)
    words = shlex.split(line)
    words = words[words.index("gdelt-forecast") + 1:]
    words = [w for w in words if w not in ("|", "&&")]
    root = typer.main.get_command(app)
    ctx = root.make_context("gdelt-forecast", list(words), resilient_parsing=False)
    rest = _rest(ctx)
    if not rest:
        return
    name, command, args = root.resolve_command(ctx, rest)
    assert command is not None, f"unknown command {rest[0]!r}"
    sub = command.make_context(name, args, parent=ctx)
    if isinstance(command, TyperGroup) and _rest(sub):
        name2, leaf, args2 = command.resolve_command(sub, _rest(sub))
        leaf.make_context(name2, args2, parent=sub)


def _rest(ctx) -> list[str]:
    """The words a group left for its subcommand (the command name is kept in ``_protected_args``)."""
    return list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])) + list(ctx.args)


COMMANDS = documented_commands()


def test_the_docs_document_commands():
    assert len(COMMANDS) >= 30 and {f for f, _, _ in COMMANDS} >= {"README.md", "docs/flows.md"}


@pytest.mark.parametrize("where,line", [(f"{f}:{n}", c) for f, n, c in COMMANDS])
def test_documented_command_parses(where, line):
    try:
        parse(line)
    except Exit:
        pass  # --help / --version
    except UsageError as e:
        pytest.fail(f"{where}: `{line}`: {e.format_message()}")


def test_a_wrong_option_is_caught():
    with pytest.raises(UsageError):
        parse("gdelt-forecast forecast --date 2025-06-05 --no-such-option 1")
    with pytest.raises(UsageError):
        parse("gdelt-forecast no-such-command")
