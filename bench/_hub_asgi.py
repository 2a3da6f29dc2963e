"""ASGI application of the hub bench's server process: the sandbox project's application,
plus `/bench/bare`, a bare Channels consumer that forwards group messages as they come (the
baseline the hub is measured against). Settings: the sandbox project's (Redis pub/sub when
`REDIS_URL` is set)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox_project.settings")

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402

from metacore.asgi import get_asgi_application  # noqa: E402

BARE_GROUP = "bench.bare"


class BareConsumer(AsyncWebsocketConsumer):
    """What a hand-written Channels fanout does: join one group, forward every frame."""

    async def connect(self):
        await self.channel_layer.group_add(BARE_GROUP, self.channel_name)
        await self.accept()

    async def bare_frame(self, message):
        await self.send(text_data=message["text"])


_metacore = get_asgi_application()
_bare = BareConsumer.as_asgi()
_metacore_websocket = _metacore.application_mapping["websocket"]


async def _websocket(scope, receive, send):
    if scope["path"] == "/bench/bare":
        return await _bare(scope, receive, send)
    return await _metacore_websocket(scope, receive, send)


async def application(scope, receive, send):
    if scope["type"] == "websocket":
        return await _websocket(scope, receive, send)
    return await _metacore(scope, receive, send)
