"""Optional recorder of the live feed (FEED_RECORD_DIR; empty = off) for later replay and debugging.

Files: ``<dir>/<KST date>/<tr_id>.log``, one line per event: ``<received_at ISO>\\t<snapshot JSON>`` where
the snapshot is the same full quote/book snapshot the browsers receive (``realtime.snapshots``).

The broker session hands the holder parsed events, not the raw ``0|H0STCNT0|...`` text, so the recorder
stores the parsed snapshot (every field the parser keeps). Recording the raw frame text needs a frame hook
in ``brokers/kis/ws.py``; see the feed README.

Invariants: :meth:`FrameRecorder.record` runs on the event loop, is O(1) and never does I/O; the buffer is
bounded (``max_buffer`` lines, the oldest dropped and counted); :meth:`flush` (called from a thread) appends
the buffer to the files and never raises (a failing disk is logged, the lines are dropped).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from pathlib import Path

from apps.brokers.base import KST, OrderBook, Tick
from apps.brokers.kis.realtime import TR_BOOK, TR_TRADES, RealtimeEvent

from ..realtime.snapshots import book_snapshot, quote_snapshot

logger = logging.getLogger(__name__)


class FrameRecorder:
    def __init__(self, directory: str | Path, *, max_buffer: int = 100_000) -> None:
        self.directory = Path(directory)
        self._buffer: deque[tuple[str, str, str]] = deque()
        self._max = max_buffer
        self._lock = threading.Lock()
        self.written = 0
        self.dropped = 0

    def record(self, event: RealtimeEvent) -> None:
        """Buffer one event (event loop; no I/O)."""
        if isinstance(event, Tick):
            tr_id, snapshot = TR_TRADES, quote_snapshot(event)
        elif isinstance(event, OrderBook):
            tr_id, snapshot = TR_BOOK, book_snapshot(event)
        else:
            return
        received = event.received_at.astimezone(KST)
        line = f"{received.isoformat(timespec='milliseconds')}\t{json.dumps(snapshot, ensure_ascii=False)}\n"
        with self._lock:
            if len(self._buffer) >= self._max:
                self._buffer.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10_000 == 0:
                    logger.warning("feed recorder buffer full; oldest lines dropped", extra={"dropped": self.dropped})
            self._buffer.append((received.date().isoformat(), tr_id, line))

    def flush(self) -> int:
        """Append buffered lines to their daily files (blocking: call from a thread). Returns lines written."""
        with self._lock:
            lines, self._buffer = self._buffer, deque()
        if not lines:
            return 0
        grouped: dict[tuple[str, str], list[str]] = {}
        for day, tr_id, line in lines:
            grouped.setdefault((day, tr_id), []).append(line)
        written = 0
        for (day, tr_id), chunk in grouped.items():
            path = self.directory / day / f"{tr_id}.log"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as fh:
                    fh.writelines(chunk)
                written += len(chunk)
            except OSError as exc:
                self.dropped += len(chunk)
                logger.error("feed recorder cannot write; lines dropped", extra={"path": str(path), "error": str(exc)})
        self.written += written
        return written

    def close(self) -> None:
        self.flush()
