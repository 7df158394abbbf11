from django.contrib import admin
from django.urls import include, path

from notesite.views import healthz

admin.site.site_header = "Notes administration"

urlpatterns = [
    path("healthz", healthz),
    path("v1/", include("notes.urls")),
    path("accounts/", include("accounts.urls")),
    path("manage/", admin.site.urls),
]
