import json

from channels.generic.websocket import AsyncWebsocketConsumer

from arena import metrics
from arena.release import served_by


class EchoConsumer(AsyncWebsocketConsumer):
    """``/ws/chat/<room>/``: echoes text frames for logged-in sessions only."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            metrics.WEBSOCKET_EVENTS.labels(event="reject").inc()
            metrics.AUTH_FAILURES.inc()
            await self.close()  # before accept(): the handshake is refused with 403
            return
        metrics.WEBSOCKET_EVENTS.labels(event="accept").inc()
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is not None:
            reply = {"echo": text_data, "served_by": served_by(asgi=True)}
            await self.send(text_data=json.dumps(reply))

    async def disconnect(self, code):
        if self.scope.get("user") and self.scope["user"].is_authenticated:
            metrics.WEBSOCKET_EVENTS.labels(event="disconnect").inc()
