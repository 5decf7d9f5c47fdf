"""Errors a person can act on.

A ``UserError`` is a mistake in what the user gave the tool (a flag, a config key,
a file, a lake that lacks a stage's inputs): its message is one line that names the
file, key or flag and says what to do. The CLI prints it without a traceback and
exits 2; everything else is a bug or an outage and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A one-line, actionable error caused by the user's input (exit code 2 on the CLI)."""


class ConfigError(UserError):
    """A missing or malformed config file, an unknown key, a wrong type or an out-of-range value."""
