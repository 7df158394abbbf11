"""Which release and which server answer: the X-Release and X-Served-By values."""

from django.conf import settings
from django.core.handlers.asgi import ASGIRequest


def served_by(request=None, *, asgi: bool = False) -> str:
    """``wsgi`` or ``asgi``: APP_SERVER from the entry script, else the handler type."""
    if settings.APP_SERVER:
        return settings.APP_SERVER
    return "asgi" if asgi or isinstance(request, ASGIRequest) else "wsgi"


def release() -> str:
    return settings.APP_RELEASE
