from django.http import JsonResponse
from django.views.decorators.http import require_GET

from accounts.models import Profile


@require_GET
def whoami(request):
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "not logged in"}, status=401)
    profile = Profile.objects.filter(user=request.user).first()
    return JsonResponse(
        {
            "username": request.user.get_username(),
            "display_name": profile.display_name if profile else "",
            "is_staff": request.user.is_staff,
        }
    )
