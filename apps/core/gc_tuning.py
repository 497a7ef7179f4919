"""The cyclic garbage collector's settings in the long-running processes (web workers, Celery workers).

Profiled with py-spy in a web worker during ``bench/orders.py``, 16 % of the worker's CPU samples were the
collector (``gc_collect_main``), each run holding the GIL for every thread of the process. An order request
creates thousands of container objects (the request, DRF's fields, querysets, the response) that reference
counting frees when the request ends, but CPython counts every one of them towards its generation-0 threshold
(700 by default), so the collector ran several times per request; and each full collection walked the ~235,000
objects that Django, DRF and the apps hold for the life of the process.

Once a process has started (the apps, URL patterns and serializers loaded), :func:`tune_after_startup` collects
once, moves everything the process then holds to the permanent generation (``gc.freeze()``: never scanned
again; forked children share those pages untouched) and raises the generation-0 threshold to
``GC_GEN0_THRESHOLD`` (default 50,000). Cyclic garbage is still collected, only after more allocations: what a
process leaks through reference cycles between two collections is bounded by that threshold. With it, the
collector's share of the web worker's samples in the same benchmark was 0 of 464 and the worker's CPU per order
fell by a fifth (README, *Web tier*). ``GC_GEN0_THRESHOLD=0`` keeps CPython's defaults and freezes nothing."""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def tune_after_startup(threshold: int | None = None) -> bool:
    """Freezes what the process holds now and raises the generation-0 threshold; ``threshold``: the setting
    ``GC_GEN0_THRESHOLD`` by default. False (nothing changed) when it is 0."""
    if threshold is None:
        from django.conf import settings

        threshold = int(settings.GC_GEN0_THRESHOLD)
    if threshold <= 0:
        return False
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(threshold, gen1, gen2)
    logger.info("garbage collector: %d objects frozen, generation-0 threshold %d", gc.get_freeze_count(), threshold)
    return True
