from django.http import HttpResponse
from django.views.decorators.http import require_GET

from arena.metrics import exposition


@require_GET
def metrics(request):
    body, content_type = exposition()
    return HttpResponse(body, content_type=content_type)
