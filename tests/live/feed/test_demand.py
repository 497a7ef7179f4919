"""Demand: priority order, per-connection cap and slices, grace period, stale viewers."""

from __future__ import annotations

import pytest

from apps.live.feed.demand import (
    RECENT_HASH,
    Demand,
    ordered_codes,
    plan,
    read_demand,
    stocks_per_connection,
    viewer_counts,
)
from apps.live.realtime import keys

NOW = 1_800_000_000.0


def test_41_registrations_carry_20_stocks() -> None:
    assert stocks_per_connection(41) == 20
    assert stocks_per_connection(40) == 20
    assert stocks_per_connection(3) == 1
    with pytest.raises(ValueError):
        stocks_per_connection(1)


def test_priority_orders_then_viewers_then_grace_then_watchlist() -> None:
    demand = Demand(
        orders=frozenset({"000660", "005930"}),
        viewers={"035420": 1, "051910": 3, "005930": 2},
        recent={"068270": NOW - 10, "000270": NOW - 5, "207940": NOW - 31},
        watchlist=("005930", "373220", "035420", "012330"),
    )
    assert ordered_codes(demand, now=NOW, grace=30) == [
        "000660",  # orders, by code
        "005930",
        "051910",  # viewers, most watched first
        "035420",
        "000270",  # in grace, most recently wanted first
        "068270",
        "373220",  # watchlist, in rank order, duplicates skipped
        "012330",
    ]  # 207940 left the grace period 1 s ago


def test_cap_and_slices_per_connection() -> None:
    watchlist = tuple(f"{i:06d}" for i in range(1, 51))
    demand = Demand(orders=frozenset({"900001"}), viewers={"900002": 1}, watchlist=watchlist)
    first = plan(demand, now=NOW, grace=30, per_connection=20)
    assert first == ["900001", "900002", *watchlist[:18]]
    second = plan(demand, now=NOW, grace=30, per_connection=20, slot=1, slots=3)
    assert second == list(watchlist[18:38])
    third = plan(demand, now=NOW, grace=30, per_connection=20, slot=2, slots=3)
    assert third == list(watchlist[38:50])
    with pytest.raises(ValueError):
        plan(demand, now=NOW, grace=30, per_connection=20, slot=3, slots=3)


def test_invalid_codes_and_members_are_ignored() -> None:
    assert viewer_counts([b"005930|a", b"005930|b", "000660|c", b"bad|x", b"005930", "삼성전자|y"]) == {
        "005930": 2,
        "000660": 1,
    }
    demand = Demand(orders=frozenset({"../etc", "005930"}), watchlist=("x",))
    assert ordered_codes(demand, now=NOW, grace=30) == ["005930"]


@pytest.mark.asyncio
async def test_read_demand_prunes_stale_viewers_and_keeps_grace_in_redis(aredis, shared_keys) -> None:
    await aredis.zadd(
        keys.VIEWERS_ZSET,
        {"005930|c1": NOW - 1, "005930|c2": NOW - 29, "000660|c3": NOW - 31, "035420|c4": NOW},
    )
    await aredis.sadd(keys.ORDERS_SET, "051910")
    await aredis.hset(RECENT_HASH, mapping={"068270": repr(NOW - 10), "207940": repr(NOW - 40)})

    demand = await read_demand(aredis, now=NOW, watchlist=["373220"], grace=30, viewer_ttl=30)

    assert demand.orders == {"051910"}
    assert dict(demand.viewers) == {"005930": 2, "035420": 1}  # 000660's viewer is 31 s old: stale
    assert await aredis.zcard(keys.VIEWERS_ZSET) == 3  # and pruned from the set
    assert plan(demand, now=NOW, grace=30, per_connection=20) == ["051910", "005930", "035420", "068270", "373220"]
    recent = {k.decode(): float(v) for k, v in (await aredis.hgetall(RECENT_HASH)).items()}
    assert recent == {"051910": NOW, "005930": NOW, "035420": NOW, "068270": NOW - 10}  # 207940 expired

    # The last viewer of 035420 leaves: it stays for the grace period, then goes.
    await aredis.zrem(keys.VIEWERS_ZSET, "035420|c4")
    later = await read_demand(aredis, now=NOW + 20, watchlist=[], grace=30, viewer_ttl=30)
    assert "035420" in plan(later, now=NOW + 20, grace=30, per_connection=20)
    gone = await read_demand(aredis, now=NOW + 31, watchlist=[], grace=30, viewer_ttl=30)
    assert "035420" not in plan(gone, now=NOW + 31, grace=30, per_connection=20)


@pytest.mark.asyncio
async def test_read_demand_reads_thousands_of_viewers_and_none(aredis, shared_keys) -> None:
    """The live members come back joined in one reply: 500 users x 10 stocks, each user on two connections,
    count 500 viewers per stock; an empty set is no viewers."""
    codes = [f"{i:06d}" for i in range(10)]
    members = {f"{code}|{user}|conn{user}-{n}": NOW for user in range(500) for n in range(2) for code in codes}
    await aredis.zadd(keys.VIEWERS_ZSET, members)
    demand = await read_demand(aredis, now=NOW, watchlist=[], grace=30, viewer_ttl=30)
    assert dict(demand.viewers) == dict.fromkeys(codes, 500)
    assert dict(demand.viewer_weights) == pytest.approx(dict.fromkeys(codes, 50.0))

    await aredis.delete(keys.VIEWERS_ZSET)
    assert dict((await read_demand(aredis, now=NOW, watchlist=[], grace=30, viewer_ttl=30)).viewers) == {}
