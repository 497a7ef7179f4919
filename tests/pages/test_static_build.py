"""The vendored-static build step (scripts/build_static.py): a clear message when npm is missing, and the
bundles the templates load are the ones it copies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_missing_npm_fails_with_what_to_install(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "build_static.py", tmp_path / "scripts" / "build_static.py")
    shutil.copy(ROOT / "package-lock.json", tmp_path / "package-lock.json")

    result = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "build_static.py")],
        env={"PATH": str(tmp_path)},  # no npm on it
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 1
    assert "npm not found" in result.stderr and "apt-get install nodejs npm" in result.stderr
    assert not (tmp_path / "static" / "vendor" / "htmx.min.js").exists()


def test_templates_load_exactly_the_bundles_the_build_copies():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_static
    finally:
        sys.path.pop(0)
    referenced = set()
    for template in (ROOT / "templates").rglob("*.html"):
        referenced.update(re.findall(r"\{% static 'vendor/([^']+)' %\}", template.read_text()))

    assert referenced == {"htmx.min.js", "lightweight-charts.standalone.production.js"}
    assert referenced <= set(build_static.BUNDLES.values())
    assert "axe.min.js" in build_static.BUNDLES.values()  # for the browser tests
