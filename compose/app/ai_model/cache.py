"""The model catalogue as the API serves it: through the Redis cache, counted."""

from django.conf import settings
from django.core.cache import cache

from ai_model.models import AIModel
from arena import metrics

LIST_KEY = "ai_model:list"
FIELDS = ("id", "name", "provider", "context_window")


def _detail_key(model_id: int) -> str:
    return f"ai_model:{model_id}"


def _cached(key, load):
    value = cache.get(key)
    if value is not None:
        metrics.CACHE_HITS.inc()
        return value
    metrics.CACHE_MISSES.inc()
    value = load()
    if value is not None:
        cache.set(key, value, settings.MODELS_CACHE_TTL)
    return value


def list_models() -> list[dict]:
    return _cached(LIST_KEY, lambda: list(AIModel.objects.filter(is_active=True).values(*FIELDS)))


def get_model(model_id: int) -> dict | None:
    """One active model, or None (a miss is not cached)."""
    return _cached(
        _detail_key(model_id),
        lambda: AIModel.objects.filter(pk=model_id, is_active=True).values(*FIELDS).first(),
    )


def invalidate(sender, instance, **kwargs):
    cache.delete_many([LIST_KEY, _detail_key(instance.pk)])
