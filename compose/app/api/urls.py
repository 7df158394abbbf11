from django.urls import path

from api.views import ai_models, auth, health, sessions, stream

urlpatterns = [
    path("health/", health.health),
    path("auth/login/", auth.login_view),
    path("auth/me/", auth.me),
    path("auth/logout/", auth.logout_view),
    path("models/", ai_models.model_list),
    path("models/<int:model_id>/", ai_models.model_detail),
    path("sessions/", sessions.session_collection),
    path("sessions/<uuid:client_id>/", sessions.session_detail),
    path("sessions/<uuid:client_id>/messages/", sessions.message_create),
    path("stream/", stream.stream),
]
