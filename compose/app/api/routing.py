from django.urls import path

from api.consumers import EchoConsumer

websocket_urlpatterns = [path("ws/chat/<str:room>/", EchoConsumer.as_asgi())]
