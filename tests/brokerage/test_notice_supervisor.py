"""The notice supervisor against the sandbox's KIS paper server: one listener per active link however many
workers supervise, the link moving to another worker when its holder stops, and a switched-off link's listener
stopped. Two supervisors (two "workers") share one event loop on a thread of their own."""

from __future__ import annotations

import asyncio
import threading

import pytest

from apps.brokerage.models import BrokerLink
from apps.brokerage.notices import NoticeListener
from apps.brokerage.supervisor import LEASE_KEY, NoticeSupervisor

from .conftest import REPLAY_DAY
from .test_broker_orders import (  # noqa: F401 - fixtures
    _close_worker_thread_connections,
    _link,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class Workers:
    """Supervisors "a" and "b" on one loop; ``stop(name)`` stops one as a worker's warm shutdown does."""

    def __init__(self, factory) -> None:  # noqa: F811 - the fixture's value
        def listener(link: BrokerLink) -> NoticeListener:
            return NoticeListener(link, client_factory=factory, day=REPLAY_DAY)

        self.sup = {name: NoticeSupervisor(holder=name, listener_factory=listener, scan_s=0.2, lease_s=2)
                    for name in ("a", "b")}  # fmt: skip
        self.loop = asyncio.new_event_loop()
        self.stops: dict[str, asyncio.Event] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        from channels.db import database_sync_to_async
        from django.db import connections

        self.stops = {name: asyncio.Event() for name in self.sup}
        try:
            await asyncio.gather(*(s.run(self.stops[n]) for n, s in self.sup.items()))
        finally:
            await database_sync_to_async(connections.close_all)()

    def start(self) -> Workers:
        self.thread.start()
        wait_for(lambda: len(self.stops) == 2)
        return self

    def stop(self, name: str) -> None:
        self.loop.call_soon_threadsafe(self.stops[name].set)

    def holders(self, link_id: int) -> list[str]:
        return [n for n, s in self.sup.items() if link_id in s.held]

    def close(self) -> None:
        for name in self.stops:
            self.stop(name)
        self.thread.join(20)


def test_one_listener_per_link_moves_to_another_worker_and_stops_with_its_link(
    sandbox,  # noqa: F811
    factory,  # noqa: F811
    user,
    redis_client,
):
    link = _link(user, sandbox)
    workers = Workers(factory).start()
    try:
        wait_for(lambda: len(workers.holders(link.pk)) == 1)
        first = workers.holders(link.pk)[0]
        listener = workers.sup[first].held[link.pk].listener
        wait_for(lambda: listener.stats["subscribed"] >= 1)
        assert redis_client.get(LEASE_KEY.format(link_id=link.pk)).decode() == first
        # Several scans later there is still exactly one listener: the other worker never takes a held lease.
        for _ in range(3):
            wait_for(lambda: listener.stats["reconciled"] >= 1)
        assert workers.holders(link.pk) == [first]

        # Its holder stops (a worker's warm shutdown): the lease is released and the other worker takes over,
        # reconciling before it subscribes.
        workers.stop(first)
        other = "b" if first == "a" else "a"
        wait_for(lambda: workers.holders(link.pk) == [other])
        moved = workers.sup[other].held[link.pk].listener
        wait_for(lambda: moved.stats["subscribed"] >= 1)
        assert moved.stats["reconciled"] >= 1 and redis_client.get(LEASE_KEY.format(link_id=link.pk)).decode() == other

        # Switching the link off stops its listener and frees the lease.
        BrokerLink.objects.filter(pk=link.pk).update(active=False)
        wait_for(lambda: workers.holders(link.pk) == [])
        wait_for(lambda: redis_client.get(LEASE_KEY.format(link_id=link.pk)) is None)
    finally:
        workers.close()
    assert not workers.thread.is_alive()
