#!/usr/bin/env python
"""Vendored browser libraries: ``npm ci`` from package-lock.json, then copy the standalone bundles the pages
load to static/vendor/ (git-ignored, like node_modules/). Hoga serves them itself and never uses a CDN.

Idempotent and fast: a stamp in static/vendor/ records the lockfile's sha256; when it matches and every
bundle is present nothing runs. A file lock serialises concurrent runs (``make test`` in two shells).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCKFILE = ROOT / "package-lock.json"
VENDOR = ROOT / "static" / "vendor"
STAMP = VENDOR / ".lock-sha256"
# node_modules path -> file name under static/vendor/
LWC = "lightweight-charts.standalone.production.js"
BUNDLES = {
    f"lightweight-charts/dist/{LWC}": LWC,
    "htmx.org/dist/htmx.min.js": "htmx.min.js",
    "axe-core/axe.min.js": "axe.min.js",
}


def say(message: str) -> None:
    print(f"[hoga] {message}", flush=True)


def lock_digest() -> str:
    return hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()


def up_to_date(digest: str) -> bool:
    return (
        STAMP.is_file()
        and STAMP.read_text().strip() == digest
        and all((VENDOR / name).is_file() for name in BUNDLES.values())
    )


def build() -> int:
    if not LOCKFILE.is_file():
        raise SystemExit(f"[hoga] {LOCKFILE.name} is missing: the browser libraries cannot be installed")
    VENDOR.mkdir(parents=True, exist_ok=True)
    with (VENDOR / ".build.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # a second run waits, then finds the stamp current
        digest = lock_digest()
        if up_to_date(digest):
            return 0
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit(
                "[hoga] npm not found. The pages' browser libraries (htmx, lightweight-charts, axe-core) are "
                "installed from package-lock.json with npm: install Node.js 18 or newer with npm "
                "(Debian/Ubuntu: apt-get install nodejs npm; or https://nodejs.org/), then run `make static`."
            )
        say("installing the browser libraries (npm ci)")
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT, env={**os.environ, "CI": "true"}
        )
        if result.returncode != 0:
            raise SystemExit(f"[hoga] npm ci failed (exit {result.returncode}); see the output above")
        for source, name in BUNDLES.items():
            path = ROOT / "node_modules" / source
            if not path.is_file():
                raise SystemExit(f"[hoga] {source} is missing after npm ci: check package.json's versions")
            tmp = VENDOR / f".{name}.tmp"
            shutil.copyfile(path, tmp)
            tmp.replace(VENDOR / name)  # atomic: a running server never serves a half-written bundle
        STAMP.write_text(digest + "\n")
        say(f"browser libraries copied to {VENDOR.relative_to(ROOT)}/: {', '.join(BUNDLES.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(build())
