from django.db import migrations

# name, provider, context window
SEED = [
    ("gpt-4o", "openai", 128000),
    ("claude-sonnet-4", "anthropic", 200000),
    ("gemini-2.5-pro", "google", 1048576),
    ("llama-3.1-70b", "meta", 131072),
    ("mistral-large", "mistral", 131072),
]


def seed(apps, schema_editor):
    AIModel = apps.get_model("ai_model", "AIModel")
    for name, provider, context_window in SEED:
        AIModel.objects.get_or_create(
            name=name, defaults={"provider": provider, "context_window": context_window}
        )


def unseed(apps, schema_editor):
    AIModel = apps.get_model("ai_model", "AIModel")
    AIModel.objects.filter(name__in=[name for name, _, _ in SEED]).delete()


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0004_aimodel_timestamps")]

    operations = [migrations.RunPython(seed, unseed)]
