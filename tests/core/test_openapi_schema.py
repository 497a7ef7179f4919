"""The OpenAPI schema builds without a warning: two serializers with one component name would silently hide one
of them from API clients (it happened once: three ``OrderInput`` classes in three apps)."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_schema_builds_without_warnings(tmp_path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "AFTER_HOURS_SINGLE" in text and "BrokerOrderInput" in text and "WatchlistsOrderInput" in text
