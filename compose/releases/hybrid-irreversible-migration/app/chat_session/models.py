from django.db import models
from django.db.models import Q

from chat_session.checksum import checksum, message_fields, session_fields


class ChatSession(models.Model):
    client_id = models.UUIDField(unique=True)
    title = models.CharField(max_length=200)
    model = models.ForeignKey(
        "ai_model.AIModel", on_delete=models.PROTECT, null=True, related_name="sessions"
    )
    checksum = models.CharField(max_length=64, blank=True, default="")
    # Hybrid release (0011): how the session is served, "http" or "websocket".
    # db_default: see ai_model.AIModel.supports_streaming.
    transport = models.CharField(max_length=16, default="http", db_default="http")
    created_at = models.DateTimeField(auto_now_add=True)
    # DEFECT: updated_at dropped by 0012 with its values (irreversible)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at"], name="chat_session_created_idx"),
            models.Index(fields=["transport"], name="chat_session_transport_idx"),
        ]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        self.checksum = checksum(session_fields(self.client_id, self.title, self.model_id))
        super().save(*args, **kwargs)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        SYSTEM = "system"

    client_id = models.UUIDField(unique=True)
    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()
    checksum = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["session", "created_at"], name="chat_message_session_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=["user", "assistant", "system"]),
                name="chat_message_role_valid",
            )
        ]

    def __str__(self):
        return f"{self.role}: {self.content[:40]}"

    def save(self, *args, **kwargs):
        self.checksum = checksum(message_fields(self.client_id, self.role, self.content))
        super().save(*args, **kwargs)
