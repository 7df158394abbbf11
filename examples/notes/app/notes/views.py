import json
import time
import uuid

from django.db import IntegrityError, transaction
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET, require_http_methods

from notes import feed as sse
from notes.models import Note

MAX_LIST = 100


def _unauthorized():
    return JsonResponse({"detail": "authentication required"}, status=401)


@require_http_methods(["GET", "POST"])
def note_collection(request):
    """GET: the caller's newest notes (?limit=N). POST: create one, idempotent on ``ref``.

    POST is a normal Django POST: the CSRF middleware wants the ``X-CSRFToken`` header equal
    to the ``csrftoken`` cookie."""
    if not request.user.is_authenticated:
        return _unauthorized()
    if request.method == "GET":
        try:
            limit = max(1, min(int(request.GET.get("limit", 20)), MAX_LIST))
        except ValueError:
            limit = 20
        notes = Note.objects.filter(owner=request.user).select_related("owner")[:limit]
        return JsonResponse({"results": [n.as_dict() for n in notes]})

    try:
        payload = json.loads(request.body or b"{}")
        ref = uuid.UUID(str(payload["ref"]))
        text = payload["text"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse(
            {"detail": 'expected JSON {"ref": "<uuid>", "text": "..."}'}, status=400
        )
    if not isinstance(text, str) or not text or len(text) > 4000:
        return JsonResponse({"detail": "text must be 1-4000 characters"}, status=400)
    try:
        with transaction.atomic():
            note = Note.objects.create(ref=ref, owner=request.user, text=text)
    except IntegrityError:
        note = Note.objects.filter(ref=ref).select_related("owner").first()
        if note is not None and note.owner_id == request.user.id and note.text == text:
            return JsonResponse(note.as_dict(), status=200)  # a retry of the same write
        return JsonResponse({"detail": "ref already used"}, status=409)
    return JsonResponse(note.as_dict(), status=201)


@require_GET
def note_detail(request, ref):
    if not request.user.is_authenticated:
        return _unauthorized()
    note = Note.objects.filter(ref=ref, owner=request.user).select_related("owner").first()
    if note is None:
        return JsonResponse({"detail": "not found"}, status=404)
    return JsonResponse(note.as_dict())


@require_GET
def feed(request):
    """Server-Sent Events: N ``tick`` events, then ``event: done``. No login needed."""
    events, every_ms = sse.parse_params(request.META.get("QUERY_STRING", ""))

    def stream():
        for seq in range(1, events + 1):
            yield sse.event(seq)
            if seq < events:
                time.sleep(every_ms / 1000)
        yield sse.done(events)

    response = StreamingHttpResponse(stream(), content_type=sse.CONTENT_TYPE)
    for name, value in sse.HEADERS.items():
        response[name] = value
    return response
