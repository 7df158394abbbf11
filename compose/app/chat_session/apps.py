from django.apps import AppConfig


class ChatSessionConfig(AppConfig):
    name = "chat_session"
    verbose_name = "Chat sessions"
