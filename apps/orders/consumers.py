"""Live order updates for their owner: ``/ws/orders/`` joins the groups of the user's paper accounts and
forwards every ``order.update`` (a full order snapshot, sent after commit) as ``{"type": "order", ...}``.

Clients re-fetch the order list over REST after a reconnect: the channel layer is not a durable queue.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .realtime import account_orders_group


@database_sync_to_async
def _account_ids(user) -> list[int]:
    from apps.accounts.selectors import paper_account_list_for_user

    return list(paper_account_list_for_user(user=user).values_list("pk", flat=True))


class OrdersConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.groups_joined = [account_orders_group(pk) for pk in await _account_ids(user)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "subscribed", "accounts": [int(g.split(".")[1]) for g in self.groups_joined]})

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "id": content.get("id")})
        else:
            await self.send_json(
                {"type": "error", "code": "bad_message", "message": 'only {"type": "ping"} is accepted'}
            )

    async def decode_json(self, text_data):
        import json

        try:
            return json.loads(text_data)
        except ValueError:
            return None

    async def order_update(self, event):
        await self.send_json({"type": "order", "order": event["order"]})
