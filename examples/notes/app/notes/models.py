import uuid

from django.conf import settings
from django.db import models


class Note(models.Model):
    ref = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes"
    )
    text = models.TextField(max_length=4000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.ref} ({self.owner})"

    def as_dict(self):
        return {
            "id": self.id,
            "ref": str(self.ref),
            "text": self.text,
            "owner": self.owner.get_username(),
            "created_at": self.created_at.isoformat(),
        }
