from django.db import migrations

MAX_OUTPUT_TOKENS = {
    "gpt-4o": 16384,
    "claude-sonnet-4": 64000,
    "gemini-2.5-pro": 65536,
    "llama-3.1-70b": 4096,
    "mistral-large": 8192,
}


def set_limits(apps, schema_editor):
    AIModel = apps.get_model("ai_model", "AIModel")
    for name, tokens in MAX_OUTPUT_TOKENS.items():
        AIModel.objects.filter(name=name, max_output_tokens__isnull=True).update(
            max_output_tokens=tokens
        )


def clear_limits(apps, schema_editor):
    AIModel = apps.get_model("ai_model", "AIModel")
    AIModel.objects.filter(name__in=MAX_OUTPUT_TOKENS).update(max_output_tokens=None)


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0008_aimodel_max_output_tokens")]

    operations = [migrations.RunPython(set_limits, clear_limits)]
