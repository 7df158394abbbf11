from django.http import JsonResponse
from django.views.decorators.http import require_GET

from ai_model import cache
from api.http import error, session_required


@require_GET
@session_required
def model_list(request):
    return JsonResponse({"results": cache.list_models()})


@require_GET
@session_required
def model_detail(request, model_id: int):
    model = cache.get_model(model_id)
    if model is None:
        return error(404, "no such model")
    return JsonResponse(model)
