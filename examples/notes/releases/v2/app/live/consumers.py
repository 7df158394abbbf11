import asyncio
import json

from channels.generic.http import AsyncHttpConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from notes import feed as sse


class FeedConsumer(AsyncHttpConsumer):
    """GET /v1/feed/?events=N&every_ms=M: the same stream as v1's gunicorn view, without
    holding a thread per client."""

    async def handle(self, body):
        if self.scope["method"] not in ("GET", "HEAD"):
            await self.send_response(405, b"", headers=[(b"Allow", b"GET, HEAD")])
            return
        events, every_ms = sse.parse_params(self.scope.get("query_string", b"").decode("latin-1"))
        headers = [(b"Content-Type", sse.CONTENT_TYPE.encode())]
        headers += [(k.encode(), v.encode()) for k, v in sse.HEADERS.items()]
        await self.send_headers(status=200, headers=headers)
        for seq in range(1, events + 1):
            await self.send_body(sse.event(seq), more_body=True)
            if seq < events:
                await asyncio.sleep(every_ms / 1000)
        await self.send_body(sse.done(events), more_body=False)


class EchoConsumer(AsyncWebsocketConsumer):
    """/live/echo/: ``ping`` -> ``pong``; a JSON value -> {"echo": value, "user": username}.

    Anonymous connections are refused (HTTP 403 on the handshake). Every connection joins the
    Redis channel-layer group ``live`` (so a Redis outage fails the handshake)."""

    group = "live"

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data is None:
            await self.close(code=1003)  # binary frames are not supported
            return
        if text_data.strip() == "ping":
            await self.send(text_data="pong")
            return
        try:
            value = json.loads(text_data)
        except ValueError:
            await self.send(text_data=json.dumps({"error": "send ping or a JSON value"}))
            return
        await self.send(
            text_data=json.dumps({"echo": value, "user": self.scope["user"].get_username()})
        )
