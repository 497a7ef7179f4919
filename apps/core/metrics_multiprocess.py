"""prometheus-client's multiprocess mode across Hoga's process roles.

bin/hoga-process gives every role its own PROMETHEUS_MULTIPROC_DIR (``var/prometheus/<role>/``), emptied
when the role starts. A process writes its samples into memory-mapped files there; ``/metrics`` (served by
any web worker) merges the files of every role's directory, so one scrape sees the web workers, the feed
worker, the fill engines and beat together. Without PROMETHEUS_MULTIPROC_DIR (tests, manage.py shells)
metrics live in the process's own registry.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path


def multiprocess_dir() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def mark_worker_dead(pid: int) -> None:
    """gunicorn's child_exit: drop the live gauges of a worker that exited (its counters stay summed)."""
    if multiprocess_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


class AllRolesCollector:
    """Merges the sample files of every role directory beside this process's own (``var/prometheus/*/``)."""

    def __init__(self, root: Path):
        self.root = root

    def collect(self):
        from prometheus_client.multiprocess import MultiProcessCollector

        files = sorted(glob.glob(str(self.root / "*" / "*.db")))
        return MultiProcessCollector.merge(files, accumulate=True)
