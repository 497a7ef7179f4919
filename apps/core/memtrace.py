"""Memory growth diagnosis for long-running processes (web, feed and Celery workers): with
``HOGA_TRACEMALLOC_DIR`` set, tracemalloc starts in the process and a daemon thread writes, every
``HOGA_TRACEMALLOC_EVERY`` seconds, the 25 allocation sites that grew most since a baseline to
``<dir>/<role>-<pid>.txt``. Tracing starts ``HOGA_TRACEMALLOC_AFTER`` seconds after start (after the warm-up:
it slows every allocation), so it sees what is allocated, and kept, from then on. Costs CPU and
memory (10 frames per allocation): for soak runs, not for production.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)


def start_from_environment() -> bool:
    directory = os.environ.get("HOGA_TRACEMALLOC_DIR")
    if not directory:
        return False
    import tracemalloc

    after = float(os.environ.get("HOGA_TRACEMALLOC_AFTER", "600"))
    every = float(os.environ.get("HOGA_TRACEMALLOC_EVERY", "300"))
    path = Path(directory) / f"{os.environ.get('HOGA_PROCESS_ROLE', 'process')}-{os.getpid()}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)

    def watch() -> None:
        time.sleep(after)  # tracing slows every allocation: it starts after the warm-up, then takes the baseline
        tracemalloc.start(10)
        time.sleep(min(every, 60))
        baseline = tracemalloc.take_snapshot()
        started = time.monotonic()
        while True:
            time.sleep(every)
            snapshot = tracemalloc.take_snapshot()
            stats = snapshot.compare_to(baseline, "traceback")
            grown = sum(s.size_diff for s in stats)
            with path.open("a") as out:
                out.write(
                    f"=== {time.monotonic() - started:.0f} s after the baseline: {grown / 2**20:+.2f} MiB traced\n"
                )
                for stat in stats[:25]:
                    out.write(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks\n")
                    for line in stat.traceback.format()[-6:]:
                        out.write(f"      {line}\n")
            logger.info("tracemalloc comparison written", extra={"path": str(path), "grown_mib": grown / 2**20})

    threading.Thread(target=watch, name="tracemalloc-watch", daemon=True).start()
    logger.info("tracemalloc on", extra={"path": str(path), "baseline_after_s": after})
    return True
