from django.db import models
from django.db.models import Q


class AIModel(models.Model):
    name = models.CharField(max_length=100, unique=True)
    provider = models.CharField(max_length=50)
    context_window = models.PositiveIntegerField(default=4096)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    # Hybrid release (0011). db_default keeps rows inserted by the pre-hybrid
    # code valid while the column exists (code rolled back, schema not yet).
    supports_streaming = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "name"]
        verbose_name = "AI model"
        indexes = [models.Index(fields=["provider", "name"], name="ai_model_provider_name_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(context_window__gt=0), name="ai_model_context_window_gt_0"
            )
        ]

    def __str__(self):
        return f"{self.provider}/{self.name}"
