import uuid

from django.conf import settings
from django.db import models


class Note(models.Model):
    ref = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes"
    )
    text = models.TextField(max_length=4000)
    color = models.CharField(max_length=16, null=True, blank=True)  # 2.0
    # created_at dropped by 0003 (irreversible: its values are gone once it runs)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.ref} ({self.owner})"

    def as_dict(self):
        return {
            "id": self.id,
            "ref": str(self.ref),
            "text": self.text,
            "color": self.color,
            "owner": self.owner.get_username(),
        }
