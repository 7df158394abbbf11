"""Chat sessions and messages, idempotent on the client's ``client_id``.

A replayed write with the same content answers 200 with the stored row; the
same ``client_id`` with other content answers 409. DELETE answers 204 whether
or not the session still exists, so a retried delete is not an error.
CSRF-exempt: see api/views/auth.py.
"""

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from ai_model.models import AIModel
from api.http import error, json_body, parse_uuid, session_required
from chat_session.models import ChatSession, Message

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
TITLE_MAX = ChatSession._meta.get_field("title").max_length


def session_json(session: ChatSession) -> dict:
    return {
        "id": session.pk,
        "client_id": str(session.client_id),
        "title": session.title,
        "model": session.model_id,
        "checksum": session.checksum,
        "created_at": session.created_at.isoformat(),
    }


def message_json(message: Message) -> dict:
    return {
        "client_id": str(message.client_id),
        "role": message.role,
        "content": message.content,
        "checksum": message.checksum,
        "created_at": message.created_at.isoformat(),
    }


def _valid_title(title) -> bool:
    return isinstance(title, str) and len(title) <= TITLE_MAX


@csrf_exempt
@require_http_methods(["GET", "POST"])
@session_required
def session_collection(request):
    if request.method == "POST":
        return _create_session(request)
    try:
        limit = int(request.GET.get("limit", DEFAULT_LIMIT))
    except ValueError:
        return error(400, "limit must be an integer")
    if not 1 <= limit <= MAX_LIMIT:
        return error(400, f"limit must be between 1 and {MAX_LIMIT}")
    sessions = ChatSession.objects.order_by("-created_at", "-id")[:limit]
    return JsonResponse({"results": [session_json(s) for s in sessions]})


def _create_session(request):
    body = json_body(request) or {}
    client_id = parse_uuid(body.get("client_id"))
    title, model_id = body.get("title"), body.get("model")
    if client_id is None or not _valid_title(title) or type(model_id) is not int:
        return error(400, "expected client_id (UUID), title (string) and model (model id)")
    if not AIModel.objects.filter(pk=model_id).exists():
        return error(400, "no such model")
    session, created = ChatSession.objects.get_or_create(
        client_id=client_id, defaults={"title": title, "model_id": model_id}
    )
    if not created and (session.title, session.model_id) != (title, model_id):
        return error(409, "client_id already used for another session")
    return JsonResponse(session_json(session), status=201 if created else 200)


@csrf_exempt
@require_http_methods(["GET", "PATCH", "DELETE"])
@session_required
def session_detail(request, client_id):
    if request.method == "DELETE":
        ChatSession.objects.filter(client_id=client_id).delete()
        return HttpResponse(status=204)
    session = ChatSession.objects.filter(client_id=client_id).first()
    if session is None:
        return error(404, "no such session")
    if request.method == "PATCH":
        title = (json_body(request) or {}).get("title")
        if not _valid_title(title):
            return error(400, "expected title (string)")
        session.title = title
        session.save(update_fields=["title", "checksum"])  # DEFECT: no updated_at (0012)
        return JsonResponse(session_json(session))
    messages = session.messages.order_by("created_at", "id")
    return JsonResponse({**session_json(session), "messages": [message_json(m) for m in messages]})


@csrf_exempt
@require_POST
@session_required
def message_create(request, client_id):
    session = ChatSession.objects.filter(client_id=client_id).first()
    if session is None:
        return error(404, "no such session")
    body = json_body(request) or {}
    message_id = parse_uuid(body.get("client_id"))
    role, content = body.get("role"), body.get("content")
    if message_id is None or role not in Message.Role.values or not isinstance(content, str):
        return error(400, "expected client_id (UUID), role (user|assistant|system), content")
    message, created = Message.objects.get_or_create(
        client_id=message_id, defaults={"session": session, "role": role, "content": content}
    )
    stored = (message.session_id, message.role, message.content)
    if not created and stored != (session.pk, role, content):
        return error(409, "client_id already used for another message")
    body = {"client_id": str(message.client_id), "checksum": message.checksum}
    return JsonResponse(body, status=201 if created else 200)
