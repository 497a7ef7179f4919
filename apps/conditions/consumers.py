"""WebSockets of the conditions feature (session login; anonymous connections are closed with 4401).

- ``/ws/notifications/``: the user's group ``user.<id>.notifications``; every ``notification.message`` is
  forwarded as ``{"type": "notification", "notification": {...}}`` (toasts on every page).
- ``/ws/conditions/``: the groups ``conditions.<pk>`` of the user's conditions; every ``condition.event`` is
  forwarded as ``{"type": "condition.event", "condition", "event", "members"}`` (a full member snapshot).

Both are thin: no ORM on the event loop beyond one lookup of the user's condition ids at connect, and
clients re-read the page (or the REST API) after a reconnect: the channel layer is not a durable queue.
"""

from __future__ import annotations

from channels.db import database_sync_to_async

from apps.core.consumers import GroupsConsumer
from apps.core.groups import condition_group, user_notifications_group

from .selectors import condition_list_for_user


@database_sync_to_async
def _condition_ids(user) -> list[int]:

    return list(condition_list_for_user(user=user).values_list("pk", flat=True))


class NotificationsConsumer(GroupsConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        await self.join([user_notifications_group(user.pk)])
        await self.accept()

    async def notification_message(self, event):
        await self.send_json({"type": "notification", "notification": event["notification"]})


class ConditionsConsumer(GroupsConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        ids = await _condition_ids(user)
        await self.join([condition_group(pk) for pk in ids])
        await self.accept()
        await self.send_json({"type": "subscribed", "conditions": ids})

    async def condition_event(self, event):
        await self.send_json(
            {
                "type": "condition.event",
                "condition": event["condition"],
                "event": event.get("event"),
                "members": event.get("members", []),
            }
        )
