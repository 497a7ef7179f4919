import json

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class PingJsonConsumer(AsyncJsonWebsocketConsumer):
    """A JSON WebSocket whose clients only send ``ping`` (answered with ``pong``); anything else, including
    text that is not JSON, gets a ``bad_message`` error and the connection stays open."""

    bad_message_text = 'only {"type": "ping"} is accepted'

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "id": content.get("id")})
        else:
            await self.send_json({"type": "error", "code": "bad_message", "message": self.bad_message_text})

    async def decode_json(self, text_data):
        try:
            return json.loads(text_data)
        except ValueError:
            return None


class GroupsConsumer(PingJsonConsumer):
    """A push-only WebSocket: ``join`` its groups at connect, leaves them on disconnect."""

    groups_joined: list[str]

    async def join(self, groups: list[str]) -> None:
        self.groups_joined = groups
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)


class PingConsumer(PingJsonConsumer):
    """Liveness of the WebSocket path (browser -> Daphne -> Channels): answers ``ping`` with ``pong``."""

    bad_message_text = 'expected {"type": "ping"}'

    async def connect(self):
        if not self.scope["user"].is_authenticated:
            await self.close(code=4401)
            return
        await self.accept()
