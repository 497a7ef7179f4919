"""Argument parsing shared by management commands."""

from datetime import date

from django.core.management.base import CommandError


def parse_date(text: str) -> date:
    """YYYY-MM-DD, or a CommandError that names the bad value."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {text!r}") from exc
