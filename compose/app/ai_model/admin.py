from django.contrib import admin

from ai_model.models import AIModel


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "context_window", "max_output_tokens", "is_active")
    list_filter = ("provider", "is_active")
    search_fields = ("name", "provider")
