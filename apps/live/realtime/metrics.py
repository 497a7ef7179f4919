"""Prometheus metrics of the real-time path (feed publisher and the web processes' fan-out).

Defined with prometheus-client at import. With ``PROMETHEUS_MULTIPROC_DIR`` set, every process writes its
values to files in that directory and ``/metrics`` aggregates them (the gauge sums the live processes'
values: ``livesum``); without it they are plain in-process values that nothing reads, which costs a few
hundred nanoseconds per update.
"""

from __future__ import annotations

import bisect
import time

from prometheus_client import Counter, Gauge, Histogram

#: Ticks and books handed to the channel layer by the feed's publisher.
TICKS_PUBLISHED = Counter(
    "hoga_realtime_ticks_published", "Quote ticks and order-book updates published by the feed", ["kind"]
)
#: Group messages (one per bucket per batch) sent by the feed's publisher.
BATCHES_PUBLISHED = Counter("hoga_realtime_batches_published", "Bucket group messages sent by the feed publisher")
#: Seconds from a batch's publish time (its ``at``) to the frame that carries it leaving the web process.
PUBLISH_TO_FRAME = Histogram(
    "hoga_realtime_publish_to_frame_seconds",
    "Seconds from the feed's publish of a batch to the browser frame carrying it",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
)
#: Browser connections of /ws/market/ (summed over the live web processes).
CONNECTED_CLIENTS = Gauge(
    "hoga_realtime_connected_clients", "Open /ws/market/ connections", multiprocess_mode="livesum"
)
#: Frames written to browsers (batch frames of quotes and books).
FRAMES_SENT = Counter("hoga_realtime_frames_sent", "Batch frames sent to /ws/market/ connections")
#: Snapshots (quotes + books) per batch frame.
SNAPSHOTS_PER_FRAME = Histogram(
    "hoga_realtime_snapshots_per_frame",
    "Quote and book snapshots carried by one batch frame",
    buckets=(1, 2, 3, 5, 8, 13, 21, 34, 55, 100),
)
#: Snapshots replaced by a newer one of the same stock before they were sent (a slow or capped browser).
CONFLATED = Counter("hoga_realtime_conflated_snapshots", "Snapshots superseded before being sent to a browser")


class FrameTally:
    """Per-frame figures of this process, accumulated in plain attributes and added to the metrics above by
    :meth:`flush` (the fan-out hub calls it every second and when it stops).

    In multiprocess mode every metric update is a locked write to a memory-mapped file: done per frame for
    hundreds of browsers it cost a quarter of a web process's CPU (bench/fanout.py).
    """

    def __init__(self) -> None:
        self._latency_bounds = PUBLISH_TO_FRAME._upper_bounds
        self._size_bounds = SNAPSHOTS_PER_FRAME._upper_bounds
        self._reset()

    def _reset(self) -> None:
        self.frames = 0
        self.conflated = 0
        self.latency_counts = [0] * len(self._latency_bounds)
        self.latency_sum = 0.0
        self.size_counts = [0] * len(self._size_bounds)
        self.size_sum = 0

    def frame(self, snapshots: int, published_at: float | None) -> None:
        """A frame of ``snapshots`` sent now; ``published_at``: the publish time (epoch s) of its oldest batch."""
        self.frames += 1
        self.size_sum += snapshots
        self.size_counts[bisect.bisect_left(self._size_bounds, snapshots)] += 1
        if published_at is not None:
            latency = max(0.0, time.time() - published_at)
            self.latency_sum += latency
            self.latency_counts[bisect.bisect_left(self._latency_bounds, latency)] += 1

    def flush(self) -> None:
        if self.frames:
            FRAMES_SENT.inc(self.frames)
            _add_to_histogram(SNAPSHOTS_PER_FRAME, self.size_counts, self.size_sum)
            _add_to_histogram(PUBLISH_TO_FRAME, self.latency_counts, self.latency_sum)
        if self.conflated:
            CONFLATED.inc(self.conflated)
        self._reset()


def _add_to_histogram(histogram: Histogram, counts: list[int], total: float) -> None:
    """What ``observe`` does once per value, for many values at once (prometheus-client 0.26's fields)."""
    if not any(counts):
        return
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


#: This process's tally (one event loop serves the browsers of a web process).
TALLY = FrameTally()
