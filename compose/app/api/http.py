"""Small helpers of the JSON API."""

import json
import uuid
from functools import wraps

from django.http import JsonResponse


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def json_body(request) -> dict | None:
    """The request's JSON object, or None when the body is not one."""
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def parse_uuid(value) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def session_required(view):
    """401 JSON (not a redirect to a login page) without a logged-in session."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return error(401, "authentication required")
        return view(request, *args, **kwargs)

    return wrapper
