"""Keeps one execution-notice listener (``notices.NoticeListener``) running per active broker link, across every
Celery worker that consumes the ``default`` queue (``bootstep.py``), so notices arrive without anyone starting a
command by hand.

Each link is held by one worker at a time: a Redis lease ``hoga:brokerage:notice-lease:<link id>`` (``SET NX`` with a
TTL of ``BROKER_NOTICE_LEASE_S``, renewed every scan by its holder only). Every ``BROKER_NOTICE_SCAN_S`` seconds a
supervisor:

1. lists the active links (a link switched off, deleted or re-keyed stops its listener: the key hash is part of
   what a running listener is compared with);
2. renews the leases it holds and stops the listeners whose lease another worker now holds (this one stalled past
   the TTL) or whose link is gone;
3. takes the lease of every active link nobody holds and starts its listener;
4. logs a heartbeat line every ``BROKER_NOTICE_HEARTBEAT_S`` with what it holds.

A database or Redis error backs off (doubling from 1 s to ``RECONNECT_MAX_S``) and the listeners keep running; a
worker that dies loses its leases after the TTL and another worker takes the links over, reconciling from the
order inquiry before it subscribes (``NoticeListener``), so notices missed in between are counted once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from channels.db import database_sync_to_async as sync_to_async
from django.conf import settings

from apps.core.redis import async_redis

from .models import BrokerLink
from .notices import RECONNECT_MAX_S, NoticeListener

logger = logging.getLogger(__name__)

LEASE_KEY = "hoga:brokerage:notice-lease:{link_id}"
#: Renew only a lease this holder still owns (compare-and-expire).
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


def holder_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _active_links() -> list[BrokerLink]:
    return list(BrokerLink.objects.filter(active=True).select_related("account"))


def _fingerprint(link: BrokerLink) -> tuple:
    """What a running listener was started with: a change restarts it (new keys, another HTS ID or account)."""
    return (link.env, link.cano, link.product_code, link.hts_id, link.app_key_encrypted, link.app_secret_encrypted)


@dataclass
class _Held:
    link: BrokerLink
    listener: NoticeListener
    stop: asyncio.Event
    task: asyncio.Task


class NoticeSupervisor:
    def __init__(
        self,
        *,
        holder: str | None = None,
        listener_factory: Callable[[BrokerLink], NoticeListener] = NoticeListener,
        scan_s: float | None = None,
        lease_s: float | None = None,
    ) -> None:
        self.holder = holder or holder_name()
        self.listener_factory = listener_factory
        self.scan_s = float(scan_s if scan_s is not None else settings.BROKER_NOTICE_SCAN_S)
        self.lease_s = max(int(lease_s if lease_s is not None else settings.BROKER_NOTICE_LEASE_S), 1)
        self.held: dict[int, _Held] = {}
        self._last_heartbeat = time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        delay = 1.0
        logger.info("broker notice supervisor started", extra={"holder": self.holder, "scan_s": self.scan_s})
        try:
            while not stop.is_set():
                try:
                    await self.scan()
                    delay = 1.0
                    wait = self.scan_s
                except Exception as exc:  # the database or Redis is away: listeners keep running, retry later
                    logger.warning(
                        "broker notice supervisor scan failed; retrying",
                        extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": delay},
                    )
                    wait, delay = delay, min(delay * 2, RECONNECT_MAX_S)
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                except TimeoutError:
                    pass
        finally:
            await self.release_all()
            logger.info("broker notice supervisor stopped", extra={"holder": self.holder})

    async def scan(self) -> None:
        redis = async_redis()
        links = {link.pk: link for link in await sync_to_async(_active_links)()}
        for link_id, held in list(self.held.items()):
            link = links.get(link_id)
            key = LEASE_KEY.format(link_id=link_id)
            renewed = await redis.eval(_RENEW, 1, key, self.holder, self.lease_s)
            if link is None or not renewed or _fingerprint(link) != _fingerprint(held.link) or held.task.done():
                reason = (
                    "link removed or switched off"
                    if link is None
                    else "lease taken by another worker"
                    if not renewed
                    else "link changed"
                    if _fingerprint(link) != _fingerprint(held.link)
                    else "listener ended"
                )
                await self._stop_one(link_id, reason, release=bool(renewed))
        for link_id, link in links.items():
            if link_id in self.held:
                continue
            key = LEASE_KEY.format(link_id=link_id)
            if not await redis.set(key, self.holder, nx=True, ex=self.lease_s):
                continue
            listener = self.listener_factory(link)
            stop = asyncio.Event()
            task = asyncio.create_task(listener.run(stop), name=f"broker-notices-{link_id}")
            self.held[link_id] = _Held(link=link, listener=listener, stop=stop, task=task)
            logger.info(
                "broker notice listener started",
                extra={"link": link_id, "account": link.account_id, "env": link.env, "holder": self.holder},
            )
        now = time.monotonic()
        if now - self._last_heartbeat >= settings.BROKER_NOTICE_HEARTBEAT_S:
            self._last_heartbeat = now
            logger.info(
                "broker notice supervisor heartbeat",
                extra={
                    "holder": self.holder,
                    "links_active": len(links),
                    "links_held": sorted(self.held),
                    "applied": sum(h.listener.stats["applied"] for h in self.held.values()),
                    "disconnects": sum(h.listener.stats["disconnected"] for h in self.held.values()),
                },
            )

    async def _stop_one(self, link_id: int, reason: str, *, release: bool) -> None:
        held = self.held.pop(link_id)
        held.stop.set()
        try:
            await asyncio.wait_for(held.task, 10.0)
        except TimeoutError:
            held.task.cancel()
        except Exception:
            logger.exception("broker notice listener ended with an error", extra={"link": link_id})
        if release:
            await async_redis().eval(_RELEASE, 1, LEASE_KEY.format(link_id=link_id), self.holder)
        logger.info("broker notice listener stopped", extra={"link": link_id, "reason": reason})

    async def release_all(self) -> None:
        for link_id in list(self.held):
            try:
                await self._stop_one(link_id, "supervisor stopping", release=True)
            except Exception as exc:  # Redis away at shutdown: the lease expires on its own
                logger.warning("broker notice lease not released", extra={"link": link_id, "error": str(exc)})
