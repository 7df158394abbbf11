"""ASGI entry point: Django for HTTP, Channels for ``/ws/chat/<room>/``."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arena.settings")

# Set Django up before Channels imports the user model.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from api.routing import websocket_urlpatterns  # noqa: E402
from arena.failures import CountWebSocketFailures  # noqa: E402

# No AllowedHostsOriginValidator: the drill's clients send no Origin header.
application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": CountWebSocketFailures(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
