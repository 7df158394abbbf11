"""Login, whoami and logout on the session cookie (sessions live in Redis).

The API views are CSRF-exempt: they serve the drill's load generator, a
non-browser client that authenticates with the session cookie alone.
"""

from django.contrib.auth import authenticate, login, logout
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from api.http import error, json_body, session_required


@csrf_exempt
@require_POST
def login_view(request):
    body = json_body(request)
    username = body.get("username") if body else None
    password = body.get("password") if body else None
    if not isinstance(username, str) or not isinstance(password, str):
        return error(400, "expected a JSON object with username and password")
    user = authenticate(request, username=username, password=password)
    if user is None:
        return error(401, "invalid credentials")
    login(request, user)
    return JsonResponse({"username": user.get_username()})


@require_GET
@session_required
def me(request):
    return JsonResponse({"username": request.user.get_username()})


@csrf_exempt
@require_POST
@session_required
def logout_view(request):
    logout(request)
    return JsonResponse({"status": "logged out"})
