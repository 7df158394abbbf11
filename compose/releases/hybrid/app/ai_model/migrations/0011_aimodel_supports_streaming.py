from django.db import migrations, models

STREAMING_MODELS = ["gpt-4o", "claude-sonnet-4", "gemini-2.5-pro", "mistral-large"]


def mark_streaming(apps, schema_editor):
    AIModel = apps.get_model("ai_model", "AIModel")
    AIModel.objects.filter(name__in=STREAMING_MODELS).update(supports_streaming=True)


class Migration(migrations.Migration):
    """Hybrid release: which models stream. Reversible: backward drops the column.

    The column has a database default, so the pre-hybrid code can still insert
    rows while it exists (code rolled back before this migration is).
    """

    dependencies = [("ai_model", "0010_aimodel_options_context_window_check")]

    operations = [
        migrations.AddField(
            model_name="aimodel",
            name="supports_streaming",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RunPython(mark_streaming, migrations.RunPython.noop),
    ]
