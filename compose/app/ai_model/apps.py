from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class AIModelConfig(AppConfig):
    name = "ai_model"
    verbose_name = "AI models"

    def ready(self):
        from ai_model import cache
        from ai_model.models import AIModel

        post_save.connect(cache.invalidate, sender=AIModel, dispatch_uid="ai_model_cache_save")
        post_delete.connect(cache.invalidate, sender=AIModel, dispatch_uid="ai_model_cache_delete")
