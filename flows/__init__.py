"""Prefect flows wrapping the stages in ``pipeline/`` (retries, caching, schedules only)."""
