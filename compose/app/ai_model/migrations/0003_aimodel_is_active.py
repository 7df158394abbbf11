from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("ai_model", "0002_aimodel_context_window")]

    operations = [
        migrations.AddField(
            model_name="aimodel",
            name="is_active",
            field=models.BooleanField(default=True),
        ),
    ]
