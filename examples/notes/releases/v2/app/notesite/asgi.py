"""ASGI entry point of the live service (daphne).

HTTP:      /v1/feed/ -> live.consumers.FeedConsumer (async SSE); anything else -> Django.
WebSocket: /live/echo/ -> live.consumers.EchoConsumer (session login required; the Origin
           header must name a host of ALLOWED_HOSTS)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "notesite.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the imports below

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path, re_path  # noqa: E402
from live.consumers import EchoConsumer, FeedConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("v1/feed/", FeedConsumer.as_asgi()),
                re_path(r"", django_asgi_app),
            ]
        ),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("live/echo/", EchoConsumer.as_asgi())]))
        ),
    }
)
