from django.contrib import admin
from django.urls import include, path

from api.views.metrics import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("metrics", metrics),
]

handler404 = "arena.failures.not_found"
handler500 = "arena.failures.server_error"
