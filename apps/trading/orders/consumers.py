"""Live order updates for their owner: ``/ws/orders/`` joins the groups of the user's paper accounts and
forwards every ``order.update`` (a full order snapshot, sent after commit) as ``{"type": "order", ...}``.

Clients re-fetch the order list over REST after a reconnect: the channel layer is not a durable queue.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

from apps.core.consumers import GroupsConsumer
from apps.core.groups import account_orders_group
from apps.core.typing import AnyUser, JSONDict
from apps.trading.accounts.selectors import paper_account_list_for_user


def _account_ids(user: AnyUser) -> list[int]:
    return list(paper_account_list_for_user(user=user).values_list("pk", flat=True))


class OrdersConsumer(GroupsConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.join([account_orders_group(pk) for pk in await database_sync_to_async(_account_ids)(user)])
        await self.accept()
        await self.send_json({"type": "subscribed", "accounts": [int(g.split(".")[1]) for g in self.groups_joined]})

    async def order_update(self, event: JSONDict) -> None:
        await self.send_json({"type": "order", "order": event["order"]})
